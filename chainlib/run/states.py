"""The run states and commands, declared once for all of Python.

``RunState`` is the one declaration of the eight state names: every other name here is derived
from it, and mypy checks every state literal written elsewhere against it. The front end keeps its
own list in ``widget/state.js``; a test compares the two.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

RunState = Literal[
    "idle", "running", "pausing", "paused", "stopping", "stopped", "completed", "failed"
]
"""``pausing``/``stopping``: requested, waiting for checkpoints; ``paused``/``stopped``: reached."""

RUN_STATES: Final[tuple[RunState, ...]] = get_args(RunState)
"""All eight states, in the order above."""

ACTIVE_STATES: Final[frozenset[RunState]] = frozenset({"running", "pausing", "paused", "stopping"})
"""A run is in progress (its driver thread is alive)."""

FINISHED_STATES: Final[frozenset[RunState]] = frozenset({"stopped", "completed", "failed"})
"""A run has ended; ``start()`` begins a new one."""

Command = Literal["start", "pause", "resume", "stop"]
COMMANDS: Final[tuple[Command, ...]] = get_args(Command)
