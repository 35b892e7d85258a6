#!/usr/bin/env bash
# Every performance figure of docs/performance.md from one run at one commit: the engine,
# decoder and state benches, the end-to-end run through tansu, the restore of a 1M-series
# partition from the state topic and the side-by-side run with Prometheus, one after another on
# an otherwise idle machine. Writes each one's own output under target/bench-all/ and prints one
# markdown report (scripts/bench_report.py) stamped with the commit; progress goes to stderr.
#
#   scripts/bench-all.sh        (about 20 minutes on 2 cores; not part of scripts/test.sh)
#
# The benches' figures vary with the machine's load from hour to hour (docs/performance.md):
# compare builds within one session, not against this report from another day.
set -euo pipefail
cd "$(dirname "$0")/.."
W=target/bench-all
rm -rf "$W"; mkdir -p "$W"
commit=$(git rev-parse --short HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then commit="$commit (with uncommitted changes)"; fi
step() { echo "bench-all: $* ($(date -u +%H:%M:%S) UTC)" >&2; }

step "dependencies and release build"
scripts/install-deps.sh >/dev/null
cargo build --release --locked --quiet
started=$(date -u +"%Y-%m-%d %H:%M UTC")

# criterion's results of this run only
rm -rf target/criterion
step "cargo bench --bench engine (about 3 minutes)"
cargo bench --locked --bench engine > "$W/engine.txt" 2>&1
step "cargo bench --bench decode (about 2 minutes)"
cargo bench --locked --bench decode > "$W/decode.txt" 2>&1
step "cargo bench --bench state (about 1 minute)"
cargo bench --locked --bench state > "$W/state.txt" 2>&1
step "scripts/bench-e2e.sh (about 5 minutes)"
scripts/bench-e2e.sh > "$W/e2e.txt" 2> "$W/e2e.log"
step "scripts/bench-restore.sh 1000000 (about 1 minute)"
scripts/bench-restore.sh 1000000 > "$W/restore.txt" 2> "$W/restore.log"
step "scripts/bench-prometheus.sh (about 9 minutes)"
scripts/bench-prometheus.sh > "$W/prometheus.txt" 2> "$W/prometheus.log"

step "report"
python3 scripts/bench_report.py "$W" "$commit" "$started" "$(nproc)" | tee "$W/REPORT.md"
