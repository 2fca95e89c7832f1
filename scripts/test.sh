#!/usr/bin/env bash
# Builds everything and runs the whole test suite: plugin components from source,
# formatting, lints (warnings are errors), then every test of the workspace.
# Installs what it needs (Debian's Wasm toolchain, the Nisshi Kafka broker, Chromium for the
# console's browser test) on a fresh machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SLUICE_ROOT"

ensure_host_toolchain
log "checking formatting"
cargo fmt --all --check
# The Kafka tests start and stop their own Nisshi brokers on 127.0.0.1 (by PID). On a fresh
# machine the broker is built (~15 min) beside the rest, which only the tests wait for: its
# build fills the cores the workspace's build leaves idle (links, downloads, apt).
broker_log=$(mktemp)
ensure_broker >"$broker_log" 2>&1 &
broker_build=$!
trap 'pkill -TERM -P "$broker_build" 2>/dev/null || true; kill "$broker_build" 2>/dev/null || true; rm -f "$broker_log"' EXIT
# The web console is tested in a real browser: Debian's headless-capable Chromium.
apt_install chromium
# The runtime and the tests first, once: the Python, JavaScript and C plugins are built by
# that runtime. (`cargo build -p sluice` alone resolves features without the plugins the tests
# compare against, so it would compile wasmtime, Cranelift and the runtime a second time.)
log "building the runtime and the tests"
cargo test --release --workspace --no-run --quiet
SLUICE_BIN="$CARGO_TARGET_DIR/release/sluice" "$SLUICE_ROOT/scripts/build-plugins.sh"
log "linting (warnings are errors)"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
if kill -0 "$broker_build" 2>/dev/null; then
    log "waiting for the Nisshi broker's build"
fi
if ! wait "$broker_build"; then
    cat "$broker_log" >&2
    die "building the Nisshi broker failed (above)"
fi
trap 'rm -f "$broker_log"' EXIT
cat "$broker_log" >&2
ensure_broker
export SLUICE_NISSHI="$NISSHI"
log "running the tests"
cargo test --release --workspace
