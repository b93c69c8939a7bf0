"""The README's promises: the tour snippet runs (twice in a row, as a newcomer would), and its
links survive being rendered on PyPI (no relative links, nothing outside the repository)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chainlib import samples

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOUR_MARKER = "<!-- tour: tests/test_readme.py runs this block twice in a row -->"


def tour_snippet() -> str:
    after = README.split(TOUR_MARKER, 1)[1]
    match = re.match(r"\s*```python\n(.*?)\n```", after, re.S)
    assert match, "the tour marker must be followed by a ```python block"
    return match.group(1)


def test_tour_snippet_runs_twice_in_a_row(tmp_path: Path) -> None:
    script = tmp_path / "tour.py"
    script.write_text(tour_snippet(), encoding="utf-8")
    env = {**os.environ, "CHAINLIB_SAMPLES": str(tmp_path / "samples")}
    for attempt in (1, 2):
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"run {attempt}:\n{proc.stdout}\n{proc.stderr}"
        n = len(samples.names())
        assert f"completed {n} 0 {n}" in proc.stdout, f"run {attempt}: {proc.stdout}"
        assert re.search(r"contact sheet: \(\d+, \d+, [34]\)", proc.stdout)
        assert "failed:" not in proc.stderr and "Traceback" not in proc.stderr
        written = sorted(p.relative_to(tmp_path / "out").as_posix()
                         for p in (tmp_path / "out").rglob("*.png"))
        assert len(written) == n and "more/checker.png" in written


def test_tour_uses_what_it_defines() -> None:
    code = tour_snippet()
    assert '@cl.node("demo.slow")' in code and '"demo.slow"' in code.split("def slow", 1)[1]
    # observers are attached before the run starts, so they see it
    start = code.index("run.start()")
    assert code.index("run.subscribe(") < start and code.index("run.state.observe(") < start


@pytest.mark.parametrize("target", re.findall(r"\]\(([^)\s]+)\)", README))
def test_links_work_on_pypi(target: str) -> None:
    assert target.startswith(("https://", "http://", "#")), \
        f"relative link {target!r} breaks on PyPI: use an absolute URL"
    assert "shared" not in target


def test_readme_mentions_the_extras_and_the_two_commands() -> None:
    for text in ('pip install "chainlib[panel]"', 'pip install "chainlib[dask]"',
                 "bash scripts/demo.sh", "bash scripts/test.sh", "--headless"):
        assert text in README
    assert "../shared" not in README
