//! Anomaly likelihood: how unusual is the recent *rate* of surprise, for this series?
//!
//! A post-processing stage over the statistical detectors' raw score `r` (in [0, 1], or their
//! unbounded deviation |z| with `input = "deviation"`; `context` runs its own), after
//! Numenta's anomaly likelihood (Ahmad et al., 2017), in a streaming, fixed-size form:
//!
//! ```text
//! s    = EWMA of r with span `short` samples            (recent surprise)
//! μ, σ = EWMA mean / std of s with factor `long_alpha`  (this series' usual surprise)
//! tail = P(N(0,1) > (s - μ) / σ)                        (statrs erfc)
//! score = ln(tail + 1e-10) / ln(1e-10)                  (0 when s <= μ)
//! ```
//!
//! A series that is always a little surprising (noisy, trending, seasonal) has a high μ and
//! stops alarming; a burst of surprise well above the series' own habit scores near 1. On the
//! log scale, 0.5 means tail = 1e-5 and 1.0 means tail <= 1e-10.
//! Cost per sample: a few flops and one `erfc`; state: 12 bytes.

use serde::Deserialize;

use crate::check;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Span of the recent-surprise average, in samples (>= 1).
    #[serde(default = "default_short", deserialize_with = "check::span")]
    pub short: f64,
    /// Smoothing factor of the long-run mean and spread of recent surprise, in (0, 1).
    #[serde(default = "default_long_alpha", deserialize_with = "check::open_unit")]
    pub long_alpha: f64,
    /// Samples before the first non-zero score (>= 2).
    #[serde(default = "default_warmup", deserialize_with = "check::warmup")]
    pub warmup: usize,
    /// `score` (default) or `deviation`: see [`Input`]. Only the rule-level likelihood over the
    /// statistical detectors reads it.
    #[serde(default)]
    pub input: Input,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            short: default_short(),
            long_alpha: default_long_alpha(),
            warmup: default_warmup(),
            input: Input::default(),
        }
    }
}

/// What the likelihood stage reads from the statistical detectors' best verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// The score: a tail probability, which saturates near 1 beyond |z| of about 4.
    #[default]
    Score,
    /// The deviation |z| itself (unbounded), so a 10-sigma jump weighs more than a 4-sigma one.
    Deviation,
}

fn default_short() -> f64 {
    10.0
}
fn default_long_alpha() -> f64 {
    0.002
}
fn default_warmup() -> usize {
    150
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub short: f32,
    pub mean: f32,
    pub var: f32,
}

const LOG_FLOOR: f64 = 1e-10;

impl Params {
    /// Feeds raw score `raw` of the `n`-th sample (0-based) and returns the likelihood score.
    #[inline]
    pub fn update(&self, st: &mut State, n: u32, raw: f64) -> f64 {
        let raw = raw.clamp(0.0, super::MAX_DEVIATION);
        let a_short = 2.0 / (self.short + 1.0);
        let short = f64::from(st.short) + a_short * (raw - f64::from(st.short));
        let a_long = super::warm_alpha(self.long_alpha, n);
        let (mean, var) = (f64::from(st.mean), f64::from(st.var));
        let d = short - mean;
        let sd = var.sqrt();
        let score = if (n as usize) >= self.warmup && sd > 0.0 && d > 0.0 {
            let tail = 0.5 * statrs::function::erf::erfc(d / sd * std::f64::consts::FRAC_1_SQRT_2);
            ((tail + LOG_FLOOR).ln() / LOG_FLOOR.ln()).clamp(0.0, 1.0)
        } else {
            0.0
        };
        st.short = short as f32;
        st.mean = (mean + a_long * d) as f32;
        st.var = ((1.0 - a_long) * (var + a_long * d * d)) as f32;
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn habitual_surprise_is_calm_and_a_burst_is_not() {
        let p: Params = toml::from_str("").unwrap();
        let mut st = State::default();
        let mut n = 0;
        // a series that is "surprising" 30 % of the time, forever
        for i in 0..3000u32 {
            let raw = if i % 10 < 3 { 0.99 } else { 0.2 };
            let s = p.update(&mut st, n, raw);
            n += 1;
            if i > 1000 {
                assert!(s < 0.5, "habitual surprise alarmed at {i}: {s}");
            }
        }
        // ten very surprising samples in a row
        let mut peak: f64 = 0.0;
        for _ in 0..10 {
            peak = peak.max(p.update(&mut st, n, 1.0));
            n += 1;
        }
        assert!(peak > 0.5, "burst scored {peak}");
    }

    #[test]
    fn no_score_during_warmup() {
        let p: Params = toml::from_str("warmup = 50").unwrap();
        let mut st = State::default();
        for n in 0..50 {
            assert_eq!(p.update(&mut st, n, if n == 49 { 1.0 } else { 0.0 }), 0.0);
        }
    }
}
