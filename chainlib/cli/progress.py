"""Running a chain in a terminal: a progress bar, Ctrl-C, and the summary."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TextIO

from ..chain import Chain
from ..errors import ChainError
from ..run import Runner, Status
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError, safe
from .feed import StateFeed

STOPPING_MESSAGE = "stopping after the current items… (Ctrl-C again to quit now)"
MAX_LISTED_FAILURES = 20


class _Interrupts:
    """SIGINT in the main thread: the first asks for a graceful stop (done by the polling loop, so
    the handler never takes the runner's lock), the second quits at once."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count >= 2:
            # Raw write: the main thread may be inside a buffered write to stderr right now.
            os.write(2, b"\nchainlib: quitting now (stopped by the user)\n")
            os._exit(EXIT_INTERRUPTED)


def execute(
    chain: Chain,
    *,
    workers: int,
    on_error: str,
    resume: bool = False,
    cluster: Any = None,
    progress: bool = True,
    label: str = "items",
    serve: Callable[[Runner], Callable[[], None]] | None = None,
    max_memory: int | None = None,
    overwrite: bool = False,
    json_out: TextIO | None = None,
) -> tuple[Status, bool]:
    """Run ``chain`` with a progress bar (stderr) until it ends; returns its final status and
    whether the user interrupted it. ``serve(runner)``, if given, is called before the start (to
    serve the run over HTTP) and returns what to call once the run has ended. A run that cannot
    start (its output folder is in use by another run, or not writable) raises
    :class:`UsageError` with the reason. State changes are logged, and written to ``json_out`` as
    JSON lines when given (see :mod:`.feed`)."""
    kwargs: dict[str, Any] = {"workers": workers, "on_error": on_error, "resume": resume,
                              "max_memory": max_memory, "overwrite": overwrite}
    if cluster is not None:
        kwargs["cluster"] = cluster
    try:
        runner = Runner(chain, **kwargs)
    except (ValueError, ChainError) as exc:
        raise UsageError(str(exc)) from None
    stop_serving = serve(runner) if serve is not None else None
    try:
        return _drive(runner, progress=progress, label=label, feed=StateFeed(runner, json_out))
    finally:
        if stop_serving is not None:
            stop_serving()  # after the final snapshot went out to every stream


def _drive(runner: Runner, *, progress: bool, label: str,
           feed: StateFeed) -> tuple[Status, bool]:
    from tqdm import tqdm

    with _Interrupts() as interrupts:
        bar = tqdm(total=None, unit="item", desc=safe(label), file=sys.stderr,
                   disable=not progress,
                   dynamic_ncols=True, smoothing=0.1, mininterval=0.2)
        stop_sent = False
        shown = ""
        final: Status | None = None
        try:
            ack = runner.start()
            if not ack.accepted:  # the output folder is busy or not writable
                raise UsageError(ack.reason)
            while final is None:
                if interrupts.count and not stop_sent:
                    stop_sent = True
                    runner.stop()
                    tqdm.write(STOPPING_MESSAGE, file=sys.stderr)
                    sys.stderr.flush()
                with contextlib.suppress(TimeoutError):
                    final = runner.wait(timeout=0.1)
                feed.drain()
                shown = _update_bar(bar, final or runner.status(), shown)
        finally:
            bar.close()
        feed.finish(final, exit_code(final))
        return final, interrupts.count > 0


def _error_line(node: str, message: str) -> str:
    where = f"error in node {node!r}" if node else "error"
    return f"{where}: {safe(message)}"


def _update_bar(bar: Any, st: Status, shown: str) -> str:
    """Bring the bar up to ``st``; ``shown`` is the postfix shown now; returns the new one."""
    if st.total is not None and bar.total != st.total:
        bar.total = st.total
        bar.refresh()
    finished = st.done + st.failed
    if finished > bar.n:
        bar.update(finished - bar.n)
    postfix = []
    if st.skipped:
        postfix.append(f"skipped={st.skipped}")
    if st.failed:
        postfix.append(f"failed={st.failed}")
    if st.state in ("stopping", "pausing", "paused"):
        postfix.append(st.state)
    elif st.current and st.total is not None and finished >= st.total:
        postfix.append("finishing: " + safe(", ".join(st.current)))
    text = " ".join(postfix)
    if text != shown:
        bar.set_postfix_str(text, refresh=False)
    return text


def exit_code(st: Status) -> int:
    """0 every item done, 1 failures, 130 stopped by the user."""
    if st.state == "stopped":
        return EXIT_INTERRUPTED
    return EXIT_OK if st.state == "completed" and not st.failed else EXIT_FAILED


def summary(st: Status, folders: Sequence[str], *, resumable: bool,
            resumed: bool = False) -> tuple[str, int]:
    """The summary text (for stdout) and the exit code for a finished run. Every name and
    message in it is escaped for the terminal (:func:`~.common.safe`). ``resumable``: the chain
    can run with ``--resume``; ``resumed``: this run did."""
    total = "?" if st.total is None else str(st.total)
    parts = [f"{st.done} done"]
    if st.skipped:
        parts.append(f"{st.skipped} of them already complete (skipped)")
    parts.append(f"{st.failed} failed")
    remaining = st.remaining
    if st.state != "completed" and remaining:
        parts.append(f"{remaining} not run")
    # the run's mean rate (``Status.rate`` is given only while running)
    ran = st.done - st.skipped + st.failed
    rate = f", {ran / st.active_s:.1f} items/s" if ran and st.active_s > 0 else ""
    headline = {
        "completed": "completed" if not st.failed else "completed with failures",
        "stopped": "stopped by the user",
        "failed": "run failed",
    }.get(st.state, st.state)
    lines = [f"{headline}: {', '.join(parts)} (of {total} items) in {st.elapsed:.1f} s{rate}"]

    item_failures = [f for f in st.failures if f.item is not None]
    if item_failures:
        lines.append("failed items:")
        for f in item_failures[:MAX_LISTED_FAILURES]:
            name = safe(f.label) if f.label is not None else f"item {f.item}"
            where = f"[{f.node}] " if f.node else ""
            lines.append(f"  {name}: {where}{safe(f.message)}")
        if len(item_failures) > MAX_LISTED_FAILURES:
            lines.append(f"  ... and {len(item_failures) - MAX_LISTED_FAILURES} more")
    for f in st.failures:
        if f.item is None:
            lines.append(_error_line(f.node, f.message))
    if st.state == "failed" and st.error is not None and not st.failures:
        lines.append(_error_line(st.error.node, st.error.message))
    if st.state == "failed" and st.reason and item_failures:
        lines.append(f"reason: {safe(st.reason)}")  # why the rest was not run

    if len(folders) == 1:
        lines.append(f"output folder: {safe(folders[0])}")
    elif folders:
        lines.append("output folders: " + ", ".join(map(safe, folders)))
    if st.dashboard:
        lines.append(f"Dask dashboard: {safe(st.dashboard)}")
    if any("already exists" in f.message for f in item_failures):
        ours = any("written by an earlier run" in f.message for f in item_failures)
        if ours and resumable and not resumed:
            lines.append("hint: outputs exist from an earlier run; use --resume to skip "
                         "finished items, or --overwrite to replace existing files")
        else:
            lines.append("hint: use --overwrite to replace existing files (inputs are never "
                         "replaced), or write into another folder")
    if st.state == "stopped" and resumable and remaining:
        lines.append("run the same command with --resume to finish the remaining items")

    return "\n".join(lines), exit_code(st)
