"""Metric messages in the formats other tools ship to Kafka, written by those formats' own
encoders (not deadair's): the OpenTelemetry protobuf bindings (`opentelemetry-proto`), the
Prometheus remote-write bindings of `opentelemetry-exporter-prometheus-remote-write` with
`python-snappy`, and `influxdb-client`'s line-protocol `Point`. Two JSON shapes have no
encoder library, so they are written here from each project's documented shape:
prometheus-kafka-adapter's JSON serializer (one sample per message, the value a string from Go's
`strconv.FormatFloat(v, 'f', -1, 64)`, the time as RFC 3339 in whole seconds, `__name__` among
the labels) and Vector's metric event (`name`, `namespace`, `tags`, `timestamp`, `kind`, and a
`gauge` or `counter` object; `native_json` wraps it in `{"metric": ...}`).

  python3 scripts/formats.py fixtures DIR   writes DIR/{remote_write.bin,otlp.bin,influx.txt,
                                            prometheus_kafka_adapter.jsonl,vector.jsonl}
                                            and DIR/expected.json: the samples each must decode
                                            to under deadair's documented rules (docs/formats.md,
                                            "Input formats"), stated here by hand, not by deadair

scripts/e2e_client.py imports `encode` to produce its scenario in every format.
"""
import datetime
import decimal
import json
import math
import os
import sys

import snappy
from influxdb_client import Point, WritePrecision
from opentelemetry.exporter.prometheus_remote_write.gen.remote_pb2 import WriteRequest
from opentelemetry.exporter.prometheus_remote_write.gen.types_pb2 import Label, Sample, TimeSeries
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

# the content-type headers deadair recognises (decode::format_from_headers)
CONTENT_TYPE = {
    "remote_write": "application/x-protobuf;proto=prometheus.WriteRequest",
    "otlp": "application/x-protobuf;proto=opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
    "influx": "text/plain; charset=utf-8",
}


def kv(k, v):
    return KeyValue(key=k, value=AnyValue(string_value=v))


def go_float(v):
    """Go's strconv.FormatFloat(v, 'f', -1, 64): shortest decimal, no exponent; NaN, +Inf, -Inf."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    r = format(decimal.Decimal(repr(float(v))), "f")
    return r[:-2] if r.endswith(".0") else r


def rfc3339(ts_ms, fraction):
    t = datetime.datetime.fromtimestamp(ts_ms / 1000, tz=datetime.timezone.utc)
    if fraction:
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def adapter_json(name, labels, ts, value):
    """One sample as prometheus-kafka-adapter's JSON serializer writes it."""
    return json.dumps({"timestamp": rfc3339(ts, False), "value": go_float(value), "name": name,
                       "labels": dict(labels, __name__=name)})


def vector_json(name, labels, ts, value, kind="gauge", namespace=None, wrap=False):
    """One metric event as Vector's `json` codec writes it (`native_json`: wrapped)."""
    event = {"name": name, "tags": labels, "timestamp": rfc3339(ts, True), "kind": "absolute",
             kind: {"value": value}}
    if namespace:
        event["namespace"] = namespace
    return json.dumps({"metric": event} if wrap else event)


# JSON shapes written one sample per message (the tools that write them set no header)
ONE_PER_MESSAGE = {"adapter": adapter_json, "vector": vector_json}


def encode(fmt, samples):
    """samples: [(name, {labels}, ts_ms, value)] as one message of `fmt`. Names must already be
    Prometheus-style; for influx, a name `m_f` is written as measurement `m`, field `f`. For
    the one-sample-per-message JSON shapes (ONE_PER_MESSAGE), `samples` holds one sample."""
    if fmt in ONE_PER_MESSAGE:
        (sample,) = samples
        return ONE_PER_MESSAGE[fmt](*sample).encode()
    if fmt == "remote_write":
        req = WriteRequest()
        for name, labels, ts, value in samples:
            req.timeseries.append(TimeSeries(
                labels=[Label(name="__name__", value=name)] + [Label(name=k, value=v) for k, v in labels.items()],
                samples=[Sample(value=value, timestamp=ts)]))
        return snappy.compress(req.SerializeToString())
    if fmt == "otlp":
        metrics = [m.Metric(name=name, gauge=m.Gauge(data_points=[m.NumberDataPoint(
            attributes=[kv(k, v) for k, v in labels.items()], time_unix_nano=ts * 1_000_000, as_double=value)]))
            for name, labels, ts, value in samples]
        req = ExportMetricsServiceRequest(resource_metrics=[m.ResourceMetrics(
            scope_metrics=[m.ScopeMetrics(metrics=metrics)])])
        return req.SerializeToString()
    if fmt == "influx":
        lines = []
        for name, labels, ts, value in samples:
            measurement, field = name.rsplit("_", 1)
            p = Point(measurement).field(field, float(value)).time(ts * 1_000_000, WritePrecision.NS)
            for k, v in labels.items():
                p = p.tag(k, v)
            lines.append(p.to_line_protocol())
        return "\n".join(lines).encode()
    raise ValueError(f"unknown format {fmt}")


T = 1767225600000  # 2026-01-01T00:00:00Z, ms


def fixtures(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    expected = {}

    # remote-write: labels deliberately unsorted, two samples in one series
    req = WriteRequest(timeseries=[
        TimeSeries(labels=[Label(name="job", value="api"), Label(name="__name__", value="up"),
                           Label(name="instance", value="a:9100")],
                   samples=[Sample(value=1, timestamp=T), Sample(value=0, timestamp=T + 15000)]),
        TimeSeries(labels=[Label(name="__name__", value="http_requests_total"), Label(name="code", value="200"),
                           Label(name="job", value="api")],
                   samples=[Sample(value=1027, timestamp=T)]),
    ])
    with open(os.path.join(out_dir, "remote_write.bin"), "wb") as f:
        f.write(snappy.compress(req.SerializeToString()))
    expected["remote_write.bin"] = [
        ["up", {"instance": "a:9100", "job": "api"}, T, 1.0],
        ["up", {"instance": "a:9100", "job": "api"}, T + 15000, 0.0],
        ["http_requests_total", {"code": "200", "job": "api"}, T, 1027.0],
    ]

    # OTLP: resource -> job/instance, scope -> otel_scope_*, a gauge, an int sum, a histogram
    # (all 10 observations in (10, 20]: quantiles 15, 19, 19.9), a summary (0.75 not configured)
    ns = T * 1_000_000
    req = ExportMetricsServiceRequest(resource_metrics=[m.ResourceMetrics(
        resource=Resource(attributes=[kv("service.name", "checkout"), kv("service.namespace", "shop"),
                                      kv("service.instance.id", "pod-1"), kv("host.name", "node-7")]),
        scope_metrics=[m.ScopeMetrics(
            scope=InstrumentationScope(name="io.opentelemetry.http", version="1.2.0"),
            metrics=[
                m.Metric(name="system.cpu.utilization", unit="1", gauge=m.Gauge(data_points=[
                    m.NumberDataPoint(attributes=[kv("cpu", "0")], time_unix_nano=ns, as_double=0.25)])),
                m.Metric(name="http.server.requests", sum=m.Sum(
                    aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE, is_monotonic=True,
                    data_points=[m.NumberDataPoint(attributes=[kv("http.method", "GET")],
                                                   time_unix_nano=ns, as_int=42)])),
                m.Metric(name="http.server.duration", unit="ms", histogram=m.Histogram(
                    aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA,
                    data_points=[m.HistogramDataPoint(time_unix_nano=ns, count=10, sum=150.0,
                                                      bucket_counts=[0, 10, 0, 0], explicit_bounds=[10, 20, 50])])),
                m.Metric(name="rpc.latency", summary=m.Summary(data_points=[m.SummaryDataPoint(
                    time_unix_nano=ns, count=3, sum=6.0,
                    quantile_values=[m.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=2.0),
                                     m.SummaryDataPoint.ValueAtQuantile(quantile=0.75, value=2.5),
                                     m.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=2.9)])])),
            ])])])
    with open(os.path.join(out_dir, "otlp.bin"), "wb") as f:
        f.write(req.SerializeToString())
    base = {"instance": "pod-1", "job": "shop/checkout", "otel_scope_name": "io.opentelemetry.http",
            "otel_scope_version": "1.2.0"}
    expected["otlp.bin"] = [
        ["system_cpu_utilization", dict(base, cpu="0"), T, 0.25],
        ["http_server_requests", dict(base, http_method="GET"), T, 42.0],
        ["http_server_duration", dict(base, quantile="0.5"), T, 15.0],
        ["http_server_duration", dict(base, quantile="0.9"), T, 19.0],
        ["http_server_duration", dict(base, quantile="0.99"), T, 19.9],
        ["http_server_duration_sum", base, T, 150.0],
        ["http_server_duration_count", base, T, 10.0],
        ["rpc_latency", dict(base, quantile="0.5"), T, 2.0],
        ["rpc_latency", dict(base, quantile="0.99"), T, 2.9],
        ["rpc_latency_sum", base, T, 6.0],
        ["rpc_latency_count", base, T, 3.0],
    ]

    # Influx line protocol: floats, an integer, a boolean, a string (skipped), an escaped tag
    lines = [
        Point("cpu").tag("host", "web 1").tag("region", "eu").field("usage_user", 12.5)
        .field("usage_idle", 87.5).time(ns, WritePrecision.NS).to_line_protocol(),
        Point("mem").tag("host", "web 1").field("used", 1024).field("active", True)
        .field("status", "ok, fine").time(ns + 10_000_000_000, WritePrecision.NS).to_line_protocol(),
    ]
    with open(os.path.join(out_dir, "influx.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    expected["influx.txt"] = [
        ["cpu_usage_idle", {"host": "web 1", "region": "eu"}, T, 87.5],
        ["cpu_usage_user", {"host": "web 1", "region": "eu"}, T, 12.5],
        ["mem_active", {"host": "web 1"}, T + 10000, 1.0],
        ["mem_used", {"host": "web 1"}, T + 10000, 1024.0],
    ]

    # prometheus-kafka-adapter: one JSON object per message (here: per line); NaN and +Inf as
    # the adapter spells them; a fractional value; a time with milliseconds loses them
    rows = [
        ("up", {"instance": "a:9100", "job": "api"}, T, 1.0),
        ("http_requests_total", {"code": "200", "job": "api"}, T + 15000, 9876543210.0),
        ("node_load1", {"instance": "a:9100"}, T + 30000, 0.25),
        ("scrape_duration_seconds", {"job": "api"}, T + 45250, float("nan")),
        ("temperature_max", {"job": "api"}, T + 60000, float("inf")),
    ]
    with open(os.path.join(out_dir, "prometheus_kafka_adapter.jsonl"), "w") as f:
        f.write("".join(adapter_json(*r) + "\n" for r in rows))
    expected["prometheus_kafka_adapter.jsonl"] = [
        [n, l, (ts // 1000) * 1000, "NaN" if math.isnan(v) else ("+Inf" if math.isinf(v) else v)]
        for n, l, ts, v in rows]

    # Vector: a gauge, a counter with a namespace, and a native_json-wrapped gauge
    lines = [
        vector_json("memory_used_bytes", {"host": "web-1"}, T + 250, 2048.0),
        vector_json("seconds_total", {"cpu": "0", "mode": "idle"}, T, 1234.5, kind="counter", namespace="cpu"),
        vector_json("queue_depth", {"queue": "in"}, T + 1000, 7.0, wrap=True),
    ]
    with open(os.path.join(out_dir, "vector.jsonl"), "w") as f:
        f.write("".join(l + "\n" for l in lines))
    expected["vector.jsonl"] = [
        ["memory_used_bytes", {"host": "web-1"}, T + 250, 2048.0],
        ["cpu_seconds_total", {"cpu": "0", "mode": "idle"}, T, 1234.5],
        ["queue_depth", {"queue": "in"}, T + 1000, 7.0],
    ]

    # values JSON cannot hold are written as the adapter spells them
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"formats.py: wrote {len(expected)} fixtures to {out_dir}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["fixtures"] and len(sys.argv) == 3:
        fixtures(sys.argv[2])
    else:
        sys.exit(__doc__)
