"""B4 convergence: how long until the front end shows the truth when messages are lost.

A real ipykernel (through jupyter_client) runs a long checkpointing chain with a ControlPanel.
The browser is emulated in Python following widget/state.js's rules (``tests/kernel_harness.py``
``FrontEnd``: adopt only newer snapshots, pull every pull_interval, every fast_pull_interval while
a command is unconfirmed, pull on a seq gap).

(a) FaultInjection(drop_updates=0.5, drop_acks=0.5): half the status updates and half the
    replies are lost. For each of N commands (start, pause/resume pairs, stop, ...): time from the
    click to the front end showing the state the runner reached (running / paused / stopped).
    Goals: median <= 1 s, max <= pull interval (5 s).
(b) Reconnect: the front end stops reading IOPub (everything sent meanwhile is lost), the run is
    paused / resumed kernel-side meanwhile, then the front end reconnects and pulls (state.js pulls
    on reconnect / page visible). Time from reconnect to the truth. Goal <= 1 s.

    python benchmarks/b4_convergence.py [--commands 30] [--reconnects 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.kernel_harness import FrontEnd, KernelHarness

TARGET = {"start": "running", "pause": "paused", "resume": "running", "stop": "stopped"}
PULL_INTERVAL = 5.0


def idle(fe: FrontEnd, seconds: float) -> None:
    """Let the front end live (consume messages, pull when due) for a while."""
    end = time.monotonic() + seconds
    fe.run_until(lambda f: time.monotonic() >= end, seconds + 5, "idle")


def part_a(h: KernelHarness, n: int, rng: random.Random, seed: int) -> list[tuple[str, float]]:
    h.execute("run_a = cl.Runner(slow_chain(1_000_000, 10))\n"
              "panel_a = ControlPanel(run_a, fault_injection=FaultInjection("
              f"drop_updates=0.5, drop_acks=0.5, seed={seed}))\ndisplay(panel_a)")
    fe = FrontEnd(h, h.panel_comm("panel_a"), pull_interval=PULL_INTERVAL)
    cycle = ["start", "pause", "resume", "pause", "resume", "stop"]
    results: list[tuple[str, float]] = []
    for i in range(n):
        command = cycle[i % len(cycle)]
        idle(fe, rng.uniform(0.2, 1.0))
        fe.command(command)
        target = TARGET[command]
        took = fe.run_until(lambda f, t=target: f.state == t, 60, f"{command} -> {target}")
        results.append((command, took))
    h.execute("run_a.stop(); run_a.wait(10); panel_a.close()")
    return results


def part_b(h: KernelHarness, n: int, rng: random.Random) -> list[tuple[str, float]]:
    h.execute("run_b = cl.Runner(slow_chain(1_000_000, 10))\n"
              "panel_b = ControlPanel(run_b)\ndisplay(panel_b)\nrun_b.start()")
    fe = FrontEnd(h, h.panel_comm("panel_b"), pull_interval=PULL_INTERVAL)
    fe.run_until(lambda f: f.state == "running", 10, "running")
    results: list[tuple[str, float]] = []
    for i in range(n):
        command = "pause" if i % 2 == 0 else "resume"
        h.connected = False  # lost connection: messages are thrown away
        h.execute(f"run_b.{command}()\nwhile run_b.status().state == 'pausing': time.sleep(0.01)")
        end = time.monotonic() + rng.uniform(0.5, 2.0)
        h.wait_for(lambda e=end: time.monotonic() >= e, 5, "offline")
        # drain what arrived while offline, then reconnect and pull (as state.js does)
        with h._cond:
            fe.n_updates = len(fe.comm.updates)
            fe.n_customs = len(fe.comm.customs)
            h.connected = True
        t0 = time.monotonic()
        fe.pull()
        target = TARGET[command]
        fe.run_until(lambda f, t=target: f.state == t, 30, f"reconnect -> {target}")
        results.append((command, time.monotonic() - t0))
    h.execute("run_b.stop(); run_b.wait(10); panel_b.close()")
    return results


def report(title: str, rows: list[tuple[str, float]], goals: dict[str, float]) -> None:
    times = [t for _, t in rows]
    print(title)
    print(f"  {'command':<10}{'n':>4}{'median s':>10}{'max s':>8}")
    for command in ("start", "pause", "resume", "stop"):
        ts = [t for c, t in rows if c == command]
        if ts:
            print(f"  {command:<10}{len(ts):>4}{statistics.median(ts):>10.3f}{max(ts):>8.3f}")
    med, mx = statistics.median(times), max(times)
    print(f"  {'all':<10}{len(times):>4}{med:>10.3f}{mx:>8.3f}")
    if "median" in goals:
        print(f"  median {med:.3f} s  goal <= {goals['median']} s  "
              f"{'OK' if med <= goals['median'] else 'MISSED'}")
    print(f"  max    {mx:.3f} s  goal <= {goals['max']} s  "
          f"{'OK' if mx <= goals['max'] else 'MISSED'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=30)
    ap.add_argument("--reconnects", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    h = KernelHarness()
    h.start()
    try:
        a = part_a(h, args.commands, rng, args.seed)
        b = part_b(h, args.reconnects, rng)
    finally:
        h.shutdown()
    report("(a) 50% of status updates and 50% of replies dropped: click -> front end shows truth",
           a, {"median": 1.0, "max": PULL_INTERVAL})
    report("(b) reconnect (IOPub unread 0.5-2 s, state changed meanwhile) -> truth",
           b, {"max": 1.0})


if __name__ == "__main__":
    main()
