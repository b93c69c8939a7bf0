"""The front end's list of backend run states is the one declared in Python."""

from __future__ import annotations

import json
import re
from pathlib import Path

from chainlib.run.status import RUN_STATES

STATE_JS = Path(__file__).resolve().parents[1] / "widget" / "state.js"


def js_backend_states() -> list[str]:
    text = STATE_JS.read_text()
    m = re.search(r"^export const BACKEND_STATES = Object\.freeze\((\[[^\]]*\])\);", text, re.M)
    assert m, f"{STATE_JS}: `export const BACKEND_STATES = Object.freeze([...]);` not found"
    states = json.loads(re.sub(r",\s*\]$", "]", m.group(1)))  # a trailing comma is fine in JS
    assert isinstance(states, list)
    return states


def test_widget_backend_states_match_run_states() -> None:
    assert js_backend_states() == list(RUN_STATES)
