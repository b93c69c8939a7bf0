"""Talk to a control server from another process: :class:`RemoteRun` and one-shot helpers.

``RemoteRun(url)`` offers the part of :class:`~chainlib.Runner`'s interface that observers and
controllers use — ``status()``, ``command()``, ``start/pause/resume/stop()``, ``watch()``,
``wait()`` — so the notebook panel can control a run living in another process
(``ControlPanel.attach(url)``). Like the browser page it follows the run two ways: an SSE stream
(fast path, reconnecting with ``Last-Event-ID``) and a periodic ``GET /status`` (the truth, every
``pull_interval`` s), each on its own daemon thread. The newest snapshot (highest ``seq``) wins.
When the server closes it says goodbye (see :mod:`.hub`): ``server_closed`` then gives its reason,
both threads stop, commands are rejected, and an attached panel says the server closed.
An attached panel's thumbnail and gallery come from ``GET /gallery``
(:meth:`RemoteRun.fetch_gallery`, called by the panel's publisher thread), the images as the
server encoded them.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from ..run.status import (
    ACTIVE_STATES,
    RUN_STATES,
    Ack,
    ErrorInfo,
    Failure,
    NodeStatus,
    RunState,
    Status,
)
from ..run.waiting import HOOK_SLICE_S, has_wait_hooks, run_wait_hooks
from ..thumbnails import GalleryUpdate
from .gallery import parse_body

__all__ = ["RemoteError", "RemoteRun", "parse_url", "status_from_dict"]

USER_AGENT: Final = "chainlib-remote"

GALLERY_TIMEOUT: Final = 2.0
"""The longest a ``/gallery`` request may take (at most): it runs on a panel's publisher thread,
whose status messages wait meanwhile."""


class RemoteError(Exception):
    """The control server could not be reached, refused the request, or answered nonsense."""


def parse_url(url: str, token: str | None = None) -> tuple[str, str]:
    """``(base URL, token)`` from a URL such as ``http://127.0.0.1:8765/?token=...``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    query = dict(parse_qsl(parts.query))
    token = token or query.get("token")
    if not token:
        raise ValueError(f"no token in {url!r}: pass the URL the server printed (with ?token=...)")
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), token


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def status_from_dict(d: Any) -> Status:
    """Rebuild a :class:`Status` from its ``to_dict()`` form (``ValueError`` if malformed)."""
    try:
        state = d["state"]
        if state not in RUN_STATES:
            raise ValueError(f"unknown state {state!r}")
        run_state: RunState = state
        err = d["error"]
        return Status(
            run_id=str(d["run_id"]),
            state=run_state,
            seq=int(d["seq"]),
            done=int(d["done"]),
            failed=int(d["failed"]),
            skipped=int(d.get("skipped", 0)),
            total=None if d["total"] is None else int(d["total"]),
            current=tuple(str(c) for c in d["current"]),
            nodes={str(k): NodeStatus(v["state"], int(v["count"]), int(v["running"]),
                                      float(v["total_s"]), _opt_float(v.get("progress")))
                   for k, v in d["nodes"].items()},
            elapsed=float(d["elapsed"]),
            eta=_opt_float(d["eta"]),
            rate=_opt_float(d["rate"]),
            error=None if err is None else ErrorInfo(
                str(err["node"]), str(err["message"]), str(err.get("traceback", "")),
                err.get("item"), err.get("label")),
            failures=tuple(Failure(f.get("item"), f.get("label"), str(f["node"]),
                                   str(f["message"])) for f in d["failures"]),
            started_at=_opt_float(d["started_at"]),
            taken_at=float(d["taken_at"]),
            reason=None if d.get("reason") is None else str(d["reason"]),
            epoch=str(d.get("epoch", "")),
            active_s=float(d.get("active_s", 0.0)),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a status snapshot: {type(exc).__name__}: {exc}") from exc


def _iter_sse(lines: Iterator[str]) -> Iterator[tuple[str, str, str | None]]:
    """``(event, data, id)`` for each event of a ``text/event-stream`` (comments skipped)."""
    event, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data), event_id
            event, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


class RemoteRun:
    """A run served by :func:`chainlib.serve.serve` in another process (or thread).

    ``RemoteRun(url, token=None, timeout=5.0, pull_interval=5.0)``; the token is read from the
    URL's ``?token=`` unless given. Raises :class:`RemoteError` if the server cannot be reached or
    refuses the token. ``status()`` never blocks (it returns the newest snapshot received);
    ``fetch_status()`` asks the server now. ``command()`` never raises for network trouble: it
    returns a rejected :class:`~chainlib.Ack` naming the problem. ``connected`` tells whether the
    server answered within the last few seconds. Call :meth:`close` when done.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 5.0,
                 pull_interval: float = 5.0) -> None:
        self.base_url, self._token = parse_url(url, token)
        self.url = f"{self.base_url}/?{urlencode({'token': self._token})}"
        self.timeout = timeout
        self.pull_interval = pull_interval
        headers = {"authorization": f"Bearer {self._token}", "user-agent": USER_AGENT}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._lock = threading.Lock()  # guards the five fields below
        self._watchers: list[threading.Event] = []
        self._last_contact = time.monotonic()
        self._snapshot: Status | None = None
        self._no_gallery = False  # the server said it has none (404): ask no more
        self._server_closed: str | None = None  # the server's goodbye reason
        self.gallery_requests = 0
        """How many ``/gallery`` requests were sent (under the lock)."""
        try:  # fail fast: a wrong URL or token
            self.fetch_status()
            self._info: dict[str, Any] = self._get_json("/info")
        except BaseException:
            self._http.close()
            raise
        self._heartbeat_interval = float(self._info.get("heartbeat_interval", 1.0))
        self._closing = threading.Event()
        self._threads = [
            threading.Thread(target=self._follow_events, name="chainlib-remote-events",
                             daemon=True),
            threading.Thread(target=self._pull_loop, name="chainlib-remote-pull", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ the Runner-like surface

    @property
    def title(self) -> str:
        """The served chain's name."""
        return str(self._info.get("title", ""))

    @property
    def run_id(self) -> str:
        return self.status().run_id

    @property
    def server_closed(self) -> str | None:
        """Why the server closed (its goodbye's reason; its final snapshot is ``status()``), or
        None while it serves."""
        with self._lock:
            return self._server_closed

    @property
    def connected(self) -> bool:
        """Whether the server was heard from within three heartbeat intervals (never after it
        closed)."""
        with self._lock:
            if self._server_closed is not None:
                return False
            silence = time.monotonic() - self._last_contact
        return silence < max(3.0, 3 * self._heartbeat_interval)

    def status(self) -> Status:
        """The newest snapshot received (never blocks)."""
        with self._lock:
            assert self._snapshot is not None  # set by the constructor
            return self._snapshot

    def fetch_status(self) -> Status:
        """Ask the server for the newest snapshot now (raises :class:`RemoteError`)."""
        snap = status_from_dict(self._get_json("/status"))
        self._adopt(snap)
        return self.status()

    def command(self, name: str) -> Ack:
        """Send a command: the server's Ack, or a rejection naming the problem."""
        if self._closing.is_set():
            return Ack(name, False, f"detached from {self.base_url} (closed)", self.status())
        gone = self.server_closed
        if gone is not None:
            return Ack(name, False, f"the control server at {self.base_url} closed ({gone})",
                       self.status())
        try:
            response = self._http.post("/commands", json={"command": name})
        except httpx.HTTPError as exc:
            return Ack(name, False, f"cannot reach {self.base_url}: {exc}", self.status())
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200:
            message = body.get("error") if isinstance(body, dict) else None
            return Ack(name, False, str(message or f"HTTP {response.status_code}"), self.status())
        self._touch()
        snap = status_from_dict(body["status"])
        self._adopt(snap)
        return Ack(str(body["command"]), bool(body["accepted"]), str(body["reason"]), snap)

    def start(self) -> Ack:
        return self.command("start")

    def pause(self) -> Ack:
        return self.command("pause")

    def resume(self) -> Ack:
        return self.command("resume")

    def stop(self) -> Ack:
        return self.command("stop")

    def watch(self, flag: threading.Event) -> Callable[[], None]:
        """Set ``flag`` whenever a newer snapshot arrives. Returns a function removing the watch."""
        with self._lock:
            self._watchers.append(flag)

        def unwatch() -> None:
            with self._lock:
                if flag in self._watchers:
                    self._watchers.remove(flag)

        return unwatch

    def wait(self, timeout: float | None = None) -> Status:
        """Block until the run is no longer active; raises ``TimeoutError``, or
        :class:`RemoteError` if the server closes while the run is still active. Runs the wait
        hooks while it blocks, as :meth:`Runner.wait <chainlib.Runner.wait>` does (an attached
        panel's clicks are heard while a notebook cell waits here, even without subshells)."""
        flag = threading.Event()
        unwatch = self.watch(flag)
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        try:
            while (snap := self.status()).state in ACTIVE_STATES:
                gone = self.server_closed
                if gone is not None:
                    raise RemoteError(f"the control server at {self.base_url} closed ({gone}) "
                                      f"while the run was {snap.state}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"run {snap.run_id} still {snap.state} after {timeout} s")
                hooks = has_wait_hooks()
                flag.wait(min(left, HOOK_SLICE_S if hooks else 1.0))
                flag.clear()
                if hooks:
                    run_wait_hooks()
            return snap
        finally:
            unwatch()

    def enable_preview(self) -> None:
        """A no-op: the server keeps the images (unless served with ``gallery=False``), see
        :meth:`fetch_gallery`."""

    def preview(self) -> None:
        return None

    def gallery(self) -> tuple[()]:
        """No images are kept here (the server encodes them: see :meth:`fetch_gallery`)."""
        return ()

    def fetch_gallery(self, since: int | None) -> tuple[int | None, GalleryUpdate | None]:
        """``(counter, update)``: the served gallery if its counter moved on from ``since``.

        A panel's thumbnail function (see :class:`chainlib.publisher.Publisher`): ``update`` is
        what the panel's ``thumbnail``, ``thumbnail_label`` and ``gallery`` traits become, the
        server's images as they came (JPEG / PNG bytes, not encoded again), or None when the
        server has nothing showable yet. Blocks for at most :data:`GALLERY_TIMEOUT` s, so never
        call it on a kernel's main thread. Never raises: while the gallery is unchanged (204),
        and on any trouble (unreachable, a refusal, a malformed body) it returns
        ``(since, None)``, so the panel keeps what it shows; after a 404 (a server without a
        gallery) it asks no more. ``connected`` is not affected.
        """
        with self._lock:
            if self._no_gallery or self._closing.is_set():
                return since, None
            self.gallery_requests += 1
        params = {} if since is None else {"since": str(since)}
        try:
            response = self._http.get("/gallery", params=params,
                                      timeout=min(self.timeout, GALLERY_TIMEOUT))
        except (httpx.HTTPError, RuntimeError):  # RuntimeError: close() closed the client
            return since, None
        if response.status_code == 404:
            with self._lock:
                self._no_gallery = True
            return since, None
        if response.status_code != 200:  # 204: unchanged; anything else: try again later
            return since, None
        try:
            return parse_body(response.content)
        except ValueError:
            return since, None

    def close(self) -> None:
        """Stop following the run (the run itself goes on)."""
        self._closing.set()
        self._http.close()  # also ends a stream read in progress
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=self.timeout + 1)

    def __enter__(self) -> RemoteRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteRun {self.base_url} {self.status()}>"

    # ------------------------------------------------------------------ internals

    def _get_json(self, path: str) -> Any:
        try:
            response = self._http.get(path)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self.base_url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise RemoteError(f"{self.base_url}{path} did not answer JSON "
                              f"(HTTP {response.status_code})") from exc
        if response.status_code != 200:
            message = body.get("error") if isinstance(body, dict) else None
            raise RemoteError(f"{self.base_url}{path}: HTTP {response.status_code}: {message}")
        return body

    def _touch(self) -> None:
        with self._lock:
            self._last_contact = time.monotonic()

    def _adopt(self, snap: Status) -> None:
        with self._lock:
            self._last_contact = time.monotonic()
            if self._snapshot is not None and snap.seq <= self._snapshot.seq:
                return
            self._snapshot = snap
            watchers = list(self._watchers)
        for flag in watchers:
            flag.set()

    def _goodbye(self, content: Any) -> None:
        """The server is closing: keep its final snapshot and reason, follow no more."""
        reason = "closed"
        if isinstance(content, dict):
            with contextlib.suppress(ValueError):
                self._adopt(status_from_dict(content.get("status")))
            if isinstance(content.get("reason"), str) and content["reason"]:
                reason = content["reason"]
        with self._lock:
            self._server_closed = reason
            watchers = list(self._watchers)
        for flag in watchers:  # an attached panel's publisher says goodbye in its turn
            flag.set()

    def _pull_loop(self) -> None:
        while not self._closing.wait(self.pull_interval) and self.server_closed is None:
            # on failure `connected` turns False; the stream thread keeps trying too
            with contextlib.suppress(RemoteError, ValueError):
                self.fetch_status()

    def _follow_events(self) -> None:
        retry = 0.5
        while not self._closing.is_set():
            last = str(self.status().seq)
            try:
                read_timeout = max(3.0, 3 * self._heartbeat_interval)
                with self._http.stream(
                    "GET", "/events", headers={"last-event-id": last},
                    timeout=httpx.Timeout(self.timeout, read=read_timeout),
                ) as response:
                    if response.status_code != 200:
                        raise RemoteError(f"/events: HTTP {response.status_code}")
                    for event, data, _ in _iter_sse(response.iter_lines()):
                        if self._closing.is_set():
                            return
                        if event == "status":
                            self._adopt(status_from_dict(json.loads(data)))
                        elif event == "goodbye":
                            self._goodbye(json.loads(data))
                            return
                        else:
                            self._touch()
            except (httpx.HTTPError, RemoteError, ValueError):
                pass
            self._closing.wait(retry)
