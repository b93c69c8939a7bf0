"""Validation: turn a :class:`Chain` into an execution :class:`Plan`, or raise ``ChainError``.

Phases. Nodes not downstream of the iterator run once, before the items (``pre``). The iterator and
everything fed by its items run once per item (``item``). Collectors gather per-item values; they
and everything downstream of them run once after all items (``post``). A chain has at most one
iterator.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..api.registry import NodeSpec, get
from ..api.types import accepts_value, connectable, non_finite, ranges_of, type_name
from ..errors import ChainError
from .files import check_depth
from .graph import Graph, OutputRef, paused_gc

Phase = Literal["pre", "item", "post"]


@dataclass(frozen=True, slots=True)
class Link:
    node: str
    output: str


class Step:
    """One node instance ready to execute: its spec, constants, and resolved links.

    Treat it as immutable. A plain class with slots, not a frozen dataclass: a plan has one per
    node, and a frozen dataclass's ``__init__`` costs several times more (B8)."""

    __slots__ = ("constants", "id", "link_keys", "links", "phase", "spec")

    def __init__(self, id: str, spec: NodeSpec, phase: Phase, constants: Mapping[str, Any],
                 links: Mapping[str, Link]) -> None:
        self.id = id
        self.spec = spec
        self.phase = phase
        self.constants = constants
        self.links = links
        self.link_keys: tuple[tuple[str, tuple[str, str]], ...] = tuple(
            [(name, (lk.node, lk.output)) for name, lk in links.items()])
        """``(input, (node, output))`` pairs: where each linked input's value is found."""

    def __repr__(self) -> str:
        return f"Step({self.id!r}, {self.spec.id!r}, {self.phase!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Step) and (self.id, self.spec, self.phase, self.constants,
                                            self.links) == (other.id, other.spec, other.phase,
                                                            other.constants, other.links)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Plan:
    steps: Mapping[str, Step]
    pre: tuple[Step, ...]
    iterator: Step | None
    item: tuple[Step, ...]  # per-item nodes after the iterator, in topological order
    collectors: tuple[Step, ...]
    post: tuple[Step, ...]  # after collectors, in topological order, collectors excluded


def compile_chain(chain: Graph) -> Plan:
    """Validate ``chain`` into its execution plan; raise :class:`ChainError` naming the node.

    Linear in the size of the chain (benchmark B8)."""
    with paused_gc():
        return _compile(chain)


def _compile(chain: Graph) -> Plan:
    specs: dict[str, NodeSpec] = {}
    by_type: dict[str, NodeSpec | None] = {}
    for nid, inst in chain.nodes.items():
        spec = by_type[inst.type] if inst.type in by_type else by_type.setdefault(
            inst.type, get(inst.type))
        if spec is None:
            raise ChainError(f"unknown node type {inst.type!r}", node=nid)
        specs[nid] = spec

    links: dict[str, dict[str, Link]] = {}
    constants: dict[str, dict[str, Any]] = {}
    defaults = {id(sp): sp.default_output for sp in by_type.values() if sp is not None}
    for nid, inst in chain.nodes.items():
        spec = specs[nid]
        links[nid] = node_links = {}
        constants[nid] = node_constants = {}
        for name, value in inst.inputs.items():
            if name not in spec.inputs:
                known = ", ".join(spec.inputs) or "none"
                raise ChainError(
                    f"unknown input for {spec.id} (inputs: {known})", node=nid, input=name
                )
            if isinstance(value, OutputRef):
                src = specs.get(value.node)
                output = value.output if value.output is not None else (
                    defaults[id(src)] if src is not None else None)
                if src is None or output is None or output not in src.outputs:
                    node_links[name] = _resolve_link(nid, name, value, chain, specs)  # raises
                else:
                    node_links[name] = Link(value.node, output)
            else:
                node_constants[name] = value
        if len(inst.inputs) < len(spec.inputs):
            for name, inp in spec.inputs.items():
                if inp.required and name not in inst.inputs:
                    raise ChainError(f"missing required input of type {type_name(inp.type)}",
                                     node=nid, input=name)

    order = _toposort(chain, links)
    phases = _phases(order, specs, links)

    # one pass in topological order: types, the node's own checks, its step (B8)
    fits: dict[tuple[int, int], bool] = {}  # connectable() per (output type, input type)
    checked: set[str] = set()
    steps: dict[str, Step] = {}
    buckets: dict[str, list[Step]] = {"pre": [], "item": [], "post": [], "iterator": [],
                                      "collector": []}
    for nid in order:
        spec = specs[nid]
        node_constants, node_links = constants[nid], links[nid]
        if node_constants:
            _check_constants(nid, spec, node_constants)
        for name, link in node_links.items():
            out_type = specs[link.node].outputs[link.output]
            in_type = spec.inputs[name].type
            if spec.kind == "collector" and name == spec.collect:
                in_type = spec.item_type
            fit = fits.get((id(out_type), id(in_type)))
            if fit is None:
                fit = fits[(id(out_type), id(in_type))] = connectable(out_type, in_type)
            if not fit:
                raise ChainError(
                    f"type mismatch: {link.node}.{link.output} gives {type_name(out_type)}, "
                    f"input expects {type_name(in_type)}",
                    node=nid, input=name,
                )
        if spec.check is not None or spec.id not in checked:
            _check_node(nid, spec, node_constants, checked)
        steps[nid] = step = Step(nid, spec, phases[nid], node_constants, node_links)
        kind = spec.kind
        buckets[kind if kind != "node" else step.phase].append(step)
    iterators = buckets["iterator"]
    return Plan(
        steps=steps,
        pre=tuple(buckets["pre"]),
        iterator=iterators[0] if iterators else None,
        item=tuple(buckets["item"]),
        collectors=tuple(buckets["collector"]),
        post=tuple(buckets["post"]),
    )


def _check_constants(nid: str, spec: NodeSpec, constants: Mapping[str, Any]) -> None:
    for name, value in constants.items():
        in_type = spec.inputs[name].type
        if spec.kind == "collector" and name == spec.collect:
            raise ChainError("a collector's collected input must be linked to per-item values",
                             node=nid, input=name)
        if not accepts_value(in_type, value):
            raise ChainError(
                f"expected {type_name(in_type)}, got {type(value).__name__} {value!r:.80}",
                node=nid, input=name,
            )
        _check_constant(nid, name, in_type, value)


def output_folders(steps: Iterable[Step]) -> list[str]:
    """The constant ``folder`` inputs of those ``steps`` that write files, in order, each once.

    The one definition of "where a chain writes" (the runner's manifest folder, the CLI summary).
    """
    folders: list[str] = []
    for step in steps:
        folder = step.constants.get("folder")
        if step.spec.writes_files and isinstance(folder, str) and folder not in folders:
            folders.append(folder)
    return folders


def _check_constant(nid: str, name: str, in_type: Any, value: Any) -> None:
    """What a constant must be beyond its type: shallow, finite, in its declared range."""
    check_depth(value, node=nid, input=name)
    bad = non_finite(value)
    if bad is not None:
        raise ChainError(f"{bad} is not a finite number (a chain file cannot store it)",
                         node=nid, input=name)
    for r in ranges_of(in_type):
        problem = r.problem(value)
        if problem is not None:
            raise ChainError(problem, node=nid, input=name)


def resumable(plan: Plan) -> bool:
    """Whether runs of ``plan`` can resume: per-item nodes write files into one constant output
    folder (where the manifest of finished items is kept)."""
    writers = [s for s in plan.item if s.spec.writes_files]
    return (bool(writers) and len(output_folders(writers)) == 1
            and not any("folder" in w.links for w in writers))


def _check_node(nid: str, spec: NodeSpec, constants: Mapping[str, Any],
                checked: set[str]) -> None:
    """The node's optional packages are installed (looked up once per node type: ``checked``)
    and its own check accepts its constants."""
    missing = () if spec.id in checked else spec.missing()
    checked.add(spec.id)
    if missing:
        raise ChainError(f"{spec.id} needs {', '.join(missing)}, which is not installed: "
                         f"{spec.install_hint}", node=nid)
    if spec.check is None:
        return
    try:
        spec.check(constants)
    except ChainError as exc:
        raise ChainError(exc.message, node=nid, input=exc.input) from None
    except ValueError as exc:
        # Node checks follow the nodes' convention: "input: what is wrong".
        name, sep, rest = str(exc).partition(":")
        if sep and name in spec.inputs:
            raise ChainError(rest.strip(), node=nid, input=name) from None
        raise ChainError(str(exc), node=nid) from None


def _resolve_link(
    nid: str, name: str, ref: OutputRef, chain: Graph, specs: Mapping[str, NodeSpec]
) -> Link:
    if ref.node not in chain.nodes:
        raise ChainError(f"linked to unknown node {ref.node!r}", node=nid, input=name)
    src = specs[ref.node]
    if ref.output is None:
        if src.default_output is None:
            outs = ", ".join(src.outputs) or "none"
            raise ChainError(
                f"{ref.node} has {len(src.outputs)} outputs ({outs}); name one: {ref.node}[...]",
                node=nid, input=name,
            )
        return Link(ref.node, src.default_output)
    if ref.output not in src.outputs:
        outs = ", ".join(src.outputs) or "none"
        raise ChainError(f"{ref.node} has no output {ref.output!r} (outputs: {outs})",
                         node=nid, input=name)
    return Link(ref.node, ref.output)


def _toposort(chain: Graph, links: Mapping[str, Mapping[str, Link]]) -> list[str]:
    indegree = {nid: 0 for nid in chain.nodes}
    users: dict[str, list[str]] = {}  # only nodes that have users: no list per leaf
    for nid, ls in links.items():
        if not ls:
            continue
        sources = [lk.node for lk in ls.values()]
        if len(sources) > 1:
            sources = list(dict.fromkeys(sources))  # one edge per source, in a stable order
        indegree[nid] = len(sources)
        for src in sources:
            found = users.get(src)
            if found is None:
                users[src] = [nid]
            else:
                found.append(nid)
    # a deque: popping the front of a list made this quadratic (issue 10)
    ready = deque(nid for nid in chain.nodes if indegree[nid] == 0)  # insertion order is stable
    order: list[str] = []
    while ready:
        nid = ready.popleft()
        order.append(nid)
        for user in users.get(nid, ()):
            indegree[user] -= 1
            if indegree[user] == 0:
                ready.append(user)
    if len(order) != len(chain.nodes):
        stuck = sorted(nid for nid, d in indegree.items() if d > 0)
        raise ChainError(f"cycle through {', '.join(stuck)}", node=stuck[0])
    return order


def _phases(
    order: list[str], specs: Mapping[str, NodeSpec], links: Mapping[str, Mapping[str, Link]]
) -> dict[str, Phase]:
    phases: dict[str, Phase] = {}
    iterator: str | None = None
    for nid in order:
        spec = specs[nid]
        if spec.kind == "node":  # the common case, kept cheap (B8)
            phase: Phase = "pre"
            mixed = False
            for lk in links[nid].values():
                src = phases[lk.node]
                if src != phase and src != "pre":
                    mixed = phase != "pre"
                    phase = src
            if not mixed:
                phases[nid] = phase
                continue
        src_phases = {name: phases[lk.node] for name, lk in links[nid].items()}
        if spec.kind == "iterator":
            if iterator is not None:
                raise ChainError(f"a chain may have one iterator; {iterator!r} is already one",
                                 node=nid)
            for name, ph in src_phases.items():
                if ph != "pre":
                    raise ChainError("an iterator's inputs must not depend on items",
                                     node=nid, input=name)
            iterator = nid
            phases[nid] = "item"
        elif spec.kind == "collector":
            for name, ph in src_phases.items():
                if name == spec.collect and ph != "item":
                    raise ChainError("a collector's collected input must come from per-item "
                                     "nodes (downstream of an iterator)", node=nid, input=name)
                if name != spec.collect and ph != "pre":
                    raise ChainError("a collector's other inputs must not depend on items",
                                     node=nid, input=name)
            phases[nid] = "post"
        else:
            kinds = set(src_phases.values())
            if {"item", "post"} <= kinds:
                bad = next(n for n, p in src_phases.items() if p == "item")
                raise ChainError("mixes per-item values with collected results; "
                                 "collect the per-item value first", node=nid, input=bad)
            phases[nid] = "item" if "item" in kinds else "post" if "post" in kinds else "pre"
    return phases
