//! The learned detectors: `spike`, `shift`, `spread`, `range` and `stuck`, calibrated on each
//! series' own behaviour so that a rule's false-alarm budget means what it says.
//!
//! Every sample is reduced to four statistics, each judged by a [`Tail`] learned from this
//! series (and a fifth, the run of repeated values, by the series' own rate of repeats), giving
//! a probability `p`: how often, for this series, a value at least this unusual happens. The
//! engine compares `p` with the rule's budget turned into a per-sample probability
//! (`false_alerts_per_day` × the series' interval / 1 day, shared between the enabled
//! detectors).
//!
//! ```text
//! m      = median of the last three values     (a lone spike does not move what follows)
//! level, trend: Holt average of m               (follows a daily curve without lagging)
//! r      = x - (level + trend)                  one-step residual
//! unit   = max(scale, quantum)                  the series' noise (mean |r|), at least the
//!                                               smallest step its values take
//! spike  : |r| / unit                           one value far from the recent level
//! shift  : |fast average of m - base| / unit    the level far from the long-run baseline
//!          (never rarer than two wild values in a row, which move m, as the spike prices them)
//! spread : a CUSUM of the log-likelihood ratio of a noise grown `ratio`-fold in variance,
//!          on v = (r / slow unit)² (clipped) scaled to the noise usual at this level, over its
//!          usual mean; judged by peaks over a threshold, only for residuals close to Gaussian
//!          (t(10) or lighter, as the spike's tail reads them) of a series that repeats less
//!          often than not
//! noise by level: the usual noise ∝ level^(b/2), b the slope of ln r² on ln level, learned
//!          (a count's noise grows with its level; 0 for a noise that does not)
//! range  : m beyond the range shown (forgetting over `memory`) / unit
//! stuck  : a run of identical values: P = sqrt(repeat rate)^(run - 1), beyond the longest run
//!          seen, for a series that repeats less often than not
//! ```
//!
//! A spike on a smooth daily curve is a spike against the recent level, so it is caught inside
//! the day's range; a slow daily swing moves the level with it and raises nothing.
//!
//! Before `warmup` samples nothing is judged. During its `youth` (a day of event time by
//! default) a series is judged by its records alone, so only gross outliers alert; after it, by
//! its tails (with a learning margin in [`super::tail`]). `shift` also learns the series' own
//! alerting bursts ([`super::bursts`]): a series whose bursts keep breaking its record stops
//! paging for each one.
//! State: 192 bytes (levels, scales, four tails, shift's bursts, the range, the repeat run, the
//! noise by level).
//! Cost: about 70 flops and a logarithm per sample (an `exp` too for a series whose noise grows
//! with its level); a t survival function only for a value beyond its statistic's recent peak.

use serde::{Deserialize, Serialize};

use super::bursts::{BurstParams, Bursts};
use super::tail::{Heaviness, Shape, Tail, TailParams};
use super::{to_f32, DetectorKind, Verdict};
use level::NoiseByLevel;

mod level;
mod params;
mod upgrade;

pub use params::{Learning, Range, Shift, Spike, Spread, Stuck};
pub use upgrade::{StateV3, StateV5};

/// Floors of the tails' means, in their statistic's units (see [`TailParams::floor`]).
const SPIKE_FLOOR: f64 = 0.5;
const SHIFT_FLOOR: f64 = 0.05;
/// While young, a value beyond a record by a factor f is as improbable as f^-YOUTH_EXPONENT
/// divided by the samples seen.
const YOUTH_EXPONENT: f64 = 4.0;
/// A spike or noise rise less probable than this slows the learning of the usual noise, and a
/// shift less probable than this does not raise the shift tail's peak.
const CALM: f64 = 1e-3;
/// A series whose values repeat their predecessor more often than this does not normally vary:
/// it is never `stuck`, and `spread` does not judge it.
const MAX_REPEAT_RATE: f64 = 0.5;
/// Smoothing factor of `shift`'s fast average of the level.
const SHIFT_SPEED: f64 = 0.1;
/// Weight of a pair of wild values in `shift`'s fast average (they enter two medians of three).
const PAIR: f64 = SHIFT_SPEED * (2.0 - SHIFT_SPEED);
/// `spread` judges a series whose residuals' tail (as `spike` fits it) is at least this light:
/// the CUSUM of heavier noise is set by its few wild values, and neither the series nor its
/// excesses tell how rare they are.
const SPREAD_MIN_NU: f64 = 10.0;
/// `spread`'s statistic is its CUSUM over this many nats: the excess tail's threshold
/// ([`super::tail::EXCESS_FROM`], 0.5) is then 2 nats and its prior mean excess (0.25) 1 nat,
/// the mean excess of a likelihood-ratio CUSUM on the noise it assumes (its tail falls e-fold
/// per nat).
const SPREAD_NATS: f64 = 4.0;
/// The floor of `spread`'s mean excess (1 nat): no series' CUSUM is judged lighter-tailed than
/// one on the Gaussian noise it assumes.
const SPREAD_FLOOR: f64 = 0.25;
/// The highest `spread`'s statistic climbs (24 nats): a noise back to its usual size resolves
/// within about 40 samples, however long it was wide.
const SPREAD_CAP: f64 = 6.0;
/// A rise judged improbable teaches `spread`'s tail an excess of at most this many mean
/// excesses: a series whose CUSUM wanders far learns so, while a change in progress barely
/// moves the tail that judges it.
const SPREAD_LEARNED_EXCESSES: f64 = 2.0;

/// The learned detectors a rule enables, with their shared learning parameters.
#[derive(Debug, Clone)]
pub struct Learned {
    pub learning: Learning,
    pub spike: bool,
    pub shift: Option<Shift>,
    pub spread: Option<Spread>,
    pub range: bool,
    pub stuck: bool,
    /// Tail parameters of `spike`, `shift`, `spread` and `range`, derived from `learning`.
    tails: [TailParams; 4],
    /// Per-sample decay of the longest run of repeats.
    run_decay: f64,
    /// Per-sample share by which the known range closes in on the level.
    range_decay: f64,
    /// How `shift` learns its alerting bursts.
    bursts: BurstParams,
    /// `shift`'s clip of the median's distance from the baseline, units.
    shift_clip: f64,
    /// `spread`'s log-likelihood ratio per sample, `a·v - b`, in its statistic's units.
    spread_llr: (f64, f64),
}

/// Per-series state of the learned detectors (192 bytes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    level: f64,
    base: f64,
    /// `shift`: a fast average of the median of three, as an offset from `base`.
    shifted: f32,
    /// The previous two values (repeats, the quantum, the level's median-of-3).
    last: f64,
    last2: f64,
    /// Holt trend of the level, per sample.
    trend: f32,
    /// The usual noise: mean |residual| (clipped), following slow changes of the noise...
    scale: f32,
    /// ...and the same over the learning memory, scaled to the noise usual at this level.
    slow_scale: f32,
    /// Smallest non-zero step between consecutive values seen (0: none yet).
    quantum: f32,
    /// Share of samples equal to their predecessor.
    repeat: f32,
    /// `spread`: its CUSUM (in units of [`SPREAD_NATS`]), and the long-run mean of the squared
    /// standardised residual (clipped).
    noise: f32,
    noise_mean: f32,
    /// How the noise grows with the level ([`level`]).
    noise_by_level: NoiseByLevel,
    spike: Tail,
    shift: Tail,
    /// `shift`'s alerting bursts beyond its tail's peak.
    shift_bursts: Bursts,
    spread: Tail,
    /// `range`: the lowest and highest level (median of three) shown, forgetting slowly, and
    /// the tail of the excesses beyond them.
    low: f32,
    high: f32,
    range: Tail,
    /// Length of the current run of identical values.
    run: u32,
    /// Longest run seen before the current one (decaying).
    longest: f32,
    /// Samples learned by the spike, shift, spread and range tails.
    tail_n: [u32; 4],
    /// Samples learned.
    n: u32,
}

/// What the engine tells the learned detectors about a series, when they ask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Context {
    /// Per-sample probability at which an alert opens.
    pub alert_p: f64,
    /// Typical sampling interval, ms.
    pub interval_ms: f64,
}

/// What the learned detectors say about one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judgement {
    /// The most improbable of spike, shift and spread (`None` during warm-up), with its
    /// probability in `Verdict::score` as `1 - p`.
    pub verdict: Option<(Verdict, DetectorKind)>,
    /// That probability (1 when none).
    pub p: f64,
    /// Probability of the current run of identical values (1 when not improbable or off).
    pub stuck_p: f64,
    /// Whether this value repeats its predecessor.
    pub repeats: bool,
}

impl Learned {
    pub fn new(
        learning: Learning,
        spike: bool,
        shift: Option<Shift>,
        spread: Option<Spread>,
        range: bool,
        stuck: bool,
    ) -> Self {
        let spike_tail = TailParams {
            heaviness: Heaviness::Blocks,
            pull: learning.pull,
            min_nu: learning.min_nu,
            memory: learning.memory,
            margin: learning.margin,
            peak_decay: 0.5f64.powf(1.0 / learning.peak_half_life),
            floor: SPIKE_FLOOR,
        };
        let shift_tail = TailParams {
            heaviness: Heaviness::Moments,
            pull: 0.0,
            floor: SHIFT_FLOOR,
            ..spike_tail
        };
        let bursts = BurstParams {
            learning: shift.as_ref().map_or(0.0, |s| s.bursts),
            log_cap: shift.as_ref().map_or(1.0, |s| s.burst_ratio).ln(),
            memory: learning.memory,
        };
        Self {
            bursts,
            shift_clip: shift.as_ref().map_or(f64::INFINITY, |s| s.clip),
            spread_llr: spread.as_ref().map_or((0.0, 0.0), |s| {
                let k = s.ratio;
                (
                    0.5 * (1.0 - 1.0 / k) / SPREAD_NATS,
                    0.5 * k.ln() / SPREAD_NATS,
                )
            }),
            run_decay: spike_tail.peak_decay,
            range_decay: 1.0 / learning.memory,
            learning,
            spike,
            shift,
            spread,
            range,
            stuck,
            tails: [
                spike_tail,
                shift_tail,
                TailParams {
                    heaviness: Heaviness::Excess,
                    floor: SPREAD_FLOOR,
                    ..shift_tail
                },
                shift_tail,
            ],
        }
    }

    /// How many tests share the rule's budget (each gets `budget / tests`).
    pub fn tests(&self) -> usize {
        usize::from(self.spike)
            + usize::from(self.shift.is_some())
            + usize::from(self.spread.is_some())
            + usize::from(self.range)
            + usize::from(self.stuck)
    }

    /// Judges `x`, then learns it. `context()` tells the series' sampling interval and the
    /// per-sample probability at which the engine opens an alert for it (asked only when a
    /// value sets a record): a value that would not alert is normal for the series and widens
    /// what its tails know, and a series younger than `youth` is judged by its records.
    #[inline]
    pub fn judge_and_learn(
        &self,
        st: &mut State,
        x: f64,
        context: impl Fn() -> Context,
    ) -> Judgement {
        let lr = &self.learning;
        if st.n == 0 {
            *st = State {
                level: x,
                base: x,
                last: x,
                last2: x,
                low: x as f32,
                high: x as f32,
                run: 1,
                n: 1,
                ..State::default()
            };
            return Judgement::none(1.0, false);
        }
        let n = st.n;
        let unit = self.unit(st);
        // a series that has never varied has no scale yet: its first change teaches it one
        let judged = n as usize >= lr.warmup && st.quantum > 0.0;
        let (repeats, stuck_p, long_run) = self.run_of_repeats(st, x);
        if long_run {
            // stuck's business alone, and not learned (a frozen reading is not the series'
            // behaviour)
            st.last2 = st.last;
            st.last = x;
            return Judgement::none(stuck_p, repeats);
        }
        let s = self.statistics(st, x, unit);
        let a_rep = 1.0 / f64::from(n).min(lr.memory); // max(1 / n, 1 / memory)
        st.repeat = to_f32(
            f64::from(st.repeat) + a_rep * (f64::from(u8::from(repeats)) - f64::from(st.repeat)),
        );

        let mut ps = if judged {
            self.probabilities(st, &s.y)
        } else {
            [1.0; 4]
        };
        // a young series knows too little to extrapolate its tails: a value beyond its records
        // (at least one noise unit) is as improbable as the margin by which it beats them
        // says, and no more (gross outliers still alert: ten times the record is 1e-4 divided
        // by the samples seen)
        let ctx = ps.iter().any(|&p| p < 1.0).then(&context);
        let young = ctx.is_some_and(|c| f64::from(n) * c.interval_ms < lr.youth_ms as f64);
        if young {
            let tails = [&st.spike, &st.shift, &st.spread, &st.range];
            for i in 0..4 {
                if ps[i] < 1.0 {
                    let record = tails[i].peak().max(1.0);
                    let seen = f64::from(st.tail_n[i]) + 1.0;
                    ps[i] = (record / s.y[i]).powf(YOUTH_EXPONENT) / seen;
                }
            }
        }
        // once judged, every sample has a verdict (the spike's when nothing is improbable), so
        // its expected value and score are reported like any other
        let on = [
            self.spike,
            self.shift.is_some(),
            self.spread.is_some(),
            self.range,
        ];
        let best = (0..4)
            .filter(|&i| judged && on[i])
            .min_by(|&a, &b| ps[a].total_cmp(&ps[b]));
        // the band this sample was judged against, drawn (an inverse t) only for a sample that
        // opens an alert, before the tails learn it
        let band = match (best, ctx) {
            (Some(i), Some(c)) if ps[i] <= c.alert_p => self
                .half_width(st, c.alert_p, young, unit)
                .map(|h| floored(st, s.expected - h, s.expected + h)),
            _ => None,
        };
        // the smoothed statistics learn only what is less improbable than the square root of
        // the alerting probability (halfway to an alert, on a log scale)
        let limit = match ctx {
            Some(c) => c.alert_p.sqrt(),
            None if ps[1].min(ps[2]).min(ps[3]) < 1.0 => context().alert_p.sqrt(),
            None => 0.0,
        };
        // bursts are learned from the alerts of a series past its youth (a young series'
        // records say little about how far it bursts)
        let alert = match ctx {
            Some(c) if !young => c.alert_p,
            _ => 0.0,
        };
        self.learn(st, x, unit, &s, &ps, [limit, alert]);

        const KINDS: [DetectorKind; 4] = [
            DetectorKind::Spike,
            DetectorKind::Shift,
            DetectorKind::Spread,
            DetectorKind::Range,
        ];
        let verdict = best.map(|i| {
            (
                Verdict {
                    score: 1.0 - ps[i],
                    deviation: s.y[i].min(super::MAX_DEVIATION),
                    expected: s.expected,
                    lower: band.map_or(f64::NAN, |b| b.0),
                    upper: band.map_or(f64::NAN, |b| b.1),
                },
                KINDS[i],
            )
        });
        Judgement {
            verdict,
            p: best.map_or(1.0, |i| ps[i]),
            stuck_p,
            repeats,
        }
    }

    /// Counts the run of identical values `x` continues or ends (and learns the quantum from a
    /// change): whether `x` repeats, the run's probability (`stuck`), and whether the run is
    /// longer than any this series has had while it normally varies (a sparse counter repeats
    /// its 0 more often than not).
    #[inline]
    fn run_of_repeats(&self, st: &mut State, x: f64) -> (bool, f64, bool) {
        let lr = &self.learning;
        let repeats = x == st.last;
        if repeats {
            st.run = st.run.saturating_add(1);
        } else {
            st.longest = to_f32((f64::from(st.longest) * self.run_decay).max(f64::from(st.run)));
            st.run = 1;
            let step = (x - st.last).abs() as f32;
            if step > 0.0 && (st.quantum == 0.0 || step < st.quantum) {
                st.quantum = step;
            }
        }
        let rate = self.repeat_rate(st);
        let long_run = rate <= MAX_REPEAT_RATE && f64::from(st.run) > f64::from(st.longest);
        // √rate allows for values that repeat more than the average one (a gauge's favourite
        // step)
        let stuck_p = if self.stuck && long_run && st.n as usize >= lr.warmup {
            rate.sqrt().powf(f64::from(st.run - 1))
        } else {
            1.0
        };
        (repeats, stuck_p, long_run)
    }

    /// The four statistics of `x` against the state before it (see the module docs).
    #[inline]
    fn statistics(&self, st: &State, x: f64, unit: f64) -> Statistics {
        let expected = st.level + f64::from(st.trend);
        let r = x - expected;
        // the level follows the median of the last three values, so a lone spike (or a sparse
        // counter's tick) does not move it, while a lasting move does at once
        let m = median3(x, st.last, st.last2);
        // shift: a faster average of the median than the level (whose smoothing serves the
        // spike's prediction) against the slow baseline: a lasting move is seen within a few
        // samples
        // (clipped at `clip` units: a burst of a few samples moves it by a bounded amount, while
        // a lasting move still reaches the clip within a few dozen samples)
        let c = self.shift_clip * unit;
        let d = (m - st.base).clamp(-c, c);
        let shifted = f64::from(st.shifted) + SHIFT_SPEED * (d - f64::from(st.shifted));
        let (low, high) = (f64::from(st.low), f64::from(st.high));
        // spread: squared residuals standardised by the slow unit (the noise unit follows a
        // change of the noise within a few dozen samples, which is what `spread` must see) and
        // scaled to the noise usual at this level, clipped in slow units (one wild value adds
        // a bounded amount of evidence)
        let spread_clip = self.spread.as_ref().map_or(6.0, |s| s.clip);
        let slow_unit = f64::from(st.slow_scale).max(unit * 1e-3);
        // (the noise by level serves `spread` alone: a rule without it neither learns nor
        // applies it)
        let (log_level, by_level) = if self.spread.is_some() {
            let x = NoiseByLevel::coordinate(expected, slow_unit);
            (x, st.noise_by_level.scale(x))
        } else {
            (0.0, 1.0)
        };
        let u = ((r / slow_unit).powi(2) * by_level).min(spread_clip * spread_clip);
        // the evidence for a noise grown `ratio`-fold in variance, summed while it is positive
        // (from when the usual noise has settled)
        let noise = if self.spread_learns(st) {
            let v = u / f64::from(st.noise_mean).max(1e-12);
            let (a, b) = self.spread_llr;
            (f64::from(st.noise) + a * v - b).clamp(0.0, SPREAD_CAP)
        } else {
            0.0
        };
        Statistics {
            expected,
            r,
            m,
            shifted,
            u,
            noise,
            slow_unit,
            log_level,
            by_level,
            y: [
                (r / unit).abs(),
                (shifted / unit).abs(),
                noise,
                ((m - high).max(low - m) / unit).max(0.0),
            ],
        }
    }

    /// Each statistic's probability under its tail (1 for one disabled or not improbable).
    #[inline]
    fn probabilities(&self, st: &State, y: &[f64; 4]) -> [f64; 4] {
        let mut ps = [1.0f64; 4];
        if self.spike {
            ps[0] = st.spike.p(y[0], st.tail_n[0], &self.tails[0]);
        }
        if self.shift.is_some() {
            let p = st.shift.p(y[1], st.tail_n[1], &self.tails[1]);
            // the median of three moves when two of its values are wild: a shift no rarer
            // than such a pair (as the spike's tail prices each value) is not judged rarer,
            // nor one no rarer than the series' own bursts
            ps[1] = if p < 1.0 {
                p.max(self.pair_p(st, y[1]))
                    .max(st.shift_bursts.p(y[1], st.shift.peak()))
            } else {
                1.0
            };
        }
        // judged for a series whose residuals are close to Gaussian and that varies more often
        // than it repeats: otherwise a few wild values or jumps set the CUSUM, whose rarity its
        // excesses cannot tell (a sparse count, a two-state series, bursty
        // real traffic); and not while the level moves (the residuals grow until the level has
        // followed: that is `shift`'s)
        if self.spread.is_some() && ps[1] >= CALM && self.repeat_rate(st) <= MAX_REPEAT_RATE {
            let p = st.spread.excess_p(y[2], st.tail_n[2], &self.tails[2]);
            if p < 1.0
                && st
                    .spike
                    .shape(st.tail_n[0], &self.tails[0])
                    .is_some_and(|s| s.nu >= SPREAD_MIN_NU)
            {
                ps[2] = p;
            }
        }
        if self.range && y[3] > 0.0 {
            // an excess happens in this share of samples: P(excess >= y) = share P(.. | excess)
            let share = (f64::from(st.tail_n[3]) + 1.0) / (f64::from(st.n) + 2.0);
            let p = st.range.p(y[3], st.tail_n[3], &self.tails[3]);
            ps[3] = if p < 1.0 { share * p } else { 1.0 };
        }
        ps
    }

    /// The probability that two wild values in a row, each priced by the spike's tail, move
    /// `shift`'s statistic to `y`: the pair enters two medians of three, weighted `PAIR` in
    /// the fast average, and counts at most `clip` units there (0 beyond that reach).
    #[inline]
    fn pair_p(&self, st: &State, y: f64) -> f64 {
        let z = y / PAIR;
        if z > self.shift_clip {
            return 0.0;
        }
        match st.spike.shape(st.tail_n[0], &self.tails[0]) {
            Some(shape) => {
                let q = shape.p(z);
                (3.0 * q * q).min(1.0)
            }
            None => 0.0,
        }
    }

    /// Learns `x` (its statistics `s`, judged `ps`): the level, range, scales, baseline and
    /// tails. `limit`: the smoothed statistics' tails learn only values more probable than it;
    /// `alert`: the probability at or below which a sample alerted (0 while young).
    #[inline]
    fn learn(
        &self,
        st: &mut State,
        x: f64,
        unit: f64,
        s: &Statistics,
        ps: &[f64; 4],
        [limit, alert]: [f64; 2],
    ) {
        let lr = &self.learning;
        let n = st.n;
        let clip = lr.clip * unit;
        let step = super::warm_alpha(lr.level_alpha, n) * (s.m - s.expected);
        st.level = s.expected + step;
        // (undamped: a trend damped by 2 % a sample left the level about three samples' slope
        // behind a daily curve, which hid a 6 sd spike on its rising or falling side in one
        // series in five)
        st.trend = to_f32(f64::from(st.trend) + lr.trend * step);
        st.last2 = st.last;
        st.last = x;
        let (low, high) = (f64::from(st.low).min(s.m), f64::from(st.high).max(s.m));
        st.low = to_f32(low + self.range_decay * (st.level - low).max(0.0));
        st.high = to_f32(high - self.range_decay * (high - st.level).max(0.0));

        // while a value or the noise is improbable, the usual noise learns at a quarter of its
        // pace (a lasting change becomes the new normal, a passing one barely moves it)
        let calm = if ps[0].min(ps[2]) >= CALM { 1.0 } else { 0.25 };
        let sa = calm * super::warm_alpha(lr.scale_alpha, n - 1);
        let dev = s.r.abs().min(clip);
        st.scale = to_f32(f64::from(st.scale) + sa * (dev - f64::from(st.scale)));
        // the slow unit, which `spread` measures residuals in, over the learning memory: the
        // usual noise it compares them with (`noise_mean`, over `baseline`) is what follows a
        // lasting change, and a unit that followed it as fast halved the evidence of a change
        // in progress (the two adapting at once)
        let ma = calm * super::warm_alpha(1.0 / lr.memory, n - 1);
        let level_dev = if s.by_level == 1.0 {
            dev
        } else {
            (s.r.abs() * s.by_level.sqrt()).min(clip)
        };
        st.slow_scale =
            to_f32(f64::from(st.slow_scale) + ma * (level_dev - f64::from(st.slow_scale)));
        // the noise by level, over the learning memory too (at a quarter of the pace while a
        // value or the noise is improbable, as the usual noise)
        if self.spread.is_some() {
            st.noise_by_level.learn(s.log_level, s.r / s.slow_unit, ma);
        }
        if let Some(sh) = &self.shift {
            let step = super::warm_alpha(sh.alpha, n) * (s.m - st.base);
            st.base += step;
            st.shifted = to_f32(s.shifted - step);
        }
        // the tails learn once the level and scale have settled (half the warm-up)
        if n >= self.learn_from() {
            let noise_n = self.noise_n(st);
            // the usual noise that `spread` compares with: at a quarter of its pace while a
            // value is improbable (`calm`) and while the CUSUM is beyond its tail's threshold
            // (evidence of a change building up, not to be absorbed before it is judged)
            let building = f64::from(st.noise) > super::tail::EXCESS_FROM;
            let noise_calm = if building { 0.25 * calm } else { calm };
            st.noise = to_f32(s.noise);
            let mean = f64::from(st.noise_mean);
            let baseline = self.spread.as_ref().map_or(0.003, |s| s.baseline);
            let na = noise_calm * super::warm_alpha(baseline, noise_n);
            st.noise_mean = to_f32(mean + na * (s.u - mean));
            // the residual's tail learns every value (its block ratio is robust to a few; its
            // peak takes even an alerting one, so a burst alerts once); the smoothed
            // statistics, swayed by their largest values, only the unsurprising ones, so an
            // anomaly in progress does not become their normal
            st.spike.learn(s.y[0], st.tail_n[0], &self.tails[0], true);
            let peak = st.shift.peak();
            st.shift_bursts
                .learn(s.y[1], peak, ps[1] <= alert, &self.bursts);
            st.shift
                .learn(s.y[1], st.tail_n[1], &self.tails[1], ps[1] > limit);
            st.tail_n[0] = st.tail_n[0].saturating_add(1);
            st.tail_n[1] = st.tail_n[1].saturating_add(1);
            if self.spread_learns(st) {
                // a rise beyond the alerting path's halfway mark teaches at most a few mean
                // excesses (a change in progress does not become the normal, nor does the tail
                // shrink below what the series shows)
                let usual = ps[2] > limit;
                let y = if usual {
                    s.noise
                } else {
                    let mean = st.spread.excess_mean(st.tail_n[2], &self.tails[2]);
                    s.noise
                        .min(super::tail::EXCESS_FROM + SPREAD_LEARNED_EXCESSES * mean)
                };
                st.spread.learn(y, st.tail_n[2], &self.tails[2], usual);
                st.tail_n[2] = st.tail_n[2].saturating_add(1);
            }
            if s.y[3] > 0.0 {
                st.range
                    .learn(s.y[3], st.tail_n[3], &self.tails[3], ps[3] > limit);
                st.tail_n[3] = st.tail_n[3].saturating_add(1);
            }
        }
        st.n = n.saturating_add(1);
    }

    /// The sample from which the tails and the noise statistics learn: half the warm-up.
    #[inline]
    fn learn_from(&self) -> u32 {
        (self.learning.warmup as u32 / 2).max(1)
    }

    /// The share of values that repeat their predecessor, with one repeat and one change
    /// assumed (so a young series whose values never repeated does not call its first repeat
    /// impossible), compared with [`MAX_REPEAT_RATE`].
    #[inline]
    fn repeat_rate(&self, st: &State) -> f64 {
        let seen = f64::from(st.n).min(self.learning.memory);
        (f64::from(st.repeat) * seen + 1.0) / (seen + 2.0)
    }

    /// Samples the noise statistics have seen.
    #[inline]
    fn noise_n(&self, st: &State) -> u32 {
        st.n.saturating_sub(self.learn_from())
    }

    /// Whether `spread`'s CUSUM runs and its tail learns: once its usual noise has seen a few
    /// of its own time constants.
    #[inline]
    fn spread_learns(&self, st: &State) -> bool {
        let baseline = self.spread.as_ref().map_or(0.003, |s| s.baseline);
        f64::from(self.noise_n(st)) * baseline >= 2.0
    }

    /// The series' noise unit (see the module docs).
    #[inline]
    fn unit(&self, st: &State) -> f64 {
        f64::from(st.scale)
            .max(f64::from(st.quantum))
            .max(1e-9 * st.level.abs().max(1.0))
    }

    /// The band of values the spike detector finds normal at per-sample probability `p`:
    /// `level ± y·unit`, where `y` is the spike tail's value at `p` (for alerts and plots; not
    /// on the hot path).
    pub fn band(&self, st: &State, p: f64) -> Option<(f64, f64)> {
        let half = self.half_width(st, p, false, self.unit(st))?;
        let level = st.level + f64::from(st.trend);
        Some(floored(st, level - half, level + half))
    }

    /// Half the width of the spike band at probability `p`, in the series' units: where the
    /// fitted tail reaches `p` (never inside the recent peak), or for a young series where its
    /// record rule does.
    fn half_width(&self, st: &State, p: f64, young: bool, unit: f64) -> Option<f64> {
        let peak = st.spike.peak();
        let y = if young {
            let seen = f64::from(st.tail_n[0]) + 1.0;
            peak.max(1.0) * (p * seen).powf(-1.0 / YOUTH_EXPONENT)
        } else {
            let shape: Shape = st.spike.shape(st.tail_n[0], &self.tails[0])?;
            shape.y_at(p).max(peak)
        };
        Some(y * unit)
    }
}

impl State {
    /// Samples learned.
    pub fn samples(&self) -> u32 {
        self.n
    }

    /// Forgets what `spread`'s tail learned (restored from a snapshot written before its tail
    /// learned excesses over a threshold: it learns them afresh, judging nothing until then).
    pub fn forget_spread(&mut self) {
        self.spread = Tail::default();
        self.tail_n[2] = 0;
    }
}

/// The statistics of one sample (see [`Learned::statistics`]).
struct Statistics {
    /// The level (and trend) the sample was predicted at, and its residual against it.
    expected: f64,
    r: f64,
    /// The median of the last three values.
    m: f64,
    /// `shift`'s fast average of `m`, as an offset from the base.
    shifted: f64,
    /// `spread`'s squared standardised residual (scaled to its level) and its CUSUM.
    u: f64,
    noise: f64,
    /// The slow unit, ln(|level| + slow unit), and the factor that scales the noise to this
    /// level's usual noise.
    slow_unit: f64,
    log_level: f64,
    by_level: f64,
    /// spike, shift, spread and range statistics.
    y: [f64; 4],
}

impl Judgement {
    /// No anomaly verdict (not judged), with the run's `stuck_p`.
    fn none(stuck_p: f64, repeats: bool) -> Self {
        Self {
            verdict: None,
            p: 1.0,
            stuck_p,
            repeats,
        }
    }
}

/// A band drawn for a series that has shown no level below 0 (a count, a rate, a latency)
/// starts at 0: every value in it is still normal, and no bound names a value the series has
/// never come near.
fn floored(st: &State, lower: f64, upper: f64) -> (f64, f64) {
    if st.low >= 0.0 {
        (lower.max(0.0), upper)
    } else {
        (lower, upper)
    }
}

/// The median of three values.
#[inline]
fn median3(a: f64, b: f64, c: f64) -> f64 {
    a.min(b).max(a.max(b).min(c))
}

#[cfg(test)]
mod tests;
