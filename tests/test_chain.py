from __future__ import annotations

from pathlib import Path
from typing import Literal, TypedDict

import pytest

import chainlib as cl
from chainlib.errors import ChainError


class Pair(TypedDict):
    a: int
    b: str


@cl.node("t.add1")
def add1(x: int) -> int:
    return x + 1


@cl.node("t.pair")
def pair(x: int) -> Pair:
    return {"a": x, "b": str(x)}


@cl.node("t.upper")
def upper(s: str, mode: Literal["a", "b"] = "a") -> str:
    return s.upper()


@cl.node("t.scale")
def scale(x: float, factor: float = 2.0) -> float:
    return x * factor


def test_valid_chain_and_auto_ids() -> None:
    chain = cl.Chain()
    a = chain.add("t.add1", x=1)
    b = chain.add("t.add1", x=a)
    assert (a.id, b.id) == ("add1", "add1_2")
    chain.validate()


def test_int_output_feeds_float_input() -> None:
    chain = cl.Chain()
    chain.add("t.scale", x=chain.add("t.add1", x=1))
    chain.validate()


def expect_error(chain: cl.Chain, node: str, input: str | None, text: str) -> None:
    with pytest.raises(ChainError) as info:
        chain.validate()
    err = info.value
    assert err.node == node
    assert err.input == input
    assert text in str(err)
    assert node in str(err)


def test_unknown_node_type() -> None:
    chain = cl.Chain()
    chain.add("t.nope", id="mystery")
    expect_error(chain, "mystery", None, "unknown node type 't.nope'")


def test_unknown_input() -> None:
    chain = cl.Chain()
    chain.add("t.add1", x=1, y=2)
    expect_error(chain, "add1", "y", "unknown input")


def test_missing_input() -> None:
    chain = cl.Chain()
    chain.add("t.add1")
    expect_error(chain, "add1", "x", "missing required input")


def test_constant_type_mismatch() -> None:
    chain = cl.Chain()
    chain.add("t.add1", x="three")
    expect_error(chain, "add1", "x", "expected int")


def test_bool_is_not_an_int() -> None:
    chain = cl.Chain()
    chain.add("t.add1", x=True)
    expect_error(chain, "add1", "x", "expected int")


def test_literal_choice_checked() -> None:
    chain = cl.Chain()
    chain.add("t.upper", s="x", mode="c")
    expect_error(chain, "upper", "mode", "expected 'a' | 'b'")


def test_link_type_mismatch() -> None:
    chain = cl.Chain()
    n = chain.add("t.add1", x=1)
    chain.add("t.upper", s=n)
    expect_error(chain, "upper", "s", "type mismatch: add1.value gives int, input expects str")


def test_multi_output_needs_a_name() -> None:
    chain = cl.Chain()
    p = chain.add("t.pair", x=1)
    chain.add("t.add1", x=p)
    expect_error(chain, "add1", "x", "has 2 outputs (a, b)")


def test_unknown_output() -> None:
    chain = cl.Chain()
    p = chain.add("t.pair", x=1)
    chain.add("t.add1", x=p["c"])
    expect_error(chain, "add1", "x", "no output 'c'")


def test_named_outputs_link() -> None:
    chain = cl.Chain()
    p = chain.add("t.pair", x=1)
    chain.add("t.add1", x=p["a"])
    chain.add("t.upper", s=p["b"])
    chain.validate()


def test_link_to_missing_node() -> None:
    chain = cl.Chain()
    chain.add("t.add1", x=cl.OutputRef("ghost"))
    expect_error(chain, "add1", "x", "unknown node 'ghost'")


def test_cycle() -> None:
    chain = cl.Chain()
    a = chain.add("t.add1", x=1)
    b = chain.add("t.add1", x=a)
    chain.set(a.id, "x", b)
    with pytest.raises(ChainError, match="cycle through add1, add1_2"):
        chain.validate()


def test_two_iterators() -> None:
    chain = cl.Chain()
    chain.add("core.range", n=2)
    chain.add("core.range", n=3)
    expect_error(chain, "range_2", None, "one iterator")


def test_collector_needs_items() -> None:
    chain = cl.Chain()
    chain.add("core.collect", values=chain.add("t.add1", x=1))
    expect_error(chain, "collect", "values", "per-item")


def test_mixing_items_and_collected() -> None:
    chain = cl.Chain()
    r = chain.add("core.range", n=3)
    c = chain.add("core.collect", values=r)

    @cl.node("t.both")
    def both(a: int, b: list[int]) -> int:
        return a

    chain.add("t.both", a=r, b=c)
    expect_error(chain, "both", "a", "mixes per-item values")


def test_duplicate_and_bad_ids() -> None:
    chain = cl.Chain()
    chain.add("t.add1", id="n", x=1)
    with pytest.raises(ChainError, match="duplicate"):
        chain.add("t.add1", id="n", x=1)
    with pytest.raises(ChainError, match="invalid node id"):
        chain.add("t.add1", id="a.b", x=1)


def test_an_id_that_is_no_string_says_how_to_set_an_input_named_id() -> None:
    # a node with an input called "id": Chain.add(..., id=5) raised "expected string or
    # bytes-like object, got 'int'" from a regular expression
    @cl.node("t.with_id")
    def with_id(id: int) -> int:
        return id

    chain = cl.Chain()
    with pytest.raises(TypeError, match=r"id= names the node \(a string\), got 5; set an input "
                                        r"named 'id' with chain.set\(node, 'id', value\)"):
        chain.add("t.with_id", id=5)
    assert chain.nodes == {}
    handle = chain.add("t.with_id")
    chain.set(handle.id, "id", 5)
    chain.validate()


@pytest.mark.parametrize("bad", ["", " ", "my node", "a\nb", "x\x1b[2J"])
def test_a_node_type_id_is_a_name(bad: str) -> None:
    # "" was accepted, and a chain could then name a node type "" or one with a newline
    with pytest.raises(ValueError, match=r"a node type id is a non-empty name without spaces"):
        @cl.node(bad)
        def f(x: int) -> int:
            return x


def test_runner_validates_on_construction() -> None:
    chain = cl.Chain()
    chain.add("t.add1")
    with pytest.raises(ChainError):
        cl.Runner(chain)


def test_plain_function_becomes_a_node() -> None:
    def triple(x: int) -> int:
        return 3 * x

    chain = cl.Chain()
    src = chain.add("core.range", n=4)
    t = chain.add(triple, x=src)
    c = chain.add("core.collect", values=t)
    run = cl.Runner(chain)
    run.start()
    assert run.wait(10).state == "completed"
    assert run.result(c) == [0, 3, 6, 9]


def test_path_constants_are_stored_as_strings(tmp_path: Path) -> None:
    chain = cl.Chain()
    chain.add("image.load_folder", folder=tmp_path)
    chain.set("load_folder", "pattern", Path("*.png"))
    chain.validate()
    assert chain.nodes["load_folder"].inputs == {"folder": str(tmp_path), "pattern": "*.png"}
    chain.save(tmp_path / "c.json")
    assert cl.Chain.load(tmp_path / "c.json").to_dict() == chain.to_dict()
