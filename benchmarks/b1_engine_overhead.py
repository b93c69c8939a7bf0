"""B1 engine overhead: 10 trivial nodes over 10,000 items (workers=1).

Prints the microseconds of overhead per node execution over calling the functions directly, and
the same figure for the same graph through ``dask.local.get_sync``, measured in the same run.
Goal: <= 5 us per node execution, and >= 10x below dask's figure.

    python benchmarks/b1_engine_overhead.py [--items 10000] [--nodes 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import chainlib as cl


@cl.node("bench.inc")
def inc(x: int) -> int:
    return x + 1


def direct(items: int, nodes: int) -> float:
    t0 = time.perf_counter()
    for i in range(items):
        x = i
        for _ in range(nodes):
            x = inc(x)
    return time.perf_counter() - t0


def chainlib_run(items: int, nodes: int) -> float:
    chain = cl.Chain()
    prev: Any = chain.add("core.range", n=items)
    for _ in range(nodes):
        prev = chain.add("bench.inc", x=prev)
    run = cl.Runner(chain, workers=1)
    t0 = time.perf_counter()
    run.start()
    status = run.wait()
    elapsed = time.perf_counter() - t0
    assert status.state == "completed" and status.done == items, status
    return elapsed


def dask_run(items: int, nodes: int) -> float:
    from dask.local import get_sync

    graph: dict[Any, Any] = {}
    keys = []
    for i in range(items):
        graph[("n0", i)] = (inc, i)
        for k in range(1, nodes):
            graph[(f"n{k}", i)] = (inc, (f"n{k - 1}", i))
        keys.append((f"n{nodes - 1}", i))
    t0 = time.perf_counter()
    get_sync(graph, keys)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    executions = args.items * args.nodes
    best = {"direct": float("inf"), "chainlib": float("inf"), "dask": float("inf")}
    for _ in range(args.repeat):
        best["direct"] = min(best["direct"], direct(args.items, args.nodes))
        best["chainlib"] = min(best["chainlib"], chainlib_run(args.items, args.nodes))
        best["dask"] = min(best["dask"], dask_run(args.items, args.nodes))
    ours = (best["chainlib"] - best["direct"]) / executions * 1e6
    theirs = (best["dask"] - best["direct"]) / executions * 1e6
    print(f"B1 engine overhead: {args.nodes} trivial nodes x {args.items} items, workers=1, "
          f"best of {args.repeat}")
    print(f"  direct calls      {best['direct']:.3f} s")
    print(f"  chainlib Runner   {best['chainlib']:.3f} s  -> {ours:.2f} us overhead per node "
          f"execution (goal <= 5 us: {'met' if ours <= 5 else 'MISSED'})")
    print(f"  dask get_sync     {best['dask']:.3f} s  -> {theirs:.2f} us per task")
    print(f"  ratio dask/chainlib overhead: {theirs / ours:.1f}x "
          f"(goal >= 10x: {'met' if theirs / ours >= 10 else 'MISSED'})")


if __name__ == "__main__":
    main()
