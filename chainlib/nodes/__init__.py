"""Built-in nodes. Importing this package registers them.

``image.upscale`` and the ``video.*`` nodes need optional packages (``chainlib[models]``,
``chainlib[video]``); they are always registered and import those packages when they run.
"""

from . import core, image, upscale, video

__all__ = ["core", "image", "upscale", "video"]
