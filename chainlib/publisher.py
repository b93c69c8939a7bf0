"""The control panel's publisher: the one thread that writes a panel's synced traits.

See :mod:`chainlib.panel` for the protocol. The loop holds the panel only weakly (through weak
methods), so a forgotten panel ends its publisher within a second.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .kernel import PanelLink, initial_facts
from .run.runner import Runner
from .run.status import ACTIVE_STATES, Status
from .thumbnails import GalleryUpdate

if TYPE_CHECKING:
    from .serve import RemoteRun

__all__ = ["THUMBNAIL_INTERVAL", "Publisher"]

THUMBNAIL_INTERVAL: Final = 1.0
"""Seconds between thumbnail and gallery updates (at most)."""

_PublishFn = Callable[[Status | None, float | None, GalleryUpdate | None,
                       dict[str, Any] | None], bool]
_ThumbnailFn = Callable[[int | None], tuple[int | None, GalleryUpdate | None]]
_FarewellFn = Callable[[str, Status], None]


class Publisher:
    """The publisher loop (one thread per panel). Holds the panel only weakly between wake-ups.

    Every message carries the whole newest snapshot when it carries a status. Messages:
    - a new snapshot: at once for a state transition, else at most one per ``period`` s
      (the newest one wins; the last one is flushed when the period has elapsed);
    - a change of the ``kernel`` trait (busy, hears_clicks): at once (only that trait);
    - while the run is active, a heartbeat every ``heartbeat_interval`` s, with the snapshot;
    - after the run ends, the final snapshot again after 1, 2 and 4 s (a lost final message would
      otherwise leave only the browser's periodic pull to find the end);
    - the thumbnail and gallery at most every ``THUMBNAIL_INTERVAL`` s, folded into the next
      message.
    An attached run whose server closed (``RemoteRun.server_closed``) ends the loop once its final
    snapshot went out, calling ``farewell(reason, final)`` (the panel says goodbye).
    """

    def __init__(
        self,
        runner: Runner | RemoteRun,
        link: PanelLink,
        flag: threading.Event,
        closing: threading.Event,
        first: Status,
        unwatch: Callable[[], None],
        *,
        publish: weakref.WeakMethod[_PublishFn],
        thumbnail: weakref.WeakMethod[_ThumbnailFn] | None,
        period: float,
        heartbeat_interval: float,
        farewell: weakref.WeakMethod[_FarewellFn] | None = None,
    ) -> None:
        self.runner, self.link, self.flag, self.closing = runner, link, flag, closing
        self.first, self.unwatch = first, unwatch
        self.publish, self.thumbnail = publish, thumbnail
        self.period, self.hb_interval = period, heartbeat_interval
        self.farewell = farewell

    def run(self) -> None:
        try:
            self._loop()
        finally:
            self.unwatch()  # idempotent (close() may have done it already)

    def _loop(self) -> None:
        runner, flag, closing, period = self.runner, self.flag, self.closing, self.period
        now = time.monotonic()
        last_seq, last_state = self.first.seq, self.first.state
        last_kernel = initial_facts()  # the constructor's value
        last_pub = -math.inf
        last_hb = now  # the constructor set the heartbeat
        next_thumb = now
        thumb_counter: int | None = None
        thumb_seq = -1  # seq at the last thumbnail check
        repeats: list[float] = []  # times at which to re-send the final snapshot
        timeout: float | None = 0.0  # look at once (a thumbnail may already exist)
        while not closing.is_set():
            flag.wait(timeout)
            if closing.is_set():
                break
            flag.clear()  # before reading: a change after this sets it again (no lost wake-up)
            publish = self.publish()
            if publish is None:
                break  # the panel is gone
            snap = runner.status()
            kernel = self.link.info()
            now = time.monotonic()
            active = snap.state in ACTIVE_STATES
            open_slot = now - last_pub >= period
            transition = snap.state != last_state
            new = snap.seq != last_seq and (transition or open_slot)
            kernel_changed = kernel != last_kernel  # a kernel change goes out at once
            # no heartbeat while an attached run's server is unreachable: the front end must
            # say `disconnected` rather than vouch for a snapshot nobody can confirm
            heartbeat = (time.time() if active and now - last_hb >= self.hb_interval and
                         (open_slot or new) and getattr(runner, "connected", True) else None)
            repeat = bool(repeats) and now >= repeats[0] and not active and (open_slot or new)
            thumb = None
            make_thumb = self.thumbnail() if self.thumbnail is not None else None
            if (make_thumb is not None and snap.seq != thumb_seq and now >= next_thumb
                    and (open_slot or new)):
                thumb_seq = snap.seq
                thumb_counter, thumb = make_thumb(thumb_counter)
                # counted from the end: a slow encode (or an attached panel's slow request) and
                # a fast one after it still send their updates a whole interval apart
                next_thumb = time.monotonic() + THUMBNAIL_INTERVAL
            del make_thumb
            if new or heartbeat is not None or repeat or thumb is not None or kernel_changed:
                with_status = new or heartbeat is not None or repeat
                publish(snap if with_status else None, heartbeat, thumb,
                        kernel if kernel_changed else None)
                last_pub = now
                last_kernel = kernel
                if heartbeat is not None:
                    last_hb = now
                if repeat:
                    repeats.pop(0)
                if new:
                    if transition and not active:
                        repeats = [now + 1.0, now + 2.0, now + 4.0]
                    elif active:
                        repeats = []
                    last_seq, last_state = snap.seq, snap.state
            del publish
            gone = getattr(runner, "server_closed", None)
            if gone is not None and snap.seq == last_seq:  # its final snapshot went out
                farewell = self.farewell() if self.farewell is not None else None
                if farewell is not None:
                    farewell(gone, snap)
                break
            # next wake-up: the runner's flag, or the earliest timer due
            due = [now + 1.0]  # also notices a garbage-collected panel
            if snap.seq != last_seq:
                due.append(last_pub + period)
            if active:
                due.append(max(last_hb + self.hb_interval, last_pub + period))
            if repeats:
                due.append(max(repeats[0], last_pub + period))
            if self.thumbnail is not None and snap.seq != thumb_seq:
                due.append(max(next_thumb, last_pub + period))
            kernel_due = self.link.changes_at()
            if kernel_due is not None:
                due.append(kernel_due)
            timeout = max(0.0, min(due) - time.monotonic())
