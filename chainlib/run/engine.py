"""The engine of one run: drives the plan on the run's driver thread and keeps its books.

It runs the nodes before the items, hands the items to an executor through the seam
(:class:`~.seam.ItemHost`, which it implements), then the collectors and the nodes after them, and
finally sets the final state. Every change goes through the runner's lock (``Control.lock``):
statistics in the :class:`~.ledger.Ledger`, then ``Control.emit``, in one critical section.

Teardown: once the process is shutting down (:mod:`.lifecycle`), whatever a node (or the
iterator, or an executor) raises is a stop, never a failure: the run ends ``stopped`` with the
shutdown's reason, the item is counted as not run, the node is not marked failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..api.context import Context, ItemCounts
from ..api.item import Item, source_paths
from ..chain.validate import Plan
from ..errors import ChainError, RunStopped
from ..manifest import Manifest
from ..memory import MemoryBudget
from ..outputs import OutputSession
from ..records import RecordError
from . import lifecycle
from .control import Control
from .ledger import Ledger
from .preview import PreviewBuffer
from .seam import (
    Executor,
    ItemFeed,
    ItemResult,
    ItemWork,
    Key,
    NodeFailed,
    Outcome,
    RemoteError,
    Taken,
    error_message,
    error_traceback,
    execute_nodes,
    resolve_lazy,
    store_outputs,
)
from .status import ErrorInfo, Failure, Status


def one_line(exc: BaseException) -> str:
    """A record or file-system failure as one line (``RecordError`` already is one)."""
    if isinstance(exc, OSError):
        where = f" {exc.filename!r}" if exc.filename else ""
        return f"cannot write{where}: {exc.strerror or exc}"
    return " ".join(str(exc).split()) or type(exc).__name__


class Engine:
    """One run of a plan (created by ``Runner.start``; :meth:`drive` is its driver thread)."""

    def __init__(self, control: Control, plan: Plan, ledger: Ledger, preview: PreviewBuffer, *,
                 executor: Executor, stop_on_error: bool, resuming: bool,
                 manifest: Callable[[], Manifest] | None, outputs: OutputSession | None = None,
                 budget: MemoryBudget | None = None, overwrite: bool = False,
                 prepare: Callable[[], None] | None = None) -> None:
        self.control = control
        self._outputs = outputs
        self._budget = budget
        self.overwrite = overwrite
        self._prepare = prepare
        self.plan = plan
        self.ledger = ledger
        self.preview = preview
        self.executor = executor
        self.stop_on_error = stop_on_error
        self.resuming = resuming
        self.results: dict[Key, Any] = {}
        """Values of the nodes that ran once, kept when the run ends (``Runner.result``)."""
        self._open_manifest = manifest
        self._manifest: Manifest | None = None
        self._feed: ItemFeed | None = None
        self._pre_values: Mapping[Key, Any] = {}
        self._collected: dict[str, dict[int, Any]] = {c.id: {} for c in plan.collectors}
        self._remote: set[int] = set()
        self._parked: set[int] = set()
        self._on_finish: list[Callable[[Status], None]] = []
        self._parked_s = threading.local()
        """Per thread: seconds the node executing on it spent parked at checkpoints."""
        self._ever_parked = False  # keeps the per-node hot path free of _parked_s until a park
        ledger.iterator = plan.iterator.id if plan.iterator is not None else None
        ledger.per_item = frozenset(
            [*([plan.iterator.id] if plan.iterator is not None else []),
             *(step.id for step in plan.item)])
        lifecycle.track(control)  # until the run ends: stopped if the process shuts down

    def on_finish(self, callback: Callable[[Status], None], *, add: bool = True) -> None:
        """Call ``callback(final status)`` when the run ends (lock held); ``add=False`` removes
        it again. Called after the end, it is never called."""
        if add:
            self._on_finish.append(callback)
        elif callback in self._on_finish:
            self._on_finish.remove(callback)

    @property
    def run_id(self) -> str:
        return self.control.run_id

    @property
    def outputs(self) -> OutputSession | None:
        """The run's output session (closed when the run ends)."""
        return self._outputs

    @property
    def budget(self) -> MemoryBudget | None:
        return self._budget

    @property
    def workers(self) -> int:
        """How many items run at once in this process (a node's ``ctx.workers``)."""
        return max(1, int(getattr(self.executor, "workers", 1)))

    # ------------------------------------------------------------------ the driver

    def drive(self) -> None:
        plan = self.plan
        values: dict[Key, Any] = {}
        error: ErrorInfo | None = None
        try:
            if self._prepare is not None:
                self._prepare()  # checks before anything is written (predicted collisions)
            if self._open_manifest is not None and plan.iterator is not None:
                self._manifest = self._open_manifest()
            self._execute(plan.pre, values)
            if plan.iterator is not None:
                self._run_items(values)
                self._collect(values)
        except RunStopped:
            pass  # stop requested, or aborted after an item failure (already recorded)
        except NodeFailed as failed:
            error = ErrorInfo(failed.node, error_message(failed.exc), error_traceback(failed.exc))
        except ChainError as exc:  # the preflight: a missing input folder, predicted collisions
            message = exc.message if exc.node else str(exc)
            if exc.node and exc.input:
                message = f"input {exc.input!r}: {message}"
            error = ErrorInfo(exc.node or "", message, "")
        except (RecordError, OSError) as exc:  # the manifest or a record cannot be opened
            error = ErrorInfo("", one_line(exc), error_traceback(exc))
        except BaseException as exc:  # a bug in chainlib itself: still end the run truthfully
            error = ErrorInfo("", error_message(exc), error_traceback(exc))
        self._finish(values, error)

    def _collect(self, values: dict[Key, Any]) -> None:
        """Run the collectors over the items' values, then the nodes after them.

        When a resumed run skipped every item as complete, a collector would get nothing and
        replace what an earlier run built (a contact sheet, its saved file) or fail: it does not
        run, nor do the nodes after it (``not_run``), unless it ``rebuilds`` from earlier
        outputs (``video.save`` from its frames folder)."""
        counts = self.item_counts()
        nothing_new = counts.skipped > 0 and counts.done == counts.skipped and not counts.failed
        held: set[str] = set()
        for c in self.plan.collectors:
            if nothing_new and not c.spec.rebuilds:
                held.add(c.id)
                continue
            with self.control.lock:
                collected = [v for _, v in sorted(self._collected[c.id].items())]
            # per-item values are never in ``values`` after the items (validation forbids
            # mixing them with collected ones), so the collected list takes their key
            link = c.links[c.spec.collect or ""]
            values[(link.node, link.output)] = collected
            self._execute((c,), values)
        post = []
        for step in self.plan.post:  # in order: a node's sources come before it
            if any(node in held for _, (node, _) in step.link_keys):
                held.add(step.id)
            else:
                post.append(step)
        self._execute(tuple(post), values)

    def _finish(self, values: dict[Key, Any], error: ErrorInfo | None) -> None:
        """End the run: release the outputs, record ``error``, publish the final state."""
        self._close_outputs()  # before the final state: a run that is over holds no lock
        with self.control.cond:
            if error is not None and self._teardown():
                error = None  # raised by the interpreter's teardown: a stop, not a failure
            if error is not None:
                self.ledger.fail(Failure(None, None, error.node, error.message), error)
            self.results = dict(values)
            failing = error is not None or self.control.aborted
            self.control.finish(self.ledger.error_summary() if failing else None)
            final = self.ledger.snapshot(self.control)
            callbacks, self._on_finish = self._on_finish, []
        lifecycle.untrack(self.control)
        for callback in callbacks:
            callback(final)

    def _execute(self, steps: tuple[Any, ...], values: dict[Key, Any]) -> None:
        execute_nodes(steps, values, None, None, self, self.resuming, outputs=self._outputs,
                      overwrite=self.overwrite)

    def _close_outputs(self) -> None:
        manifest, self._manifest = self._manifest, None
        if manifest is not None:
            manifest.close()
        if self._outputs is not None:
            self._outputs.close()

    def _run_items(self, pre_values: dict[Key, Any]) -> None:
        it = self.plan.iterator
        assert it is not None
        kwargs = dict(it.constants)
        for name, link in it.links.items():
            kwargs[name] = pre_values[(link.node, link.output)]
        try:
            declared = None if it.spec.length is None else it.spec.length(**kwargs)
            total = None if declared is None else int(declared)
            if it.spec.wants_ctx:
                kwargs["ctx"] = Context(self, it.id, None, self.resuming, outputs=self._outputs,
                                        overwrite=self.overwrite)
            gen = iter(it.spec.fn(**kwargs))
        except Exception as exc:
            raise NodeFailed(it.id, exc) from exc
        with self.control.lock:
            self.ledger.total = total
            self.control.emit("total", it.id)
        self._pre_values = dict(pre_values)
        self._feed = feed = ItemFeed(gen)
        collectors = self.plan.collectors
        work = ItemWork(
            iterator=it,
            steps=self.plan.item,
            pre_values=self._pre_values,
            collect_keys=tuple(
                (c.id, (c.links[c.spec.collect or ""].node, c.links[c.spec.collect or ""].output))
                for c in collectors),
            writer_keys=tuple((w.id, o) for w in self.plan.item if w.spec.writes_files
                              for o in w.spec.outputs),
            preview_keys=self.preview.keys if self.preview.enabled else (),
            stop_on_error=self.stop_on_error,
            overwrite=self.overwrite,
            max_memory=self._budget.limit if self._budget is not None else None,
        )
        self.executor.run(self, work)
        if feed.error is not None:
            raise feed.error
        with self.control.lock:
            if feed.exhausted and self.ledger.total != feed.count:
                self.ledger.total = feed.count
                self.control.emit("total", it.id)
            if self.control.halting():
                raise RunStopped()

    # ------------------------------------------------------------------ NodeHooks

    def _teardown(self) -> bool:
        """Whether the process is shutting down (lock held); if so, the run is asked to stop
        with the shutdown's reason (a failure now is the teardown's doing, not the node's)."""
        reason = lifecycle.shutting_down()
        if reason is None:
            return False
        if self.control.active:
            self.control.command("stop", reason)
        return True

    def checkpoint(self) -> None:
        control = self.control
        if control.gate_open:  # unlocked fast path, as in Control.checkpoint
            return
        started = time.perf_counter()
        try:
            control.checkpoint()
        finally:  # parked time is not the node's: end_node takes it off the node's time
            parked = self._parked_s
            parked.s = getattr(parked, "s", 0.0) + time.perf_counter() - started
            self._ever_parked = True  # read by end_node on this same thread

    def progress(self, node: str, fraction: float) -> None:
        with self.control.lock:
            self.ledger.progress[node] = fraction
            self.control.emit("progress", node, progress=fraction)

    def begin_node(self, node: str, item: int | None, label: str | None) -> None:
        with self.control.lock:
            self.control.enter(node, item, label)  # may park or raise: count only after it
            self.ledger.running[node] += 1

    def end_node(self, node: str, item: int | None, label: str | None, seconds: float,
                 error: BaseException | None, *, counted: bool = True) -> None:
        ledger = self.ledger
        if self._ever_parked:
            parked: float = getattr(self._parked_s, "s", 0.0)
            if parked:
                self._parked_s.s = 0.0
                seconds = max(0.0, seconds - parked)
        with self.control.lock:
            ledger.running[node] -= 1
            if not counted:
                self.control.leave("node_finished", node, item, label, "no more items")
            elif error is None:
                ledger.count[node] += 1
                ledger.seconds[node] += seconds
                self.control.leave("node_finished", node, item, label)
            elif isinstance(error, RunStopped) or self._teardown():
                self.control.leave("node_finished", node, item, label, "stopped")
            else:
                ledger.node_failures[node] += 1
                self.control.leave("node_failed", node, item, label, error_message(error))

    # ------------------------------------------------------------------ ItemHost: items

    def next_item(self, *, resolve: bool = True) -> Taken | None:
        """The iterator node's per-item execution: fetch under the feed's lock, then resolve the
        lazy values outside it (so that decoding runs in parallel)."""
        feed = self._feed
        it = self.plan.iterator
        assert feed is not None and it is not None
        with feed.lock:
            if feed.exhausted or feed.error is not None:
                return None
            self.begin_node(it.id, None, None)
            started = time.perf_counter()
            try:
                raw = next(feed.gen)
                while self._already_complete(raw):
                    self._add_input(raw.source)  # skipped, still an input (never written over)
                    self._skip(feed.count, raw.label)
                    feed.count += 1
                    raw = next(feed.gen)
            except StopIteration:
                feed.exhausted = True
                self.end_node(it.id, None, None, 0.0, None, counted=False)
                return None
            except RunStopped as exc:
                self.end_node(it.id, None, None, 0.0, exc)
                raise
            except BaseException as exc:
                feed.error = NodeFailed(it.id, exc)
                self.end_node(it.id, None, None, 0.0, exc)
                with self.control.lock:
                    if not self._teardown():
                        self.control.abort()  # a broken generator cannot go on: the run fails
                return None
            index = feed.count
            feed.count += 1
        label = raw.label if isinstance(raw, Item) else None
        source = raw.source if isinstance(raw, Item) else None
        value = raw.value if isinstance(raw, Item) else raw
        self._add_input(source)
        if not resolve:
            self.end_node(it.id, index, label, time.perf_counter() - started, None)
            return Taken(index, label, source, value)
        values: dict[Key, Any] = {}
        try:
            store_outputs(it, resolve_lazy(value), values)
        except RunStopped as exc:
            self.end_node(it.id, index, label, 0.0, exc)
            raise
        except BaseException as exc:
            self.end_node(it.id, index, label, 0.0, exc)
            # the item is taken: it must be counted, as failed, by the caller
            raise NodeFailed(it.id, exc, index, label) from exc
        self.end_node(it.id, index, label, time.perf_counter() - started, None)
        values.update(self._pre_values)
        return Taken(index, label, source, values)

    def _add_input(self, source: str | None) -> None:
        """An item's input file is never written over. A source naming a part of a file as
        FILE#PART (a video frame, "clip.mp4#frame=12") makes FILE an input (as in the
        manifest)."""
        if source is not None and self._outputs is not None:
            self._outputs.add_inputs(source_paths(source))

    def _already_complete(self, raw: Any) -> bool:
        return (self.resuming and self._manifest is not None and isinstance(raw, Item)
                and raw.source is not None and self._manifest.is_complete(raw.source))

    def _skip(self, index: int, label: str | None) -> None:
        with self.control.lock:
            self.ledger.done += 1
            self.ledger.skipped += 1
            self.control.emit("item_done", None, index, label, "skipped: already complete")

    def item_counts(self) -> ItemCounts:
        """How the items have ended so far (final once the collectors run): a node's
        ``ctx.items``."""
        with self.control.lock:
            ledger = self.ledger
            return ItemCounts(ledger.total, ledger.done, ledger.failed, ledger.skipped)

    def items_left(self) -> int | None:
        feed = self._feed
        with self.control.lock:
            total = self.ledger.total
        return None if total is None or feed is None else total - feed.count

    def gate_closed(self) -> bool:
        return not self.control.gate_open

    def halting(self) -> bool:
        with self.control.lock:
            return self.control.halting()

    def running(self) -> bool:
        with self.control.lock:
            return self.control.gate_open

    def watch(self, flag: threading.Event) -> Callable[[], None]:
        return self.control.watch(flag)

    def item_done(self, taken: Taken, result: ItemResult, values: Mapping[Key, Any]) -> None:
        """Count a finished item: record it in the manifest (its outputs are in place), keep its
        collected values, and offer its preview. When the record cannot be written the item is
        counted failed and the run fails with that one-line reason (the rest is not run)."""
        if self._manifest is not None and taken.source is not None:
            try:
                self._manifest.record(taken.source, taken.label, result.outputs)
            except (RecordError, OSError) as exc:
                self._record_failed(taken, exc)
                return
        if self.preview.enabled:
            self.preview.offer(taken.label, values)
        with self.control.lock:
            self.ledger.done += 1
            for cid, value in result.collected.items():
                self._collected[cid][taken.index] = value
            self.control.emit("item_done", None, taken.index, taken.label)

    def _record_failed(self, taken: Taken, exc: BaseException) -> None:
        message = one_line(exc)
        with self.control.lock:
            self.ledger.failed += 1
            self.ledger.fail(Failure(taken.index, taken.label, "", message),
                             ErrorInfo("", message, error_traceback(exc), taken.index,
                                       taken.label))
            self.control.emit("item_failed", None, taken.index, taken.label, message)
            self.control.abort()

    def item_failed(self, failed: NodeFailed) -> bool:
        """Count a failed item. A record that cannot be written (the folder's problem, not the
        item's: disk full, read-only) fails the run whatever ``on_error`` says."""
        message = error_message(failed.exc)
        index, label = failed.index, failed.label
        with self.control.lock:
            if self._teardown():
                return False  # not a failure: the item is counted as not run
            self.ledger.failed += 1
            self.ledger.fail(Failure(index, label, failed.node, message),
                             ErrorInfo(failed.node, message, error_traceback(failed.exc), index,
                                       label))
            self.control.emit("item_failed", failed.node, index, label, message)
            if self.stop_on_error or isinstance(failed.exc, RecordError):
                self.control.abort()
                return False
            return True

    def fail_run(self, message: str, exc: BaseException) -> None:
        with self.control.lock:
            if self._teardown():
                return
            ledger = self.ledger
            if ledger.error is None or ledger.error.item is not None:
                ledger.fail(Failure(None, None, "", message),
                            ErrorInfo("", message, error_traceback(exc)))
            self.control.abort()
            self.control.emit("node_failed", message=message)

    # ------------------------------------------------------------------ ItemHost: batches

    def begin_batch(self, batch: int, size: int) -> None:
        control = self.control
        with control.lock:
            first = self.plan.item[0].id if self.plan.item else None
            control.enter(first, message=f"{size} item(s) sent to the cluster")
            self._remote.add(batch)
            for step in self.plan.item:
                self.ledger.running[step.id] += 1

    def batch_parked(self, batch: int, parked: bool) -> None:
        with self.control.lock:
            if parked and batch in self._remote and batch not in self._parked:
                self._parked.add(batch)
                self.control.leave()
            elif not parked and batch in self._parked:
                self._parked.discard(batch)
                self.control.rejoin()

    def end_batch(self, batch: int, outcomes: list[Outcome], items: Mapping[int, Taken]) -> bool:
        control, ledger = self.control, self.ledger
        it = self.plan.iterator.id if self.plan.iterator else None
        with control.lock:
            self._remote.discard(batch)
            for step in self.plan.item:
                ledger.running[step.id] -= 1
            for out in outcomes:
                for node, seconds in out.seconds.items():
                    ledger.count[node] += node != it  # the fetch already counted the iterator
                    ledger.seconds[node] += seconds
                if out.status == "failed":
                    ledger.node_failures[out.node] += 1
                    ledger.count[out.node] -= out.node == it  # as locally: a failed fetch counts 0
            first = self.plan.item[0].id if self.plan.item else None
            message = f"{len(outcomes)} item(s) back from the cluster"
            if batch in self._parked:  # already uncounted when it parked
                self._parked.discard(batch)
                control.emit("node_finished", first, message=message)
            else:
                control.leave("node_finished", first, message=message)
        go_on = True
        for out in outcomes:
            taken = items.get(out.index) or Taken(out.index, None, None, None)
            if out.status == "done":
                self.item_done(taken, ItemResult(out.outputs, out.collected), out.preview)
            elif out.status == "failed":
                failed = NodeFailed(out.node, RemoteError(out.message, out.traceback),
                                    taken.index, taken.label)
                go_on = self.item_failed(failed) and go_on
        return go_on and not self.halting()
