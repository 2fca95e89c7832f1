#!/usr/bin/env bash
# Builds every plugin crate (plugins/* and the test plugins in tests/plugins/*), or only the
# packages named as arguments, into WebAssembly components in build/plugins/<crate-name>.wasm.
# Installs the toolchain it needs when missing; cargo skips what is up to date, and unchanged
# components are not rewritten.
#
#   scripts/build-plugins.sh                 # all plugins
#   scripts/build-plugins.sh filter project  # just these
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SLUICE_ROOT"

packages=("$@")
if [ ${#packages[@]} -eq 0 ]; then
    for manifest in plugins/*/Cargo.toml tests/plugins/*/Cargo.toml; do
        packages+=("$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)")
    done
fi

ensure_wasm_toolchain
log "building ${#packages[@]} plugin components: ${packages[*]}"
# Debian's cargo must use Debian's rustc (rustup's proxies come first on PATH).
RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTUP_TOOLCHAIN= /usr/bin/cargo build --quiet \
    --profile plugin --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
    --config "target.wasm32-unknown-unknown.linker=\"$COMPONENT_LD\"" \
    $(printf -- '-p %s ' "${packages[@]}")

mkdir -p build/plugins
for package in "${packages[@]}"; do
    built="$CARGO_TARGET_DIR/wasm32-unknown-unknown/plugin/${package//-/_}.wasm"
    [ -f "$built" ] || die "cargo did not produce $built"
    cmp -s "$built" "build/plugins/$package.wasm" || cp "$built" "build/plugins/$package.wasm"
done
ls -l build/plugins >&2
