#!/usr/bin/env bash
# Creates .venv/ in the project root and installs dialflow into it (editable).
#   scripts/setup.sh          runtime dependencies
#   scripts/setup.sh --dev    plus the test/lint tools
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "dialflow needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        # Debian splits venv/ensurepip into python3-venv.
        echo "installing python3-venv (needs root)…" >&2
        rm -rf .venv
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq python3-venv >/dev/null
        "$PYTHON" -m venv .venv
    fi
fi

extras=""
if [ "${1:-}" = "--dev" ]; then extras="[dev]"; fi
stamp=".venv/.dialflow-installed${extras}"
# Re-install only when the dependency list changed: keeps repeat runs fast.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
    touch "$stamp"
fi
