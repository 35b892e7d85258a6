//! The learned detectors' keys in a model file: `[rule.learning]` and
//! `[rule.detectors.spike|shift|spread|range|stuck]`, with their defaults and checks.

use serde::Deserialize;

use crate::check;

/// `[rule.learning]`: how the learned detectors learn (shared by the four).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Learning {
    /// Samples before any verdict (>= 2).
    #[serde(default = "default_warmup", deserialize_with = "check::warmup")]
    pub warmup: usize,
    /// Memory of the tails, samples (>= 16).
    #[serde(default = "default_memory", deserialize_with = "check::memory")]
    pub memory: f64,
    /// Learning margin: how cautious a young series is (0: not at all).
    #[serde(default = "default_margin", deserialize_with = "check::non_negative")]
    pub margin: f64,
    /// Samples over which a statistic's recent peak halves (a value within it is never
    /// improbable).
    #[serde(default = "default_peak_half_life", deserialize_with = "check::span")]
    pub peak_half_life: f64,
    /// Smoothing factor of the recent level, in (0, 1).
    #[serde(default = "default_level_alpha", deserialize_with = "check::open_unit")]
    pub level_alpha: f64,
    /// Smoothing factor of the level's trend (Holt's β, as a share of the level's step), in
    /// [0, 1): lets the level follow a daily curve without lagging behind it.
    #[serde(default = "default_trend", deserialize_with = "check::unit_interval")]
    pub trend: f64,
    /// Pull toward Gaussian tails: subtracted from the spike tail's heaviness ratio (see
    /// `tail.rs`), at most the ratio's own sampling noise after a day or two.
    #[serde(default = "default_pull", deserialize_with = "check::non_negative")]
    pub pull: f64,
    /// How long a new series is judged by its records only (gross outliers), as event time
    /// covered by its samples; a duration such as `1d`.
    #[serde(
        default = "default_youth",
        deserialize_with = "check::duration",
        rename = "youth"
    )]
    pub youth_ms: i64,
    /// Lightest tail the spike fit may assume (Student-t degrees of freedom, >= 1.5).
    #[serde(default = "default_min_nu", deserialize_with = "check::min_nu")]
    pub min_nu: f64,
    /// Smoothing factor of the noise scale, in (0, 1).
    #[serde(default = "default_scale_alpha", deserialize_with = "check::open_unit")]
    pub scale_alpha: f64,
    /// Residuals are clipped at this many units when they move the level, base and scale (> 0).
    #[serde(default = "default_clip", deserialize_with = "check::positive")]
    pub clip: f64,
}

fn default_warmup() -> usize {
    30
}
fn default_memory() -> f64 {
    3000.0
}
fn default_margin() -> f64 {
    1.0
}
fn default_peak_half_life() -> f64 {
    3000.0
}
fn default_level_alpha() -> f64 {
    0.1
}
fn default_trend() -> f64 {
    0.05
}
fn default_youth() -> i64 {
    86_400_000
}
fn default_min_nu() -> f64 {
    1.5
}
fn default_pull() -> f64 {
    0.03
}
fn default_scale_alpha() -> f64 {
    0.01
}
fn default_clip() -> f64 {
    4.0
}

impl Default for Learning {
    fn default() -> Self {
        Self {
            warmup: default_warmup(),
            memory: default_memory(),
            margin: default_margin(),
            peak_half_life: default_peak_half_life(),
            level_alpha: default_level_alpha(),
            scale_alpha: default_scale_alpha(),
            trend: default_trend(),
            pull: default_pull(),
            min_nu: default_min_nu(),
            youth_ms: default_youth(),
            clip: default_clip(),
        }
    }
}

/// `[rule.detectors.spike]`: a value far from the recent level.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spike {}

/// `[rule.detectors.shift]`: the recent level far from the long-run baseline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// Smoothing factor of the long-run baseline, in (0, 1) (~2/alpha samples of memory).
    #[serde(default = "default_shift_alpha", deserialize_with = "check::open_unit")]
    pub alpha: f64,
    /// How fast the series' own alerting bursts are learned, in [0, 1) (0: never): the
    /// smoothing of their mean size, so that a series whose bursts keep breaking its record
    /// stops paging for each (see `detect/bursts.rs`).
    #[serde(default = "default_bursts", deserialize_with = "check::unit_interval")]
    pub bursts: f64,
    /// The largest factor beyond the recent peak one burst teaches (1 to 1000).
    #[serde(default = "default_burst_ratio", deserialize_with = "check::factor")]
    pub burst_ratio: f64,
    /// The median's distance from the baseline counts as at most this many noise units (> 0):
    /// a burst of a few samples is not a level shift, however tall.
    #[serde(default = "default_shift_clip", deserialize_with = "check::positive")]
    pub clip: f64,
}

pub(super) fn default_shift_clip() -> f64 {
    12.0
}

pub(super) fn default_bursts() -> f64 {
    0.2
}

pub(super) fn default_burst_ratio() -> f64 {
    2.0
}

pub(super) fn default_shift_alpha() -> f64 {
    0.01
}

/// `[rule.detectors.spread]`: the noise grew well beyond its usual size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// The growth of the noise's variance its test is sharpest for (> 1; 4: the noise's size
    /// doubled). Smaller growths are found too, later.
    #[serde(default = "default_spread_ratio", deserialize_with = "check::growth")]
    pub ratio: f64,
    /// Smoothing factor of the usual noise it is compared with, in (0, 1).
    #[serde(
        default = "default_spread_baseline",
        deserialize_with = "check::open_unit"
    )]
    pub baseline: f64,
    /// Residuals beyond this many units count as this many (> 0): one wild value is a spike,
    /// not a change of the noise.
    #[serde(default = "default_spread_clip", deserialize_with = "check::positive")]
    pub clip: f64,
}

pub(super) fn default_spread_clip() -> f64 {
    6.0
}

pub(super) fn default_spread_baseline() -> f64 {
    0.003
}

pub(super) fn default_spread_ratio() -> f64 {
    4.0
}

/// `[rule.detectors.range]`: the level beyond the range the series has shown (forgetting
/// slowly, over the learning memory).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {}

/// `[rule.detectors.stuck]`: one value repeated far longer than the series' history makes
/// likely. Raised as its own alert kind (`stuck`), resolved when the value changes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stuck {}
