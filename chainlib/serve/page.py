"""The control panel as a plain web page: the notebook panel's front end over HTTP.

``GET /`` answers a small HTML shell carrying the token and the settings in ``<meta>`` tags. It
loads ``/static/web/main.js``, which renders ``/static/panel.js`` (the notebook panel's module:
the very bundle anywidget loads, built by :mod:`chainlib._bundle` from ``widget/panel.js`` and its
imports, ``state.js`` included) with the HTTP model of ``web/model.js`` (EventSource + fetch
instead of a Jupyter comm). ``web/*.js`` are served as they are (the browser resolves imports).

The page is only ever served to a request holding the token (the middleware sees to that), so the
token in it is no leak; its Content-Security-Policy allows scripts, styles and connections from
this origin only, and no framing.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .._bundle import front_end_module

__all__ = ["PAGE_FILES", "find_front_end", "load_page"]

PAGE_FILES: Final = {
    "/static/panel.js": ("panel.js", "text/javascript; charset=utf-8"),
    "/static/web/model.js": ("web/model.js", "text/javascript; charset=utf-8"),
    "/static/web/main.js": ("web/main.js", "text/javascript; charset=utf-8"),
    "/static/panel.css": ("panel.css", "text/css; charset=utf-8"),
}

CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; "
              "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'")

_SHELL: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<meta name="chainlib-token" content="{token}">
<meta name="chainlib-config" content="{config}">
<title>{title} — chainlib</title>
<link rel="stylesheet" href="/static/panel.css">
<script type="module" src="/static/web/main.js"></script>
</head>
<body>
<main id="chainlib-root"></main>
</body>
</html>
"""


def find_front_end() -> Path | None:
    """``chainlib/_widget`` in an installed wheel, else ``<repo>/widget``; None if incomplete."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (here / "_widget", here.parent / "widget"):
        if all((candidate / name).is_file() for name, _ in PAGE_FILES.values()):
            return candidate
    return None


def load_page(info: dict[str, Any], token: str
              ) -> tuple[Callable[[Request], Response] | None, dict[str, tuple[str, bytes]]]:
    """``(GET / handler, {path: (media type, bytes)})``; no page if the files are missing."""
    folder = find_front_end()
    if folder is None:
        return None, {}
    static = {path: (media, (folder / name).read_bytes())
              for path, (name, media) in PAGE_FILES.items()}
    # the notebook panel's module exactly as anywidget gets it: one bundle of panel.js's imports
    static["/static/panel.js"] = (static["/static/panel.js"][0],
                                  front_end_module(folder / "panel.js").encode())
    body = _SHELL.format(
        token=html.escape(token, quote=True),
        config=html.escape(json.dumps(info), quote=True),
        title=html.escape(str(info.get("title", "")) or "chain"),
    )
    headers = {
        "content-security-policy": CSP,
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
    }

    def page(request: Request) -> Response:
        return HTMLResponse(body, headers=headers)

    return page, static
