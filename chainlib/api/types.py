"""Port types: what a node's inputs and outputs carry, and which connections are allowed.

Images cross node boundaries as numpy arrays with one convention (see :mod:`chainlib.nodes.image`):
``uint8``, shape ``(H, W)`` for grayscale, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
"""The image type at node boundaries: a ``uint8`` numpy array, (H, W), (H, W, 3) or (H, W, 4)."""

_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType)


def type_name(tp: Any) -> str:
    """A short human-readable name for a port type (used in errors and ``chainlib nodes``)."""
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
    """Whether a constant ``value`` is acceptable for an input of type ``tp``."""
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
