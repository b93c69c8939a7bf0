"""Running chains: the Runner, status snapshots, events."""

from .events import Event, Subscription
from .runner import Runner
from .status import Ack, ErrorInfo, Failure, NodeStatus, Status

__all__ = ["Ack", "ErrorInfo", "Event", "Failure", "NodeStatus", "Runner", "Status", "Subscription"]
