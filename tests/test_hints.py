"""Hints after a run: the same advice in Python and on the command line, only when it works."""

from __future__ import annotations

import dataclasses

from chainlib import Failure, Status
from chainlib.run.hints import hints, outputs_exist
from chainlib.run.html import status_html

EXISTS = "ValueError: overwrite: '/out/a.png' already exists; set overwrite=True to replace it"


def final(state: str = "completed", **changes: object) -> Status:
    base = Status(
        run_id="r", state="completed", seq=9, done=0, failed=0, skipped=0, total=3, current=(),
        nodes={}, elapsed=1.0, eta=None, rate=None, error=None, failures=(), started_at=0.0,
        taken_at=1.0,
    )
    return dataclasses.replace(base, state=state, **changes)  # type: ignore[arg-type]


def test_outputs_in_the_way() -> None:
    st = final(failed=2, done=1, failures=(Failure(0, "a.png", "save", EXISTS),
                                           Failure(1, "b.png", "save", EXISTS)))
    assert outputs_exist(st) == ["save"]
    (py,) = hints(st, writes_files=True)
    assert "resume=True" in py and "overwrite=True on node 'save'" in py
    assert "hint: outputs exist from an earlier run" in status_html(st.to_dict(), hints=[py])


def test_resume_is_suggested_only_where_it_works() -> None:
    stopped = final("stopped", done=1, total=3)
    assert hints(stopped, writes_files=True) == [
        "Runner(chain, resume=True) finishes the 2 remaining item(s)"]
    assert hints(stopped, writes_files=False) == []  # no manifest to resume from
    assert hints(final("stopped", done=3, total=3), writes_files=True) == []  # nothing left
    assert hints(final("completed", done=3), writes_files=True) == []
    other = final(failed=1, failures=(Failure(0, "x", "resize", "ValueError: too small"),))
    assert hints(other, writes_files=True) == []


def test_with_collectors_resume_is_not_offered_for_outputs_in_the_way() -> None:
    st = final(failed=1, failures=(Failure(0, "a.png", "save", EXISTS),))
    assert hints(st, writes_files=True, collectors=["sheet"]) == [
        "outputs exist from an earlier run: overwrite=True on node 'save' replaces them"]
