//! A learned tail: how likely, for this series, a statistic at least this large is.
//!
//! The learned detectors (`spike`, `shift`, `spread`, `range`; see [`super::learned`]) each
//! reduce a sample to a standardised statistic `y >= 0` (a residual in units of the series' own
//! scale).
//! How often a given `y` happens depends on the series: Gaussian noise almost never reaches 5,
//! Student-t(3) noise does it a few times a day, a sparse counter does it every time it ticks.
//! A [`Tail`] learns that from the series itself, in 16 bytes, and answers with a calibrated
//! probability `P(Y >= y)` that the engine compares with the rule's false-alarm budget.
//!
//! ## Model
//! `y` is taken as `|T|`, a Student-t variable with `ν` degrees of freedom (Gaussian as
//! `ν → ∞`) scaled so that `E|Y|` matches the series:
//!
//! ```text
//! m   = E[y]                            (EWMA, memory `memory` samples)
//! M   = E[max of y over 16 samples]     (EWMA over blocks of 16)
//! R   = M / m                           tail heaviness: 2.60 Gaussian, 3.75 t(3), 6.9 t(1.5)
//! ν   = the ν whose |T_ν| has this R    (table, interpolated)
//! P(Y >= y) = P(|T_ν| >= y · E|T_ν| / m)
//! ```
//!
//! The block-maximum ratio reads the tail from hundreds of blocks rather than from the few
//! extreme samples a series has shown: after a day of one-minute samples it tells Gaussian
//! noise (R = 2.60) from t(5) (3.15) within a few per cent. Heavier-than-t shapes (a sparse
//! counter, a two-state series) come out as small ν, i.e. cautious. For a smoothed statistic,
//! whose neighbours are alike, the block ratio reads as light-tailed whatever the marginal
//! shape: [`Heaviness::Moments`] reads `ν` from `E[y²] / E[y]²` instead.
//!
//! `spread`'s statistic, a CUSUM of the noise's log-likelihood ratio, is not t-shaped at all:
//! its tail falls exponentially (for the noise it assumes, e-fold per nat). [`Heaviness::Excess`]
//! learns it as peaks over a threshold (Pickands; SPOT in Siffer et al., KDD 2017, with the
//! shape fixed at exponential): the share `s` of samples beyond [`EXCESS_FROM`] and their mean
//! excess `e`, with a prior of a few excesses, and `P(Y >= y) = s · exp(-(y - EXCESS_FROM) /
//! e)`, `e` never below the tail's floor. (A t fitted by moments to the logarithm of a recent
//! mean of squares read Gaussian noise as anything from t(9) to Gaussian, series by series, and
//! at t(15) priced a doubled noise about ten times too likely.)
//!
//! Guards keep the extrapolation honest where the t shape does not fit:
//! - **Record guard**: a value not above the series' own recent peak (`peak`, which halves over
//!   `peak_half_life` samples) is never improbable: what the series did in the last days is
//!   normal for it, whatever the fitted shape says.
//! - **Learning margin**: while few blocks are known, `R` is raised by a factor `1 + margin /
//!   blocks`, so a young tail is judged as heavier; the margin fades as the tail is learned.
//! - **No scale yet**: a statistic that has (almost) always been 0 is not judged until its
//!   first excursion has taught it a scale.
//!
//! Cost: one comparison per sample, plus one t survival function (statrs' regularised incomplete
//! beta) for values above the peak. State: 16 bytes.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Where a [`Heaviness::Excess`] tail's excesses start, in its statistic's units.
pub const EXCESS_FROM: f64 = 0.5;

/// A [`Heaviness::Excess`] tail's prior: as if it had already seen this many excesses, of this
/// mean, at this share of samples (what Gaussian noise gives `spread`: 0.25 at 4.2 %), so a
/// tail that has seen few excesses is not sure they are small.
const EXCESS_PRIOR: (f64, f64, f64) = (5.0, 0.25, 0.05);

/// Samples per block of the block-maximum statistic.
pub const BLOCK: u32 = 16;

/// `(ν, R16(ν), E|T_ν|)`: R16 = E[max of 16 |T_ν|] / E|T_ν| (computed by numerical
/// integration; the last row is the Gaussian limit within 0.1 %).
const TABLE: [(f64, f64, f64); 17] = [
    (1.5, 6.89806, 2.044410),
    (2.0, 4.93558, std::f64::consts::SQRT_2),
    (2.5, 4.15537, 1.206029),
    (3.0, 3.75126, 1.102658),
    (3.5, 3.50840, 1.040963),
    (4.0, 3.34785, 1.000000),
    (5.0, 3.15040, 0.949017),
    (6.0, 3.03453, 0.918559),
    (8.0, 2.90536, 0.883883),
    (10.0, 2.83541, 0.864685),
    (15.0, 2.75009, 0.840757),
    (20.0, 2.71059, 0.829450),
    (30.0, 2.67304, 0.818549),
    (50.0, 2.64433, 0.810108),
    (100.0, 2.62355, 0.803932),
    (300.0, 2.61004, 0.799886),
    (1000.0, 2.60538, 0.798484),
];

/// How a tail reads the heaviness of its statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heaviness {
    /// From the ratio of the mean block maximum (16 samples) to the mean: efficient, but only
    /// for a statistic whose neighbouring samples are close to independent (a residual).
    Blocks,
    /// From the ratio of the mean square to the squared mean, `E[y²] / E[y]²`: for a smoothed
    /// statistic, whose neighbours are alike (their block maximum is close to their mean and
    /// would read as light-tailed).
    Moments,
    /// Peaks over a threshold: the share of samples beyond [`EXCESS_FROM`] and the mean
    /// excess, with an exponential tail beyond it (for a recent mean of clipped squares, whose
    /// far tail is set by its few largest terms and is exponential at most): judged by
    /// [`Tail::excess_p`], not by [`Tail::p`].
    Excess,
}

/// How a tail learns (shared by the tails of one rule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailParams {
    pub heaviness: Heaviness,
    /// Pull toward Gaussian ([`Heaviness::Blocks`]): subtracted from the ratio R.
    pub pull: f64,
    /// Lightest tail index the fit may take ([`Heaviness::Blocks`]): a series with bursts
    /// reads as very heavy-tailed, and extrapolating that (a Cauchy-like tail) would find
    /// nothing improbable; the recent peak covers its bursts instead.
    pub min_nu: f64,
    /// Memory of the mean and block-maximum mean, samples.
    pub memory: f64,
    /// Learning margin: R is raised by a factor `1 + margin / blocks`.
    pub margin: f64,
    /// Per-sample decay of the peak (`0.5^(1 / peak_half_life)`).
    pub peak_decay: f64,
    /// Floor of the mean, in the statistic's units (a series whose statistic is almost always
    /// 0, such as a sparse counter's, is otherwise judged against a scale of nothing).
    pub floor: f64,
}

/// The fitted shape: degrees of freedom and the factor from `y` to the t variable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub nu: f64,
    /// `E|T_ν| / m`: multiply `y` by this to get the t variable.
    pub to_t: f64,
}

impl Shape {
    /// `P(|T_ν| >= y · to_t)`.
    pub fn p(&self, y: f64) -> f64 {
        let t = y * self.to_t;
        if !t.is_finite() {
            return if t.is_nan() { 1.0 } else { 0.0 };
        }
        if self.nu >= 1000.0 {
            return statrs::function::erf::erfc(t * std::f64::consts::FRAC_1_SQRT_2);
        }
        match StudentsT::new(0.0, 1.0, self.nu) {
            Ok(d) => (2.0 * d.sf(t)).min(1.0),
            Err(_) => 1.0,
        }
    }

    /// The `y` at which [`Shape::p`] falls to `p` (its inverse), for bands.
    pub fn y_at(&self, p: f64) -> f64 {
        let p = p.clamp(1e-300, 1.0);
        let t = if self.nu >= 1000.0 {
            crate::detect::score_to_z(1.0 - p)
        } else {
            match StudentsT::new(0.0, 1.0, self.nu) {
                Ok(d) => d.inverse_cdf(1.0 - p / 2.0),
                Err(_) => f64::INFINITY,
            }
        };
        t / self.to_t
    }
}

/// One learned tail (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tail {
    /// E[y] ([`Heaviness::Excess`]: the share of samples beyond [`EXCESS_FROM`]).
    mean: f32,
    /// E[max of y over a block of 16] ([`Heaviness::Blocks`]), E[y²] ([`Heaviness::Moments`])
    /// or E[excess beyond [`EXCESS_FROM`]] ([`Heaviness::Excess`]).
    block_mean: f32,
    /// Running maximum of the current block ([`Heaviness::Blocks`] only).
    block_max: f32,
    /// Recent peak of y (decaying).
    peak: f32,
}

impl Tail {
    /// The fitted shape after `n` learned samples (`None` before the first full block).
    #[inline]
    pub fn shape(&self, n: u32, p: &TailParams) -> Option<Shape> {
        let blocks = n / BLOCK;
        if blocks == 0 || p.heaviness == Heaviness::Excess {
            return None;
        }
        // a statistic that has (almost) always been 0 has no scale yet: its first excursion
        // teaches it one, as a series' first change teaches it its unit
        if f64::from(self.mean) < p.floor * 1e-3 {
            return None;
        }
        // heaviness from the raw mean; the scale from the floored one
        let raw = f64::from(self.mean).max(1e-12);
        let stat = match p.heaviness {
            Heaviness::Blocks => f64::from(self.block_mean).max(0.0) / raw,
            Heaviness::Moments | Heaviness::Excess => {
                f64::from(self.block_mean).max(0.0) / (raw * raw)
            }
        };
        let stat = stat * (1.0 + p.margin / f64::from(blocks)) - p.pull;
        let mean = raw.max(p.floor);
        let nu = match p.heaviness {
            Heaviness::Blocks => nu_of(stat).max(p.min_nu),
            Heaviness::Moments | Heaviness::Excess => nu_of_moments(stat),
        };
        Some(Shape {
            nu,
            to_t: e_abs_t(nu) / mean,
        })
    }

    /// `P(Y >= y)` for this series after `n` learned samples: 1 for a value not above the
    /// recent peak or before the first block.
    #[inline]
    pub fn p(&self, y: f64, n: u32, p: &TailParams) -> f64 {
        if y <= f64::from(self.peak) {
            return 1.0;
        }
        self.shape(n, p).map_or(1.0, |s| s.p(y))
    }

    /// `P(Y >= y)` for a [`Heaviness::Excess`] tail: the share of samples beyond
    /// [`EXCESS_FROM`] times an exponential tail of their excesses; 1 for a value not above
    /// the recent peak or the threshold, or before the first block.
    #[inline]
    pub fn excess_p(&self, y: f64, n: u32, p: &TailParams) -> f64 {
        if y <= f64::from(self.peak) || y <= EXCESS_FROM || n < BLOCK {
            return 1.0;
        }
        let (share, mean) = self.excesses(n, p);
        (share * (-(y - EXCESS_FROM) / mean).exp()).min(1.0)
    }

    /// The `y` at which [`Tail::excess_p`]'s fit falls to `p` (its inverse; the threshold for
    /// a `p` above the share of excesses). Tests only: `spread` caps what it learns by its mean
    /// excess, not by a probability.
    #[cfg(test)]
    pub fn excess_y_at(&self, p: f64, n: u32, params: &TailParams) -> f64 {
        let (share, mean) = self.excesses(n, params);
        if p >= share {
            return EXCESS_FROM;
        }
        EXCESS_FROM - mean * (p / share).ln()
    }

    /// The mean excess beyond [`EXCESS_FROM`] of a [`Heaviness::Excess`] tail (as judged).
    pub fn excess_mean(&self, n: u32, p: &TailParams) -> f64 {
        self.excesses(n, p).1
    }

    /// The share of samples beyond the threshold and the mean excess, each with
    /// [`EXCESS_PRIOR`]'s samples, the mean raised by the learning margin and at least the
    /// tail's floor.
    #[inline]
    fn excesses(&self, n: u32, p: &TailParams) -> (f64, f64) {
        let (k, m0, s0) = EXCESS_PRIOR;
        let seen = (f64::from(n) + 1.0).min(p.memory);
        let count = f64::from(self.mean) * seen;
        let share = (count + k) / (seen + k / s0);
        let blocks = f64::from((n / BLOCK).max(1));
        let mean =
            (f64::from(self.block_mean) * seen + k * m0) / (count + k) * (1.0 + p.margin / blocks);
        (share, mean.max(p.floor).max(1e-12))
    }

    /// Learns `y` as the `n`-th sample (0-based). The peak rises to `y` only when `raise` (the
    /// value was not improbable), and the fit learns `y` capped at the peak: an anomaly in
    /// progress neither becomes its own normal nor hides behind its own peak, while a series
    /// whose normal range widens raises its peak one unsurprising value at a time.
    #[inline]
    pub fn learn(&mut self, y: f64, n: u32, p: &TailParams, raise: bool) {
        let y = if y.is_finite() { y.max(0.0) } else { 0.0 };
        let peak = f64::from(self.peak) * p.peak_decay;
        let peak = if raise { peak.max(y) } else { peak };
        self.peak = to_f32(peak);
        // a smoothed statistic's moments are swayed by its largest values: capped at the peak
        let y = if p.heaviness == Heaviness::Moments {
            y.min(peak)
        } else {
            y
        };
        // max(1 / (n + 1), 1 / memory), with one division
        let a = 1.0 / (f64::from(n) + 1.0).min(p.memory);
        if p.heaviness == Heaviness::Excess {
            // the share of samples beyond the threshold, and their excess per sample (the mean
            // excess is this over the share)
            let e = (y - EXCESS_FROM).max(0.0);
            let beyond = if e > 0.0 { 1.0 } else { 0.0 };
            self.mean = to_f32(f64::from(self.mean) + a * (beyond - f64::from(self.mean)));
            let m = f64::from(self.block_mean);
            self.block_mean = to_f32(m + a * (e - m));
            return;
        }
        // a single wild value moves the mean by at most a few of its own units
        let mean = f64::from(self.mean);
        let capped = if n > 0 {
            y.min(mean.max(p.floor) * 100.0)
        } else {
            y
        };
        self.mean = to_f32(mean + a * (capped - mean));
        if p.heaviness == Heaviness::Moments {
            let sq = f64::from(self.block_mean);
            self.block_mean = to_f32(sq + a * (capped * capped - sq));
            return;
        }
        let block_max = if n % BLOCK == 0 {
            capped
        } else {
            f64::from(self.block_max).max(capped)
        };
        self.block_max = to_f32(block_max);
        if n % BLOCK == BLOCK - 1 {
            let blocks = n / BLOCK;
            let ab = (1.0 / (f64::from(blocks) + 1.0)).max(f64::from(BLOCK) / p.memory);
            let bm = f64::from(self.block_mean);
            self.block_mean = to_f32(bm + ab * (block_max - bm));
        }
    }

    /// The recent peak (for tests and summaries).
    pub fn peak(&self) -> f64 {
        f64::from(self.peak)
    }
}

#[inline]
fn to_f32(x: f64) -> f32 {
    super::to_f32(x)
}

/// ν whose R16 is `r` (interpolated in the table; clamped at its ends).
fn nu_of(r: f64) -> f64 {
    if r >= TABLE[0].1 {
        return TABLE[0].0;
    }
    for w in TABLE.windows(2) {
        let ((nu0, r0, _), (nu1, r1, _)) = (w[0], w[1]);
        if r >= r1 {
            let f = (r0 - r) / (r0 - r1);
            // interpolate in 1/ν, which R follows more evenly
            return 1.0 / (1.0 / nu0 + f * (1.0 / nu1 - 1.0 / nu0));
        }
    }
    TABLE[TABLE.len() - 1].0
}

/// `E[T²] / E|T|²` of the table's row (infinite for ν <= 2).
fn moment_ratio(row: (f64, f64, f64)) -> f64 {
    let (nu, _, e) = row;
    if nu <= 2.0 {
        f64::INFINITY
    } else {
        nu / (nu - 2.0) / (e * e)
    }
}

/// ν whose `E[T²] / E|T|²` is `q` (interpolated in 1/ν; at least 2.5, the heaviest row with a
/// finite ratio, and the Gaussian limit below its π/2).
fn nu_of_moments(q: f64) -> f64 {
    let rows: Vec<(f64, f64)> = TABLE
        .iter()
        .filter(|r| r.0 > 2.0)
        .map(|&r| (r.0, moment_ratio(r)))
        .collect();
    if q >= rows[0].1 {
        return rows[0].0;
    }
    for w in rows.windows(2) {
        let ((nu0, q0), (nu1, q1)) = (w[0], w[1]);
        if q >= q1 {
            let f = (q0 - q) / (q0 - q1);
            return 1.0 / (1.0 / nu0 + f * (1.0 / nu1 - 1.0 / nu0));
        }
    }
    rows[rows.len() - 1].0
}

/// E|T_ν|, interpolated in the table the same way.
fn e_abs_t(nu: f64) -> f64 {
    if nu <= TABLE[0].0 {
        return TABLE[0].2;
    }
    for w in TABLE.windows(2) {
        let ((nu0, _, e0), (nu1, _, e1)) = (w[0], w[1]);
        if nu <= nu1 {
            let f = (1.0 / nu - 1.0 / nu0) / (1.0 / nu1 - 1.0 / nu0);
            return e0 + f * (e1 - e0);
        }
    }
    TABLE[TABLE.len() - 1].2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> TailParams {
        TailParams {
            heaviness: Heaviness::Blocks,
            pull: 0.0,
            min_nu: 1.5,
            memory: 3000.0,
            margin: 0.0,
            peak_decay: 0.5f64.powf(1.0 / 1000.0),
            floor: 0.0,
        }
    }

    /// Deterministic standard normal and t(3) draws (a small xorshift and Box-Muller).
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
        fn t3(&mut self) -> f64 {
            let z = self.normal();
            let chi: f64 = (0..3).map(|_| self.normal().powi(2)).sum();
            z / (chi / 3.0).sqrt()
        }
    }

    #[test]
    fn an_excess_tail_learns_its_share_and_mean_excess_and_inverts() {
        let p = TailParams {
            heaviness: Heaviness::Excess,
            ..params()
        };
        // beyond the threshold in 10 % of samples, by an exponential excess of mean 0.2
        let mut tail = Tail::default();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for n in 0..20_000u32 {
            let y = if rng.uniform() < 0.1 {
                EXCESS_FROM - 0.2 * rng.uniform().ln()
            } else {
                0.3 * rng.uniform()
            };
            tail.learn(y, n, &p, true);
        }
        tail.peak = 0.0;
        let y = EXCESS_FROM + 0.2 * 10.0;
        let want = 0.1 * (-10.0f64).exp();
        let got = tail.excess_p(y, 20_000, &p);
        assert!((got / want).ln().abs() < 0.3, "{got} vs {want}");
        assert!((tail.excess_y_at(got, 20_000, &p) - y).abs() < 1e-9);
        // a tail that has seen no excess yet is not sure there are none
        let mut young = Tail::default();
        for n in 0..100u32 {
            young.learn(0.1, n, &p, true);
        }
        let p15 = young.excess_p(1.5, 100, &p);
        assert!(p15 > 1e-4 && p15 < 1e-2, "{p15}");
    }

    #[test]
    fn the_table_is_monotone_and_inverts() {
        for w in TABLE.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 > w[1].1 && w[0].2 > w[1].2);
        }
        for &(nu, r, e) in &TABLE {
            assert!((nu_of(r) - nu).abs() < 1e-6 * nu, "{nu}");
            assert!((e_abs_t(nu) - e).abs() < 1e-9);
        }
        assert_eq!(nu_of(100.0), 1.5);
        assert_eq!(nu_of(1.0), 1000.0);
    }

    #[test]
    fn learns_a_gaussian_and_a_heavy_tail_apart() {
        let p = params();
        let (mut gauss, mut heavy) = (Tail::default(), Tail::default());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for n in 0..20_000u32 {
            gauss.learn(rng.normal().abs(), n, &p, true);
            heavy.learn(rng.t3().abs(), n, &p, true);
        }
        let g = gauss.shape(20_000, &p).unwrap();
        let h = heavy.shape(20_000, &p).unwrap();
        assert!(g.nu >= 30.0, "gaussian read as t({})", g.nu);
        assert!((2.0..=5.0).contains(&h.nu), "t(3) read as t({})", h.nu);
        // calibrated: a Gaussian 5 sigma is about 5.7e-7, a t(3) 5 is about 0.015
        let pg = g.p(5.0);
        assert!((1e-7..3e-6).contains(&pg), "{pg}");
        let ph = h.p(5.0);
        assert!(ph > 1e-3, "{ph}");
        // inverse
        let y = g.y_at(1e-6);
        assert!((g.p(y) - 1e-6).abs() < 1e-8, "{y}");
    }

    #[test]
    fn a_value_within_the_recent_peak_is_never_improbable() {
        let p = params();
        let mut t = Tail::default();
        for n in 0..200u32 {
            t.learn(if n == 150 { 40.0 } else { 1.0 }, n, &p, true);
        }
        // 40 has decayed to about 38.6 over 50 samples
        assert_eq!(t.p(38.0, 200, &p), 1.0);
        assert!(t.p(400.0, 200, &p) < 1e-3);
    }

    #[test]
    fn a_young_tail_is_cautious() {
        let mut p = params();
        p.margin = 1.0;
        let mut t = Tail::default();
        let mut rng = Rng(7);
        for n in 0..64u32 {
            t.learn(rng.normal().abs(), n, &p, true);
        }
        assert!(t.shape(64, &p).unwrap().nu < 5.0);
        for n in 64..20_000u32 {
            t.learn(rng.normal().abs(), n, &p, true);
        }
        assert!(t.shape(20_000, &p).unwrap().nu > 10.0);
    }
}
