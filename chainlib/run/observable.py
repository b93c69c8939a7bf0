"""``run.state``: a traitlets mirror of the latest status, for any traitlets consumer."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from traitlets import Dict, Float, HasTraits, Int, List, Unicode

from .status import Status


class Observed(Protocol):
    """What the mirror needs of a :class:`~chainlib.Runner`."""

    def status(self) -> Status: ...

    def watch(self, flag: threading.Event) -> Callable[[], None]: ...


class RunStateMirror(HasTraits):
    """Traits mirroring the runner's latest :class:`Status`.

    Updated by one thread of its own (coalesced: it applies the newest snapshot, never a stale
    one, all traits of one snapshot together), so ``observe`` callbacks run on that thread and
    a slow callback never slows the run. ``seq`` only ever increases.
    """

    run_id = Unicode("")
    state = Unicode("idle")
    seq = Int(0)
    done = Int(0)
    failed = Int(0)
    total = Int(None, allow_none=True)
    eta = Float(None, allow_none=True)
    elapsed = Float(0.0)
    active_s = Float(0.0)
    rate = Float(None, allow_none=True)
    current = List(Unicode())
    error = Dict(None, allow_none=True)

    def __init__(self, runner: Observed) -> None:
        super().__init__()
        self._changed = threading.Event()
        self._apply(runner.status())
        self._unwatch = runner.watch(self._changed)
        ref = weakref.ref(runner)
        self._thread = threading.Thread(
            target=self._follow, args=(ref,), name="chainlib-state-mirror", daemon=True
        )
        self._thread.start()

    def _follow(self, ref: weakref.ref[Observed]) -> None:
        while True:
            self._changed.wait(1.0)
            runner = ref()
            if runner is None:
                return
            if self._changed.is_set():
                self._changed.clear()
                self._apply(runner.status())
            del runner

    def _apply(self, status: Status) -> None:
        if status.seq < self.seq:
            return
        values: dict[str, Any] = {
            "run_id": status.run_id,
            "state": status.state,
            "done": status.done,
            "failed": status.failed,
            "total": status.total,
            "eta": status.eta,
            "elapsed": status.elapsed,
            "active_s": status.active_s,
            "rate": status.rate,
            "current": list(status.current),
            "error": None if status.error is None else dict(status.error.to_dict()),
        }
        with self.hold_trait_notifications():
            for name, value in values.items():
                if getattr(self, name) != value:
                    setattr(self, name, value)
            self.seq = status.seq
