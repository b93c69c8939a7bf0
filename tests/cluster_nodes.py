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
