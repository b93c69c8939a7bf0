"""The node author's API: decorators, the context, items, port types."""

from .context import Context, ItemCounts, NullContext
from .decorators import collector, iterator, node
from .item import Item, Lazy
from .registry import NodeSpec, all_specs
from .types import Image, Range

__all__ = [
    "Context",
    "Image",
    "Item",
    "ItemCounts",
    "Lazy",
    "NodeSpec",
    "NullContext",
    "Range",
    "all_specs",
    "collector",
    "iterator",
    "node",
]
