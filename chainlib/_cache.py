"""Where chainlib keeps files of its own (sample images, demo outputs): a per-user cache folder,
never the current folder, so that running the demo inside a checkout leaves the checkout clean."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/chainlib`` when that is set to an absolute path, else
    ``~/.cache/chainlib``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "chainlib"
