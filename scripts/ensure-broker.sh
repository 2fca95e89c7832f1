#!/usr/bin/env bash
# Makes sure the Kafka-protocol broker used for development and tests (Nisshi, pinned) is installed
# and prints the path of its binary. Reuses `nisshi` on PATH or a cached build; a fresh machine
# builds it once (~20 min on 2 cores) into $SLUICE_TOOLS (default ~/.cache/sluice/tools).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_broker
echo "$NISSHI"
