//! Level shift: a two-sided CUSUM on standardised values.
//!
//! A slow reference mean `mu` and variance (smoothing `alpha`) standardise each value:
//! `z = (x - mu) / sd`. Two cumulative sums collect evidence of a sustained move:
//! `S+ = max(0, S+ + z - k)`, `S- = max(0, S- - z - k)`. The score is `max(S+, S-) / h` capped at
//! 1; when it reaches 1 the shift is reported once and the detector re-learns the new level from
//! scratch (running mean over the next `warmup` samples, sums reset, no verdicts meanwhile), so a
//! lasting shift gives one short detection, not a sustained one. While a sum is above zero the
//! reference stops learning, so a slow shift cannot drag it along.
//!
//! Catches: sustained shifts too small for the spike detectors (a service settling 2σ higher).
//! Cost per sample: a handful of flops; state: 24 bytes.
//!
//! `method = "robust"` is a second way to see a shift, in the same state: a slow robust
//! baseline (a Huber-style EWMA: smoothing `alpha`, each deviation clipped to ±3 sd once warm,
//! so spikes barely move it) and `e`, an EWMA (factor `smoothing`) of the standardised deviation
//! clipped to ±4. The score is `weight` while `|e| >= h` and 0 otherwise: a run of values on one
//! side of the baseline, a few sd away, flags a shift until the baseline catches up. Its score is
//! not post-processed by the likelihood (like `novelty`), and its spread is what `novelty`'s
//! `noise` margin reads.

use serde::Deserialize;

use super::{spread_floor, warm_alpha, Verdict};
use crate::check;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `cusum`: allowance per sample, in standard deviations (drift below this is ignored);
    /// default 0.5.
    #[serde(default, deserialize_with = "check::non_negative_opt")]
    pub k: Option<f64>,
    /// Decision threshold, in standard deviations (> 0): on the cumulative sum (`cusum`,
    /// default 8), or on the smoothed clipped deviation (`robust`, default 3.5, below 4).
    #[serde(default, deserialize_with = "check::positive_opt")]
    pub h: Option<f64>,
    /// Smoothing factor of the reference mean and variance, in (0, 1).
    #[serde(default = "default_alpha", deserialize_with = "check::open_unit")]
    pub alpha: f64,
    /// Samples before the first verdict (>= 2).
    #[serde(default = "default_warmup", deserialize_with = "check::warmup")]
    pub warmup: usize,
    /// Spread floor relative to |mu| (see `spread_floor`).
    #[serde(
        default = "default_rel_floor",
        deserialize_with = "check::non_negative"
    )]
    pub rel_floor: f64,
    /// `cusum` (default) or `robust` (see the module docs).
    #[serde(default)]
    pub method: Method,
    /// `robust`: smoothing factor of the clipped deviation's EWMA, in (0, 1); default 0.1.
    #[serde(default, deserialize_with = "check::open_unit_opt")]
    pub smoothing: Option<f64>,
    /// `robust`: the score while a shift is flagged, in (0, 1]; default 1.
    #[serde(default, deserialize_with = "check::opt_score")]
    pub weight: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    #[default]
    Cusum,
    Robust,
}

/// `robust`: standardised deviations are clipped to this before smoothing...
const CLIP_Z: f64 = 4.0;
/// ...and the baseline learns a deviation clipped to this many sd.
const HUBER: f64 = 3.0;

fn default_alpha() -> f64 {
    0.02
}
fn default_warmup() -> usize {
    24
}
fn default_rel_floor() -> f64 {
    1e-3
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub mu: f64,
    pub var: f32,
    pub pos: f32,
    pub neg: f32,
    /// Samples since the reference was (re)started.
    pub fresh: u32,
}

impl Params {
    /// Model validation: each method's own keys only, and a reachable `h` for `robust`.
    pub fn validate(&self) -> Result<(), check::Invalid> {
        match self.method {
            Method::Cusum if self.smoothing.is_some() || self.weight.is_some() => Err(
                "level_shift: `smoothing` and `weight` apply to `method = \"robust\"` only".into(),
            ),
            Method::Robust if self.k.is_some() => {
                Err("level_shift: `k` applies to `method = \"cusum\"` only".into())
            }
            Method::Robust if self.h() >= CLIP_Z => Err(format!(
                "level_shift: with `method = \"robust\"`, `h` must be below {CLIP_Z} (the clip of \
                 the smoothed deviation), found {}",
                self.h()
            )
            .into()),
            _ => Ok(()),
        }
    }

    fn h(&self) -> f64 {
        self.h.unwrap_or(match self.method {
            Method::Cusum => 8.0,
            Method::Robust => 3.5,
        })
    }

    /// The spread the detector currently standardises with (its baseline's sd, floored).
    #[inline]
    pub fn spread(&self, st: &State) -> f64 {
        f64::from(st.var)
            .sqrt()
            .max(spread_floor(st.mu, self.rel_floor))
    }

    #[inline]
    pub fn score_and_learn(&self, st: &mut State, n: u32, x: f64, z_band: f64) -> Option<Verdict> {
        if self.method == Method::Robust {
            return self.robust(st, n, x, z_band);
        }
        if n == 0 {
            *st = State {
                mu: x,
                fresh: 1,
                ..State::default()
            };
            return None;
        }
        let d = x - st.mu;
        let sd = f64::from(st.var)
            .sqrt()
            .max(spread_floor(st.mu, self.rel_floor));
        let warm = n as usize >= self.warmup && st.fresh as usize >= self.warmup;
        let (expected, lower, upper) = (st.mu, st.mu - z_band * sd, st.mu + z_band * sd);
        let mut score = 0.0;
        let mut deviation = 0.0;
        if warm {
            let z = (d / sd).clamp(-1e6, 1e6);
            let k = self.k.unwrap_or(0.5);
            let pos = (f64::from(st.pos) + z - k).max(0.0);
            let neg = (f64::from(st.neg) - z - k).max(0.0);
            deviation = pos.max(neg);
            score = (deviation / self.h()).min(1.0);
            if score >= 1.0 {
                *st = State {
                    mu: x,
                    var: st.var,
                    pos: 0.0,
                    neg: 0.0,
                    fresh: 1,
                };
                return Some(Verdict {
                    score,
                    deviation,
                    expected,
                    lower,
                    upper,
                });
            }
            st.pos = pos as f32;
            st.neg = neg as f32;
        }
        if st.pos == 0.0 && st.neg == 0.0 {
            let a_mean = warm_alpha(self.alpha, st.fresh);
            let a_var = warm_alpha(self.alpha, n);
            st.mu += a_mean * d;
            st.var = super::to_f32((1.0 - a_var) * (f64::from(st.var) + a_var * d * d));
        }
        st.fresh = st.fresh.saturating_add(1);
        (n as usize >= self.warmup).then_some(Verdict {
            score,
            deviation,
            expected,
            lower,
            upper,
        })
    }
}

impl Params {
    /// `method = "robust"`; the smoothed deviation lives in `st.pos`.
    #[inline]
    fn robust(&self, st: &mut State, n: u32, x: f64, z_band: f64) -> Option<Verdict> {
        if n == 0 {
            *st = State {
                mu: x,
                ..State::default()
            };
            return None;
        }
        let sd = self.spread(st);
        let mut d = x - st.mu;
        let (expected, lower, upper) = (st.mu, st.mu - z_band * sd, st.mu + z_band * sd);
        let warm = n as usize >= self.warmup;
        if warm {
            let z = (d / sd).clamp(-CLIP_Z, CLIP_Z);
            let smoothing = self.smoothing.unwrap_or(0.1);
            st.pos = (f64::from(st.pos) + smoothing * (z - f64::from(st.pos))) as f32;
            d = d.clamp(-HUBER * sd, HUBER * sd);
        }
        let a = warm_alpha(self.alpha, n);
        st.mu += a * d;
        st.var = super::to_f32((1.0 - a) * (f64::from(st.var) + a * d * d));
        let e = f64::from(st.pos).abs();
        warm.then_some(Verdict {
            score: if e >= self.h() {
                self.weight.unwrap_or(1.0)
            } else {
                0.0
            },
            deviation: e,
            expected,
            lower,
            upper,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(i: u32) -> f64 {
        // deterministic, zero-mean, unit-ish noise
        ((i.wrapping_mul(2_654_435_761) >> 16) % 1000) as f64 / 500.0 - 1.0
    }

    #[test]
    fn robust_flags_a_shift_until_the_baseline_catches_up_and_ignores_spikes() {
        let p: Params = toml::from_str(
            "method = \"robust\"\nalpha = 0.003\nh = 3.5\nwarmup = 100\nweight = 0.5",
        )
        .unwrap();
        let mut st = State::default();
        let z = 3.89;
        for i in 0..1000u32 {
            let v = p.score_and_learn(&mut st, i, 100.0 + noise(i), z);
            assert!(
                v.is_none_or(|v| v.score == 0.0),
                "flat noise flagged at {i}"
            );
            assert_eq!(v.is_none(), i < 100);
        }
        // isolated spikes: clipped, never a shift
        for i in 1000..1100u32 {
            let x = if i % 20 == 0 { 200.0 } else { 100.0 + noise(i) };
            assert_eq!(
                p.score_and_learn(&mut st, i, x, z).unwrap().score,
                0.0,
                "{i}"
            );
        }
        // a sustained shift of about 8 sd (sd ≈ 0.6): flagged within a few dozen samples (the
        // clipped deviation's EWMA needs ~20 to pass 3.5; the baseline's spread widens meanwhile)
        let flagged = (1100..1200u32).position(|i| {
            p.score_and_learn(&mut st, i, 105.0 + noise(i), z)
                .unwrap()
                .score
                == 0.5
        });
        assert!(flagged.is_some_and(|k| k < 40), "{flagged:?}");
    }

    #[test]
    fn detects_a_sustained_small_shift_once() {
        let p: Params = toml::from_str("").unwrap();
        let mut st = State::default();
        let mut n = 0;
        for _ in 0..300 {
            let v = p.score_and_learn(&mut st, n, 100.0 + noise(n), 3.0);
            assert!(v.is_none_or(|v| v.score < 1.0), "false shift at {n}");
            n += 1;
        }
        // shift by ~2.5 sd of the noise: too small for a spike detector
        let mut detections = Vec::new();
        for _ in 0..200 {
            if let Some(v) = p.score_and_learn(&mut st, n, 101.5 + noise(n), 3.0) {
                if v.score >= 1.0 {
                    detections.push(n - 300);
                }
            }
            n += 1;
        }
        assert_eq!(
            detections.len(),
            1,
            "one detection per shift: {detections:?}"
        );
        assert!(detections[0] < 20, "detected late: {detections:?}");
    }
}
