#!/usr/bin/env bash
# Builds the Raspberry Pi's Debian package (arm64, cross-compiled with cargo-deb) and checks it:
# an aarch64 binary, the systemd unit, the udev rule and the configuration are where they belong,
# the maintainer scripts create the service user, and the unit passes `systemd-analyze verify`.
# Installs what it needs (the aarch64 target and cross compiler, cargo-deb), idempotently.
#
# The package is built from the `deb-check` profile (the release profile without optimisation),
# which takes a fraction of a release cross build; a Pi's package is built with
# `cargo deb -p eegd --target aarch64-unknown-linux-gnu` (docs/hardware.md).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
TARGET=aarch64-unknown-linux-gnu

rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET" >/dev/null
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 \
    || scripts/apt-install.sh gcc-aarch64-linux-gnu libc6-dev-arm64-cross
command -v file >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 \
    || scripts/apt-install.sh file dpkg
if ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
    cargo install --locked "cargo-deb@$CARGO_DEB_VERSION"
fi

out=target/debian-check
rm -rf "$out"
cargo deb -p eegd --target "$TARGET" --profile deb-check -o "$out/"
debs=("$out"/eegd_*_arm64.deb)
deb=${debs[0]}
[ -f "$deb" ] || { echo "no arm64 package in $out" >&2; exit 1; }
echo "built $deb"

fail() { echo "package check failed: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/root"
dpkg-deb -e "$deb" "$tmp/control"

grep -qx 'Architecture: arm64' "$tmp/control/control" || fail "Architecture is not arm64"
for f in usr/bin/eegd usr/lib/systemd/system/eegd.service lib/udev/rules.d/60-eegd.rules \
    etc/eegd/pipeline.yaml etc/default/eegd; do
    [ -f "$tmp/root/$f" ] || fail "/$f is missing"
done
file -b "$tmp/root/usr/bin/eegd" | grep -q 'ELF 64-bit.*ARM aarch64' \
    || fail "/usr/bin/eegd is not an aarch64 executable: $(file -b "$tmp/root/usr/bin/eegd")"
[ -x "$tmp/root/usr/bin/eegd" ] || fail "/usr/bin/eegd is not executable"
unit="$tmp/root/usr/lib/systemd/system/eegd.service"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" || fail "the unit's ExecReload does not send SIGHUP"
grep -qx 'Restart=on-failure' "$unit" || fail "the unit does not restart on failure"
grep -qx 'StateDirectory=eegd' "$unit" || fail "the unit's data directory is not /var/lib/eegd"
grep -q 'GROUP="spi"' "$tmp/root/lib/udev/rules.d/60-eegd.rules" || fail "the udev rule does not give SPI to spi"
grep -q 'GROUP="gpio"' "$tmp/root/lib/udev/rules.d/60-eegd.rules" || fail "the udev rule does not give GPIO to gpio"
grep -qx '/etc/eegd/pipeline.yaml' "$tmp/control/conffiles" || fail "/etc/eegd/pipeline.yaml is not a conffile"
grep -q 'adduser --system' "$tmp/control/postinst" || fail "postinst does not create the service user"
grep -q 'systemctl' "$tmp/control/postinst" || fail "postinst does not enable the service"
# The configuration the service starts with is a valid pipeline (checked by the host's eegd).
cargo run -q -p eegd -- validate "$tmp/root/etc/eegd/pipeline.yaml"
echo "package contents: ok"

if command -v systemd-analyze >/dev/null 2>&1; then
    # Verified as installed: the unit, with its executable (the package's binary; verify only
    # checks it exists and is executable) under the unpacked root.
    mkdir -p "$tmp/verify"
    sed "s|/usr/bin/eegd|$tmp/root/usr/bin/eegd|" "$unit" >"$tmp/verify/eegd.service"
    if ! log=$(systemd-analyze verify --man=no "$tmp/verify/eegd.service" 2>&1); then
        echo "$log" >&2
        fail "systemd-analyze verify rejected the unit"
    fi
    # verify exits 0 on some warnings; any line naming the unit is a problem in it.
    if echo "$log" | grep -F "eegd.service" >&2; then
        fail "systemd-analyze verify warned about the unit"
    fi
    echo "systemd-analyze verify: ok"
else
    echo "systemd-analyze is not available here; the unit was not verified"
fi
