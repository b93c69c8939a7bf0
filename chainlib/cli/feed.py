"""State changes of a command-line run: logged (``-v``) and, with ``--json``, written to stdout as
one JSON object per line, for piping (``chainlib run c.json --json | jq .state``).

The runner delivers its events on a subscriber thread; this module only queues the state events
there, and the command's main thread writes them (so lines never interleave with other output).
Every line has ``"event"``: ``"state"`` lines carry the change (``run_id``, ``seq``, ``state``,
``reason``) and the counts at the time of writing (``done``, ``failed``, ``skipped``, ``total``,
``elapsed``); the last line, ``"end"``, is the whole final status (``Status.to_dict()``) with the
command's ``exit_code``.
"""

from __future__ import annotations

import json
import logging
import queue
from typing import Any, TextIO

from ..run import Event, Runner, Status
from ..run.states import FINISHED_STATES
from .common import write_out

log = logging.getLogger("chainlib")

MAX_FAILURES = 100  # in the final line; the summary on stderr lists them too


class StateFeed:
    """Follows one runner's state changes; :meth:`drain` and :meth:`finish` from one thread."""

    def __init__(self, runner: Runner, json_out: TextIO | None) -> None:
        self._runner = runner
        self._out = json_out
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._sub = runner.subscribe(self._take)

    def _take(self, event: Event) -> None:  # the subscriber thread: queue, nothing else
        if event.kind == "state" or event.gap:
            self._events.put(event)

    def drain(self) -> None:
        """Write the state changes seen so far (the final one is left to :meth:`finish`)."""
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            if event.gap:
                log.debug("missed %d event(s) before seq %d", event.gap, event.seq)
            if event.kind != "state" or event.state in FINISHED_STATES:
                continue
            now = self._runner.status()
            log.info("run %s: %s%s", event.run_id, event.state,
                     f" ({now.reason})" if event.state == "stopping" and now.reason else "")
            self._write({
                "event": "state", "run_id": event.run_id, "seq": event.seq, "state": event.state,
                "reason": now.reason if event.state == "stopping" else None,
                "done": now.done, "failed": now.failed, "skipped": now.skipped,
                "total": now.total, "elapsed": round(now.elapsed, 3),
            })

    def finish(self, final: Status, exit_code: int) -> None:
        """Write what is left and the final status; stop following the runner."""
        self.drain()
        self._sub.close()
        log.info("run %s: %s%s", final.run_id, final.state,
                 f" ({final.reason})" if final.reason else "")
        self._write({"event": "end", **final.to_dict(max_failures=MAX_FAILURES),
                     "exit_code": exit_code})

    def _write(self, obj: dict[str, Any]) -> None:
        if self._out is not None and not write_out(json.dumps(obj, ensure_ascii=False) + "\n",
                                                   self._out):
            self._out = None
            log.warning("stdout is closed: no more --json lines, the run goes on")
