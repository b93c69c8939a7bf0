"""The chain: a directed acyclic graph of node instances."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..api.registry import spec_of
from ..errors import ChainError
from . import files
from .graph import NodeHandle, NodeInstance, OutputRef, check_node_id
from .render import to_svg
from .validate import compile_chain

__all__ = ["Chain", "NodeHandle", "NodeInstance", "OutputRef"]


class Chain:
    """A graph of node instances, built in Python with :meth:`add` or read with :meth:`load`.

    Nothing is checked while building; :meth:`validate` checks everything and raises
    :class:`ChainError` naming the node and input at fault.
    """

    def __init__(self, name: str = "chain") -> None:
        self.name = name
        self.nodes: dict[str, NodeInstance] = {}

    def add(
        self, node: str | Callable[..., Any], /, *, id: str | None = None, **inputs: Any
    ) -> NodeHandle:
        """Add a node instance. ``node`` is a registered id or a node function; ``inputs`` are
        constants or outputs of other nodes (``handle["name"]`` or a bare handle)."""
        if isinstance(node, str):
            node_type = node
        else:
            spec = spec_of(node)
            assert spec is not None
            node_type = spec.id
        if id is not None and not isinstance(id, str):
            raise TypeError(f"id= names the node (a string), got {id!r}; set an input named 'id' "
                            "with chain.set(node, 'id', value)")
        node_id = id or self._fresh_id(node_type)
        check_node_id(node_id)
        if node_id in self.nodes:
            raise ChainError("duplicate node id", node=node_id)
        self.nodes[node_id] = NodeInstance(
            node_id, node_type, {k: _as_input(v) for k, v in inputs.items()}
        )
        return NodeHandle(node_id, node_type)

    def set(self, node_id: str, input_name: str, value: Any) -> None:
        """Set (override) one input of a node instance."""
        if node_id not in self.nodes:
            raise ChainError("no such node in the chain", node=node_id)
        self.nodes[node_id].inputs[input_name] = _as_input(value)

    def handle(self, node_id: str) -> NodeHandle:
        """A handle to an existing node instance (for chains read from a file)."""
        if node_id not in self.nodes:
            raise ChainError("no such node in the chain", node=node_id)
        return NodeHandle(node_id, self.nodes[node_id].type)

    def _fresh_id(self, node_type: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", node_type.rsplit(".", 1)[-1]) or "node"
        if base[0].isdigit():
            base = "n" + base
        if base not in self.nodes:
            return base
        n = 2
        while f"{base}_{n}" in self.nodes:
            n += 1
        return f"{base}_{n}"

    def validate(self) -> None:
        """Check the whole chain; raise :class:`ChainError` naming the node and input at fault."""
        compile_chain(self)

    def fingerprint(self) -> str:
        """A stable hash of the chain's structure and constants (used by resumable runs)."""
        return files.fingerprint(self)

    def to_dict(self) -> dict[str, Any]:
        return files.chain_to_dict(self)

    def _repr_svg_(self) -> str:
        """The chain drawn as a graph in notebooks (see :func:`chainlib.chain.render.to_svg`)."""
        return to_svg(self)

    def save(self, path: str | Path) -> None:
        """Write the chain as a versioned JSON chain file."""
        files.save(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Chain:
        """Read a JSON chain file; errors name the JSON path, node and input at fault."""
        return cls._build(*files.load(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Chain:
        return cls._build(*files.parse(data, source=source))

    @classmethod
    def _build(cls, name: str, nodes: dict[str, NodeInstance]) -> Chain:
        chain = cls(name)
        chain.nodes.update(nodes)
        return chain

    def __repr__(self) -> str:
        return f"<Chain {self.name!r} with {len(self.nodes)} nodes>"


def _as_input(value: Any) -> Any:
    if isinstance(value, NodeHandle):
        return OutputRef(value.id, None)
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # paths are stored as strings: JSON-safe, and what nodes take
    return value
