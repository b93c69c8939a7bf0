"""Helpers for the video tests that run in a subprocess (``--import video_nodes``).

``test.hold_frames`` passes frames through, but holds (checkpointing, so Ctrl-C and stop work)
every frame whose index is at least ``$CHAINLIB_TEST_HOLD_AT``: a test can SIGKILL the run at a
known point. The environment, not a chain constant, sets it, so the resumed run has the same
chain fingerprint.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import chainlib as cl
from chainlib.api.context import NullContext
from chainlib.nodes.video import save


@cl.node("test.hold_frames", output="image")
def hold_frames(ctx: cl.Context, image: cl.Image, index: int) -> cl.Image:
    hold_at = os.environ.get("CHAINLIB_TEST_HOLD_AT")
    while hold_at is not None and index >= int(hold_at):
        ctx.checkpoint()
        time.sleep(0.01)
    return image


class _HangingContext(NullContext):
    """Touches ``marker`` and hangs at the checkpoint of frame ``hang_at`` (for a SIGKILL)."""

    def __init__(self, hang_at: int, marker: str) -> None:
        super().__init__("save")
        self.calls = 0
        self.hang_at = hang_at
        self.marker = marker

    def checkpoint(self) -> None:
        if self.calls == self.hang_at:
            Path(self.marker).touch()
            time.sleep(3600)
        self.calls += 1


if __name__ == "__main__":  # python video_nodes.py FRAMES_DIR TARGET HANG_AT MARKER
    frames_dir, target, hang_at, marker = sys.argv[1:5]
    save([], target, fps=24.0, frames=frames_dir, ctx=_HangingContext(int(hang_at), marker))
