"""What an iterator yields: plain values, or an :class:`Item` carrying a label and a source file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Item:
    """One item from an iterator.

    ``value`` is what a plain ``yield`` would give (a dict for multi-output iterators). ``label``
    names the item in the status and in failures (for example a relative file path). ``source`` is
    the input file the item comes from, used by resumable runs to recognise finished items; a part
    of a file is ``FILE#PART`` (a video frame: ``clip.mp4#frame=12``). The file is an input of
    the run: never written over.
    """

    value: Any
    label: str | None = None
    source: str | None = None


def source_paths(source: str) -> tuple[str, ...]:
    """The paths an item's ``source`` names: itself and, for a part of a file (``FILE#PART``),
    ``FILE``."""
    whole = source.rpartition("#")[0]
    return (source, whole) if whole else (source,)


class Lazy:
    """A value computed on the worker that runs the item, not on the iterator's thread.

    Iterators yield ``Lazy(load, path)`` for expensive per-item work (decoding an image) so it runs
    in parallel; an exception it raises fails that item, attributed to the iterator node.
    """

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn = fn
        self.args = args

    def resolve(self) -> Any:
        return self.fn(*self.args)

    def __repr__(self) -> str:
        return f"Lazy({getattr(self.fn, '__name__', self.fn)!s}, {', '.join(map(repr, self.args))})"
