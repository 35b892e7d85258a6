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

use std::ops::Range;

use super::arena::{Arena, At};
use super::{DecodeError, DecodeReason, Meta, SampleView, SampleViews};
use crate::config::Precision;
#[cfg(test)]
use crate::proto::Sample;

fn err(detail: impl Into<String>) -> DecodeError {
    DecodeError {
        reason: DecodeReason::Influx,
        detail: detail.into(),
    }
}

/// The decoder's reusable buffers (one per consumer, in [`super::Scratch`]): a message's
/// samples borrow the message and these until the next message.
#[derive(Debug, Default)]
pub struct Buffers {
    arena: Arena,
    /// Each line's tags (key, value), in line order.
    tags: Vec<(At, At)>,
    /// (name, the line's tags in `tags`, timestamp, value).
    samples: Vec<(At, Range<u32>, i64, f64)>,
    /// The fields of the line being read: (key, value).
    fields: Vec<(At, f64)>,
    /// The last `<measurement>_<field>` name made: (measurement, field, name).
    last_name: Option<(At, At, At)>,
}

impl Buffers {
    fn get<'a>(&'a self, text: &'a str, at: At) -> &'a str {
        self.arena.text(text, at)
    }

    fn keep(&mut self, s: &str) -> At {
        self.arena.keep(s)
    }

    /// A label name in Prometheus' alphabet: `key` itself when it already is one.
    fn label_name(&mut self, text: &str, key: At) -> At {
        let k = self.get(text, key);
        let valid = !k.starts_with(|c: char| c.is_ascii_digit())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            return key;
        }
        let k = super::label_name(k);
        self.keep(&k)
    }

    /// `<measurement>_<field>` in Prometheus' alphabet (made once per run of equal names).
    fn metric_name(&mut self, text: &str, measurement: At, field: At) -> At {
        if let Some((m, f, name)) = self.last_name {
            if self.get(text, m) == self.get(text, measurement)
                && self.get(text, f) == self.get(text, field)
            {
                return name;
            }
        }
        let (m, f) = (self.get(text, measurement), self.get(text, field));
        let lead = m.starts_with(|c: char| c.is_ascii_digit());
        let ok = |c: char| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        };
        let name: String = (lead.then_some('_').into_iter())
            .chain(m.chars().map(ok))
            .chain(std::iter::once('_'))
            .chain(f.chars().map(ok))
            .collect();
        let name = self.arena.keep(&name);
        self.last_name = Some((measurement, field, name));
        name
    }

    /// The samples read, as views of the message and the arena.
    fn views<'a>(&'a self, text: &'a str) -> SampleViews<'a> {
        let mut out = SampleViews {
            samples: Vec::with_capacity(self.samples.len()),
            labels: Vec::with_capacity(self.tags.len()),
        };
        let mut last: Option<(Range<u32>, Range<usize>)> = None;
        for (name, tags, timestamp, value) in &self.samples {
            let labels = match &last {
                Some((raw, made)) if raw == tags => made.clone(),
                _ => {
                    let start = out.labels.len();
                    out.labels.extend(
                        self.tags[tags.start as usize..tags.end as usize]
                            .iter()
                            .map(|&(k, v)| (self.get(text, k), self.get(text, v))),
                    );
                    // sorted by key; a repeated key keeps its last value
                    out.normalise_labels(start);
                    let made = start..out.labels.len();
                    last = Some((tags.clone(), made.clone()));
                    made
                }
            };
            out.samples.push(SampleView {
                name: self.get(text, *name),
                labels,
                timestamp: *timestamp,
                value: *value,
            });
        }
        out
    }
}

/// Decodes the lines of one message: its samples borrow `payload` and `buf`.
pub fn decode<'a>(
    payload: &'a [u8],
    precision: Precision,
    meta: Meta<'_>,
    buf: &'a mut Buffers,
) -> Result<SampleViews<'a>, DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|e| err(format!("not UTF-8: {e}")))?;
    if u32::try_from(text.len()).is_err() {
        return Err(err("message larger than 4 GiB"));
    }
    buf.arena.clear();
    buf.tags.clear();
    buf.samples.clear();
    buf.last_name = None;
    let mut start = 0;
    for (n, line) in text.split('\n').enumerate() {
        let end = start + line.len();
        let trimmed = line.trim_end_matches('\r');
        let lead = trimmed.len() - trimmed.trim_start().len();
        let (from, to) = (start + lead, start + trimmed.len());
        start = end + 1;
        if from == to || text[from..].starts_with('#') {
            continue;
        }
        parse_line(text, from..to, precision, meta, buf)
            .map_err(|e| err(format!("line {}: {e}", n + 1)))?;
    }
    let buf: &'a Buffers = buf;
    Ok(buf.views(text))
}

struct Scan<'a> {
    s: &'a [u8],
    pos: usize,
    end: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        (self.pos < self.end).then(|| self.s[self.pos])
    }

    /// Text up to an unescaped byte of `stops` (or the line's end), with `\<c>` read as `c`
    /// for each `c` of `escapes` (any other backslash is literal, as the protocol says): a
    /// range of the message, or, when something was unescaped, of the arena.
    fn until(&mut self, stops: &[u8], escapes: &[u8], buf: &mut Buffers) -> At {
        let start = self.pos;
        let mut escaped = false;
        while let Some(b) = self.peek() {
            if stops.contains(&b) {
                break;
            }
            if b == b'\\' && self.pos + 1 < self.end && escapes.contains(&self.s[self.pos + 1]) {
                escaped = true;
                self.pos += 2;
            } else {
                self.pos += 1;
            }
        }
        if !escaped {
            return At::Msg(start as u32, self.pos as u32);
        }
        let mut out = Vec::with_capacity(self.pos - start);
        let mut i = start;
        while i < self.pos {
            if self.s[i] == b'\\' && i + 1 < self.pos && escapes.contains(&self.s[i + 1]) {
                i += 1;
            }
            out.push(self.s[i]);
            i += 1;
        }
        // only an ASCII backslash was dropped before an ASCII byte: still UTF-8
        buf.keep(&String::from_utf8_lossy(&out))
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
    text: &str,
    line: Range<usize>,
    precision: Precision,
    meta: Meta<'_>,
    buf: &mut Buffers,
) -> Result<(), LineError> {
    let mut s = Scan {
        s: text.as_bytes(),
        pos: line.start,
        end: line.end,
    };
    let empty = At::is_empty;
    let measurement = s.until(b", ", b", ", buf);
    if empty(measurement) {
        return Err(LineError::NoMeasurement);
    }
    let tags_start = buf.tags.len() as u32;
    while s.eat(b',') {
        let key = s.until(b"=, ", KEY, buf);
        if empty(key) || !s.eat(b'=') {
            return Err(LineError::Tag(buf.get(text, measurement).to_string()));
        }
        let value = s.until(b", ", KEY, buf);
        if empty(value) {
            return Err(LineError::EmptyTag(buf.get(text, key).to_string()));
        }
        let key = buf.label_name(text, key);
        buf.tags.push((key, value));
    }
    let tags = tags_start..buf.tags.len() as u32;
    if s.spaces() == 0 {
        return Err(LineError::NoFields);
    }
    buf.fields.clear();
    loop {
        let key = s.until(b"=, ", KEY, buf);
        if empty(key) || !s.eat(b'=') {
            return Err(LineError::Field);
        }
        if s.peek() == Some(b'"') {
            s.string()?;
        } else {
            let raw = s.until(b", ", b"", buf);
            let value = field_value(buf.get(text, raw))?;
            buf.fields.push((key, value));
        }
        if !s.eat(b',') {
            break;
        }
    }
    let rest = text[s.pos.min(line.end)..line.end].trim();
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
    for i in 0..buf.fields.len() {
        let (key, value) = buf.fields[i];
        let name = buf.metric_name(text, measurement, key);
        buf.samples.push((name, tags.clone(), timestamp, value));
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
pub fn encode(samples: &[&crate::proto::Sample]) -> Vec<u8> {
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

    /// The decoded samples, owned (labels sorted by key, as the views give them).
    fn owned(
        payload: &[u8],
        precision: Precision,
        meta: Meta<'_>,
    ) -> Result<Vec<Sample>, DecodeError> {
        let mut buf = Buffers::default();
        let views = decode(payload, precision, meta, &mut buf)?;
        Ok(views
            .refs()
            .map(|r| Sample {
                name: r.name.to_string(),
                labels: r
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                timestamp: r.ts,
                value: r.value,
            })
            .collect())
    }

    fn run(text: &str) -> Result<Vec<Sample>, DecodeError> {
        let meta = Meta {
            timestamp: Some(99),
            ..Meta::default()
        };
        owned(text.as_bytes(), Precision::Ns, meta)
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
    fn names_made_valid_and_tags_shared_by_a_line_s_fields() {
        let out = run(concat!(
            "9net,k8s.zone=a,k8s_zone=b,2x=y rx=1,tx=2 1000000\n",
            "9net,k8s.zone=c rx=3 2000000\n",
            "cpu usage=4 3000000\n",
        ))
        .unwrap();
        type Row<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);
        let rows: Vec<Row> = out
            .iter()
            .map(|s| {
                let l = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                (s.name.as_str(), l.collect(), s.value)
            })
            .collect();
        // `k8s.zone` and `k8s_zone` name one label: the later value stays
        let first = vec![("_2x", "y"), ("k8s_zone", "b")];
        assert_eq!(
            rows,
            vec![
                ("_9net_rx", first.clone(), 1.0),
                ("_9net_tx", first, 2.0),
                ("_9net_rx", vec![("k8s_zone", "c")], 3.0),
                ("cpu_usage", vec![], 4.0),
            ]
        );
    }

    #[test]
    fn precision_converts_to_ms() {
        let out = owned(b"m v=1 1767225600", Precision::S, Meta::default()).unwrap();
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
        let none = owned(b"m v=1", Precision::Ns, Meta::default()).unwrap_err();
        assert!(none.detail.contains("no timestamp"), "{}", none.detail);
        assert_eq!(none.reason, DecodeReason::Influx);
    }

    proptest! {
        /// Arbitrary bytes never panic: samples or a counted error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = owned(&bytes, Precision::Ns, Meta::default());
        }

        /// Arbitrary text from the protocol's alphabet never panics either.
        #[test]
        fn protocol_like_text_never_panics(text in "[a-z0-9,= \\\\\"\\n.ituf-]{0,200}") {
            let _ = owned(text.as_bytes(), Precision::S, Meta::default());
        }

        /// What `encode` writes (escapes included) decodes to the same samples.
        #[test]
        fn encode_then_decode(samples in super::super::arb_samples("[a-z_][a-z_0-9]{0,8}", "[a-z ,=]{1,8}", -8_000_000_000_000..8_000_000_000_000)) {
            let refs: Vec<&Sample> = samples.iter().collect();
            let out = owned(&encode(&refs), Precision::Ns, Meta::default()).unwrap();
            let want: Vec<Sample> = samples
                .into_iter()
                .map(|s| Sample { name: format!("{}_value", s.name), ..s })
                .collect();
            prop_assert_eq!(out, want);
        }
    }
}
