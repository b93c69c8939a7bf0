"""Compositing nodes: ``image.blend``, ``image.caption`` and the collector
``image.contact_sheet``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal, cast

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from ... import memory
from ...api import Context, Image, Range, collector, node
from .convert import (
    as_image,
    check_choice,
    check_range,
    convert_to,
    from_pil,
    has_alpha,
    is_gray,
    parse_color,
    to_pil,
    to_rgba,
    to_uint8,
)
from .geometry import resize_to

F64 = npt.NDArray[np.float64]

BlendMode = Literal[
    "normal", "multiply", "screen", "add", "difference", "overlay", "darken", "lighten"
]

_BLEND: dict[str, Callable[[F64, F64], F64]] = {
    "normal": lambda b, s: s,
    "multiply": lambda b, s: b * s,
    "screen": lambda b, s: b + s - b * s,
    "add": lambda b, s: np.minimum(b + s, 1.0),
    "difference": lambda b, s: np.abs(b - s),
    "overlay": lambda b, s: np.where(b <= 0.5, 2.0 * b * s, 1.0 - 2.0 * (1.0 - b) * (1.0 - s)),
    "darken": lambda b, s: np.minimum(b, s),
    "lighten": lambda b, s: np.maximum(b, s),
}


@node("image.blend", output="image")
def blend(base: Image, overlay: Image, mode: BlendMode = "normal",
          opacity: Annotated[float, Range(0, 1)] = 1.0) -> Image:
    """Blend ``overlay`` onto ``base`` with a blend ``mode`` at ``opacity`` (0-1).

    Modes follow the W3C compositing spec (``add`` is linear dodge, clipped). The overlay is
    resized to the base's size if they differ. The overlay's alpha times ``opacity`` weights it;
    the result keeps the base's size and alpha (it has alpha only if the base has), and is colour
    if either input is (so a gray base under a colour overlay becomes RGB). Opacity 0 returns
    the base's pixels unchanged.
    """
    base = as_image(base, "base")
    overlay = as_image(overlay, "overlay")
    check_choice("mode", mode, tuple(_BLEND))
    check_range("opacity", opacity, 0.0, 1.0)
    h, w = base.shape[:2]
    if overlay.shape[:2] != (h, w):
        overlay = resize_to(overlay, (w, h), "bilinear")
    gray = base.ndim == 2 and overlay.ndim == 2
    b = to_rgba(base).astype(np.float64) / 255.0
    s = to_rgba(overlay).astype(np.float64) / 255.0
    cb, ab = b[:, :, :3], b[:, :, 3:]
    cs, a_s = s[:, :, :3], s[:, :, 3:] * float(opacity)
    mixed = (1.0 - ab) * cs + ab * _BLEND[mode](cb, cs)
    premult = a_s * mixed + (1.0 - a_s) * ab * cb
    alpha = a_s + ab * (1.0 - a_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        color = np.where(alpha > 0, premult / np.where(alpha > 0, alpha, 1.0), cb)
    out = to_uint8(np.dstack([color, alpha]) * 255.0)
    if gray:  # a gray base has no alpha, and gray blended with gray stays gray
        return cast(Image, np.ascontiguousarray(out[:, :, 0]))
    return out if has_alpha(base) else cast(Image, np.ascontiguousarray(out[:, :, :3]))


# -- caption -----------------------------------------------------------------------------------

Position = Literal[
    "top", "bottom", "center", "top-left", "top-right", "bottom-left", "bottom-right"
]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


@node("image.caption", output="image")
def caption(
    image: Image,
    text: str,
    position: Position = "bottom",
    size: Annotated[int, Range(1, 2000)] = 24,
    color: str = "white",
    background: str = "#00000080",
    margin: Annotated[int, Range(0, 10000)] = 8,
) -> Image:
    """Draw ``text`` on the image at ``position`` (``top``, ``bottom``, ``center``, corners).

    ``size`` is the font size in pixels (Pillow's default font), ``color`` the text colour and
    ``background`` the colour of a box behind the text (``transparent`` for none; the default is
    half-transparent black). ``margin`` is the gap to the edges and the box padding. Multi-line
    text is allowed. A gray image stays gray when both colours are gray; alpha is kept.
    """
    image = as_image(image)
    if not isinstance(text, str):
        raise ValueError(f"text: expected a string, got {text!r}")
    check_choice(
        "position",
        position,
        ("top", "bottom", "center", "top-left", "top-right", "bottom-left", "bottom-right"),
    )
    check_range("size", size, 1, 2000)
    check_range("margin", margin, 0, 10000)
    fg = parse_color(color, "color")
    bg = parse_color(background, "background")
    if not text.strip():
        return cast(Image, image.copy())
    # Drawing on an opaque image keeps it opaque; gray stays gray when both colours are gray.
    if has_alpha(image):
        mode = "RGBA"
    elif image.ndim == 2 and is_gray(fg) and (bg[3] == 0 or is_gray(bg)):
        mode = "L"
    else:
        mode = "RGB"
    base = to_pil(to_rgba(image))
    layer = PILImage.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = _font(int(size))
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
    tw, th = right - left, bottom - top
    w, h = base.size
    m = int(margin)
    xs = {"left": m, "center": (w - tw) // 2, "right": w - m - tw}
    ys = {"top": m, "center": (h - th) // 2, "bottom": h - m - th}
    vertical, _, horizontal = position.partition("-")
    if position == "center":
        vertical = horizontal = "center"
    x = xs[horizontal or "center"]
    y = ys[vertical]
    if bg[3] > 0:
        pad = max(2, m // 2)
        draw.rectangle((x - pad, y - pad, x + tw + pad, y + th + pad), fill=bg)
    draw.multiline_text((x - left, y - top), text, font=font, fill=fg)
    out = from_pil(PILImage.alpha_composite(base, layer))
    return convert_to(out, mode) if mode != "RGBA" else out


# -- contact sheet -----------------------------------------------------------------------------


@collector("image.contact_sheet", collect="images", output="image")
def contact_sheet(
    images: list[Image],
    columns: Annotated[int, Range(1, 1000)] = 4,
    thumb_size: Annotated[int, Range(1, 4096)] = 128,
    padding: Annotated[int, Range(0, 1000)] = 8,
    background: str = "white",
    ctx: Context | None = None,
) -> Image:
    """Arrange all items' images in a grid of thumbnails (a contact sheet), in item order.

    Each image is scaled to fit a ``thumb_size`` square (keeping its aspect ratio) and centred in
    its cell; ``columns`` cells per row, ``padding`` pixels between and around them, on
    ``background`` (``transparent`` gives an RGBA sheet, otherwise RGB). Images with alpha are
    composited onto the background.
    """
    if not isinstance(images, (list, tuple)):
        raise ValueError(f"images: expected a list of images, got {type(images).__name__}")
    if not images:
        raise ValueError("images: there are no images to put on the contact sheet")
    check_range("columns", columns, 1, 1000)
    check_range("thumb_size", thumb_size, 1, 4096)
    check_range("padding", padding, 0, 1000)
    bg = parse_color(background, "background")
    columns, thumb, pad = int(columns), int(thumb_size), int(padding)
    n = len(images)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    size = (cols * thumb + (cols + 1) * pad, rows * thumb + (rows + 1) * pad)
    memory.check_result("images" if rows > 1 else "thumb_size", *size, 4)
    sheet = PILImage.new("RGBA", size, bg)
    for i, img in enumerate(images):
        if ctx is not None:
            ctx.checkpoint()
        arr = as_image(img, f"images[{i}]")
        h, w = arr.shape[:2]
        factor = min(thumb / w, thumb / h)
        tw, th = max(1, min(thumb, round(w * factor))), max(1, min(thumb, round(h * factor)))
        small = to_pil(to_rgba(resize_to(arr, (tw, th), "lanczos" if factor < 1 else "bicubic")))
        r, c = divmod(i, cols)
        x = pad + c * (thumb + pad) + (thumb - tw) // 2
        y = pad + r * (thumb + pad) + (thumb - th) // 2
        sheet.alpha_composite(small, (x, y))
        if ctx is not None:
            ctx.progress((i + 1) / n)
    out = from_pil(sheet)
    return out if bg[3] < 255 else cast(Image, np.ascontiguousarray(out[:, :, :3]))
