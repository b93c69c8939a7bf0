"""The preview buffer: the newest finished item's image, kept for the control panel."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

Key = tuple[str, str]


class PreviewBuffer:
    """Holds ``(counter, label, image)`` of the newest finished item's last image output.

    Off until :meth:`enable` (keeping images costs memory). Its own small lock: workers offer
    images while the panel's publisher reads them.
    """

    def __init__(self, keys: tuple[Key, ...]) -> None:
        self.keys = keys
        """Image outputs of the iterator and the per-item nodes, the last node first."""
        self.enabled = False
        self._lock = threading.Lock()
        self._latest: tuple[int, str | None, Any] | None = None

    def enable(self) -> None:
        self.enabled = True

    def offer(self, label: str | None, values: Mapping[Key, Any]) -> None:
        """Keep the first image found under :attr:`keys` in a finished item's ``values``."""
        for key in self.keys:
            value = values.get(key)
            if isinstance(value, np.ndarray):
                with self._lock:
                    count = self._latest[0] + 1 if self._latest else 1
                    self._latest = (count, label, value)
                return

    def latest(self) -> tuple[int, str | None, Any] | None:
        with self._lock:
            return self._latest
