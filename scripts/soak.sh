#!/usr/bin/env bash
# The soak test: a Kafka pipeline under steady load for SLUICE_SOAK_SECONDS (default 600) with
# hot swaps every 30 s, an operator trapping on 1 record in 10,000, the broker frozen for 20 s
# and a kill -9 with restart; prints the totals and the process's RSS curve, and fails if a
# record is lost or memory grows. Not part of CI (it takes ten minutes).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SLUICE_ROOT"

ensure_host_toolchain
ensure_broker
export SLUICE_NISSHI="$NISSHI"
"$SLUICE_ROOT/scripts/build-plugins.sh" misbehave
log "soaking for ${SLUICE_SOAK_SECONDS:-600} s"
cargo test --release -p sluice --test it -- --ignored --exact soak::soak_under_load_with_swaps_traps_a_frozen_broker_and_a_kill --nocapture
