"""The node context: how a running node talks to the run that executes it."""

from __future__ import annotations

from typing import Protocol


class _Hooks(Protocol):
    @property
    def run_id(self) -> str: ...
    def checkpoint(self) -> None: ...
    def progress(self, node: str, fraction: float) -> None: ...


class Context:
    """Injected into a node function that declares a ``ctx`` parameter (or one typed ``Context``).

    ``checkpoint()`` is where a long node honours the run's controls: it blocks while the run is
    paused and raises :class:`chainlib.errors.RunStopped` when the run is stopping. Call it often
    (every few milliseconds of work) so Pause and Stop take effect quickly.
    """

    __slots__ = ("_hooks", "item", "node", "resuming")

    def __init__(self, hooks: _Hooks, node: str, item: int | None, resuming: bool = False) -> None:
        self._hooks = hooks
        self.resuming = resuming
        """True in a resumable run: an existing output that no finished item recorded is a
        leftover of an interrupted item and may be replaced."""
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
        """How many items the run processes at once in this process (1 outside a run): a node
        that uses threads of its own divides the cores by it."""
        return max(1, int(getattr(self._hooks, "workers", 1) or 1))

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
