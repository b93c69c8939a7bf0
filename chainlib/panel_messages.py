"""Validation of the browser's custom messages to the control panel (see :mod:`chainlib.panel`)."""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["COMMANDS", "MAX_MESSAGE_BYTES", "id_of", "validate"]

COMMANDS: Final = ("start", "pause", "resume", "stop")
"""The command names the panel accepts."""

MAX_MESSAGE_BYTES: Final = 4096
"""Custom messages larger than this (serialized as JSON) are refused with an error reply."""

_MESSAGE_FIELDS: Final = {
    "command": frozenset({"type", "command", "id"}),
    "status_request": frozenset({"type", "id"}),
}


def id_of(content: Any) -> int | None:
    if isinstance(content, dict):
        msg_id = content.get("id")
        if isinstance(msg_id, int) and not isinstance(msg_id, bool):
            return msg_id
    return None


def validate(content: Any, buffers: list[Any] | None) -> str | None:
    """Return what is wrong with a custom message, or None if it is well-formed."""
    if not isinstance(content, dict):
        return f"message must be a JSON object, got {_json_type(content)}"
    if buffers:
        return f"binary buffers are not accepted (got {len(buffers)})"
    try:
        size = len(json.dumps(content, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        return "message is not JSON-serializable"
    if size > MAX_MESSAGE_BYTES:
        return f"message too large: {size} bytes (limit {MAX_MESSAGE_BYTES})"
    kind = content.get("type")
    if "type" not in content:
        return "missing field 'type'"
    if not isinstance(kind, str):
        return f"field 'type' must be a string, got {_json_type(kind)}"
    if kind not in _MESSAGE_FIELDS:
        return (f"unknown message type {kind[:64]!r} "
                f"(expected one of {', '.join(sorted(_MESSAGE_FIELDS))})")
    if "id" not in content:
        return "missing field 'id'"
    if id_of(content) is None:
        return f"field 'id' must be an integer, got {_json_type(content['id'])}"
    extra = sorted(str(k)[:64] for k in content.keys() - _MESSAGE_FIELDS[kind])
    if extra:
        return f"unexpected field(s) for {kind!r}: {', '.join(repr(k) for k in extra)}"
    if kind == "command":
        if "command" not in content:
            return "missing field 'command'"
        command = content["command"]
        if not isinstance(command, str):
            return f"field 'command' must be a string, got {_json_type(command)}"
        if command not in COMMANDS:
            return f"unknown command {command[:64]!r} (expected one of {', '.join(COMMANDS)})"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
