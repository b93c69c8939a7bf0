"""The preview buffer: the newest finished items' images, kept for the control panel's gallery."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

Key = tuple[str, str]

GALLERY_SIZE: Final = 4
"""How many of the newest finished items the buffer keeps."""

PREVIEW_PX: Final = 160
"""Kept images are subsampled to at most about twice this many pixels a side (the panel shows
thumbnails of 160 px), so the buffer never holds a full-size image."""


@dataclass(frozen=True, slots=True)
class Preview:
    """One finished item's images: ``after`` its last image output, ``before`` the iterator's
    image (None when the iterator gives none, or when it is the only image: nothing changed it).
    ``counter`` grows with every item offered."""

    counter: int
    label: str | None
    after: Any
    before: Any = None


def shrink(image: Any) -> Any:
    """A small contiguous copy of an image array (every n-th pixel), or None if not an image."""
    if not (isinstance(image, np.ndarray) and image.ndim in (2, 3) and image.size):
        return None
    step = max(1, max(image.shape[:2]) // PREVIEW_PX)
    return np.ascontiguousarray(image[::step, ::step])


def pick(values: Mapping[Key, Any], keys: tuple[Key, ...]) -> dict[Key, Any]:
    """The first and the last image found under ``keys`` (last node first, so the last one is
    the iterator's when it has an image), shrunk: what a worker sends back for the preview."""
    found = [key for key in keys if shrink(values.get(key)) is not None]
    return {key: shrink(values[key]) for key in dict.fromkeys(found[:1] + found[-1:])}


class PreviewBuffer:
    """The newest ``size`` finished items' :class:`Preview` (before / after images, shrunk).

    Off until :meth:`enable` (keeping images costs memory). Its own small lock: workers offer
    images while the panel's publisher reads them.
    """

    def __init__(self, keys: tuple[Key, ...], before: tuple[Key, ...] = (),
                 size: int = GALLERY_SIZE) -> None:
        self.keys = keys
        """Image outputs of the iterator and the per-item nodes, the last node first."""
        self.before = before
        """The iterator's image outputs: an item's "before" image."""
        self.enabled = False
        self._lock = threading.Lock()
        self._items: deque[Preview] = deque(maxlen=size)
        self._counter = 0

    def enable(self) -> None:
        self.enabled = True

    def offer(self, label: str | None, values: Mapping[Key, Any]) -> None:
        """Keep a finished item's images: the first found under :attr:`keys` is its output, the
        first under :attr:`before` its input (unless that is the output itself)."""
        after_key = next((k for k in self.keys if shrink(values.get(k)) is not None), None)
        if after_key is None:
            return
        after = shrink(values[after_key])
        before = None
        if after_key not in self.before:
            before = next((s for s in (shrink(values.get(k)) for k in self.before)
                           if s is not None), None)
        with self._lock:
            self._counter += 1
            self._items.append(Preview(self._counter, label, after, before))

    def latest(self) -> tuple[int, str | None, Any] | None:
        """``(counter, label, after)`` of the newest item, or None."""
        with self._lock:
            newest = self._items[-1] if self._items else None
        return None if newest is None else (newest.counter, newest.label, newest.after)

    def recent(self) -> tuple[Preview, ...]:
        """The kept items, oldest first."""
        with self._lock:
            return tuple(self._items)
