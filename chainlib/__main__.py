"""``python -m chainlib``: the command line (see :mod:`chainlib.cli`)."""

from .cli import main

if __name__ == "__main__":  # guarded: worker processes (spawn) re-import the main module
    raise SystemExit(main())
