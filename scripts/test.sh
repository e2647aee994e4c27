#!/usr/bin/env bash
# Runs every test of eegd. Installs what the tests need, idempotently; safe to run again.
#   scripts/test.sh            everything
#   QUICK=1 scripts/test.sh    skip the model checker, Miri, the cross-check and the interop tests
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== the docs stand on their own: no file cites the design file"
if git grep -n -e 'DESIG[N]' -- . ; then
    echo "the files above cite a design file outside the repository; say it in docs/ instead" >&2
    exit 1
fi

# liblsl for the LSL stages' tests: the pylsl wheel's copy once the venv exists (setup-interop.sh
# below makes it), and a loopback-only LSL configuration, so no test traffic leaves the machine.
export LSLAPICFG="$PWD/interop/lsl_api.cfg"
liblsl() { ls .venv/lib/python3*/site-packages/pylsl/lib/liblsl.so 2>/dev/null | head -n 1; }
if [ -z "${EEGD_LIBLSL:-}" ] && [ -n "$(liblsl)" ]; then
    export EEGD_LIBLSL="$PWD/$(liblsl)"
fi

echo "== unit, integration and end-to-end tests"
cargo test --workspace --all-targets

if [ "${QUICK:-0}" = 1 ]; then
    exit 0
fi

echo "== loom: the pool's reference count, the wake handshake and the edit hand-over, every interleaving"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p pipeline --test loom --release

echo "== miri: the unsafe pool, queues and wakes under the interpreter (where nightly has miri)"
if rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^miri' \
    || rustup component add --toolchain nightly miri >/dev/null 2>&1 \
    || rustup toolchain install nightly --profile minimal --component miri >/dev/null 2>&1; then
    CARGO_TARGET_DIR=target/miri MIRIFLAGS="-Zmiri-disable-isolation" \
        cargo +nightly miri test -p pipeline --lib -- pool:: queue:: wake::
else
    echo "miri is not installable here; skipped"
fi

echo "== aarch64 (Raspberry Pi 5): build check, then the library crates' tests under qemu (where they install)"
if rustup target list --installed | grep -q aarch64-unknown-linux-gnu \
    || rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
    cargo check --workspace --target aarch64-unknown-linux-gnu
    # The filters (NEON, fused multiply-add) against the scipy reference, the driver against the
    # simulated chip, the file formats and the data plane, run as aarch64 code in qemu-user.
    if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1 \
        || scripts/apt-install.sh gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; then
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
        CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
            cargo test --release --target aarch64-unknown-linux-gnu \
            -p dsp -p sensors -p formats -p pipeline -p stages
    else
        echo "the aarch64 cross toolchain or qemu-user is not installable here; tests under qemu skipped"
    fi
else
    echo "the aarch64-unknown-linux-gnu target is not installable here; skipped"
fi

echo "== the Raspberry Pi's Debian package: arm64 cross build, contents, systemd unit"
scripts/check-package.sh

echo "== interop: files in MNE/edfio, BIDS (validator, MNE-BIDS), filters against scipy, LSL, WebSocket clients, the UI in Chromium"
scripts/setup-interop.sh
# lsl_sink's data path with a real outlet (the first run on a fresh machine had no liblsl yet).
EEGD_LIBLSL="$PWD/$(liblsl)" cargo test -p stages --test zero_alloc_lsl
cargo build -p eegd
EEGD_BIN="$PWD/target/debug/eegd" .venv/bin/python -m pytest interop -q -p no:cacheprovider
