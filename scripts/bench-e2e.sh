#!/usr/bin/env bash
# End-to-end throughput and memory of `deadair run` through a loopback tansu broker.
#
# For each case, `deadair gen` first writes a backlog to a fresh topic; then `deadair run` consumes
# it from the start and the script reports samples/s (wall time from the first consumed message
# to the last) and deadair's CPU-seconds per million samples (utime + stime from /proc), both
# over the samples consumed after the first poll that saw any (the clock and the CPU count
# start there, so what was consumed before is not counted either), and the
# resident set size sampled while the backlog is consumed: once 10 % is consumed, the maximum,
# and at the end (flat means the three agree).
#
# Cases: 100-sample protobuf messages; one-sample messages in protobuf marked with their
# content-type header (read with `autodetect = true`: librdkafka parses every message's headers), in
# protobuf without headers and in JSON without headers (what prometheus-kafka-adapter and
# Vector write); and a one-sample backlog for the RSS profile.
#
#   scripts/bench-e2e.sh [SAMPLES_100 [SAMPLES_1 [BACKLOG_MESSAGES]]]
#   defaults: 8000000 samples in 100-sample messages, 2000000 in each one-sample case,
#             and a 5000000-message backlog (1 sample each) for the RSS profile; 0 skips a case.
#   DEADAIR_BIN=PATH measures that build instead of building this checkout (to compare two
#   builds in one session); DEADAIR_GEN_BIN=PATH writes the backlogs with that build (one that
#   has `gen --no-headers`, when DEADAIR_BIN is older).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
if [ -n "${DEADAIR_BIN:-}" ]; then
  BIN=$DEADAIR_BIN
else
  cargo build --release --locked --quiet
  BIN="${CARGO_TARGET_DIR:-target}/release/deadair"
fi
PORT=19192; BROKERS=127.0.0.1:$PORT; MPORT=19564
W=target/bench-e2e; mkdir -p "$W"
trap 'kill $RUN 2>/dev/null || true; scripts/broker.sh stop $PORT' EXIT
RUN=""
scripts/broker.sh stop $PORT
scripts/broker.sh start $PORT memory://tansu/ >/dev/null
tansu topic create --broker "tcp://$BROKERS" --partitions 1 alerts >/dev/null
clk=$(getconf CLK_TCK)

metric() { curl -fsS "http://127.0.0.1:$MPORT/metrics" 2>/dev/null | awk -v m="$1" '$1==m {print $2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_case() { # name topic samples batch series rate format autodetect(true, or - for the default) [gen flags]
  local name=$1 topic=$2 samples=$3 batch=$4 series=$5 rate=$6 format=$7 autodetect=$8
  shift 8
  [ "$samples" -gt 0 ] || return 0
  tansu topic create --broker "tcp://$BROKERS" --partitions 1 "$topic" >/dev/null
  local dur=$(( samples / rate )); [ "$dur" -ge 1 ] || dur=1
  echo "bench-e2e: $name: producing $samples samples ($batch per message, $series series) ..." >&2
  "${DEADAIR_GEN_BIN:-$BIN}" gen --brokers $BROKERS --topic "$topic" --series "$series" --rate "$rate" --duration "${dur}s" \
    --batch "$batch" --format "$format" "$@" 2>"$W/gen-$name.log" >/dev/null
  local produced; produced=$(awk '/produced/ {print $3}' "$W/gen-$name.log")
  cat > "$W/run-$name.toml" <<TOML
brokers = "$BROKERS"
group_id = "bench-$name-$$"
alert_topic = "alerts"
heartbeat_interval = "1s"
metrics_addr = "127.0.0.1:$MPORT"
[[input]]
topic = "$topic"
format = "$format"
TOML
  [ "$autodetect" = - ] || echo "autodetect = $autodetect" >> "$W/run-$name.toml"
  "$BIN" run --config "$W/run-$name.toml" 2>"$W/run-$name.log" &
  RUN=$!
  local consumed=0 t0="" c0="" n0=0 rss_early="" rss_max=0 rss=0
  while [ "${consumed:-0}" -lt "$produced" ]; do
    sleep 0.2
    consumed=$(metric deadair_samples_consumed_total); consumed=${consumed:-0}
    if [ -z "$t0" ] && [ "$consumed" -gt 0 ]; then t0=$(date +%s.%N); c0=$(cpu_ticks $RUN); n0=$consumed; fi
    rss=$(metric deadair_resident_memory_bytes); rss=${rss:-0}
    if [ "$rss" -gt 0 ] && [ $(( consumed * 10 )) -ge "$produced" ]; then
      [ -n "$rss_early" ] || rss_early=$rss
      [ "$rss" -le "$rss_max" ] || rss_max=$rss
    fi
  done
  local t1 c1; t1=$(date +%s.%N); c1=$(cpu_ticks $RUN)
  kill -TERM $RUN; wait $RUN || true; RUN=""
  awk -v n="$produced" -v n0="$n0" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v clk="$clk" -v name="$name" \
      -v lo="$rss_early" -v hi="$rss_max" -v last="$rss" 'BEGIN {
    wall = t1 - t0; cpu = (c1 - c0) / clk; m = n - n0;
    printf "%-22s %10d samples  %9.0f samples/s  %6.2f CPU-s per million samples  RSS at 10%% %.0f / max %.0f / end %.0f MiB  (rates over the %d samples consumed after the first poll that saw any)\n",
      name, n, m / wall, cpu / (m / 1e6), lo / 1048576, hi / 1048576, last / 1048576, m }'
}

run_case batch100 bench-b100 "${1:-8000000}" 100 10000 400000 proto -
run_case batch1-headers bench-b1h "${2:-2000000}" 1 10000 100000 proto true
run_case batch1 bench-b1 "${2:-2000000}" 1 10000 100000 proto - --no-headers
run_case batch1-json bench-b1j "${2:-2000000}" 1 10000 100000 json - --no-headers
run_case backlog-5M-messages bench-backlog "${3:-5000000}" 1 10000 120000 proto -
