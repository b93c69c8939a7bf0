"""Chains drawn as graphs (Graphviz DOT, SVG with ``dot`` or the plain fallback)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

import chainlib as cl
from chainlib.chain import render
from chainlib.demo import build_demo_chain

SVG = "{http://www.w3.org/2000/svg}"


@cl.node("t.render_add")
def add(x: int, y: int = 1) -> int:
    return x + y


def demo_chain() -> cl.Chain:
    return build_demo_chain("/samples", "/out")


def node_groups(svg: str) -> dict[str, str]:
    """``{node id: role}`` from the plain SVG's node groups (the SVG must be well-formed XML)."""
    root = ET.fromstring(svg)
    groups = {}
    for g in root.iter(f"{SVG}g"):
        classes = g.get("class", "").split()
        if "chainlib-node" in classes:
            role = next(c.removeprefix("chainlib-") for c in classes if c != "chainlib-node")
            groups[g.get("data-node", "")] = role
    return groups


def test_roles_mark_iterator_collector_and_per_item_nodes() -> None:
    boxes, edges = render.describe(demo_chain())
    roles = {b.id: b.role for b in boxes}
    assert roles == {
        "load_folder": "iterator",
        "resize": "item",
        "caption": "item",
        "save": "item",
        "contact_sheet": "collector",
        "save_sheet": "once",
    }
    pairs = {(e.source, e.target): e.label for e in edges}
    # two links between the same pair of nodes are drawn as one edge naming both inputs
    assert pairs[("load_folder", "save")] == "name, subfolder"
    assert pairs[("load_folder", "caption")] == "path → text"
    assert pairs[("caption", "contact_sheet")] == "images"


def test_plain_svg_draws_every_node_and_edge() -> None:
    chain = demo_chain()
    svg = render.to_svg(chain, engine="plain")
    assert node_groups(svg) == {b.id: b.role for b in render.describe(chain)[0]}
    root = ET.fromstring(svg)
    arrows = [p for p in root.iter(f"{SVG}path") if p.get("marker-end")]
    assert len(arrows) == len(render.describe(chain)[1])
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "image.contact_sheet" in texts and "[iterator: one item each]" in texts
    assert "width = 256" in texts


def test_untrusted_text_is_escaped_in_svg_and_dot() -> None:
    chain = cl.Chain('evil <script>alert("x")</script>')
    chain.add("t.render_add", id="a", x="</text><script>alert(1)</script>")
    chain.add("t.render_add", id="b", x='"q" \\l')
    svg = render.to_svg(chain, engine="plain")
    ET.fromstring(svg)  # still well-formed
    assert "<script" not in svg
    dot = render.to_dot(chain)
    assert 'x = \'\\"q\\" \\\\\\\\l\'' in dot  # quotes and backslashes escaped
    assert 'digraph "evil <script>alert(\\"x\\")</script>"' in dot
    if shutil.which("dot"):  # Graphviz accepts it, and its SVG is well-formed and escaped
        svg = render.to_svg(chain, engine="dot")
        ET.fromstring(svg)
        assert "<script" not in svg


def test_unknown_types_broken_links_and_cycles_are_drawn_not_raised() -> None:
    chain = cl.Chain("broken")
    chain.add("no.such_type", id="ghost", x=1)
    a = chain.add("t.render_add", id="a", x=0)
    b = chain.add("t.render_add", id="b", x=a)
    chain.set("a", "x", b)  # a cycle: a -> b -> a
    chain.add("t.render_add", id="c", x=cl.OutputRef("missing"))
    svg = render.to_svg(chain, engine="plain")
    assert node_groups(svg) == {"ghost": "unknown", "a": "once", "b": "once", "c": "once"}
    with pytest.raises(cl.ChainError):
        chain.validate()


def test_chain_draws_itself_in_notebooks() -> None:
    chain = demo_chain()
    assert chain._repr_svg_() == render.to_svg(chain)


def test_empty_chain() -> None:
    svg = render.to_svg(cl.Chain("empty"), engine="plain")
    assert node_groups(svg) == {}


def test_without_graphviz_auto_falls_back_and_dot_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    chain = demo_chain()
    assert render.to_svg(chain) == render.to_svg(chain, engine="plain")
    with pytest.raises(RuntimeError, match="graphviz"):
        render.to_svg(chain, engine="dot")
    with pytest.raises(ValueError, match="engine"):
        render.to_svg(chain, engine="neato")  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="Graphviz is not installed (scripts/test.sh installs it)")
def test_graphviz_layout() -> None:
    chain = demo_chain()
    svg = render.to_svg(chain, engine="dot")
    assert svg.startswith("<svg")
    root = ET.fromstring(svg)
    titles = {t.text for t in root.iter(f"{SVG}title")}
    assert {"load_folder", "contact_sheet", "save_sheet", "load_folder->save"} <= titles
    assert render.FILL["iterator"] in svg and render.FILL["collector"] in svg
    assert render.to_svg(chain) == svg  # auto picks Graphviz when it is there
