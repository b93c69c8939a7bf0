#!/usr/bin/env bash
# chainlib demo — the README's first command.
#
#   scripts/demo.sh              set up .venv, then open notebooks/01-quickstart.ipynb in JupyterLab
#   scripts/demo.sh --headless   set up .venv, execute the quickstart notebook and keep it, with an
#                                HTML rendering, in demo-out/ (git-ignored); exit 0 (ok) or 1
#
# Setup: creates .venv if missing (with $PYTHON, default python3), installs chainlib with the
# notebook extras (`pip install -e '.[notebook]'`, again whenever pyproject.toml changed) and
# generates the bundled sample images. Environment: PORT (default 8888), PYTHON, DEMO_OUT (where
# --headless writes, default demo-out).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

HEADLESS=0
for arg in "$@"; do
    case "$arg" in
        --headless) HEADLESS=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "demo.sh: unknown option: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv ($PY)"
    "$PY" -m venv .venv
fi
STAMP=.venv/.chainlib-demo-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] \
    || ! .venv/bin/python -c "import chainlib.panel, jupyterlab" >/dev/null 2>&1; then
    echo "== installing chainlib[notebook] into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[notebook]'
    touch "$STAMP"
fi

echo "== sample images"
.venv/bin/python -c "from chainlib import samples; f = samples.folder(); print(f'   {len(samples.names())} images in {f}')"

NOTEBOOK=notebooks/01-quickstart.ipynb
if [ "$HEADLESS" = 1 ]; then
    out=${DEMO_OUT:-demo-out}
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    executed="$out/$(basename "$NOTEBOOK")"
    page="${executed%.ipynb}.html"
    rm -f "$executed" "$page"
    echo "== executing $NOTEBOOK (headless)"
    if ! .venv/bin/jupyter nbconvert --to notebook --execute "$NOTEBOOK" --output-dir "$out" \
            --ExecutePreprocessor.timeout=300 --log-level=WARN; then
        echo "FAILED: $NOTEBOOK raised an error" >&2
        exit 1
    fi
    .venv/bin/jupyter nbconvert --to html "$executed" --output-dir "$out" --log-level=WARN
    if ! grep -q "state: completed" "$executed"; then
        echo "FAILED: the quickstart run did not complete (see $executed)" >&2
        exit 1
    fi
    echo "OK: $NOTEBOOK ran top to bottom and the run completed"
    echo "   executed notebook: $executed"
    echo "   HTML rendering:    $page"
    exit 0
fi

PORT=${PORT:-8888}
TOKEN=$(.venv/bin/python -c "import secrets; print(secrets.token_hex(16))")
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-root)
echo "== starting JupyterLab — open this URL:"
echo
echo "   http://127.0.0.1:${PORT}/lab/tree/${NOTEBOOK}?token=${TOKEN}"
echo
exec .venv/bin/jupyter lab --ip 127.0.0.1 --port "$PORT" --ServerApp.port_retries=0 \
    --IdentityProvider.token="$TOKEN" --ServerApp.root_dir="$PWD" --no-browser \
    "${extra[@]}" "$NOTEBOOK"
