"""Importing the optional packages some nodes need, with an error that says how to install them."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ChainError


def require(module: str, extra: str) -> Any:
    """Import ``module``; if it is missing, raise ``ChainError`` naming the pip command.

    Typed ``Any``: the optional packages are used through their documented run-time API, and
    their type stubs (where they exist) are not needed to use chainlib.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name in (module, None):  # not installed
            raise ChainError(f"{module} is not installed (needed by the {extra!r} nodes): "
                             f"pip install 'chainlib[{extra}]'") from exc
        # installed but broken (a missing shared library, a dependency's wrong version): say why
        raise ChainError(f"{module} is installed but cannot be imported ({type(exc).__name__}: "
                         f"{exc}); reinstall it: pip install --force-reinstall "
                         f"'chainlib[{extra}]'") from exc
