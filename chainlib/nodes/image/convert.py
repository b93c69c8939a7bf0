"""Shared helpers: checking images, array <-> Pillow conversion, mode normalisation, colours.

Everything here works on the image convention of :mod:`chainlib.nodes.image`: ``uint8`` arrays
shaped ``(H, W)`` (grayscale, Pillow mode ``L``), ``(H, W, 3)`` (``RGB``) or ``(H, W, 4)``
(``RGBA``, straight alpha).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from PIL import ImageColor, ImageOps, UnidentifiedImageError

from ... import memory
from ...api import Image

RGBA = tuple[int, int, int, int]

#: File extensions (lower case, with the dot) that image readers and ``image.load_folder`` accept.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)

_MODES = {2: "L", 3: "RGB", 4: "RGBA"}


def as_image(value: Any, param: str = "image") -> Image:
    """Check (and lightly normalise) an image input; raise ``ValueError`` naming ``param``.

    Accepts the convention's arrays, ``(H, W, 1)`` arrays (squeezed to ``(H, W)``) and Pillow images
    (converted with :func:`from_pil`). Anything else, or an empty image, is an error.
    """
    if isinstance(value, PILImage.Image):
        return from_pil(value)
    if not isinstance(value, np.ndarray):
        raise ValueError(
            f"{param}: expected an image (numpy uint8 array), got {type(value).__name__}"
        )
    if value.dtype != np.uint8:
        raise ValueError(
            f"{param}: expected a uint8 image array, got dtype {value.dtype}"
            " (convert with np.clip(a, 0, 255).astype(np.uint8))"
        )
    if value.ndim == 3 and value.shape[2] == 1:
        value = value[:, :, 0]
    if value.ndim not in (2, 3) or (value.ndim == 3 and value.shape[2] not in (3, 4)):
        raise ValueError(
            f"{param}: expected shape (H, W), (H, W, 3) or (H, W, 4), got {tuple(value.shape)}"
        )
    if value.shape[0] == 0 or value.shape[1] == 0:
        raise ValueError(f"{param}: the image is empty (shape {tuple(value.shape)})")
    return cast(Image, value)


def mode_of(image: Image) -> str:
    """The Pillow mode name of a convention array: ``L``, ``RGB`` or ``RGBA``."""
    return "L" if image.ndim == 2 else _MODES[int(image.shape[2])]


def channels_of(image: Image) -> int:
    return 1 if image.ndim == 2 else int(image.shape[2])


def has_alpha(image: Image) -> bool:
    return image.ndim == 3 and image.shape[2] == 4


def to_pil(image: Image) -> PILImage.Image:
    """A Pillow image (mode ``L``, ``RGB`` or ``RGBA``) holding a copy of the array."""
    return PILImage.fromarray(np.ascontiguousarray(image), mode_of(image))


def _from_16bit(arr: npt.NDArray[Any]) -> Image:
    return cast(Image, ((np.clip(arr.astype(np.float64), 0, 65535) / 257.0) + 0.5).astype(np.uint8))


def from_pil(im: PILImage.Image) -> Image:
    """Convert any Pillow image to the convention (``L``, ``RGB`` or ``RGBA`` array).

    Palette images become ``RGBA`` when the palette has transparency, else ``RGB``; ``1`` becomes
    ``L``; ``LA``/``PA``/premultiplied modes become ``RGBA``; ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``
    become ``RGB``. 16-bit integer images (``I;16*``, ``I``) are scaled from 0..65535 to 0..255;
    float images (``F``) from 0..1 when all values are within it, else they are clipped to 0..255.
    """
    mode = im.mode
    if mode in ("L", "RGB", "RGBA"):
        out = np.asarray(im, dtype=np.uint8)
    elif mode == "1":
        out = np.asarray(im.convert("L"), dtype=np.uint8)
    elif mode == "P":
        transparent = "transparency" in im.info or (
            im.palette is not None and im.palette.mode == "RGBA"
        )
        out = np.asarray(im.convert("RGBA" if transparent else "RGB"), dtype=np.uint8)
    elif mode in ("LA", "La", "PA", "RGBa", "RGBX"):
        out = np.asarray(im.convert("RGBA" if mode != "RGBX" else "RGB"), dtype=np.uint8)
    elif mode.startswith("I;16") or mode == "I":
        out = _from_16bit(np.asarray(im))
    elif mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            arr = arr * 255.0
        out = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
    else:  # CMYK, YCbCr, LAB, HSV, ...
        out = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(out)


def _channels(im: PILImage.Image) -> int:
    """Channels of the convention array :func:`from_pil` makes of ``im`` (before loading)."""
    mode = im.mode
    if mode in ("RGBA", "LA", "La", "PA", "RGBa"):
        return 4
    if mode == "P":
        return 4 if "transparency" in im.info else 3
    if mode in ("L", "1", "I", "F") or mode.startswith("I;16"):
        return 1
    return 3


_PIL_CORE: Any = getattr(PILImage, "core")  # noqa: B009  (not re-exported for mypy)

# Formats whose Pillow plugins decode through ImageFile.load into a preset image memory.
_DIRECT_FORMATS = frozenset({"PNG", "JPEG", "BMP", "TIFF"})
_ROWS_PER_BLOCK = 256
_ORIENT: dict[int, Callable[[npt.NDArray[Any]], npt.NDArray[Any]]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _decode_direct(im: PILImage.Image) -> Image | None:
    """Decode ``im`` (``L``, ``RGB`` or ``RGBA``) straight into a numpy buffer, or return None
    (nothing decoded) when this format or mode needs Pillow's own path.

    Pillow keeps RGB as 4 bytes per pixel; decoding into our buffer and compacting it in place
    to 3 bytes per pixel peaks at 4/3 of the decoded array, where decoding then copying would
    peak at 7/3 of it.
    """
    mode = im.mode
    if mode not in ("L", "RGB", "RGBA") or im.format not in _DIRECT_FORMATS:
        return None
    w, h = im.size
    pixel = 1 if mode == "L" else 4
    buf = np.empty(w * h * pixel, np.uint8)
    core = _PIL_CORE.map_buffer(buf, (w, h), "raw", 0, (mode, w * pixel, 1))
    im.im = core
    im.load()
    if im.im is not core:  # the plugin replaced the memory (a memory-mapped file): use it
        return None
    im.im = None  # type: ignore[assignment]  # drop Pillow's reference to our buffer
    del core
    if mode == "RGB":
        rows = buf.reshape(h, w, 4)
        flat = buf[: h * w * 3]
        for y in range(0, h, _ROWS_PER_BLOCK):
            block = rows[y : y + _ROWS_PER_BLOCK, :, :3].copy()  # overlaps its target
            flat[y * w * 3 : y * w * 3 + block.size] = block.reshape(-1)
        del rows, flat
        buf.resize(h * w * 3, refcheck=False)  # give the unused tail back
        return cast(Image, buf.reshape(h, w, 3))
    return cast(Image, buf.reshape(h, w) if mode == "L" else buf.reshape(h, w, 4))


def _orientation(im: PILImage.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # broken EXIF: keep the image as stored, as exif_transpose does
        return 1
    return value if isinstance(value, int) else 1


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read an image file into the convention, applying its EXIF orientation.

    A missing, unreadable, truncated or unrecognised file raises ``ValueError`` naming the file and
    the reason, and so does an image over the per-image limit (:mod:`chainlib.memory`; checked
    from the header, before decoding). Multi-frame files (animated GIF, multi-page TIFF) give
    their first frame. In a run with a memory budget the decode waits for room in it.
    """
    name = os.fspath(path)
    try:
        with PILImage.open(name) as im:
            w, h = im.size
            decoded = memory.check_image(name, w, h, _channels(im))
            memory.reserve(decoded, f"image {name!r}")
            direct = _decode_direct(im)
            if direct is not None:
                turn = _ORIENT.get(_orientation(im))
                return direct if turn is None else cast(Image, np.ascontiguousarray(turn(direct)))
            im.load()
            oriented = ImageOps.exif_transpose(im, in_place=False) if _orientation(im) != 1 \
                else im
            return from_pil(oriented if oriented is not None else im)
    except FileNotFoundError:
        raise ValueError(f"cannot read image {name!r}: file not found") from None
    except IsADirectoryError:
        raise ValueError(f"cannot read image {name!r}: it is a directory") from None
    except UnidentifiedImageError:
        raise ValueError(
            f"cannot read image {name!r}: not a recognised image file (corrupt or unsupported)"
        ) from None
    except PILImage.DecompressionBombError as exc:
        raise ValueError(f"cannot read image {name!r}: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
        if isinstance(exc, memory.OverBudget) or (
                isinstance(exc, ValueError) and str(exc).startswith("cannot read image")):
            raise
        reason = str(exc) or type(exc).__name__
        raise ValueError(f"cannot read image {name!r}: {reason}") from exc


# -- alpha helpers -----------------------------------------------------------------------------


def split_alpha(image: Image) -> tuple[Image, Image | None]:
    """``(colour, alpha)``: colour is ``(H, W)`` or ``(H, W, 3)``; alpha is ``(H, W)`` or None."""
    if has_alpha(image):
        return image[:, :, :3], image[:, :, 3]
    return image, None


def merge_alpha(color: Image, alpha: Image | None) -> Image:
    """Re-attach an alpha channel (``None``: return ``color``). Gray colour becomes RGBA."""
    if alpha is None:
        return cast(Image, np.ascontiguousarray(color))
    if color.ndim == 2:
        color = cast(Image, np.repeat(color[:, :, None], 3, axis=2))
    return cast(Image, np.ascontiguousarray(np.dstack([color, alpha])))


def map_color(image: Image, fn: Callable[[Image], Image]) -> Image:
    """Apply ``fn`` to the colour channels only; alpha passes through untouched."""
    color, alpha = split_alpha(image)
    return merge_alpha(fn(color), alpha)


def to_uint8(values: npt.NDArray[Any]) -> Image:
    """Round and clip a float array to ``uint8``."""
    return cast(Image, np.clip(np.rint(values), 0, 255).astype(np.uint8))


def to_rgba(image: Image) -> Image:
    """Any convention image as ``(H, W, 4)``."""
    if image.ndim == 2:
        image = cast(Image, np.repeat(image[:, :, None], 3, axis=2))
    if image.shape[2] == 3:
        opaque = np.full((*image.shape[:2], 1), 255, np.uint8)
        image = cast(Image, np.concatenate([image, opaque], axis=2))
    return image


def to_rgb(image: Image) -> Image:
    """Any convention image as ``(H, W, 3)``: alpha is dropped, gray is expanded."""
    color, _ = split_alpha(image)
    if color.ndim == 2:
        return cast(Image, np.repeat(color[:, :, None], 3, axis=2))
    return cast(Image, np.ascontiguousarray(color))


# -- colours -----------------------------------------------------------------------------------


def parse_color(value: str, param: str) -> RGBA:
    """Parse a colour into RGBA; raise ``ValueError`` naming ``param``.

    Accepts CSS names, ``#rgb``, ``#rrggbb``, ``#rrggbbaa``, ``rgb(...)``, ``transparent`` and a
    gray level ``0``..``255``."""
    text = str(value).strip()
    if text.lower() in ("transparent", "none"):
        return (0, 0, 0, 0)
    if text.isdigit() and int(text) <= 255:
        g = int(text)
        return (g, g, g, 255)
    try:
        rgb = ImageColor.getrgb(text)
    except (ValueError, AttributeError):
        raise ValueError(
            f"{param}: unknown colour {value!r} (use a name like 'white', '#rrggbb', '#rrggbbaa'"
            " or 'transparent')"
        ) from None
    if len(rgb) == 3:
        return (rgb[0], rgb[1], rgb[2], 255)
    return (rgb[0], rgb[1], rgb[2], rgb[3])


def is_gray(color: RGBA) -> bool:
    return color[0] == color[1] == color[2]


def mode_for(image: Image, *colors: RGBA) -> str:
    """The mode an image must take to show ``colors`` faithfully: gray stays ``L`` only for gray
    opaque colours; a translucent colour adds alpha."""
    mode = mode_of(image)
    if any(c[3] < 255 for c in colors):
        return "RGBA"
    if mode == "L" and not all(is_gray(c) for c in colors):
        return "RGB"
    return mode


def convert_to(image: Image, mode: str) -> Image:
    """Convert a convention image to ``L``/``RGB``/``RGBA`` (to ``L`` uses Pillow's luma)."""
    if mode_of(image) == mode:
        return image
    if mode == "RGBA":
        return to_rgba(image)
    if mode == "RGB":
        return to_rgb(image)
    return from_pil(to_pil(image).convert("L"))


def fill_for(mode: str, color: RGBA) -> int | tuple[int, ...]:
    """A Pillow fill value for ``mode`` from an RGBA colour."""
    if mode == "L":
        r, g, b, _ = color
        return (r * 299 + g * 587 + b * 114 + 500) // 1000
    if mode == "RGB":
        return color[:3]
    return color


# -- parameter checks --------------------------------------------------------------------------


def check_choice(param: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{param}: {value!r} is not one of {', '.join(map(repr, choices))}")
    return value


def check_range(
    param: str,
    value: float,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
) -> None:
    """Raise ``ValueError`` naming ``param`` unless ``lo <= value <= hi`` (or ``lo < value``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{param}: expected a number, got {value!r}")
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and value > hi
    if too_low or too_high:
        if lo is not None and hi is not None:
            want = f"greater than {lo} and at most {hi}" if lo_open else f"between {lo} and {hi}"
        elif lo is not None:
            want = f"greater than {lo}" if lo_open else f"at least {lo}"
        else:
            want = f"at most {hi}"
        raise ValueError(f"{param}: must be {want}, got {value!r}")
