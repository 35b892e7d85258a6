//! Robust rolling median / MAD over the newest `window` values.
//!
//! The expected value is the window's median and the spread is 1.4826 × MAD (the median absolute
//! deviation, scaled to match a standard deviation under Gaussian noise). When more than half
//! the window equals the median (quantised series such as integer counts) the MAD is 0; the
//! spread then falls back to 1.2533 × the mean absolute deviation from the median, which is
//! likewise scaled to a standard deviation and is zero only for a truly flat window. A single outlier moves
//! neither, so one spike cannot mask the next and heavy-tailed series raise fewer false alarms
//! than with `zscore`.
//!
//! Catches: spikes, dips and sudden level changes (until the window has absorbed the new level).
//! Cost per sample: two selections over ≤ 24 values (O(window)); state: the shared window only.

use serde::Deserialize;

use super::{spread_floor, z_to_score, Verdict, Window, WINDOW_CAP};
use crate::model::check;

/// MAD → standard deviation under Gaussian noise.
const MAD_SCALE: f64 = 1.4826;
/// Mean absolute deviation → standard deviation under Gaussian noise (sqrt(pi/2)).
const MEAN_AD_SCALE: f64 = 1.2533;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Number of newest values the statistics use (2..=24).
    #[serde(default = "default_window", deserialize_with = "check::window")]
    pub window: usize,
    /// Values seen before the first verdict (>= 2, <= window).
    #[serde(default = "default_warmup", deserialize_with = "check::warmup")]
    pub warmup: usize,
    /// Spread floor relative to |median| (see `spread_floor`).
    #[serde(default = "default_rel_floor", deserialize_with = "check::non_negative")]
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

/// Median of `v` (reorders `v`). `v` must not be empty.
#[inline]
fn median(v: &mut [f32]) -> f64 {
    let n = v.len();
    let mid = n / 2;
    let (lo, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    let upper = f64::from(*m);
    if n % 2 == 1 {
        upper
    } else {
        let lower = lo.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (f64::from(lower) + upper) / 2.0
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        check::warmup_within_window(self.warmup, self.window)
    }

    #[inline]
    pub fn score(&self, w: &Window, x: f64, z_band: f64) -> Option<Verdict> {
        if w.len() < self.warmup {
            return None;
        }
        let mut buf = [0f32; WINDOW_CAP];
        let n = w.newest(self.window, &mut buf);
        let med = median(&mut buf[..n]);
        let m32 = med as f32;
        let mut sum_ad = 0.0f32;
        for v in &mut buf[..n] {
            *v = (*v - m32).abs();
            sum_ad += *v;
        }
        let mad = median(&mut buf[..n]);
        let spread = if mad > 0.0 { MAD_SCALE * mad } else { MEAN_AD_SCALE * f64::from(sum_ad) / n as f64 };
        let sd = spread.max(spread_floor(med, self.rel_floor));
        Some(Verdict {
            score: z_to_score((x - med) / sd),
            expected: med,
            lower: med - z_band * sd,
            upper: med + z_band * sd,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [7.0]), 7.0);
    }

    #[test]
    fn quantised_series_do_not_alarm_on_their_usual_values() {
        let p: Params = toml::from_str("").unwrap();
        let mut w = Window::default();
        for v in [3.0, 3.0, 4.0, 3.0, 3.0, 2.0, 3.0, 3.0, 4.0, 3.0, 3.0, 3.0, 3.0] {
            w.push(v);
        }
        assert!(p.score(&w, 4.0, 3.0).unwrap().score < 0.9999, "no alert at the default threshold");
        assert!(p.score(&w, 9.0, 3.0).unwrap().score > 0.9999);
    }

    #[test]
    fn one_outlier_in_the_window_does_not_mask_the_next() {
        let p: Params = toml::from_str("").unwrap();
        let mut w = Window::default();
        for i in 0..23 {
            w.push(10.0 + (i % 4) as f64 * 0.5);
        }
        w.push(1000.0); // a previous spike now sits in the window
        let v = p.score(&w, 900.0, 3.0).unwrap();
        assert!(v.score > 0.9999, "{v:?}");
        assert!((v.expected - 10.75).abs() < 0.6, "{v:?}");
        let normal = p.score(&w, 11.0, 3.0).unwrap();
        assert!(normal.score < 0.9, "{normal:?}");
    }
}
