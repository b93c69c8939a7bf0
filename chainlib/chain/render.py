"""Drawing a chain as a graph: Graphviz DOT source, and SVG (``Chain._repr_svg_``, ``chainlib
validate --svg``).

SVG comes from Graphviz's ``dot`` when it is installed (it lays graphs out well), otherwise from a
small layered layout drawn here, so a notebook always shows a picture. Nothing here validates: an
invalid chain (unknown node type, link to a missing node, even a cycle) is drawn as it is, with the
fault marked, because a picture helps most while a chain is still wrong.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from typing import Any, Literal

from .graph import Graph, NodeInstance

__all__ = ["Engine", "NodeBox", "describe", "to_dot", "to_svg"]

log = logging.getLogger(__name__)

Engine = Literal["auto", "dot", "plain"]
DOT_TIMEOUT_S = 10.0
MAX_CONSTANTS = 3  # constant inputs listed in a node's box; more are summarised as "+N more"
MAX_TEXT = 28  # characters of a constant's value shown before "…"
MAX_WIDTH_IN, MAX_HEIGHT_IN = 9, 8  # drawings fit a notebook's output area (about 900 px)
MAX_WIDTH_PX = MAX_WIDTH_IN * 96

# Fill colours by role: iterator blue, collector amber, per-item green, once-only grey, unknown red.
FILL = {
    "iterator": "#dbeafe",
    "collector": "#fde68a",
    "item": "#dcfce7",
    "once": "#f3f4f6",
    "unknown": "#fecaca",
}
STROKE = {
    "iterator": "#1d4ed8",
    "collector": "#b45309",
    "item": "#15803d",
    "once": "#4b5563",
    "unknown": "#b91c1c",
}
ROLE_TEXT = {
    "iterator": "iterator: one item each",
    "collector": "collector: gathers items",
    "item": "runs per item",
    "once": "runs once",
    "unknown": "unknown node type",
}


@dataclass(frozen=True)
class NodeBox:
    """What a drawing shows of one node instance."""

    id: str
    type: str
    role: Literal["iterator", "collector", "item", "once", "unknown"]
    constants: tuple[str, ...]

    @property
    def lines(self) -> tuple[str, ...]:
        return (self.id, self.type, f"[{ROLE_TEXT[self.role]}]", *self.constants)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _constants(inst: NodeInstance) -> tuple[str, ...]:
    linked = {name for name, _ in inst.links()}
    consts = [(k, v) for k, v in inst.inputs.items() if k not in linked]
    shown = tuple(f"{k} = {_short(v)}" for k, v in consts[:MAX_CONSTANTS])
    extra = len(consts) - MAX_CONSTANTS
    return (*shown, f"+{extra} more") if extra > 0 else shown


def describe(chain: Graph) -> tuple[list[NodeBox], list[Edge]]:
    """The boxes and edges a drawing of ``chain`` shows.

    Per-item nodes are those fed (directly or not) by the iterator without a collector in between;
    links to nodes missing from the chain are left out (their node is drawn, and ``validate()``
    names the fault).
    """
    labels: dict[tuple[str, str], list[str]] = {}  # one edge per pair of nodes, labels joined
    for inst in chain.nodes.values():
        for name, ref in inst.links():
            if ref.node in chain.nodes:
                same = ref.output is None or ref.output == name
                label = name if same else f"{ref.output} → {name}"
                labels.setdefault((ref.node, inst.id), []).append(label)
    edges = [Edge(src, dst, ", ".join(names)) for (src, dst), names in labels.items()]
    children: dict[str, list[str]] = {nid: [] for nid in chain.nodes}
    for e in edges:
        children[e.source].append(e.target)

    kinds = {nid: (inst.spec.kind if inst.spec is not None else None)
             for nid, inst in chain.nodes.items()}
    per_item: set[str] = set()
    stack = [nid for nid, kind in kinds.items() if kind == "iterator"]
    while stack:  # a set of visited nodes makes this terminate on cyclic chains too
        for child in children[stack.pop()]:
            if child not in per_item and kinds[child] not in ("iterator", "collector"):
                per_item.add(child)
                stack.append(child)

    boxes = []
    for nid, inst in chain.nodes.items():
        kind = kinds[nid]
        role: Literal["iterator", "collector", "item", "once", "unknown"]
        if kind is None:
            role = "unknown"
        elif kind in ("iterator", "collector"):
            role = kind
        else:
            role = "item" if nid in per_item else "once"
        boxes.append(NodeBox(nid, inst.type, role, _constants(inst)))
    return boxes, edges


# -- Graphviz ----------------------------------------------------------------------------------


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(chain: Graph) -> str:
    """Graphviz DOT source for ``chain`` (left to right; iterator and collectors coloured)."""
    boxes, edges = describe(chain)
    lines = [
        f"digraph {_dot_str(chain.name)} {{",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=11, nodesep=0.3, ranksep=0.45,'
        f' bgcolor=transparent, size="{MAX_WIDTH_IN},{MAX_HEIGHT_IN}",'  # scale big ones down
        f" label={_dot_str(chain.name)}, labelloc=t];",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#6b7280"];',
    ]
    for b in boxes:
        # \l left-justifies each line in Graphviz labels
        label = "".join(line.replace("\\", "\\\\").replace('"', '\\"') + "\\l"
                        for line in b.lines)
        penwidth = 2 if b.role in ("iterator", "collector", "unknown") else 1
        lines.append(f'  {_dot_str(b.id)} [label="{label}", fillcolor="{FILL[b.role]}", '
                     f'color="{STROKE[b.role]}", penwidth={penwidth}];')
    for e in edges:
        lines.append(f"  {_dot_str(e.source)} -> {_dot_str(e.target)} [label={_dot_str(e.label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _svg_with_dot(dot_source: str) -> str | None:
    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "-Tsvg"], input=dot_source.encode(), capture_output=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("graphviz dot failed (%s); drawing the plain fallback", exc)
        return None
    if proc.returncode != 0:
        log.debug("graphviz dot exited %s: %s", proc.returncode, proc.stderr[-500:])
        return None
    svg = proc.stdout.decode("utf-8", "replace")
    start = svg.find("<svg")  # drop the XML prolog and DOCTYPE: the SVG is embedded in HTML
    return svg[start:] if start >= 0 else None


# -- plain fallback ----------------------------------------------------------------------------

BOX_W, LINE_H, PAD, COL_GAP, ROW_GAP, TITLE_H, LANE_H = 190, 14, 8, 70, 18, 26, 16


def _layers(ids: Iterable[str], edges: Iterable[Edge]) -> dict[str, int]:
    """Column of each node: its longest path from a source (nodes on a cycle go last)."""
    ids = list(ids)
    parents: dict[str, list[str]] = {nid: [] for nid in ids}
    indegree = dict.fromkeys(ids, 0)
    children: dict[str, list[str]] = {nid: [] for nid in ids}
    for e in edges:
        parents[e.target].append(e.source)
        children[e.source].append(e.target)
        indegree[e.target] += 1
    layer: dict[str, int] = {}
    ready = [nid for nid in ids if indegree[nid] == 0]
    while ready:
        nid = ready.pop(0)
        layer[nid] = max((layer[p] + 1 for p in parents[nid] if p in layer), default=0)
        for child in children[nid]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    last = max(layer.values(), default=-1) + 1
    for nid in ids:
        layer.setdefault(nid, last)
    return layer


def _plain_svg(name: str, boxes: list[NodeBox], edges: list[Edge]) -> str:
    layer = _layers((b.id for b in boxes), edges)
    # Edges that skip a column run along lanes above the boxes instead of through them.
    long_edges = [e for e in edges if layer[e.target] - layer[e.source] != 1]
    lanes_h = LANE_H * len(long_edges)
    columns: dict[int, list[NodeBox]] = {}
    for b in boxes:
        columns.setdefault(layer[b.id], []).append(b)
    heights = {b.id: len(b.lines) * LINE_H + 2 * PAD for b in boxes}
    pos: dict[str, tuple[float, float]] = {}
    col_heights = {c: sum(heights[b.id] for b in col) + ROW_GAP * (len(col) - 1)
                   for c, col in columns.items()}
    total_h = max(col_heights.values(), default=0)
    top = TITLE_H + lanes_h + PAD
    for c, col in columns.items():
        y = top + (total_h - col_heights[c]) / 2
        for b in col:
            pos[b.id] = (PAD + c * (BOX_W + COL_GAP), y)
            y += heights[b.id] + ROW_GAP
    n_cols = max(columns, default=-1) + 1
    width = PAD * 2 + n_cols * BOX_W + max(0, n_cols - 1) * COL_GAP
    height = top + total_h + PAD

    scale = min(1.0, MAX_WIDTH_PX / width) if width else 1.0  # the viewBox keeps the layout
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * scale:.0f}" '
        f'height="{height * scale:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f"<title>{escape(name)}</title>",
        '<defs><marker id="chainlib-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>',
        f'<text x="{width / 2:.0f}" y="{TITLE_H - 8}" text-anchor="middle" '
        f'font-size="13">{escape(name)}</text>',
    ]
    for e in edges:
        (x1, y1), (x2, y2) = pos[e.source], pos[e.target]
        sx, sy = x1 + BOX_W, y1 + heights[e.source] / 2
        tx, ty = x2, y2 + heights[e.target] / 2
        if e in long_edges:
            lane = TITLE_H + LANE_H * long_edges.index(e) + LANE_H / 2
            if tx <= sx:  # a back edge (only on a cycle): leave rightwards, come in from the left
                d = (f"M {sx:.1f} {sy:.1f} C {sx + 40:.1f} {sy:.1f}, {sx + 40:.1f} {lane:.1f}, "
                     f"{sx:.1f} {lane:.1f} L {tx:.1f} {lane:.1f} C {tx - 40:.1f} {lane:.1f}, "
                     f"{tx - 40:.1f} {ty:.1f}, {tx:.1f} {ty:.1f}")
            else:
                d = (f"M {sx:.1f} {sy:.1f} C {sx + 30:.1f} {sy:.1f}, {sx:.1f} {lane:.1f}, "
                     f"{sx + 30:.1f} {lane:.1f} L {tx - 30:.1f} {lane:.1f} C {tx:.1f} {lane:.1f}, "
                     f"{tx - 30:.1f} {ty:.1f}, {tx:.1f} {ty:.1f}")
            lx, ly = (sx + tx) / 2, lane - 3
        else:
            cx = (sx + tx) / 2
            d = f"M {sx:.1f} {sy:.1f} C {cx:.1f} {sy:.1f}, {cx:.1f} {ty:.1f}, {tx:.1f} {ty:.1f}"
            lx, ly = cx, (sy + ty) / 2 - 4
        out.append(f'<path d="{d}" fill="none" stroke="#6b7280" stroke-width="1.2" '
                   'marker-end="url(#chainlib-arrow)"/>')
        out.append(f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle" font-size="9" '
                   f'fill="#374151">{escape(e.label)}</text>')
    for b in boxes:
        x, y = pos[b.id]
        stroke_w = 2 if b.role in ("iterator", "collector", "unknown") else 1
        out.append(f'<g class="chainlib-node chainlib-{b.role}" data-node="{escape(b.id)}">')
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{heights[b.id]}" '
                   f'rx="6" fill="{FILL[b.role]}" stroke="{STROKE[b.role]}" '
                   f'stroke-width="{stroke_w}"/>')
        for i, line in enumerate(b.lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            out.append(f'<text x="{x + PAD:.1f}" y="{y + PAD + (i + 1) * LINE_H - 3:.1f}"'
                       f"{weight}>{escape(_clip(line))}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _clip(text: str, limit: int = 31) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_svg(chain: Graph, *, engine: Engine = "auto") -> str:
    """An SVG drawing of ``chain``.

    ``engine="auto"`` uses Graphviz's ``dot`` when it is on PATH and works, else the plain
    layout; ``"dot"`` requires Graphviz (``RuntimeError`` if it is missing or fails);
    ``"plain"`` never runs it.
    """
    if engine not in ("auto", "dot", "plain"):
        raise ValueError(f"engine must be 'auto', 'dot' or 'plain', not {engine!r}")
    if engine != "plain":
        svg = _svg_with_dot(to_dot(chain))
        if svg is not None:
            return svg
        if engine == "dot":
            raise RuntimeError("Graphviz 'dot' is not installed or failed (apt-get install "
                               "graphviz, brew install graphviz, or conda install graphviz)")
    boxes, edges = describe(chain)
    return _plain_svg(chain.name, boxes, edges)

