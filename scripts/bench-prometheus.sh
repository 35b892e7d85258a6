#!/usr/bin/env bash
# deadair side by side with Prometheus on the same machine, the same series and the same samples.
#
# scripts/bench_prometheus.py sends one stream of Prometheus remote-write requests, in real time,
# both to Prometheus (Debian's, with its remote-write receiver) and to a tansu topic that
# `deadair run` reads (format "remote_write"): 100 000 series (ten metrics on each of 10 000
# hosts), one sample each every 10 s. After 7 minutes, 100 series stop for good and 100 others
# send one spike of 100 sd. What each side is asked to do:
#   Prometheus: store every sample (its TSDB, in a temporary directory) and evaluate every 10 s
#     two rules over all series, the nearest equivalent of deadair's default model:
#       absence: time() - timestamp(series) > 30          (3 x the known cadence)
#       spike:   |x - avg_over_time(x[10m])| > 6 x stddev_over_time(x[10m])
#   deadair: its default model (learned cadence for absence, the learned detectors, correlated
#     silence, heartbeats), its alerts produced to Kafka as JSON and committed (at-least-once).
# Prints one markdown table: CPU-s per million samples (each process's own CPU time while the
# load runs; tansu's and the generator's are not counted), RSS per series at the end, the time
# from a series' last sample and from a spike to each side's alert, and alerts on other series.
# A series younger than a day alerts in deadair only on gross outliers (README, "A new
# series"), hence the 100 sd spike; a 6 sd one would need a day of history.
#
#   scripts/bench-prometheus.sh [SERIES [WARM_SECONDS]]     (defaults 100000, 420; ~9 minutes)
# Labels: __name__, instance, job, and `metric` (the name again: PromQL functions drop
# __name__, and one rule over all series must keep them apart).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cargo build --release --locked --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/deadair"
PY=target/e2e-venv/bin/python
SERIES=${1:-100000}; WARM=${2:-420}
PORT=19292; BROKERS=127.0.0.1:$PORT; MPORT=19664; PPORT=19090
W=target/bench-prometheus; rm -rf "$W"; mkdir -p "$W/tsdb"
RUN=""; PROM=""
trap 'kill $RUN $PROM 2>/dev/null || true; scripts/broker.sh stop $PORT' EXIT
scripts/broker.sh stop $PORT
scripts/broker.sh start $PORT memory://tansu/ >/dev/null
tansu topic create --broker "tcp://$BROKERS" --partitions 1 samples >/dev/null
tansu topic create --broker "tcp://$BROKERS" --partitions 1 alerts >/dev/null

cat > "$W/rules.yml" <<'YAML'
groups:
  - name: deadair-equivalent
    interval: 10s
    rules:
      - alert: Absent
        expr: time() - timestamp({job="node"}) > 30
      - alert: Spike
        expr: abs({job="node"} - avg_over_time({job="node"}[10m])) > 6 * stddev_over_time({job="node"}[10m])
YAML
cat > "$W/prometheus.yml" <<YAML
global:
  evaluation_interval: 10s
rule_files: ["$PWD/$W/rules.yml"]
YAML
promtool check config "$W/prometheus.yml" >/dev/null
prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/tsdb" \
  --web.listen-address=127.0.0.1:$PPORT --web.enable-remote-write-receiver 2>"$W/prometheus.log" &
PROM=$!

cat > "$W/run.toml" <<TOML
brokers = "$BROKERS"
group_id = "bench-prometheus-$$"
alert_topic = "alerts"
alert_format = "json"
metrics_addr = "127.0.0.1:$MPORT"
[[input]]
topic = "samples"
format = "remote_write"
TOML
"$BIN" run --config "$W/run.toml" 2>"$W/deadair.log" &
RUN=$!
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$PPORT/-/ready" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$MPORT/readyz" >/dev/null 2>&1 && break
  sleep 1
done
echo "bench-prometheus: Prometheus (pid $PROM) and deadair (pid $RUN) ready; $SERIES series for $((WARM + 90)) s" >&2
"$PY" scripts/bench_prometheus.py "$BROKERS" samples alerts "http://127.0.0.1:$PPORT" "$PROM" "$RUN" \
  --series "$SERIES" --warm "$WARM"
