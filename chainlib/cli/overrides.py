"""``--set NODE.INPUT=VALUE`` overrides."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..chain import Chain
from ..chain.files import check_depth, reject_constant
from ..errors import ChainError


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when ``text`` is valid JSON (numbers, ``true``/``false``, ``null``,
    lists, objects, ``"quoted strings"``), otherwise ``text`` itself as a plain string.

    ``NaN`` and ``Infinity`` stay strings (a chain file cannot store them).
    """
    try:
        return json.loads(text, parse_constant=reject_constant)
    except ValueError:
        return text
    except RecursionError:
        raise ChainError(f"--set value nested too deeply: {text[:40]!r}...") from None


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``NODE.INPUT=VALUE`` into ``(node, input, value)`` (value as :func:`parse_value`).

    Raises :class:`ChainError` for anything else.
    """
    target, eq, raw = text.partition("=")
    node, dot, name = target.partition(".")
    if not eq or not dot or not node or not name:
        raise ChainError(f"--set {text!r}: expected NODE.INPUT=VALUE (for example "
                         f"resize.width=256 or save.folder=out)")
    value = parse_value(raw)
    check_depth(value, node=node, input=name)
    return node, name, value


def apply_overrides(chain: Chain, overrides: Iterable[str]) -> Chain:
    """Apply ``--set NODE.INPUT=VALUE`` overrides to ``chain`` (in place; returns it).

    An unknown node, or an input the node type does not have, raises :class:`ChainError` naming
    it (and listing what exists).
    """
    for text in overrides:
        node, name, value = parse_override(text)
        inst = chain.nodes.get(node)
        if inst is None:
            known = ", ".join(chain.nodes) or "none"
            raise _set_error(f"--set {text}: no node {node!r} in the chain (nodes: {known})",
                             node, None)
        spec = inst.spec
        if spec is not None and name not in spec.inputs:
            known = ", ".join(spec.inputs) or "none"
            raise _set_error(f"--set {text}: node {node!r} ({spec.id}) has no input {name!r} "
                             f"(inputs: {known})", node, name)
        chain.set(node, name, value)
    return chain


def _set_error(message: str, node: str, input: str | None) -> ChainError:
    # The message already names the node (and input): keep them as attributes, not as a prefix.
    err = ChainError(message)
    err.node, err.input = node, input
    return err
