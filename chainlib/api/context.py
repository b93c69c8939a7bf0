"""The node context: how a running node talks to the run that executes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..outputs import OutputSession


class _Hooks(Protocol):
    @property
    def run_id(self) -> str: ...
    def checkpoint(self) -> None: ...
    def progress(self, node: str, fraction: float) -> None: ...


@dataclass(frozen=True)
class ItemCounts:
    """How a run's items ended, as a collector sees them (:attr:`Context.items`)."""

    total: int | None
    """How many items the iterator gave (None if not known yet)."""
    done: int
    """Items finished, ``skipped`` included."""
    failed: int
    skipped: int
    """Items a previous run had finished (a resumed run): done, but not collected by this run."""


class Context:
    """Injected into a node function that declares a ``ctx`` parameter (or one typed ``Context``).

    ``checkpoint()`` is where a long node honours the run's controls: it blocks while the run is
    paused and raises :class:`chainlib.errors.RunStopped` when the run is stopping. Call it often
    (every few milliseconds of work) so Pause and Stop take effect quickly.
    """

    __slots__ = ("_hooks", "item", "label", "node", "outputs", "overwrite", "resuming", "source")

    def __init__(self, hooks: _Hooks, node: str, item: int | None, resuming: bool = False, *,
                 outputs: OutputSession | None = None, source: str | None = None,
                 label: str | None = None, overwrite: bool = False) -> None:
        self._hooks = hooks
        self.overwrite = overwrite
        """The user asked to replace existing files (``Runner(overwrite=True)``, ``--overwrite``);
        inputs of the run are still never written over."""
        self.resuming = resuming
        """True in a resumable run: an existing output that chainlib wrote into this folder
        (see :mod:`chainlib.outputs`) and no finished item vouches for may be replaced."""
        self.outputs = outputs
        """The run's :class:`chainlib.outputs.OutputSession` (locks and ownership records of its
        output folders, and its inputs), or None outside a run. Write files through
        :func:`chainlib.outputs.write_output` with it."""
        self.source = source
        """The input file of the item being processed, when its iterator names one."""
        self.label = label
        """The label of the item being processed (for example its relative path)."""
        self.node = node
        """The id of the node instance being executed."""
        self.item = item
        """The index of the item being processed, or ``None`` outside the per-item part."""

    @property
    def run_id(self) -> str:
        """The id of the run executing this node."""
        return self._hooks.run_id

    @property
    def workers(self) -> int:
        """How many items the run processes at once in this process (1 outside a run), or on a
        Dask worker in every worker process of its machine: a node that uses threads of its own
        divides the cores by it."""
        return max(1, int(getattr(self._hooks, "workers", 1) or 1))

    @property
    def items(self) -> ItemCounts | None:
        """For a collector (and the nodes after it): how the run's items ended, so that a node
        for which a missing item matters (a video missing a frame) can refuse to go on. None
        outside a run and in the per-item part (the count is not final there)."""
        counts = getattr(self._hooks, "item_counts", None)
        if self.item is not None or counts is None:
            return None
        result: ItemCounts | None = counts()
        return result

    def checkpoint(self) -> None:
        """Block while paused; raise ``RunStopped`` if the run is stopping."""
        self._hooks.checkpoint()

    def progress(self, fraction: float) -> None:
        """Report progress within this node (0.0 to 1.0); shown in the status as ``progress``."""
        self._hooks.progress(self.node, min(1.0, max(0.0, float(fraction))))


class NullContext(Context):
    """A context for calling node functions directly, outside any run (tests, scripts)."""

    class _NoHooks:
        run_id = ""

        def checkpoint(self) -> None:
            return None

        def progress(self, node: str, fraction: float) -> None:
            return None

    def __init__(self, node: str = "<direct>", item: int | None = None) -> None:
        super().__init__(self._NoHooks(), node, item)
