"""The control server's routes (a Starlette app behind :class:`~.security.AuthMiddleware`).

``GET /status``    the newest snapshot (``Status.to_dict``, newest 20 failures), JSON
``GET /events``    Server-Sent Events (see :mod:`.hub`); ``Last-Event-ID`` (header, or the
                   ``last_event_id`` query parameter for a client that cannot set headers) resumes
``POST /commands`` ``{"command": "start"|"pause"|"resume"|"stop", "id": int (optional)}`` ->
                   the Python API's ``Ack.to_dict()`` plus ``id``: 200 whether accepted or not
                   (a rejection names its reason); a malformed request is a 4xx and changes nothing
``GET /info``      ``{"title", "heartbeat_interval", "retry_ms", "pull_interval",
                   "disconnect_after", "gallery", "server_time"}`` (``gallery``: whether
                   ``/gallery`` has one to show)
``GET /gallery``   the newest outputs as the notebook panel shows them (see :mod:`.gallery`):
                   ``?since=COUNTER`` -> 204 while unchanged; 404 when the server keeps none
``GET /``          the control panel as a web page (see :mod:`.page`)

Every error is ``{"error": "..."}`` with a 4xx (or 503 during a fault-injection cut) status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..run.status import Ack
from .gallery import GalleryCache
from .hub import MAX_FAILURES, Hub

__all__ = ["COMMANDS", "MAX_BODY_BYTES", "build_app"]

COMMANDS: Final = ("start", "pause", "resume", "stop")
MAX_BODY_BYTES: Final = 4096
_COMMAND_FIELDS: Final = frozenset({"command", "id"})

_NO_STORE: Final = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_NO_STORE)


def _json_text(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="application/json", headers=_NO_STORE)


def build_app(
    hub: Hub,
    runner: Any,
    *,
    info: dict[str, Any],
    page: Callable[[Request], Response] | None,
    static: dict[str, tuple[str, bytes]],
    gallery: GalleryCache | None = None,
    refuse_start: str | None = None,
) -> Starlette:
    """The Starlette app for one run. ``static`` maps a path to ``(media type, bytes)``;
    ``gallery`` (None: no ``/gallery``) encodes the run's newest outputs; ``refuse_start``: the
    reason every ``start`` command is rejected with (None: started as the Python API would)."""
    streams = 0

    async def status(request: Request) -> Response:
        return _json_text(hub.fresh().data)

    async def events(request: Request) -> Response:
        nonlocal streams
        raw = request.headers.get("last-event-id", request.query_params.get("last_event_id"))
        last: int | None = None
        if raw is not None and raw != "":
            try:
                last = int(raw)
            except ValueError:
                return error(400, f"Last-Event-ID must be an integer (a seq), got {raw[:40]!r}")
        if request.method == "HEAD":  # the headers only: a stream would never end (no body is
            # sent for HEAD, so the response never completes and its connection hangs)
            return Response(media_type="text/event-stream",
                            headers={**_NO_STORE, "x-accel-buffering": "no"})
        streams += 1
        return StreamingResponse(
            hub.stream(last, streams),
            media_type="text/event-stream",
            headers={**_NO_STORE, "x-accel-buffering": "no"},
        )

    async def commands(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return error(415, f"Content-Type must be application/json, got {ctype or 'none'!r}")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return error(413, f"request body too large (limit {MAX_BODY_BYTES} bytes)")
        try:
            content = json.loads(body)
        except ValueError as exc:  # UnicodeDecodeError included
            return error(400, f"request body is not valid JSON: {exc}")
        except RecursionError:  # "[[[[..." within the size limit: a 500 without this
            return error(400, "request body is not valid JSON: nested too deeply")
        problem = validate_command(content)
        if problem is not None:
            return error(422 if isinstance(content, dict) else 400, problem)
        name = content["command"]
        if name == "start" and refuse_start is not None:
            ack = Ack(name, False, refuse_start, runner.status())
        else:
            ack = runner.command(name)
        return JSONResponse({
            "id": content.get("id"),
            "command": ack.command,
            "accepted": ack.accepted,
            "reason": ack.reason,
            "status": ack.status.to_dict(max_failures=MAX_FAILURES),
        }, headers=_NO_STORE)

    async def info_route(request: Request) -> Response:
        return JSONResponse({**info, "server_time": time.time()}, headers=_NO_STORE)

    # not async: Starlette runs it on its thread pool, so encoding never stalls the event loop
    def gallery_route(request: Request) -> Response:
        if gallery is None:
            return error(404, "this server shows no gallery (served with gallery=False, or the "
                              "run keeps no images)")
        raw = request.query_params.get("since")
        since: int | None = None
        if raw is not None and raw != "":
            try:
                since = int(raw)
            except ValueError:
                return error(400, f"since must be an integer (a gallery counter), "
                                  f"got {raw[:40]!r}")
        _, body = gallery.answer(since)
        if body is None:
            return Response(status_code=204, headers=_NO_STORE)
        return Response(body, media_type="application/json", headers=_NO_STORE)

    async def index(request: Request) -> Response:
        if page is None:
            return error(404, "this server has no web page (its front-end files are missing)")
        return page(request)

    def static_route(path: str) -> Route:
        media, data = static[path]

        async def serve_file(request: Request) -> Response:
            return Response(data, media_type=media, headers={"cache-control": "no-cache",
                                                              "x-content-type-options": "nosniff"})

        return Route(path, serve_file, methods=["GET"])

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}")
        if exc.status_code == 404:
            return error(404, f"no route {request.url.path[:100]!r}")
        return error(exc.status_code, str(exc.detail))

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/commands", commands, methods=["POST"]),
        Route("/info", info_route, methods=["GET"]),
        Route("/gallery", gallery_route, methods=["GET"]),
        *(static_route(p) for p in static),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def validate_command(content: Any) -> str | None:
    """What is wrong with a command request body, or None if it is well-formed."""
    if not isinstance(content, dict):
        return f"request body must be a JSON object, got {type(content).__name__}"
    extra = sorted(str(k)[:64] for k in content.keys() - _COMMAND_FIELDS)
    if extra:
        return f"unexpected field(s): {', '.join(repr(k) for k in extra)}"
    if "command" not in content:
        return "missing field 'command'"
    command = content["command"]
    if not isinstance(command, str):
        return f"field 'command' must be a string, got {type(command).__name__}"
    if command not in COMMANDS:
        return f"unknown command {command[:64]!r} (expected one of {', '.join(COMMANDS)})"
    msg_id = content.get("id")
    if msg_id is not None and (not isinstance(msg_id, int) or isinstance(msg_id, bool)):
        return f"field 'id' must be an integer, got {type(msg_id).__name__}"
    return None
