//! Timestamps and durations: parsing what users write, formatting what deadair prints.
//!
//! Internally every time is `i64` milliseconds since the Unix epoch (UTC) and every duration is
//! `i64` milliseconds. Nothing here reads the system clock.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// Epoch numbers below this are seconds, at or above it milliseconds. 1e11 s is the year 5138,
/// 1e11 ms is March 1973, so every plausible metric timestamp is classified correctly.
const SECONDS_LIMIT: f64 = 1e11;

/// A timestamp or duration that could not be read; the message says what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimeError {
    #[error("expected a timestamp, found an empty field")]
    Empty,
    #[error(
        "expected a timestamp (`2014-07-01 00:00:00`, RFC 3339, or epoch seconds/ms), found `{0}`"
    )]
    Timestamp(String),
    #[error("expected an epoch timestamp, found `{0}`")]
    Epoch(String),
    #[error("expected an epoch timestamp, found {0}")]
    NotFinite(f64),
    #[error("timestamp {0} is out of range")]
    OutOfRange(f64),
    #[error("expected a duration like `30s`, `5m` or `1h30m`, found `{0}`")]
    Duration(String),
}

/// Parses a timestamp as written in inputs: `2014-07-01 00:00:00` (UTC, optional fraction),
/// RFC 3339 (`2026-01-01T00:00:00Z`, any offset), or epoch seconds / milliseconds (decimal,
/// classified by magnitude: below 1e11 means seconds).
pub fn parse_timestamp(text: &str) -> Result<i64, TimeError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(TimeError::Empty);
    }
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    if unsigned.starts_with(|c: char| c.is_ascii_digit()) && !unsigned.contains(['-', ':']) {
        return parse_epoch(s);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(dt.and_utc().timestamp_millis());
        }
    }
    Err(TimeError::Timestamp(s.to_string()))
}

/// Epoch seconds or milliseconds, by magnitude.
pub fn epoch_to_ms(v: f64) -> Result<i64, TimeError> {
    if !v.is_finite() {
        return Err(TimeError::NotFinite(v));
    }
    let ms = if v.abs() < SECONDS_LIMIT {
        v * 1000.0
    } else {
        v
    };
    if ms.abs() > 8.64e15 {
        return Err(TimeError::OutOfRange(v));
    }
    Ok(ms.round() as i64)
}

fn parse_epoch(s: &str) -> Result<i64, TimeError> {
    let v: f64 = s.parse().map_err(|_| TimeError::Epoch(s.to_string()))?;
    epoch_to_ms(v)
}

/// A duration in whole milliseconds, the engine's unit (saturating at `i64::MAX`).
pub fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-01-01T00:00:00.000Z`.
pub fn format_rfc3339(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("{ms}ms"),
    }
}

/// Parses a Prometheus-style duration: one or more `<number><unit>` parts with units
/// `ms`, `s`, `m`, `h`, `d`, `w` (e.g. `500ms`, `5m`, `1h30m`). `0` alone is accepted.
pub fn parse_duration(text: &str) -> Result<i64, TimeError> {
    let s = text.trim();
    if s == "0" {
        return Ok(0);
    }
    let bad = || TimeError::Duration(text.to_string());
    if s.is_empty() {
        return Err(bad());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(bad());
        }
        let n: i64 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &s[ustart..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Formats a duration compactly: `1h30m`, `45s`, `250ms`.
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms.unsigned_abs();
    if ms < 0 {
        out.push('-');
    }
    for (unit, label) in [
        (86_400_000u64, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ] {
        if rest >= unit {
            out.push_str(&format!("{}{label}", rest / unit));
            rest %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_timestamp_form() {
        let want = 1_404_172_800_000; // 2014-07-01T00:00:00Z
        assert_eq!(parse_timestamp("2014-07-01 00:00:00"), Ok(want));
        assert_eq!(parse_timestamp("2014-07-01T00:00:00Z"), Ok(want));
        assert_eq!(parse_timestamp("2014-07-01T02:00:00+02:00"), Ok(want));
        assert_eq!(parse_timestamp("1404172800"), Ok(want));
        assert_eq!(parse_timestamp("1404172800000"), Ok(want));
        assert_eq!(parse_timestamp("1404172800.5"), Ok(want + 500));
        assert_eq!(parse_timestamp("2014-07-01 00:00:00.250"), Ok(want + 250));
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("").is_err());
        assert!(parse_timestamp("2014-13-01 00:00:00").is_err());
    }

    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(
            format_rfc3339(1_404_172_800_000),
            "2014-07-01T00:00:00.000Z"
        );
    }

    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "5", "m", "5x", "1.5h", "-5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(45_250), "45s250ms");
    }
}
