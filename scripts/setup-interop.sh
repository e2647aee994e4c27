#!/usr/bin/env bash
# Installs what the interop tests need, idempotently: a Python virtual environment in .venv with
# the pinned packages of interop/requirements.txt, Debian's Chromium for the browser tests, and the
# BIDS validator (npm, pinned by interop/package-lock.json) in interop/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.venv/.requirements
if ! cmp -s interop/requirements.txt "$stamp" 2>/dev/null; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r interop/requirements.txt
    cp interop/requirements.txt "$stamp"
fi

if ! command -v chromium >/dev/null 2>&1; then
    scripts/apt-install.sh chromium
fi

if ! command -v npm >/dev/null 2>&1; then
    scripts/apt-install.sh nodejs npm
fi
npm_stamp=interop/node_modules/.eegd-package-lock.json
if ! cmp -s interop/package-lock.json "$npm_stamp" 2>/dev/null; then
    (cd interop && npm ci --no-audit --no-fund --loglevel=error)
    cp interop/package-lock.json "$npm_stamp"
fi
