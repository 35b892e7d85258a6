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
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum JsonTime {
    Number(f64),
    Text(String),
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
                        Key::Value => raw.value = map.next_value::<NumberOrText>()?.0,
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

/// `value`: a JSON number, or a string holding one (read without building a JSON value).
struct NumberOrText(Option<f64>);

impl<'de> Deserialize<'de> for NumberOrText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(d).map(NumberOrText)
    }
}

fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number, or the text of one (NaN, +Inf and -Inf included)")
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            value_of_text(v).map(Some).ok_or_else(|| {
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

/// Decodes one JSON sample object.
pub fn parse_json_sample(text: &str) -> Result<JsonSample, JsonSampleError> {
    if let Ok(s) = serde_json::from_str::<NativeSample>(text) {
        return s.finish();
    }
    serde_json::from_str::<JsonSampleRaw>(text)
        .map_err(json_error)?
        .finish()
}

/// Decodes a JSON array of sample objects (parsed once, without an intermediate tree).
pub fn parse_json_samples(text: &str) -> Result<Vec<JsonSample>, JsonSampleError> {
    if let Ok(native) = serde_json::from_str::<Vec<NativeSample>>(text) {
        return native.into_iter().map(NativeSample::finish).collect();
    }
    let raw: Vec<JsonSampleRaw> = serde_json::from_str(text).map_err(json_error)?;
    raw.into_iter().map(JsonSampleRaw::finish).collect()
}

fn json_error(e: serde_json::Error) -> JsonSampleError {
    let msg = e.to_string();
    JsonSampleError::Syntax {
        message: msg.split(" at line ").next().unwrap_or(&msg).to_string(),
        column: e.column(),
    }
}

impl JsonSampleRaw {
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
}
