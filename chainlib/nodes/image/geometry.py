"""Geometry nodes: ``image.resize``, ``image.crop``, ``image.rotate``, ``image.flip``."""

from __future__ import annotations

import math
from typing import Annotated, Literal, TypedDict, cast

import numpy as np
from PIL import Image as PILImage

from ... import memory
from ...api import Image, Range, node
from .convert import (
    as_image,
    channels_of,
    check_choice,
    check_range,
    convert_to,
    fill_for,
    from_pil,
    mode_for,
    mode_of,
    parse_color,
    to_pil,
)

MAX_SIDE = 65535

ResizeFilter = Literal["nearest", "bilinear", "bicubic", "lanczos", "box"]
_FILTERS: dict[str, PILImage.Resampling] = {
    "nearest": PILImage.Resampling.NEAREST,
    "bilinear": PILImage.Resampling.BILINEAR,
    "bicubic": PILImage.Resampling.BICUBIC,
    "lanczos": PILImage.Resampling.LANCZOS,
    "box": PILImage.Resampling.BOX,
}


def _check_int(param: str, value: int, lo: int, hi: int = MAX_SIDE) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{param}: expected an integer, got {value!r}")
    check_range(param, int(value), lo, hi)
    return int(value)


# Filter support radius in source pixels at scale 1 (Pillow's values; nearest needs none).
_SUPPORT = {"nearest": 0.5, "bilinear": 1.0, "bicubic": 2.0, "lanczos": 3.0, "box": 0.5}
STRIPE_PIXELS = 8 << 20
"""Source images larger than this (pixels) shrunk with a smooth filter (bilinear, bicubic,
lanczos) are resized in horizontal stripes, so Pillow's copy of the input never holds more than a
stripe. Results may differ from a whole-image resize by rounding (at most 1 on opaque pixels)."""
_STRIPED = frozenset({"bilinear", "bicubic", "lanczos"})


def resize_to(image: Image, size: tuple[int, int], filter: str = "lanczos") -> Image:
    """Resize to exactly ``(width, height)`` with a named filter (alpha handled premultiplied)."""
    if (image.shape[1], image.shape[0]) == size:
        return cast(Image, image.copy())
    h, w = image.shape[:2]
    if h * w <= STRIPE_PIXELS or size[1] < 2 or size[1] >= h or filter not in _STRIPED:
        return from_pil(to_pil(image).resize(size, _FILTERS[filter]))
    # Each band of output rows is computed from the source rows its filter window reaches
    # (plus one row each side), given to Pillow as a box in the stripe's coordinates.
    f = h / size[1]
    reach = _SUPPORT[filter] * max(f, 1.0) + 1.0
    band = max(1, int(STRIPE_PIXELS / w / max(f, 1.0)))
    out = np.empty((size[1], size[0], *image.shape[2:]), np.uint8)
    for oy0 in range(0, size[1], band):
        oy1 = min(size[1], oy0 + band)
        y0, y1 = oy0 * f, oy1 * f
        s0 = max(0, int(y0 - reach))
        s1 = min(h, int(y1 + reach) + 1)
        stripe = to_pil(image[s0:s1])
        part = stripe.resize((size[0], oy1 - oy0), _FILTERS[filter],
                             box=(0.0, y0 - s0, float(w), y1 - s0))
        out[oy0:oy1] = from_pil(part)
    return cast(Image, out)


@node("image.resize", output="image")
def resize(
    image: Image,
    width: Annotated[int, Range(0, MAX_SIDE)] = 0,
    height: Annotated[int, Range(0, MAX_SIDE)] = 0,
    scale: Annotated[float, Range(0, 1000)] = 0.0,
    mode: Literal["fit", "fill", "exact"] = "fit",
    filter: ResizeFilter = "lanczos",
) -> Image:
    """Resize by a scale factor, to a width and/or height, or to fit or fill a box.

    Give either ``scale`` (> 0, e.g. 0.5 halves both sides) or ``width``/``height`` in pixels.
    With only one of width/height (the other 0) the aspect ratio is kept. With both, ``mode``
    decides: ``fit`` (default) scales to fit inside the box keeping the aspect ratio, ``fill``
    scales to cover the box and centre-crops to exactly width x height, ``exact`` stretches.
    Results are at least 1 pixel. Alpha is resampled premultiplied (no dark fringes).
    """
    image = as_image(image)
    width = _check_int("width", width, 0)
    height = _check_int("height", height, 0)
    check_range("scale", scale, 0.0, 1000.0)
    check_choice("mode", mode, ("fit", "fill", "exact"))
    check_choice("filter", filter, tuple(_FILTERS))
    h, w = image.shape[:2]
    if scale > 0:
        if width or height:
            raise ValueError(
                f"scale: give either scale ({scale!r}) or width/height ({width}x{height}), not both"
            )
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
    elif width and height:
        if mode == "exact":
            size = (width, height)
        else:
            factor = (min if mode == "fit" else max)(width / w, height / h)
            size = (max(1, round(w * factor)), max(1, round(h * factor)))
            if mode == "fit":
                size = (min(size[0], width), min(size[1], height))
            else:
                size = (max(size[0], width), max(size[1], height))
    elif width:
        size = (width, max(1, round(h * width / w)))
    elif height:
        size = (max(1, round(w * height / h)), height)
    else:
        raise ValueError(
            "width, height, scale: give a target size (width and/or height) or a scale"
        )
    if max(size) > MAX_SIDE:
        raise ValueError(f"scale: the result {size[0]}x{size[1]} is larger than {MAX_SIDE} pixels")
    memory.check_result("scale" if scale > 0 else "width" if width else "height", *size,
                        channels_of(image))
    out = resize_to(image, size, filter)
    if scale <= 0 and width and height and mode == "fill":
        x0 = (size[0] - width) // 2
        y0 = (size[1] - height) // 2
        out = cast(Image, np.ascontiguousarray(out[y0 : y0 + height, x0 : x0 + width]))
    return out


@node("image.crop", output="image")
def crop(image: Image, x: int = 0, y: int = 0, width: int = 0, height: int = 0) -> Image:
    """Cut out the rectangle at (x, y) of width x height; 0 for width/height means "to the edge".

    The rectangle is clamped to the image (negative x/y start outside it); if nothing of it lies
    inside the image, ``ValueError`` says so.
    """
    image = as_image(image)
    x = _check_int("x", x, -MAX_SIDE)
    y = _check_int("y", y, -MAX_SIDE)
    width = _check_int("width", width, 0)
    height = _check_int("height", height, 0)
    h, w = image.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1 = w if width == 0 else min(w, x + width)
    y1 = h if height == 0 else min(h, y + height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"x, y, width, height: the rectangle x={x}, y={y}, width={width}, height={height}"
            f" lies outside the {w}x{h} image (nothing left to crop)"
        )
    return cast(Image, np.ascontiguousarray(image[y0:y1, x0:x1]))


RotateFilter = Literal["nearest", "bilinear", "bicubic"]


@node("image.rotate", output="image")
def rotate(
    image: Image,
    angle: float = 90.0,
    expand: bool = True,
    fill: str = "black",
    filter: RotateFilter = "bicubic",
) -> Image:
    """Rotate counter-clockwise by ``angle`` degrees (negative: clockwise).

    ``expand`` enlarges the canvas to hold the whole rotated image; otherwise the size is kept and
    corners are cut. Uncovered areas get ``fill`` (a colour; ``transparent`` adds an alpha channel).
    Multiples of 90 degrees are exact (no resampling) when the result keeps every pixel.
    """
    image = as_image(image)
    check_range("angle", angle, -1e6, 1e6)
    check_choice("filter", filter, ("nearest", "bilinear", "bicubic"))
    color = parse_color(fill, "fill")
    a = float(angle) % 360.0
    h, w = image.shape[:2]
    if a in (0.0, 90.0, 180.0, 270.0) and (expand or h == w or a in (0.0, 180.0)):
        return cast(Image, np.ascontiguousarray(np.rot90(image, k=int(a) // 90)))
    mode = mode_for(image, color)
    if expand:  # the canvas holding the whole rotated image
        rad = math.radians(a)
        cos, sin = abs(math.cos(rad)), abs(math.sin(rad))
        memory.check_result("angle", math.ceil(w * cos + h * sin), math.ceil(w * sin + h * cos),
                            len(mode))
    work = convert_to(image, mode)
    resample = _FILTERS[filter]
    out = to_pil(work).rotate(
        float(angle), resample=resample, expand=expand, fillcolor=fill_for(mode, color)
    )
    return from_pil(out)


@node("image.flip", output="image")
def flip(
    image: Image, direction: Literal["horizontal", "vertical", "both"] = "horizontal"
) -> Image:
    """Mirror the image left-right (``horizontal``), top-bottom (``vertical``) or ``both``."""
    image = as_image(image)
    check_choice("direction", direction, ("horizontal", "vertical", "both"))
    axes = {"horizontal": (1,), "vertical": (0,), "both": (0, 1)}[direction]
    return cast(Image, np.ascontiguousarray(np.flip(image, axis=axes)))


class ImageInfo(TypedDict):
    width: int
    height: int
    channels: int
    mode: str


@node("image.info")
def info(image: Image) -> ImageInfo:
    """Describe an image: width, height, channels (1, 3 or 4) and mode (L, RGB or RGBA)."""
    image = as_image(image)
    return {
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "channels": channels_of(image),
        "mode": mode_of(image),
    }
