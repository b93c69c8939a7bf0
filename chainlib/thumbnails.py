"""The control panel's thumbnails: the newest output and a gallery of the newest finished items
(before -> after), encoded small for the widget's binary buffers. Needs Pillow (the panel extra)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from .run.preview import Preview

__all__ = ["GALLERY_MAX_BYTES", "THUMBNAIL_SIZE", "GalleryUpdate", "encode_thumbnail",
           "gallery_update"]

THUMBNAIL_SIZE: Final = 160
"""Thumbnails fit in a square of this many pixels."""

GALLERY_MAX_BYTES: Final = 256 * 1024
"""The most image bytes one gallery update carries (older items are left out to stay under)."""

MAX_LABEL: Final = 200
"""Labels (file names) longer than this are cut, with an ellipsis."""


@dataclass(frozen=True)
class GalleryUpdate:
    """What the panel's ``thumbnail``, ``thumbnail_label`` and ``gallery`` traits become.

    ``tiles``: newest first, each ``{"label": str, "after": bytes, "before": bytes | None}``
    (ipywidgets sends the bytes as binary buffers)."""

    thumbnail: bytes
    label: str
    tiles: list[dict[str, Any]]

    @property
    def size(self) -> int:
        """Image bytes in the message (the thumbnail and every tile's images)."""
        return len(self.thumbnail) + sum(
            len(t["after"]) + len(t["before"] or b"") for t in self.tiles)


def encode_thumbnail(image: Any, size: int = THUMBNAIL_SIZE) -> bytes:
    """Downscale an image array to fit ``size`` px; JPEG, or PNG when it has an alpha channel."""
    from PIL import Image as PILImage

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 2:  # gray + alpha
        arr = np.dstack([arr[:, :, 0]] * 3 + [arr[:, :, 1]])
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"not an image array: shape {arr.shape}")
    img = PILImage.fromarray(arr)
    img.thumbnail((size, size))
    out = io.BytesIO()
    if img.mode in ("RGBA", "LA"):
        img.save(out, format="PNG", optimize=True)
    else:
        img.save(out, format="JPEG", quality=80)
    return out.getvalue()


def _label(label: str | None) -> str:
    text = "" if label is None else str(label)
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def gallery_update(
    items: Sequence[Preview], budget: int = GALLERY_MAX_BYTES
) -> GalleryUpdate | None:
    """Encode ``items`` (oldest first, as :meth:`Runner.gallery` gives them) newest first, leaving
    out an item whose images do not decode as an image or would take the total over ``budget``
    bytes (the newest output travels twice: as the thumbnail and in the first tile). None when
    no item can be shown."""
    tiles: list[dict[str, Any]] = []
    used = 0
    thumbnail = b""
    for item in reversed(items):
        try:
            after = encode_thumbnail(item.after)
            before = None if item.before is None else encode_thumbnail(item.before)
        except Exception:
            continue  # an odd array: leave the item out
        cost = len(after) * (1 if tiles else 2) + len(before or b"")
        if used + cost > budget:
            break  # the tiles stay the newest items, in a row
        if not tiles:
            thumbnail = after
        tiles.append({"label": _label(item.label), "after": after, "before": before})
        used += cost
    if not tiles:
        return None
    return GalleryUpdate(thumbnail, tiles[0]["label"], tiles)
