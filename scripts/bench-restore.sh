#!/usr/bin/env bash
# Time to restore a partition of SERIES series from the state topic of a loopback tansu broker.
#
# `deadair gen` writes SERIES series (a few samples each) to a one-partition topic; `deadair run`
# with `[state]` consumes it and checkpoints on SIGTERM; a second `deadair run` of the same group
# then restores the partition from the state topic as soon as it is assigned. The script prints the checkpoint size and
# the restore time deadair logs (reading the checkpoint's records from the broker, decoding and
# rebuilding the engine), and the wall time from the second start until it is restored.
#
#   scripts/bench-restore.sh [SERIES]     default 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
SERIES=${1:-1000000}
scripts/install-deps.sh >/dev/null
cargo build --release --locked --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/deadair"
PORT=19292; BROKERS=127.0.0.1:$PORT; MPORT=19764
W=target/bench-restore; mkdir -p "$W"
RUN=""
trap 'kill $RUN 2>/dev/null || true; scripts/broker.sh stop $PORT' EXIT
scripts/broker.sh stop $PORT
scripts/broker.sh start $PORT memory://tansu/ >/dev/null
for t in restore-in restore-state restore-alerts; do
  tansu topic create --broker "tcp://$BROKERS" --partitions 1 "$t" >/dev/null
done
echo "bench-restore: writing $SERIES series ..." >&2
"$BIN" gen --brokers $BROKERS --topic restore-in --series "$SERIES" --rate 500000 \
  --duration "$(( (SERIES * 3 + 499999) / 500000 ))s" --batch 100 2>"$W/gen.log" >/dev/null
produced=$(awk '/produced/ {print $3}' "$W/gen.log")
cat > "$W/run.toml" <<TOML
brokers = "$BROKERS"
group_id = "bench-restore-$$"
alert_topic = "restore-alerts"
metrics_addr = "127.0.0.1:$MPORT"
shutdown_timeout = "120s"
[[input]]
topic = "restore-in"
format = "proto"
[state]
topic = "restore-state"
interval = "1h"
TOML
metric() { curl -fsS "http://127.0.0.1:$MPORT/metrics" 2>/dev/null | awk -v m="$1" '$1==m {print $2}'; }
"$BIN" run --config "$W/run.toml" 2>"$W/run1.log" & RUN=$!
c=0
while [ "${c:-0}" -lt "$produced" ]; do sleep 0.5; c=$(metric deadair_samples_consumed_total); done
kill -TERM $RUN; wait $RUN; RUN=""
t0=$(date +%s.%N)
"$BIN" run --config "$W/run.toml" 2>"$W/run2.log" & RUN=$!
for _ in $(seq 1 3000); do grep -q "restored checkpoint" "$W/run2.log" && break; sleep 0.1; done
t1=$(date +%s.%N)
kill -TERM $RUN; wait $RUN || true; RUN=""
grep -h "restored checkpoint" "$W/run2.log" | sed 's/^.*INFO //'
awk -v t0="$t0" -v t1="$t1" -v n="$SERIES" 'BEGIN { printf "bench-restore: %d series: %.2f s from the second start to the restored partition\n", n, t1 - t0 }'
