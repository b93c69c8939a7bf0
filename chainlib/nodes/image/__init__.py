"""The standard image nodes (``image.*``) and the image convention they share.

Importing this package registers the nodes.

Image convention
----------------
Images travel between nodes as numpy ``uint8`` arrays (``chainlib.api.Image``):

- ``(H, W)``: grayscale (Pillow mode ``L``);
- ``(H, W, 3)``: RGB;
- ``(H, W, 4)``: RGBA with *straight* (not premultiplied) alpha.

Channel order is RGB(A); row 0 is the top of the image. Every node accepts all three shapes (and
``(H, W, 1)``, treated as grayscale, or a Pillow image when called directly from Python) and keeps
the alpha channel where that makes sense: tone and colour nodes leave it untouched, geometry nodes
transform it with the colour, resampling treats it premultiplied so edges do not darken. Readers
convert whatever a file holds (palette, 1-bit, CMYK, 16-bit, LA, ...) to one of the three shapes
and apply the EXIF orientation. Node functions are plain functions and can be called directly;
parameters are checked and a bad value raises ``ValueError`` naming the parameter.

Nodes
-----
- files: ``image.load``, ``image.load_folder`` (iterator), ``image.save``
- geometry: ``image.resize``, ``image.crop``, ``image.rotate``, ``image.flip``, ``image.info``
- tone: ``image.grayscale``, ``image.invert``, ``image.brightness_contrast``, ``image.gamma``
- filters: ``image.gaussian_blur``, ``image.sharpen``, ``image.add_noise``
- compositing: ``image.blend``, ``image.caption``, ``image.contact_sheet`` (collector)
"""

from __future__ import annotations

from .color import brightness_contrast, gamma, grayscale, invert
from .compose import blend, caption, contact_sheet
from .convert import IMAGE_EXTENSIONS, as_image, from_pil, read_image, to_pil
from .filters import add_noise, gaussian_blur, sharpen
from .geometry import crop, flip, info, resize, rotate
from .io import list_images, load, load_folder, save

__all__ = [
    "IMAGE_EXTENSIONS",
    "add_noise",
    "as_image",
    "blend",
    "brightness_contrast",
    "caption",
    "contact_sheet",
    "crop",
    "flip",
    "from_pil",
    "gamma",
    "gaussian_blur",
    "grayscale",
    "info",
    "invert",
    "list_images",
    "load",
    "load_folder",
    "read_image",
    "resize",
    "rotate",
    "save",
    "sharpen",
    "to_pil",
]
