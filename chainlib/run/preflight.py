"""Checks against the file system before a run writes anything (and by ``chainlib validate``).

When the iterator can list its items up front (:attr:`NodeSpec.listing`, e.g. ``image.load_folder``:
a missing input folder fails here) and a file writer can say which path it writes
(:attr:`NodeSpec.target`, e.g. ``image.save``) from inputs that are constants or the iterator's
listed outputs, every item's output path is computed first, so that

- two items writing one path are an error naming both inputs, before any output exists (never
  one output for two inputs, resumed or not);
- a path that is an input of the run (an in-place run saving ``a.jpg`` over ``a.jpg``) is an error
  naming it, before anything is written.

Outputs chainlib wrote earlier into the folder (``is_output``) are not items, as in the run
itself. What cannot be predicted (linked folders, names computed by other nodes) is still caught
when written (:mod:`chainlib.outputs`).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from ..api.item import Item
from ..chain.validate import Plan, Step, output_folders
from ..errors import ChainError
from ..outputs import OutputFolder


def _key(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def preflight(plan: Plan, is_output: Callable[[str], bool] | None = None, *,
              require_items: bool = False) -> int | None:
    """Check ``plan`` against the file system; raise :class:`ChainError` naming the node, input
    or items at fault. Returns how many items the iterator lists (None when it cannot say).
    ``require_items`` (the command line): a listing of no item is an error too, saying which
    inputs list nothing (a :class:`~chainlib.Runner` over no item just completes)."""
    it = plan.iterator
    if it is None or it.spec.listing is None or it.links:
        return None
    try:
        items: list[Any] = list(it.spec.listing(**it.constants))
    except ValueError as exc:
        name, sep, rest = str(exc).partition(":")
        if sep and name in it.spec.inputs:
            raise ChainError(rest.strip(), node=it.id, input=name) from None
        raise ChainError(str(exc), node=it.id) from None
    items = [i for i in items if isinstance(i, Item)]
    listed = len(items)
    if is_output is not None:
        items = [i for i in items if i.source is None or not is_output(i.source)]
    if require_items and not items:
        raise ChainError(_nothing_listed(it, listed), node=it.id)
    inputs = {_key(i.source): i for i in items if i.source is not None}
    written: dict[str, tuple[Item, str]] = {}
    for step in plan.item:
        if not step.spec.writes_files or step.spec.target is None:
            continue
        per_item = _per_item_inputs(step, it.id)
        if per_item is None:
            continue
        for index, item in enumerate(items):
            target = _target(step, per_item, item, index)
            if target is None:
                continue
            key = _key(target)
            victim = inputs.get(key)
            if victim is not None:
                raise ChainError(
                    f"would write {target!r} over the input {_name(victim)} (for "
                    f"{_name(item)}); inputs are never written over: save into another folder, "
                    "or change name/template/format", node=step.id)
            first = written.setdefault(key, (item, step.id))
            if first[0] is not item:
                raise ChainError(
                    f"two inputs for one output {target!r}: {_name(first[0])} and "
                    f"{_name(item)}; make the names unique (for example template="
                    "'{name}_{index}', or keep the extension in the name with format='auto')",
                    node=step.id)
    return len(items)


def _nothing_listed(it: Step, outputs: int) -> str:
    """Why a run of ``it`` has no item: its :attr:`~NodeSpec.empty` line, or its inputs."""
    values = {name: spec.default for name, spec in it.spec.inputs.items()}
    values.update(it.constants)
    text = ""
    if it.spec.empty is not None:
        try:
            text = it.spec.empty.format(**values)
        except (KeyError, IndexError, ValueError):
            text = ""
    if not text:
        shown = ", ".join(f"{k}={v!r}" for k, v in it.constants.items() if k in it.spec.inputs)
        text = f"its inputs list no item ({shown})"
    if outputs:
        text += (f" except the {outputs} this chain wrote there (its outputs are never taken "
                 "as inputs)")
    return text + "; nothing to run"


def _name(item: Item) -> str:
    return repr(item.label if item.label is not None else item.source)


def _per_item_inputs(step: Step, iterator: str) -> dict[str, str] | None:
    """``input -> iterator output`` for the target's linked inputs; None if one of them comes
    from another node (the path is then known only when the item runs)."""
    target = step.spec.target
    assert target is not None
    wanted = {p.name for p in inspect.signature(target).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    per_item: dict[str, str] = {}
    for name, link in step.links.items():
        if name not in wanted:
            continue
        if link.node != iterator:
            return None
        per_item[name] = link.output
    return per_item


def _target(step: Step, per_item: dict[str, str], item: Item, index: int) -> str | None:
    values = item.value if isinstance(item.value, dict) else {}
    kwargs = {k: v for k, v in step.constants.items() if k in step.spec.inputs}
    for name, output in per_item.items():
        if output not in values:
            return None
        kwargs[name] = values[output]
    assert step.spec.target is not None
    try:
        return step.spec.target(**kwargs, index=index)
    except (ValueError, TypeError):  # a bad name fails its item when it runs, with its message
        return None


def recorded_outputs(plan: Plan) -> Callable[[str], bool]:
    """``is_output`` for :func:`preflight` outside a run (``chainlib validate``, the CLI before
    it starts one): the ownership records of the chain's output folders, read without a lock."""
    folders = []
    for folder in output_folders(s for s in plan.steps.values() if s.spec.writes_files):
        if os.path.isdir(os.path.expanduser(folder)):
            folders.append(OutputFolder(os.path.expanduser(folder), locked=False).open())

    def is_output(path: str) -> bool:
        key = _key(path)
        return any(key.startswith(str(f.folder) + os.sep) and f.is_ours(key) for f in folders)

    return is_output
