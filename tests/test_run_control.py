"""The control core's table and seams: state names, stop reasons, epochs, wait hooks, imports."""

from __future__ import annotations

import ast
import logging
import threading
import time
from pathlib import Path

import pytest

import chainlib as cl
from chainlib.errors import RunStopped
from chainlib.run import waiting
from chainlib.run.control import TRANSITIONS, Control
from chainlib.run.states import ACTIVE_STATES, FINISHED_STATES
from chainlib.run.status import RUN_STATES, STATES
from tests.conftest import Gates, gated_chain

PACKAGE = Path(cl.__file__).parent


def test_the_eight_states_are_declared_once() -> None:
    assert RUN_STATES == ("idle", "running", "pausing", "paused", "stopping", "stopped",
                          "completed", "failed")
    assert STATES is RUN_STATES
    assert ACTIVE_STATES | FINISHED_STATES | {"idle"} == set(RUN_STATES)
    assert not ACTIVE_STATES & FINISHED_STATES
    targets = {target for _, target in TRANSITIONS.values()}
    sources = {s for sources, _ in TRANSITIONS.values() for s in sources}
    assert targets | sources == set(RUN_STATES)  # every state is reachable and left (or final)


def expected_ack(state: str, command: str) -> tuple[bool, str]:
    already = {"pause": ("pausing", "paused"), "resume": ("running",),
               "stop": ("stopping", "stopped")}
    if state in already.get(command, ()):
        return True, f"already {state}"
    sources, _ = TRANSITIONS[command]  # type: ignore[index]
    if state in sources:
        return True, {"start": "started", "pause": "pause requested", "resume": "resumed",
                      "stop": "stop requested"}[command]
    if command == "start":
        return False, f"a run is already {state}"
    return False, f"cannot {command}: run is {state}"


def control_in(state: str) -> Control:
    """A Control driven into ``state`` through its public edges (no threads)."""
    c = Control()
    paths = {
        "idle": [], "running": ["start"], "pausing": ["start", "busy", "pause"],
        "paused": ["start", "pause"], "stopping": ["start", "stop"],
        "stopped": ["start", "stop", "finish"], "completed": ["start", "finish"],
        "failed": ["start", "fail"],
    }
    with c.cond:
        for step in paths[state]:
            if step == "busy":
                c.enter()
            elif step == "finish":
                c.finish(None)
            elif step == "fail":
                c.finish("node 'x': ValueError: boom")
            else:
                assert c.command(step)[0]  # type: ignore[arg-type]
    assert c.state == state
    return c


@pytest.mark.parametrize("state", RUN_STATES)
@pytest.mark.parametrize("command", ["start", "pause", "resume", "stop"])
def test_every_command_in_every_state(state: str, command: str) -> None:
    c = control_in(state)
    seq = c.seq
    with c.cond:
        accepted, why = c.command(command)  # type: ignore[arg-type]
    assert (accepted, why) == expected_ack(state, command)
    changed = accepted and not why.startswith("already")
    assert (c.seq > seq) == changed  # a rejected or no-op command changes nothing
    if not changed:
        assert c.state == state


def test_the_gate_is_computed_from_the_state() -> None:
    for state in RUN_STATES:
        c = control_in(state)
        assert c.gate_open == (state == "running")
    c = control_in("running")
    with c.cond:
        c.abort()
        assert not c.gate_open
        with pytest.raises(RunStopped):
            c.enter()
        c.finish(None)
    assert c.state == "failed"


def test_pausing_settles_when_the_last_execution_leaves() -> None:
    c = control_in("running")
    with c.cond:
        c.enter()
        c.enter()
        c.command("pause")
        assert c.state == "pausing"
        c.leave()
        assert c.state == "pausing"
        c.leave()
        assert (c.state, c.busy) == ("paused", 0)


def test_paused_time_is_excluded_once() -> None:
    c = control_in("running")
    with c.cond:
        c.command("pause")
    time.sleep(0.05)
    with c.cond:
        c.command("stop")  # leaves paused: the interval is added here, once
        c.finish(None)
        elapsed, active = c.times()
    assert c.state == "stopped"
    assert elapsed >= 0.05
    assert active <= elapsed - 0.05 + 0.01


def test_an_impossible_edge_is_a_bug_not_a_silent_change() -> None:
    c = control_in("idle")
    with c.cond, pytest.raises(RuntimeError, match="no edge 'halt' from state 'idle'"):
        c._enter("halt")
    assert c.state == "idle"


# ---------------------------------------------------------------------- reason and epoch


def test_stop_reason_default_and_given(gates: Gates) -> None:
    run = cl.Runner(gated_chain(3))
    assert run.status().reason is None
    run.start()
    gates.wait_entered()
    assert run.status().reason is None
    ack = run.stop("enough for today")
    assert ack.status.state == "stopping" and ack.status.reason == "enough for today"
    assert run.stop("another").status.reason == "enough for today"  # the first reason stays
    gates.release.set()
    final = run.wait(10)
    assert (final.state, final.reason) == ("stopped", "enough for today")
    assert final.to_dict()["reason"] == "enough for today"

    gates.release.clear()
    run.start()
    assert run.status().reason is None  # a new run has no reason yet
    gates.wait_entered()
    run.stop()
    gates.release.set()
    assert run.wait(10).reason == "stopped by user"


def test_reason_of_a_failed_and_a_completed_run() -> None:
    @cl.node("test.explode")
    def explode(x: int) -> int:
        raise ValueError(f"boom {x}")

    chain = cl.Chain()
    src = chain.add("core.range", n=2)
    chain.add("test.explode", x=src)
    failing = cl.Runner(chain)
    failing.start()
    status = failing.wait(10)
    assert status.state == "failed"
    assert status.reason is not None
    assert "explode" in status.reason and "ValueError: boom 0" in status.reason

    ok = cl.Chain()
    ok.add("core.range", n=3)
    run = cl.Runner(ok)
    run.start()
    assert run.wait(10).reason is None


def test_epoch_is_per_runner_and_in_every_snapshot(gates: Gates) -> None:
    a, b = cl.Runner(gated_chain(1)), cl.Runner(gated_chain(1))
    epoch = a.status().epoch
    assert len(epoch) == 32 and int(epoch, 16) >= 0
    assert epoch != b.status().epoch
    gates.release.set()
    a.start()
    first = a.wait(10)
    a.start()
    second = a.wait(10)
    assert first.run_id != second.run_id
    assert first.epoch == second.epoch == epoch == second.to_dict()["epoch"]


# ---------------------------------------------------------------------- wait hooks


def test_wait_runs_the_hooks_outside_the_lock(gates: Gates) -> None:
    run = cl.Runner(gated_chain(1))
    seen: list[str] = []

    def hook() -> None:
        seen.append(run.status().state)  # takes the runner's lock: must not be held here
        if len(seen) == 3:
            gates.release.set()

    remove = waiting.add_wait_hook(hook)
    try:
        run.start()
        t0 = time.monotonic()
        assert run.wait(10).state == "completed"
        assert len(seen) >= 3
        assert time.monotonic() - t0 < 5  # slices of ~0.05 s, not 0.2 s: well within
    finally:
        remove()
    remove()  # idempotent
    n = len(seen)
    gates.release.clear()
    run.start()
    threading.Timer(0.3, gates.release.set).start()
    run.wait(10)
    assert len(seen) == n  # removed: not called any more


def test_a_raising_hook_is_logged_and_ignored(gates: Gates,
                                              caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    def broken() -> None:
        nonlocal calls
        calls += 1
        gates.release.set()
        raise RuntimeError("hook trouble")

    run = cl.Runner(gated_chain(1))
    remove = waiting.add_wait_hook(broken)
    try:
        run.start()
        with caplog.at_level(logging.ERROR, logger="chainlib"):
            assert run.wait(10).state == "completed"
    finally:
        remove()
    assert calls >= 1
    assert "hook trouble" in caplog.text


def test_a_hook_that_waits_does_not_recurse(gates: Gates) -> None:
    run = cl.Runner(gated_chain(1))
    depth = 0
    deepest = 0
    calls = 0

    def waits() -> None:
        nonlocal depth, deepest, calls
        calls += 1
        depth += 1
        deepest = max(deepest, depth)
        try:
            run.wait(0.06)  # blocks in slices without calling the hooks again
        except TimeoutError:
            pass
        finally:
            depth -= 1
        if calls >= 2:
            gates.release.set()

    remove = waiting.add_wait_hook(waits)
    try:
        run.start()
        assert run.wait(10).state == "completed"
    finally:
        remove()
    assert calls >= 2 and deepest == 1


def test_hooks_from_another_thread_still_run() -> None:
    """The re-entrancy guard is per thread: two threads waiting both pump."""
    threads_seen: set[int] = set()
    done = threading.Event()

    def hook() -> None:
        threads_seen.add(threading.get_ident())

    remove = waiting.add_wait_hook(hook)
    try:
        def pump() -> None:
            waiting.run_wait_hooks()
            done.set()

        t = threading.Thread(target=pump)
        t.start()
        t.join(5)
        waiting.run_wait_hooks()
    finally:
        remove()
    assert done.is_set() and len(threads_seen) == 2


# ---------------------------------------------------------------------- structure


def _imports(path: Path) -> set[str]:
    """Every chainlib module ``path`` imports, anywhere in it (TYPE_CHECKING and lazy included)."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1]  # what a relative import starts from (a package's own __init__ too)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("chainlib"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("chainlib"):
                continue
            for alias in node.names:  # ``from P import sub`` imports the module P.sub
                sub = PACKAGE.parent / Path(*f"{module}.{alias.name}".split("."))
                if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
                    found.add(f"{module}.{alias.name}")
                else:  # a name defined in P (its __init__ for a package)
                    found.add(module)
    found.discard(".".join(parts))
    return found


def test_no_import_circles_in_chainlib() -> None:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        graph[name] = _imports(path)
    assert "chainlib.run.runner" in graph[["chainlib.run", "__init__"][0]]
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep):], dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_cluster_never_imports_the_runner() -> None:
    imports = _imports(PACKAGE / "run" / "cluster.py")
    assert "chainlib.run.seam" in imports
    assert not {"chainlib.run.runner", "chainlib.run.engine"} & imports


def test_modules_stay_small() -> None:
    big = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 520}
    assert not big
    runner = len((PACKAGE / "run" / "runner.py").read_text(encoding="utf-8").splitlines())
    assert runner <= 320


# Reads of a leading-underscore name on something other than self/cls, each with its reason.
PRIVATE_READS_ALLOWED = {
    ("cli/progress.py", "os._exit"),  # the documented way to exit at once after a second Ctrl-C
    ("kernel.py", "comm._reply_subshell_for"),  # the ipykernel 7.4 workaround (docs/upstream-…)
    ("kernel.py", "inst._kernel"),  # KernelWatch.get, a classmethod reading its own instance
    ("panel.py", "panel._owns_run"),  # ControlPanel.attach, a classmethod on its own instance
    ("panel.py", "ControlPanel._on_custom_msg"),  # its own method, bound for on_msg
}


def test_no_module_reads_another_objects_private_names() -> None:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            own = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("self", "cls")
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and not own):
                found.add((path.relative_to(PACKAGE).as_posix(), ast.unparse(node)))
    assert found == PRIVATE_READS_ALLOWED
