"""The graph: chains of node instances, their validation, and chain files."""

from .model import Chain, NodeHandle, NodeInstance, OutputRef

__all__ = ["Chain", "NodeHandle", "NodeInstance", "OutputRef"]
