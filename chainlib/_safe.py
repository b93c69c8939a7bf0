"""Untrusted text made safe for a terminal (shared by the command line and the control server's
terminal commands, which must not import each other)."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["safe"]

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def safe(text: object) -> str:
    """``text`` for the terminal: control characters (ANSI escapes, newlines, carriage returns)
    escaped as ``\\n``, ``\\x1b``..., so an untrusted name can neither forge lines nor drive the
    terminal."""
    def escape(m: re.Match[str]) -> str:
        c = m.group()
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or (
            f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return _CONTROL.sub(escape, str(text))
