"""Built-in general-purpose nodes: batch any Python work with ``core.range`` / ``core.items``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from ..api import Item, Range, collector, iterator, node


@iterator("core.range", length=lambda n, start=0, step=1: n)
def range_(n: Annotated[int, Range(0)], start: int = 0, step: int = 1) -> Iterator[int]:
    """Yield ``n`` integers: start, start+step, ..."""
    # not range(start, start + n * step, step): it refuses step 0 and len() overflows ssize_t
    for i in range(n):
        yield start + i * step


@iterator("core.items", length=lambda items: len(items))
def items(items: list[Any]) -> Iterator[Any]:
    """Yield each element of a list (labelled by its repr)."""
    for value in items:
        yield Item(value, label=repr(value)[:80])


@collector("core.collect", collect="values")
def collect(values: list[Any]) -> list[Any]:
    """Gather the per-item values into a list, in item order."""
    return list(values)


@node("core.constant")
def constant(value: Any) -> Any:
    """Pass a constant value on."""
    return value
