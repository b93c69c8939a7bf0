"""Optional dependencies: a clear ImportError naming the extra to install, instead of a bare
``No module named 'anywidget'`` from deep inside an import."""

from __future__ import annotations

import importlib.util


def require_extra(feature: str, extra: str, *modules: str) -> None:
    """Raise ``ImportError`` unless every top-level module in ``modules`` can be imported.

    The message names ``feature`` (what the user tried to use) and the command that fixes it:
    ``pip install "chainlib[EXTRA]"``.
    """
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise extra_error(feature, extra, missing)


def extra_error(feature: str, extra: str, missing: list[str]) -> ImportError:
    """The ImportError for ``feature`` when the ``missing`` modules of ``extra`` are absent."""
    return ImportError(f'{feature} needs the {extra} extra: pip install "chainlib[{extra}]" '
                       f"(missing: {', '.join(missing)})", name=missing[0])
