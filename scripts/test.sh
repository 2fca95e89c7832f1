#!/usr/bin/env bash
# Builds everything and runs the whole test suite: plugin components from source,
# formatting, lints (warnings are errors), then every test of the workspace.
# Installs what it needs (Debian's Wasm toolchain, the Nisshi Kafka broker, Chromium for the
# console's browser test) on a fresh machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SLUICE_ROOT"

ensure_host_toolchain
# The Kafka tests start and stop their own Nisshi brokers on 127.0.0.1 (by PID).
ensure_broker
export SLUICE_NISSHI="$NISSHI"
# The web console is tested in a real browser: Debian's headless-capable Chromium.
apt_install chromium
"$SLUICE_ROOT/scripts/build-plugins.sh"
log "checking formatting"
cargo fmt --all --check
log "linting (warnings are errors)"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
log "running the tests"
cargo test --release --workspace
