"""Nodes for the control-server CLI tests, loaded with ``chainlib run --import serve_nodes``."""

from __future__ import annotations

import time

import numpy as np

import chainlib as cl


@cl.node("serve_test.tick")
def tick(ctx: cl.Context, x: int, ms: float = 20.0) -> int:
    """Work for ``ms`` milliseconds, checkpointing (so pause and stop are honoured quickly)."""
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        ctx.checkpoint()
        time.sleep(0.002)
    return x


def tick_chain(items: int = 100_000, ms: float = 20.0) -> cl.Chain:
    chain = cl.Chain("ticks")
    chain.add("serve_test.tick", x=chain.add("core.range", n=items), ms=ms)
    return chain


@cl.node("serve_test.slow_invert", output="image")
def slow_invert(ctx: cl.Context, image: cl.Image, ms: float = 150.0) -> cl.Image:
    """The negative of ``image``, after ``ms`` milliseconds of checkpointed work."""
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        ctx.checkpoint()
        time.sleep(0.002)
    return 255 - np.asarray(image)


def picture_chain(folder: str, ms: float = 150.0) -> cl.Chain:
    """Every picture of ``folder`` (in name order), inverted slowly."""
    chain = cl.Chain("pictures")
    load = chain.add("image.load_folder", folder=folder)
    chain.add("serve_test.slow_invert", image=load["image"], ms=ms)
    return chain
