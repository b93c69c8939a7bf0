"""The control panel in Notebook 7 (``jupyter notebook``), real Chromium, clicks by role and name.

One server for the module; the notebook's kernel settings are Notebook 7's defaults.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .helpers import play_pause_resume_stop
from .test_busy_clicks import SLEEP_CELL, acked
from .test_kernel_events import output_shown

pytestmark = pytest.mark.browser


def test_play_pause_resume_stop_in_notebook7(nb7_notebook: Any) -> None:
    nb = nb7_notebook("nb7-basics", n=400, steps=5, delay=0.01)
    print("Notebook 7 basics:", play_pause_resume_stop(nb))


def test_click_during_a_blocking_cell_in_notebook7(nb7_notebook: Any) -> None:
    # Notebook 7.6 (JupyterLab 4.6 inside) sends comms over subshells by default, as Lab does:
    # a click during a blocking cell is handled on the panel's subshell at once.
    nb = nb7_notebook("nb7-busy", n=4000, steps=5, delay=0.01, autostart=True,
                      after=(SLEEP_CELL,))
    assert nb.page.subshell_requests, "Notebook 7's default is meant to use comm subshells"
    output_shown(nb, "block started", 30)
    time.sleep(1.0)  # well into the block
    figures: list[str] = []
    acked(nb, "Pause", "paused", figures, "block done")
    acked(nb, "Stop", "stopped", figures, "block done")
    print("click->ack during time.sleep in Notebook 7:", figures)
