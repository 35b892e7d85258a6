//! Influx line protocol (Telegraf's default Kafka output): one or more lines per message,
//!
//! ```text
//! measurement[,tag=value...] field=value[,field=value...] [timestamp]
//! ```
//!
//! Each numeric field of a line is one sample of the series named `<measurement>_<field>`
//! (Telegraf's own naming for Prometheus outputs), labelled with the line's tags; names are
//! translated to Prometheus' alphabet as for OTLP (`disk.io` → `disk_io`). Floats (`1.5`,
//! `-2e3`), integers (`3i`), unsigned integers (`3u`) and booleans (`t`/`true`/..., 1 or 0) are
//! values; string fields (`"..."`) are skipped. The timestamp is in the input's `precision`
//! (default ns); a line without one takes the message's Kafka timestamp. Escapes follow the
//! protocol (`\,` and `\ ` in measurements; also `\=` in keys and tag values). Blank lines and
//! `#` comments are skipped; any other malformed line makes the message undecodable, naming
//! the line.

use std::collections::BTreeMap;

use super::{label_name, metric_name, DecodeError, DecodeReason, Meta};
use crate::config::Precision;
use crate::proto::Sample;

fn err(detail: impl Into<String>) -> DecodeError {
    DecodeError {
        reason: DecodeReason::Influx,
        detail: detail.into(),
    }
}

/// Decodes the lines of one message, appending their samples to `out`.
pub fn decode(
    payload: &[u8],
    precision: Precision,
    meta: Meta<'_>,
    out: &mut Vec<Sample>,
) -> Result<(), DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|e| err(format!("not UTF-8: {e}")))?;
    for (n, line) in text.split('\n').enumerate() {
        let line = line.trim_end_matches('\r').trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        parse_line(line, precision, meta, out).map_err(|e| err(format!("line {}: {e}", n + 1)))?;
    }
    Ok(())
}

struct Scan<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Text up to an unescaped byte of `stops` (or the end), with `\<c>` read as `c` for each
    /// `c` of `escapes` (any other backslash is literal, as the protocol says).
    fn until(&mut self, stops: &[u8], escapes: &[u8]) -> String {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            if stops.contains(&b) {
                break;
            }
            match (b, self.s.get(self.pos + 1)) {
                (b'\\', Some(&n)) if escapes.contains(&n) => {
                    out.push(n);
                    self.pos += 2;
                }
                _ => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        // splitting only at ASCII bytes keeps valid UTF-8 valid
        String::from_utf8_lossy(&out).into_owned()
    }

    fn eat(&mut self, b: u8) -> bool {
        let yes = self.peek() == Some(b);
        self.pos += usize::from(yes);
        yes
    }

    fn spaces(&mut self) -> usize {
        let start = self.pos;
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Skips a quoted string field value (the opening quote is next).
    fn string(&mut self) -> Result<(), LineError> {
        self.pos += 1;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'\\' => self.pos += 1,
                b'"' => return Ok(()),
                _ => {}
            }
        }
        Err(LineError::UnterminatedString)
    }
}

/// Why a line of line protocol was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum LineError {
    #[error("unterminated string field")]
    UnterminatedString,
    #[error("expected a measurement name")]
    NoMeasurement,
    #[error("expected `tag=value` after `{0}`")]
    Tag(String),
    #[error("tag `{0}` has no value")]
    EmptyTag(String),
    #[error("expected a space and the fields after the tags")]
    NoFields,
    #[error("expected `field=value`")]
    Field,
    #[error("no timestamp, and the message has none")]
    NoTimestamp,
    #[error("expected an integer timestamp, found `{0}`")]
    Timestamp(String),
    #[error("timestamp {t} is out of range for precision {precision:?}")]
    TimestampRange { t: i64, precision: Precision },
    #[error("expected a number, integer (3i), unsigned (3u), boolean or string, found `{0}`")]
    Value(String),
}

/// What a backslash escapes in tag keys, tag values and field keys.
const KEY: &[u8] = b",= ";

fn parse_line(
    line: &str,
    precision: Precision,
    meta: Meta<'_>,
    out: &mut Vec<Sample>,
) -> Result<(), LineError> {
    let mut s = Scan {
        s: line.as_bytes(),
        pos: 0,
    };
    let measurement = s.until(b", ", b", ");
    if measurement.is_empty() {
        return Err(LineError::NoMeasurement);
    }
    let mut tags = BTreeMap::new();
    while s.eat(b',') {
        let key = s.until(b"=, ", KEY);
        if key.is_empty() || !s.eat(b'=') {
            return Err(LineError::Tag(measurement.to_string()));
        }
        let value = s.until(b", ", KEY);
        if value.is_empty() {
            return Err(LineError::EmptyTag(key.to_string()));
        }
        tags.insert(label_name(&key), value);
    }
    if s.spaces() == 0 {
        return Err(LineError::NoFields);
    }
    let mut fields = Vec::new();
    loop {
        let key = s.until(b"=, ", KEY);
        if key.is_empty() || !s.eat(b'=') {
            return Err(LineError::Field);
        }
        if s.peek() == Some(b'"') {
            s.string()?;
        } else {
            let raw = s.until(b", ", b"");
            fields.push((key, field_value(&raw)?));
        }
        if !s.eat(b',') {
            break;
        }
    }
    let rest = std::str::from_utf8(&s.s[s.pos..]).unwrap_or("").trim();
    let timestamp = if rest.is_empty() {
        meta.timestamp.ok_or(LineError::NoTimestamp)?
    } else {
        let t: i64 = rest
            .parse()
            .map_err(|_| LineError::Timestamp(rest.to_string()))?;
        precision
            .to_ms(t)
            .filter(|ms| (-8.64e15..=8.64e15).contains(&(*ms as f64)))
            .ok_or(LineError::TimestampRange { t, precision })?
    };
    for (key, value) in fields {
        out.push(Sample {
            name: metric_name(&format!("{measurement}_{key}")),
            labels: tags.clone(),
            timestamp,
            value,
        });
    }
    Ok(())
}

fn field_value(raw: &str) -> Result<f64, LineError> {
    let bad = || LineError::Value(raw.to_string());
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(1.0),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(0.0),
        _ => {}
    }
    if let Some(i) = raw.strip_suffix('i') {
        return i.parse::<i64>().map(|i| i as f64).map_err(|_| bad());
    }
    if let Some(u) = raw.strip_suffix('u') {
        return u.parse::<u64>().map(|u| u as f64).map_err(|_| bad());
    }
    if raw.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.' || c == '+') {
        return raw.parse::<f64>().map_err(|_| bad());
    }
    Err(bad())
}

/// Encodes samples as line protocol, one line per sample: measurement = the sample's name,
/// its labels as tags, one field `value`, a nanosecond timestamp (so they decode as
/// `<name>_value`; for `deadair gen`, tests and benchmarks).
pub fn encode(samples: &[&Sample]) -> Vec<u8> {
    let esc = |s: &str, chars: &[char]| {
        let mut o = String::with_capacity(s.len());
        for c in s.chars() {
            if chars.contains(&c) {
                o.push('\\');
            }
            o.push(c);
        }
        o
    };
    let mut out = String::new();
    for s in samples {
        out.push_str(&esc(&s.name, &[',', ' ']));
        for (k, v) in &s.labels {
            out.push(',');
            out.push_str(&esc(k, &[',', '=', ' ']));
            out.push('=');
            out.push_str(&esc(v, &[',', '=', ' ']));
        }
        out.push_str(&format!(
            " value={:?} {}\n",
            s.value,
            i128::from(s.timestamp) * 1_000_000
        ));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(text: &str) -> Result<Vec<Sample>, DecodeError> {
        let mut out = Vec::new();
        let meta = Meta {
            timestamp: Some(99),
            ..Meta::default()
        };
        decode(text.as_bytes(), Precision::Ns, meta, &mut out).map(|()| out)
    }

    #[test]
    fn fields_become_series_and_types_are_read() {
        let out = run(concat!(
            "# a comment\n",
            "cpu,host=web\\ 1,dc=eu\\,west usage=1.5,idle=98i,up=t,state=\"ok, fine\",n=7u 1767225600123456789\r\n",
            "\n",
            "disk.io,dev=sda reads=3\n",
        ))
        .unwrap();
        type Row<'a> = (&'a str, Vec<(&'a str, &'a str)>, i64, f64);
        let got: Vec<Row> = out
            .iter()
            .map(|s| {
                let l = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                (s.name.as_str(), l, s.timestamp, s.value)
            })
            .collect();
        let cpu = vec![("dc", "eu,west"), ("host", "web 1")];
        assert_eq!(
            got,
            vec![
                ("cpu_usage", cpu.clone(), 1_767_225_600_123, 1.5),
                ("cpu_idle", cpu.clone(), 1_767_225_600_123, 98.0),
                ("cpu_up", cpu.clone(), 1_767_225_600_123, 1.0),
                ("cpu_n", cpu, 1_767_225_600_123, 7.0),
                ("disk_io_reads", vec![("dev", "sda")], 99, 3.0),
            ]
        );
    }

    #[test]
    fn precision_converts_to_ms() {
        let mut out = Vec::new();
        decode(b"m v=1 1767225600", Precision::S, Meta::default(), &mut out).unwrap();
        assert_eq!(out[0].timestamp, 1_767_225_600_000);
    }

    #[test]
    fn malformed_lines_are_named() {
        let e = |t: &str| run(t).unwrap_err().detail;
        assert_eq!(
            e("ok v=1\nbad"),
            "line 2: expected a space and the fields after the tags"
        );
        assert!(e("m v=abc").contains("found `abc`"), "{}", e("m v=abc"));
        assert!(e("m,t v=1").contains("expected `tag=value`"));
        assert!(e("m v=1 12x").contains("expected an integer timestamp"));
        assert!(e("m s=\"open").contains("unterminated string"));
        assert!(e(",t=1 v=1").contains("measurement"));
        let mut out = Vec::new();
        let none = decode(b"m v=1", Precision::Ns, Meta::default(), &mut out).unwrap_err();
        assert!(none.detail.contains("no timestamp"), "{}", none.detail);
        assert_eq!(none.reason, DecodeReason::Influx);
    }

    proptest! {
        /// Arbitrary bytes never panic: samples or a counted error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes, Precision::Ns, Meta::default(), &mut Vec::new());
        }

        /// Arbitrary text from the protocol's alphabet never panics either.
        #[test]
        fn protocol_like_text_never_panics(text in "[a-z0-9,= \\\\\"\\n.ituf-]{0,200}") {
            let _ = decode(text.as_bytes(), Precision::S, Meta::default(), &mut Vec::new());
        }

        /// What `encode` writes (escapes included) decodes to the same samples.
        #[test]
        fn encode_then_decode(samples in super::super::arb_samples("[a-z_][a-z_0-9]{0,8}", "[a-z ,=]{1,8}", -8_000_000_000_000..8_000_000_000_000)) {
            let refs: Vec<&Sample> = samples.iter().collect();
            let mut out = Vec::new();
            decode(&encode(&refs), Precision::Ns, Meta::default(), &mut out).unwrap();
            let want: Vec<Sample> = samples
                .into_iter()
                .map(|s| Sample { name: format!("{}_value", s.name), ..s })
                .collect();
            prop_assert_eq!(out, want);
        }
    }
}
