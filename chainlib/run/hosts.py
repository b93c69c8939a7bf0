"""How many item threads a Dask cluster runs on each machine, so that a node dividing the cores
among the items running at once (``ctx.workers``: ONNX Runtime's intra-op threads) counts every
worker process on its machine, not only its own threads."""

from __future__ import annotations

from collections import Counter
from typing import Any

HostThreads = tuple[tuple[str, int], ...]


def threads_per_host(client: Any) -> HostThreads:
    """``(host, threads)`` over the cluster's workers (a LocalCluster: one host, every thread)."""
    counts: Counter[str] = Counter()
    for address, worker in client.scheduler_info(n_workers=-1).get("workers", {}).items():
        counts[str(worker.get("host") or _host(address))] += int(worker.get("nthreads", 1) or 1)
    return tuple(counts.items())


def local_threads(hosts: HostThreads) -> int:
    """The item threads on the machine of the Dask worker calling (1 outside a worker)."""
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):  # not in a worker
        return 1
    return max(1, dict(hosts).get(_host(address), 1))


def _host(address: str) -> str:
    """``tcp://127.0.0.1:40123`` -> ``127.0.0.1`` (IPv6 in brackets kept as the scheduler says)."""
    rest = address.split("://", 1)[-1]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest
