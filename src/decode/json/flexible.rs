//! The other JSON shapes without copies: prometheus-kafka-adapter's (`value` as text, the name
//! repeated as a `__name__` label) and Vector's (`namespace`, `tags`, `gauge` or `counter`,
//! `native_json`'s `{"metric": ..}` wrapper), read as the owned flexible reader
//! (`codec::JsonSampleRaw`) reads them: a repeated key's last value counts, other keys are
//! skipped. An object deadair's strict reader could read (a `name`, a numeric `value` and a
//! `timestamp`) is refused here: the owned readers read it the strict way. So is anything they
//! would refuse or word an error for (no name, names that disagree, no value, an escaped key).

use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{refuse, Buffers, Labels, Str, Time};
use crate::codec::NumberOrText;
use crate::decode::arena::At;

/// An object's fields as the flexible reader keeps them (the last of a repeated key).
#[derive(Default)]
struct Fields {
    name: Option<At>,
    namespace: Option<At>,
    /// `labels` or `tags`: a range of `Buffers::labels`
    labels: Option<Range<usize>>,
    timestamp: Option<i64>,
    value: Option<f64>,
    value_text: bool,
    gauge: Option<f64>,
    counter: Option<f64>,
    /// `native_json`'s wrapped metric: read instead of this object's own fields
    metric: Option<Box<Fields>>,
}

/// One sample object, finished into `buf.samples`.
pub(super) fn sample<'de, A: MapAccess<'de>>(
    map: A,
    text: &str,
    buf: &mut Buffers,
) -> Result<(), A::Error> {
    let outer = fields(map, text, buf)?;
    let strict = outer.name.is_some()
        && outer.value.is_some()
        && !outer.value_text
        && outer.timestamp.is_some();
    if strict {
        return Err(refuse());
    }
    let f = match outer.metric {
        Some(inner) => *inner,
        None => outer,
    };
    // `__name__` (its last value) names the metric, and is not a label
    let start = buf.labels.len();
    let mut label_name = None;
    for i in f.labels.unwrap_or(0..0) {
        let (k, v) = buf.labels[i];
        match buf.arena.text(text, k) {
            "__name__" => label_name = Some(v),
            _ => buf.labels.push((k, v)),
        }
    }
    let t = |at| buf.arena.text(text, at);
    let name = match (f.name, label_name) {
        (Some(n), Some(l)) if t(n) != t(l) => return Err(refuse()),
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => return Err(refuse()),
    };
    if t(name).is_empty() {
        return Err(refuse());
    }
    let name = match f.namespace {
        Some(ns) if !t(ns).is_empty() => {
            let joined = format!("{}_{}", t(ns), t(name));
            buf.arena.keep(&joined)
        }
        _ => name,
    };
    let (Some(value), Some(timestamp)) = (f.value.or(f.gauge).or(f.counter), f.timestamp) else {
        return Err(refuse());
    };
    buf.samples
        .push((name, start..buf.labels.len(), timestamp, value));
    Ok(())
}

fn fields<'de, A: MapAccess<'de>>(
    mut map: A,
    text: &str,
    buf: &mut Buffers,
) -> Result<Fields, A::Error> {
    let mut f = Fields::default();
    while let Some(key) = map.next_key_seed(Str { text, arena: None })? {
        let key = match key {
            At::Msg(a, b) => &text[a as usize..b as usize],
            At::Arena(..) => return Err(refuse()), // an escaped key
        };
        match key {
            "name" => {
                f.name = Some(map.next_value_seed(Str {
                    text,
                    arena: Some(&mut buf.arena),
                })?)
            }
            "namespace" => {
                f.namespace = map.next_value_seed(MaybeStr {
                    text,
                    buf: &mut *buf,
                })?
            }
            "labels" | "tags" => {
                let start = buf.labels.len();
                map.next_value_seed(Labels {
                    text,
                    buf: &mut *buf,
                    names: true,
                })?;
                f.labels = Some(start..buf.labels.len());
            }
            "timestamp" => f.timestamp = Some(map.next_value_seed(Time)?),
            "value" => {
                let v = map.next_value::<NumberOrText>()?;
                (f.value, f.value_text) = (v.0, v.1);
            }
            "gauge" => f.gauge = Some(map.next_value_seed(VectorValue)?),
            "counter" => f.counter = Some(map.next_value_seed(VectorValue)?),
            "metric" => {
                f.metric = Some(Box::new(map.next_value_seed(Nested {
                    text,
                    buf: &mut *buf,
                })?))
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(f)
}

/// `native_json`'s wrapped metric: an object's fields, not finished.
struct Nested<'b> {
    text: &'b str,
    buf: &'b mut Buffers,
}

impl<'de> DeserializeSeed<'de> for Nested<'_> {
    type Value = Fields;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Fields, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_> {
    type Value = Fields;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a metric object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Fields, A::Error> {
        fields(map, self.text, self.buf)
    }
}

/// Text or null (`namespace`).
struct MaybeStr<'b> {
    text: &'b str,
    buf: &'b mut Buffers,
}

impl<'de> DeserializeSeed<'de> for MaybeStr<'_> {
    type Value = Option<At>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<At>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for MaybeStr<'_> {
    type Value = Option<At>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("text or null")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Option<At>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<At>, D::Error> {
        let s = Str {
            text: self.text,
            arena: Some(&mut self.buf.arena),
        };
        s.deserialize(d).map(Some)
    }
}

/// Vector's `{"value": 1.5}` (other keys skipped; a repeated `value` is left to the owned
/// readers).
struct VectorValue;

impl<'de> DeserializeSeed<'de> for VectorValue {
    type Value = f64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for VectorValue {
    type Value = f64;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{\"value\": a number}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<f64, A::Error> {
        let mut value = None;
        while let Some(is_value) = map.next_key_seed(IsValue)? {
            match (is_value, value) {
                (true, None) => value = Some(map.next_value::<f64>()?),
                (true, Some(_)) => return Err(refuse()),
                (false, _) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        value.ok_or_else(refuse)
    }
}

/// Whether a key is `value`.
struct IsValue;

impl<'de> DeserializeSeed<'de> for IsValue {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsValue {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == "value")
    }
}
