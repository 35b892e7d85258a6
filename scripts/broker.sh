#!/usr/bin/env bash
# Starts or stops a tansu broker on 127.0.0.1 for the tests.
#   scripts/broker.sh start PORT STORAGE   (STORAGE: memory://tansu/ or sqlite://FILE)
#   scripts/broker.sh stop PORT
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/e2e
cmd=${1:?start|stop}; port=${2:?port}
pidfile=target/e2e/tansu-$port.pid
case "$cmd" in
  start)
    storage=${3:-memory://tansu/}
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "broker: already running on $port"; exit 0
    fi
    tansu broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "$storage" > "target/e2e/tansu-$port.log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "broker: up on 127.0.0.1:$port ($storage)"; exit 0; fi
      sleep 0.1
    done
    echo "broker: did not come up; log:"; cat "target/e2e/tansu-$port.log"; exit 1
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    ;;
  *) echo "usage: $0 start|stop PORT [STORAGE]"; exit 2 ;;
esac
