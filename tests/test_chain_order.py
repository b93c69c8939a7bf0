"""Validation does not depend on the order nodes were added or written in.

``compile_chain`` takes one pass in the chain's own order when every link points back, and falls
back to a topological sort otherwise: both paths must give the same plan, in an order where
every node comes after its sources, and find the same cycles.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

import chainlib as cl
from chainlib.chain.graph import NodeInstance, OutputRef
from chainlib.chain.validate import Plan, compile_chain
from chainlib.errors import ChainError
from chainlib.nodes import core  # noqa: F401  (registers core.*)


def dag(n: int, rng: random.Random, *, iterator: bool) -> dict[str, NodeInstance]:
    """``n`` constant nodes, each linked to an earlier one (or a root), in topological order;
    with ``iterator``, a range feeds part of the graph and a collector gathers one item node."""
    nodes: dict[str, NodeInstance] = {}
    if iterator:
        nodes["items"] = NodeInstance("items", "core.range", {"n": 3})
    for i in range(n):
        earlier = list(nodes)
        value = OutputRef(rng.choice(earlier)) if earlier and rng.random() < 0.8 else i
        nodes[f"n{i}"] = NodeInstance(f"n{i}", "core.constant", {"value": value})
    if iterator:
        nodes["collect"] = NodeInstance("collect", "core.collect",
                                        {"values": OutputRef("items")})
    return nodes


def chain_of(nodes: dict[str, NodeInstance], order: list[str]) -> cl.Chain:
    chain = cl.Chain("order")
    chain.nodes.update({nid: nodes[nid] for nid in order})
    return chain


def sequence(plan: Plan) -> list[str]:
    it = [plan.iterator] if plan.iterator is not None else []
    return [s.id for s in (*plan.pre, *it, *plan.item, *plan.collectors, *plan.post)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), iterator=st.booleans())
def test_any_order_gives_the_same_plan(n: int, seed: int, iterator: bool) -> None:
    rng = random.Random(seed)
    nodes = dag(n, rng, iterator=iterator)
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    in_order = compile_chain(chain_of(nodes, list(nodes)))
    out_of_order = compile_chain(chain_of(nodes, shuffled))
    assert dict(out_of_order.steps) == dict(in_order.steps)  # links, phases, constants
    for plan in (in_order, out_of_order):
        seen: set[str] = set()
        for nid in sequence(plan):
            assert all(link.node in seen for link in plan.steps[nid].links.values()), nid
            seen.add(nid)
        assert seen == set(nodes)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 30), seed=st.integers(0, 2**32 - 1))
def test_a_cycle_is_found_in_any_order(n: int, seed: int) -> None:
    rng = random.Random(seed)
    nodes = dag(n, rng, iterator=False)
    # close a cycle: walk back from some node to the root it depends on, and link that root
    # to the node (a self-link when the node is a root)
    start = rng.choice(list(nodes))
    root = start
    while isinstance(link := nodes[root].inputs["value"], OutputRef):
        root = link.node
    nodes[root] = NodeInstance(root, "core.constant", {"value": OutputRef(start)})
    ids = list(nodes)
    rng.shuffle(ids)
    try:
        compile_chain(chain_of(nodes, ids))
    except ChainError as exc:
        assert exc.message.startswith("cycle through "), exc.message
        assert root in exc.message.removeprefix("cycle through ").split(", ")
    else:
        raise AssertionError("a cycle was not found")


def test_a_forward_link_to_an_unknown_node_names_it() -> None:
    chain = cl.Chain()
    chain.add("core.constant", id="a", value=cl.OutputRef("b"))
    chain.add("core.constant", id="b", value=cl.OutputRef("ghost"))
    try:
        chain.validate()
    except ChainError as exc:
        assert (exc.node, exc.input) == ("b", "value")
        assert "unknown node 'ghost'" in exc.message
    else:
        raise AssertionError("no error")
