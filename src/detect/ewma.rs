//! EWMA with adaptive variance.
//!
//! Tracks an exponentially weighted mean `m` and variance `v` with smoothing factor `alpha`:
//! `d = x - m; m += alpha·d; v = (1 - alpha)·(v + alpha·d²)` (West's incremental form). The score
//! is the tail probability of `d / sqrt(v)`. Because the variance adapts, a series whose noise
//! grows slowly stays quiet while a sudden jump scores high.
//!
//! Catches: spikes and dips relative to the recent level, on series with drifting level or
//! noise. Cost per sample: a handful of flops; state: 12 bytes (mean f64, variance f32).

use serde::Deserialize;

use super::{spread_floor, to_f32, warm_alpha, z_to_score, Verdict, MAX_DEVIATION};
use crate::check;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Smoothing factor in (0, 1): weight of the newest value. ~2/alpha samples of memory.
    #[serde(default = "default_alpha", deserialize_with = "check::open_unit")]
    pub alpha: f64,
    /// Samples before the first verdict (>= 2).
    #[serde(default = "default_warmup", deserialize_with = "check::warmup")]
    pub warmup: usize,
    /// Spread floor relative to |mean| (see `spread_floor`).
    #[serde(
        default = "default_rel_floor",
        deserialize_with = "check::non_negative"
    )]
    pub rel_floor: f64,
}

fn default_alpha() -> f64 {
    0.1
}
fn default_warmup() -> usize {
    12
}
fn default_rel_floor() -> f64 {
    1e-3
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub mean: f64,
    pub var: f32,
}

impl Params {
    /// `n` is the number of samples this series has already learned.
    #[inline]
    pub fn score_and_learn(&self, st: &mut State, n: u32, x: f64, z_band: f64) -> Option<Verdict> {
        if n == 0 {
            st.mean = x;
            st.var = 0.0;
            return None;
        }
        let d = x - st.mean;
        let sd = f64::from(st.var)
            .sqrt()
            .max(spread_floor(st.mean, self.rel_floor));
        let verdict = (n as usize >= self.warmup).then(|| Verdict {
            score: z_to_score(d / sd),
            deviation: (d / sd).abs().min(MAX_DEVIATION),
            expected: st.mean,
            lower: st.mean - z_band * sd,
            upper: st.mean + z_band * sd,
        });
        let a = warm_alpha(self.alpha, n);
        st.mean += a * d;
        st.var = to_f32((1.0 - a) * (f64::from(st.var) + a * d * d));
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_level_and_flags_jumps() {
        let p: Params = toml::from_str("alpha = 0.1").unwrap();
        let mut st = State::default();
        for i in 0..200 {
            let v = p.score_and_learn(&mut st, i, 50.0 + if i % 2 == 0 { 1.0 } else { -1.0 }, 3.0);
            assert_eq!(v.is_none(), i < 12);
        }
        assert!((st.mean - 50.0).abs() < 0.5);
        assert!((f64::from(st.var).sqrt() - 1.0).abs() < 0.3, "{st:?}");
        let jump = p.score_and_learn(&mut st, 200, 60.0, 3.0).unwrap();
        assert!(jump.score > 0.9999, "{jump:?}");
    }

    #[test]
    fn refuses_alpha_outside_the_open_unit_interval() {
        assert!(toml::from_str::<Params>("alpha = 0").is_err());
        assert!(toml::from_str::<Params>("alpha = 1.5").is_err());
    }
}
