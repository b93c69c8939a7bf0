#!/usr/bin/env bash
# Run every test tier: lint + types, unit and hypothesis tests, the front end's node tests,
# kernel-protocol tests, the notebooks under nbval, and the real-browser end-to-end tests.
# On a fresh Debian machine it first installs what the tiers need (needs root for apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if ((${#need_apt[@]})); then
    echo "== installing ${need_apt[*]} (apt-get)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PY" -m venv .venv
fi
echo "== installing chainlib[test] into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

echo "== ruff + mypy"
.venv/bin/ruff check chainlib tests benchmarks
.venv/bin/mypy chainlib

echo "== front end: node --test"
node --test widget/tests/

echo "== python: unit, hypothesis, kernel-protocol, dask, notebooks (nbval), browser"
# pytest exits 5 when it collected nothing: with `set -e` that fails the run, as it should.
if (($#)); then
    .venv/bin/python -m pytest "$@"
else
    .venv/bin/python -m pytest tests notebooks --nbval --nbval-current-env \
        --nbval-sanitize-with notebooks/nbval-sanitize.cfg
fi
