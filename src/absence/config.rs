//! The dead-man's switch as a model file states it: `[rule.absence]` (`timeout`, `factor`,
//! `floor`, `ceiling`, `initial`, `min_intervals`, `irregular`, `retention`), validated while
//! it is read. The model embeds [`RawAbsence`] in each rule and keeps the
//! [`Absence`] it builds.

use serde::{Deserialize, Deserializer};

use crate::check::{self, Invalid};

/// The dead-man's switch of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Absence {
    Off,
    /// Fire when a series is silent for this long (ms).
    Fixed(i64),
    /// Learn the timeout from the series' own cadence.
    Auto(AutoAbsence),
}

/// Parameters of learned absence timeouts (formula in `absence/mod.rs` and docs/absence.md).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoAbsence {
    pub factor: f64,
    pub floor_ms: i64,
    pub ceiling_ms: i64,
    pub initial_ms: i64,
    pub min_intervals: usize,
    /// Irregularity ratio (see `absence/mod.rs`); 0 treats every series as regular.
    pub irregular: f64,
}

fn default_timeout() -> String {
    "auto".into()
}
fn default_factor() -> f64 {
    3.0
}
fn default_floor() -> i64 {
    10_000
}
fn default_ceiling() -> i64 {
    86_400_000
}
fn default_initial() -> i64 {
    3_600_000
}
fn default_min_intervals() -> usize {
    4
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAbsence {
    /// `auto`, `off`, or a duration.
    #[serde(default = "default_timeout")]
    timeout: String,
    #[serde(default = "default_factor", deserialize_with = "check::factor")]
    factor: f64,
    #[serde(
        default = "default_floor",
        deserialize_with = "check::positive_duration"
    )]
    floor: i64,
    #[serde(
        default = "default_ceiling",
        deserialize_with = "check::positive_duration"
    )]
    ceiling: i64,
    #[serde(
        default = "default_initial",
        deserialize_with = "check::positive_duration"
    )]
    initial: i64,
    #[serde(default = "default_min_intervals", deserialize_with = "intervals")]
    min_intervals: usize,
    #[serde(default = "default_irregular", deserialize_with = "check::irregular")]
    irregular: f64,
    #[serde(
        default = "default_retention",
        deserialize_with = "check::positive_duration"
    )]
    pub retention: i64,
}

fn default_retention() -> i64 {
    7 * 86_400_000
}

fn default_irregular() -> f64 {
    4.0
}

impl Default for RawAbsence {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            factor: default_factor(),
            floor: default_floor(),
            ceiling: default_ceiling(),
            initial: default_initial(),
            min_intervals: default_min_intervals(),
            irregular: default_irregular(),
            retention: default_retention(),
        }
    }
}

impl RawAbsence {
    pub fn build(self) -> Result<Absence, Invalid> {
        match self.timeout.as_str() {
            "off" => Ok(Absence::Off),
            "auto" => {
                if self.floor > self.ceiling {
                    return Err(Invalid(format!(
                        "absence `floor` ({}) exceeds `ceiling` ({})",
                        crate::time::format_duration(self.floor),
                        crate::time::format_duration(self.ceiling)
                    )));
                }
                Ok(Absence::Auto(AutoAbsence {
                    factor: self.factor,
                    floor_ms: self.floor,
                    ceiling_ms: self.ceiling,
                    initial_ms: self.initial,
                    min_intervals: self.min_intervals,
                    irregular: self.irregular,
                }))
            }
            other => match crate::time::parse_duration(other) {
                Ok(ms) if ms > 0 => Ok(Absence::Fixed(ms)),
                _ => Err(Invalid(format!(
                    "absence `timeout` must be `auto`, `off` or a duration > 0 like `5m`, found `{other}`"
                ))),
            },
        }
    }
}

/// `min_intervals`: 1 to the intervals a series' cadence keeps.
fn intervals<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let max = super::CADENCE_INTERVALS as i64;
    check::int_in(d, 1, max, |v| {
        format!("expected 1 to {max} intervals, found {v}")
    })
    .map(|v| v as usize)
}
