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
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
fi
