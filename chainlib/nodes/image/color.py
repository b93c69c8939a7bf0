"""Tone and colour nodes: ``image.grayscale``, ``image.invert``, ``image.brightness_contrast``,
``image.gamma``. All of them leave the alpha channel untouched."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ...api import Image, Range, node
from .convert import as_image, check_range, from_pil, map_color, merge_alpha, split_alpha, to_pil
from .convert import to_uint8 as _to_uint8


def _lut(image: Image, table: Image) -> Image:
    lut = np.asarray(table, dtype=np.uint8)
    return map_color(image, lambda c: lut[c])


@node("image.grayscale", output="image")
def grayscale(image: Image, keep_alpha: bool = True) -> Image:
    """Convert to grayscale (ITU-R 601 luma, as Pillow's ``convert("L")``): output ``(H, W)``.

    An RGBA image stays RGBA (gray colour, same alpha) unless ``keep_alpha`` is false, which gives
    ``(H, W)`` and drops the alpha. A grayscale input is returned unchanged (as a copy).
    """
    image = as_image(image)
    color, alpha = split_alpha(image)
    gray = color.copy() if color.ndim == 2 else from_pil(to_pil(color).convert("L"))
    return merge_alpha(gray, alpha if keep_alpha else None)


@node("image.invert", output="image")
def invert(image: Image) -> Image:
    """Invert the colours (255 - value); the alpha channel is left untouched."""
    image = as_image(image)
    return map_color(image, lambda c: 255 - c)


@node("image.brightness_contrast", output="image")
def brightness_contrast(image: Image, brightness: Annotated[float, Range(-1, 1)] = 0.0,
                        contrast: Annotated[float, Range(-1, 1)] = 0.0) -> Image:
    """Adjust brightness and contrast; both range over -1..1 and 0 leaves the image unchanged.

    Contrast is applied first, around mid-gray (127.5), with slope ``(1 + contrast) / (1 -
    contrast)``: 0.5 triples it, -0.5 divides it by three, -1 gives flat gray, 1 a hard threshold.
    Brightness then adds ``brightness * 255`` (1 gives white, -1 black). Results are clipped.
    """
    image = as_image(image)
    check_range("brightness", brightness, -1.0, 1.0)
    check_range("contrast", contrast, -1.0, 1.0)
    slope = (1.0 + contrast) / max(1.0 - contrast, 1e-6)
    levels = np.arange(256, dtype=np.float64)
    table = (levels - 127.5) * slope + 127.5 + brightness * 255.0
    return _lut(image, _to_uint8(table))


@node("image.gamma", output="image")
def gamma(image: Image, gamma: Annotated[float, Range(0, 100, lo_open=True)] = 1.0) -> Image:
    """Apply a gamma curve ``out = 255 * (in / 255) ** (1 / gamma)``; gamma > 1 brightens the
    mid-tones, gamma < 1 darkens them, 1 changes nothing. ``gamma`` must be in (0, 100]."""
    image = as_image(image)
    check_range("gamma", gamma, 0.0, 100.0, lo_open=True)
    levels = np.arange(256, dtype=np.float64) / 255.0
    return _lut(image, _to_uint8(255.0 * levels ** (1.0 / float(gamma))))
