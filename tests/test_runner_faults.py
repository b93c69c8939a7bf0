"""Runs of a real folder chain (load_folder -> save) under injected I/O faults (issue 10).

Hypothesis drives a state machine whose runs (random workers, on_error, resume, stops) meet
faults raised at random by output writes, renames and every record append (manifest and
ownership record). After every run it checks the accounting: each item counted exactly once
(done, failed, skipped or not run), the status and the event stream agree, a run completes only
with every item counted, no worker thread died; and on disk: every output complete, no temporary
file left, the user's file untouched.
"""

from __future__ import annotations

import errno
import random
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from PIL import Image

import chainlib as cl
from chainlib import outputs as outputs_mod
from chainlib import records
from chainlib.nodes.image import io as image_io
from chainlib.outputs import TEMP_PATTERN


class Faults:
    """Raises ``OSError(ENOSPC)`` with probability ``rate`` (thread-safe, seeded)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(0)
        self.rate = 0.0
        self.raised = 0

    def maybe(self, where: str) -> None:
        with self.lock:
            hit = self.rate > 0 and self.rng.random() < self.rate
            self.raised += hit
        if hit:
            raise OSError(errno.ENOSPC, f"injected fault at {where}")


class RunnerFaultMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.faults = Faults()
        self.thread_errors: list[BaseException | None] = []

    @initialize(n=st.integers(0, 7))
    def setup(self, n: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="runfaults-"))
        self.inputs = self.root / "in"
        self.out = self.root / "out"
        self.inputs.mkdir()
        self.out.mkdir()
        (self.out / "user.txt").write_text("the user's")
        rng = np.random.default_rng(n)
        self.pixels: dict[str, bytes] = {}
        for i in range(n):
            arr = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            Image.fromarray(arr).save(self.inputs / f"p{i}.png")
            self.pixels[f"p{i}"] = arr.tobytes()
        self._patch()

    def _patch(self) -> None:
        faults = self.faults
        real_append = records.JsonlLog.append
        real_commit = outputs_mod.OutputFolder._commit
        real_prepare = image_io._prepare

        def append(log: records.JsonlLog, rec: dict[str, Any]) -> None:
            faults.maybe("append " + log.path.name)
            real_append(log, rec)

        def commit(tmp: str, key: str, target: str, *, replace: bool) -> None:
            faults.maybe("rename")
            real_commit(tmp, key, target, replace=replace)

        def prepare(image: Any, fmt: str) -> Any:
            faults.maybe("write")
            return real_prepare(image, fmt)

        self._undo = [(records.JsonlLog, "append", real_append),
                      (outputs_mod.OutputFolder, "_commit", staticmethod(real_commit)),
                      (image_io, "_prepare", real_prepare)]
        records.JsonlLog.append = append  # type: ignore[method-assign]
        outputs_mod.OutputFolder._commit = staticmethod(commit)  # type: ignore[method-assign,assignment]
        image_io._prepare = prepare
        self._hook = threading.excepthook
        threading.excepthook = lambda args: self.thread_errors.append(args.exc_value)

    def teardown(self) -> None:
        for owner, name, fn in getattr(self, "_undo", []):
            setattr(owner, name, fn)
        if hasattr(self, "_hook"):
            threading.excepthook = self._hook
        if hasattr(self, "root"):
            shutil.rmtree(self.root, ignore_errors=True)

    def _chain(self) -> cl.Chain:
        chain = cl.Chain("faults")
        load = chain.add("image.load_folder", id="load", folder=str(self.inputs))
        chain.add("image.save", id="save", image=load["image"], name=load["name"],
                  folder=str(self.out))
        return chain

    @rule(workers=st.integers(1, 3), on_error=st.sampled_from(["stop", "skip"]),
          resume=st.booleans(), rate=st.sampled_from([0.0, 0.05, 0.2, 0.5]),
          seed=st.integers(0, 2**16), stop_after=st.sampled_from([None, None, 0, 2]))
    def run(self, workers: int, on_error: str, resume: bool, rate: float, seed: int,
            stop_after: int | None) -> None:
        runner = cl.Runner(self._chain(), workers=workers, on_error=on_error,  # type: ignore[arg-type]
                           resume=resume)
        events: list[cl.Event] = []
        sub = runner.subscribe(events.append, maxlen=1_000_000)
        with self.faults.lock:
            self.faults.rng.seed(seed)
            self.faults.rate = rate
        try:
            assert runner.start().accepted
            if stop_after is not None:
                while runner.status().done + runner.status().failed < stop_after and \
                        runner.status().state == "running":
                    threading.Event().wait(0.001)
                runner.stop()
            final = runner.wait(30)
        finally:
            with self.faults.lock:
                self.faults.rate = 0.0
            sub.flush(10)
            sub.close()
        self._check_run(final, events)

    def _check_run(self, final: cl.Status, events: list[cl.Event]) -> None:
        assert not self.thread_errors, f"a thread died: {self.thread_errors[0]!r}"
        assert final.state in ("completed", "failed", "stopped"), final.state
        total = len(self.pixels)
        assert final.total == total
        assert final.done + final.failed + (final.remaining or 0) == total
        assert 0 <= final.skipped <= final.done
        if final.state == "completed":
            assert final.remaining == 0  # completed: nothing unaccounted
        mine = [e for e in events if e.run_id == final.run_id]
        done = [e.item for e in mine if e.kind == "item_done"]
        failed = [e.item for e in mine if e.kind == "item_failed"]
        assert len(done) == final.done and len(failed) == final.failed
        counted = Counter(i for i in done + failed if i is not None)
        assert all(c == 1 for c in counted.values()), f"an item counted twice: {counted}"
        if final.state == "failed" and final.error is not None:
            assert "\n" not in final.reason if final.reason else True  # one-line reason

    @invariant()
    def disk_is_consistent(self) -> None:
        if not hasattr(self, "out"):
            return
        assert (self.out / "user.txt").read_text() == "the user's"
        assert not [p.name for p in self.out.iterdir() if TEMP_PATTERN.match(p.name)]
        for p in self.out.iterdir():
            if p.name.startswith(".") or p.name == "user.txt":
                continue
            with Image.open(p) as im:  # complete, and the copy of its input
                assert np.asarray(im.convert("RGB")).tobytes() == self.pixels[p.stem]


RunnerFaultMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=5, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestRunnerFaults = RunnerFaultMachine.TestCase
