"""B2 control latency: how long from a command to the confirmed state.

Nodes checkpoint every 5 ms (workers=2). 200 pause and 200 stop commands are sent at random
moments; the time from the call to the status confirming ``paused`` / ``stopped`` is measured
(woken by ``Runner.watch``, so the measurement adds no polling delay).
Goal: p99 <= 25 ms. The baseline printed next to it is the checkpoint interval itself: no
cooperative engine can confirm faster than the node reaches its next checkpoint.

    python benchmarks/b2_control_latency.py [--commands 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time

import chainlib as cl

CHECKPOINT_S = 0.005


@cl.node("bench.checkpointing")
def checkpointing(ctx: cl.Context, x: int, steps: int = 20) -> int:
    for _ in range(steps):
        time.sleep(CHECKPOINT_S)
        ctx.checkpoint()
    return x


def make_runner() -> cl.Runner:
    chain = cl.Chain()
    chain.add("bench.checkpointing", x=chain.add("core.range", n=1_000_000))
    return cl.Runner(chain, workers=2)


def until(run: cl.Runner, flag: threading.Event, state: str) -> float:
    while True:
        if run.status().state == state:
            return time.perf_counter()
        flag.wait(1.0)
        flag.clear()


def measure_pause(n: int, rng: random.Random) -> list[float]:
    run = make_runner()
    flag = threading.Event()
    run.watch(flag)
    run.start()
    out = []
    for _ in range(n):
        time.sleep(rng.uniform(0.0, 0.03))
        flag.clear()
        t0 = time.perf_counter()
        assert run.pause().accepted
        out.append(until(run, flag, "paused") - t0)
        run.resume()
    run.stop()
    run.wait(10)
    return out


def measure_stop(n: int, rng: random.Random) -> list[float]:
    run = make_runner()
    out = []
    for _ in range(n):
        run.start()
        time.sleep(rng.uniform(0.005, 0.03))
        t0 = time.perf_counter()
        assert run.stop().accepted
        run.wait(10)
        out.append(time.perf_counter() - t0)
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"B2 control latency: nodes checkpoint every {CHECKPOINT_S * 1e3:.0f} ms, workers=2, "
          f"{args.commands} commands each")
    for name, values in (("pause -> paused", measure_pause(args.commands, rng)),
                         ("stop -> stopped", measure_stop(args.commands, rng))):
        p50, p99 = pct(values, 50) * 1e3, pct(values, 99) * 1e3
        print(f"  {name:16} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {max(values) * 1e3:6.2f} ms"
              f"  mean {statistics.mean(values) * 1e3:5.2f} ms  | p99 / checkpoint interval "
              f"{p99 / (CHECKPOINT_S * 1e3):.2f}x  (goal p99 <= 25 ms: "
              f"{'met' if p99 <= 25 else 'MISSED'})")


if __name__ == "__main__":
    main()
