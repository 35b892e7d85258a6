//! Encoding and decoding at the edges of the engine.
//!
//! - Alert events -> protobuf `deadair.v1.AlertEvent` and -> JSON (same field names; enums as
//!   lower-case words; times as RFC 3339; absent numbers omitted).
//! - JSON samples -> `(name, labels, timestamp ms, value)`:
//!   `{"name": "cpu", "labels": {"host": "a"}, "timestamp": 1767225600000 | "2026-01-01T00:00:00Z", "value": 1.5}`.
//!   A numeric timestamp below 1e11 is read as epoch seconds, otherwise milliseconds. The same
//!   reader takes the shapes metric pipelines already write to Kafka:
//!   - prometheus-kafka-adapter: `{"timestamp": "2026-01-01T00:00:00Z", "value": "9876543210",
//!     "name": "up", "labels": {"__name__": "up", "job": "api"}}`: the value as a string
//!     (`NaN`, `+Inf`, `-Inf` included), `__name__` in the labels (dropped there; it names the
//!     metric when `name` is absent);
//!   - Vector's metric events (its `json` codec, or `native_json` wrapped in `{"metric": ..}`):
//!     `{"name": "cpu_seconds_total", "namespace": "host", "tags": {"cpu": "0"}, "timestamp":
//!     "2026-01-01T00:00:00Z", "kind": "absolute", "counter": {"value": 1.5}}` (or `"gauge"`):
//!     the metric is `namespace_name`, the tags its labels; an incremental counter's value is
//!     its increment. Other Vector metric types (sets, distributions, histograms, summaries)
//!     are refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertKind, AlertStatus};
use crate::proto;
use crate::time::{epoch_to_ms, format_rfc3339, parse_timestamp};

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn kind_to_proto(k: AlertKind) -> proto::AlertKind {
    match k {
        AlertKind::Anomaly => proto::AlertKind::Anomaly,
        AlertKind::Absence => proto::AlertKind::Absence,
        AlertKind::SourceSilent => proto::AlertKind::SourceSilent,
        AlertKind::PipelineLag => proto::AlertKind::PipelineLag,
        AlertKind::CardinalityLimit => proto::AlertKind::CardinalityLimit,
        AlertKind::Heartbeat => proto::AlertKind::Heartbeat,
        AlertKind::Stuck => proto::AlertKind::Stuck,
    }
}

/// The protobuf form of an alert event.
pub fn alert_to_proto(a: &Alert) -> proto::AlertEvent {
    proto::AlertEvent {
        alert_id: a.alert_id.clone(),
        version: a.version,
        kind: kind_to_proto(a.kind) as i32,
        state: match a.state {
            AlertStatus::Firing => proto::AlertState::Firing,
            AlertStatus::Resolved => proto::AlertState::Resolved,
        } as i32,
        rule: a.rule.to_string(),
        severity: a.severity.to_string(),
        name: a.name.clone(),
        labels: a.labels.iter().cloned().collect(),
        event_time: Some(timestamp(a.event_time)),
        started_at: Some(timestamp(a.started_at)),
        emitted_at: Some(timestamp(a.emitted_at)),
        value: a.value,
        expected: a.expected,
        lower: a.lower,
        upper: a.upper,
        score: a.score,
        summary: a.summary.clone(),
        annotations: a.annotations.iter().cloned().collect(),
    }
}

/// The JSON form of an alert event (field names as in `alert.proto`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertJson {
    pub alert_id: String,
    pub version: u64,
    pub kind: String,
    pub state: String,
    pub rule: String,
    pub severity: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub event_time: String,
    pub started_at: String,
    pub emitted_at: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expected: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lower: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upper: Option<f64>,
    pub score: f64,
    pub summary: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

impl From<&Alert> for AlertJson {
    fn from(a: &Alert) -> Self {
        Self {
            alert_id: a.alert_id.clone(),
            version: a.version,
            kind: a.kind.as_str().into(),
            state: a.state.as_str().into(),
            rule: a.rule.to_string(),
            severity: a.severity.to_string(),
            name: a.name.clone(),
            labels: a.labels.iter().cloned().collect(),
            event_time: format_rfc3339(a.event_time),
            started_at: format_rfc3339(a.started_at),
            emitted_at: format_rfc3339(a.emitted_at),
            value: finite(a.value),
            expected: finite(a.expected),
            lower: finite(a.lower),
            upper: finite(a.upper),
            score: a.score,
            summary: a.summary.clone(),
            annotations: a.annotations.iter().cloned().collect(),
        }
    }
}

/// One alert event as a single line of JSON.
pub fn alert_to_json(a: &Alert) -> String {
    // Serialising this struct cannot fail: all keys are strings and all numbers finite.
    serde_json::to_string(&AlertJson::from(a)).unwrap_or_default()
}

/// A timestamp as JSON allows it: a number (epoch s/ms) or a string (any `parse_timestamp` form).
/// Read by hand: serde's untagged enums buffer the value first, which cost more than the rest
/// of a one-sample message.
#[derive(Debug, Clone)]
enum JsonTime {
    Number(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for JsonTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = JsonTime;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a timestamp: epoch seconds or milliseconds, or RFC 3339 text")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<JsonTime, E> {
                Ok(JsonTime::Number(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<JsonTime, E> {
                Ok(JsonTime::Number(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<JsonTime, E> {
                Ok(JsonTime::Number(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<JsonTime, E> {
                Ok(JsonTime::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// deadair's own JSON sample shape, read first: strict, and fast (a message in another shape
/// falls back to [`JsonSampleRaw`]).
#[derive(Debug, Clone, Deserialize)]
struct NativeSample {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    timestamp: JsonTime,
    value: f64,
}

impl NativeSample {
    fn finish(self) -> Result<JsonSample, JsonSampleError> {
        if self.name.is_empty() || self.labels.contains_key("__name__") {
            // an empty name is an error; a `__name__` label is the adapter's shape
            return JsonSampleRaw {
                name: Some(self.name),
                labels: self.labels,
                timestamp: Some(self.timestamp),
                value: Some(self.value),
                ..JsonSampleRaw::default()
            }
            .finish();
        }
        let timestamp = match self.timestamp {
            JsonTime::Number(n) => epoch_to_ms(n)?,
            JsonTime::Text(s) => parse_timestamp(&s)?,
        };
        Ok(JsonSample {
            name: self.name,
            labels: self.labels,
            timestamp,
            value: self.value,
        })
    }
}

/// One JSON sample as written (see the module docs for the shapes). Deserialised by hand: the
/// derived visitor for this many optional fields is about a fifth slower on the hot path.
#[derive(Debug, Clone, Default)]
struct JsonSampleRaw {
    name: Option<String>,
    /// Vector: the metric's namespace, the Prometheus name's prefix.
    namespace: Option<String>,
    /// `labels`, or Vector's `tags`.
    labels: BTreeMap<String, String>,
    timestamp: Option<JsonTime>,
    /// A number, or a string (prometheus-kafka-adapter writes every value as one).
    value: Option<f64>,
    /// `value` was a string.
    value_text: bool,
    /// Vector's gauge or counter: `{"value": 1.5}`.
    gauge: Option<VectorValue>,
    counter: Option<VectorValue>,
    /// Vector's `native_json` wraps the metric: `{"metric": {...}}`.
    metric: Option<Box<JsonSampleRaw>>,
}

/// The keys of a JSON sample object deadair reads; any other is skipped.
enum Key {
    Name,
    Namespace,
    Labels,
    Timestamp,
    Value,
    Gauge,
    Counter,
    Metric,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "name" => Key::Name,
                    "namespace" => Key::Namespace,
                    "labels" | "tags" => Key::Labels,
                    "timestamp" => Key::Timestamp,
                    "value" => Key::Value,
                    "gauge" => Key::Gauge,
                    "counter" => Key::Counter,
                    "metric" => Key::Metric,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for JsonSampleRaw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonSampleRaw;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sample object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonSampleRaw, A::Error> {
                let mut raw = JsonSampleRaw::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Name => raw.name = Some(map.next_value()?),
                        Key::Namespace => raw.namespace = map.next_value()?,
                        Key::Labels => raw.labels = map.next_value()?,
                        Key::Timestamp => raw.timestamp = Some(map.next_value()?),
                        Key::Value => {
                            let v = map.next_value::<NumberOrText>()?;
                            (raw.value, raw.value_text) = (v.0, v.1);
                        }
                        Key::Gauge => raw.gauge = Some(map.next_value()?),
                        Key::Counter => raw.counter = Some(map.next_value()?),
                        Key::Metric => raw.metric = Some(Box::new(map.next_value()?)),
                        Key::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(raw)
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct VectorValue {
    value: f64,
}

/// A value written as text: a decimal number, `NaN`, `+Inf`, `-Inf` (Go's and Prometheus'
/// spellings).
fn value_of_text(text: &str) -> Option<f64> {
    match text.trim() {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse::<f64>().ok(),
    }
}

/// `value`: a JSON number, or a string holding one (read without building a JSON value); and
/// whether it was a string.
pub(crate) struct NumberOrText(pub Option<f64>, pub bool);

impl<'de> Deserialize<'de> for NumberOrText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(d)
    }
}

fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NumberOrText, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = NumberOrText;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number, or the text of one (NaN, +Inf and -Inf included)")
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(NumberOrText(Some(v), false))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(NumberOrText(Some(v as f64), false))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(NumberOrText(Some(v as f64), false))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            value_of_text(v)
                .map(|x| NumberOrText(Some(x), true))
                .ok_or_else(|| {
                    E::custom(format!(
                        "expected a number as `value`, or the text NaN, +Inf or -Inf, found `{v}`"
                    ))
                })
        }
    }
    d.deserialize_any(V)
}

/// A decoded JSON sample.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonSample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub timestamp: i64,
    pub value: f64,
}

/// A JSON sample that could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonSampleError {
    #[error(
        "expected a sample like {{\"name\": \"cpu\", \"labels\": {{\"host\": \"a\"}}, \"timestamp\": 1767225600000, \"value\": 1.5}}: {message} (column {column})"
    )]
    Syntax { message: String, column: usize },
    #[error("`name` must not be empty")]
    EmptyName,
    #[error(
        "expected a sample like {{\"name\": \"cpu\", \"labels\": {{\"host\": \"a\"}}, \"timestamp\": 1767225600000, \"value\": 1.5}}: missing field `timestamp`"
    )]
    NoTimestamp,
    #[error(
        "expected a sample like {{\"name\": \"cpu\", \"labels\": {{\"host\": \"a\"}}, \"timestamp\": 1767225600000, \"value\": 1.5}}: missing field `value` (or Vector's `gauge` or `counter`)"
    )]
    NoValue,
    #[error("`name` ({name}) and the `__name__` label ({label}) disagree")]
    NameMismatch { name: String, label: String },
    #[error(transparent)]
    Time(#[from] crate::time::TimeError),
}

/// Which reader a JSON message is tried with first. deadair's own shape is read by a strict,
/// fast reader, and any other shape by a flexible one after the strict one fails; a stream of
/// messages in another shape (prometheus-kafka-adapter's, Vector's) would pay for that failure
/// every time, so after one such message the flexible reader goes first, until a message that
/// the strict reader takes. The result never depends on the order: a message the strict reader
/// takes is read by it either way.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonShape {
    flexible_first: bool,
}

impl JsonShape {
    /// Whether deadair's own shape is tried first.
    pub fn strict_first(&self) -> bool {
        !self.flexible_first
    }

    /// A message in another shape was read (by the zero-copy reader): the flexible reader
    /// goes first next time.
    pub fn flexible_next(&mut self) {
        self.flexible_first = true;
    }
}

/// Decodes one JSON sample object.
pub fn parse_json_sample(text: &str) -> Result<JsonSample, JsonSampleError> {
    let mut one = None;
    parse_json(text, false, &mut JsonShape::default(), |s| one = Some(s))?;
    one.ok_or(JsonSampleError::EmptyName) // (one object read: one sample)
}

/// Decodes a JSON array of sample objects (parsed once, without an intermediate tree).
pub fn parse_json_samples(text: &str) -> Result<Vec<JsonSample>, JsonSampleError> {
    let mut all = Vec::new();
    parse_json(text, true, &mut JsonShape::default(), |s| all.push(s))?;
    Ok(all)
}

/// A JSON message as one reader read it: one object, or an array of them.
enum Read<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: serde::de::DeserializeOwned> Read<T> {
    fn from(text: &str, array: bool) -> Result<Self, serde_json::Error> {
        match array {
            true => serde_json::from_str(text).map(Read::Many),
            false => serde_json::from_str(text).map(Read::One),
        }
    }

    fn all(&self, f: impl Fn(&T) -> bool) -> bool {
        match self {
            Read::One(t) => f(t),
            Read::Many(v) => v.iter().all(f),
        }
    }

    fn finish(
        self,
        finish: impl Fn(T) -> Result<JsonSample, JsonSampleError>,
        mut emit: impl FnMut(JsonSample),
    ) -> Result<(), JsonSampleError> {
        match self {
            Read::One(t) => emit(finish(t)?),
            Read::Many(v) => {
                for t in v {
                    emit(finish(t)?);
                }
            }
        }
        Ok(())
    }
}

/// Decodes a JSON sample object, or an `array` of them, into `emit`, trying the reader `shape`
/// says first (and updating it).
pub fn parse_json(
    text: &str,
    array: bool,
    shape: &mut JsonShape,
    emit: impl FnMut(JsonSample),
) -> Result<(), JsonSampleError> {
    let strict = |text: &str| Read::<NativeSample>::from(text, array).ok();
    if !shape.flexible_first {
        if let Some(read) = strict(text) {
            return read.finish(NativeSample::finish, emit);
        }
        shape.flexible_first = true;
        return Read::<JsonSampleRaw>::from(text, array)
            .map_err(json_error)?
            .finish(JsonSampleRaw::finish, emit);
    }
    // flexible first: a message the strict reader would take is read by it (as it would have
    // been without this order), and so is one the flexible reader refuses
    let flexible = Read::<JsonSampleRaw>::from(text, array);
    if let Ok(raw) = &flexible {
        if !raw.all(JsonSampleRaw::strict_could_read) {
            return flexible
                .map_err(json_error)?
                .finish(JsonSampleRaw::finish, emit);
        }
    }
    match (strict(text), flexible) {
        (Some(read), _) => {
            shape.flexible_first = false;
            read.finish(NativeSample::finish, emit)
        }
        (None, raw) => raw.map_err(json_error)?.finish(JsonSampleRaw::finish, emit),
    }
}

fn json_error(e: serde_json::Error) -> JsonSampleError {
    let msg = e.to_string();
    JsonSampleError::Syntax {
        message: msg.split(" at line ").next().unwrap_or(&msg).to_string(),
        column: e.column(),
    }
}

impl JsonSampleRaw {
    /// Whether the strict reader could have read this object: it needs a `name`, a numeric
    /// `value` and a `timestamp` (and ignores every other key).
    fn strict_could_read(&self) -> bool {
        self.name.is_some() && self.value.is_some() && !self.value_text && self.timestamp.is_some()
    }

    fn finish(self) -> Result<JsonSample, JsonSampleError> {
        let mut raw = match self.metric {
            Some(inner) => *inner,
            None => self,
        };
        // prometheus-kafka-adapter repeats the name as the `__name__` label
        let label_name = raw.labels.remove("__name__");
        let name = match (raw.name, label_name) {
            (Some(n), Some(l)) if n != l => {
                return Err(JsonSampleError::NameMismatch { name: n, label: l })
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => String::new(),
        };
        if name.is_empty() {
            return Err(JsonSampleError::EmptyName);
        }
        let name = match raw.namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}_{name}"),
            _ => name,
        };
        let value = match (raw.value, raw.gauge, raw.counter) {
            (Some(v), _, _) => v,
            (None, Some(g), _) => g.value,
            (None, None, Some(c)) => c.value,
            (None, None, None) => return Err(JsonSampleError::NoValue),
        };
        let timestamp = match raw.timestamp {
            Some(JsonTime::Number(n)) => epoch_to_ms(n)?,
            Some(JsonTime::Text(s)) => parse_timestamp(&s)?,
            None => return Err(JsonSampleError::NoTimestamp),
        };
        Ok(JsonSample {
            name,
            labels: raw.labels,
            timestamp,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::sync::Arc;

    fn alert() -> Alert {
        Alert {
            alert_id: "00112233aabbccdd".into(),
            version: 3,
            kind: AlertKind::Absence,
            state: AlertStatus::Firing,
            rule: Arc::from("default"),
            severity: Arc::from("warning"),
            name: "cpu".into(),
            labels: vec![("host".into(), "a".into())],
            annotations: vec![],
            event_time: 1_767_225_600_250,
            started_at: 1_767_225_600_250,
            emitted_at: 1_767_225_601_000,
            value: None,
            expected: Some(f64::NAN),
            lower: None,
            upper: None,
            score: 1.0,
            summary: "cpu{host=\"a\"} has not reported".into(),
            series: 7,
        }
    }

    #[test]
    fn json_form_uses_proto_field_names_and_rfc3339() {
        let j: serde_json::Value = serde_json::from_str(&alert_to_json(&alert())).unwrap();
        assert_eq!(j["kind"], "absence");
        assert_eq!(j["state"], "firing");
        assert_eq!(j["event_time"], "2026-01-01T00:00:00.250Z");
        assert_eq!(j["labels"]["host"], "a");
        assert!(
            j.get("value").is_none() && j.get("expected").is_none(),
            "absent and NaN omitted"
        );
    }

    #[test]
    fn proto_form_round_trips() {
        let p = alert_to_proto(&alert());
        let back = proto::AlertEvent::decode(p.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back.kind(), proto::AlertKind::Absence);
        assert_eq!(back.state(), proto::AlertState::Firing);
        assert_eq!(back.event_time.unwrap().nanos, 250_000_000);
        assert_eq!(back.value, None);
        assert_eq!(back.alert_id, "00112233aabbccdd");
    }

    #[test]
    fn json_samples_accept_both_timestamp_forms() {
        let a = parse_json_sample(
            r#"{"name":"cpu","labels":{"host":"a"},"timestamp":1767225600000,"value":1.5}"#,
        )
        .unwrap();
        let b = parse_json_sample(r#"{"name":"cpu","labels":{"host":"a"},"timestamp":"2026-01-01T00:00:00Z","value":1.5}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.timestamp, 1_767_225_600_000);
        let e = parse_json_sample(r#"{"name":"cpu","timestamp":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `value`"), "{e}");
        assert!(parse_json_sample(r#"{"name":"cpu","timestamp":"soon","value":1}"#).is_err());
    }

    #[test]
    fn prometheus_kafka_adapter_samples_parse() {
        // the shape of prometheus-kafka-adapter's JSON serializer: the value as a string,
        // RFC 3339 time, `__name__` among the labels
        let a = parse_json_sample(
            r#"{"timestamp":"2026-01-01T00:00:00Z","value":"9876543210","name":"up","labels":{"__name__":"up","instance":"a:9100","job":"api"}}"#,
        )
        .unwrap();
        assert_eq!(a.name, "up");
        assert_eq!(a.timestamp, 1_767_225_600_000);
        assert_eq!(a.value, 9_876_543_210.0);
        assert_eq!(
            a.labels.into_iter().collect::<Vec<_>>(),
            vec![
                ("instance".to_string(), "a:9100".to_string()),
                ("job".to_string(), "api".to_string())
            ],
            "__name__ is the name, not a label"
        );
        for (text, want) in [
            ("NaN", f64::NAN),
            ("+Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("1e-3", 1e-3),
        ] {
            let s = parse_json_sample(&format!(
                r#"{{"timestamp":"2026-01-01T00:00:00Z","value":"{text}","name":"x","labels":{{"__name__":"x"}}}}"#
            ))
            .unwrap();
            assert!(
                s.value == want || (s.value.is_nan() && want.is_nan()),
                "{text}: {}",
                s.value
            );
        }
        // the name may come from `__name__` alone; a disagreement is refused
        let b =
            parse_json_sample(r#"{"timestamp":1767225600,"value":"1","labels":{"__name__":"up"}}"#)
                .unwrap();
        assert_eq!((b.name.as_str(), b.timestamp), ("up", 1_767_225_600_000));
        let e = parse_json_sample(
            r#"{"timestamp":1,"value":"1","name":"up","labels":{"__name__":"down"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("disagree"), "{e}");
        let e = parse_json_sample(r#"{"timestamp":1,"value":"fast","name":"up"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("found `fast`"), "{e}");
    }

    #[test]
    fn vector_metric_events_parse() {
        // Vector's `json` codec for a metric event, and `native_json`'s wrapper
        let c = parse_json_sample(
            r#"{"name":"cpu_seconds_total","namespace":"host","tags":{"cpu":"0","mode":"idle"},"timestamp":"2026-01-01T00:00:00Z","kind":"absolute","counter":{"value":1234.5}}"#,
        )
        .unwrap();
        assert_eq!(c.name, "host_cpu_seconds_total");
        assert_eq!(c.value, 1234.5);
        assert_eq!(c.labels.get("mode").map(String::as_str), Some("idle"));
        let g = parse_json_sample(
            r#"{"metric":{"name":"memory_used_bytes","tags":{"host":"a"},"timestamp":"2026-01-01T00:00:01Z","kind":"absolute","gauge":{"value":2048.0}}}"#,
        )
        .unwrap();
        assert_eq!(
            (g.name.as_str(), g.value, g.timestamp),
            ("memory_used_bytes", 2048.0, 1_767_225_601_000)
        );
        // a type deadair has no single value for
        let e = parse_json_sample(
            r#"{"name":"users","timestamp":"2026-01-01T00:00:00Z","kind":"absolute","set":{"values":["a"]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing field `value`"), "{e}");
    }

    /// After a message in another shape the flexible reader goes first; the samples read (and
    /// the errors) are the same as with the strict reader first, whatever came before.
    #[test]
    fn the_reader_order_follows_the_stream_and_never_changes_a_result() {
        let messages = [
            r#"{"name":"cpu","labels":{"host":"a"},"timestamp":1767225600000,"value":1.5}"#,
            r#"{"timestamp":"2026-01-01T00:00:00Z","value":"2","name":"up","labels":{"__name__":"up"}}"#,
            r#"{"timestamp":"2026-01-01T00:00:01Z","value":"NaN","labels":{"__name__":"up","job":"x"}}"#,
            // strict reads it (and ignores `tags`, which the flexible reader takes as labels)
            r#"{"name":"cpu","tags":{"a":"b"},"labels":{"host":"a"},"timestamp":1767225600,"value":3}"#,
            r#"{"name":"x","namespace":"host","tags":{"cpu":"0"},"timestamp":"2026-01-01T00:00:00Z","gauge":{"value":4}}"#,
            // strict reads it; the flexible reader refuses `tags` that are not text
            r#"{"name":"cpu","tags":{"a":1},"timestamp":1767225600,"value":5}"#,
            r#"{"name":"cpu","timestamp":1767225600}"#,
            r#"[{"name":"a","timestamp":1,"value":1},{"name":"b","timestamp":2,"value":"3"}]"#,
            r#"[{"name":"a","timestamp":1,"value":1},{"name":"b","timestamp":2,"value":3}]"#,
        ];
        let read = |text: &str, shape: &mut JsonShape| {
            let mut out = Vec::new();
            // compared as text: NaN is a value here
            parse_json(text, text.starts_with('['), shape, |s| out.push(s))
                .map(|()| format!("{out:?}"))
                .map_err(|e| e.to_string())
        };
        let mut firsts = Vec::new();
        // every message after every other one
        for before in &messages {
            for m in &messages {
                let mut shape = JsonShape::default();
                let _ = read(before, &mut shape);
                firsts.push(shape.flexible_first);
                assert_eq!(
                    read(m, &mut shape),
                    read(m, &mut JsonShape::default()),
                    "{m} after {before}"
                );
            }
        }
        // the adapter's message turns the order around; deadair's own turns it back
        let mut shape = JsonShape::default();
        read(messages[1], &mut shape).unwrap();
        assert!(shape.flexible_first);
        read(messages[4], &mut shape).unwrap();
        assert!(shape.flexible_first);
        read(messages[0], &mut shape).unwrap();
        assert!(!shape.flexible_first);
        assert!(firsts.iter().any(|&f| f) && firsts.iter().any(|&f| !f));
        assert!(read(messages[3], &mut shape)
            .unwrap()
            .contains(r#"labels: {"host": "a"}"#));
    }
}
