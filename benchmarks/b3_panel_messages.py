"""B3 panel messages: what the browser receives while a run floods the runner with events.

A real ipykernel (through jupyter_client; this script plays the browser) runs a node that calls
``ctx.progress`` about 100,000 times a second for ``--seconds`` s, with a ControlPanel displayed.
Counted per second on the wire: the panel's trait-update messages (status / heartbeat), and every
IOPub message of the kernel. Goals: steady state <= 10 panel messages/s; the final state arrives
as a trait update; the kernel's IOPub rate stays far under the Jupyter server's 1000 msg/s limit
(averaged over 3 s), above which the server silently drops kernel -> browser messages.

    python benchmarks/b3_panel_messages.py [--seconds 10] [--rate 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.kernel_harness import KernelHarness


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=100_000)
    args = ap.parse_args()

    h = KernelHarness()
    h.start()
    try:
        h.execute(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                  "import paced  # registers bench.paced")
        h.execute("bench_chain = cl.Chain('b3')\n"
                  "bench_chain.add('bench.paced', x=bench_chain.add('core.range', n=1), "
                  f"rate={args.rate}, seconds={args.seconds})\n"
                  "run = cl.Runner(bench_chain)\npanel = ControlPanel(run)\ndisplay(panel)")
        comm = h.panel_comm("panel")
        n_updates0 = len(h.updates(comm))
        i0 = len(h.iopub)
        seq0 = comm.open_state["status"]["seq"]
        t_start = time.monotonic()
        h.execute("run.start()")
        end_cell = h.execute("await run", wait=False)  # an awaiting cell: the kernel stays free
        h.result(end_cell, timeout=args.seconds + 60)
        t_end = time.monotonic()
        truth = h.truth("run")
        final_seen = False
        try:
            h.wait_for(lambda: any(u.msg["state"].get("status", {}).get("seq") == truth["seq"]
                                   for u in comm.updates[n_updates0:]), 3, "final update")
            final_seen = True
        except AssertionError:
            pass
        t_stop = time.monotonic()
        updates = h.updates(comm)[n_updates0:]
        iopub = h.iopub[i0:]
    finally:
        h.shutdown()

    duration = t_end - t_start
    events = truth["seq"] - seq0
    # steady state: whole seconds strictly inside the run (skip the first and the last)
    buckets: list[int] = []
    iobuckets: list[int] = []
    s = t_start + 1.0
    while s + 1.0 <= t_end - 0.5:
        buckets.append(sum(1 for u in updates if s <= u.at < s + 1.0))
        iobuckets.append(sum(1 for m in iopub if s <= m.at < s + 1.0))
        s += 1.0
    window3 = max((sum(1 for m in iopub if a.at <= m.at < a.at + 3.0) / 3.0 for a in iopub),
                  default=0.0)
    print(f"B3 panel messages — producer {events / duration:,.0f} events/s for {duration:.1f} s "
          f"({events:,} events)")
    print(f"{'measure':<44}{'value':>12}{'goal':>14}")
    if buckets:
        print(f"{'panel update msgs/s (steady, mean)':<44}{statistics.mean(buckets):>12.1f}"
              f"{'<= 10':>14}")
        print(f"{'panel update msgs/s (steady, max)':<44}{max(buckets):>12d}{'<= 10':>14}")
    print(f"{'panel update msgs total':<44}{len(updates):>12d}")
    print(f"{'final state arrived as a trait update':<44}{'yes' if final_seen else 'NO':>12}"
          f"{'yes':>14}")
    print(f"{'final state':<44}{truth['state']:>12}")
    if iobuckets:
        print(f"{'kernel IOPub msgs/s (steady, mean)':<44}{statistics.mean(iobuckets):>12.1f}"
              f"{'<< 1000':>14}")
    print(f"{'kernel IOPub msgs/s (worst 3 s average)':<44}{window3:>12.1f}{'<< 1000':>14}")
    print(f"{'(measured over)':<44}{t_stop - t_start:>11.1f}s")


if __name__ == "__main__":
    main()
