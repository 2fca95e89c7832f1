#!/usr/bin/env bash
# Builds everything the quickstart needs and runs it: the built-in clickstream generator →
# filter → project → 10-second tumbling windows → standard output. No broker needed.
# Installs what it needs (Debian's Wasm toolchain) on a fresh machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SLUICE_ROOT"

ensure_host_toolchain
"$SLUICE_ROOT/scripts/build-plugins.sh"
log "building the runtime"
cargo build --release --quiet -p sluice
log "running pipelines/quickstart.toml"
exec "$CARGO_TARGET_DIR/release/sluice" run pipelines/quickstart.toml "$@"
