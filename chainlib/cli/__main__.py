"""``python -m chainlib.cli``: the same as ``python -m chainlib``."""

from . import main

raise SystemExit(main())
