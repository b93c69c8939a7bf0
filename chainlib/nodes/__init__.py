"""Built-in nodes. Importing this package registers them."""

from . import core, image

__all__ = ["core", "image"]
