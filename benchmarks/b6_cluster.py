"""B6 cluster: the B5 image batch on a Dask LocalCluster, chainlib vs plain ``client.map``.

N synthetic 1024x768 JPEGs (deterministic, as in B5) -> resize to 512 wide -> gaussian blur
(radius 2) -> save as JPEG, measured in the same run on the same files, each writing into its
own folder:

- local threads: ``Runner(chain, workers=2)`` in this process (the B5 configuration);
- client.map:    the same per-image function (load, resize, blur, save) mapped over the paths
                 with ``client.map`` on a LocalCluster of 2 worker processes (1 thread each);
- chainlib:      ``Runner(chain, cluster=client)`` on the same cluster.

The figure of merit is chainlib's per-item overhead over ``client.map`` (goal <= 10 %): what the
controls (pause/stop flags polled at checkpoints), batching, status, the manifest and per-node
timings cost on top of the bare engine. Both cluster contenders get a warm-up round first
(workers import numpy/Pillow/chainlib once); the contenders run back to back in every round (order
alternating) and the overhead is the median of the per-round ratios, which resists a machine
shared with other jobs better than comparing bests.

    python benchmarks/b6_cluster.py [--n 200] [--repeat 3] [--data DIR] [--tune POLL_S=0.1 ...]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # b5's helpers (workers inherit it)

from b5_throughput import (
    HEIGHT,
    QUALITY,
    RADIUS,
    TARGET_WIDTH,
    WIDTH,
    build_chain,
    make_inputs,
    process,
)

import chainlib as cl
from chainlib.run import cluster as cluster_mod

GOAL = 0.10


def run_local(paths: list[Path], out: Path, client: Any) -> None:
    runner = cl.Runner(build_chain(paths[0].parent, out), workers=2)
    runner.start()
    check("local threads", runner.wait(), len(paths))


def run_map(paths: list[Path], out: Path, client: Any) -> None:
    futures = client.map(process, paths, out=out, pure=False)
    client.gather(futures)


def run_chainlib(paths: list[Path], out: Path, client: Any) -> None:
    runner = cl.Runner(build_chain(paths[0].parent, out), cluster=client)
    runner.start()
    check("chainlib", runner.wait(), len(paths))


def set_tuning(values: dict[str, float]) -> None:
    """Override ``chainlib.run.cluster``'s tuning constants (here, and on workers by client.run)."""
    for key, value in values.items():
        setattr(cluster_mod, key, type(getattr(cluster_mod, key))(value))


def check(name: str, status: cl.Status, n: int) -> None:
    if status.state != "completed" or status.done != n:
        raise RuntimeError(f"{name} run did not complete: {status} {status.failures[:3]}")


CONTENDERS: dict[str, Callable[[list[Path], Path, Any], None]] = {
    "local threads": run_local,
    "client.map": run_map,
    "chainlib": run_chainlib,
}


def measure(name: str, paths: list[Path], out: Path, client: Any) -> float:
    """Items/s of one run into a fresh output folder."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    CONTENDERS[name](paths, out, client)
    elapsed = time.perf_counter() - t0
    written = len(list(out.glob("*.jpg")))
    if written != len(paths):
        raise RuntimeError(f"{name}: wrote {written} of {len(paths)} files")
    shutil.rmtree(out, ignore_errors=True)
    return len(paths) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds (order alternates; the overhead is the median of the "
                        "per-round ratios)")
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the generated inputs here (default: a temporary folder)")
    parser.add_argument("--tune", action="append", default=[], metavar="NAME=VALUE",
                        help="override a tuning constant of chainlib.run.cluster for this run "
                        "(TARGET_TASK_S, MAX_BATCH, POLL_S), e.g. --tune POLL_S=0.2")
    args = parser.parse_args(argv)
    tuning = {k.strip(): float(v) for k, v in (t.split("=", 1) for t in args.tune)}

    from distributed import Client, LocalCluster

    tmp = Path(tempfile.mkdtemp(prefix="chainlib-b6-"))
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        src = args.data or tmp / "in"
        t0 = time.perf_counter()
        paths = make_inputs(src, args.n)
        print(f"B6 cluster: {args.n} JPEGs {WIDTH}x{HEIGHT} -> resize {TARGET_WIDTH} wide -> "
              f"gaussian blur r={RADIUS:g} -> save JPEG q{QUALITY}; LocalCluster 2 processes x 1 "
              f"thread, {os.cpu_count()} CPUs, Python {sys.version.split()[0]} (inputs ready in "
              f"{time.perf_counter() - t0:.1f} s)")
        if tuning:
            set_tuning(tuning)
            client.run(set_tuning, tuning)
        print(f"  cluster settings: TARGET_TASK_S={cluster_mod.TARGET_TASK_S} "
              f"MAX_BATCH={cluster_mod.MAX_BATCH} POLL_S={cluster_mod.POLL_S}")
        warm = make_inputs(tmp / "warm-in", min(8, args.n))  # a folder of its own (chains
        for name in ("client.map", "chainlib"):  # load whole folders)
            measure(name, warm, tmp / "warm", client)
        rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        ratios: list[float] = []  # chainlib / client.map time per item, paired within a round
        for r in range(args.repeat):
            order = list(CONTENDERS) if r % 2 == 0 else list(reversed(CONTENDERS))
            for name in order:
                rate = measure(name, paths, tmp / f"out-{name.replace(' ', '_')}", client)
                rates[name].append(rate)
            ratios.append(rates["client.map"][-1] / rates["chainlib"][-1])
            print(f"    round {r + 1}: " + ", ".join(
                f"{name} {rates[name][-1]:.1f}" for name in CONTENDERS) + " items/s")
        print("  best of rounds:")
        for name, got in rates.items():
            print(f"  {name:13s} {max(got):7.1f} items/s  ({1000 / max(got):6.2f} ms per item)")
        overhead = statistics.median(ratios) - 1
        ok = overhead <= GOAL
        print(f"  chainlib overhead over client.map: {overhead * 100:+.1f} % per item (median of "
              f"{len(ratios)} paired rounds; best-of-rounds figure "
              f"{(max(rates['client.map']) / max(rates['chainlib']) - 1) * 100:+.1f} %)  "
              f"(goal <= {GOAL * 100:.0f} %)  {'PASS' if ok else 'FAIL'}")
        print(f"  chainlib cluster / local threads: "
              f"{max(rates['chainlib']) / max(rates['local threads']):.2f}x"
              f"  (reference: processes vs threads for this work here)")
        return 0 if ok else 1
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
