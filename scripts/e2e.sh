#!/usr/bin/env bash
# End-to-end test against a real Kafka-protocol broker (tansu on 127.0.0.1), an independent
# client (confluent-kafka), promtool and a real Prometheus server:
#  1. samples from `deadair gen` (protobuf; and remote-write, OTLP and Influx, marked with
#     their content-type, to a JSON topic) and from the Python client (a scripted scenario as
#     JSON, and as remote-write, OTLP and Influx written by those formats' own encoders, each to
#     its own topic, and as marked OTLP to the JSON topic, and as JSON compressed with each of
#     gzip, snappy, lz4 and zstd) flow through `deadair run` (its alerts zstd-compressed); the
#     Python client reads the alert topic and checks, for every format, an injected silence ->
#     absence firing and a spike -> anomaly firing, recovery -> resolved, and heartbeats; no
#     message fails to decode;
#  2. /metrics passes `promtool check metrics`, and a Prometheus server scraping deadair
#     returns deadair's samples for a query; /healthz and /readyz answer 200;
#  3. SIGTERM stops deadair with exit code 0 within its shutdown timeout.
# Broker loss is covered by tests/kafka_mock.rs (mock cluster) and tests/broker_restart.rs (a
# real tansu broker on sqlite storage killed and restarted).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/deadair"
PY=target/e2e-venv/bin/python
PORT=19092; BROKERS=127.0.0.1:$PORT; MPORT=19464; PPORT=19090
W=target/e2e; rm -rf "$W/prom"; mkdir -p "$W"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/broker.sh stop $PORT
}
trap cleanup EXIT
step() { printf '\n== e2e: %s\n' "$*"; }

step "broker (tansu, in-memory storage)"
scripts/broker.sh stop $PORT
scripts/broker.sh start $PORT memory://tansu/
for t in samples:2 samples-json:1 samples-remote_write:1 samples-otlp:1 samples-influx:1 samples-adapter:1 samples-vector:1 samples-auto:1 samples-gen:1 samples-gzip:1 samples-snappy:1 samples-lz4:1 samples-zstd:1 alerts:1; do
  tansu topic create --broker "tcp://$BROKERS" --partitions "${t#*:}" "${t%%:*}" >/dev/null
done

cat > "$W/run.toml" <<TOML
brokers = "$BROKERS"
group_id = "deadair-e2e"
alert_topic = "alerts"
alert_format = "json"
heartbeat_interval = "2s"
shutdown_timeout = "20s"
metrics_addr = "127.0.0.1:$MPORT"
compression = "zstd"                # the alert producer's codec (the Python reader decodes it)
[[input]]
topic = "samples"
format = "proto"
[[input]]
topic = "samples-json"
format = "json"
[[input]]
topic = "samples-remote_write"
format = "remote_write"
[[input]]
topic = "samples-otlp"
format = "otlp"
[[input]]
topic = "samples-influx"
format = "influx"
[[input]]
topic = "samples-adapter"
format = "json"                     # prometheus-kafka-adapter's JSON: no header
[[input]]
topic = "samples-vector"
format = "json"                     # Vector's metric events: no header
[[input]]
topic = "samples-auto"
format = "json"                     # the producer marks OTLP messages with content-type
autodetect = true
[[input]]
topic = "samples-gen"
format = "json"                     # deadair gen marks every message with its content-type
autodetect = true
TOML
for c in gzip snappy lz4 zstd; do
  printf '[[input]]\ntopic = "samples-%s"\nformat = "json"                     # written with compression.type = %s\n' "$c" "$c" >> "$W/run.toml"
done
$BIN check "$W/run.toml"

step "producers: deadair gen (every format) and the Python client (the scenario in every format)"
$BIN gen --brokers $BROKERS --topic samples --series 200 --rate 2000 --duration 3s
for f in remote_write otlp influx; do
  $BIN gen --brokers $BROKERS --topic samples-gen --format $f --series 50 --rate 500 --duration 1s
done
$PY scripts/e2e_client.py produce $BROKERS samples-json
$PY scripts/e2e_client.py produce-formats $BROKERS
$PY scripts/e2e_client.py produce-codecs $BROKERS

step "deadair run"
$BIN run --config "$W/run.toml" > "$W/run.log" 2>&1 &
RUN=$!; pids+=($RUN)
$PY scripts/e2e_client.py expect $BROKERS alerts

step "self-metrics: promtool, health endpoints, a real Prometheus scraping deadair"
curl -fsS "http://127.0.0.1:$MPORT/metrics" > "$W/metrics.txt"
promtool check metrics < "$W/metrics.txt"
grep -E '^deadair_(samples_consumed_total|offsets_stored_total|alert_events_total|decode_errors_total)' "$W/metrics.txt"
if grep -E '^deadair_decode_errors_total\{reason="[a-z_]+"\} [1-9]' "$W/metrics.txt"; then
  echo "e2e: some messages failed to decode"; exit 1
fi
curl -fsS "http://127.0.0.1:$MPORT/healthz"
curl -fsS --retry 10 --retry-delay 1 --retry-all-errors "http://127.0.0.1:$MPORT/readyz"
cat > "$W/prometheus.yml" <<YML
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: deadair
    static_configs: [{targets: ["127.0.0.1:$MPORT"]}]
YML
prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/prom" \
  --web.listen-address="127.0.0.1:$PPORT" > "$W/prometheus.log" 2>&1 &
pids+=($!)
ok=""
for _ in $(seq 1 30); do
  sleep 1
  r=$(curl -fsS "http://127.0.0.1:$PPORT/api/v1/query?query=deadair_samples_consumed_total" 2>/dev/null || true)
  if echo "$r" | grep -q '"result":\[{'; then ok=1; echo "prometheus: $r"; break; fi
done
[ -n "$ok" ] || { echo "prometheus returned no deadair samples"; tail -20 "$W/prometheus.log"; exit 1; }

step "SIGTERM: graceful shutdown"
kill -TERM $RUN
start=$(date +%s)
wait $RUN && code=0 || code=$?
echo "deadair run exited with $code after $(( $(date +%s) - start ))s"
tail -n 3 "$W/run.log"
[ "$code" -eq 0 ]
echo "e2e: passed"
