"""The parts of a chain graph: node instances, links, handles, node ids.

The bottom of :mod:`chainlib.chain`: :mod:`.model`, :mod:`.files` and :mod:`.validate` build on
these, and :class:`Graph` is what files and validation need of a chain (so neither imports the
``Chain`` class, which imports them).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ..api.registry import NodeSpec, get
from ..errors import ChainError


class Graph(Protocol):
    """A named graph of node instances (a :class:`~chainlib.Chain`)."""

    @property
    def name(self) -> str: ...

    @property
    def nodes(self) -> Mapping[str, NodeInstance]: ...


class OutputRef:
    """A link: output ``output`` of node instance ``node`` (``None`` means its single output).

    Immutable (the attributes are ``Final``). A plain class with slots, not a frozen dataclass:
    a chain file has one per link, and a frozen dataclass's ``__init__`` costs several times
    more (B8)."""

    __slots__ = ("node", "output")
    __match_args__ = ("node", "output")

    def __init__(self, node: str, output: str | None = None) -> None:
        self.node: Final = node
        self.output: Final = output

    def __str__(self) -> str:
        return self.node if self.output is None else f"{self.node}.{self.output}"

    def __repr__(self) -> str:
        return f"OutputRef(node={self.node!r}, output={self.output!r})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, OutputRef)
        return (self.node, self.output) == (other.node, other.output)

    def __hash__(self) -> int:
        return hash((self.node, self.output))


@dataclass(slots=True)
class NodeInstance:
    """One node in a chain: an instance id, a node type id, and its inputs (constants or links)."""

    id: str
    type: str
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> NodeSpec | None:
        return get(self.type)

    def links(self) -> Iterator[tuple[str, OutputRef]]:
        for name, value in self.inputs.items():
            if isinstance(value, OutputRef):
                yield name, value


class NodeHandle:
    """What ``Chain.add`` returns: use ``handle["output"]`` (or the handle itself for a node with
    one output) as another node's input."""

    __slots__ = ("id", "type")

    def __init__(self, node_id: str, node_type: str) -> None:
        self.id = node_id
        self.type = node_type

    def __getitem__(self, output: str) -> OutputRef:
        return OutputRef(self.id, output)

    def __repr__(self) -> str:
        return f"<NodeHandle {self.id} ({self.type})>"


ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
"""What a node id matches."""
INVALID_ID = "invalid node id (letters, digits, _ and - only)"


def check_node_id(node_id: str) -> None:
    """Raise :class:`ChainError` unless ``node_id`` is a valid node id."""
    if not ID_RE.match(node_id):
        raise ChainError(INVALID_ID, node=node_id)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Build a large graph without the cyclic garbage collector, then file what was built with
    the long-lived objects.

    Nothing built here is a cycle. With the collector running, hundreds of thousands of new
    containers trigger collections that rescan everything alive (about half the time of a
    600k-node validation, B8); re-enabled, its first young-generation pass would still walk
    every object built during the pause (a quarter of the time left). ``gc.freeze()`` followed
    by ``gc.unfreeze()`` moves all tracked objects into the oldest generation without a scan:
    the graph lives as long as its chain, and the next full collection still sees everything.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if was:
            gc.enable()
