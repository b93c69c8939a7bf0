"""What a :class:`~chainlib.Runner` tells its user beyond the status: why ``result()`` has no
value, hints for what to do next, its card in notebooks, and closing the cluster it connected to.

A base class of ``Runner`` (kept apart so that the runner module stays the thin façade over the
control core); it reads the runner's plan, output folder and status. ``cluster=`` (a
``distributed.Client``, or an address such as ``"tcp://host:8786"`` or ``"local:N"`` that the
runner connects to, and closes in :meth:`RunnerAdvice.close`) is checked by :mod:`.clusterarg`.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from ..chain.validate import Plan, Step, resumable
from .clusterarg import attach_cluster, dashboard_link
from .hints import hint_facts, hints, no_result
from .html import runner_html

if TYPE_CHECKING:
    from .status import Ack, Status

__all__ = ["RunnerAdvice", "attach_cluster", "dashboard_link"]


class RunnerAdvice:
    """Hints, explanations and the notebook card of a runner; see :class:`~chainlib.Runner`."""

    _plan: Plan
    _output_folder: str | None
    _closer: weakref.finalize[Any, Any]

    if TYPE_CHECKING:  # provided by Runner
        def status(self) -> Status: ...
        def stop(self, reason: str | None = None) -> Ack: ...
        def wait(self, timeout: float | None = None) -> Status: ...

    @property
    def can_resume(self) -> bool:
        """Whether ``Runner(chain, resume=True)`` works for this chain: its per-item nodes write
        files into one constant output folder, where the finished items are recorded."""
        return resumable(self._plan)

    def hints(self) -> list[str]:
        """What to do next after this run (resume, overwrite), when something went wrong."""
        return hints(self.status(), **hint_facts(self._plan, self._output_folder))

    def close(self) -> None:
        """Stop a run in progress; close the cluster ``cluster=ADDRESS`` opened. Idempotent."""
        if self.stop("runner closed").accepted:
            self.wait()
        self._closer()

    def _no_result(self, step: Step, output: str | None, status: Status) -> LookupError:
        """The error of ``result()`` for a node without a value: why, and what to do."""
        what = f"{step.id}.{output}" if output else step.id
        return LookupError(no_result(what, per_item=step.phase == "item", status=status,
                                     **hint_facts(self._plan, self._output_folder)))

    _repr_html_ = runner_html  # a status card in notebooks
