"""Built-in nodes. Importing this package registers them."""

from . import core

__all__ = ["core"]
