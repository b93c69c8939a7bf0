"""Decorators that turn functions into node types.

Every decorator also takes ``extra`` and ``requires`` (the pip extra and the modules a node needs:
``chainlib nodes`` marks the node when they are missing and validation fails naming the pip
command) and ``check`` (validates constant inputs when the chain is validated, see
:attr:`NodeSpec.check`). Iterators may take ``listing`` and file writers ``target``, with which a
run checks the paths it will write before writing any (see :attr:`NodeSpec.listing`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .registry import build_spec, register

F = TypeVar("F", bound=Callable[..., Any])
Check = Callable[[Mapping[str, Any]], None]



def node(
    node_id: str,
    *,
    output: str = "value",
    writes_files: bool = False,
    extra: str | None = None,
    requires: tuple[str, ...] = (),
    check: Check | None = None,
    target: Callable[..., str] | None = None,
    reads: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Register a regular node: called with its inputs, returns its output.

    Return a ``TypedDict`` (annotated as such) for several named outputs; otherwise the single
    output is called ``output``. Declare a parameter ``ctx`` to receive a :class:`Context`.
    ``writes_files``: the node writes a file into its ``folder`` input and returns its path;
    resumable runs record those paths in the folder's manifest. ``reads``: inputs naming a
    file whose content decides the result (a model; see :attr:`NodeSpec.reads`).
    """

    def wrap(fn: F) -> F:
        spec = build_spec(fn, node_id, "node", output=output, writes_files=writes_files,
                          extra=extra, requires=requires, check=check, target=target,
                          reads=reads)
        fn.__chainlib_spec__ = register(spec)  # type: ignore[attr-defined]
        return fn

    return wrap


def iterator(
    node_id: str,
    *,
    output: str = "value",
    length: Callable[..., int | None] | None = None,
    extra: str | None = None,
    requires: tuple[str, ...] = (),
    check: Check | None = None,
    listing: Callable[..., list[Any]] | None = None,
    empty: str | None = None,
) -> Callable[[F], F]:
    """Register an iterator: a generator function; everything downstream runs once per item.

    ``length``, called with the same inputs, declares the number of items up front (for progress
    and ETA before the first item finishes), or None when it cannot tell (a video whose container
    does not say). ``empty``: with ``listing``, the line the command
    line prints (and exits 2) when the listing is empty, filled with the inputs
    (:attr:`NodeSpec.empty`).
    """

    def wrap(fn: F) -> F:
        spec = build_spec(fn, node_id, "iterator", output=output, length=length, extra=extra,
                          requires=requires, check=check, listing=listing, empty=empty)
        fn.__chainlib_spec__ = register(spec)  # type: ignore[attr-defined]
        return fn

    return wrap


def collector(
    node_id: str,
    *,
    collect: str,
    output: str = "value",
    rebuilds: bool = False,
    extra: str | None = None,
    requires: tuple[str, ...] = (),
    check: Check | None = None,
) -> Callable[[F], F]:
    """Register a collector: ``collect`` names the input that receives the list of per-item values
    (in item order, failed or skipped items left out); the function returns one value.

    A resumed run that skips every item as already complete does not run a collector (nor the
    nodes after it): it would get no value and replace what it built before. ``rebuilds=True``
    says the collector can rebuild its result from earlier outputs (``video.save`` from a frames
    folder), so it runs then too, with an empty list."""

    def wrap(fn: F) -> F:
        spec = build_spec(fn, node_id, "collector", output=output, collect=collect, extra=extra,
                          requires=requires, check=check, rebuilds=rebuilds)
        fn.__chainlib_spec__ = register(spec)  # type: ignore[attr-defined]
        return fn

    return wrap
