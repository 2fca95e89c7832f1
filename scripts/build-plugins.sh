#!/usr/bin/env bash
# Builds every plugin (the Rust crates of plugins/* and tests/plugins/*, and the Python,
# JavaScript and C plugins of plugins/* through `sluice plugin build`), or only those named as
# arguments, into WebAssembly components in build/plugins/<name>.wasm. Installs the toolchains
# it needs when missing; up-to-date components are not rebuilt or rewritten.
#
#   scripts/build-plugins.sh                 # all plugins
#   scripts/build-plugins.sh filter project  # just these
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SLUICE_ROOT"

packages=()
other_languages=()   # plugin directories built by `sluice plugin build`
for manifest in plugins/*/Cargo.toml tests/plugins/*/Cargo.toml plugins/*/sluice-plugin.toml; do
    # A Rust plugin made by `sluice plugin new` is its own workspace: `sluice plugin build` builds it.
    case $manifest in
        *Cargo.toml) [ -f "$(dirname "$manifest")/sluice-plugin.toml" ] && continue ;;
    esac
    name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)
    if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then
        continue
    fi
    case $manifest in
        *Cargo.toml) packages+=("$name") ;;
        *) other_languages+=("$(dirname "$manifest")") ;;
    esac
done
[ $# -eq 0 ] || [ $((${#packages[@]} + ${#other_languages[@]})) -eq $# ] || die "unknown plugin among: $*"

ensure_wasm_toolchain
mkdir -p build/plugins
if [ ${#packages[@]} -gt 0 ]; then
    log "building ${#packages[@]} plugin components: ${packages[*]}"
    # Debian's cargo must use Debian's rustc (rustup's proxies come first on PATH).
    RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTUP_TOOLCHAIN= /usr/bin/cargo build --quiet \
        --profile plugin --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
        --config "target.wasm32-unknown-unknown.linker=\"$COMPONENT_LD\"" \
        $(printf -- '-p %s ' "${packages[@]}")

    for package in "${packages[@]}"; do
        built="$CARGO_TARGET_DIR/wasm32-unknown-unknown/plugin/${package//-/_}.wasm"
        [ -f "$built" ] || die "cargo did not produce $built"
        cmp -s "$built" "build/plugins/$package.wasm" || cp "$built" "build/plugins/$package.wasm"
    done
fi

# Plugins with a sluice-plugin.toml: rebuilt only when a source (or the WIT) is newer than the
# component, since Python and JavaScript builds are not byte-for-byte reproducible.
# SLUICE_BIN: a runtime built already (scripts/test.sh builds it with the tests).
if [ ${#other_languages[@]} -gt 0 ]; then
    ensure_language_toolchains
    sluice_bin=${SLUICE_BIN:-$CARGO_TARGET_DIR/release/sluice}
    [ -n "${SLUICE_BIN:-}" ] || cargo build --release --quiet -p sluice
    for directory in "${other_languages[@]}"; do
        name=$(basename "$directory")
        output="build/plugins/$name.wasm"
        if [ -f "$output" ] && [ -z "$(find "$directory" wit runtime/templates/c -newer "$output" -type f \
                -not -path '*/test/*' -not -path '*/gen/*' -not -path '*/target/*' -not -name '*.wasm' -print -quit)" ]; then
            continue
        fi
        log "building $directory"
        "$sluice_bin" plugin build "$directory" --wit wit --output "$output" >&2
    done
fi
ls -l build/plugins >&2
