"""Clicks while a cell blocks the kernel's main shell, in JupyterLab (issue 9).

Real JupyterLab + Chromium + kernel; the panel's buttons are found by role and name, as a user
would. "Ack" means the panel shows the target state and the kernel's truth (the file the test
notebook's thread writes every 100 ms) is that state too.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .helpers import NotebookSession, http_json, wait_until
from .test_kernel_events import output_shown

pytestmark = pytest.mark.browser

ACK_S = 1.0  # issue 9: a click during a blocking cell takes effect within 1 s
BLOCK_S = 20.0  # the test ends long before: the cell only has to outlast the clicks

SLEEP_CELL = f"""
    print("block started", flush=True)
    time.sleep({BLOCK_S})
    print("block done", flush=True)
"""
WAIT_CELL = """
    print("waiting", flush=True)
    final = run.wait()
    print("wait returned:", final.state, flush=True)
"""


def acked(nb: NotebookSession, button: str, state: str, figures: list[str],
          blocked_until: str, *, ends_the_cell: bool = False) -> float:
    """Click ``button`` while the cell blocks (it has not printed ``blocked_until``); wait up to
    ``ACK_S`` for the view and the kernel to be ``state``; check the cell still blocks."""
    assert still_blocked(nb, blocked_until), f"the cell ended before the {button} click"
    clicked = nb.press(button)

    def both() -> bool:
        return nb.view()["state"] == state and nb.truth()["state"] == state

    wait_until(both, ACK_S, f"{button} -> {state!r} in the view and the kernel within {ACK_S} s",
               interval=0.02)
    took = time.monotonic() - clicked
    figures.append(f"{button}->{state} {took:.2f} s")
    print(f"{button} -> {state} acknowledged {took:.2f} s after the click")
    if not ends_the_cell:
        assert still_blocked(nb, blocked_until), f"the cell ended before the {button} ack"
    return took


def still_blocked(nb: NotebookSession, done_text: str) -> bool:
    """The cell has not printed ``done_text`` yet (in an output: the cell's source has it)."""
    return nb.page.locator(".jp-OutputArea-output", has_text=done_text).count() == 0


def test_click_during_sleep_cell_with_comm_subshells(notebook: Any) -> None:
    nb = notebook("subshell-sleep", comms_over_subshells="perCommTarget", n=4000, steps=5,
                  delay=0.01, autostart=True, after=(SLEEP_CELL,))
    assert nb.page.subshell_requests, "the default setting sends comms over subshells"
    output_shown(nb, "block started", 30)
    time.sleep(1.0)  # well into the block (the kernel counts a cell as busy after 0.2 s)
    figures: list[str] = []
    acked(nb, "Pause", "paused", figures, "block done")
    assert "busy" not in (nb.view()["notice"] or ""), nb.view()
    acked(nb, "Resume", "running", figures, "block done")
    acked(nb, "Stop", "stopped", figures, "block done")
    print("click->ack during time.sleep, comms over subshells (default):", figures)


def test_click_during_run_wait_without_subshells(notebook: Any) -> None:
    nb = notebook("pump-wait", n=4000, steps=5, delay=0.01, autostart=True, after=(WAIT_CELL,))
    assert nb.page.subshell_requests == [], "comms over subshells are meant to be disabled here"
    output_shown(nb, "waiting", 30)
    time.sleep(1.0)
    figures: list[str] = []
    acked(nb, "Pause", "paused", figures, "wait returned")
    acked(nb, "Resume", "running", figures, "wait returned")
    acked(nb, "Stop", "stopped", figures, "wait returned", ends_the_cell=True)
    output_shown(nb, "wait returned: stopped", 5)
    print("click->ack during run.wait(), comms over subshells disabled:", figures)


def test_interrupt_during_run_wait(notebook: Any, lab: Any) -> None:
    nb = notebook("interrupt", n=4000, steps=5, delay=0.01, autostart=True, after=(WAIT_CELL,))
    output_shown(nb, "waiting", 30)
    wait_until(lambda: nb.truth()["done"] >= 10, 10, "progress")
    nb.page.evaluate(RECORD_STATES)
    session = nb.session()
    assert session is not None
    asked = time.monotonic()
    http_json(lab, "POST", f"/api/kernels/{session['kernel']['id']}/interrupt")
    v = nb.wait_view(lambda v: v["state"] == "stopped", 5, "the interrupted run to show stopped")
    truth = nb.truth()
    print(f"stopped shown {time.monotonic() - asked:.2f} s after the interrupt: "
          f"reason {v['reason']!r}")
    assert truth["state"] == "stopped" and truth["reason"], truth
    assert v["reason"] is not None and truth["reason"] in v["reason"], (v, truth["reason"])
    assert v["error"] is None
    output_shown(nb, "KeyboardInterrupt", 5)  # the cell was interrupted, as the user asked
    seen = nb.page.evaluate("() => window.__chainlibStates")
    assert "failed" not in seen, f"an interrupt is not a failure: {seen}"
    assert nb.truth()["state"] == "stopped"


RECORD_STATES = """() => {
  const badge = document.querySelector('.chainlib-panel [data-testid="state"]');
  window.__chainlibStates = [badge.textContent];
  new MutationObserver(() => window.__chainlibStates.push(badge.textContent))
    .observe(badge, {childList: true, characterData: true, subtree: true});
}"""
