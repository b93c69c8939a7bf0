"""Helpers for the browser tests: the server handle, REST calls, test notebooks, page driving."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

TOKEN = "chainlib-e2e-token"
FINAL = ("stopped", "completed", "failed")


@dataclass
class LabServer:
    url: str
    root: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    settings_dir: Path

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def http_json(server: LabServer, method: str, path: str, body: Any = None,
              timeout: float = 10, raw: bool = False) -> Any:
    """A REST call with the test token; ``raw``: return the body's bytes (no JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method)
    req.add_header("Authorization", f"token {TOKEN}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body_bytes = resp.read()
    if raw:
        return body_bytes
    return json.loads(body_bytes) if body_bytes else None


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a half-written file, a detached element...
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


# ---------------------------------------------------------------------- test notebooks

IMPORTS = '''
import json, os, threading, time
from typing import Iterator

import chainlib as cl
from chainlib.panel import ControlPanel, FaultInjection
'''

CHAIN = '''
LABELS = {labels!r}


@cl.iterator("e2e.items", length=lambda n: n)
def e2e_items(n: int) -> Iterator[int]:
    for i in range(n):
        yield cl.Item(i, label=LABELS.get(i, f"item-{{i}}"))


@cl.node("e2e.slow")
def e2e_slow(ctx: cl.Context, x: int, steps: int = 10, delay: float = 0.01,
             fail_at: int = -1, message: str = "") -> int:
    for i in range(steps):
        ctx.checkpoint()
        time.sleep(delay)
        ctx.progress((i + 1) / steps)
    if x == fail_at:
        raise ValueError(message)
    return x


chain = cl.Chain({title!r})
items = chain.add("e2e.items", n={n})
chain.add("e2e.slow", x=items, steps={steps}, delay={delay}, fail_at={fail_at}, message={message!r})
run = cl.Runner(chain, workers={workers}, on_error={on_error!r})
'''

STATUS_DUMP = '''
STATUS_FILE = {status_file!r}


def _dump_status() -> None:  # the test reads the truth from this file
    while True:
        tmp = STATUS_FILE + ".tmp"
        status = run.status().to_dict()
        panel = globals().get("panel")
        if panel is not None:
            status["_panel"] = {{"dropped_updates": panel.dropped_updates,
                                "dropped_replies": panel.dropped_replies,
                                "model_id": panel.model_id,
                                "traits": {{"seq": panel.status.get("seq"), "title": panel.title,
                                           "pull_interval": panel.pull_interval}}}}
        with open(tmp, "w") as f:
            json.dump(status, f)
        os.replace(tmp, STATUS_FILE)
        time.sleep(0.1)


threading.Thread(target=_dump_status, daemon=True, name="e2e-status-dump").start()
'''


def build_notebook(*, status_file: Path, title: str = "e2e", n: int = 200, steps: int = 10,
                   delay: float = 0.01, workers: int = 1, on_error: str = "stop",
                   fail_at: int = -1, message: str = "", labels: dict[int, str] | None = None,
                   pull_interval: float = 5.0, faults: tuple[float, float] | None = None,
                   views: int = 1, autostart: bool = False,
                   after: tuple[str, ...] = (), chain: str | None = None) -> nbformat.NotebookNode:
    """The test notebook; ``after``: cells that run once "cells done" is printed; ``chain``:
    code that defines ``run`` (a Runner), instead of the default chain of ``e2e.items`` ->
    ``e2e.slow`` built from the other options."""
    if chain is None:
        chain = CHAIN.format(labels=labels or {}, title=title, n=n, steps=steps, delay=delay,
                             fail_at=fail_at, message=message, workers=workers,
                             on_error=on_error)
    setup = "\n".join([IMPORTS, textwrap.dedent(chain), STATUS_DUMP.format(
        status_file=str(status_file))])
    fault = ("None" if faults is None else
             f"FaultInjection(drop_updates={faults[0]}, drop_acks={faults[1]}, seed=1)")
    panel = f"panel = ControlPanel(run, pull_interval={pull_interval}, fault_injection={fault})"
    cells = [new_code_cell(textwrap.dedent(setup).strip()), new_code_cell(panel)]
    cells += [new_code_cell("display(panel)") for _ in range(views)]
    if autostart:
        cells.append(new_code_cell("print('start:', run.start().accepted)"))
    cells.append(new_code_cell("print('cells done')"))
    cells += [new_code_cell(textwrap.dedent(code).strip()) for code in after]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    return nb


# ---------------------------------------------------------------------- driving the page

class NotebookSession:
    """One test notebook open in JupyterLab, with its kernel and the panel views."""

    def __init__(self, lab: LabServer, page: Any, path: Path, status_file: Path,
                 tmp: Path) -> None:
        self.lab = lab
        self.page = page
        self.path = path
        self.status_file = status_file
        self.tmp = tmp

    @property
    def url(self) -> str:
        return f"{self.lab.url}/lab/tree/{self.path.name}?reset&token={TOKEN}"

    # -- lifecycle
    def open(self) -> None:
        self.page.goto(self.url, wait_until="domcontentloaded")
        self.page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
        self.wait_kernel_idle()

    def session(self) -> dict[str, Any] | None:
        for s in http_json(self.lab, "GET", "/api/sessions"):
            if s.get("path") == self.path.name and s.get("kernel"):
                return s  # type: ignore[no-any-return]
        return None

    def wait_kernel_idle(self, timeout: float = 60) -> None:
        def ready() -> bool:
            s = self.session()
            return bool(s and s["kernel"].get("execution_state") == "idle"
                        and s["kernel"].get("connections", 0) >= 1)

        wait_until(ready, timeout, "the notebook's kernel to be idle and connected", 0.2)

    def run_all(self) -> None:
        page = self.page
        page.locator(".jp-NotebookPanel").first.click(position={"x": 5, "y": 5})
        page.locator("#jp-MainMenu .lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()
        self.panels().first.wait_for(state="visible", timeout=60_000)
        # the last cell prints once every cell has run
        self.page.locator(".jp-OutputArea-output", has_text="cells done").wait_for(
            timeout=60_000)

    def save(self) -> None:
        self.page.locator(".jp-NotebookPanel").first.click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Control+s")
        wait_until(lambda: "application/vnd.jupyter.widget-view+json" in self.path.read_text(),
                   10, "the notebook (with its widget outputs) to be saved")

    def dismiss_dialogs(self) -> int:
        """Close JupyterLab's modal dialogs (e.g. "Server Connection Error" after being offline),
        as a user would; return how many were closed."""
        closed = 0
        dialog = self.page.locator(".jp-Dialog")
        while dialog.count() and closed < 5:
            self.page.keyboard.press("Escape")
            try:
                dialog.first.wait_for(state="detached", timeout=2_000)
            except Exception:
                buttons = dialog.first.locator("button.jp-mod-reject, button.jp-mod-accept")
                if buttons.count():
                    buttons.first.click()
            closed += 1
        return closed

    def shutdown(self) -> None:
        try:
            s = self.session()
            if s:
                http_json(self.lab, "DELETE", f"/api/sessions/{s['id']}")
        except Exception:
            pass

    # -- reading the truth and the DOM
    def truth(self) -> dict[str, Any]:
        return json.loads(self.status_file.read_text())  # type: ignore[no-any-return]

    def panels(self) -> Any:
        return self.page.locator(".chainlib-panel")

    def view(self, i: int = 0) -> dict[str, Any]:
        """The visible facts of panel view ``i`` (one round trip)."""
        return self.panels().nth(i).evaluate(VIEW_JS)  # type: ignore[no-any-return]

    def views(self) -> list[dict[str, Any]]:
        return self.page.evaluate(  # type: ignore[no-any-return]
            f"() => Array.from(document.querySelectorAll('.chainlib-panel')).map({VIEW_JS})")

    def press(self, name: str, i: int = 0) -> float:
        """Click the panel's button named ``name`` ("Play", "Pause", "Resume", "Stop") as a user
        would find it (by role and accessible name); return the time of the click."""
        self.panels().nth(i).get_by_role("button", name=name, exact=True).click()
        return time.monotonic()

    def click(self, button: str, i: int = 0) -> float:
        """Click a panel button (``play``, ``pause``, ``stop``); return the time of the click."""
        loc = self.panels().nth(i).locator(f"[data-testid={button}]")
        loc.click()
        return time.monotonic()

    def wait_view(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str,
                  i: int = 0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            v = self.view(i)
            return v if predicate(v) else None

        return wait_until(check, timeout, what)  # type: ignore[no-any-return]

    def wait_settled(self, state: str, timeout: float,
                     i: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
        """Wait until the kernel's truth and view ``i`` both show ``state``."""
        def both() -> tuple[dict[str, Any], dict[str, Any]] | None:
            t = self.truth()
            v = self.view(i)
            return (v, t) if t["state"] == state and v["state"] == state else None

        result = wait_until(both, timeout, f"view {i} and the kernel to be {state!r}")
        return result  # type: ignore[no-any-return]

    def screenshot(self, name: str, i: int = 0) -> Path:
        path = self.tmp / f"panel-{name}.png"
        self.panels().nth(i).screenshot(path=str(path))
        return path


VIEW_JS = """(el) => {
  const q = (id) => el.querySelector(`[data-testid="${id}"]`);
  const txt = (id) => { const e = q(id); return e ? e.textContent : null; };
  const btn = (id) => {
    const e = q(id);
    return {enabled: !!e && !e.disabled, text: e ? e.textContent : null};
  };
  return {
    state: txt("state"), seq: txt("seq"), done: txt("done"), total: txt("total"),
    failed: txt("failed"), current: txt("current"), notice: txt("notice"),
    connection: txt("connection"), title: txt("title"),
    reason: q("reason") && !q("reason").hidden ? q("reason").textContent : null,
    error: q("error") && !q("error").hidden ? q("error").textContent : null,
    play: btn("play"), pause: btn("pause"), stop: btn("stop"),
    rate_shown: !!q("rate") && !q("rate").hidden, eta_shown: !!q("eta") && !q("eta").hidden,
    running_rows: el.querySelectorAll('tr[data-running]').length, not_run: txt("not-run"),
  };
}"""

EXPECTED_BUTTONS = {
    # ui state -> (play, pause/resume, stop) enabled; pause text
    "idle": (True, False, False, "Pause"),
    "running": (False, True, True, "Pause"),
    "paused": (False, True, True, "Resume"),
    "stopping": (False, False, False, "Pause"),
    "stopped": (True, False, False, "Pause"),
    "completed": (True, False, False, "Pause"),
    "failed": (True, False, False, "Pause"),
    "disconnected": (False, False, True, "Pause"),
    "reconnecting": (False, False, True, "Pause"),
    "ended": (False, False, False, "Pause"),
}


def buttons_of(view: dict[str, Any]) -> tuple[bool, bool, bool, str]:
    return (view["play"]["enabled"], view["pause"]["enabled"], view["stop"]["enabled"],
            view["pause"]["text"])


def assert_buttons(view: dict[str, Any]) -> None:
    expected = EXPECTED_BUTTONS[view["state"]]
    assert buttons_of(view) == expected, f"buttons in state {view['state']!r}: {view}"


def assert_agrees(view: dict[str, Any], truth: dict[str, Any], *, counts: bool = True) -> None:
    """The DOM shows the kernel's truth (state, and for a settled run the counts and seq)."""
    assert view["state"] == truth["state"], (view, truth["state"])
    assert_buttons(view)
    if counts:
        assert view["done"] == str(truth["done"]), (view, truth)
        assert view["total"] == ("?" if truth["total"] is None else str(truth["total"])), view
        assert (view["failed"] or "0") == str(truth["failed"]), (view, truth)


def write_notebook(server: LabServer, tmp: Path, name: str, **options: Any) -> tuple[Path, Path]:
    """Write the test notebook ``name`` into the server's root; return (its path, status file)."""
    status_file = tmp / f"{name}.status.json"
    path = server.root / f"{name}.ipynb"
    nbformat.write(build_notebook(status_file=status_file, **options), path)
    return path, status_file


class Notebook7Session(NotebookSession):
    """A test notebook open in Notebook 7 (``jupyter notebook``): one notebook per page."""

    @property
    def url(self) -> str:
        return f"{self.lab.url}/notebooks/{self.path.name}?token={TOKEN}"

    def run_all(self) -> None:
        page = self.page
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        self.panels().first.wait_for(state="visible", timeout=60_000)
        page.locator(".jp-OutputArea-output", has_text="cells done").wait_for(timeout=60_000)


class VoilaSession(NotebookSession):
    """A test notebook rendered by Voilà: it runs every cell and shows only the outputs."""

    @property
    def url(self) -> str:
        return f"{self.lab.url}/voila/render/{self.path.name}?token={TOKEN}"

    def open(self) -> None:
        self.page.goto(self.url, wait_until="domcontentloaded")

    def run_all(self) -> None:  # Voilà runs the cells as it renders the page
        self.panels().first.wait_for(state="visible", timeout=60_000)
        self.page.locator(".jp-OutputArea-output", has_text="cells done").wait_for(
            timeout=60_000)

    def session(self) -> dict[str, Any] | None:
        return None  # Voilà has no sessions API; its kernel ends with the page

    def shutdown(self) -> None:
        self.page.close()


def play_pause_resume_stop(nb: NotebookSession) -> list[str]:
    """The basics, clicked by role and name: Play, Pause, Resume, Stop, each agreed by the view
    and the kernel (with the same counts once the run does not move). Returns the timings."""
    figures: list[str] = []

    def step(button: str, state: str, timeout: float = 5) -> dict[str, Any]:
        clicked = nb.press(button)
        v, t = nb.wait_settled(state, timeout)
        figures.append(f"{button}->{state} {time.monotonic() - clicked:.2f} s")
        assert_agrees(v, t, counts=state != "running")
        return t

    nb.wait_settled("idle", 15)
    step("Play", "running")
    wait_until(lambda: int(nb.view()["done"]) >= 10, 10, "progress in the panel")
    paused = step("Pause", "paused")
    time.sleep(0.5)  # paused means paused
    assert nb.truth()["done"] == paused["done"] and nb.view()["done"] == str(paused["done"])
    step("Resume", "running")
    wait_until(lambda: nb.truth()["done"] > paused["done"], 5, "the run to move again")
    t = step("Stop", "stopped")
    assert 0 < t["done"] < t["total"], t
    return figures
