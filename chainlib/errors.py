"""Exceptions raised by chainlib."""

from __future__ import annotations


class ChainError(ValueError):
    """A chain (or chain file) is invalid.

    ``node`` and ``input`` name the offending node instance and input when known, and ``where``
    gives a JSON path for errors found while reading a chain file.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        input: str | None = None,
        where: str | None = None,
    ) -> None:
        self.node = node
        self.input = input
        self.where = where
        parts = []
        if where:
            parts.append(f"at {where}")
        if node:
            parts.append(f"node {node!r}" + (f", input {input!r}" if input else ""))
        prefix = (", ".join(parts) + ": ") if parts else ""
        super().__init__(prefix + message)
        self.message = message


class RunStopped(BaseException):
    """Raised inside a node by ``ctx.checkpoint()`` when the run is being stopped.

    It derives from BaseException so that a node's ``except Exception`` cannot swallow it.
    """
