#!/usr/bin/env bash
# Installs what the interop tests need, idempotently: a Python virtual environment in .venv with
# the pinned packages of interop/requirements.txt, and Debian's Chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.venv/.requirements
if ! cmp -s interop/requirements.txt "$stamp" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r interop/requirements.txt
    cp interop/requirements.txt "$stamp"
fi

if ! command -v chromium >/dev/null 2>&1; then
    scripts/apt-install.sh chromium
fi
