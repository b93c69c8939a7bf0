"""B7 busy kernel: click -> ack and click -> effect while a cell blocks the kernel's main shell.

A real ipykernel (through jupyter_client; this script plays the browser) runs a long chain with a
ControlPanel displayed. A cell blocks the main shell - ``time.sleep`` (a foreign blocking cell) or
``run.wait()`` (chainlib's own blocking helper) - and Pause / Resume are clicked while it blocks,
sent either on a subshell (JupyterLab >= 4.4 "comms over subshells") or on the main shell (the
setting off, Notebook 7, VS Code). Measured per click: the time to the ack, and the time until a
published snapshot shows the effect (``paused`` / ``running``). Baseline, same run: clicks while
the kernel is idle. Goal: p99 <= 1 s where the transport allows it (subshell: any cell; main shell:
``run.wait()``); a click sent on the main shell during a foreign blocking cell is queued until the
cell ends (the panel says so), so its figures are the cell's remaining time, not a defect.

    python benchmarks/b7_busy_kernel.py [--clicks 40] [--block 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.kernel_harness import Comm, KernelHarness

EFFECT = {"pause": "paused", "resume": "running"}


class Clicker:
    def __init__(self, h: KernelHarness, comm: Comm) -> None:
        self.h, self.comm = h, comm
        self.next_id = 1
        self.command = "pause"

    def click(self, subshell: str | None) -> tuple[float, float]:
        """One Pause or Resume (alternating): (click -> ack, click -> effect published) in s."""
        msg_id, self.next_id = self.next_id, self.next_id + 1
        command, self.command = self.command, ("resume" if self.command == "pause" else "pause")
        t0 = time.monotonic()
        self.h.send_custom(self.comm, {"type": "command", "command": command, "id": msg_id},
                           subshell)
        ack = self.h.reply_to(self.comm, msg_id, timeout=60)
        assert ack["accepted"], ack
        acked = next(r.at for r in self.h.customs(self.comm) if r.msg.get("id") == msg_id) - t0
        target = EFFECT[command]
        self.h.wait_for(lambda: self.h.newest_state(self.comm) == target, 60, target)
        return acked, time.monotonic() - t0


def blocked_clicks(h: KernelHarness, clicker: Clicker, subshell: str | None, cell: str,
                   n: int, block: float, queued: bool) -> list[tuple[float, float]]:
    """``n`` clicks, each sent while ``cell`` (lasting ``block`` s) blocks the main shell."""
    out: list[tuple[float, float]] = []
    rng = random.Random(7)
    while len(out) < n:
        msg_id = h.execute(cell.format(block=block), wait=False)
        h.wait_for(lambda: h.kernel_facts(clicker.comm)[-1].msg["busy"], 10, "busy")
        started = time.monotonic()
        if queued:  # one click per cell, at a random moment: it waits for the cell's end
            time.sleep(rng.uniform(0.1, block * 0.6))
            out.append(clicker.click(subshell))
        else:
            while time.monotonic() - started < block - 1.2 and len(out) < n:
                out.append(clicker.click(subshell))
                time.sleep(rng.uniform(0.0, 0.05))
            assert h.busy(msg_id), "the cell ended during the clicks: raise --block"
        h.result(msg_id, timeout=block + 60)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clicks", type=int, default=40, help="clicks per configuration")
    ap.add_argument("--queued-clicks", type=int, default=8,
                    help="clicks for main shell x sleep (one per blocking cell)")
    ap.add_argument("--block", type=float, default=3.0, help="seconds each blocking cell lasts")
    args = ap.parse_args()

    h = KernelHarness()
    h.start()
    try:
        h.execute("run = cl.Runner(slow_chain(10**6, 10))\npanel = ControlPanel(run)\n"
                  "display(panel)\nrun.start()")
        comm = h.panel_comm("panel")
        subshell = h.create_subshell()
        clicker = Clicker(h, comm)
        results: dict[str, list[tuple[float, float]]] = {}
        results["idle kernel (baseline)"] = [clicker.click(None) for _ in range(args.clicks)]
        sleep = "time.sleep({block})"
        wait = "try:\n    run.wait({block})\nexcept TimeoutError:\n    pass"
        results["subshell + sleep cell"] = blocked_clicks(h, clicker, subshell, sleep,
                                                         args.clicks, args.block, False)
        results["subshell + run.wait()"] = blocked_clicks(h, clicker, subshell, wait,
                                                         args.clicks, args.block, False)
        results["main shell + run.wait()"] = blocked_clicks(h, clicker, None, wait,
                                                           args.clicks, args.block, False)
        results["main shell + sleep cell"] = blocked_clicks(h, clicker, None, sleep,
                                                           args.queued_clicks, args.block, True)
        h.execute("run.stop(); run.wait(30)")
    finally:
        h.shutdown()

    base = statistics.median(a for a, _ in results["idle kernel (baseline)"])
    print(f"B7 busy kernel: blocking cells of {args.block:g} s; ack baseline (idle kernel, "
          f"median) {base * 1000:.1f} ms")
    print("| setup | clicks | ack p50 | ack p99 | effect p50 | effect p99 | ack p99 / baseline "
          "| goal p99 ≤ 1 s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        acks = [a for a, _ in rows]
        effects = [e for _, e in rows]
        if name.startswith("idle"):
            goal = "(baseline)"
        elif name == "main shell + sleep cell":
            goal = "n/a: queued until the cell ends"
        else:
            goal = "met" if max(pct(acks, 0.99), pct(effects, 0.99)) <= 1.0 else "MISSED"
        print(f"| {name} | {len(rows)} | {statistics.median(acks) * 1000:.0f} ms "
              f"| {pct(acks, 0.99) * 1000:.0f} ms | {statistics.median(effects) * 1000:.0f} ms "
              f"| {pct(effects, 0.99) * 1000:.0f} ms | {pct(acks, 0.99) / base:.1f}x | {goal} |")


if __name__ == "__main__":
    main()
