"""Custom nodes for the Dask cluster tests (``tests/test_cluster.py``).

They live in an importable module (not in a test function) because Dask pickles node functions
by reference: a worker process imports ``tests.cluster_nodes`` to run them. LocalCluster workers
are spawned processes that inherit the test process's ``sys.path``, so the import works there;
the test fixture checks it up front.

Everything a node must tell the test goes through the file system (the only thing the test
process and the worker processes share): ``marks`` is a folder where a node touches one file per
item on entry, so a test can see which items are (or were) in flight anywhere.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import chainlib as cl


def mark(marks: str, label: str) -> None:
    """Record that the item ``label`` entered a node (one file per execution, named by pid)."""
    if marks:
        Path(marks, f"{label.replace('/', '_')}@{os.getpid()}").touch()


@cl.node("test.cluster_slow", output="image")
def cluster_slow(ctx: cl.Context, image: cl.Image, label: str, seconds: float = 0.1,
                 marks: str = "") -> cl.Image:
    """Pass the image through after ``seconds``, checkpointing every few milliseconds."""
    mark(marks, label)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.checkpoint()
        time.sleep(0.005)
    return image


@cl.node("test.cluster_budget", output="image")
def cluster_budget(ctx: cl.Context, image: cl.Image, label: str, marks: str,
                   seconds: float = 0.2) -> cl.Image:
    """Record (in ``marks``, one JSON file per item) the memory budget this item runs under on
    the worker: its limit and what is held in it, while the item holds its decoded image for
    ``seconds`` (from ``start`` to ``end``)."""
    from chainlib import memory

    item = memory._current.get()
    record = {"pid": os.getpid(), "start": time.monotonic(),
              "limit": item.budget.limit if item is not None else None,
              "used": item.budget.used if item is not None else None}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.checkpoint()
        time.sleep(0.005)
    record["end"] = time.monotonic()
    Path(marks, f"{label.replace('/', '_')}.json").write_text(json.dumps(record))
    return image


@cl.node("test.cluster_workers")
def cluster_workers(ctx: cl.Context, n: int) -> int:
    """``ctx.workers`` where the item runs (what a node divides the cores by)."""
    return ctx.workers
