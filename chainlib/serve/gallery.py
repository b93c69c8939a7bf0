"""The served page's gallery: the notebook panel's thumbnail and gallery traits, over HTTP.

``GET /gallery?since=N`` answers 204 (no body) while the run's preview counter is still ``N``,
else 200 with ``{"counter", "thumbnail", "thumbnail_label", "gallery": [{"label", "after",
"before"}]}``: the panel's traits, each image a base64 JPEG (PNG with alpha), ``before`` null
where the chain's iterator gives no image. The images are encoded by
:func:`chainlib.thumbnails.gallery_update` (the notebook's encoder and byte budget), once per
preview counter: every request until the next finished item gets the same cached body.
:func:`parse_body` turns such a body back into the panel's traits (for an attached panel), the
images' bytes as they came: nothing is decoded or encoded again.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

from ..run.preview import Preview
from ..thumbnails import GALLERY_MAX_BYTES, MAX_LABEL, GalleryUpdate, gallery_update

__all__ = ["MAX_GALLERY_BODY", "GalleryCache", "parse_body"]

_MARKUP: Final = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"))
_TILES: Final = 8  # gallery.js draws at most 8 tiles; the preview buffer keeps 4
MAX_GALLERY_BODY: Final = (4 * math.ceil(GALLERY_MAX_BYTES / 3) + 4 * (2 * _TILES + 1)
                           + 12 * MAX_LABEL * (_TILES + 1) + 1024)
"""The most bytes a ``/gallery`` body takes: the images' budget in base64 (plus padding), every
label escaped at worst (``\\uXXXX`` twice for a character outside the BMP), and the JSON around
them."""


def _b64(data: bytes | None) -> str | None:
    return None if not data else base64.b64encode(data).decode("ascii")


def _body(counter: int, update: GalleryUpdate | None) -> bytes:
    content: dict[str, Any] = {"counter": counter, "thumbnail": None, "thumbnail_label": "",
                               "gallery": []}
    if update is not None:
        content.update(
            thumbnail=_b64(update.thumbnail),
            thumbnail_label=update.label,
            gallery=[{"label": t["label"], "after": _b64(t["after"]),
                      "before": _b64(t["before"])} for t in update.tiles],
        )
    text = json.dumps(content, separators=(",", ":"))  # ASCII: every other character escaped
    # "<", ">" and "&" only occur inside strings (labels): escaped too, no byte of a file name
    # can read as markup, even to a client that sniffs
    for char, escape in _MARKUP:
        text = text.replace(char, escape)
    return text.encode("ascii")


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error
        raise ValueError(f"{what} is not valid base64: {exc}") from None


def parse_body(body: bytes) -> tuple[int, GalleryUpdate | None]:
    """``(counter, update)`` from a ``/gallery`` body; the update is None when the body shows no
    image (as :func:`gallery_update` gives None). Raises ``ValueError`` naming what is malformed
    (a body over :data:`MAX_GALLERY_BODY` bytes included)."""
    if len(body) > MAX_GALLERY_BODY:
        raise ValueError(f"gallery body of {len(body)} bytes, over {MAX_GALLERY_BODY}")
    try:
        content = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"gallery body is not JSON: {exc}") from None
    if not isinstance(content, dict):
        raise ValueError("gallery body is not a JSON object")
    counter, tiles, label = (content.get("counter"), content.get("gallery"),
                             content.get("thumbnail_label"))
    if not isinstance(counter, int) or isinstance(counter, bool) or counter < 0:
        raise ValueError(f"gallery counter is not a non-negative integer: {counter!r}")
    if not isinstance(tiles, list) or not isinstance(label, str):
        raise ValueError("gallery body lacks its gallery list or thumbnail label")
    if not tiles:
        return counter, None
    parsed: list[dict[str, Any]] = []
    for i, tile in enumerate(tiles):
        if not isinstance(tile, dict) or not isinstance(tile.get("label"), str):
            raise ValueError(f"gallery tile {i} is not an object with a label")
        before = tile.get("before")
        parsed.append({"label": tile["label"],
                       "after": _unb64(tile.get("after"), f"tile {i}'s after"),
                       "before": None if before is None else
                       _unb64(before, f"tile {i}'s before")})
    return counter, GalleryUpdate(_unb64(content.get("thumbnail"), "the thumbnail"), label,
                                  parsed)


class GalleryCache:
    """The newest ``/gallery`` body, encoded once per preview counter.

    ``source`` is the run's :meth:`~chainlib.Runner.gallery` (the newest finished items, oldest
    first). Requests are answered on the server's thread pool: one lock guards the cache and is
    held while encoding, so concurrent requests for a new counter encode it once.
    """

    def __init__(self, source: Callable[[], Sequence[Preview]]) -> None:
        self._source = source
        self._lock = threading.Lock()  # guards the four fields below
        self._counter = 0  # 0: no item has finished yet
        self._update: GalleryUpdate | None = None  # the last showable update
        self._body = _body(0, None)
        self.encodes = 0
        """How many times the images were encoded (once per new counter)."""

    def answer(self, since: int | None) -> tuple[int, bytes | None]:
        """``(counter, body)``; the body is None when the counter is still ``since``."""
        with self._lock:
            items = self._source()
            counter = items[-1].counter if items else 0
            if counter > self._counter:  # counters only grow
                self.encodes += 1
                update = gallery_update(items)
                if update is not None:  # nothing showable: keep the last, as the notebook does
                    self._update = update
                self._counter = counter
                self._body = _body(counter, self._update)
            if since == self._counter:
                return self._counter, None
            return self._counter, self._body
