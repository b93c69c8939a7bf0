"""Fixtures for the real-browser end-to-end tests: a throwaway JupyterLab server and Chromium.

- ``lab`` (session): JupyterLab on a free loopback port, with its own root, settings, workspace,
  runtime, data and config folders (the server's default IOPub rate limits are kept, so a
  regression shows as "IOPub message rate exceeded" in ``lab.log_path``). Torn down by killing its
  process group.
- ``nb7`` / ``voila_server`` (module): Notebook 7 (``jupyter notebook``, default kernel settings)
  and Voilà, started the same way (loopback, free port, test token, default limits); their
  ``nb7_notebook`` / ``voila_notebook`` factories open a test notebook as ``notebook`` does.
- ``browser`` (session): Debian's ``/usr/bin/chromium`` driven by the Playwright package (sync API).
- ``page`` (per test): a fresh browser context + page; any JavaScript dialog (alert / confirm /
  prompt) fails the test.
- ``notebook`` (per test): a factory that writes a test notebook (see :mod:`helpers`), opens it in
  JupyterLab, waits for its kernel, runs all cells and returns a :class:`helpers.NotebookSession`.

Everything here is skipped when Chromium or the server it needs is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    TOKEN,
    LabServer,
    Notebook7Session,
    NotebookSession,
    VoilaSession,
    build_notebook,
    http_json,
    write_notebook,
)

CHROMIUM = os.environ.get("CHAINLIB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# JupyterLab >= 4.4 sends comm messages to kernel subshells ("perCommTarget" by default). With
# ipykernel 7.4 a page reload races a delete_subshell_request against a create_subshell_request,
# and the reloaded page's comm messages then land on the deleted subshell: the kernel logs
# "Cannot handle comm_msg ...: Unknown subshell_id" and drops them (clicks, pulls never answered).
# The tests run with comms over subshells disabled; test_reload_with_comm_subshells (xfail, not
# strict) keeps the default setting to track the upstream problem.
KERNEL_SETTINGS = "@jupyterlab/apputils-extension/kernels-settings.jupyterlab-settings"


def _write_settings(settings_dir: Path, subshells: str | None = "disabled") -> None:
    """User settings: no news / update toasts (they cover the page and steal clicks)."""
    files: dict[str, dict[str, Any]] = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        # keep the page quiet and predictable
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    }
    if subshells is not None:
        files[KERNEL_SETTINGS] = {"commsOverSubshells": subshells}
    for rel, content in files.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


def _start_server(base: Path, app: str, options: Callable[[int, Path], list[str]],
                  ready_path: str, settings: Path) -> Iterator[LabServer]:
    """Run ``app`` (``jupyter-lab``, ``jupyter-notebook``, ``voila``) on a free loopback port with
    the test token and its own runtime / data / config folders, until the generator is closed.
    The server's limits (IOPub rate limits included) are left at their defaults."""
    exe = Path(sys.executable).parent / app
    if not exe.exists():
        pytest.skip(f"{app} is not installed in this environment")
    root = base / "root"
    for d in (root, settings, base / "runtime", base / "data", base / "config", base / "ipython"):
        d.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = dict(os.environ)
    env.update(
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        IPYTHONDIR=str(base / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("JUPYTER_TOKEN", None)
    log_path = base / "server.log"
    cmd = [str(exe), *options(port, root)]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and app != "voila":
        cmd.append("--allow-root")
    log = open(log_path, "wb")  # noqa: SIM115 (closed at teardown)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(root),
                            start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", root, log_path, proc, settings)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{app} exited ({proc.returncode}):\n{server.log_text()}")
            try:
                http_json(server, "GET", ready_path, timeout=2, raw=True)
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{app} never answered:\n{server.log_text()}") from exc
                time.sleep(0.2)
        yield server
    finally:
        if app != "voila":
            for kernel in _safe(lambda: http_json(server, "GET", "/api/sessions"), []):
                _safe(lambda k=kernel: http_json(server, "DELETE", f"/api/sessions/{k['id']}"),
                      None)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def _jupyter_options(port: int, root: Path) -> list[str]:
    return [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
    ]


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    base = tmp_path_factory.mktemp("lab")
    settings = base / "settings"
    settings.mkdir()
    _write_settings(settings)
    def lab_options(port: int, root: Path) -> list[str]:
        return [*_jupyter_options(port, root), f"--LabApp.user_settings_dir={settings}",
                "--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                f"--LabApp.workspaces_dir={base / 'workspaces'}",
                "--LabApp.extension_manager=readonly"]

    (base / "workspaces").mkdir()
    yield from _start_server(base, "jupyter-lab", lab_options, "/api/status", settings)


@pytest.fixture(scope="module")
def nb7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """Notebook 7 (``jupyter notebook``), one per test module, settings as JupyterLab's."""
    pytest.importorskip("notebook")
    base = tmp_path_factory.mktemp("nb7")
    settings = base / "settings"
    settings.mkdir()
    _write_settings(settings, subshells=None)  # the Notebook 7 default
    yield from _start_server(base, "jupyter-notebook", _jupyter_options,
                             "/api/status", settings)


@pytest.fixture(scope="module")
def voila_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """Voilà serving its root folder (``/voila/render/<name>.ipynb``), one per test module."""
    pytest.importorskip("voila")
    base = tmp_path_factory.mktemp("voila")

    def options(port: int, root: Path) -> list[str]:
        return ["--no-browser", "--Voila.ip=127.0.0.1", f"--Voila.port={port}",
                "--Voila.port_retries=0", f"--Voila.token={TOKEN}", f"--Voila.root_dir={root}",
                "--VoilaConfiguration.show_tracebacks=True"]

    yield from _start_server(base, "voila", options, "/", base / "settings")


def _safe(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except Exception:
        return default


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(20_000)
    pg = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "beforeunload":  # "leave page?" on reload: not injected script
            dialog.accept()
            return
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    pg.dialogs = dialogs  # type: ignore[attr-defined]
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}")
          if m.type in ("error", "warning") else None)
    pg.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    pg.console_log = console  # type: ignore[attr-defined]
    subshell_requests: list[str] = []  # create_subshell_request frames the page sent

    def on_websocket(ws: Any) -> None:
        def sent(payload: Any) -> None:
            data = payload if isinstance(payload, (bytes, bytearray)) else payload.encode()
            if b"create_subshell_request" in data:
                subshell_requests.append(ws.url)

        ws.on("framesent", sent)

    pg.on("websocket", on_websocket)
    pg.subshell_requests = subshell_requests  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        if console:  # shown by pytest for a failing test
            print("browser console:\n  " + "\n  ".join(console[-50:]))
        context.close()
    assert not dialogs, f"a JavaScript dialog opened (injected script ran?): {dialogs}"


@pytest.fixture
def notebook(lab: LabServer, page: Any, tmp_path: Path) -> Iterator[Callable[..., NotebookSession]]:
    sessions: list[NotebookSession] = []

    settings_file = lab.settings_dir / KERNEL_SETTINGS
    original = settings_file.read_text()

    def open_notebook(name: str, comms_over_subshells: str = "disabled",
                      **options: Any) -> NotebookSession:
        settings_file.write_text(json.dumps({"commsOverSubshells": comms_over_subshells}))
        status_file = tmp_path / f"{name}.status.json"
        nb = build_notebook(status_file=status_file, **options)
        path = lab.root / f"{name}.ipynb"
        import nbformat

        nbformat.write(nb, path)
        session = NotebookSession(lab, page, path, status_file, tmp_path)
        sessions.append(session)
        session.open()
        session.run_all()
        return session

    yield open_notebook
    for s in sessions:
        s.shutdown()
    settings_file.write_text(original)


def _sessions(server: LabServer, page: Any, tmp_path: Path,
              kind: type[NotebookSession]) -> Iterator[Callable[..., NotebookSession]]:
    sessions: list[NotebookSession] = []

    def open_notebook(name: str, **options: Any) -> NotebookSession:
        path, status_file = write_notebook(server, tmp_path, name, **options)
        session = kind(server, page, path, status_file, tmp_path)
        sessions.append(session)
        session.open()
        session.run_all()
        return session

    yield open_notebook
    for s in sessions:
        s.shutdown()


@pytest.fixture
def nb7_notebook(nb7: LabServer, page: Any,
                 tmp_path: Path) -> Iterator[Callable[..., NotebookSession]]:
    """Like ``notebook``, in Notebook 7 (its default kernel settings)."""
    yield from _sessions(nb7, page, tmp_path, Notebook7Session)


@pytest.fixture
def voila_notebook(voila_server: LabServer, page: Any,
                   tmp_path: Path) -> Iterator[Callable[..., NotebookSession]]:
    """Like ``notebook``, rendered as a Voilà dashboard (every cell runs as the page loads)."""
    yield from _sessions(voila_server, page, tmp_path, VoilaSession)
