"""A ``chainlib run CHAIN --serve`` process for the control-server tests (``ServedRun``), and
the CLI it is driven with. A module of its own, not a test file: test files are imported as
top-level modules, and importing one from another loads it twice. The ``served`` fixture is in
``conftest.py``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(r"control server for '.*' at (http://\S+)")


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.run([sys.executable, "-m", "chainlib", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


class ServedRun:
    """A ``chainlib run CHAIN --serve 127.0.0.1:0`` process; ``url`` is read from its stderr."""

    def __init__(self, chain: Path, *extra: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chainlib", "run", str(chain), "--import", "serve_nodes",
             "--no-progress", "--serve", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.stderr: list[str] = []
        self._found = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._found.wait(60):
            self.proc.kill()
            raise AssertionError(f"no URL printed; stderr: {''.join(self.stderr)}")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            m = URL_LINE.search(line)
            if m and not self.url:
                self.url = m.group(1)
                self._found.set()
        self._found.set()

    def status(self) -> dict[str, object]:
        proc = cli("status", self.url, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def wait_state(self, state: str, timeout: float = 20) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.status()
            if s["state"] == state:
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"still {s['state']}, expected {state}")
            time.sleep(0.05)
