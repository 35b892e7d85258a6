//! Static thresholds: a value above `above` or below `below` scores 1, anything else 0.
//!
//! Catches: known hard limits (disk > 90 %, queue length > 10k). No warm-up, no state.
//! Cost: two comparisons per sample; 0 bytes of state.

use serde::Deserialize;

use super::Verdict;
use crate::check;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Values strictly above this are anomalous.
    #[serde(default, deserialize_with = "check::opt_finite")]
    pub above: Option<f64>,
    /// Values strictly below this are anomalous.
    #[serde(default, deserialize_with = "check::opt_finite")]
    pub below: Option<f64>,
}

impl Params {
    #[inline]
    pub fn score(&self, x: f64) -> Option<Verdict> {
        let upper = self.above.unwrap_or(f64::INFINITY);
        let lower = self.below.unwrap_or(f64::NEG_INFINITY);
        let out = x > upper || x < lower;
        let expected = x.clamp(lower, upper);
        Some(Verdict {
            score: if out { 1.0 } else { 0.0 },
            deviation: if out { 1.0 } else { 0.0 },
            expected,
            lower,
            upper,
        })
    }

    /// Model validation: at least one bound, and `below` < `above`.
    pub fn validate(&self) -> Result<(), check::Invalid> {
        match (self.below, self.above) {
            (None, None) => Err("`threshold` needs `above`, `below` or both".into()),
            (Some(b), Some(a)) if b >= a => {
                Err(format!("`below` ({b}) must be less than `above` ({a})").into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_outside_bounds_only() {
        let p = Params {
            above: Some(90.0),
            below: Some(10.0),
        };
        assert_eq!(p.score(50.0).unwrap().score, 0.0);
        assert_eq!(p.score(90.0).unwrap().score, 0.0);
        assert_eq!(p.score(90.5).unwrap().score, 1.0);
        assert_eq!(p.score(9.0).unwrap().score, 1.0);
        assert_eq!(p.score(95.0).unwrap().expected, 90.0);
        let only_above = Params {
            above: Some(1.0),
            below: None,
        };
        assert_eq!(only_above.score(-1e9).unwrap().score, 0.0);
        assert!(Params {
            above: None,
            below: None
        }
        .validate()
        .is_err());
        assert!(Params {
            above: Some(1.0),
            below: Some(2.0)
        }
        .validate()
        .is_err());
    }
}
