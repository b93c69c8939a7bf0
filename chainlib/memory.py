"""Bounded memory for decoded images: a per-image limit and a run's memory budget.

**Per-image limit.** An image whose decoded array would exceed ``max_image_mb()`` megabytes
(default 1024 MB, about 340 megapixels RGB; ``CHAINLIB_MAX_IMAGE_MB`` or
:func:`set_max_image_mb`) is refused before it is decoded, with an error naming the file, its
size and the limit.

**Memory budget.** A run's budget (``Runner(max_memory=...)`` / ``--max-memory``; default half
the physical memory) bounds how much decoded image data the run's items hold at once. Each item
reserves ``DECODE_FACTOR`` times the decoded size of every image it decodes (the peak of decoding
it and of one node transforming it) and keeps the reservation until the item ends. An item that
would go over the budget waits for others to finish; an image that alone needs more than the
whole budget fails its item with a message naming both figures. The runner installs an
:class:`ItemMemory` for each item (a context variable), so readers such as ``image.load`` call
:func:`reserve` without knowing about runs; outside a run :func:`reserve` does nothing.

**On a Dask cluster** the items run in worker processes, and each worker process applies a
budget of its own (:func:`worker_limit`, kept by :mod:`chainlib.run.cluster`) to the items it
runs, in every thread of it: the run's
budget, capped at ``WORKER_FRACTION`` (half) of the worker's memory limit (Dask's
``memory_limit``; for a worker without one, half the physical memory of its machine). With
``--cluster local:N`` (whose workers share the machine's memory equally) that is at most half
the memory over all workers, as for a local run; a remote cluster's workers are each held to the
run's ``--max-memory`` and to half of what they may use.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

MB = 1 << 20
DEFAULT_MAX_IMAGE_MB = 1024
DEFAULT_BUDGET_FRACTION = 0.5
WORKER_FRACTION = 0.5
DECODE_FACTOR = 2
_WAIT_SLICE_S = 0.05

_max_image_mb: float | None = None


def max_image_mb() -> float:
    """The per-image limit on a decoded image, in MB (2**20 bytes)."""
    if _max_image_mb is not None:
        return _max_image_mb
    text = os.environ.get("CHAINLIB_MAX_IMAGE_MB")
    if text:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not (value > 0 and value != float("inf")):
            raise ValueError(f"CHAINLIB_MAX_IMAGE_MB: expected a positive number of MB, "
                             f"got {text!r}")
        return value
    return DEFAULT_MAX_IMAGE_MB


def _over_limit(width: int, height: int, channels: int) -> tuple[int, str]:
    """An image's size in bytes, and what to say when it is over the per-image limit ("" when
    it is not): the one rule for decoded images and for images nodes make."""
    nbytes = width * height * channels
    limit = max_image_mb()
    if nbytes <= limit * MB:
        return nbytes, ""
    return nbytes, (f"over the {limit:g} MB limit per image (raise it with --max-image-mb, "
                    "CHAINLIB_MAX_IMAGE_MB or chainlib.memory.set_max_image_mb)")


def check_result(param: str, width: int, height: int, channels: int) -> None:
    """Refuse an image a node is about to make when it would be over the per-image limit
    (:func:`max_image_mb`), before allocating it, as a decoded image over it is refused before
    decoding. ``param`` names the input that asks for the size."""
    nbytes, over = _over_limit(width, height, channels)
    if over:
        raise ValueError(f"{param}: the result {width}x{height} with {channels} channel(s) is "
                         f"{nbytes / MB:.0f} MB, {over}")


def set_max_image_mb(mb: float | None) -> None:
    """Set the per-image limit in MB for this process (None: back to the default/env)."""
    global _max_image_mb
    if mb is not None and not (isinstance(mb, (int, float)) and 0 < mb < float("inf")):
        raise ValueError(f"max_image_mb: expected a positive number of MB, got {mb!r}")
    _max_image_mb = None if mb is None else float(mb)


def check_image(name: str, width: int, height: int, channels: int) -> int:
    """The decoded size in bytes; ``ValueError`` if it is over the per-image limit."""
    nbytes, over = _over_limit(width, height, channels)
    if over:
        raise ValueError(f"cannot read image {name!r}: {width}x{height} with {channels} "
                         f"channel(s) decodes to {nbytes / MB:.0f} MB, {over}")
    return nbytes


def physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def default_budget() -> int | None:
    """Half the physical memory (None where it cannot be known: no budget)."""
    total = physical_memory()
    return None if total is None else int(total * DEFAULT_BUDGET_FRACTION)


def parse_size(text: str) -> int:
    """``"800M"``, ``"2G"``, ``"1.5GB"``, ``"500000000"`` as bytes; ``ValueError`` otherwise."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": MB, "G": 1 << 30, "T": 1 << 40}.get(t[-1:] if t else "", 1)
    number = t[:-1] if scale != 1 else t
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"expected a size such as 800M or 2G, got {text!r}") from None
    if not (0 < value < float("inf")):
        raise ValueError(f"expected a positive size such as 800M or 2G, got {text!r}")
    return int(value * scale)


class OverBudget(ValueError):
    """An image needs more memory than the run's whole budget (its item fails)."""


class MemoryBudget:
    """Bytes of decoded images a run's items may hold at once (one lock)."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"max_memory must be positive, got {limit}")
        self.limit = limit
        self._cond = threading.Condition()
        self._used = 0
        self.peak = 0

    @property
    def used(self) -> int:
        with self._cond:
            return self._used

    def acquire(self, nbytes: int, what: str, checkpoint: Callable[[], None]) -> None:
        """Take ``nbytes``, waiting while others hold too much; ``checkpoint`` is called while
        waiting (it raises to stop). ``ValueError`` if ``nbytes`` alone exceeds the budget."""
        if nbytes > self.limit:
            raise OverBudget(
                f"{what} needs {nbytes / MB:.0f} MB to decode and process, more than the whole "
                f"memory budget of {self.limit / MB:.0f} MB (raise --max-memory / max_memory)"
            )
        with self._cond:
            while self._used + nbytes > self.limit:
                self._cond.wait(_WAIT_SLICE_S)
                if self._used + nbytes > self.limit:
                    self._cond.release()
                    try:
                        checkpoint()
                    finally:
                        self._cond.acquire()
            self._used += nbytes
            self.peak = max(self.peak, self._used)

    def release(self, nbytes: int) -> None:
        with self._cond:
            self._used -= nbytes
            self._cond.notify_all()


def worker_limit(max_memory: int | None, memory_limit: int | None) -> int | None:
    """A Dask worker process's budget (see the module docstring): the run's ``max_memory``,
    capped at ``WORKER_FRACTION`` of the worker's ``memory_limit`` (None or 0: unlimited; then
    of the machine's physical memory). None: no budget (neither is known)."""
    cap = int(memory_limit * WORKER_FRACTION) if memory_limit else default_budget()
    limits = [x for x in (max_memory, cap) if x]
    return min(limits) if limits else None


class ItemMemory:
    """One item's reservations against a budget, released together when the item ends."""

    def __init__(self, budget: MemoryBudget, checkpoint: Callable[[], None]) -> None:
        self.budget = budget
        self.checkpoint = checkpoint
        self.held = 0

    def reserve(self, nbytes: int, what: str) -> None:
        self.budget.acquire(nbytes, what, self.checkpoint)
        self.held += nbytes

    def release_all(self) -> None:
        held, self.held = self.held, 0
        if held:
            self.budget.release(held)


_current: contextvars.ContextVar[ItemMemory | None] = contextvars.ContextVar(
    "chainlib_item_memory", default=None)


def reserve(decoded_bytes: int, what: str) -> None:
    """Reserve memory for decoding an image of ``decoded_bytes`` (``DECODE_FACTOR`` times that)
    against the current item's budget; does nothing outside a run with a budget."""
    item = _current.get()
    if item is not None:
        item.reserve(DECODE_FACTOR * decoded_bytes, what)


@contextmanager
def item_scope(budget: MemoryBudget | None, checkpoint: Callable[[], None]) -> Iterator[None]:
    """Run one item's work with its reservations; they are released when the block ends."""
    if budget is None:
        yield
        return
    item = ItemMemory(budget, checkpoint)
    token = _current.set(item)
    try:
        yield
    finally:
        _current.reset(token)
        item.release_all()
