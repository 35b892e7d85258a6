//! Anomaly detectors and their ensemble.
//!
//! Each detector is a small module: a parameter struct (read from the model file) and, where it
//! needs one, a fixed-size per-series state. Every detector scores a value *before* learning from
//! it and returns a [`Verdict`]: a score in [0, 1] plus the expected value and the band it
//! considers normal. During warm-up a detector returns no verdict.
//!
//! Scores of the statistical detectors are tail probabilities: a deviation of `z` standard
//! deviations scores `erf(|z| / sqrt 2)` = P(|N(0,1)| < |z|), so 0.99 is |z| = 2.58 and 0.9999 is
//! |z| = 3.89. The band reported with a verdict is the range of values that would score below the
//! rule's `threshold`.

pub mod bursts;
pub mod context;
pub mod ewma;
pub mod learned;
pub mod level_shift;
pub mod likelihood;
pub mod mad;
pub mod novelty;
pub mod tail;
pub mod threshold;
pub mod window;
pub mod zscore;

use serde::Deserialize;

pub use window::{Window, WINDOW_CAP};

/// One detector's judgement of one value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// How far the value is from `expected`, in standard deviations: |z| for zscore, mad and
    /// ewma; the cumulative sum for level_shift's `cusum`, the smoothed clipped deviation for its
    /// `robust`; the score itself for the others. Not bounded by 1 like the score (capped at
    /// 1e6).
    pub deviation: f64,
    /// The value the detector expected.
    pub expected: f64,
    /// Lower and upper edge of the normal band.
    pub lower: f64,
    pub upper: f64,
}

/// Which detector produced a verdict (for summaries and plots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectorKind {
    Threshold,
    ZScore,
    Mad,
    Ewma,
    LevelShift,
    Novelty,
    Context,
    Spike,
    Shift,
    Spread,
    Range,
}

impl DetectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Threshold => "threshold",
            Self::ZScore => "zscore",
            Self::Mad => "mad",
            Self::Ewma => "ewma",
            Self::LevelShift => "level_shift",
            Self::Novelty => "novelty",
            Self::Context => "context",
            Self::Spike => "spike",
            Self::Shift => "shift",
            Self::Spread => "spread",
            Self::Range => "range",
        }
    }
}

/// Converts a deviation in standard deviations to a score: P(|N(0,1)| < |z|).
#[inline]
pub fn z_to_score(z: f64) -> f64 {
    if !z.is_finite() {
        return if z.is_nan() { 0.0 } else { 1.0 };
    }
    statrs::function::erf::erf(z.abs() * std::f64::consts::FRAC_1_SQRT_2)
}

/// The |z| at which [`z_to_score`] reaches `score` (its inverse), used to draw bands.
pub fn score_to_z(score: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    let p = (1.0 + score.clamp(0.0, 0.999_999_999_999)) / 2.0;
    Normal::standard().inverse_cdf(p)
}

/// Spread floor shared by the statistical detectors: a perfectly flat history would otherwise
/// make any change an infinite deviation. The floor is `rel_floor * |center|`, and never below
/// `1e-9`.
#[inline]
pub(crate) fn spread_floor(center: f64, rel_floor: f64) -> f64 {
    (rel_floor * center.abs()).max(1e-9)
}

/// Stores a statistic as `f32`, saturating at `f32::MAX` instead of becoming infinite (a value
/// near `f64::MAX` would otherwise poison a variance for good).
#[inline]
pub(crate) fn to_f32(x: f64) -> f32 {
    x.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32
}

/// Deviations reported in [`Verdict::deviation`] are capped here, so a likelihood fed with them
/// keeps finite statistics.
pub(crate) const MAX_DEVIATION: f64 = 1e6;

/// Smoothing factor for the `n`-th update of an exponentially weighted statistic: `1/(n+1)`
/// (a plain running mean and variance) until that falls below `alpha`. Starting with equal
/// weights removes the start-up bias of a zero-initialised variance, which would otherwise
/// inflate every z-score right after warm-up.
#[inline]
pub(crate) fn warm_alpha(alpha: f64, n: u32) -> f64 {
    let n1 = f64::from(n) + 1.0;
    // a mature series (1 / (n + 1) well below alpha): no division, the same value
    if alpha * n1 >= 2.0 {
        return alpha;
    }
    alpha.max(1.0 / n1)
}

/// Detector configuration of one rule (`[rule.detectors]`); absent tables are disabled.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSet {
    pub threshold: Option<threshold::Params>,
    pub zscore: Option<zscore::Params>,
    pub mad: Option<mad::Params>,
    pub ewma: Option<ewma::Params>,
    pub level_shift: Option<level_shift::Params>,
    pub novelty: Option<novelty::Params>,
    pub context: Option<context::Params>,
    pub spike: Option<learned::Spike>,
    pub shift: Option<learned::Shift>,
    pub spread: Option<learned::Spread>,
    pub range: Option<learned::Range>,
    pub stuck: Option<learned::Stuck>,
}

/// How a rule turns its detectors' verdicts into one score (`[rule.ensemble]`). Without it, the
/// highest verdict wins and every sample's score is reported as it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ensemble {
    /// Weight of the vote: the likelihood-calibrated detectors (the statistical group and
    /// `context`) are averaged and scaled by this, so one of them alone cannot reach a score the
    /// two reach together. The absolute detectors (threshold, novelty) are not averaged.
    #[serde(default = "default_vote", deserialize_with = "crate::check::score")]
    pub vote: f64,
}

fn default_vote() -> f64 {
    1.0
}

/// Per-series memory that two detector families would otherwise each need: the rolling window
/// of `zscore` and `mad`, or the sequence set of `context`. A rule uses one or the other (the
/// model refuses both), which keeps a series' state at its fixed size.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Memory {
    Window(Window),
    Context(context::State),
}

impl Default for Memory {
    fn default() -> Self {
        Self::Window(Window::default())
    }
}

impl Memory {
    /// The rolling window. `evaluate` has already given the series the memory its rule needs;
    /// a mismatch here (not reachable through it) starts an empty window.
    #[inline]
    pub fn window(&mut self) -> &mut Window {
        if !matches!(self, Self::Window(_)) {
            *self = Self::Window(Window::default());
        }
        match self {
            Self::Window(w) => w,
            Self::Context(_) => unreachable!("just replaced"),
        }
    }

    /// The context state (started empty on a mismatch, as for [`Memory::window`]).
    #[inline]
    pub fn context(&mut self) -> &mut context::State {
        if !matches!(self, Self::Context(_)) {
            *self = Self::Context(context::State::default());
        }
        match self {
            Self::Context(c) => c,
            Self::Window(_) => unreachable!("just replaced"),
        }
    }
}

/// Per-series detector state: the classic detectors' or the learned ones' (a rule uses one
/// family). Fixed size (see `SeriesState` in the engine for the whole budget).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum DetectorState {
    Classic(ClassicState),
    Learned(learned::State),
}

impl Default for DetectorState {
    fn default() -> Self {
        Self::Classic(ClassicState::default())
    }
}

impl DetectorState {
    /// The classic detectors' state; a series that held the learned ones' starts afresh.
    #[inline]
    pub fn classic(&mut self) -> &mut ClassicState {
        if !matches!(self, Self::Classic(_)) {
            *self = Self::Classic(ClassicState::default());
        }
        match self {
            Self::Classic(c) => c,
            Self::Learned(_) => unreachable!("just replaced"),
        }
    }

    /// The learned detectors' state; a series that held the classic ones' starts afresh.
    #[inline]
    pub fn learned(&mut self) -> &mut learned::State {
        if !matches!(self, Self::Learned(_)) {
            *self = Self::Learned(learned::State::default());
        }
        match self {
            Self::Learned(l) => l,
            Self::Classic(_) => unreachable!("just replaced"),
        }
    }

    /// Samples learned so far.
    pub fn samples(&self) -> u32 {
        match self {
            Self::Classic(c) => c.n,
            Self::Learned(l) => l.samples(),
        }
    }
}

/// The classic detectors' per-series state: the shared window plus the recursive detectors'
/// state.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ClassicState {
    pub memory: Memory,
    pub ewma: ewma::State,
    pub level_shift: level_shift::State,
    pub novelty: novelty::State,
    pub likelihood: likelihood::State,
    /// Samples learned so far (saturating).
    pub n: u32,
}

impl DetectorSet {
    pub fn is_empty(&self) -> bool {
        self.threshold.is_none()
            && self.zscore.is_none()
            && self.mad.is_none()
            && self.ewma.is_none()
            && self.level_shift.is_none()
            && self.novelty.is_none()
            && self.context.is_none()
            && !self.has_learned()
    }

    /// Whether any learned detector (spike, shift, spread, range, stuck) is enabled.
    pub fn has_learned(&self) -> bool {
        self.spike.is_some()
            || self.shift.is_some()
            || self.spread.is_some()
            || self.range.is_some()
            || self.stuck.is_some()
    }

    /// The classic detectors this set enables besides `threshold` (for validation messages).
    pub fn classic_names(&self) -> Vec<&'static str> {
        [
            (self.zscore.is_some(), "zscore"),
            (self.mad.is_some(), "mad"),
            (self.ewma.is_some(), "ewma"),
            (self.level_shift.is_some(), "level_shift"),
            (self.novelty.is_some(), "novelty"),
            (self.context.is_some(), "context"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// Scores `x` against the series' history, then learns `x`.
    ///
    /// The statistical detectors (zscore, mad, ewma, level_shift with `cusum`) give a raw verdict: the
    /// highest-scoring one (ties go to the earlier in that order). With `likelihood`, its score
    /// is replaced by the likelihood of the recent raw scores (or deviations, see
    /// [`likelihood::Input`]). `context` is calibrated by its own likelihood. These two
    /// calibrated scores are combined by the highest (no ensemble) or by the ensemble's vote:
    /// `vote × (sum of their scores) / (number enabled)`. The absolute detectors (threshold,
    /// novelty, level_shift with `robust`) are not post-processed. The result is the highest-scoring verdict of both
    /// groups, or `None` while every enabled detector is warming up.
    #[inline]
    pub fn evaluate(
        &self,
        lk: Option<&likelihood::Params>,
        ensemble: Option<&Ensemble>,
        st: &mut ClassicState,
        x: f64,
        ts: i64,
        z_band: f64,
    ) -> Option<(Verdict, DetectorKind)> {
        self.reset_on_rule_change(st);
        let robust_shift = self
            .level_shift
            .as_ref()
            .filter(|p| p.method == level_shift::Method::Robust);
        // novelty's noise margin reads the robust spread before this sample moves it
        let noise_sd = robust_shift.map(|p| p.spread(&st.level_shift));
        let mut stat: Option<(Verdict, DetectorKind)> = None;
        if let Some(p) = &self.zscore {
            consider(
                &mut stat,
                p.score(st.memory.window(), x, z_band),
                DetectorKind::ZScore,
            );
        }
        if let Some(p) = &self.mad {
            consider(
                &mut stat,
                p.score(st.memory.window(), x, z_band),
                DetectorKind::Mad,
            );
        }
        if let Some(p) = &self.ewma {
            consider(
                &mut stat,
                p.score_and_learn(&mut st.ewma, st.n, x, z_band),
                DetectorKind::Ewma,
            );
        }
        if let Some(p) = &self.level_shift {
            if robust_shift.is_none() {
                consider(
                    &mut stat,
                    p.score_and_learn(&mut st.level_shift, st.n, x, z_band),
                    DetectorKind::LevelShift,
                );
            }
        }
        if let Some(lk) = lk {
            let raw = stat.map_or(0.0, |(v, _)| match lk.input {
                likelihood::Input::Score => v.score,
                likelihood::Input::Deviation => v.deviation,
            });
            let score = lk.update(&mut st.likelihood, st.n, raw);
            if let Some((v, _)) = &mut stat {
                v.score = score;
            }
        }
        let context = self.context.as_ref().and_then(|p| {
            let score = p.score_and_learn(st.memory.context(), st.n, x, ts)?;
            let v = Verdict {
                score,
                deviation: score,
                expected: x,
                lower: x,
                upper: x,
            };
            Some((v, DetectorKind::Context))
        });
        let mut best = self.combine(ensemble, stat, context);
        if let Some(p) = &self.threshold {
            consider(&mut best, p.score(x), DetectorKind::Threshold);
        }
        if let Some(p) = &self.novelty {
            consider(
                &mut best,
                p.score_and_learn(&mut st.novelty, st.n, x, noise_sd),
                DetectorKind::Novelty,
            );
        }
        if let Some(p) = robust_shift {
            consider(
                &mut best,
                p.score_and_learn(&mut st.level_shift, st.n, x, z_band),
                DetectorKind::LevelShift,
            );
        }
        if self.zscore.is_some() || self.mad.is_some() {
            st.memory.window().push(x);
        }
        st.n = st.n.saturating_add(1);
        best
    }

    /// A series whose rule changed between the window and the context detector (a model
    /// reload, a restored snapshot) starts learning afresh: half-reset state would leave the
    /// context's bands unlearned for good.
    #[inline]
    fn reset_on_rule_change(&self, st: &mut ClassicState) {
        let wants_context = self.context.is_some();
        let wants_window = self.zscore.is_some() || self.mad.is_some();
        let has_context = matches!(st.memory, Memory::Context(_));
        if (wants_context && !has_context) || (wants_window && has_context) {
            let memory = if wants_context {
                Memory::Context(context::State::default())
            } else {
                Memory::default()
            };
            *st = ClassicState {
                memory,
                ..ClassicState::default()
            };
        }
    }

    /// The statistical verdict and the context's, combined by the highest or by the
    /// ensemble's vote (see [`DetectorSet::evaluate`]).
    #[inline]
    fn combine(
        &self,
        ensemble: Option<&Ensemble>,
        stat: Option<(Verdict, DetectorKind)>,
        context: Option<(Verdict, DetectorKind)>,
    ) -> Option<(Verdict, DetectorKind)> {
        match ensemble {
            None => {
                let mut best = stat;
                consider(&mut best, context.map(|(v, _)| v), DetectorKind::Context);
                best
            }
            Some(e) => {
                let enabled =
                    usize::from(self.has_statistical()) + usize::from(self.context.is_some());
                let sum =
                    stat.map_or(0.0, |(v, _)| v.score) + context.map_or(0.0, |(v, _)| v.score);
                // the vote is named after its louder voter, and carries the statistical
                // verdict's expectation and band when there is one (context has none)
                let kind = match (stat, context) {
                    (Some(s), Some(c)) if c.0.score > s.0.score => c.1,
                    (Some(s), _) => s.1,
                    (None, c) => c.map_or(DetectorKind::Context, |c| c.1),
                };
                stat.or(context).map(|(mut v, _)| {
                    v.score = e.vote * sum / enabled.max(1) as f64;
                    (v, kind)
                })
            }
        }
    }

    /// Whether any statistical detector (zscore, mad, ewma, level_shift with `cusum`) is
    /// enabled.
    pub fn has_statistical(&self) -> bool {
        self.zscore.is_some()
            || self.mad.is_some()
            || self.ewma.is_some()
            || self
                .level_shift
                .as_ref()
                .is_some_and(|p| p.method == level_shift::Method::Cusum)
    }
}

/// Keeps in `best` the higher-scoring of it and `v` (ties keep `best`).
#[inline]
fn consider(best: &mut Option<(Verdict, DetectorKind)>, v: Option<Verdict>, kind: DetectorKind) {
    if let Some(v) = v {
        if best.is_none_or(|(b, _)| v.score > b.score) {
            *best = Some((v, kind));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_mapping_is_a_two_sided_tail_probability() {
        assert!((z_to_score(0.0)).abs() < 1e-12);
        assert!((z_to_score(2.575_829) - 0.99).abs() < 1e-6);
        assert!((z_to_score(-2.575_829) - 0.99).abs() < 1e-6);
        assert_eq!(z_to_score(f64::INFINITY), 1.0);
        assert_eq!(z_to_score(f64::NAN), 0.0);
        for s in [0.5, 0.9, 0.99, 0.9999] {
            assert!((z_to_score(score_to_z(s)) - s).abs() < 1e-9, "{s}");
        }
    }

    #[test]
    fn ensemble_reports_the_strongest_detector_and_waits_for_warmup() {
        let set: DetectorSet = toml::from_str("[mad]\n[ewma]\n").unwrap();
        let mut st = ClassicState::default();
        let z = score_to_z(0.9999);
        let mut first_verdict = None;
        for i in 0..40 {
            let v = set.evaluate(None, None, &mut st, 10.0 + (i % 3) as f64 * 0.1, 0, z);
            if v.is_some() && first_verdict.is_none() {
                first_verdict = Some(i);
            }
        }
        assert!(first_verdict.unwrap() >= 8, "no verdict during warm-up");
        let (v, _) = set.evaluate(None, None, &mut st, 100.0, 0, z).unwrap();
        assert!(v.score > 0.9999, "{v:?}");
        assert!(v.lower < 10.0 && v.upper > 10.2 && v.upper < 100.0, "{v:?}");
    }
}
