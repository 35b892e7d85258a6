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

pub mod ewma;
pub mod level_shift;
pub mod likelihood;
pub mod mad;
pub mod novelty;
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

/// Smoothing factor for the `n`-th update of an exponentially weighted statistic: `1/(n+1)`
/// (a plain running mean and variance) until that falls below `alpha`. Starting with equal
/// weights removes the start-up bias of a zero-initialised variance, which would otherwise
/// inflate every z-score right after warm-up.
#[inline]
pub(crate) fn warm_alpha(alpha: f64, n: u32) -> f64 {
    alpha.max(1.0 / (f64::from(n) + 1.0))
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
}

/// Per-series detector state: the shared window plus the recursive detectors' state.
/// Fixed size (see `SeriesState` in the engine for the whole budget).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct DetectorState {
    pub window: Window,
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
    }

    /// Scores `x` against the series' history, then learns `x`.
    ///
    /// The statistical detectors (zscore, mad, ewma, level_shift) give a raw verdict: the
    /// highest-scoring one (ties go to the earlier in that order). With `likelihood`, its score
    /// is replaced by the likelihood of the recent raw scores (see [`likelihood`]). The absolute
    /// detectors (threshold, novelty) are not post-processed. The result is the highest-scoring
    /// verdict of both groups, or `None` while every enabled detector is warming up.
    #[inline]
    pub fn evaluate(
        &self,
        lk: Option<&likelihood::Params>,
        st: &mut DetectorState,
        x: f64,
        z_band: f64,
    ) -> Option<(Verdict, DetectorKind)> {
        let mut stat: Option<(Verdict, DetectorKind)> = None;
        let consider = |best: &mut Option<(Verdict, DetectorKind)>, v: Option<Verdict>, kind| {
            if let Some(v) = v {
                if best.is_none_or(|(b, _)| v.score > b.score) {
                    *best = Some((v, kind));
                }
            }
        };
        if let Some(p) = &self.zscore {
            consider(
                &mut stat,
                p.score(&st.window, x, z_band),
                DetectorKind::ZScore,
            );
        }
        if let Some(p) = &self.mad {
            consider(&mut stat, p.score(&st.window, x, z_band), DetectorKind::Mad);
        }
        if let Some(p) = &self.ewma {
            consider(
                &mut stat,
                p.score_and_learn(&mut st.ewma, st.n, x, z_band),
                DetectorKind::Ewma,
            );
        }
        if let Some(p) = &self.level_shift {
            consider(
                &mut stat,
                p.score_and_learn(&mut st.level_shift, st.n, x, z_band),
                DetectorKind::LevelShift,
            );
        }
        if let Some(lk) = lk {
            let raw = stat.map_or(0.0, |(v, _)| v.score);
            let score = lk.update(&mut st.likelihood, st.n, raw);
            if let Some((v, _)) = &mut stat {
                v.score = score;
            }
        }
        let mut best = stat;
        if let Some(p) = &self.threshold {
            consider(&mut best, p.score(x), DetectorKind::Threshold);
        }
        if let Some(p) = &self.novelty {
            consider(
                &mut best,
                p.score_and_learn(&mut st.novelty, st.n, x),
                DetectorKind::Novelty,
            );
        }
        if self.zscore.is_some() || self.mad.is_some() {
            st.window.push(x);
        }
        st.n = st.n.saturating_add(1);
        best
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
        let mut st = DetectorState::default();
        let z = score_to_z(0.9999);
        let mut first_verdict = None;
        for i in 0..40 {
            let v = set.evaluate(None, &mut st, 10.0 + (i % 3) as f64 * 0.1, z);
            if v.is_some() && first_verdict.is_none() {
                first_verdict = Some(i);
            }
        }
        assert!(first_verdict.unwrap() >= 8, "no verdict during warm-up");
        let (v, _) = set.evaluate(None, &mut st, 100.0, z).unwrap();
        assert!(v.score > 0.9999, "{v:?}");
        assert!(v.lower < 10.0 && v.upper > 10.2 && v.upper < 100.0, "{v:?}");
    }
}
