"""Node specifications and the global registry of node types.

A node type is a Python function plus what chainlib reads off its signature: typed inputs with
defaults, typed outputs, whether it wants a :class:`Context`, and its kind:

- ``node``: called once per execution, returns its output(s);
- ``iterator``: a generator; everything downstream runs once per yielded item;
- ``collector``: gathers one per-item input (``collect``) into a list and returns one value.
"""

from __future__ import annotations

import importlib.util
import inspect
import threading
import typing
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ChainError
from .context import Context
from .types import ranges_of, strip_annotated, type_name

NodeKind = Literal["node", "iterator", "collector"]


class _Missing:
    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Missing()
"""Marker for an input without a default."""


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: Any
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class NodeSpec:
    """Everything the engine needs to know about one node type."""

    id: str
    fn: Callable[..., Any]
    kind: NodeKind
    inputs: Mapping[str, InputSpec]
    outputs: Mapping[str, Any]
    multi_output: bool
    wants_ctx: bool
    length: Callable[..., int | None] | None = None
    collect: str | None = None
    rebuilds: bool = False
    """Collectors: can rebuild the result from what earlier runs wrote, so it runs even when a
    resumed run skipped every item as complete (collectors without it do not run then)."""
    item_type: Any = Any
    writes_files: bool = False
    doc: str = field(default="", compare=False)
    extra: str | None = None
    """The pip extra (``chainlib[extra]``) that installs the packages this node needs."""
    requires: tuple[str, ...] = ()
    """Top-level modules the node imports when it runs (checked without importing them)."""
    check: Callable[[Mapping[str, Any]], None] | None = field(default=None, compare=False)
    """Called at validation with the node's constant inputs; raises ``ValueError`` (or a
    ``ChainError`` naming the input) for a value that cannot work, such as a broken model file."""
    listing: Callable[..., list[Any]] | None = field(default=None, compare=False)
    """Iterators: called with the constant inputs just before a run (and by ``chainlib
    validate``), returns the items as :class:`~chainlib.Item` whose value is a dict of the
    outputs known without reading the inputs (names, paths) and whose ``source`` is the input
    file; raises ``ValueError`` ("input: what is wrong") when the items cannot be listed (a
    missing folder). Used to check, before anything is written, the paths writers will write."""
    empty: str | None = field(default=None, compare=False)
    """Iterators with a :attr:`listing`: what to say when it lists no item, a template filled
    with the node's inputs (``"no image file in {folder!r} matches {pattern!r}"``); the command
    line refuses to start such a run (exit 2) with this line."""
    target: Callable[..., str] | None = field(default=None, compare=False)
    """File writers: called with the writer's inputs except images, and ``index``, returns the
    path it would write (see :attr:`listing`)."""
    reads: tuple[str, ...] = ()
    """Inputs naming a file the node reads whose content decides its result (a model): a
    resumable run's fingerprint includes each such constant file's size and modification time,
    so replacing the file in place redoes the items, as a new path would."""

    def missing(self) -> tuple[str, ...]:
        """The required modules that are not installed."""
        return tuple(m for m in self.requires if importlib.util.find_spec(m) is None)

    @property
    def install_hint(self) -> str:
        """The pip command that installs what this node needs."""
        return f"pip install 'chainlib[{self.extra}]'" if self.extra else \
            "pip install " + " ".join(self.requires)

    @property
    def default_output(self) -> str | None:
        """The output a bare handle refers to: the only output, if there is exactly one."""
        return next(iter(self.outputs)) if len(self.outputs) == 1 else None

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description (used by ``chainlib nodes``)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "doc": self.doc,
            "inputs": [
                {
                    "name": i.name,
                    "type": type_name(i.type),
                    **({"range": r[0].describe()} if (r := ranges_of(i.type)) else {}),
                    **({} if i.required else {"default": _jsonable(i.default)}),
                }
                for i in self.inputs.values()
            ],
            "outputs": [{"name": n, "type": type_name(t)} for n, t in self.outputs.items()],
            **({"extra": self.extra, "available": not self.missing()} if self.requires else {}),
        }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


_lock = threading.Lock()
_registry: dict[str, NodeSpec] = {}


def register(spec: NodeSpec) -> NodeSpec:
    """Add (or replace: re-running a notebook cell redefines a node) a node type."""
    if (not isinstance(spec.id, str) or not spec.id
            or any(c.isspace() or not c.isprintable() for c in spec.id)):
        raise ValueError(f"a node type id is a non-empty name without spaces (like "
                         f"'mylib.sharpen'), got {spec.id!r}")
    with _lock:
        _registry[spec.id] = spec
    return spec


def get(node_type: str) -> NodeSpec | None:
    with _lock:
        return _registry.get(node_type)


def all_specs() -> list[NodeSpec]:
    with _lock:
        return sorted(_registry.values(), key=lambda s: s.id)


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and typing.is_typeddict(tp)


def _yield_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Iterator, Iterable, Generator):
        args = typing.get_args(tp)
        return args[0] if args else Any
    return Any


def build_spec(
    fn: Callable[..., Any],
    node_id: str,
    kind: NodeKind,
    *,
    output: str = "value",
    length: Callable[..., int | None] | None = None,
    collect: str | None = None,
    rebuilds: bool = False,
    writes_files: bool = False,
    extra: str | None = None,
    requires: tuple[str, ...] = (),
    check: Callable[[Mapping[str, Any]], None] | None = None,
    listing: Callable[..., list[Any]] | None = None,
    empty: str | None = None,
    target: Callable[..., str] | None = None,
    reads: tuple[str, ...] = (),
) -> NodeSpec:
    """Read a node specification off a function's signature and type hints."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)  # keeps Range metadata
    except Exception as exc:  # unresolved forward references in a user's annotations
        raise ChainError(f"cannot read the type hints of {fn.__qualname__}: {exc}") from exc
    sig = inspect.signature(fn)
    inputs: dict[str, InputSpec] = {}
    wants_ctx = False
    for p in sig.parameters.values():
        tp = hints.get(p.name, Any)
        if p.name == "ctx" or strip_annotated(tp) is Context:
            wants_ctx = True
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ChainError(f"node {node_id!r}: *args/**kwargs parameters are not supported")
        default = REQUIRED if p.default is p.empty else p.default
        inputs[p.name] = InputSpec(p.name, tp, default)

    ret = strip_annotated(hints.get("return", Any))
    if kind == "iterator":
        ret = _yield_type(ret)
    outputs: dict[str, Any]
    multi = False
    if ret is type(None):
        outputs = {}
    elif _is_typeddict(ret):
        outputs = dict(typing.get_type_hints(ret))
        multi = True
    else:
        outputs = {output: ret}

    item_type: Any = Any
    if kind == "collector":
        if collect is None or collect not in inputs:
            raise ChainError(f"collector {node_id!r} must name its per-item input with collect=")
        list_args = typing.get_args(strip_annotated(inputs[collect].type))
        item_type = list_args[0] if list_args else Any
    doc = (inspect.getdoc(fn) or "").strip().split("\n\n")[0].replace("\n", " ")
    return NodeSpec(
        id=node_id,
        fn=fn,
        kind=kind,
        inputs=inputs,
        outputs=outputs,
        multi_output=multi,
        wants_ctx=wants_ctx,
        length=length,
        collect=collect,
        rebuilds=rebuilds,
        item_type=item_type,
        writes_files=writes_files,
        doc=doc,
        extra=extra,
        requires=tuple(requires),
        check=check,
        listing=listing,
        empty=empty,
        target=target,
        reads=tuple(reads),
    )


def spec_of(node: str | Callable[..., Any]) -> NodeSpec | None:
    """The spec for a node id or a (decorated or plain) function; plain functions get registered."""
    if isinstance(node, str):
        return get(node)
    spec = getattr(node, "__chainlib_spec__", None)
    if isinstance(spec, NodeSpec):
        return spec
    node_id = f"{node.__module__}.{node.__qualname__}"
    return register(build_spec(node, node_id, "node"))
