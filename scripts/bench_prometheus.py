#!/usr/bin/env python3
"""The load and the stopwatch of scripts/bench-prometheus.sh (run it through that script).

Sends the same Prometheus remote-write requests, in real time, to Prometheus (HTTP,
/api/v1/write) and to a Kafka topic that deadair reads (format "remote_write"): SERIES series,
one sample each every CADENCE seconds, spread evenly over the seconds. After WARM seconds, 100
series stop for good and 100 others send one spike of SPIKE_SD standard deviations. Meanwhile it
watches both alert streams (Prometheus' /api/v1/alerts, polled every second; deadair's JSON
alert events on its alert topic), and at the end prints one markdown table:
CPU-s per million samples, RSS per series, and the time from a series stopping (its last sample)
and from a spike (its sample) to each side's alert (median and max over the 100 series, and how
many of the 100 were alerted), plus the false alerts of each side on the other series.

Usage: bench_prometheus.py BROKERS TOPIC ALERT_TOPIC PROM_URL PROM_PID DEADAIR_PID
       [--series N] [--cadence S] [--warm S] [--after S] [--spike-sd K]
Needs confluent-kafka and python-snappy (scripts/install-deps.sh puts them in target/e2e-venv).
"""
import argparse, json, os, random, statistics, struct, sys, threading, time, urllib.request
from datetime import datetime

import snappy
from confluent_kafka import Consumer, Producer

NAMES = ["node_cpu_busy", "node_load1", "node_mem_used", "node_disk_io", "node_net_rx",
         "node_net_tx", "node_procs", "node_fds", "node_ctx_switches", "node_interrupts"]


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):  # length-delimited field
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def label(name, value):
    return field(1, field(1, name.encode()) + field(2, value.encode()))


def series_labels(i):
    """Series i: one of ten metrics of host i // 10 (labels in sorted order, as Prometheus wants).
    `metric` repeats the name so that one rule over all series keeps them apart (PromQL's
    functions drop `__name__`)."""
    return {"__name__": NAMES[i % 10], "instance": f"host-{i // 10:05d}:9100", "job": "node",
            "metric": NAMES[i % 10]}


def encode_labels(i):
    return b"".join(label(k, v) for k, v in sorted(series_labels(i).items()))


def timeseries(labels, value, ts_ms):
    sample = b"\x09" + struct.pack("<d", value) + b"\x10" + varint(ts_ms)
    return field(1, labels + field(2, sample))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def iso_ms(s):
    """RFC 3339 (Prometheus' activeAt, deadair's emitted_at) to epoch ms."""
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        s = f"{head}.{(frac + '000000')[:6]}{tz}"
    return int(datetime.fromisoformat(s).timestamp() * 1000)


def key(labels):
    return (labels.get("metric"), labels.get("instance"))


def main():
    ap = argparse.ArgumentParser()
    for a in ["brokers", "topic", "alert_topic", "prom", "prom_pid", "deadair_pid"]:
        ap.add_argument(a)
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--cadence", type=int, default=10)
    ap.add_argument("--warm", type=int, default=420)
    ap.add_argument("--after", type=int, default=90)
    ap.add_argument("--spike-sd", type=float, default=100.0)
    a = ap.parse_args()
    n, cad = a.series, a.cadence
    hosts = n // 10
    stopped = [10 * h + 3 for h in range(0, hosts, max(1, hosts // 100))][:100]
    spiked = [10 * h + 5 for h in range(max(1, hosts // 200), hosts, max(1, hosts // 100))][:100]
    stopped_set, spiked_set = set(stopped), set(spiked)
    names = {key(series_labels(i)): i for i in stopped + spiked}
    enc = [encode_labels(i) for i in range(n)]
    rng = random.Random(7)
    mean = [100.0 + (i % 37) for i in range(n)]
    sd = 2.0

    producer = Producer({"bootstrap.servers": a.brokers, "linger.ms": 5,
                         "message.max.bytes": 4_000_000})
    last_sent = {}  # series -> ms of its last sample (stopped series)
    spike_at = {}   # series -> ms of its spike
    samples = 0
    prom_alerts, dead_alerts = {}, {}  # (kind, series key) -> first alert ms
    prom_false, dead_false = set(), set()
    stop = threading.Event()

    def watch_prometheus():
        while not stop.is_set():
            try:
                with urllib.request.urlopen(a.prom + "/api/v1/alerts", timeout=5) as r:
                    for al in json.load(r)["data"]["alerts"]:
                        if al["state"] != "firing":
                            continue
                        k = key(al["labels"])
                        kind = "absence" if al["labels"]["alertname"] == "Absent" else "spike"
                        at = iso_ms(al["activeAt"])
                        if names.get(k) is None:
                            prom_false.add((kind, k))
                        else:
                            prom_alerts.setdefault((kind, k), at)
            except Exception as e:  # noqa: BLE001 (a slow Prometheus: try again)
                print(f"bench-prometheus: alerts poll: {e}", file=sys.stderr)
            stop.wait(1.0)

    def watch_deadair():
        c = Consumer({"bootstrap.servers": a.brokers, "group.id": f"bench-prom-{os.getpid()}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([a.alert_topic])
        while not stop.is_set():
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            e = json.loads(m.value())
            if e.get("state") != "firing" or e["kind"] not in ("absence", "anomaly"):
                continue
            labels = dict(e.get("labels") or {})
            labels["__name__"] = e["name"]
            k = key(labels)
            kind = "absence" if e["kind"] == "absence" else "spike"
            at = iso_ms(e["emitted_at"])
            if names.get(k) is None:
                dead_false.add((kind, k))
            else:
                dead_alerts.setdefault((kind, k), at)
        c.close()

    threads = [threading.Thread(target=watch_prometheus, daemon=True),
               threading.Thread(target=watch_deadair, daemon=True)]
    for t in threads:
        t.start()

    cpu0 = (cpu_seconds(a.prom_pid), cpu_seconds(a.deadair_pid))
    start = time.time()
    tick = 0
    total = a.warm + a.after
    chunk = 2000  # series per request / message
    while True:
        target = start + tick
        now = time.time()
        if target > now:
            time.sleep(target - now)
        if tick >= total:
            break
        ts = int(time.time() * 1000)
        due = range(tick % cad, n, cad)
        parts = []
        for i in due:
            if i in stopped_set and tick >= a.warm:
                continue
            v = mean[i] + sd * rng.gauss(0.0, 1.0)
            if i in spiked_set and tick >= a.warm + cad and i not in spike_at:
                v = mean[i] + a.spike_sd * sd
                spike_at[i] = ts
            if i in stopped_set:
                last_sent[i] = ts
            parts.append(timeseries(enc[i], v, ts))
        samples += len(parts)
        for j in range(0, len(parts), chunk):
            body = snappy.compress(b"".join(parts[j:j + chunk]))
            producer.produce(a.topic, body)
            req = urllib.request.Request(a.prom + "/api/v1/write", data=body, method="POST", headers={
                "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0"})
            with urllib.request.urlopen(req, timeout=30) as r:
                r.read()
        producer.poll(0)
        if tick % 60 == 0:
            print(f"bench-prometheus: {tick}/{total} s, {samples} samples sent", file=sys.stderr)
        tick += 1
    producer.flush(30)
    cpu1 = (cpu_seconds(a.prom_pid), cpu_seconds(a.deadair_pid))
    rss = (rss_bytes(a.prom_pid), rss_bytes(a.deadair_pid))
    time.sleep(3)  # the last alerts
    stop.set()
    for t in threads:
        t.join(10)

    def delays(alerts, kind, sent):
        d = [alerts[(kind, key(series_labels(i)))] - sent[i] for i in sent
             if (kind, key(series_labels(i))) in alerts]
        if not d:
            return "none"
        return f"{statistics.median(d) / 1000:.1f} s / {max(d) / 1000:.1f} s ({len(d)}/{len(sent)})"

    rows = [
        ("CPU-s per million samples", *[f"{(c1 - c0) / (samples / 1e6):.2f}" for c0, c1 in zip(cpu0, cpu1)]),
        ("RSS per series (end)", *[f"{r / n:.0f} B ({r / 2**20:.0f} MiB)" for r in rss]),
        ("series stopped -> alert (median / max)", delays(prom_alerts, "absence", last_sent),
         delays(dead_alerts, "absence", last_sent)),
        (f"spike of {a.spike_sd:g} sd -> alert (median / max)", delays(prom_alerts, "spike", spike_at),
         delays(dead_alerts, "spike", spike_at)),
        ("alerts on other series", str(len(prom_false)), str(len(dead_false))),
    ]
    print(f"\n{n} series, one sample each every {cad} s, {samples} samples in {total} s "
          f"(100 series stopped and 100 spiked at {a.warm} s)\n")
    print("| | Prometheus 2.42 (remote-write receiver + rules) | deadair (through tansu) |")
    print("|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
