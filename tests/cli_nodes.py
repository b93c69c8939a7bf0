"""Custom nodes for the command-line tests, loaded with ``chainlib run --import cli_nodes``.

``test.slow`` checkpoints while it waits (Ctrl-C stops it gracefully); its delay comes from the
environment so that a resumed run has the same chain fingerprint but runs fast. ``test.stubborn``
never checkpoints (only a second Ctrl-C ends it). Both touch ``$CHAINLIB_TEST_MARKS/<label>`` on
entry so a test can see that items are in flight.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import chainlib as cl


def _mark(label: str) -> None:
    marks = os.environ.get("CHAINLIB_TEST_MARKS")
    if marks:
        Path(marks, label.replace("/", "_")).touch()


@cl.node("test.slow", output="image")
def slow(ctx: cl.Context, image: cl.Image, label: str) -> cl.Image:
    _mark(label)
    deadline = time.monotonic() + float(os.environ.get("CHAINLIB_TEST_DELAY", "0"))
    while time.monotonic() < deadline:
        ctx.checkpoint()
        time.sleep(0.005)
    return image


@cl.node("test.stubborn", output="image")
def stubborn(image: cl.Image, label: str) -> cl.Image:
    _mark(label)
    time.sleep(float(os.environ.get("CHAINLIB_TEST_DELAY", "0")))
    return image


@cl.node("test.wait")
def wait(ctx: cl.Context, x: int) -> int:
    """Checkpoints until the run stops (for a chain that writes no files)."""
    _mark(f"wait-{x}")
    while True:
        ctx.checkpoint()
        time.sleep(0.005)
