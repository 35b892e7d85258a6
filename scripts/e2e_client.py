"""Independent Kafka client for deadair's end-to-end test (confluent-kafka, a current librdkafka).

  produce BROKERS TOPIC   JSON samples of a scripted scenario: two series at a 10 s cadence for
                          200 samples; web-b stops after 100, web-a spikes at 150
  produce-formats BROKERS the same scenario in each other input format, written by that
                          format's own encoder (scripts/formats.py): to samples-remote_write,
                          samples-otlp and samples-influx unmarked (the topic's format applies),
                          and as prometheus-kafka-adapter's and Vector's JSON, one sample per
                          message with no header, to samples-adapter and samples-vector (JSON
                          topics),
                          and OTLP marked with its content-type header to samples-auto (a topic
                          configured as JSON); hosts <format>-a and <format>-b
  produce-codecs BROKERS  the scenario as JSON written with each compression codec (gzip,
                          snappy, lz4, zstd) to samples-<codec>; hosts <codec>-a and <codec>-b
  expect  BROKERS TOPIC   reads JSON alert events until, for every scenario, the b series'
                          absence fired and the a series' anomaly fired, web-a's anomaly
                          resolved, and a heartbeat arrived (or fails after 90 s)
"""
import json, os, sys, time

from confluent_kafka import Consumer, Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
FORMATS = ["remote_write", "otlp", "influx", "adapter", "vector"]
CODECS = ["gzip", "snappy", "lz4", "zstd"]
PREFIXES = ["web"] + FORMATS + ["auto"] + CODECS

# the scenario's 200 samples (10 s apart) end now: event time close to wall time, as from a
# live source, so deadair's wall clock (used once it has caught up) agrees with event time
T0 = int(time.time() * 1000) - 200 * 10000


def noise(i):
    return ((i * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF) >> 40) % 1000 / 500.0 - 1.0


def produce(brokers, topic):
    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    for i in range(200):
        ts = T0 + i * 10000
        a = 160.0 if i == 150 else 100.0 + noise(i)  # a spike on web-a
        samples = [{"name": "cpu", "labels": {"host": "web-a", "job": "py"}, "timestamp": ts, "value": a}]
        if i < 100:
            samples.append({"name": "cpu", "labels": {"host": "web-b", "job": "py"}, "timestamp": ts, "value": 50.0 + noise(i + 1000)})
        p.produce(topic, key="py", value=json.dumps(samples))
        p.poll(0)
    left = p.flush(30)
    assert left == 0, f"{left} messages not delivered"
    print(f"e2e_client: produced the scenario to {topic}")


def scenario(prefix):
    """The scenario's messages as (name, labels, ts, value) lists, hosts PREFIX-a and PREFIX-b."""
    job = f"py-{prefix}"  # one source per scenario: its b series is a lone silence
    for i in range(200):
        ts = T0 + i * 10000
        a = 160.0 if i == 150 else 100.0 + noise(i)
        msg = [("cpu_usage", {"host": f"{prefix}-a", "job": job}, ts, a)]
        if i < 100:
            msg.append(("cpu_usage", {"host": f"{prefix}-b", "job": job}, ts, 50.0 + noise(i + 1000)))
        yield msg


def produce_formats(brokers, _topic=None):
    from formats import CONTENT_TYPE, ONE_PER_MESSAGE, encode
    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    for fmt in FORMATS:
        for msg in scenario(fmt):
            # prometheus-kafka-adapter and Vector write one sample per message, with no header
            for part in ([[s] for s in msg] if fmt in ONE_PER_MESSAGE else [msg]):
                p.produce(f"samples-{fmt}", key=fmt, value=encode(fmt, part))
                p.poll(0)
    for msg in scenario("auto"):
        p.produce("samples-auto", key="auto", value=encode("otlp", msg), headers=[("content-type", CONTENT_TYPE["otlp"])])
        p.poll(0)
    left = p.flush(30)
    assert left == 0, f"{left} messages not delivered"
    print(f"e2e_client: produced the scenario as {', '.join(FORMATS)} and as marked OTLP (samples-auto)")


def produce_codecs(brokers, _topic=None):
    for codec in CODECS:
        p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "compression.type": codec,
                      "linger.ms": 50})
        for msg in scenario(codec):
            samples = [{"name": n, "labels": l, "timestamp": ts, "value": v} for n, l, ts, v in msg]
            p.produce(f"samples-{codec}", key=codec, value=json.dumps(samples))
            p.poll(0)
        left = p.flush(30)
        assert left == 0, f"{left} messages not delivered"
    print(f"e2e_client: produced the scenario compressed with {', '.join(CODECS)}")


def expect(brokers, topic):
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"e2e-reader-{time.time()}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    seen = []

    def has(kind, state, host):
        return any(e["kind"] == kind and e["state"] == state and e["labels"].get("host") == host for e in seen)

    def want():
        return (all(has("absence", "firing", f"{p}-b") and has("anomaly", "firing", f"{p}-a") for p in PREFIXES)
                and has("anomaly", "resolved", "web-a") and any(e["kind"] == "heartbeat" for e in seen))
    deadline = time.time() + 90
    while not want():
        if time.time() > deadline:
            print("e2e_client: expected alerts did not arrive; saw:")
            for e in seen:
                print("  ", e["event_time"], e["state"], e["kind"], e["labels"], e["summary"])
            for p in PREFIXES:
                print(f"   {p}: absence of {p}-b {has('absence', 'firing', p + '-b')}, anomaly of {p}-a {has('anomaly', 'firing', p + '-a')}")
            sys.exit(1)
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        e = json.loads(m.value())
        assert m.key().decode() == e["alert_id"], "alerts are keyed by alert_id"
        seen.append(e)
    c.close()
    for e in seen:
        if e["kind"] != "heartbeat":
            print("e2e_client:", e["event_time"], e["state"], e["kind"], e["name"], e["labels"].get("host"))
    print(f"e2e_client: expectations met ({len(seen)} events read)")


if __name__ == "__main__":
    cmd, brokers, topic = (sys.argv[1:4] + [None])[:3]
    {"produce": produce, "produce-formats": produce_formats, "produce-codecs": produce_codecs,
     "expect": expect}[cmd](brokers, topic)
