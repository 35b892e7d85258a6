//! OTLP decoded without copying: the protobuf wire format is read by hand ([`super::super::Wire`])
//! and gauge and sum points become sample views whose names and labels borrow the message, but
//! for text that has to be made (names made valid, `job` from a namespace, `otel_scope_` keys,
//! non-string attribute values), which goes to a reused arena. Histograms, exponential
//! histograms and summaries, rarer and costlier anyway, are decoded by prost and translated by
//! the owned path ([`super::decode_metric`]), with the same labels. The rule is the module's
//! (see [`super`]); `tests` compares this reader with the owned one.

use std::collections::BTreeMap;
use std::ops::Range;

use prost::Message;

use super::super::arena::{Arena, At};
use super::super::{DecodeError, Meta, SampleView, SampleViews, Wire};
use super::{decode_metric, err, text};
use crate::config::Input;
use crate::proto::Sample;
use crate::wire::opentelemetry::proto::common::v1::AnyValue;
use crate::wire::opentelemetry::proto::metrics::v1 as m;

/// The reader's reusable buffers (one per consumer, in [`super::super::Scratch`]).
#[derive(Debug, Default)]
pub struct Buffers {
    arena: Arena,
    /// Label pairs: each resource's, each scope's and each point's, in the order they apply.
    labels: Vec<(At, At)>,
    /// (name, its labels in `labels`: the scope's then the point's, timestamp, value).
    samples: Vec<(At, Range<u32>, i64, f64)>,
    /// Samples of histograms and summaries (the owned path).
    owned: Vec<Sample>,
}

fn wire(e: DecodeError) -> DecodeError {
    err(e.detail)
}

impl Buffers {
    fn get<'a>(&'a self, msg: &'a [u8], at: At) -> &'a str {
        self.arena.str(msg, at)
    }

    fn keep(&mut self, s: &str) -> At {
        self.arena.keep(s)
    }

    /// `s` (a slice of `msg`, or empty) as a range of the message.
    fn at(msg: &[u8], s: &str) -> At {
        if s.is_empty() {
            return At::EMPTY;
        }
        let a = (s.as_ptr() as usize).wrapping_sub(msg.as_ptr() as usize);
        debug_assert!(a + s.len() <= msg.len(), "not a slice of the message");
        At::Msg(a as u32, (a + s.len()) as u32)
    }

    /// `s` (a slice of `msg`) in Prometheus' alphabet: itself when it already is.
    fn name(&mut self, msg: &[u8], s: &str, metric: bool, prefix: &str) -> At {
        let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || (metric && c == b':');
        let valid = !s.starts_with(|c: char| c.is_ascii_digit()) && s.bytes().all(ok);
        match (valid, prefix.is_empty(), metric) {
            (true, true, _) => Self::at(msg, s),
            (_, _, true) => {
                let n = super::super::metric_name(s);
                self.keep(&n)
            }
            _ => {
                let n = format!("{prefix}{}", super::super::label_name(s));
                self.keep(&n)
            }
        }
    }

    /// An attribute value as label text (the rule of [`super::text`]).
    fn value(&mut self, msg: &[u8], any: &[u8]) -> Result<At, DecodeError> {
        let mut w = Wire::new(any);
        let mut simple = None;
        let mut fields = 0;
        while !w.done() {
            let key = w.varint().map_err(wire)?;
            fields += 1;
            match (key >> 3, key & 7) {
                (1, 2) => simple = Some(Self::at(msg, w.str().map_err(wire)?)),
                (2, 0) => {
                    let b = w.varint().map_err(wire)? != 0;
                    simple = Some(self.keep(if b { "true" } else { "false" }));
                }
                (3, 0) => {
                    let i = w.varint().map_err(wire)? as i64;
                    simple = Some(self.keep(&i.to_string()));
                }
                (_, t) => {
                    w.skip(t).map_err(wire)?;
                    simple = None;
                }
            }
        }
        match simple {
            Some(at) if fields == 1 => Ok(at),
            // doubles, bytes, arrays, maps, repeated fields: as the owned path writes them
            _ => {
                let v = AnyValue::decode(any).map_err(|e| err(e.to_string()))?;
                Ok(self.keep(&text(&v)))
            }
        }
    }

    /// Pushes the label of a `KeyValue` (key made valid, after `prefix`).
    fn attribute(&mut self, msg: &[u8], kv: &[u8], prefix: &str) -> Result<(), DecodeError> {
        // a key-value without a value adds nothing, as in the owned path
        if let (key, Some(v)) = key_value(kv)? {
            let key = self.name(msg, key, false, prefix);
            let value = self.value(msg, v)?;
            self.labels.push((key, value));
        }
        Ok(())
    }
}

/// Decodes one `ExportMetricsServiceRequest`: its samples borrow `payload` and `buf`.
pub fn decode<'a>(
    payload: &'a [u8],
    input: &Input,
    meta: Meta<'_>,
    buf: &'a mut Buffers,
) -> Result<SampleViews<'a>, DecodeError> {
    if u32::try_from(payload.len()).is_err() {
        return Err(err("message larger than 4 GiB"));
    }
    buf.arena.clear();
    buf.labels.clear();
    buf.samples.clear();
    buf.owned.clear();
    let mut w = Wire::new(payload);
    while !w.done() {
        let key = w.varint().map_err(wire)?;
        match (key >> 3, key & 7) {
            (1, 2) => resource_metrics(payload, w.bytes().map_err(wire)?, input, meta, buf)?,
            (_, t) => w.skip(t).map_err(wire)?,
        }
    }
    let buf: &'a Buffers = buf;
    Ok(buf.views(payload))
}

/// A `KeyValue`'s key ("" when absent) and its `AnyValue`'s bytes, if any.
fn key_value(kv: &[u8]) -> Result<(&str, Option<&[u8]>), DecodeError> {
    let (mut key, mut value) = ("", None);
    let mut w = Wire::new(kv);
    while !w.done() {
        let k = w.varint().map_err(wire)?;
        match (k >> 3, k & 7) {
            (1, 2) => key = w.str().map_err(wire)?,
            (2, 2) => value = Some(w.bytes().map_err(wire)?),
            (_, t) => w.skip(t).map_err(wire)?,
        }
    }
    Ok((key, value))
}

/// The fields `number` (length-delimited) of a message, in order.
fn each<'b>(
    bytes: &'b [u8],
    number: u64,
    mut f: impl FnMut(&'b [u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut w = Wire::new(bytes);
    while !w.done() {
        let key = w.varint().map_err(wire)?;
        match (key >> 3, key & 7) {
            (n, 2) if n == number => f(w.bytes().map_err(wire)?)?,
            (_, t) => w.skip(t).map_err(wire)?,
        }
    }
    Ok(())
}

fn resource_metrics(
    msg: &[u8],
    rm: &[u8],
    input: &Input,
    meta: Meta<'_>,
    buf: &mut Buffers,
) -> Result<(), DecodeError> {
    let base_start = buf.labels.len();
    // the resource (field 1): its attributes (field 1 of Resource)
    let mut attrs: Vec<(&str, &[u8])> = Vec::new();
    each(rm, 1, |resource| {
        each(resource, 1, |kv| {
            if let (key, Some(v)) = key_value(kv)? {
                // a repeated key: the first one counts, as `find` does in the owned path
                if !attrs.iter().any(|(k, _)| *k == key) {
                    attrs.push((key, v));
                }
            }
            Ok(())
        })
    })?;
    let find = |k: &str| attrs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    for k in &input.promote_resource_attributes {
        if let Some(v) = find(k) {
            // a configured key is not in the message: its label name goes to the arena
            let key = buf.keep(&super::super::label_name(k));
            let value = buf.value(msg, v)?;
            buf.labels.push((key, value));
        }
    }
    if let Some(name) = find("service.name") {
        let name = buf.value(msg, name)?;
        let job = match find("service.namespace") {
            Some(ns) => {
                let ns = buf.value(msg, ns)?;
                match buf.get(msg, ns) {
                    "" => name,
                    ns => {
                        let j = format!("{ns}/{}", buf.get(msg, name));
                        buf.keep(&j)
                    }
                }
            }
            None => name,
        };
        let key = buf.keep("job");
        buf.labels.push((key, job));
    }
    if let Some(id) = find("service.instance.id") {
        let id = buf.value(msg, id)?;
        let key = buf.keep("instance");
        buf.labels.push((key, id));
    }
    let base = base_start..buf.labels.len();
    each(rm, 2, |sm| {
        scope_metrics(msg, sm, base.clone(), input, meta, buf)
    })
}

fn scope_metrics(
    msg: &[u8],
    sm: &[u8],
    base: Range<usize>,
    input: &Input,
    meta: Meta<'_>,
    buf: &mut Buffers,
) -> Result<(), DecodeError> {
    // the scope's labels: the resource's, then the scope's own
    let start = buf.labels.len();
    buf.labels.extend_from_within(base);
    each(sm, 1, |scope| {
        let mut w = Wire::new(scope);
        while !w.done() {
            let k = w.varint().map_err(wire)?;
            match (k >> 3, k & 7) {
                (1, 2) | (2, 2) => {
                    let label = if k >> 3 == 1 {
                        "otel_scope_name"
                    } else {
                        "otel_scope_version"
                    };
                    let v = w.str().map_err(wire)?;
                    if !v.is_empty() {
                        let key = buf.keep(label);
                        buf.labels.push((key, Buffers::at(msg, v)));
                    }
                }
                (3, 2) => buf.attribute(msg, w.bytes().map_err(wire)?, "otel_scope_")?,
                (_, t) => w.skip(t).map_err(wire)?,
            }
        }
        Ok(())
    })?;
    let scoped = start..buf.labels.len();
    each(sm, 2, |metric| {
        self::metric(msg, metric, scoped.clone(), input, meta, buf)
    })
}

fn metric(
    msg: &[u8],
    bytes: &[u8],
    scoped: Range<usize>,
    input: &Input,
    meta: Meta<'_>,
    buf: &mut Buffers,
) -> Result<(), DecodeError> {
    let (mut name, mut numbers, mut other) = ("", None, false);
    let mut w = Wire::new(bytes);
    while !w.done() {
        let k = w.varint().map_err(wire)?;
        match (k >> 3, k & 7) {
            (1, 2) => name = w.str().map_err(wire)?,
            (5 | 7, 2) => numbers = Some(w.bytes().map_err(wire)?),
            (9..=11, 2) => {
                w.bytes().map_err(wire)?;
                other = true;
            }
            (_, t) => w.skip(t).map_err(wire)?,
        }
    }
    if other {
        // a histogram or summary: prost and the owned path, with the same scope labels
        let m = m::Metric::decode(bytes).map_err(|e| err(e.to_string()))?;
        let mut labels = BTreeMap::new();
        for &(k, v) in &buf.labels[scoped] {
            labels.insert(buf.get(msg, k).to_string(), buf.get(msg, v).to_string());
        }
        return decode_metric(&m, &labels, input, meta, &mut buf.owned);
    }
    if name.is_empty() || super::super::metric_name(name).is_empty() {
        return Err(err("a metric has no name"));
    }
    let Some(numbers) = numbers else {
        return Ok(());
    };
    let name_at = buf.name(msg, name, true, "");
    each(numbers, 1, |p| {
        point(msg, p, name, name_at, scoped.clone(), meta, buf)
    })
}

/// One `NumberDataPoint` of a gauge or sum.
fn point(
    msg: &[u8],
    p: &[u8],
    name: &str,
    name_at: At,
    scoped: Range<usize>,
    meta: Meta<'_>,
    buf: &mut Buffers,
) -> Result<(), DecodeError> {
    let start = buf.labels.len();
    buf.labels.extend_from_within(scoped);
    let (mut time, mut value, mut flags) = (0u64, None, 0u64);
    let mut w = Wire::new(p);
    while !w.done() {
        let k = w.varint().map_err(wire)?;
        match (k >> 3, k & 7) {
            (3, 1) => time = w.fixed64().map_err(wire)?,
            (4, 1) => value = Some(f64::from_bits(w.fixed64().map_err(wire)?)),
            (6, 1) => value = Some(w.fixed64().map_err(wire)? as i64 as f64),
            (7, 2) => buf.attribute(msg, w.bytes().map_err(wire)?, "")?,
            (8, 0) => flags = w.varint().map_err(wire)?,
            (_, t) => w.skip(t).map_err(wire)?,
        }
    }
    let Some(value) = value.filter(|_| flags & 1 == 0) else {
        buf.labels.truncate(start); // no recorded value: skipped
        return Ok(());
    };
    let timestamp = match time {
        0 => meta.timestamp.ok_or_else(|| {
            err(format!(
                "a point of `{}` has no time",
                super::super::metric_name(name)
            ))
        })?,
        t => (t / 1_000_000) as i64,
    };
    let labels = start as u32..buf.labels.len() as u32;
    buf.samples.push((name_at, labels, timestamp, value));
    Ok(())
}

impl Buffers {
    /// The samples read, as views of the message and the arena (then the owned path's).
    fn views<'a>(&'a self, msg: &'a [u8]) -> SampleViews<'a> {
        let mut out = SampleViews {
            samples: Vec::with_capacity(self.samples.len() + self.owned.len()),
            labels: Vec::new(),
        };
        for (name, labels, timestamp, value) in &self.samples {
            let start = out.labels.len();
            out.labels.extend(
                self.labels[labels.start as usize..labels.end as usize]
                    .iter()
                    .map(|&(k, v)| (self.get(msg, k), self.get(msg, v))),
            );
            // sorted by key; on a clash the later label wins (point over scope over resource)
            out.normalise_labels(start);
            out.samples.push(SampleView {
                name: self.get(msg, *name),
                labels: start..out.labels.len(),
                timestamp: *timestamp,
                value: *value,
            });
        }
        out.extend_owned(&self.owned);
        out
    }
}
