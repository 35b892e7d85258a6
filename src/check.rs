//! Value checks used while deserialising model files. Each failure becomes a TOML error that
//! carries the value's position, so `deadair check` can name file, line and key.

use serde::{de::Error, Deserialize, Deserializer};

/// A value that failed a check; the message names the key (or the value) and what was
/// expected. Callers add the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid(message)
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Invalid(message.to_string())
    }
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a finite number, found {v}"
        )))
    }
}

pub fn opt_finite<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    number(d).map(Some)
}

pub fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a number > 0, found {v}"
        )))
    }
}

pub fn positive_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    positive(d).map(Some)
}

pub fn non_negative_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    non_negative(d).map(Some)
}

pub fn open_unit_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    open_unit(d).map(Some)
}

pub fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a number >= 0, found {v}"
        )))
    }
}

/// In the open interval (0, 1).
pub fn open_unit<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a number strictly between 0 and 1, found {v}"
        )))
    }
}

/// A score threshold: in (0, 1].
pub fn score<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a score in (0, 1], found {v}"
        )))
    }
}

/// An integer in `lo..=hi`, or the error `message(found)`.
pub fn int_in<'de, D: Deserializer<'de>>(
    d: D,
    lo: i64,
    hi: i64,
    message: impl FnOnce(i64) -> String,
) -> Result<i64, D::Error> {
    let v = i64::deserialize(d)?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(D::Error::custom(message(v)))
    }
}

pub fn warmup<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    int_in(d, 2, 100_000, |v| {
        format!("expected a warm-up of 2 to 100000 samples, found {v}")
    })
    .map(|v| v as usize)
}

/// Bands of the `context` detector: 2 to 64.
pub fn levels<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(d, 2, 64, |v| format!("expected 2 to 64 levels, found {v}")).map(|v| v as u32)
}

pub fn warmup_within_window(warmup: usize, window: usize) -> Result<(), Invalid> {
    if warmup > window {
        Err(Invalid(format!(
            "`warmup` ({warmup}) cannot exceed `window` ({window})"
        )))
    } else {
        Ok(())
    }
}

/// A duration string (`30s`, `5m`, `1h30m`), in milliseconds.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let s = String::deserialize(d)?;
    crate::time::parse_duration(&s).map_err(D::Error::custom)
}

/// A duration string (`30s`, `5m`, `1h30m`).
pub fn std_duration<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let ms = duration(d)?;
    Ok(std::time::Duration::from_millis(ms.max(0) as u64))
}

/// A duration string that must be > 0.
pub fn positive_std_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::time::Duration, D::Error> {
    let ms = positive_duration(d)?;
    Ok(std::time::Duration::from_millis(ms as u64))
}

/// A duration that must be > 0.
pub fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = duration(d)?;
    if v > 0 {
        Ok(v)
    } else {
        Err(D::Error::custom("expected a duration > 0"))
    }
}

pub fn opt_score<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    score(d).map(Some)
}

/// Absence factor: >= 1 (a timeout shorter than the cadence would fire between samples).
pub fn factor<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if (1.0..=1000.0).contains(&v) {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a factor from 1 to 1000, found {v}"
        )))
    }
}

/// A growth the noise's variance is tested for: above 1 (at 1 there is nothing to tell apart)
/// and at most 100.
pub fn growth<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if v > 1.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a variance ratio above 1 and at most 100, found {v}"
        )))
    }
}

/// A span in samples: >= 1.
pub fn span<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if v >= 1.0 {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a span of at least 1 sample, found {v}"
        )))
    }
}

/// Minimum group size for correlated silence: >= 2.
pub fn min_series<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = i64::deserialize(d)?;
    if (2..=i64::from(u32::MAX)).contains(&v) {
        Ok(v as u32)
    } else {
        Err(D::Error::custom(format!(
            "expected at least 2 series, found {v}"
        )))
    }
}

/// Irregularity ratio: 0 (off) or > 1.
pub fn irregular<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if v == 0.0 || (v > 1.0 && v.is_finite()) {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected 0 (off) or a ratio above 1, found {v}"
        )))
    }
}

/// A count: >= 1.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let v = i64::deserialize(d)?;
    if v >= 1 {
        Ok(v as usize)
    } else {
        Err(D::Error::custom(format!(
            "expected a count of at least 1, found {v}"
        )))
    }
}

/// A tail memory in samples: at least one block of 16.
pub fn memory<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if (16.0..=1e9).contains(&v) {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a memory of 16 to 1e9 samples, found {v}"
        )))
    }
}

/// A false-alarm budget: alerts per series per day, in (0, 100].
pub fn budget<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = number(d)?;
    if v > 0.0 && v <= 100.0 {
        Ok(Some(v))
    } else {
        Err(D::Error::custom(format!(
            "expected false alerts per series per day in (0, 100], found {v}"
        )))
    }
}

/// In [0, 1).
pub fn unit_interval<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected a number from 0 up to (not including) 1, found {v}"
        )))
    }
}

/// Student-t degrees of freedom for a tail fit: 1.5 to 1000.
pub fn min_nu<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = number(d)?;
    if (1.5..=1000.0).contains(&v) {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "expected degrees of freedom from 1.5 to 1000, found {v}"
        )))
    }
}
