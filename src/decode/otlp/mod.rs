//! OpenTelemetry OTLP metrics: one protobuf `ExportMetricsServiceRequest` per message, as the
//! OpenTelemetry Collector's Kafka exporter writes it (`encoding: otlp_proto`).
//!
//! The rule from data points to series (close to Prometheus' own OTLP translation):
//!
//! - **Names**: the metric name, and every label name, with each character outside
//!   `[A-Za-z0-9_]` (`:` too in metric names) replaced by `_`, and `_` put before a leading
//!   digit: `http.server.duration` becomes `http_server_duration`. Units are not appended.
//! - **Labels**, later ones winning on a clash: from the resource, `job` = `service.name`
//!   (`service.namespace/service.name` when a namespace is set) and `instance` =
//!   `service.instance.id`, plus the resource attributes listed in the input's
//!   `promote_resource_attributes`; from the instrumentation scope, `otel_scope_name`,
//!   `otel_scope_version` and each scope attribute as `otel_scope_<key>`; then the data point's
//!   own attributes. Values: strings as they are, numbers and booleans as text, bytes as hex,
//!   arrays and maps as JSON.
//! - **Gauges and sums**: one sample per data point (integers as floats). Sums are taken as
//!   sent, cumulative or delta.
//! - **Histograms**: `<name>_count`, `<name>_sum` (when set), and for each configured quantile
//!   `q`, `<name>{quantile="q"}` estimated from the point's buckets by linear interpolation
//!   inside the bucket holding rank `q × count` (the lowest bucket starts at `min`, else at 0 for
//!   a positive bound; the overflow bucket ends at `max`, else at the last bound), as
//!   Prometheus' `histogram_quantile` does. With cumulative temporality that is the quantile
//!   since the start time; with delta, of the interval. Exponential histograms alike, from
//!   their exponential buckets.
//! - **Summaries**: `<name>_count`, `<name>_sum`, and `<name>{quantile="q"}` for each of the
//!   point's quantiles that is among the configured ones.
//! - **Time**: `time_unix_nano` as ms; a point with none takes the message's Kafka timestamp.
//!   Points flagged "no recorded value" are skipped.

use std::collections::BTreeMap;

use prost::Message;

use super::{label_name, metric_name, DecodeError, DecodeReason, Meta};
use crate::config::Input;
use crate::proto::Sample;
use crate::wire::opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::wire::opentelemetry::proto::common::v1::{any_value, AnyValue, KeyValue};
use crate::wire::opentelemetry::proto::metrics::v1 as m;

pub mod views;

type Labels = BTreeMap<String, String>;

fn err(detail: impl Into<String>) -> DecodeError {
    DecodeError {
        reason: DecodeReason::Otlp,
        detail: detail.into(),
    }
}

/// Decodes one `ExportMetricsServiceRequest`, appending its samples to `out`.
pub fn decode(
    payload: &[u8],
    input: &Input,
    meta: Meta<'_>,
    out: &mut Vec<Sample>,
) -> Result<(), DecodeError> {
    let req = ExportMetricsServiceRequest::decode(payload).map_err(|e| err(e.to_string()))?;
    for rm in &req.resource_metrics {
        let mut base = Labels::new();
        if let Some(r) = &rm.resource {
            let attr = |k: &str| {
                r.attributes
                    .iter()
                    .find(|kv| kv.key == k)
                    .and_then(|kv| kv.value.as_ref())
                    .map(text)
            };
            for k in &input.promote_resource_attributes {
                if let Some(v) = attr(k) {
                    base.insert(label_name(k), v);
                }
            }
            if let Some(name) = attr("service.name") {
                let job = match attr("service.namespace") {
                    Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
                    _ => name,
                };
                base.insert("job".into(), job);
            }
            if let Some(id) = attr("service.instance.id") {
                base.insert("instance".into(), id);
            }
        }
        for sm in &rm.scope_metrics {
            let mut scoped = base.clone();
            if let Some(s) = &sm.scope {
                if !s.name.is_empty() {
                    scoped.insert("otel_scope_name".into(), s.name.clone());
                }
                if !s.version.is_empty() {
                    scoped.insert("otel_scope_version".into(), s.version.clone());
                }
                add_attributes(&mut scoped, &s.attributes, "otel_scope_");
            }
            for metric in &sm.metrics {
                decode_metric(metric, &scoped, input, meta, out)?;
            }
        }
    }
    Ok(())
}

fn decode_metric(
    metric: &m::Metric,
    scoped: &Labels,
    input: &Input,
    meta: Meta<'_>,
    out: &mut Vec<Sample>,
) -> Result<(), DecodeError> {
    let name = metric_name(&metric.name);
    if name.is_empty() {
        return Err(err("a metric has no name"));
    }
    let time = |t: u64| -> Result<i64, DecodeError> {
        match t {
            0 => meta
                .timestamp
                .ok_or_else(|| err(format!("a point of `{name}` has no time"))),
            t => Ok((t / 1_000_000) as i64),
        }
    };
    let labels = |attributes: &[KeyValue]| {
        let mut l = scoped.clone();
        add_attributes(&mut l, attributes, "");
        l
    };
    let mut push = |name: String, labels: Labels, timestamp: i64, value: f64| {
        out.push(Sample {
            name,
            labels,
            timestamp,
            value,
        })
    };
    let no_value = |flags: u32| flags & 1 == 1;
    let mut distribution = |d: Distribution, at: &dyn Fn(f64) -> Option<f64>| {
        for &q in &input.quantiles {
            if let Some(v) = at(q) {
                let mut l = d.labels.clone();
                l.insert("quantile".into(), q.to_string());
                push(name.clone(), l, d.timestamp, v);
            }
        }
        if let Some(sum) = d.sum {
            push(format!("{name}_sum"), d.labels.clone(), d.timestamp, sum);
        }
        push(
            format!("{name}_count"),
            d.labels,
            d.timestamp,
            d.count as f64,
        );
    };
    use m::metric::Data;
    let numbers = match &metric.data {
        Some(Data::Gauge(g)) => &g.data_points,
        Some(Data::Sum(s)) => &s.data_points,
        Some(Data::Histogram(h)) => {
            for p in h.data_points.iter().filter(|p| !no_value(p.flags)) {
                let buckets = explicit_buckets(p);
                let d = Distribution {
                    timestamp: time(p.time_unix_nano)?,
                    labels: labels(&p.attributes),
                    sum: p.sum,
                    count: p.count,
                };
                distribution(d, &|q| buckets.as_deref().and_then(|b| quantile(q, b)));
            }
            return Ok(());
        }
        Some(Data::ExponentialHistogram(h)) => {
            for p in h.data_points.iter().filter(|p| !no_value(p.flags)) {
                let buckets = exponential_buckets(p);
                let d = Distribution {
                    timestamp: time(p.time_unix_nano)?,
                    labels: labels(&p.attributes),
                    sum: p.sum,
                    count: p.count,
                };
                distribution(d, &|q| quantile(q, &buckets));
            }
            return Ok(());
        }
        Some(Data::Summary(s)) => {
            for p in s.data_points.iter().filter(|p| !no_value(p.flags)) {
                let d = Distribution {
                    timestamp: time(p.time_unix_nano)?,
                    labels: labels(&p.attributes),
                    sum: Some(p.sum),
                    count: p.count,
                };
                let at = |q: f64| {
                    let v = p.quantile_values.iter();
                    v.filter(|v| (v.quantile - q).abs() < 1e-9)
                        .map(|v| v.value)
                        .next()
                };
                distribution(d, &at);
            }
            return Ok(());
        }
        None => return Ok(()),
    };
    for p in numbers.iter().filter(|p| !no_value(p.flags)) {
        let value = match p.value {
            Some(m::number_data_point::Value::AsDouble(v)) => v,
            Some(m::number_data_point::Value::AsInt(v)) => v as f64,
            None => continue,
        };
        push(
            name.clone(),
            labels(&p.attributes),
            time(p.time_unix_nano)?,
            value,
        );
    }
    Ok(())
}

/// One histogram or summary point, before its derived series are pushed.
struct Distribution {
    timestamp: i64,
    labels: Labels,
    sum: Option<f64>,
    count: u64,
}

/// (lower, upper, count) of each bucket of an explicit-bounds histogram, in value order; `None`
/// when the counts do not fit the bounds.
fn explicit_buckets(p: &m::HistogramDataPoint) -> Option<Vec<(f64, f64, u64)>> {
    let (bounds, counts) = (&p.explicit_bounds, &p.bucket_counts);
    if counts.len() != bounds.len() + 1 {
        return None;
    }
    let first = *bounds.first()?;
    let last = *bounds.last()?;
    Some(
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let lower = match i {
                    0 => p.min.unwrap_or(first.min(0.0)),
                    i => bounds[i - 1],
                };
                let upper = match bounds.get(i) {
                    Some(&b) => b,
                    None => p.max.unwrap_or(last).max(last),
                };
                (lower.min(upper), upper, c)
            })
            .collect(),
    )
}

/// (lower, upper, count) of each bucket of an exponential histogram, in value order.
fn exponential_buckets(p: &m::ExponentialHistogramDataPoint) -> Vec<(f64, f64, u64)> {
    let step = (-f64::from(p.scale)).exp2(); // log2 of the base
    let bound = |k: i64| (k as f64 * step).exp2();
    let mut out = Vec::new();
    if let Some(neg) = &p.negative {
        for (i, &c) in neg.bucket_counts.iter().enumerate().rev() {
            let k = i64::from(neg.offset) + i as i64;
            out.push((-bound(k + 1), -bound(k), c));
        }
    }
    out.push((-p.zero_threshold, p.zero_threshold, p.zero_count));
    if let Some(pos) = &p.positive {
        for (i, &c) in pos.bucket_counts.iter().enumerate() {
            let k = i64::from(pos.offset) + i as i64;
            out.push((bound(k), bound(k + 1), c));
        }
    }
    out
}

/// The `q` quantile of bucketed counts (linear interpolation inside the bucket holding rank
/// `q × total`); `None` for no observations.
fn quantile(q: f64, buckets: &[(f64, f64, u64)]) -> Option<f64> {
    let total = buckets.iter().fold(0u64, |s, b| s.saturating_add(b.2));
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for &(lower, upper, c) in buckets.iter().filter(|b| b.2 > 0) {
        let cum = below.saturating_add(c);
        if cum as f64 >= rank {
            return Some(lower + (upper - lower) * ((rank - below as f64) / c as f64).max(0.0));
        }
        below = cum;
    }
    buckets.iter().rev().find(|b| b.2 > 0).map(|b| b.1)
}

fn add_attributes(labels: &mut Labels, attributes: &[KeyValue], prefix: &str) {
    for kv in attributes {
        if let Some(v) = &kv.value {
            labels.insert(format!("{prefix}{}", label_name(&kv.key)), text(v));
        }
    }
}

/// An attribute value as label text.
fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        _ => match json(v) {
            serde_json::Value::String(s) => s,
            j => j.to_string(),
        },
    }
}

fn json(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => J::from(*d),
        Some(any_value::Value::BytesValue(_)) => J::String(text(v)),
        Some(any_value::Value::ArrayValue(a)) => J::Array(a.values.iter().map(json).collect()),
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(J::Null, json)))
                .collect(),
        ),
    }
}

/// Encodes samples as one `ExportMetricsServiceRequest` of gauges, one metric per sample, the
/// labels as data-point attributes (for `deadair gen`, tests and benchmarks).
pub fn encode(samples: &[&Sample]) -> Vec<u8> {
    use crate::wire::opentelemetry::proto::common::v1 as c;
    let string = |s: &str| {
        Some(c::AnyValue {
            value: Some(any_value::Value::StringValue(s.into())),
        })
    };
    let metrics = samples
        .iter()
        .map(|s| m::Metric {
            name: s.name.clone(),
            data: Some(m::metric::Data::Gauge(m::Gauge {
                data_points: vec![m::NumberDataPoint {
                    attributes: s
                        .labels
                        .iter()
                        .map(|(k, v)| c::KeyValue {
                            key: k.clone(),
                            value: string(v),
                        })
                        .collect(),
                    time_unix_nano: (s.timestamp.max(0) as u64).saturating_mul(1_000_000),
                    value: Some(m::number_data_point::Value::AsDouble(s.value)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![m::ResourceMetrics {
            scope_metrics: vec![m::ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InputFormat;
    use crate::wire::opentelemetry::proto::common::v1 as c;
    use crate::wire::opentelemetry::proto::resource::v1::Resource;
    use proptest::prelude::*;

    fn kv(k: &str, v: any_value::Value) -> c::KeyValue {
        c::KeyValue {
            key: k.into(),
            value: Some(c::AnyValue { value: Some(v) }),
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    type Key = (String, Vec<(String, String)>, i64, u64);

    fn sorted(samples: impl IntoIterator<Item = Sample>) -> Vec<Key> {
        let mut v: Vec<Key> = samples
            .into_iter()
            .map(|s| {
                (
                    s.name,
                    s.labels.into_iter().collect(),
                    s.timestamp,
                    s.value.to_bits(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// The zero-copy reader (`views`) and the owned path give the same samples (as sets: the
    /// reader puts histogram and summary samples last); `strict`: both must succeed.
    fn same(payload: &[u8], input: &Input, meta: Meta<'_>, strict: bool) {
        let mut want = Vec::new();
        let owned = decode(payload, input, meta, &mut want);
        let mut buf = views::Buffers::default();
        let got = views::decode(payload, input, meta, &mut buf).map(|v| {
            v.refs()
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
                .collect::<Vec<_>>()
        });
        match (owned, got) {
            (Ok(()), Ok(got)) => assert_eq!(sorted(got), sorted(want)),
            (Err(a), Err(b)) => assert_eq!(a.reason, b.reason),
            (a, b) => assert!(!strict, "owned {a:?}, views {:?}", b.map(|v| v.len())),
        }
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let b = [
            (0.0, 10.0, 0),
            (10.0, 20.0, 10),
            (20.0, 50.0, 0),
            (50.0, 50.0, 0),
        ];
        assert_eq!(quantile(0.5, &b), Some(15.0));
        assert!((quantile(0.99, &b).unwrap() - 19.9).abs() < 1e-9);
        assert_eq!(quantile(0.5, &[(0.0, 1.0, 0)]), None);
        // all in the overflow bucket: its lower bound (the last explicit bound)
        assert_eq!(quantile(0.9, &[(0.0, 5.0, 0), (5.0, 5.0, 4)]), Some(5.0));
    }

    #[test]
    fn resource_scope_and_point_labels_follow_the_rule() {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![m::ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s("checkout")),
                        kv("service.namespace", s("shop")),
                        kv("service.instance.id", s("pod-1")),
                        kv("host.name", s("node-7")),
                        kv("k8s.pod.uid", s("dropped")),
                    ],
                }),
                scope_metrics: vec![m::ScopeMetrics {
                    scope: Some(c::InstrumentationScope {
                        name: "io.otel.http".into(),
                        version: "1.2".into(),
                        attributes: vec![kv("lib", any_value::Value::BoolValue(true))],
                    }),
                    metrics: vec![m::Metric {
                        name: "http.server.active_requests".into(),
                        data: Some(m::metric::Data::Sum(m::Sum {
                            data_points: vec![
                                m::NumberDataPoint {
                                    attributes: vec![
                                        kv("http.method", s("GET")),
                                        kv("job", s("mine")),
                                    ],
                                    time_unix_nano: 1_767_225_600_123_456_789,
                                    value: Some(m::number_data_point::Value::AsInt(7)),
                                    ..Default::default()
                                },
                                m::NumberDataPoint {
                                    flags: 1, // no recorded value
                                    ..Default::default()
                                },
                            ],
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut input = Input::new("t", InputFormat::Otlp);
        input.promote_resource_attributes = vec!["host.name".into()];
        let mut out = Vec::new();
        decode(&req.encode_to_vec(), &input, Meta::default(), &mut out).unwrap();
        same(&req.encode_to_vec(), &input, Meta::default(), true);
        assert_eq!(out.len(), 1);
        let labels: Vec<(&str, &str)> = out[0]
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(out[0].name, "http_server_active_requests");
        assert_eq!(
            labels,
            [
                ("host_name", "node-7"),
                ("http_method", "GET"),
                ("instance", "pod-1"),
                ("job", "mine"), // the point's own attribute wins
                ("otel_scope_lib", "true"),
                ("otel_scope_name", "io.otel.http"),
                ("otel_scope_version", "1.2"),
            ]
        );
        assert_eq!((out[0].timestamp, out[0].value), (1_767_225_600_123, 7.0));
    }

    #[test]
    fn histograms_and_summaries_give_count_sum_and_quantiles() {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![m::ResourceMetrics {
                scope_metrics: vec![m::ScopeMetrics {
                    metrics: vec![
                        m::Metric {
                            name: "latency".into(),
                            data: Some(m::metric::Data::Histogram(m::Histogram {
                                data_points: vec![m::HistogramDataPoint {
                                    count: 10,
                                    sum: Some(150.0),
                                    bucket_counts: vec![0, 10, 0, 0],
                                    explicit_bounds: vec![10.0, 20.0, 50.0],
                                    ..Default::default()
                                }],
                                aggregation_temporality: 1,
                            })),
                            ..Default::default()
                        },
                        m::Metric {
                            name: "rpc".into(),
                            data: Some(m::metric::Data::Summary(m::Summary {
                                data_points: vec![m::SummaryDataPoint {
                                    count: 3,
                                    sum: 6.0,
                                    quantile_values: vec![
                                        m::summary_data_point::ValueAtQuantile {
                                            quantile: 0.5,
                                            value: 2.0,
                                        },
                                        m::summary_data_point::ValueAtQuantile {
                                            quantile: 0.75,
                                            value: 2.5,
                                        },
                                    ],
                                    ..Default::default()
                                }],
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let input = Input::new("t", InputFormat::Otlp);
        let mut out = Vec::new();
        let meta = Meta {
            timestamp: Some(42),
            ..Meta::default()
        };
        decode(&req.encode_to_vec(), &input, meta, &mut out).unwrap();
        same(&req.encode_to_vec(), &input, meta, true);
        let got: Vec<(String, Option<&str>, i64, f64)> = out
            .iter()
            .map(|s| {
                let q = s.labels.get("quantile").map(String::as_str);
                (
                    s.name.clone(),
                    q,
                    s.timestamp,
                    (s.value * 1e6).round() / 1e6,
                )
            })
            .collect();
        let want = [
            ("latency", Some("0.5"), 15.0),
            ("latency", Some("0.9"), 19.0),
            ("latency", Some("0.99"), 19.9),
            ("latency_sum", None, 150.0),
            ("latency_count", None, 10.0),
            ("rpc", Some("0.5"), 2.0), // 0.75 is not a configured quantile
            ("rpc_sum", None, 6.0),
            ("rpc_count", None, 3.0),
        ];
        let want: Vec<(String, Option<&str>, i64, f64)> = want
            .iter()
            .map(|(n, q, v)| (n.to_string(), *q, 42, *v))
            .collect();
        assert_eq!(got, want, "points without a time take the message's");
    }

    #[test]
    fn exponential_buckets_are_in_value_order() {
        let p = m::ExponentialHistogramDataPoint {
            scale: 0,
            count: 4,
            zero_count: 1,
            positive: Some(m::exponential_histogram_data_point::Buckets {
                offset: 1,
                bucket_counts: vec![2], // (2, 4]
            }),
            negative: Some(m::exponential_histogram_data_point::Buckets {
                offset: 0,
                bucket_counts: vec![1], // [-2, -1)
            }),
            ..Default::default()
        };
        let b = exponential_buckets(&p);
        assert_eq!(b, vec![(-2.0, -1.0, 1), (0.0, 0.0, 1), (2.0, 4.0, 2)]);
        assert_eq!(quantile(1.0, &b), Some(4.0));
        assert_eq!(quantile(0.5, &b), Some(0.0));
    }

    #[test]
    fn names_are_translated_and_bad_messages_classified() {
        assert_eq!(metric_name("1st.metric:x"), "_1st_metric:x");
        assert_eq!(label_name("a:b.c"), "a_b_c");
        let input = Input::new("t", InputFormat::Otlp);
        let e = decode(b"\xff\xff", &input, Meta::default(), &mut Vec::new()).unwrap_err();
        assert_eq!(e.reason, DecodeReason::Otlp);
        same(b"\xff\xff", &input, Meta::default(), true);
    }

    #[test]
    fn the_zero_copy_reader_follows_the_rule_on_every_value_kind() {
        use any_value::Value as V;
        let point =
            |attrs: Vec<c::KeyValue>, t: u64, v: m::number_data_point::Value| m::NumberDataPoint {
                attributes: attrs,
                time_unix_nano: t,
                value: Some(v),
                ..Default::default()
            };
        let array = V::ArrayValue(c::ArrayValue {
            values: vec![c::AnyValue {
                value: Some(s("x")),
            }],
        });
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![m::ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s("api")),
                        kv("service.namespace", s("")),
                        kv("host.name", V::IntValue(-5)),
                        kv("job", s("overridden")),
                    ],
                }),
                scope_metrics: vec![m::ScopeMetrics {
                    scope: Some(c::InstrumentationScope {
                        name: "io.otel".into(),
                        attributes: vec![kv("lib.v", V::BoolValue(true))],
                        ..Default::default()
                    }),
                    metrics: vec![
                        m::Metric {
                            name: "9.req-total".into(),
                            data: Some(m::metric::Data::Sum(m::Sum {
                                data_points: vec![
                                    point(
                                        vec![
                                            kv("d", V::DoubleValue(1.5)),
                                            kv("b", V::BytesValue(vec![0xab, 1])),
                                            kv("a.r", array),
                                            kv("job", s("point-wins")),
                                        ],
                                        0,
                                        m::number_data_point::Value::AsInt(-7),
                                    ),
                                    point(
                                        vec![],
                                        2_000_000,
                                        m::number_data_point::Value::AsDouble(0.25),
                                    ),
                                ],
                                ..Default::default()
                            })),
                            ..Default::default()
                        },
                        m::Metric {
                            name: "lat".into(),
                            data: Some(m::metric::Data::Summary(m::Summary {
                                data_points: vec![m::SummaryDataPoint {
                                    count: 3,
                                    sum: 1.0,
                                    time_unix_nano: 3_000_000,
                                    attributes: vec![kv("k", s("v"))],
                                    ..Default::default()
                                }],
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut input = Input::new("t", InputFormat::Otlp);
        input.promote_resource_attributes = vec!["host.name".into()];
        let meta = Meta {
            timestamp: Some(42),
            ..Meta::default()
        };
        same(&req.encode_to_vec(), &input, meta, true);
        let mut out = Vec::new();
        decode(&req.encode_to_vec(), &input, meta, &mut out).unwrap();
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0].name, "_9_req_total");
        assert_eq!(out[0].labels["job"], "point-wins");
        assert_eq!(out[0].labels["host_name"], "-5");
        assert_eq!(out[0].labels["a_r"], "[\"x\"]");
        assert_eq!(out[0].timestamp, 42);
        // no time and no Kafka timestamp: refused alike
        same(&req.encode_to_vec(), &input, Meta::default(), true);
    }

    proptest! {
        /// Arbitrary bytes never panic: samples or a counted error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let input = Input::new("t", InputFormat::Otlp);
            same(&bytes, &input, Meta::default(), false);
        }

        /// What `encode` writes decodes to the same samples.
        #[test]
        fn encode_then_decode(samples in super::super::arb_samples("[a-z_]{1,12}", "[ -~]{0,10}", 1..8_000_000_000_000)) {
            let refs: Vec<&Sample> = samples.iter().collect();
            let mut out = Vec::new();
            decode(&encode(&refs), &Input::new("t", InputFormat::Otlp), Meta::default(), &mut out).unwrap();
            same(&encode(&refs), &Input::new("t", InputFormat::Otlp), Meta::default(), true);
            prop_assert_eq!(out, samples);
        }
    }
}
