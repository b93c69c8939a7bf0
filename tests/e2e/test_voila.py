"""The control panel in a Voilà dashboard: Voilà runs the notebook and shows only its outputs.

Real Voilà + Chromium + kernel, clicks by role and name; one Voilà server for the module.
"""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import play_pause_resume_stop

pytestmark = pytest.mark.browser


def test_play_pause_resume_stop_in_voila(voila_notebook: Any) -> None:
    nb = voila_notebook("voila-basics", title="dashboard", n=400, steps=5, delay=0.01)
    assert nb.page.locator(".jp-InputArea, .jp-Cell-inputWrapper:visible").count() == 0, \
        "Voilà shows outputs only"
    assert nb.view()["title"] == "dashboard"
    print("Voilà basics:", play_pause_resume_stop(nb))
