"""chainlib: run image-processing node chains with live Play / Pause / Stop control.

The run's status snapshot (with a sequence number) is the single source of truth; see
``Runner.status()``.
"""

from . import nodes as _nodes  # noqa: F401  (registers the built-in nodes)
from . import samples
from .api import Context, Image, Item, Lazy, NullContext, collector, iterator, node
from .chain import Chain, NodeHandle, OutputRef
from .errors import ChainError, RunStopped
from .run import Ack, ErrorInfo, Event, Failure, NodeStatus, Runner, Status, Subscription

__version__ = "0.1.0"

__all__ = [
    "Ack",
    "Chain",
    "ChainError",
    "Context",
    "ErrorInfo",
    "Event",
    "Failure",
    "Image",
    "Item",
    "Lazy",
    "NodeHandle",
    "NodeStatus",
    "NullContext",
    "OutputRef",
    "RunStopped",
    "Runner",
    "Status",
    "Subscription",
    "collector",
    "iterator",
    "node",
    "samples",
]
