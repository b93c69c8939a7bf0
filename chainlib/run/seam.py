"""The executor seam: how the items of a run are executed, locally or on a Dask cluster.

A run's engine (:mod:`.engine`) fetches items from the iterator and keeps the books; an
:class:`Executor` decides where the per-item nodes run. Both executors (local worker threads in
:mod:`.local`, Dask tasks in :mod:`.cluster`) run an item with the same :func:`execute_item`:
kwargs from constants and links, ``Context`` injection, the call, storing the outputs, then the
values collected for collectors and the paths written.

The contract, in both directions:

- :class:`NodeHooks`: what :func:`execute_item` calls around every node (and what a node's
  ``ctx`` talks to). The engine implements it for local threads; a Dask task has its own, which
  talks to the cluster-visible flags.
- :class:`ItemHost`: what the engine offers an executor: take the next item, report it done or
  failed, send and receive batches (cluster), ask whether the run is halting, and abort it.
- :class:`Executor`: ``run(host, work)`` processes every item the host hands out and returns when
  none is in flight anywhere.

This module imports nothing of the runner, so executors depend on the seam only.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..api.context import Context
from ..api.item import Lazy
from ..chain.validate import Step
from ..errors import RunStopped

if TYPE_CHECKING:
    from ..memory import MemoryBudget
    from ..outputs import OutputSession

Key = tuple[str, str]
"""Where a value lives in an item's values: ``(node id, output name)``."""


# ---------------------------------------------------------------------- what travels


@dataclass(frozen=True)
class ItemWork:
    """The per-item part of a run's plan: everything needed to run an item (picklable)."""

    iterator: Step
    steps: tuple[Step, ...]
    """The per-item nodes after the iterator, in topological order."""
    pre_values: Mapping[Key, Any]
    """Outputs of the nodes that ran once before the items (inputs of per-item nodes)."""
    collect_keys: tuple[tuple[str, Key], ...]
    """``(collector id, key)``: the per-item value each collector gathers."""
    writer_keys: tuple[Key, ...]
    """Outputs of the nodes that write files: the paths an item wrote."""
    preview_keys: tuple[Key, ...]
    """Image outputs, newest-first, for the panel's preview (empty: no preview)."""
    stop_on_error: bool
    overwrite: bool = False
    """The user asked to replace existing files (``--overwrite``): a node's ``ctx.overwrite``."""
    max_memory: int | None = None
    """The run's memory budget in bytes (None: none). Local items share the run's
    :class:`~chainlib.memory.MemoryBudget`; each Dask worker process applies its own (see
    :func:`chainlib.memory.worker_limit`)."""


@dataclass(frozen=True, slots=True)
class Taken:
    """An item taken from the iterator: its index, label, source file and values.

    ``values`` are the item's values with the iterator's outputs (and the pre-item values)
    resolved, or, when taken with ``resolve=False``, the raw value the iterator yielded.
    """

    index: int
    label: str | None
    source: str | None
    values: Any


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What a finished item leaves behind: the paths it wrote and its collected values."""

    outputs: list[str]
    collected: dict[str, Any]


@dataclass
class Outcome:
    """How one item went in a cluster task (sent back to the engine with its batch)."""

    index: int
    status: Literal["done", "failed", "stopped"]
    seconds: dict[str, float] = field(default_factory=dict)
    collected: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    preview: dict[Key, Any] = field(default_factory=dict)
    node: str = ""
    message: str = ""
    traceback: str = ""


class NodeFailed(Exception):
    """A node raised; carries the node id (and the item, when known)."""

    def __init__(self, node: str, exc: BaseException, index: int | None = None,
                 label: str | None = None) -> None:
        super().__init__(node)
        self.node = node
        self.exc = exc
        self.index = index
        self.label = label


class RemoteError(Exception):
    """An exception raised on a cluster worker, carried back as text."""

    def __init__(self, message: str, traceback_text: str) -> None:
        super().__init__(message)
        self.message = message
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        return self.message


class ItemFeed:
    """The iterator's generator, shared by the executor's threads under ``lock``."""

    __slots__ = ("count", "error", "exhausted", "gen", "lock")

    def __init__(self, gen: Iterator[Any]) -> None:
        self.gen = gen
        self.lock = threading.Lock()
        self.count = 0
        self.exhausted = False
        self.error: NodeFailed | None = None


# ---------------------------------------------------------------------- the protocols


class NodeHooks(Protocol):
    """Around every node :func:`execute_item` runs; also the hooks of a node's ``ctx``."""

    @property
    def run_id(self) -> str: ...

    def checkpoint(self) -> None:
        """Park while paused; raise ``RunStopped`` when the run is stopping."""

    def progress(self, node: str, fraction: float) -> None:
        """Progress within a node (0.0 to 1.0)."""

    def begin_node(self, node: str, item: int | None, label: str | None) -> None:
        """Before a node's call: may park (pause) or raise ``RunStopped``."""

    def end_node(self, node: str, item: int | None, label: str | None, seconds: float,
                 error: BaseException | None) -> None:
        """After it: ``error`` is what it raised (``RunStopped`` included), or None."""


class ItemHost(NodeHooks, Protocol):
    """The run as an executor sees it (implemented by the engine; thread-safe)."""

    @property
    def outputs(self) -> OutputSession | None:
        """The run's output session (locks and ownership records), for local nodes' ``ctx``."""

    @property
    def budget(self) -> MemoryBudget | None:
        """The run's memory budget for decoded images (local items reserve against it)."""

    def next_item(self, *, resolve: bool = True) -> Taken | None:
        """The next item, or None when there are no more. Gated like a node start: parks while
        paused, raises ``RunStopped`` when halting. With ``resolve`` the iterator's lazy values
        are resolved here (a failure raises :class:`NodeFailed`; the item is then taken and must
        be reported failed)."""

    def items_left(self) -> int | None:
        """Items not taken yet, when the total is known."""

    def gate_closed(self) -> bool:
        """A pause or stop is pending (an unlocked hint: the next call decides)."""

    def halting(self) -> bool:
        """Stopping or aborting: send nothing more, cancel what has not started."""

    def running(self) -> bool:
        """Executions may go on (running, no pause, stop or abort pending)."""

    def watch(self, flag: threading.Event) -> Callable[[], None]:
        """Set ``flag`` on every change of the run; returns the function that unwatches."""

    def item_done(self, taken: Taken, result: ItemResult, values: Mapping[Key, Any]) -> None:
        """Count a finished item (``values``: where its preview image is found)."""

    def item_failed(self, failed: NodeFailed) -> bool:
        """Count a failed item; returns whether to go on (``on_error="skip"``)."""

    def begin_batch(self, batch: int, size: int) -> None:
        """A batch of items leaves for a cluster: gated and counted busy like a node start."""

    def batch_parked(self, batch: int, parked: bool) -> None:
        """A batch's task parked at a checkpoint (or left it): not busy while parked."""

    def end_batch(self, batch: int, outcomes: list[Outcome],
                  items: Mapping[int, Taken]) -> bool:
        """A batch came back: count its items. Returns whether to go on."""

    def fail_run(self, message: str, exc: BaseException) -> None:
        """The executor cannot go on (a cluster lost): the run fails with ``message``."""


class Executor(Protocol):
    """Where items run: local worker threads, or a Dask cluster."""

    def run(self, host: ItemHost, work: ItemWork) -> None:
        """Process every item ``host.next_item()`` hands out; return when none is in flight."""


# ---------------------------------------------------------------------- the item executor


def execute_nodes(steps: tuple[Step, ...], values: dict[Key, Any], item: int | None,
                  label: str | None, hooks: NodeHooks, resuming: bool, *,
                  source: str | None = None, outputs: OutputSession | None = None,
                  overwrite: bool = False) -> None:
    """Run ``steps`` in order on ``values`` (each node's outputs are added to it). ``source``
    (the item's input file), ``outputs`` (the run's output session) and ``overwrite`` reach the
    nodes through their ``ctx``.

    Raises ``RunStopped`` (from the hooks or a node's checkpoint), or :class:`NodeFailed` naming
    the node that raised.
    """
    for step in steps:
        kwargs = dict(step.constants)
        for name, key in step.link_keys:
            kwargs[name] = values[key]
        if step.spec.wants_ctx:
            kwargs["ctx"] = Context(hooks, step.id, item, resuming, outputs=outputs,
                                    source=source, label=label, overwrite=overwrite)
        hooks.begin_node(step.id, item, label)
        started = time.perf_counter()
        try:
            store_outputs(step, step.spec.fn(**kwargs), values)
        except RunStopped as exc:
            hooks.end_node(step.id, item, label, 0.0, exc)
            raise
        except BaseException as exc:
            hooks.end_node(step.id, item, label, 0.0, exc)
            raise NodeFailed(step.id, exc, item, label) from exc
        hooks.end_node(step.id, item, label, time.perf_counter() - started, None)


def execute_item(work: ItemWork, index: int, label: str | None, values: dict[Key, Any],
                 hooks: NodeHooks, resuming: bool, *, source: str | None = None,
                 outputs: OutputSession | None = None) -> ItemResult:
    """Run one item through the per-item nodes: ``values`` holds the iterator's outputs (and the
    pre-item values); returns the paths written and the values collected."""
    execute_nodes(work.steps, values, index, label, hooks, resuming, source=source,
                  outputs=outputs, overwrite=work.overwrite)
    return ItemResult([str(values[key]) for key in work.writer_keys],
                      {cid: values[key] for cid, key in work.collect_keys})


def resolve_lazy(value: Any) -> Any:
    """An iterator's yielded value with its :class:`~chainlib.Lazy` parts computed."""
    if isinstance(value, Lazy):
        return value.resolve()
    if isinstance(value, dict) and any(isinstance(v, Lazy) for v in value.values()):
        return {k: v.resolve() if isinstance(v, Lazy) else v for k, v in value.items()}
    return value


def store_outputs(step: Step, result: Any, values: dict[Key, Any]) -> None:
    """Put a node's result into ``values`` under ``(node id, output name)`` keys."""
    outputs = step.spec.outputs
    if step.spec.multi_output:
        if not isinstance(result, Mapping):
            raise TypeError(f"{step.spec.id} must return a dict with keys {', '.join(outputs)}, "
                            f"got {type(result).__name__}")
        for name in outputs:
            if name not in result:
                raise TypeError(f"{step.spec.id} returned no value for output {name!r}")
            values[(step.id, name)] = result[name]
    elif outputs:
        values[(step.id, next(iter(outputs)))] = result


def error_message(exc: BaseException) -> str:
    """``Type: message`` (a remote error's message as it was)."""
    if isinstance(exc, RemoteError):
        return exc.message
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_traceback(exc: BaseException) -> str:
    if isinstance(exc, RemoteError):
        return exc.traceback_text
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
