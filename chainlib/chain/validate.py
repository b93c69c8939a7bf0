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
from typing import Any, Literal, NamedTuple

from ..api.registry import NodeSpec, get
from ..api.types import accepts_value, connectable, non_finite, ranges_of, type_name
from ..errors import ChainError
from .files import check_depth
from .graph import Graph, NodeInstance, OutputRef, paused_gc

Phase = Literal["pre", "item", "post"]


class Link(NamedTuple):
    """A resolved link: output ``output`` of node ``node``. A named tuple, so that a step's
    ``link_keys`` are its links as they are (one object per link, B8)."""

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
        self.link_keys: tuple[tuple[str, tuple[str, str]], ...] = tuple(links.items())
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

    Linear in the size of the chain (benchmark B8): one pass over the nodes in the chain's own
    order when every link points back to an earlier node (every chain built with ``add`` and
    every file ``save`` writes), else one pass in the order of a topological sort.
    """
    with paused_gc():
        try:
            return _compile(chain, chain.nodes.items())
        except _OutOfOrder:
            pass
        return _compile(chain, _toposort(chain))


class _OutOfOrder(Exception):
    """A node links to a later one: the chain's own order is not a topological order."""


def _compile(chain: Graph, nodes: Iterable[tuple[str, NodeInstance]]) -> Plan:
    """The plan, checking each node once its sources are checked (``nodes`` in an order where
    sources come first, else :class:`_OutOfOrder`). Checks per node, in this order: its type,
    its inputs' names and links, required inputs, its phase, link types, constants, its own
    check."""
    by_type: dict[str, NodeSpec | None] = {}
    defaults: dict[str, str | None] = {}  # default_output per node type
    fits: dict[tuple[int, int], bool] = {}  # connectable() per (output type, input type)
    checked: set[str] = set()  # node types whose packages were looked up
    steps: dict[str, Step] = {}
    buckets: dict[str, list[Step]] = {"pre": [], "item": [], "post": [], "iterator": [],
                                      "collector": []}
    iterator: list[str] = []
    for nid, inst in nodes:
        ntype = inst.type
        spec = by_type.get(ntype)
        if spec is None:
            spec = by_type[ntype] = get(ntype)
            if spec is None:
                raise ChainError(f"unknown node type {ntype!r}", node=nid)
            defaults[ntype] = spec.default_output
        spec_inputs = spec.inputs
        node_links: dict[str, Link] = {}
        node_constants: dict[str, Any] = {}
        phase: Phase = "pre"
        mixed = False  # sources in two phases other than "pre"
        mismatch: ChainError | None = None  # the first link of the wrong type
        kind = spec.kind
        for name, value in inst.inputs.items():
            if name not in spec_inputs:
                known = ", ".join(spec_inputs) or "none"
                raise ChainError(f"unknown input for {spec.id} (inputs: {known})",
                                 node=nid, input=name)
            if value.__class__ is not OutputRef:
                node_constants[name] = value
                continue
            src = steps.get(value.node)
            if src is None:
                if value.node in chain.nodes:
                    raise _OutOfOrder  # never in a topological order
                raise ChainError(f"linked to unknown node {value.node!r}", node=nid, input=name)
            src_spec = src.spec
            output = value.output
            if output is None:
                output = defaults[src_spec.id]
            if output is None or output not in src_spec.outputs:
                output = _resolve_output(nid, name, value, src_spec)  # raises unless resolved
            node_links[name] = Link(value.node, output)
            out_type = src_spec.outputs[output]
            in_type = spec_inputs[name].type
            if kind == "collector" and name == spec.collect:
                in_type = spec.item_type
            fit = fits.get((id(out_type), id(in_type)))
            if fit is None:
                fit = fits[(id(out_type), id(in_type))] = connectable(out_type, in_type)
            if not fit and mismatch is None:
                mismatch = ChainError(
                    f"type mismatch: {value.node}.{output} gives {type_name(out_type)}, "
                    f"input expects {type_name(in_type)}",
                    node=nid, input=name,
                )
            src_phase = src.phase
            if src_phase != phase and src_phase != "pre":
                mixed = mixed or phase != "pre"
                phase = src_phase
        if len(inst.inputs) < len(spec_inputs):
            for name, inp in spec_inputs.items():
                if inp.required and name not in inst.inputs:
                    raise ChainError(f"missing required input of type {type_name(inp.type)}",
                                     node=nid, input=name)
        if kind != "node" or mixed:
            phase = _special_phase(nid, spec, node_links, steps, iterator)
        if mismatch is not None:
            raise mismatch  # after the errors above, which say more about the node
        if node_constants:
            _check_constants(nid, spec, node_constants)
        if spec.check is not None or spec.id not in checked:
            _check_node(nid, spec, node_constants, checked)
        steps[nid] = step = Step(nid, spec, phase, node_constants, node_links)
        buckets[kind if kind != "node" else phase].append(step)
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


def _resolve_output(nid: str, name: str, ref: OutputRef, src: NodeSpec) -> str:
    """The output ``ref`` names on its source node (``src``), or a ``ChainError``."""
    if ref.output is None:
        if src.default_output is None:
            outs = ", ".join(src.outputs) or "none"
            raise ChainError(
                f"{ref.node} has {len(src.outputs)} outputs ({outs}); name one: {ref.node}[...]",
                node=nid, input=name,
            )
        return src.default_output
    if ref.output not in src.outputs:
        outs = ", ".join(src.outputs) or "none"
        raise ChainError(f"{ref.node} has no output {ref.output!r} (outputs: {outs})",
                         node=nid, input=name)
    return ref.output


def _toposort(chain: Graph) -> list[tuple[str, NodeInstance]]:
    """The nodes in an order where every node comes after the nodes it links to (Kahn's
    algorithm, ties in the chain's own order); ``ChainError`` for a cycle or an unknown node."""
    nodes = chain.nodes
    indegree: dict[str, int] = {}  # links to nodes not yet placed (a link counts once per input)
    users: dict[str, list[str]] = {}  # only nodes that have users: no list per leaf
    for nid, inst in nodes.items():
        links = 0
        for name, value in inst.inputs.items():
            if value.__class__ is OutputRef:
                src = value.node
                if src not in nodes:
                    raise ChainError(f"linked to unknown node {src!r}", node=nid, input=name)
                links += 1
                found = users.get(src)
                if found is None:
                    users[src] = [nid]
                else:
                    found.append(nid)
        indegree[nid] = links
    # a deque: popping the front of a list made this quadratic (issue 10)
    ready = deque([nid for nid, d in indegree.items() if d == 0])
    order: list[tuple[str, NodeInstance]] = []
    while ready:
        nid = ready.popleft()
        order.append((nid, nodes[nid]))
        for user in users.get(nid, ()):
            left = indegree[user] - 1
            indegree[user] = left
            if left == 0:
                ready.append(user)
    if len(order) != len(nodes):
        stuck = sorted(nid for nid, d in indegree.items() if d > 0)
        raise ChainError(f"cycle through {', '.join(stuck)}", node=stuck[0])
    return order


def _special_phase(nid: str, spec: NodeSpec, links: Mapping[str, Link],
                   steps: Mapping[str, Step], iterator: list[str]) -> Phase:
    """The phase of an iterator, a collector, or a node whose sources are in two phases (the
    rules in the module docstring); ``iterator`` holds the chain's iterator once found."""
    src_phases = {name: steps[lk.node].phase for name, lk in links.items()}
    if spec.kind == "iterator":
        if iterator:
            raise ChainError(f"a chain may have one iterator; {iterator[0]!r} is already one",
                             node=nid)
        for name, ph in src_phases.items():
            if ph != "pre":
                raise ChainError("an iterator's inputs must not depend on items",
                                 node=nid, input=name)
        iterator.append(nid)
        return "item"
    if spec.kind == "collector":
        for name, ph in src_phases.items():
            if name == spec.collect and ph != "item":
                raise ChainError("a collector's collected input must come from per-item "
                                 "nodes (downstream of an iterator)", node=nid, input=name)
            if name != spec.collect and ph != "pre":
                raise ChainError("a collector's other inputs must not depend on items",
                                 node=nid, input=name)
        return "post"
    kinds = set(src_phases.values())
    if {"item", "post"} <= kinds:
        bad = next(n for n, p in src_phases.items() if p == "item")
        raise ChainError("mixes per-item values with collected results; "
                         "collect the per-item value first", node=nid, input=bad)
    return "item" if "item" in kinds else "post" if "post" in kinds else "pre"
