#!/usr/bin/env bash
# Runs a local Kafka-protocol broker (Nisshi, installed on first use) on 127.0.0.1:${1:-9092}
# for the pipelines/kafka-*.toml examples, with the "clickstream" topic (8 partitions).
# Data is kept in memory; stop it with Ctrl-C.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_broker
port=${1:-9092}
url="tcp://127.0.0.1:$port"
"$NISSHI" broker --listener-url "$url" --advertised-listener-url "$url" \
    --storage-engine memory://nisshi/ --group-initial-rebalance-delay 0s &
broker=$!
trap 'kill "$broker" 2>/dev/null; wait "$broker" 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
"$NISSHI" topic create clickstream --partitions 8 --broker "$url" >/dev/null
log "broker ready on 127.0.0.1:$port (topic clickstream, 8 partitions); Ctrl-C stops it"
wait "$broker"
