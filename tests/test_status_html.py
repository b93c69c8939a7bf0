"""HTML renderings of a status (what a notebook shows for ``run`` or ``run.status()``)."""

from __future__ import annotations

import dataclasses
import html
import re
from html.parser import HTMLParser

import pytest

from chainlib import ErrorInfo, Failure, NodeStatus, Status
from chainlib.run.html import format_duration
from chainlib.run.html import status_html as render_dict

EVIL = '<img src=x onerror="alert(1)">&'


def status_html(st: Status, **kw: object) -> str:
    return render_dict(st.to_dict(), **kw)  # type: ignore[arg-type]


def snapshot(**changes: object) -> Status:
    base = Status(
        run_id="abc123def456", state="running", seq=42, done=7, failed=1, skipped=2, total=20,
        current=("resize",),
        nodes={
            "load_folder": NodeStatus("done", 8, 0, 0.08),
            "resize": NodeStatus("running", 7, 1, 2.1, progress=0.5),
        },
        elapsed=12.5, eta=30.0, rate=0.64, error=None, failures=(), started_at=1.0, taken_at=2.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


class Collect(HTMLParser):
    """Tags, attributes and text of an HTML fragment (to assert on structure, not on markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.text.append(" ")  # cells and blocks read as separate words

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(fragment: str) -> Collect:
    c = Collect()
    c.feed(fragment)
    c.close()
    return c


def text_of(fragment: str) -> str:
    return re.sub(r"\s+", " ", "".join(parse(fragment).text)).strip()


def test_state_counts_rate_eta_and_nodes() -> None:
    page = status_html(snapshot(), title="thumbnails")
    assert snapshot()._repr_html_() == status_html(snapshot())
    text = text_of(page)
    assert "thumbnails" in text and "running" in text and "seq 42" in text
    assert "7 of 20 done (2 already complete), 1 failed" in text
    assert "0.6 items/s" in text and "ETA 30 s" in text and "elapsed 12 s" in text
    assert "working on: resize" in text
    assert "resize running 50% 7 1 300.0 ms 2.1 s" in text  # the node table
    states = [a.get("data-state") for _, a in parse(page).tags if "data-state" in a]
    assert states == ["running"]


def test_unknown_total_and_idle() -> None:
    text = text_of(status_html(snapshot(state="idle", total=None, done=0, failed=0, skipped=0,
                                        eta=None, rate=None, current=(), nodes={})))
    assert "0 of ? done" in text and "ETA —" in text and "— ·" in text


def test_last_error_and_failed_items_are_escaped() -> None:
    st = snapshot(
        state="failed",
        error=ErrorInfo(node=f"n{EVIL}", message=f"boom {EVIL}", traceback="tb", label=EVIL),
        failures=tuple(Failure(i, f"{EVIL}{i}", "resize", f"bad {EVIL}") for i in range(8)),
    )
    page = status_html(st, title=EVIL)
    tags = [t for t, _ in parse(page).tags]
    assert "img" not in tags and "script" not in tags
    assert html.escape(EVIL, quote=True) in page
    text = text_of(page)
    assert f"last error (node n{EVIL}, item {EVIL}): boom {EVIL}" in text
    assert "failed items (newest 5 of 8)" in text
    assert f"{EVIL}7: [resize] bad {EVIL}" in text and f"{EVIL}2:" not in text


@pytest.mark.parametrize("url, shown", [
    ("http://127.0.0.1:8787/status", True),
    ("https://dask.example/status", True),
    ("javascript:alert(1)", False),
    ('http://x/"><script>alert(1)</script>', True),
])
def test_dashboard_link(url: str, shown: bool) -> None:
    page = snapshot(dashboard=url)._repr_html_()
    links = [a for t, a in parse(page).tags if t == "a"]
    if shown:
        assert [a["href"] for a in links] == [url]
        assert "script" not in [t for t, _ in parse(page).tags]
    else:
        assert links == [] and "javascript" not in page


def test_format_duration() -> None:
    assert [format_duration(s) for s in (None, -1, float("nan"), 0.42, 12.4, 185, 7620)] == [
        "—", "—", "—", "0.4 s", "12 s", "3 min 05 s", "2 h 07 min"]


def test_stop_reason_shown() -> None:
    text = text_of(status_html(snapshot(state="stopped", reason="interrupted by the user")))
    assert "stopped: interrupted by the user" in text
