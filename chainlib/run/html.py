"""HTML renderings of a run's status (``Status._repr_html_``, ``Runner._repr_html_``).

A notebook cell ending in ``run`` or ``run.status()`` shows the state, progress, rate, ETA, the
nodes at work, per-node timings and the last error, without the control panel. Every string that
comes from a run (node ids, item labels, error messages, file names) is escaped with
:func:`html.escape`; only ``http(s)`` links are ever emitted.

It renders the JSON form of a snapshot (``Status.to_dict()``, what the panel receives too), so
that :mod:`.status` can use it without an import circle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["format_duration", "runner_html", "status_html"]

STATE_COLOURS = {
    "idle": "#6b7280",
    "running": "#2563eb",
    "pausing": "#d97706",
    "paused": "#d97706",
    "stopping": "#dc2626",
    "stopped": "#6b7280",
    "completed": "#16a34a",
    "failed": "#dc2626",
}
MAX_FAILURES_SHOWN = 5
MAX_MESSAGE = 300


def format_duration(seconds: float | None) -> str:
    """``"—"``, ``"0.4 s"``, ``"12 s"``, ``"3 min 05 s"``, ``"2 h 07 min"``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _safe_link(url: str) -> str | None:
    return url if url.startswith(("http://", "https://")) else None


def _bar(st: Mapping[str, Any]) -> str:
    total = st["total"]
    if not total:
        return ""
    done = min(1.0, st["done"] / total) * 100
    failed = min(1.0 - done / 100, st["failed"] / total) * 100
    return (
        '<div style="display:flex;height:8px;width:100%;max-width:420px;background:#e5e7eb;'
        'border-radius:4px;overflow:hidden;margin:4px 0">'
        f'<div style="width:{done:.1f}%;background:#16a34a"></div>'
        f'<div style="width:{failed:.1f}%;background:#dc2626"></div></div>'
    )


def _nodes_table(st: Mapping[str, Any]) -> str:
    nodes: Mapping[str, Mapping[str, Any]] = st["nodes"]
    if not nodes:
        return ""
    slowest = max(nodes, key=lambda k: nodes[k]["total_s"])
    rows = []
    for nid, n in nodes.items():
        weight = "font-weight:bold;" if nid == slowest and n["total_s"] > 0 else ""
        progress = "" if n["progress"] is None else f" {n['progress'] * 100:.0f}%"
        rows.append(
            f'<tr style="{weight}"><td style="text-align:left">{_e(nid)}</td>'
            f'<td style="text-align:left">{_e(n["state"])}{_e(progress)}</td>'
            f"<td>{int(n['count'])}</td><td>{int(n['running'])}</td>"
            f"<td>{n['mean_s'] * 1000:.1f} ms</td><td>{_e(format_duration(n['total_s']))}</td></tr>"
        )
    return (
        '<table style="border-collapse:collapse;font-size:12px;margin-top:4px">'
        '<thead><tr><th style="text-align:left">node</th><th style="text-align:left">state</th>'
        "<th>done</th><th>running</th><th>mean</th><th>total</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _error(st: Mapping[str, Any]) -> str:
    parts = []
    error: Mapping[str, Any] | None = st["error"]
    if error is not None:
        where = f"node {error['node']}"
        if error["label"]:
            where += f", item {error['label']}"
        elif error["item"] is not None:
            where += f", item #{error['item']}"
        parts.append(
            '<div style="color:#b91c1c;margin-top:4px"><b>last error</b> '
            f"({_e(where)}): {_e(_clip(str(error['message'])))}</div>"
        )
    item_failures = [f for f in st["failures"] if f["item"] is not None]
    if item_failures:
        shown = item_failures[-MAX_FAILURES_SHOWN:]
        more = len(item_failures) - len(shown)
        items = "".join(
            f"<li>{_e(f['label'] if f['label'] is not None else 'item ' + str(f['item']))}: "
            f"[{_e(f['node'])}] {_e(_clip(str(f['message'])))}</li>"
            for f in shown
        )
        heading = f"failed items (newest {len(shown)} of {len(item_failures)})" if more else \
            "failed items"
        parts.append(f'<details style="margin-top:4px"><summary>{heading}</summary>'
                     f'<ul style="margin:2px 0">{items}</ul></details>')
    return "".join(parts)


def status_html(
    st: Mapping[str, Any], *, title: str | None = None, hints: Sequence[str] = ()
) -> str:
    """An HTML card for one snapshot (``Status.to_dict()``): state, counts, rate, ETA, the Dask
    dashboard link, last error, hints, per-node timings."""
    state = str(st["state"])
    colour = STATE_COLOURS.get(state, "#6b7280")
    total = "?" if st["total"] is None else str(st["total"])
    counts = f"{st['done']} of {total} done"
    if st["skipped"]:
        counts += f" ({st['skipped']} already complete)"
    if st["failed"]:
        counts += f", {st['failed']} failed"
    rate = "—" if not st["rate"] else f"{st['rate']:.1f} items/s"
    head = f"<b>{_e(title)}</b> · " if title else ""
    lines = [
        '<div class="chainlib-status" style="font-family:var(--jp-ui-font-family,sans-serif);'
        'font-size:13px;line-height:1.4;padding:6px 8px;border:1px solid #d1d5db;'
        'border-radius:6px;max-width:640px">',
        f"<div>{head}<span style=\"background:{colour};color:white;border-radius:4px;"
        f'padding:0 6px" data-state="{_e(state)}">{_e(state)}</span> '
        f'<span style="color:#6b7280">run {_e(st["run_id"])} · seq {int(st["seq"])}</span></div>',
        _bar(st),
        f"<div>{_e(counts)} · {_e(rate)} · ETA {_e(format_duration(st['eta']))} · "
        f"elapsed {_e(format_duration(st['elapsed']))}</div>",
    ]
    if st["current"]:
        lines.append(f"<div>working on: {_e(', '.join(map(str, st['current'])))}</div>")
    if st.get("reason") and state in ("stopping", "stopped"):
        lines.append(f"<div>{_e(state)}: {_e(_clip(str(st['reason'])))}</div>")
    dashboard = st.get("dashboard")
    link = _safe_link(dashboard) if isinstance(dashboard, str) else None
    if link:
        lines.append(f'<div>Dask dashboard: <a href="{_e(link)}" target="_blank" '
                     f'rel="noopener">{_e(link)}</a></div>')
    lines.append(_error(st))
    lines.extend(f'<div style="color:#92400e">hint: {_e(h)}</div>' for h in hints)
    lines.append(_nodes_table(st))
    lines.append("</div>")
    return "".join(lines)


def runner_html(runner: Any) -> str:
    """``Runner._repr_html_``: the card of its latest status, titled with the chain's name, with
    the runner's hints. (Typed loosely: this module imports no runner, so no import circle.)"""
    return status_html(runner.status().to_dict(max_failures=20), title=runner.chain.name,
                       hints=runner.hints())
