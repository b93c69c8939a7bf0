"""B8: chain validation scales linearly (issue 10: 600k nodes in <= 5 s).

For each size N (10k ... 600k nodes) a chain file is written: ``core.range`` feeding a binary
tree of ``core.constant`` nodes (node i links to node (i-1)//2, so many nodes are ready at once,
the worst case for a queue kept in a list) closed by a ``core.collect``. Each size runs in a fresh
process that times ``Chain.load`` (read + parse + build) and ``chain.validate()`` separately and
reports its peak RSS and CPU time (less disturbed than wall time on a shared machine), and a
baseline measured in the same process: reading the file and walking every node's inputs once
("x baseline": load + validate CPU time over it). Prints microseconds per node and the ratio
largest/smallest of the time per node (goal <= 1.5), wall, CPU and against the baseline, and
whether 600k nodes took <= 5 s.

Each size is measured twice: nodes written in a topological order (as ``Chain.save`` writes
every chain built with ``add``: validation takes one pass in the file's order) and shuffled (a
hand-edited file: validation first sorts the graph).

    PYTHONPATH=. python benchmarks/b8_validate_scale.py [--sizes 10000,20000,...]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
import chainlib as cl
path = sys.argv[1]
# baseline, same process and size: read the file and walk every node's inputs once, the least
# any validation does; it shows how fast this machine runs Python at this size right now
b0 = time.process_time()
data = json.loads(open(path, encoding="utf-8").read())
seen = {}
for n in data["nodes"]:
    seen[n["id"]] = [(k, v.get("link", v.get("value"))) for k, v in n["inputs"].items()]
base = time.process_time() - b0
del data, seen
c0, t0 = time.process_time(), time.perf_counter()
chain = cl.Chain.load(path)
t1 = time.perf_counter()
chain.validate()
t2 = time.perf_counter()
cpu = time.process_time() - c0
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would report the parent's
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(json.dumps({"load": t1 - t0, "validate": t2 - t1, "cpu": cpu, "base": base,
                  "peak": peak}))
"""


def chain_file(n: int, path: Path, *, shuffled: bool) -> None:
    nodes = [{"id": "n0", "type": "core.range", "inputs": {"n": {"value": 3}}}]
    for i in range(1, n - 1):
        parent = f"n{(i - 1) // 2}"
        nodes.append({"id": f"n{i}", "type": "core.constant",
                      "inputs": {"value": {"link": {"node": parent}}}})
    nodes.append({"id": "collect", "type": "core.collect",
                  "inputs": {"values": {"link": {"node": f"n{n - 2}"}}}})
    if shuffled:
        random.Random(n).shuffle(nodes)
    path.write_text(json.dumps({"format": "chainlib.chain", "version": 1, "name": f"b8-{n}",
                                "nodes": nodes}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,20000,40000,80000,150000,300000,600000")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per size")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'nodes':>8} {'order':>9} {'file MB':>8} {'load s':>8} {'validate s':>10} "
          f"{'total s':>8} {'us/node':>8} {'cpu us/node':>11} {'x baseline':>10} "
          f"{'peak RSS MB':>11}")
    results = {order: measure(sizes, order == "shuffled", args.timeout, order)
               for order in ("in order", "shuffled")}
    for order, (per_node, cpu_per_node, vs_base) in results.items():
        if len(per_node) >= 2:
            lo, hi = min(per_node), max(per_node)
            print(f"{order}: time per node, {hi} vs {lo} nodes: ratio "
                  f"{per_node[hi] / per_node[lo]:.2f} wall, "
                  f"{cpu_per_node[hi] / cpu_per_node[lo]:.2f} CPU, "
                  f"{vs_base[hi] / vs_base[lo]:.2f} against the baseline (goal <= 1.5)")
        if 600000 in per_node:
            total = per_node[600000] * 600000
            cpu = cpu_per_node[600000] * 600000
            print(f"{order}: 600k nodes: {total:.2f} s wall, {cpu:.2f} s CPU, "
                  f"{vs_base[600000]:.1f}x the baseline (goal <= 5 s): "
                  f"{'met' if total <= 5 else 'NOT met'}")


def measure(sizes: list[int], shuffled: bool, timeout: float, order: str
            ) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
    """Per size: seconds per node (wall, CPU) and CPU time over the baseline."""
    per_node: dict[int, float] = {}
    cpu_per_node: dict[int, float] = {}
    vs_base: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"chain-{n}.json"
            chain_file(n, path, shuffled=shuffled)
            try:
                res = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                                     text=True, check=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"{n:>8} took more than {timeout:.0f} s: stopping here")
                break
            d = json.loads(res.stdout.strip().splitlines()[-1])
            total = d["load"] + d["validate"]
            per_node[n] = total / n
            cpu_per_node[n] = d["cpu"] / n
            vs_base[n] = d["cpu"] / max(d["base"], 1e-9)
            print(f"{n:>8} {order:>9} {path.stat().st_size / 2**20:>8.1f} {d['load']:>8.2f} "
                  f"{d['validate']:>10.2f} {total:>8.2f} {total / n * 1e6:>8.2f} "
                  f"{d['cpu'] / n * 1e6:>11.2f} {vs_base[n]:>10.1f} {d['peak'] / 2**20:>11.0f}",
                  flush=True)
            path.unlink()
    return per_node, cpu_per_node, vs_base


if __name__ == "__main__":
    main()
