"""``Runner(cluster=...)``: a ``distributed.Client``, or an address that the runner connects to.

Checked when the runner is made: anything else is a ``TypeError`` there, not an
``AttributeError`` from a worker thread later. An address (``tcp://host:8786``, any
``scheme://...`` Dask understands, ``local`` or ``local:N``) is connected at once; the runner owns
that client (and the LocalCluster ``local:N`` starts) and closes it in :meth:`Runner.close`.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from .._extras import require_extra

__all__ = ["attach_cluster", "close_owned", "dashboard_link", "resolve_cluster"]

log = logging.getLogger("chainlib")

EXPECTED = ("a distributed.Client, or an address: 'tcp://host:8786' (a running scheduler) or "
            "'local:N' (start N local worker processes)")


def _is_client(value: Any) -> bool:
    try:
        from distributed import Client
    except ImportError:
        return False
    return isinstance(value, Client)


def resolve_cluster(cluster: Any) -> tuple[Any, bool]:
    """``(client, owned)`` for a ``cluster=`` argument; ``(None, False)`` for None.

    Raises ``TypeError`` for a value of another type, ``ValueError`` for a string that is no
    address (or names a scheduler that cannot be reached), ``ImportError`` naming the ``dask``
    extra when an address is given without Dask installed.
    """
    if cluster is None:
        return None, False
    if isinstance(cluster, str):
        address = cluster.strip()
        if not (address == "local" or address.startswith("local:") or "://" in address):
            raise ValueError(f"cluster={cluster!r}: expected {EXPECTED}")
        require_extra(f"cluster={cluster!r}", "dask", "distributed")
        from .cluster import connect

        return connect(address), True
    if _is_client(cluster):
        return cluster, False
    raise TypeError(f"cluster must be {EXPECTED}; got {type(cluster).__name__}")


def attach_cluster(owner: object, cluster: Any) -> tuple[Any, weakref.finalize[Any, Any]]:
    """:func:`resolve_cluster` for ``owner`` (a runner), and a finalizer closing what it opened
    when called, or when ``owner`` is collected (a no-op for a client the caller passed in)."""
    client, owned = resolve_cluster(cluster)
    return client, weakref.finalize(owner, close_owned, client if owned else None)


def close_owned(client: Any) -> None:
    """Close a client that :func:`resolve_cluster` opened (and its LocalCluster); None: nothing."""
    if client is not None:
        from .cluster import disconnect

        disconnect(client)


def dashboard_link(client: Any) -> str | None:
    """The link to the cluster's Dask dashboard, or None when there is no cluster, or its
    scheduler serves no dashboard (that needs ``bokeh``), or cannot say."""
    if client is None:
        return None
    try:
        services = client.scheduler_info().get("services", {})
        if "dashboard" not in services:
            return None
        link = client.dashboard_link
    except Exception as exc:  # a dashboard link is a nicety: never fail a run over it
        log.debug("no dashboard link: %s", exc)
        return None
    return link if isinstance(link, str) and link.startswith(("http://", "https://")) else None
