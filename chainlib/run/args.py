"""The checks of ``Runner``'s plain arguments, made when the runner is made.

A wrong value is a ``TypeError`` or ``ValueError`` naming the argument there, not a run that
starts and fails later with an internal message (``cluster=`` is checked in :mod:`.clusterarg`).
"""

from __future__ import annotations

import operator
from typing import Any, Final, SupportsIndex

from ..chain.model import Chain

__all__ = ["MAX_WORKERS", "check_arguments"]

MAX_WORKERS: Final = 256
"""The most ``workers`` (``--workers``) a run takes: each is a thread holding an item's images."""


def check_arguments(chain: Any, workers: Any, on_error: Any) -> int:
    """Check ``Runner``'s ``chain``, ``workers`` and ``on_error``; return ``workers`` as an int
    (numpy integers too; a float, a string or a bool is a ``TypeError``)."""
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a chainlib.Chain (Chain() or Chain.load(path)), "
                        f"got {type(chain).__name__} {chain!r:.80}")
    if not isinstance(workers, SupportsIndex) or isinstance(workers, bool):
        raise TypeError(f"workers must be a whole number (int), got {workers!r}")
    count = operator.index(workers)
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(f"workers must be from 1 to {MAX_WORKERS}, got {count}")
    if on_error not in ("stop", "skip"):
        raise ValueError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    return count
