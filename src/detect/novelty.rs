//! Novelty ("spatial" anomaly): a value outside everything the series has shown so far.
//!
//! Keeps the smallest and largest value seen. After `warmup` samples, a value more than
//! `max(tolerance, sampling / n) × (max - min)` beyond either edge (n: samples seen) scores 1 (and widens the range, so one new level
//! is reported once, not on every sample). Inside the range it scores 0. With `ramp`, the score
//! is graded by how far beyond the edge the value lands: `0.5 + 0.5 × min(1, e / (ramp × (max -
//! min)))` for an excess `e > 0`, so a value just past the edge scores 0.5 and one a `ramp`
//! share of the range past it scores 1 (a first value beyond a range of zero width scores 1).
//!
//! Catches: a series leaving its historical range for the first time (a new peak, a drop to a
//! level never seen), regardless of how noisy it is within the range. Misses: anything inside
//! the range. Cost per sample: two comparisons; state: 8 bytes (min and max as f32).

use serde::Deserialize;

use super::Verdict;
use crate::check;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Margin beyond the seen range, as a fraction of the range (>= 0).
    #[serde(
        default = "default_tolerance",
        deserialize_with = "check::non_negative"
    )]
    pub tolerance: f64,
    /// Samples before the first verdict (>= 2).
    #[serde(default = "default_warmup", deserialize_with = "check::warmup")]
    pub warmup: usize,
    /// Sampling margin: the margin is at least `sampling / n` of the range after `n` samples
    /// (>= 0; 0 turns it off). n values drawn from a fixed range leave gaps of about range / n
    /// at its edges, so a series still filling out its own range is not novel.
    #[serde(default, deserialize_with = "check::non_negative")]
    pub sampling: f64,
    /// Noise margin: an excess of at most `noise` standard deviations (the robust spread of the
    /// rule's `level_shift` with `method = "robust"`, which this requires) scores half: a value
    /// just past the edge by less than the series' own noise is weak evidence. Off if unset.
    #[serde(default, deserialize_with = "check::positive_opt")]
    pub noise: Option<f64>,
    /// Grade the score by the excess over the edge (a share of the range, > 0); binary if unset.
    #[serde(default, deserialize_with = "check::positive_opt")]
    pub ramp: Option<f64>,
}

fn default_tolerance() -> f64 {
    0.05
}
fn default_warmup() -> usize {
    100
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub lo: f32,
    pub hi: f32,
}

impl Params {
    /// `n` is the number of samples this series has already learned.
    #[inline]
    /// `noise_sd`: the spread for the `noise` margin (ignored when `noise` is unset).
    pub fn score_and_learn(
        &self,
        st: &mut State,
        n: u32,
        x: f64,
        noise_sd: Option<f64>,
    ) -> Option<Verdict> {
        let x32 = x.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32;
        if n == 0 {
            *st = State { lo: x32, hi: x32 };
            return None;
        }
        let (lo, hi) = (f64::from(st.lo), f64::from(st.hi));
        let margin = self.tolerance.max(self.sampling / f64::from(n)) * (hi - lo);
        let (lower, upper) = (lo - margin, hi + margin);
        st.lo = st.lo.min(x32);
        st.hi = st.hi.max(x32);
        // compared at the stored precision, so a repeat of the extreme is not "beyond" it
        let xr = f64::from(x32);
        let excess = (xr - upper).max(lower - xr);
        let mut score = match self.ramp {
            _ if excess <= 0.0 => 0.0,
            None => 1.0,
            Some(ramp) if hi > lo => 0.5 + 0.5 * (excess / (ramp * (hi - lo))).min(1.0),
            Some(_) => 1.0,
        };
        if let (Some(k), Some(sd)) = (self.noise, noise_sd) {
            if excess <= k * sd {
                score *= 0.5;
            }
        }
        ((n as usize) >= self.warmup).then(|| Verdict {
            score,
            deviation: score,
            expected: x.clamp(lo, hi),
            lower,
            upper,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_a_new_range_once() {
        let p: Params = toml::from_str("warmup = 10").unwrap();
        let mut st = State::default();
        for i in 0..50u32 {
            let v = p.score_and_learn(&mut st, i, 10.0 + f64::from(i % 10), None);
            assert!(v.is_none_or(|v| v.score == 0.0), "inside the range at {i}");
        }
        // range 10..19, margin 0.45
        assert_eq!(
            p.score_and_learn(&mut st, 50, 19.4, None).unwrap().score,
            0.0
        );
        assert_eq!(
            p.score_and_learn(&mut st, 51, 25.0, None).unwrap().score,
            1.0
        );
        assert_eq!(
            p.score_and_learn(&mut st, 52, 25.0, None).unwrap().score,
            0.0,
            "the new level is now known"
        );
        assert_eq!(
            p.score_and_learn(&mut st, 53, 5.0, None).unwrap().score,
            1.0
        );
    }

    #[test]
    fn an_excess_within_the_noise_scores_half() {
        let p: Params =
            toml::from_str("warmup = 10\ntolerance = 0\nramp = 0.1\nnoise = 0.25").unwrap();
        let mut st = State::default();
        for i in 0..20u32 {
            p.score_and_learn(&mut st, i, f64::from(i % 11), Some(1.0)); // range 0..10
        }
        // 0.2 beyond: within 0.25 sd → half of 0.5 + 0.5 × 0.2
        let v = p.score_and_learn(&mut st, 20, 10.2, Some(1.0)).unwrap();
        assert!((v.score - 0.3).abs() < 1e-6, "{v:?}");
        let v = p.score_and_learn(&mut st, 21, 11.0, Some(1.0)).unwrap();
        assert!((v.score - 0.5 - 0.5 * 0.8 / 1.02).abs() < 1e-6, "{v:?}");
    }

    #[test]
    fn ramp_grades_the_excess() {
        let p: Params = toml::from_str("warmup = 10\ntolerance = 0\nramp = 0.1").unwrap();
        let mut st = State::default();
        for i in 0..20u32 {
            p.score_and_learn(&mut st, i, f64::from(i % 11), None); // range 0..10
        }
        let s = |st: &mut State, x| p.score_and_learn(st, 20, x, None).unwrap().score;
        assert_eq!(s(&mut st, 10.0), 0.0, "on the edge");
        assert!(
            (s(&mut st, 10.5) - 0.75).abs() < 1e-9,
            "half a ramp (1.0) beyond"
        );
        assert_eq!(s(&mut st, 20.0), 1.0, "far beyond");
        assert!(toml::from_str::<Params>("ramp = 0").is_err());
    }
}
