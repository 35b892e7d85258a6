//! Novelty ("spatial" anomaly): a value outside everything the series has shown so far.
//!
//! Keeps the smallest and largest value seen. After `warmup` samples, a value more than
//! `tolerance × (max - min)` beyond either edge scores 1 (and widens the range, so one new level
//! is reported once, not on every sample). Inside the range it scores 0.
//!
//! Catches: a series leaving its historical range for the first time (a new peak, a drop to a
//! level never seen), regardless of how noisy it is within the range. Misses: anything inside
//! the range. Cost per sample: two comparisons; state: 8 bytes (min and max as f32).

use serde::Deserialize;

use super::Verdict;
use crate::model::check;

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
    pub fn score_and_learn(&self, st: &mut State, n: u32, x: f64) -> Option<Verdict> {
        let x32 = x.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32;
        if n == 0 {
            *st = State { lo: x32, hi: x32 };
            return None;
        }
        let (lo, hi) = (f64::from(st.lo), f64::from(st.hi));
        let margin = self.tolerance * (hi - lo);
        let (lower, upper) = (lo - margin, hi + margin);
        st.lo = st.lo.min(x32);
        st.hi = st.hi.max(x32);
        ((n as usize) >= self.warmup).then(|| Verdict {
            score: if x > upper || x < lower { 1.0 } else { 0.0 },
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
            let v = p.score_and_learn(&mut st, i, 10.0 + f64::from(i % 10));
            assert!(v.is_none_or(|v| v.score == 0.0), "inside the range at {i}");
        }
        // range 10..19, margin 0.45
        assert_eq!(p.score_and_learn(&mut st, 50, 19.4).unwrap().score, 0.0);
        assert_eq!(p.score_and_learn(&mut st, 51, 25.0).unwrap().score, 1.0);
        assert_eq!(
            p.score_and_learn(&mut st, 52, 25.0).unwrap().score,
            0.0,
            "the new level is now known"
        );
        assert_eq!(p.score_and_learn(&mut st, 53, 5.0).unwrap().score, 1.0);
    }
}
