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
from typing import Any, Protocol

from ..api.registry import NodeSpec, get
from ..errors import ChainError


class Graph(Protocol):
    """A named graph of node instances (a :class:`~chainlib.Chain`)."""

    @property
    def name(self) -> str: ...

    @property
    def nodes(self) -> Mapping[str, NodeInstance]: ...


@dataclass(frozen=True, slots=True)
class OutputRef:
    """A link: output ``output`` of node instance ``node`` (``None`` means its single output)."""

    node: str
    output: str | None = None

    def __str__(self) -> str:
        return self.node if self.output is None else f"{self.node}.{self.output}"


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


_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def check_node_id(node_id: str) -> None:
    """Raise :class:`ChainError` unless ``node_id`` is a valid node id."""
    if not _ID_RE.match(node_id):
        raise ChainError("invalid node id (letters, digits, _ and - only)", node=node_id)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Build a large graph without the cyclic garbage collector: nothing built here is a cycle,
    and hundreds of thousands of new containers would otherwise trigger collections that rescan
    everything alive (B8 measured half the time of a 600k-node validation spent there)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
