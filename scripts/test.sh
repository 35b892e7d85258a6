#!/usr/bin/env bash
# deadair's test command (README "Test it"; .ci/run calls exactly this).
# Runs formatting and lint checks, every unit, property and integration test (including the
# NAB replay test, which needs ../shared beside the project, and the mock-cluster Kafka tests),
# builds the benchmarks, then the end-to-end test against a real broker (scripts/e2e.sh, which
# installs tansu, promtool/prometheus and a confluent-kafka venv first if they are missing).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --locked

step "benchmarks compile (cargo bench --no-run)"
cargo bench --locked --no-run

step "end-to-end against a real broker (scripts/e2e.sh)"
scripts/e2e.sh
