"""Port types: what a node's inputs and outputs carry, and which connections are allowed.

Images cross node boundaries as numpy arrays with one convention (see :mod:`chainlib.nodes.image`):
``uint8``, shape ``(H, W)`` for grayscale, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
"""The image type at node boundaries: a ``uint8`` numpy array, (H, W), (H, W, 3) or (H, W, 4)."""

_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType)


@dataclass(frozen=True)
class Range:
    """The numbers a numeric input accepts: ``Annotated[int, Range(1, 100)]``.

    Constants are checked when the chain is validated (``validate`` and ``run`` say the same);
    a node still checks linked values itself. ``lo_open`` excludes ``lo``.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of range (None if it is in range or not a number)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        lo, hi = self.lo, self.hi
        too_low = lo is not None and (value <= lo if self.lo_open else value < lo)
        if not too_low and not (hi is not None and value > hi):
            return None
        if lo is not None and hi is not None:
            want = (f"greater than {lo:g} and at most {hi:g}" if self.lo_open
                    else f"between {lo:g} and {hi:g}")
        elif lo is not None:
            want = f"greater than {lo:g}" if self.lo_open else f"at least {lo:g}"
        else:
            want = f"at most {hi:g}"
        return f"must be {want}, got {value!r}"

    def describe(self) -> dict[str, Any]:
        return {"min": self.lo, "max": self.hi, **({"min_open": True} if self.lo_open else {})}


def strip_annotated(tp: Any) -> Any:
    """``tp`` without its ``Annotated`` metadata."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def ranges_of(tp: Any) -> tuple[Range, ...]:
    """The :class:`Range` metadata of an input type (outer ``Annotated`` only)."""
    if typing.get_origin(tp) is not Annotated:
        return ()
    return tuple(m for m in tp.__metadata__ if isinstance(m, Range))


def non_finite(value: Any, limit: int = 10_000) -> float | None:
    """The first NaN or infinite float in ``value`` (looking into lists, tuples and dicts, at
    most ``limit`` values), or None."""
    todo = [value]
    seen = 0
    while todo and seen < limit:
        v = todo.pop()
        seen += 1
        if isinstance(v, float) and not math.isfinite(v):
            return v
        if isinstance(v, (list, tuple)):
            todo.extend(v)
        elif isinstance(v, dict):
            todo.extend(v.values())
    return None


def type_name(tp: Any) -> str:
    """A short human-readable name for a port type (used in errors and ``chainlib nodes``)."""
    tp = strip_annotated(tp)
    if tp is Any:
        return "any"
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in _UNION_TYPES:
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if tp is np.ndarray or origin is np.ndarray:
        return "Image"
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(tp, "__name__", str(tp))


def _base(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is np.ndarray or origin is np.ndarray:
        return np.ndarray
    return origin if origin is not None else tp


def connectable(out_type: Any, in_type: Any) -> bool:
    """Whether an output of ``out_type`` may feed an input of ``in_type``."""
    out_type, in_type = strip_annotated(out_type), strip_annotated(in_type)
    if out_type is Any or in_type is Any:
        return True
    in_origin = typing.get_origin(in_type)
    if in_origin in _UNION_TYPES:
        return any(connectable(out_type, a) for a in typing.get_args(in_type))
    out_origin = typing.get_origin(out_type)
    if out_origin in _UNION_TYPES:
        return all(connectable(a, in_type) for a in typing.get_args(out_type))
    if in_origin is Literal:
        if out_origin is Literal:
            return set(typing.get_args(out_type)) <= set(typing.get_args(in_type))
        # A computed string may feed a choice input; the value is checked when the node runs.
        return any(isinstance(v, _base(out_type)) for v in typing.get_args(in_type))
    if out_origin is Literal:
        return all(accepts_value(in_type, v) for v in typing.get_args(out_type))
    out_b, in_b = _base(out_type), _base(in_type)
    if in_b is float and out_b is int:
        return True
    if in_b is Path and out_b is str:
        return True
    try:
        return bool(issubclass(out_b, in_b))
    except TypeError:
        return bool(out_b == in_b)


def accepts_value(tp: Any, value: Any) -> bool:
    """Whether a constant ``value`` is acceptable for an input of type ``tp`` (its type; see
    :class:`Range` for the numbers it accepts)."""
    tp = strip_annotated(tp)
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in _UNION_TYPES:
        return any(accepts_value(a, value) for a in typing.get_args(tp))
    if origin is Literal:
        return value in typing.get_args(tp)
    if tp is type(None) or tp is None:
        return value is None
    base = _base(tp)
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is Path:
        return isinstance(value, (str, Path))
    if base in (list, tuple):
        return isinstance(value, (list, tuple))
    try:
        return isinstance(value, base)
    except TypeError:
        return True
