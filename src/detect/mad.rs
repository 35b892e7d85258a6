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
//! Cost per sample: O(window) simple steps: the median is read from the window's value order and
//! the MAD found by merging the deviations on either side of it (a selection over a copy when
//! `window` is smaller than the window capacity); state: the shared window only.

use serde::Deserialize;

use super::{spread_floor, z_to_score, Verdict, Window, WINDOW_CAP};
use crate::check;

/// MAD → standard deviation under Gaussian noise.
const MAD_SCALE: f64 = 1.4826;
/// Mean absolute deviation → standard deviation under Gaussian noise (sqrt(pi/2)).
const MEAN_AD_SCALE: f64 = 1.2533;

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
    /// Spread floor relative to |median| (see `spread_floor`).
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
    pub fn validate(&self) -> Result<(), check::Invalid> {
        check::warmup_within_window(self.warmup, self.window)
    }

    #[inline]
    pub fn score(&self, w: &Window, x: f64, z_band: f64) -> Option<Verdict> {
        if w.len() < self.warmup {
            return None;
        }
        if self.window >= w.len() {
            return Some(self.verdict_sorted(w, x, z_band));
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
        let spread = if mad > 0.0 {
            MAD_SCALE * mad
        } else {
            MEAN_AD_SCALE * f64::from(sum_ad) / n as f64
        };
        Some(self.verdict(med, spread, x, z_band))
    }

    #[inline]
    fn verdict(&self, med: f64, spread: f64, x: f64, z_band: f64) -> Verdict {
        let sd = spread.max(spread_floor(med, self.rel_floor));
        Verdict {
            score: z_to_score((x - med) / sd),
            deviation: ((x - med) / sd).abs().min(super::MAX_DEVIATION),
            expected: med,
            lower: med - z_band * sd,
            upper: med + z_band * sd,
        }
    }

    /// Median and MAD of the whole window from its value order: the deviations below the median
    /// (walking down) and above it (walking up) are two ascending runs; merging them yields the
    /// middle deviation after about n/2 steps.
    #[inline]
    fn verdict_sorted(&self, w: &Window, x: f64, z_band: f64) -> Verdict {
        let n = w.len();
        let med32 = (w.sorted((n - 1) / 2) + w.sorted(n / 2)) / 2.0;
        let med = (f64::from(w.sorted((n - 1) / 2)) + f64::from(w.sorted(n / 2))) / 2.0;
        // below[i] = med - sorted(split-1-i), above[j] = sorted(split+j) - med
        let split = (0..n).position(|i| w.sorted(i) >= med32).unwrap_or(n);
        let (mut i, mut j) = (0usize, 0usize);
        let (lo_rank, hi_rank) = ((n - 1) / 2, n / 2);
        let (mut lo, mut hi) = (0f32, 0f32);
        for rank in 0..=hi_rank {
            let below = (i < split).then(|| med32 - w.sorted(split - 1 - i));
            let above = (split + j < n).then(|| w.sorted(split + j) - med32);
            let d = match (below, above) {
                (Some(b), Some(a)) if b <= a => {
                    i += 1;
                    b
                }
                (Some(b), None) => {
                    i += 1;
                    b
                }
                (_, Some(a)) => {
                    j += 1;
                    a
                }
                (None, None) => 0.0,
            };
            if rank == lo_rank {
                lo = d;
            }
            hi = d;
        }
        let mad = (f64::from(lo) + f64::from(hi)) / 2.0;
        let spread = if mad > 0.0 {
            MAD_SCALE * mad
        } else {
            let sum: f32 = (0..n).map(|k| (w.sorted(k) - med32).abs()).sum();
            MEAN_AD_SCALE * f64::from(sum) / n as f64
        };
        self.verdict(med, spread, x, z_band)
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
        for v in [
            3.0, 3.0, 4.0, 3.0, 3.0, 2.0, 3.0, 3.0, 4.0, 3.0, 3.0, 3.0, 3.0,
        ] {
            w.push(v);
        }
        assert!(
            p.score(&w, 4.0, 3.0).unwrap().score < 0.9999,
            "no alert at the default threshold"
        );
        assert!(p.score(&w, 9.0, 3.0).unwrap().score > 0.9999);
    }

    proptest::proptest! {
        /// The merge over the window's value order equals the selection over a copy.
        #[test]
        fn sorted_path_equals_selection(vals in proptest::collection::vec(-50i32..50, 2..60), x in -100f64..100.0) {
            let mut w = Window::default();
            for v in &vals {
                w.push(f64::from(*v) / 4.0);
            }
            let p = Params { window: WINDOW_CAP, warmup: 2, rel_floor: 1e-3 };
            let fast = p.verdict_sorted(&w, x, 3.0);
            let mut buf = [0f32; WINDOW_CAP];
            let n = w.newest(WINDOW_CAP, &mut buf);
            let med = median(&mut buf[..n]);
            let mut dev: Vec<f32> = buf[..n].iter().map(|v| (v - med as f32).abs()).collect();
            let mad = median(&mut dev);
            let spread = if mad > 0.0 { MAD_SCALE * mad } else { MEAN_AD_SCALE * f64::from(dev.iter().sum::<f32>()) / n as f64 };
            let slow = p.verdict(med, spread, x, 3.0);
            proptest::prop_assert!((fast.expected - slow.expected).abs() < 1e-9 && (fast.upper - slow.upper).abs() < 1e-6, "{:?} vs {:?}", fast, slow);
        }
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
