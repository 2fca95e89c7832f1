#!/usr/bin/env bash
# Compares Sluice's learning operators with the Python libraries users reach for, side by side
# on the same synthetic streams, and prints the figures:
#   learn    vs river's LogisticRegression and LinearRegression (log-loss, AUC, MAE, RMSE within 2 %)
#   forecast vs statsmodels' ExponentialSmoothing with the same fixed parameters (within 1e-6)
#   cluster  vs river's KMeans (adjusted Rand index against planted clusters, Sluice's >= 0.9)
# and the throughput of each (records/s). Exits non-zero when a threshold is missed.
# The Python side lives in a virtual environment under ~/.cache/sluice/ml-venv (created when
# missing, packages pinned below). CI runs the Rust-side quality tests instead, which need no Python.
#
#   scripts/ml-compare/run.sh                 # all three
#   scripts/ml-compare/run.sh learn cluster   # just these
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$SLUICE_ROOT"

PYTHON_PACKAGES=(river==0.26.1 statsmodels==0.15.0 numpy==2.4.6 scikit-learn==1.9.1 pandas==3.1.1 scipy==1.17.1)
VENV=${SLUICE_ML_VENV:-$HOME/.cache/sluice/ml-venv}

comparisons=("$@")
[ ${#comparisons[@]} -gt 0 ] || comparisons=(learn forecast cluster)
for name in "${comparisons[@]}"; do
    [ -f "scripts/ml-compare/compare_$name.py" ] || die "no comparison named $name (learn, forecast, cluster)"
done

if ! "$VENV/bin/python" -c "import river, statsmodels, sklearn" 2>/dev/null; then
    command -v python3 >/dev/null || apt_install python3
    python3 -c "import venv, ensurepip" 2>/dev/null || apt_install python3-venv
    log "creating $VENV with ${PYTHON_PACKAGES[*]}"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "${PYTHON_PACKAGES[@]}"
fi

ensure_host_toolchain
./scripts/build-plugins.sh "${comparisons[@]}"
log "building the runtime (release)"
cargo build --release --quiet -p sluice
sluice="$CARGO_TARGET_DIR/release/sluice"

failed=()
for name in "${comparisons[@]}"; do
    log "comparing $name"
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-compare-$name.XXXXXX")
    if ! "$VENV/bin/python" "scripts/ml-compare/compare_$name.py" --sluice "$sluice" --plugins build/plugins --workdir "$workdir"; then
        failed+=("$name")
    fi
    rm -rf "$workdir"
done
[ ${#failed[@]} -eq 0 ] || die "comparisons that missed their threshold: ${failed[*]}"
log "every comparison met its threshold"
