//! Decoding input messages into samples.
//!
//! One entry point, [`decode_message`], picks the decoder from the input's configured format,
//! or from the message's `content-type` header where the producer marks it
//! ([`format_from_headers`]):
//!
//! - native protobuf `deadair.v1.SampleBatch` ([`decode_proto_batch`], zero-copy) and JSON;
//! - Prometheus remote-write 1.0, snappy-compressed `WriteRequest` ([`remote_write`], zero-copy
//!   after decompression);
//! - OpenTelemetry OTLP `ExportMetricsServiceRequest` ([`otlp`], gauges and sums zero-copy);
//! - Influx line protocol ([`influx`], zero-copy but for escaped text and composed names).
//!
//! Every decoder is total: any bytes give samples or a [`DecodeError`] with a bounded reason
//! (never a panic), and memory is bounded by the payload (remote-write by
//! `max_decompressed_bytes`).

use crate::codec::{parse_json, JsonShape};
use crate::config::{Input, InputFormat};
use crate::proto::Sample;

mod arena;
pub mod influx;
mod json;
pub mod otlp;
mod proto;
pub mod remote_write;

pub(crate) use proto::Wire;
pub use proto::{append_proto_batch, decode_proto_batch};

/// Why a message could not be decoded (a bounded set: these become metric label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeReason {
    Empty,
    Protobuf,
    Json,
    /// Not valid snappy (remote-write).
    Snappy,
    /// Decompressed size beyond `max_decompressed_bytes`.
    TooLarge,
    RemoteWrite,
    Otlp,
    Influx,
}

impl DecodeReason {
    pub const ALL: [DecodeReason; 8] = [
        Self::Empty,
        Self::Protobuf,
        Self::Json,
        Self::Snappy,
        Self::TooLarge,
        Self::RemoteWrite,
        Self::Otlp,
        Self::Influx,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Protobuf => "protobuf",
            Self::Json => "json",
            Self::Snappy => "snappy",
            Self::TooLarge => "too_large",
            Self::RemoteWrite => "remote_write",
            Self::Otlp => "otlp",
            Self::Influx => "influx",
        }
    }
}

/// What a decoder may use of a message besides its payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta<'a> {
    /// The `content-type` header, if any.
    pub content_type: Option<&'a str>,
    /// The `content-encoding` header, if any.
    pub content_encoding: Option<&'a str>,
    /// The message's Kafka timestamp, ms: the event time of Influx lines and OTLP points that
    /// carry none.
    pub timestamp: Option<i64>,
}

/// Reusable buffers of one consumer (decompressed bytes, owned samples): a message's samples
/// borrow from it until the next message.
#[derive(Debug, Default)]
pub struct Scratch {
    samples: Vec<Sample>,
    /// Which JSON reader goes first (see [`JsonShape`]).
    json: JsonShape,
    json_views: json::Buffers,
    bytes: Vec<u8>,
    influx: influx::Buffers,
    otlp: otlp::views::Buffers,
    /// The last `content-type` and `content-encoding` seen and the format they mean: a
    /// producer marks all its messages alike, so most are recognised by one comparison.
    last_marks: Option<(String, String, Option<InputFormat>)>,
    /// The allocations of the views last returned for a JSON message, given back by
    /// [`Scratch::reuse`]: one-sample messages then allocate nothing per message.
    spare: SampleViews<'static>,
}

impl Scratch {
    /// Gives back the views [`decode_message`] returned (emptied by
    /// [`SampleViews::recycled`]), so that the next message's views reuse their allocations.
    pub fn reuse(&mut self, spare: SampleViews<'static>) {
        self.spare = spare;
    }

    /// [`format_from_headers`], remembered for the last marks seen.
    fn format_of(&mut self, meta: Meta<'_>) -> Option<InputFormat> {
        let (ct, ce) = (meta.content_type?, meta.content_encoding.unwrap_or(""));
        if let Some((c, e, f)) = &self.last_marks {
            if c == ct && e == ce {
                return *f;
            }
        }
        let f = format_from_headers(meta);
        self.last_marks = Some((ct.to_string(), ce.to_string(), f));
        f
    }
}

/// The format a producer marked its message with, from its `content-type` header (and
/// `content-encoding`), if recognised:
///
/// | header | format |
/// |---|---|
/// | `application/x-protobuf;proto=prometheus.WriteRequest`, or any type with `content-encoding: snappy` | remote-write |
/// | `application/x-protobuf;proto=opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest` | OTLP |
/// | `application/x-protobuf;proto=deadair.v1.SampleBatch` | native protobuf |
/// | `application/json` | JSON |
/// | `text/plain` (Influx's own content type for line protocol) | Influx line protocol |
pub fn format_from_headers(meta: Meta<'_>) -> Option<InputFormat> {
    if meta
        .content_encoding
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("snappy"))
    {
        return Some(InputFormat::RemoteWrite);
    }
    let ct = meta.content_type?;
    let mut parts = ct.split(';').map(str::trim);
    let mime = parts.next()?;
    let proto = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("proto")
            .then(|| v.trim().trim_matches('"'))
    });
    let is = |m: &str| mime.eq_ignore_ascii_case(m);
    if is("application/x-protobuf") || is("application/protobuf") {
        match proto? {
            "prometheus.WriteRequest" => Some(InputFormat::RemoteWrite),
            "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest" => {
                Some(InputFormat::Otlp)
            }
            "deadair.v1.SampleBatch" => Some(InputFormat::Proto),
            _ => None,
        }
    } else if is("application/json") {
        Some(InputFormat::Json)
    } else if is("text/plain") {
        Some(InputFormat::Influx)
    } else {
        None
    }
}

/// A metric name in Prometheus' alphabet (`[A-Za-z0-9_:]`, no leading digit).
pub(crate) fn metric_name(s: &str) -> String {
    sanitise(s, |c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A label name in Prometheus' alphabet (`[A-Za-z0-9_]`, no leading digit).
pub(crate) fn label_name(s: &str) -> String {
    sanitise(s, |c| c.is_ascii_alphanumeric() || c == '_')
}

fn sanitise(s: &str, ok: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(s.chars().map(|c| if ok(c) { c } else { '_' }));
    out
}

/// The format a message is read as: with `autodetect`, the one its `content-type` (or
/// `content-encoding`) header names, if any; else the input's.
pub fn message_format(input: &Input, meta: Meta<'_>, scratch: &mut Scratch) -> InputFormat {
    match input.autodetect {
        // a message marked only with `content-encoding: snappy` is remote-write too
        true if meta.content_type.is_none() => format_from_headers(meta).unwrap_or(input.format),
        true => scratch.format_of(meta).unwrap_or(input.format),
        false => input.format,
    }
}

/// Decodes one message of `input`: its samples borrow from `payload` and `scratch`.
pub fn decode_message<'a>(
    input: &Input,
    meta: Meta<'_>,
    payload: &'a [u8],
    scratch: &'a mut Scratch,
) -> Result<SampleViews<'a>, DecodeError> {
    let format = message_format(input, meta, scratch);
    if payload.is_empty() {
        return Err(DecodeError {
            reason: DecodeReason::Empty,
            detail: "empty message".into(),
        });
    }
    scratch.samples.clear();
    // the zero-copy formats return their views; JSON decodes into owned samples
    let owned = &mut scratch.samples;
    match format {
        InputFormat::Proto => return decode_proto_batch(payload),
        InputFormat::RemoteWrite => {
            remote_write::decompress(payload, input.max_decompressed_bytes, &mut scratch.bytes)?;
            let scratch: &'a Scratch = scratch;
            return remote_write::decode(&scratch.bytes);
        }
        InputFormat::Json => {
            let text = std::str::from_utf8(payload).map_err(|e| DecodeError {
                reason: DecodeReason::Json,
                detail: format!("not UTF-8: {e}"),
            })?;
            let text = text.trim();
            let array = text.starts_with('[');
            // every shape without copies (deadair's tried first unless the last message was in
            // another); what those readers leave goes to the owned ones
            let strict_first = scratch.json.strict_first();
            let buf = &mut scratch.json_views;
            let zero_copy = (strict_first && json::read(text, array, false, buf))
                || (json::read(text, array, true, buf) && {
                    scratch.json.flexible_next();
                    true
                });
            if zero_copy {
                let out = std::mem::take(&mut scratch.spare).recycled();
                let scratch: &'a Scratch = scratch;
                return Ok(json::views(text, &scratch.json_views, out));
            }
            decode_json(text, array, &mut scratch.json, owned)?
        }
        InputFormat::Otlp => {
            let buf = &mut scratch.otlp;
            return otlp::views::decode(payload, input, meta, buf);
        }
        InputFormat::Influx => {
            let buf = &mut scratch.influx;
            return influx::decode(payload, input.precision, meta, buf);
        }
    }
    let scratch: &'a Scratch = scratch;
    Ok(SampleViews::from_owned(&scratch.samples))
}

/// A JSON message in deadair's own shape without escapes, read by hand and appended to `out` as
/// views of `payload` alone (see [`json::append`]); false, and `out` as it was, if it is not
/// (then [`decode_message`] reads it, or words why not). The same samples as
/// [`decode_message`] reads.
pub fn append_json<'a>(
    payload: &'a [u8],
    scratch: &mut Scratch,
    out: &mut SampleViews<'a>,
) -> bool {
    let Ok(text) = std::str::from_utf8(payload) else {
        return false;
    };
    let text = text.trim();
    json::append(text, text.starts_with('['), &mut scratch.json_views, out)
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} ({detail})", reason.as_str())]
pub struct DecodeError {
    pub reason: DecodeReason,
    pub detail: String,
}

/// One JSON sample object, or a JSON array of them, appended to `out`.
fn decode_json(
    text: &str,
    array: bool,
    shape: &mut JsonShape,
    out: &mut Vec<Sample>,
) -> Result<(), DecodeError> {
    let err = |detail: String| DecodeError {
        reason: DecodeReason::Json,
        detail,
    };
    parse_json(text, array, shape, |s| {
        out.push(Sample {
            name: s.name,
            labels: s.labels,
            timestamp: s.timestamp,
            value: s.value,
        })
    })
    .map_err(|e| err(e.to_string()))
}

/// Up to 10 samples for property tests: names and label values from the given patterns, label
/// names `[a-z_]{1,6}`, timestamps in `ts`, values within ±1e12.
#[cfg(test)]
pub(crate) fn arb_samples(
    name: &'static str,
    label_value: &'static str,
    ts: std::ops::Range<i64>,
) -> impl proptest::strategy::Strategy<Value = Vec<Sample>> {
    use proptest::prelude::*;
    let labels = proptest::collection::btree_map("[a-z_]{1,6}", label_value, 0..4);
    proptest::collection::vec((name, labels, ts, -1e12f64..1e12), 0..10).prop_map(|v| {
        v.into_iter()
            .map(|(name, labels, timestamp, value)| Sample {
                name,
                labels,
                timestamp,
                value,
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    type Row = (String, Vec<(String, String)>, i64, f64);

    #[test]
    fn a_recycled_vector_keeps_its_allocation() {
        let mut v: Vec<(&str, u64)> = Vec::with_capacity(64);
        let s = String::from("borrowed");
        v.push((&s, 1));
        let at = v.as_ptr() as usize;
        let w: Vec<(&'static str, u64)> = recycle(v);
        assert!(w.is_empty());
        assert_eq!(w.capacity(), 64);
        assert_eq!(w.as_ptr() as usize, at);
    }

    #[test]
    fn json_views_given_back_serve_the_next_message() {
        let input = Input::new("t", InputFormat::Json);
        let mut scratch = Scratch::default();
        let first = br#"{"name":"up","labels":{"job":"a","x":"1"},"timestamp":1000,"value":1}"#;
        let views = decode_message(&input, Meta::default(), first, &mut scratch).unwrap();
        let at = (
            views.samples.as_ptr() as usize,
            views.labels.as_ptr() as usize,
        );
        let spare = views.recycled();
        scratch.reuse(spare);
        let second = br#"{"name":"down","labels":{"job":"b"},"timestamp":1700000002000,"value":2}"#;
        let views = decode_message(&input, Meta::default(), second, &mut scratch).unwrap();
        assert_eq!(
            (
                views.samples.as_ptr() as usize,
                views.labels.as_ptr() as usize
            ),
            at,
            "the same allocations"
        );
        let rows: Vec<_> = views
            .refs()
            .map(|r| (r.name, r.labels.to_vec(), r.ts))
            .collect();
        assert_eq!(
            rows,
            vec![("down", vec![("job", "b")], 1_700_000_002_000)],
            "nothing of the first"
        );
    }

    fn rows(format: InputFormat, payload: &[u8]) -> Result<Vec<Row>, DecodeReason> {
        let mut scratch = Scratch::default();
        let input = Input::new("t", format);
        let views =
            decode_message(&input, Meta::default(), payload, &mut scratch).map_err(|e| e.reason)?;
        Ok(views
            .refs()
            .map(|r| {
                let l = r.labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
                (r.name.to_string(), l.collect(), r.ts, r.value)
            })
            .collect())
    }

    #[test]
    fn marks_are_read_per_message_with_one_scratch() {
        let batch = crate::proto::SampleBatch {
            samples: vec![Sample {
                name: "cpu".into(),
                labels: [("h".into(), "a".into())].into(),
                timestamp: 1_767_225_600_000,
                value: 1.5,
            }],
        };
        let proto = batch.encode_to_vec();
        let json = br#"{"name":"cpu","labels":{"h":"a"},"timestamp":1767225600000,"value":1.5}"#;
        let marked = |ct: &'static str| Meta {
            content_type: Some(ct),
            ..Meta::default()
        };
        let (pb, js) = (
            marked("application/x-protobuf;proto=deadair.v1.SampleBatch"),
            marked("application/json"),
        );
        // a JSON topic whose producers mark some messages as protobuf
        let mut input = Input::new("t", InputFormat::Json);
        input.autodetect = true;
        let mut scratch = Scratch::default();
        for (meta, payload) in [
            (js, &json[..]),
            (pb, &proto),
            (pb, &proto),
            (js, json),
            (Meta::default(), json),
        ] {
            let n = decode_message(&input, meta, payload, &mut scratch).map(|v| v.len());
            assert_eq!(n, Ok(1), "{meta:?}");
        }
        // a wrong mark is not remembered for the next, different one
        let bad = decode_message(&input, pb, json, &mut scratch).map(|v| v.len());
        assert!(bad.is_err());
        assert_eq!(
            decode_message(&input, js, json, &mut scratch).map(|v| v.len()),
            Ok(1)
        );
    }

    #[test]
    fn decodes_proto_and_both_json_shapes() {
        let batch = crate::proto::SampleBatch {
            samples: vec![Sample {
                name: "cpu".into(),
                labels: [("h".into(), "a".into())].into(),
                timestamp: 1_767_225_600_000,
                value: 1.5,
            }],
        };
        let proto = rows(InputFormat::Proto, &batch.encode_to_vec()).unwrap();
        let one = rows(
            InputFormat::Json,
            br#"{"name":"cpu","labels":{"h":"a"},"timestamp":1767225600000,"value":1.5}"#,
        )
        .unwrap();
        let two = rows(
            InputFormat::Json,
            br#"[{"name":"cpu","timestamp":6,"value":1},{"name":"m","timestamp":7,"value":2}]"#,
        )
        .unwrap();
        assert_eq!(proto, one);
        assert_eq!(proto.len(), 1);
        assert_eq!(two.len(), 2);
        // epoch numbers below 1e11 are seconds
        assert_eq!(two[0].2, 6_000);
    }

    #[test]
    fn bad_payloads_are_classified() {
        let r = |f, p: &[u8]| rows(f, p).unwrap_err();
        assert_eq!(r(InputFormat::Proto, b""), DecodeReason::Empty);
        assert_eq!(
            r(InputFormat::Proto, b"\xff\xff\xff"),
            DecodeReason::Protobuf
        );
        assert_eq!(r(InputFormat::Json, b"{"), DecodeReason::Json);
        assert_eq!(r(InputFormat::Json, b"[1]"), DecodeReason::Json);
        assert_eq!(r(InputFormat::Json, b"\xff"), DecodeReason::Json);
    }
}

/// Samples as the engine reads them, borrowing names and labels: from a protobuf payload
/// ([`decode_proto_batch`], no copies) or from owned samples ([`SampleViews::from_owned`]).
///
/// The protobuf wire format is parsed by hand (fields 1-4 of `Sample`, map entries of
/// `labels`; unknown fields are skipped), so a batch costs two allocations instead of several
/// per sample. Labels of each sample are sorted by key (a repeated key keeps its last value, as
/// protobuf maps do).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SampleViews<'a> {
    pub samples: Vec<SampleView<'a>>,
    /// The label pairs of every sample, each sample's sorted by key.
    pub labels: Vec<(&'a str, &'a str)>,
}

impl SampleViews<'_> {
    /// The views emptied, their allocations kept, for views of any lifetime (see
    /// [`Scratch::reuse`]).
    pub fn recycled<'b>(self) -> SampleViews<'b> {
        SampleViews {
            samples: recycle(self.samples),
            labels: recycle(self.labels),
        }
    }
}

/// An empty vector of another element type of the same layout (here: the same type with
/// other lifetimes) on the same allocation: std collects an emptied `into_iter` in place, so
/// once it has grown, reusing it allocates nothing.
pub fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// One decoded sample, borrowing the message it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleView<'a> {
    /// The metric name.
    pub name: &'a str,
    /// Its labels: this range of [`SampleViews::labels`].
    pub labels: std::ops::Range<usize>,
    /// Event time, ms since the Unix epoch.
    pub timestamp: i64,
    pub value: f64,
}

impl<'a> SampleViews<'a> {
    /// Views of owned samples (whose labels are already sorted, being a `BTreeMap`).
    pub fn from_owned(samples: &'a [Sample]) -> Self {
        let mut out = SampleViews::default();
        out.extend_owned(samples);
        out
    }

    /// Appends views of owned samples.
    pub(crate) fn extend_owned(&mut self, samples: &'a [Sample]) {
        for s in samples {
            let start = self.labels.len();
            self.labels
                .extend(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            self.samples.push(SampleView {
                name: s.name.as_str(),
                labels: start..self.labels.len(),
                timestamp: s.timestamp,
                value: s.value,
            });
        }
    }

    /// Sorts the labels pushed since `start` by key; a repeated key keeps its last value.
    pub(crate) fn normalise_labels(&mut self, start: usize) {
        let labels = &mut self.labels[start..];
        // keys nearly always differ in their first byte: that decides without a `memcmp` call
        let before = |a: &str, b: &str| match (a.as_bytes().first(), b.as_bytes().first()) {
            (Some(x), Some(y)) if x != y => x < y,
            _ => a < b,
        };
        if labels.windows(2).all(|p| before(p[0].0, p[1].0)) {
            return;
        }
        labels.sort_by(|a, b| a.0.cmp(b.0)); // stable: a repeated key keeps its order
        let mut kept: Vec<(&str, &str)> = Vec::with_capacity(labels.len());
        for &(k, v) in labels.iter() {
            match kept.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => kept.push((k, v)),
            }
        }
        self.labels.truncate(start);
        self.labels.extend(kept);
    }

    /// The newest timestamp, if any.
    pub fn newest(&self) -> Option<i64> {
        self.newest_from(0)
    }

    /// The newest timestamp among the samples from index `start` on.
    pub fn newest_from(&self, start: usize) -> Option<i64> {
        self.samples.get(start..)?.iter().map(|s| s.timestamp).max()
    }

    /// Keeps the samples from index `start` on that pass `keep` (those before are not looked
    /// at); returns how many were dropped.
    pub fn retain_from(&mut self, start: usize, keep: impl Fn(&SampleView<'a>) -> bool) -> usize {
        let mut kept = start;
        for i in start..self.samples.len() {
            if keep(&self.samples[i]) {
                self.samples.swap(kept, i);
                kept += 1;
            }
        }
        let dropped = self.samples.len() - kept;
        self.samples.truncate(kept);
        dropped
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Empties the views, keeping their allocations.
    pub fn clear(&mut self) {
        self.samples.clear();
        self.labels.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples as engine input.
    pub fn refs(
        &self,
    ) -> impl Iterator<Item = crate::engine::SampleRef<'_, [(&'a str, &'a str)]>> + '_ {
        self.samples.iter().map(|s| crate::engine::SampleRef {
            name: s.name,
            labels: &self.labels[s.labels.clone()],
            ts: s.timestamp,
            value: s.value,
        })
    }
}
