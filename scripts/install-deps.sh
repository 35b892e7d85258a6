#!/usr/bin/env bash
# Installs what the build and the real-broker tests need, idempotently (a second run changes
# nothing):
#   libssl-dev, libcurl4-openssl-dev, pkg-config  (Debian; linked by librdkafka, see below)
#   tansu       Kafka-compatible broker (crates.io; ~15 min to build on 2 cores, once)
#   promtool    and prometheus, from Debian's `prometheus` package
#   alertmanager from Debian's `prometheus-alertmanager` package (tests/alertmanager.rs)
#   stunnel     from Debian's `stunnel4`: the TLS terminator in front of tansu
#               (tests/broker_security.rs); openssl, which makes the tests' certificates
#   a Python venv in target/e2e-venv with confluent-kafka (an independent Kafka client) and
#   the encoders of the input formats (OTLP, remote-write, Influx line protocol)
set -euo pipefail
cd "$(dirname "$0")/.."

# C libraries deadair's Kafka client links (Debian's, so they get Debian's security updates;
# a vendored OpenSSL would be built twice per profile and patched only by us): OpenSSL for TLS
# and SASL SCRAM, libcurl for OAUTHBEARER tokens from an OIDC provider. libssl-dev and
# pkg-config come with this kind of machine; without libcurl4-openssl-dev the build still
# succeeds but `sasl.oauthbearer.method = "oidc"` is refused by `deadair check`. openssl and
# stunnel4 are for the TLS tests only.
missing=""
for pkg in libssl-dev libcurl4-openssl-dev pkg-config openssl stunnel4; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "install-deps: installing Debian's$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if ! command -v tansu >/dev/null 2>&1; then
  echo "install-deps: building tansu (cargo install; first time only)"
  cargo install tansu --locked --features dynostore,libsql
fi

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "install-deps: installing Debian's prometheus package (promtool, prometheus)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq prometheus >/dev/null
  # the package starts a system service on :9090; the tests run their own server
  $SUDO systemctl stop prometheus >/dev/null 2>&1 || $SUDO service prometheus stop >/dev/null 2>&1 || true
fi

if ! command -v prometheus-alertmanager >/dev/null 2>&1 && ! command -v alertmanager >/dev/null 2>&1; then
  echo "install-deps: installing Debian's prometheus-alertmanager package"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq prometheus-alertmanager >/dev/null
  # the package starts a system service on :9093; the test runs its own server
  $SUDO systemctl stop prometheus-alertmanager >/dev/null 2>&1 || $SUDO service prometheus-alertmanager stop >/dev/null 2>&1 || true
fi

VENV=target/e2e-venv
# confluent-kafka: an independent Kafka client; the others: the formats' own encoders, used by
# scripts/formats.py for the test fixtures and the e2e producer (pinned: fixtures are remade
# with exactly these)
PY_PKGS="confluent-kafka opentelemetry-proto==1.45.2 opentelemetry-exporter-prometheus-remote-write==0.66b1 python-snappy==0.7.3 influxdb-client==1.50.0"
PY_IMPORTS="import confluent_kafka, snappy, influxdb_client, opentelemetry.proto.collector.metrics.v1.metrics_service_pb2, opentelemetry.exporter.prometheus_remote_write.gen.remote_pb2"
if ! "$VENV/bin/python" -c "$PY_IMPORTS" >/dev/null 2>&1; then
  echo "install-deps: creating $VENV with $PY_PKGS"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $PY_PKGS
fi
echo "install-deps: tansu $(tansu --version 2>/dev/null | head -n1 | awk '{print $NF}'), $(promtool --version 2>&1 | head -n1), $( (prometheus-alertmanager --version 2>&1 || alertmanager --version 2>&1) | head -n1), confluent-kafka $("$VENV/bin/python" -c 'import confluent_kafka; print(confluent_kafka.version()[0])')"
