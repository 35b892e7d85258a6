#!/usr/bin/env bash
# deadair's test command (README "Test it"; .ci/run calls exactly this).
# Runs formatting and lint checks, every unit, property and integration test (including the
# NAB replay test, which needs ../shared beside the project, the mock-cluster Kafka tests, the
# real-broker tests (clocks, state, a killed and restarted broker, TLS + SASL SCRAM behind
# stunnel), the decoders against real encoders' fixtures, Alertmanager forwarding against a real
# Alertmanager, plain and with TLS + basic auth), builds the benchmarks, then the end-to-end
# test against a real broker in every input format and codec (scripts/e2e.sh). scripts/install-deps.sh first installs tansu, promtool/prometheus,
# alertmanager and the Python venv (confluent-kafka, the formats' encoders) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "dependencies (scripts/install-deps.sh)"
scripts/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "broker for the integration tests (tansu on 127.0.0.1:19192)"
scripts/broker.sh stop 19192
scripts/broker.sh start 19192 memory://tansu/
trap 'scripts/broker.sh stop 19192' EXIT
export DEADAIR_TEST_BROKERS=127.0.0.1:19192

step "cargo test"
cargo test --locked

step "benchmarks compile (cargo bench --no-run)"
cargo bench --locked --no-run

step "end-to-end against a real broker (scripts/e2e.sh)"
scripts/e2e.sh
