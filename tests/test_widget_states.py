"""The front end's list of backend run states is the one declared in Python."""

from __future__ import annotations

import json
import re
from pathlib import Path

from chainlib.run.status import RUN_STATES

WIDGET = Path(__file__).resolve().parents[1] / "widget"
DEFINITION = re.compile(r"^export const BACKEND_STATES = Object\.freeze\((\[[^\]]*\])\);", re.M)


def js_backend_states() -> list[str]:
    found = [(path, m) for path in sorted(WIDGET.rglob("*.js")) if "tests" not in path.parts
             for m in DEFINITION.finditer(path.read_text())]
    assert len(found) == 1, f"one `export const BACKEND_STATES = Object.freeze([...]);`: {found}"
    states = json.loads(re.sub(r",\s*\]$", "]", found[0][1].group(1)))  # JS allows a trailing comma
    assert isinstance(states, list)
    return states


def test_widget_backend_states_match_run_states() -> None:
    assert js_backend_states() == list(RUN_STATES)
