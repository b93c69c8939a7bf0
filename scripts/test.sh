#!/usr/bin/env bash
# Run every test tier: lint + types, unit and hypothesis tests, the front end's node tests,
# kernel-protocol tests, the notebooks under nbval, the real-browser end-to-end tests, and the
# packaging check (sdist -> wheel -> a fresh venv without extras: import, --help, demo).
# On a fresh Debian machine it first installs what the tiers need (needs root for apt-get):
# nodejs, chromium, and graphviz (the `dot` that draws chains; without it they are drawn plainly).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v dot >/dev/null 2>&1 || need_apt+=(graphviz)
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
echo "== installing chainlib and the test dependency group into .venv"
# `pip install --group` (PEP 735 dependency groups) needs pip >= 25.1: upgrade first.
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c 'import sys; from pip import __version__ as v
sys.exit(tuple(map(int, v.split(".")[:2])) < (25, 1))'; then
    echo "test.sh: pip >= 25.1 is needed for --group; .venv has $(.venv/bin/python -m pip --version)" >&2
    exit 2
fi
.venv/bin/python -m pip install -q -e . --group test

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
