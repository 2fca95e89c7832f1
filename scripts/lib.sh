# Shared helpers for Sluice's scripts: sourced, not run.
# shellcheck shell=bash

SLUICE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# One warm target directory outside the clone, shared by every build (host and plugins).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}
# Debian's Rust for WebAssembly: rustc-web and rust-web-src must be the same version.
WASM_APT_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc)
COMPONENT_LD=/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs Debian packages that are missing (apt-get update only when needed).
apt_install() {
    local missing=()
    for package in "$@"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    [ "$(id -u)" -eq 0 ] || die "installing ${missing[*]} needs root (or install them yourself)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 -q update >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 -q install -y --no-install-recommends "${missing[@]}" >/dev/null
}

# The oldest Rust that builds the workspace (wasmtime 48 needs it).
MIN_RUST=1.95

# True if version $1 (x.y.z) is at least $2 (x.y).
version_at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

# Rust host toolchain (rustup's stable, with clippy and rustfmt).
ensure_host_toolchain() {
    command -v cargo >/dev/null || die "cargo not found: install Rust $MIN_RUST or newer with rustup (https://rustup.rs)"
    local version
    version=$(rustc -V | awk '{print $2}')
    version_at_least "$version" "$MIN_RUST" || die "rustc $version is too old: Sluice needs Rust $MIN_RUST or newer (rustup update stable)"
    if command -v rustup >/dev/null && ! rustup component list --installed 2>/dev/null | grep -q '^clippy'; then
        rustup component add clippy rustfmt || die "cannot add clippy and rustfmt with rustup"
    fi
    # librdkafka is built from source (rdkafka's cmake-build): a C toolchain, CMake, OpenSSL
    # and zlib headers; its configuration code includes curl.h even with curl support off.
    apt_install build-essential cmake pkg-config libssl-dev zlib1g-dev libcurl4-openssl-dev
}

# The Wasm toolchain: Debian's rustc-web + matching std source, built with -Zbuild-std.
ensure_wasm_toolchain() {
    apt_install "${WASM_APT_PACKAGES[@]}"
    local version
    version=$(/usr/bin/rustc -V | awk '{print $2}')
    version_at_least "$version" "$MIN_RUST" \
        || die "Debian's rustc-web is $version, older than $MIN_RUST: enable bookworm-security (it ships rustc-web 1.96)"
    [ -d "/usr/src/rustc-$version/library/std" ] \
        || die "Debian's rust-web-src does not match rustc $version: reinstall ${WASM_APT_PACKAGES[*]} together"
    [ -x "$COMPONENT_LD" ] || die "$COMPONENT_LD is missing (package rust-web-llvm)"
    [ -e "$(readlink -f /usr/bin/rust-lld)" ] || die "/usr/bin/rust-lld dangles (package lld-22)"
}

# Tools built or downloaded once per machine, outside the clone (pinned versions in their paths).
SLUICE_TOOLS=${SLUICE_TOOLS:-$HOME/.cache/sluice/tools}

# The Kafka-protocol broker for development: Nisshi 0.8.1 from crates.io, with its in-memory
# storage only (`dynostore`: what the tests and scripts/broker.sh use; its SQLite storage,
# `libsql`, would add 42 crates to the build, SQLite's C sources and bindgen among them).
# Sets NISSHI to its binary (the Kafka tests start their brokers from it).
NISSHI_VERSION=0.8.1
ensure_broker() {
    if command -v nisshi >/dev/null && nisshi --version 2>/dev/null | grep -q "$NISSHI_VERSION"; then
        NISSHI=$(command -v nisshi)
        return 0
    fi
    local root="$SLUICE_TOOLS/nisshi-$NISSHI_VERSION"
    NISSHI="$root/bin/nisshi"
    [ -x "$NISSHI" ] && return 0
    log "building the Nisshi $NISSHI_VERSION broker once for this machine (~10 min on 2 cores)"
    # Its own target directory: a tool build must not share the workspace's lock or cache.
    CARGO_TARGET_DIR="$root/build" cargo install nisshi --version "$NISSHI_VERSION" --locked \
        --ignore-rust-version --no-default-features --features dynostore --root "$root" --quiet
    rm -rf "$root/build"
}

# What `sluice plugin build` needs from Debian for Python, JavaScript and C plugins (it installs
# the pinned componentize-py, componentize-js and wit-bindgen itself, under $SLUICE_TOOLS).
ensure_language_toolchains() {
    apt_install clang-22 lld-22 libclang-rt-22-dev-wasm32 wasi-libc
    command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3 python3-venv
    command -v npm >/dev/null || apt_install nodejs npm
}
export SLUICE_TOOLS
