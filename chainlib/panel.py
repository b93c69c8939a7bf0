"""The Jupyter control panel: an anywidget that follows a :class:`~chainlib.Runner`.

``ControlPanel(run)`` displays the run's status, a Play / Pause / Stop bar, a thumbnail of the
newest output and a gallery of the newest items (before -> after). The front end
(``widget/panel.js``) is described in ``widget/README.md``; the contract is the "Widget
protocol" section of the design brief:

Kernel -> browser (synced traits, written only by this panel's publisher thread):
    ``status``      the newest ``Status.to_dict(max_failures=20)`` (coalesced, see below)
    ``heartbeat``   ``time.time()``, refreshed about once a second while the run is active
                    (running, pausing, paused, stopping)
    ``thumbnail`` / ``thumbnail_label``   a small JPEG (PNG with alpha) of the newest output
    ``gallery``     the newest finished items, newest first: ``[{"label", "after", "before"}]``,
                    images as bytes (binary buffers; ``before`` None where the chain's iterator
                    gives no image); at most ``GALLERY_MAX_BYTES`` of images per message
    ``title``, ``pull_interval``, ``fast_pull_interval``, ``command_timeout``, ``disconnect_after``
    ``resumable``   ``Runner(chain, resume=True)`` works for the run's chain
                    (``Runner.can_resume``): what the panel advises once its kernel restarted
    ``kernel``      ``{"busy", "busy_since", "hears_clicks", "pid"}``: whether a cell is running on
                    the kernel's main shell (since when), whether this panel's messages are handled
                    off the main shell right now (a subshell, or ``Runner.wait`` pumping them), and
                    the kernel's process id; published at once on change

All of these are owned by the kernel: an ipywidgets ``update`` from a browser that tries to set
any of them is refused with an error reply, changes nothing and is echoed nowhere.

Browser -> kernel (anywidget custom messages), each answered with :meth:`ControlPanel.send`::

    {"type": "command", "command": "start"|"pause"|"resume"|"stop", "id": int}
        -> {"type": "ack", "id", "command", "accepted", "reason", "status"}
    {"type": "status_request", "id": int}
        -> {"type": "status", "id", "status"}
    anything else
        -> {"type": "error", "id": <the id if it is an int, else None>, "error": "..."}

Kernel -> browser, best effort, when the kernel shuts down or restarts (the comm stays open)::

    {"type": "goodbye", "reason": "kernel shutting down", "status": <the final snapshot>}

and, for a panel attached to a served run (``ControlPanel.attach``), when that server closes::

    {"type": "goodbye", "cause": "server", "reason": <the server's>, "status": <its final one>}

Busy kernel (see :mod:`chainlib.kernel`): the panel's comm honours the subshell the front end
sends on, so with comms over subshells clicks are handled while a cell blocks the main shell;
without them, ``Runner.wait`` handles the panel's messages while it blocks. At kernel shutdown
every panel stops its run (reason "kernel shutting down") and says goodbye; its comm
stays open (closing it would remove the views before they can say so).

Publishing. One daemon thread per panel waits on the runner's watch flag and publishes the newest
snapshot, coalesced: at most ``max_rate`` trait messages a second, a state transition at once, the
last value always flushed (within ``1 / max_rate`` s of the last change), a change of the
``kernel`` trait at once. While the run is
active, the heartbeat (about 1/s) carries the whole snapshot too, and the final snapshot is
re-sent 1, 2 and 4 s after the run ends, so a lost update heals without a pull. Each message is one
``hold_sync`` block under one lock, so a message carries a whole snapshot. The thread never
touches the notebook's main thread, so status (and the heartbeat) keep flowing while a cell
blocks. Replies to custom messages are sent from the kernel's shell (where the handler runs);
the handler only calls ``Runner.command``, which records the request under the runner's lock
and returns at once.
"""

from __future__ import annotations

import math
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import traitlets

from ._extras import extra_error

try:
    import anywidget
except ModuleNotFoundError as exc:  # the panel extra is not installed: say how to get it
    raise extra_error("chainlib.panel", "panel", [exc.name or "anywidget"]) from exc

from ._bundle import front_end_module
from .kernel import PanelLink, initial_facts
from .panel_messages import COMMANDS, MAX_MESSAGE_BYTES, id_of, validate
from .publisher import Publisher
from .run.runner import Runner
from .run.status import Status
from .thumbnails import GalleryUpdate, gallery_update

if TYPE_CHECKING:
    from .serve import RemoteRun

__all__ = ["COMMANDS", "MAX_MESSAGE_BYTES", "ControlPanel", "FaultInjection"]

MAX_FAILURES: Final = 20
"""How many of the newest failures a published snapshot keeps."""


def _find_widget_dir() -> Path:
    """``chainlib/_widget`` in an installed wheel (its ``panel.js`` is the built bundle), else
    ``<repo>/widget`` in a source checkout (``panel.js`` and its imports are bundled at import)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_widget", here.parent / "widget"):
        if (candidate / "panel.js").is_file() and (candidate / "panel.css").is_file():
            return candidate
    raise ImportError(
        f"chainlib.panel: the front end (panel.js, panel.css) was found neither in "
        f"{here / '_widget'} nor in {here.parent / 'widget'}; reinstall chainlib"
    )


WIDGET_DIR: Final = _find_widget_dir()


@dataclass(frozen=True)
class FaultInjection:
    """Test-only: lose a seeded fraction of the panel's outgoing messages.

    ``drop_updates``: fraction of *status* trait messages that are not sent (the publish is
    skipped, exactly as if the message were lost on the way; the next publish carries a newer
    snapshot). Heartbeat-only and thumbnail-only messages are never dropped, and when a status
    message is dropped the heartbeat / thumbnail it would have carried are still sent, so the
    front end stays "connected" and must converge through its pulls.
    ``drop_acks``: fraction of replies (acks *and* status replies; error replies too) not sent.
    ``seed``: seeds the two independent random streams (one per kind), so a run is reproducible.
    """

    drop_updates: float = 0.0
    drop_acks: float = 0.0
    seed: int | None = 0

    def __post_init__(self) -> None:
        for name in ("drop_updates", "drop_acks"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultInjection.{name} must be in [0, 1], got {value!r}")


class _Dropper:
    """A seeded coin for one kind of message (used by one thread only)."""

    def __init__(self, fraction: float, seed: int | None) -> None:
        self.fraction = fraction
        self._rng = random.Random(seed)
        self.dropped = 0

    def drop(self) -> bool:
        if self.fraction <= 0.0:
            return False
        if self._rng.random() < self.fraction:
            self.dropped += 1
            return True
        return False


class ControlPanel(anywidget.AnyWidget):
    """Play / Pause / Stop control panel for one :class:`~chainlib.Runner` (display it in Jupyter).

    ``ControlPanel(run, pull_interval=5.0, max_rate=10.0, heartbeat_interval=1.0,
    thumbnail=True, fault_injection=None)``

    - Works for a run started before (or after) the panel is displayed, and for any number of
      views of the same panel (replies are broadcast; each view ignores ids it did not send).
    - ``max_rate``: at most this many status messages a second (state transitions go out at once).
    - ``heartbeat_interval``: seconds between heartbeats while the run is active.
    - ``thumbnail``: show a small preview of the newest finished item's image output.
    - ``fault_injection``: a :class:`FaultInjection` (tests only) that drops a seeded fraction of
      status updates and/or replies, to prove the front end converges through its pulls.

    Call :meth:`close` to stop the publisher thread and close the widget.
    ``publish_count`` counts trait messages published, ``reply_count`` replies sent,
    ``dropped_updates`` / ``dropped_replies`` messages lost on purpose by fault injection.
    """

    _esm = front_end_module(WIDGET_DIR / "panel.js")  # one module, built from widget/ sources
    _css = WIDGET_DIR / "panel.css"

    status = traitlets.Dict().tag(sync=True)
    heartbeat = traitlets.Float(0.0).tag(sync=True)
    pull_interval = traitlets.Float(5.0).tag(sync=True)
    fast_pull_interval = traitlets.Float(0.5).tag(sync=True)
    command_timeout = traitlets.Float(5.0).tag(sync=True)
    disconnect_after = traitlets.Float(3.0).tag(sync=True)
    thumbnail = traitlets.Bytes(b"").tag(sync=True)
    thumbnail_label = traitlets.Unicode("").tag(sync=True)
    gallery = traitlets.List(traitlets.Dict()).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    kernel = traitlets.Dict().tag(sync=True)
    resumable = traitlets.Bool(True).tag(sync=True)

    def __init__(
        self,
        runner: Runner | RemoteRun,
        *,
        pull_interval: float = 5.0,
        max_rate: float = 10.0,
        heartbeat_interval: float = 1.0,
        thumbnail: bool = True,
        fault_injection: FaultInjection | None = None,
    ) -> None:
        for name, value in (("pull_interval", pull_interval), ("max_rate", max_rate),
                            ("heartbeat_interval", heartbeat_interval)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        self._runner = runner
        self._max_rate = float(max_rate)
        self._heartbeat_interval = float(heartbeat_interval)
        self._show_thumbnail = bool(thumbnail)
        self._faults = fault_injection
        seed = fault_injection.seed if fault_injection else None
        self._drop_updates = _Dropper(fault_injection.drop_updates if fault_injection else 0.0,
                                      seed)
        self._drop_replies = _Dropper(fault_injection.drop_acks if fault_injection else 0.0,
                                      None if seed is None else seed + 1)
        self._lock = threading.Lock()  # one lock around every trait message
        self._reply_lock = threading.Lock()
        self._resend_status = False  # under _lock: the message being built re-sends ``status``
        self.publish_count = 0
        self.reply_count = 0
        if self._show_thumbnail:
            runner.enable_preview()
        first = runner.status()
        # Initial values travel with the widget's comm_open (set on the constructing thread,
        # before the publisher exists); every later write happens on the publisher thread.
        super().__init__(
            status=first.to_dict(max_failures=MAX_FAILURES),
            heartbeat=time.time(),
            pull_interval=float(pull_interval),
            # a view says disconnected after three heartbeats of silence, not between two slow ones
            disconnect_after=max(3.0, 3 * float(heartbeat_interval)),
            title=str(getattr(runner, "title", "") or getattr(getattr(runner, "chain", None),
                                                              "name", "") or "chain"),
            kernel=initial_facts(),
            # an attached run (RemoteRun) does not say: unknown counts as yes
            resumable=bool(getattr(runner, "can_resume", True)),
        )
        self.on_msg(ControlPanel._on_custom_msg)
        self._closing = threading.Event()
        self._flag = threading.Event()
        self._link = PanelLink(self.comm, self._flag, self._kernel_shutdown)
        self._unwatch: Callable[[], None] | None = runner.watch(self._flag)
        publisher = Publisher(
            runner, self._link, self._flag, self._closing, first, self._unwatch,
            publish=weakref.WeakMethod(self._publish),
            thumbnail=weakref.WeakMethod(self._make_thumbnail) if self._show_thumbnail else None,
            period=1.0 / self._max_rate, heartbeat_interval=self._heartbeat_interval,
            farewell=weakref.WeakMethod(self._server_closed),
        )
        self._publisher = threading.Thread(
            target=publisher.run, name=f"chainlib-panel-{str(self.model_id)[:8]}", daemon=True,
        )
        self._publisher.start()

    # ------------------------------------------------------------------ public

    @property
    def runner(self) -> Runner | RemoteRun:
        """The runner this panel controls."""
        return self._runner

    @property
    def dropped_updates(self) -> int:
        """Status messages dropped by fault injection."""
        return self._drop_updates.dropped

    @property
    def dropped_replies(self) -> int:
        """Replies dropped by fault injection."""
        return self._drop_replies.dropped

    @property
    def publisher_thread(self) -> threading.Thread:
        """The one thread that writes this panel's traits."""
        return self._publisher

    _owns_run = True  # False for a panel attached to a run served by another process

    @classmethod
    def attach(cls, url: str, **options: Any) -> ControlPanel:
        """A panel for a run served by another process (``chainlib run CHAIN --serve PORT`` or
        ``Runner.serve()``): ``url`` is the URL it printed, token included. The panel shows and
        controls that run exactly as a local one (through a :class:`chainlib.serve.RemoteRun`),
        thumbnail and gallery included (the server's ``/gallery``, asked at most once a second
        by the publisher thread; a server without a gallery leaves them empty);
        closing the panel or restarting this kernel leaves the run going, so a new kernel can
        attach again. ``options`` are the constructor's (``pull_interval``, ...)."""
        from .serve import RemoteRun

        remote = RemoteRun(url)
        try:
            panel = cls(remote, **options)
        except BaseException:
            remote.close()
            raise
        panel._owns_run = False
        return panel

    def close(self) -> None:
        """Stop the publisher thread, stop watching the runner and close the widget's comm."""
        self._stop_publishing()
        self._detach()
        super().close()

    def _detach(self) -> None:
        if not self._owns_run:
            close = getattr(self._runner, "close", None)
            if close is not None:
                close()

    def _stop_publishing(self) -> None:
        closing = getattr(self, "_closing", None)
        if closing is not None and not closing.is_set():
            closing.set()
            self._flag.set()
            self._link.close()
            if self._unwatch is not None:
                self._unwatch()
                self._unwatch = None
            publisher = self._publisher
            if publisher is not threading.current_thread() and publisher.is_alive():
                publisher.join(timeout=5.0)

    def _kernel_shutdown(self, reason: str, deadline: float) -> None:
        """The kernel is shutting down or restarting: stop the run (unless it lives in another
        process: an attached run goes on), say goodbye. The comm stays open: closing it makes
        ipywidgets destroy the model and remove every view, so the panel could not say that the
        kernel restarted (the process ends anyway)."""
        runner = self._runner
        if self._owns_run and isinstance(runner, Runner):  # a local run
            runner.stop(reason=reason)  # already stopped by the shutdown, unless it came first
            try:
                final = runner.wait(max(0.0, deadline - time.monotonic()))
            except TimeoutError:  # a node that does not reach a checkpoint: say what is true now
                final = runner.status()
        else:
            final = runner.status()
        self._stop_publishing()  # nothing is published after the goodbye
        self._detach()
        self.send({"type": "goodbye", "reason": reason,
                   "status": final.to_dict(max_failures=MAX_FAILURES)})

    def _server_closed(self, reason: str, final: Status) -> None:
        """The server of an attached run closed (on the publisher thread, after the final
        snapshot went out): say goodbye as a kernel shutting down does, and follow no more."""
        self._stop_publishing()
        self._detach()
        self.send({"type": "goodbye", "cause": "server", "reason": reason,
                   "status": final.to_dict(max_failures=MAX_FAILURES)})

    def __repr__(self) -> str:
        return f"<ControlPanel {self.title!r} #{self.status.get('seq')} {self.status.get('state')}>"

    # ------------------------------------------------------------------ custom messages

    def _on_custom_msg(self, content: Any, buffers: list[Any] | None) -> None:
        """Handle one custom message (on the kernel's shell thread). Always replies once, except
        to a status request while an attached run's server cannot be reached."""
        self._link.view_message()
        if (not self._owns_run and isinstance(content, dict)
                and content.get("type") == "status_request" and not self._reachable()):
            return  # as for a lost kernel: silence, so the front end says `disconnected`
        try:
            reply = self._answer(content, buffers)
        except Exception as exc:  # never leave a request unanswered
            reply = {"type": "error", "id": id_of(content),
                     "error": f"internal error: {type(exc).__name__}: {exc}"}
        self._reply(reply)

    def _answer(self, content: Any, buffers: list[Any] | None) -> dict[str, Any]:
        problem = validate(content, buffers)
        if problem is not None:
            return {"type": "error", "id": id_of(content), "error": problem}
        msg_id: int = content["id"]
        if content["type"] == "status_request":
            return {"type": "status", "id": msg_id, "status": self._snapshot_dict()}
        ack = self._runner.command(content["command"])
        return {
            "type": "ack",
            "id": msg_id,
            "command": ack.command,
            "accepted": ack.accepted,
            "reason": ack.reason,
            "status": ack.status.to_dict(max_failures=MAX_FAILURES),
        }

    def _reachable(self) -> bool:
        """False while an attached run's server does not answer (a local run always is)."""
        return bool(getattr(self._runner, "connected", True))

    def _snapshot_dict(self) -> dict[str, Any]:
        return dict(self._runner.status().to_dict(max_failures=MAX_FAILURES))

    def _reply(self, msg: dict[str, Any]) -> None:
        with self._reply_lock:
            if self._drop_replies.drop():
                return
            self.reply_count += 1
        self.send(msg)

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Refuse a browser's ``update``: every synced trait of the panel is owned by the kernel.

        ipywidgets calls this for an incoming ``update`` only (before echoing it to the other
        views); nothing is set and nothing is echoed, the browser gets an error reply.
        """
        self._link.view_message()
        names = sorted(str(k)[:64] for k in sync_data) if isinstance(sync_data, dict) else []
        self._reply({"type": "error", "id": None,
                     "error": f"the panel's state is owned by the kernel and cannot be set from a "
                              f"browser (refused: {', '.join(names) or 'nothing'})"})

    def send_state(self, key: str | list[str] | set[str] | None = None) -> None:
        """ipywidgets' state sync; inside :meth:`_publish` it always carries ``status``."""
        if self._resend_status and key is not None:
            key = {key} if isinstance(key, str) else set(key)
            key.add("status")
        super().send_state(key)

    # ------------------------------------------------------------------ publishing

    def _publish(
        self,
        snap: Status | None,
        heartbeat: float | None,
        thumb: GalleryUpdate | None,
        kernel: dict[str, Any] | None = None,
    ) -> bool:
        """One trait message (publisher thread only). Returns False if nothing was sent.

        ``snap`` is always sent whole, even when it equals the last published one (a re-send:
        heartbeats and the repeats after a run ends carry the snapshot, so a lost message heals
        itself within about a second).
        """
        if snap is not None and self._drop_updates.drop():
            snap = None
        if snap is None and heartbeat is None and thumb is None and kernel is None:
            return False
        with self._lock:
            self._resend_status = snap is not None
            try:
                with self.hold_sync():
                    if snap is not None:
                        self.status = dict(snap.to_dict(max_failures=MAX_FAILURES))
                    if heartbeat is not None:
                        self.heartbeat = heartbeat
                    if thumb is not None:
                        self.thumbnail, self.thumbnail_label = thumb.thumbnail, thumb.label
                        self.gallery = thumb.tiles
                    if kernel is not None:
                        self.kernel = kernel
            finally:
                self._resend_status = False
            self.publish_count += 1
        return True

    def _make_thumbnail(self, last_counter: int | None) -> tuple[int | None, GalleryUpdate | None]:
        """``(counter, update)`` if the runner's gallery changed since ``last_counter``."""
        runner = self._runner
        if not isinstance(runner, Runner):  # attached: the server encoded the images already
            return runner.fetch_gallery(last_counter)
        items = runner.gallery()
        if not items or items[-1].counter == last_counter:
            return last_counter, None
        return items[-1].counter, gallery_update(items)  # None: nothing showable, keep the last
