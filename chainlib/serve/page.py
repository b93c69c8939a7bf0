"""The control panel as a plain web page (filled in once the front end's bundler lands)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response


def load_page(info: dict[str, Any], token: str
              ) -> tuple[Callable[[Request], Response] | None, dict[str, tuple[str, bytes]]]:
    """``(page handler, static files)``; no page yet."""
    return None, {}
