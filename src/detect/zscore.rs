//! Rolling mean / standard deviation z-score over the newest `window` values.
//!
//! Catches: spikes and dips on series whose noise is roughly Gaussian. Sensitive to outliers in
//! its own window (one spike inflates the deviation for `window` samples); `mad` is the robust
//! sibling. Cost per sample: one pass over the window (≤ 16 values); state: the shared window
//! only (82 bytes, shared with `mad`).

use serde::Deserialize;

use super::{spread_floor, z_to_score, Verdict, Window, WINDOW_CAP};
use crate::check;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Number of newest values the statistics use (2..=16).
    #[serde(
        default = "default_window",
        deserialize_with = "super::window::check_window"
    )]
    pub window: usize,
    /// Values seen before the first verdict (>= 2, <= window).
    #[serde(default = "default_warmup", deserialize_with = "check::warmup")]
    pub warmup: usize,
    /// Spread floor relative to |mean| (see `spread_floor`).
    #[serde(
        default = "default_rel_floor",
        deserialize_with = "check::non_negative"
    )]
    pub rel_floor: f64,
}

fn default_window() -> usize {
    WINDOW_CAP
}
fn default_warmup() -> usize {
    12
}
fn default_rel_floor() -> f64 {
    1e-3
}

impl Params {
    pub fn validate(&self) -> Result<(), check::Invalid> {
        check::warmup_within_window(self.warmup, self.window)
    }

    #[inline]
    pub fn score(&self, w: &Window, x: f64, z_band: f64) -> Option<Verdict> {
        if w.len() < self.warmup {
            return None;
        }
        let mut buf = [0f32; WINDOW_CAP];
        let n = w.newest(self.window, &mut buf);
        let vals = &buf[..n];
        let mean = vals.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let var = vals
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1) as f64;
        let sd = var.sqrt().max(spread_floor(mean, self.rel_floor));
        Some(Verdict {
            score: z_to_score((x - mean) / sd),
            deviation: ((x - mean) / sd).abs().min(super::MAX_DEVIATION),
            expected: mean,
            lower: mean - z_band * sd,
            upper: mean + z_band * sd,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        toml::from_str("").unwrap()
    }

    #[test]
    fn flags_a_spike_not_the_noise() {
        let p = params();
        let mut w = Window::default();
        for i in 0..11 {
            w.push(100.0 + (i % 5) as f64);
        }
        assert!(p.score(&w, 100.0, 3.0).is_none(), "warm-up");
        w.push(102.0);
        let normal = p.score(&w, 103.0, 3.0).unwrap();
        assert!(normal.score < 0.9, "{normal:?}");
        let spike = p.score(&w, 140.0, 3.0).unwrap();
        assert!(spike.score > 0.9999, "{spike:?}");
        assert!((spike.expected - 102.0).abs() < 1.5);
        assert!(spike.lower < 100.0 && spike.upper > 104.0);
    }

    #[test]
    fn flat_history_uses_the_floor() {
        let p = params();
        let mut w = Window::default();
        for _ in 0..20 {
            w.push(50.0);
        }
        assert_eq!(p.score(&w, 50.0, 3.0).unwrap().score, 0.0);
        assert!(p.score(&w, 51.0, 3.0).unwrap().score > 0.999);
    }

    #[test]
    fn refuses_warmup_beyond_window() {
        let bad: Params = toml::from_str("window = 8\nwarmup = 10").unwrap();
        assert!(bad.validate().is_err());
        assert!(toml::from_str::<Params>("window = 25").is_err());
    }
}
