"""Who may talk to a control server: token, origin and host checks (a pure ASGI middleware).

Every route needs the server's random token, found in this order:

1. a header: ``Authorization: Bearer TOKEN`` or ``X-Chainlib-Token: TOKEN``;
2. the query parameter ``?token=TOKEN`` (GET only: the link printed at start);
3. the cookie ``chainlib-token-PORT`` (set by the server, see below; cookies are not scoped by
   port, hence the port in the name).

``GET /?token=...`` with the right token sets the cookie (``HttpOnly``, ``SameSite=Lax``) and
redirects to ``/`` so the token does not stay in the address bar or the history; the page then
works from the cookie, and sends the token in a header for commands.

Commands (any method other than GET / HEAD) must carry the token in a header, never only a cookie
or a query parameter: a third-party page can make a browser send cookies, but not custom headers
(without CORS, which this server never grants), so it cannot forge a command (no CSRF).

A request carrying an ``Origin`` header other than the server's own origin is refused (403), and
so is, on a loopback server, a ``Host`` header that is not a loopback name (DNS rebinding).
Tokens are compared in constant time. Every refusal is a JSON ``{"error": ...}`` with a 4xx code.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from starlette.requests import cookie_parser

__all__ = ["TOKEN_HEADER", "AuthMiddleware", "cookie_name", "is_loopback", "new_token"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_HEADER: Final = "x-chainlib-token"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD"})
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.", "ip6-localhost"})


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def cookie_name(port: int) -> str:
    """The name of the cookie holding the token of the server on ``port``."""
    return f"chainlib-token-{port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP literal, possibly in brackets, or a name) is a loopback address."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8000`` -> ``::1``, ``a:1`` -> ``a``)."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


async def send_json(send: Send, status: int, body: dict[str, Any],
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send a whole JSON response (used for refusals, before any route runs)."""
    data = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            *(headers or []),
        ],
    })
    await send({"type": "http.response.body", "body": data})


class AuthMiddleware:
    """Refuse every HTTP request that lacks the token or comes from a foreign origin or host."""

    def __init__(self, app: ASGIApp, *, token: str, port: int, check_host: bool) -> None:
        self.app = app
        self._token = token.encode()
        self._cookie = cookie_name(port)
        self._check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off and websockets are disabled
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, message, extra = refusal
            await send_json(send, status, {"error": message}, extra)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        if scope["method"] == "GET" and scope["path"] == "/" and "token" in dict(
                parse_qsl(query, keep_blank_values=True)):
            await self._login_redirect(send, query)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[str, str]
                 ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        host = headers.get("host", "")
        if self._check_host and not is_loopback(_host_name(host)):
            return 403, (f"host {host[:100]!r} refused: this server only answers on a loopback "
                         f"address"), []
        origin = headers.get("origin")
        if origin is not None:
            scheme = scope.get("scheme", "http")
            if origin != f"{scheme}://{host}":
                return 403, (f"cross-origin request from {origin[:100]!r} refused (this server "
                             f"grants no CORS)"), []
        supplied, where = self._supplied_token(scope, headers)
        if supplied is None:
            where_to = ("in the Authorization: Bearer header or the X-Chainlib-Token header"
                        if scope["method"] not in _SAFE_METHODS else
                        "as ?token=..., in the Authorization: Bearer header or the "
                        "X-Chainlib-Token header")
            return 401, f"missing token: pass it {where_to}", [(b"www-authenticate", b"Bearer")]
        if not hmac.compare_digest(supplied.encode(), self._token):
            return 403, "invalid token", []
        if scope["method"] not in _SAFE_METHODS and where != "header":
            return 403, (f"{scope['method']} requests need the token in the Authorization or "
                         f"X-Chainlib-Token header (a {where} is not enough)"), []
        return None

    def _supplied_token(self, scope: Scope, headers: dict[str, str]
                        ) -> tuple[str | None, str]:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip(), "header"
        if TOKEN_HEADER in headers:
            return headers[TOKEN_HEADER].strip(), "header"
        # The query before the cookie: a link printed by a restarted server on the same port
        # must win over the old server's cookie. Read for every method, so that a command with
        # the token only in its query is told where the token belongs (see _refusal).
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                               keep_blank_values=True))
        if "token" in query:
            return query["token"], "query parameter"
        if "cookie" in headers:
            # Starlette's parser reads cookies as browsers do: http.cookies.SimpleCookie drops
            # every cookie after one it finds invalid (a space or a JSON value), and cookies are
            # not scoped by port, so any other app on this host could lock the page out.
            jar = cookie_parser(headers["cookie"])
            if self._cookie in jar:
                return jar[self._cookie], "cookie"
        return None, ""

    async def _login_redirect(self, send: Send, query: str) -> None:
        """``GET /?token=...`` (already checked): set the cookie, redirect to the bare URL."""
        rest = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]
        location = "/" + (f"?{urlencode(rest)}" if rest else "")
        token = self._token.decode()
        # Lax, not Strict: a Strict cookie set by this redirect is not sent to the page it leads
        # to when the click came from another site (a notebook on localhost:8888 printing this
        # 127.0.0.1 link), so the page was a 401. Lax sends it on top-level GETs only, and a
        # GET changes nothing; commands need the header (see the module docstring).
        cookie = f"{self._cookie}={token}; Path=/; HttpOnly; SameSite=Lax"
        await send({
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode()),
                (b"set-cookie", cookie.encode()),
                (b"cache-control", b"no-store"),
                (b"content-length", b"0"),
            ],
        })
        await send({"type": "http.response.body", "body": b""})
