"""The command line's side of the control server: ``--serve [HOST:]PORT`` and the one-shot
``chainlib status|pause|resume|stop URL`` commands (exit codes in :data:`EXIT_CODES`)."""

from __future__ import annotations

import json
from typing import Any, Final, TextIO

import httpx

from .._safe import safe
from ..run.status import Status
from .client import parse_url, status_from_dict

__all__ = ["EXIT_CODES", "format_status", "parse_address", "remote_command", "remote_status"]

EXIT_ACCEPTED: Final = 0
EXIT_REJECTED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
EXIT_CODES: Final = {
    EXIT_ACCEPTED: "the command was accepted (status: the server answered)",
    EXIT_REJECTED: "the run rejected the command (the reason is printed)",
    EXIT_USAGE: "bad URL or arguments",
    EXIT_UNREACHABLE: "the server could not be reached, refused the token, or is not a chainlib "
                      "control server",
}


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> ``(host, port)``; the host defaults to 127.0.0.1 (IPv6 in brackets)."""
    text = text.strip()
    host, port_text = "127.0.0.1", text
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1:close + 2] != ":":
            raise ValueError(f"--serve {text!r}: expected [IPV6]:PORT")
        host, port_text = text[1:close], text[close + 2:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if not host or ":" in host:
            raise ValueError(f"--serve {text!r}: expected [HOST:]PORT (IPv6 in brackets)")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--serve {text!r}: the port must be a number, "
                         f"got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--serve {text!r}: the port must be in 0..65535")
    return host, port


def format_status(s: Status) -> str:
    """One line: ``run <id> #<seq> <state>: done/total, failed, elapsed, ETA, current node(s)``,
    and the last error's on a second; names and messages with control characters escaped (they
    come from the run's files and nodes, through a server)."""
    total = "?" if s.total is None else str(s.total)
    parts = [f"run {safe(s.run_id or '-')} #{s.seq} {s.state}: {s.done}/{total} done"]
    if s.failed:
        parts.append(f"{s.failed} failed")
    parts.append(f"elapsed {s.elapsed:.1f} s")
    if s.eta is not None and s.active:
        parts.append(f"ETA {s.eta:.0f} s")
    if s.current:
        parts.append("running " + safe(", ".join(s.current)))
    line = ", ".join(parts)
    if s.error is not None:
        line += f"\nlast error in node {safe(s.error.node)}: {safe(s.error.message)}"
    return line


def _request(url: str, method: str, path: str, body: Any, timeout: float
             ) -> tuple[int, Any]:
    base, token = parse_url(url)
    headers = {"authorization": f"Bearer {token}", "user-agent": "chainlib-cli"}
    with httpx.Client(base_url=base, headers=headers, timeout=timeout) as client:
        response = client.request(method, path, json=body)
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return response.status_code, payload


def _call(url: str, method: str, path: str, body: Any, timeout: float, err: TextIO
          ) -> tuple[int, Any] | int:
    """``(status code, payload)``, or an exit code after printing what went wrong."""
    try:
        return _request(url, method, path, body, timeout)
    except ValueError as exc:
        print(f"chainlib: {safe(exc)}", file=err)
        return EXIT_USAGE
    except httpx.HTTPError as exc:
        print(f"chainlib: cannot reach {safe(url.split('?')[0])}: {safe(exc)}", file=err)
        return EXIT_UNREACHABLE


def _not_ours(url: str, what: str, problem: object, err: TextIO) -> int:
    print(f"chainlib: {safe(url.split('?')[0])} is not a chainlib control server: its {what} is "
          f"not one ({safe(problem)})", file=err)
    return EXIT_UNREACHABLE


def _refused(code: int, payload: Any, err: TextIO) -> int:
    message = payload.get("error") if isinstance(payload, dict) else None
    print(f"chainlib: the server answered HTTP {code}: {safe(message or 'no reason given')}",
          file=err)
    return EXIT_UNREACHABLE if code in (401, 403) or code >= 500 else EXIT_USAGE


def remote_status(url: str, *, as_json: bool, out: TextIO, err: TextIO,
                  timeout: float = 10.0) -> int:
    """``chainlib status URL``: print the run's snapshot (one line, or JSON)."""
    result = _call(url, "GET", "/status", None, timeout, err)
    if isinstance(result, int):
        return result
    code, payload = result
    if code != 200:
        return _refused(code, payload, err)
    try:
        snap = status_from_dict(payload)
    except ValueError as exc:  # another server on that port: a clear error, not a traceback
        return _not_ours(url, "/status answer", exc, err)
    if as_json:
        print(json.dumps(payload, indent=2), file=out)
    else:
        print(format_status(snap), file=out)
    return EXIT_ACCEPTED


def remote_command(url: str, command: str, *, out: TextIO, err: TextIO,
                   timeout: float = 10.0) -> int:
    """``chainlib pause|resume|stop|start URL``: send the command, print the ack."""
    result = _call(url, "POST", "/commands", {"command": command}, timeout, err)
    if isinstance(result, int):
        return result
    code, payload = result
    if code != 200:
        return _refused(code, payload, err)
    try:
        accepted, reason = payload["accepted"], payload["reason"]
        snap = status_from_dict(payload["status"])
        if not isinstance(accepted, bool):
            raise ValueError(f"'accepted' is {accepted!r}")
    except (ValueError, KeyError, TypeError) as exc:
        return _not_ours(url, "answer to a command", exc, err)
    print(f"{command}: {'accepted' if accepted else 'rejected'} ({safe(reason)})", file=out)
    print(format_status(snap), file=out)
    return EXIT_ACCEPTED if accepted else EXIT_REJECTED
