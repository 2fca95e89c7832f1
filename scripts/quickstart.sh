#!/usr/bin/env bash
# Builds what the quickstart needs (the runtime and the three plugins it names) and runs it: the built-in clickstream generator →
# filter → project → 10-second tumbling windows → standard output. No broker needed.
# Installs what it needs (Debian's Wasm toolchain) on a fresh machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SLUICE_ROOT"

ensure_host_toolchain
# Only the plugins the quickstart runs: no Python, JavaScript or C toolchain, nothing else.
mapfile -t needed < <(sed -n 's|^plugin = ".*/\([a-z0-9-]*\)\.wasm"|\1|p' pipelines/quickstart.toml | sort -u)
"$SLUICE_ROOT/scripts/build-plugins.sh" "${needed[@]}"
log "building the runtime"
cargo build --release --quiet -p sluice
log "running pipelines/quickstart.toml"
exec "$CARGO_TARGET_DIR/release/sluice" run pipelines/quickstart.toml "$@"
