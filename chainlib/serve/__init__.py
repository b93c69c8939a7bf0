"""Control a run from anywhere: an HTTP server beside a :class:`~chainlib.Runner`.

``serve(run)`` (or ``run.serve()``) starts a small Starlette app on a uvicorn thread and returns
a :class:`ControlServer` whose ``url`` carries a random token::

    GET  /          the control panel as a web page (the notebook panel's front end)
    GET  /status    the newest status snapshot, JSON
    GET  /events    Server-Sent Events: coalesced snapshots (id = seq), heartbeats, retry
    POST /commands  {"command": "start"|"pause"|"resume"|"stop", "id": int} -> the Ack
    GET  /gallery   the newest outputs (before -> after thumbnails), ?since=COUNTER -> 204 if same

:class:`RemoteRun` follows and controls such a run from another process (the CLI's
``chainlib status|pause|resume|stop URL`` and ``ControlPanel.attach(url)`` use it). Security rules
are in :mod:`chainlib.serve.security`. Needs the ``serve`` extra (``pip install chainlib[serve]``).
"""

from __future__ import annotations

from .client import RemoteError, RemoteRun, status_from_dict
from .hub import ServeFaults
from .server import ControlServer, serve

__all__ = ["ControlServer", "RemoteError", "RemoteRun", "ServeFaults", "serve",
           "status_from_dict"]
