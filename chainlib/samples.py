"""A small, deterministic set of sample images for examples, notebooks and tests.

>>> from chainlib import samples
>>> folder = samples.folder()          # ~/.cache/chainlib/samples-v1 (or $CHAINLIB_SAMPLES)
>>> samples.names()[:3]
['clouds.jpg', 'color_bars.png', 'gradient.png']

The images are generated (no download): gradients, shapes, text, seeded noise, photo-like
value-noise textures, one RGBA image with transparency, one grayscale, one palette image, and a few
in a sub-folder ``more/``; PNG and JPEG, 256 to 640 pixels a side. Generation takes well under a
second and gives byte-identical files on every run with the same Pillow build.

For the model and video nodes (nothing downloaded either): :func:`model` writes a tiny ONNX
upscaler (``chainlib[models]``), :func:`video` a short synthetic MP4 (``chainlib[video]``).
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ._cache import cache_dir
from ._pixels import F32
from ._pixels import colormap as _colormap
from ._pixels import u8 as _u8
from ._pixels import value_noise as _value_noise

__all__ = ["BROKEN", "folder", "media_folder", "model", "names", "video"]

VERSION = 1
BROKEN = "broken.jpg"
"""The name of the corrupt sample added by ``folder(include_corrupt=True)``."""


# -- building blocks ---------------------------------------------------------------------------


def _grid(w: int, h: int) -> tuple[F32, F32]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return x / (w - 1), y / (h - 1)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):
        return ImageFont.load_default()


# -- the images --------------------------------------------------------------------------------


def _gradient() -> Image.Image:
    x, y = _grid(320, 240)
    rgb = np.dstack([255 * x, 255 * y, 255 * (1 - x) * (1 - y) + 64 * x * y])
    return Image.fromarray(_u8(rgb), "RGB")


def _radial() -> Image.Image:
    x, y = _grid(256, 256)
    r = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2) / np.sqrt(0.5)
    t = np.clip(1 - r, 0, 1).astype(np.float32)
    return Image.fromarray(
        _colormap(t, [(0, (20, 10, 60)), (0.6, (220, 80, 40)), (1, (255, 240, 180))])
    )


def _shapes() -> Image.Image:
    im = Image.new("RGB", (400, 300), (245, 242, 232))
    d = ImageDraw.Draw(im)
    d.rectangle((30, 40, 170, 150), fill=(200, 40, 50), outline=(40, 20, 20), width=4)
    d.ellipse((200, 30, 360, 190), fill=(40, 110, 200), outline=(10, 30, 70), width=4)
    d.polygon([(80, 270), (170, 170), (260, 270)], fill=(250, 190, 30))
    d.line([(20, 290), (380, 200)], fill=(30, 150, 70), width=6)
    for i in range(8):
        d.ellipse(
            (280 + i * 12, 230 + (i % 2) * 20, 290 + i * 12, 240 + (i % 2) * 20), fill=(0, 0, 0)
        )
    return im


def _text() -> Image.Image:
    x, _ = _grid(480, 270)
    bg = _colormap(x, [(0, (30, 40, 90)), (1, (90, 30, 80))])
    im = Image.fromarray(bg, "RGB")
    d = ImageDraw.Draw(im)
    d.text((24, 30), "chainlib", font=_font(72), fill=(255, 255, 255))
    d.text((28, 130), "sample text  0123456789", font=_font(28), fill=(250, 210, 90))
    d.text((28, 180), "The quick brown fox jumps\nover the lazy dog.", font=_font(22), fill="white")
    return im


def _noise() -> Image.Image:
    rng = np.random.default_rng(1234)
    return Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), "RGB")


def _plasma() -> Image.Image:
    w, h = 512, 384
    r, g, b = (_value_noise(w, h, seed) for seed in (11, 12, 13))
    rgb = np.dstack([r, g * 0.8 + 0.1, b * 0.6 + 0.4 * r]) * 255
    return Image.fromarray(_u8(rgb), "RGB")


def _clouds() -> Image.Image:
    w, h = 640, 360
    _, y = _grid(w, h)
    sky = np.dstack([60 + 80 * y, 120 + 80 * y, 230 - 10 * y])
    n = _value_noise(w, h, 21, octaves=6, base=3)
    cover = np.clip((n - 0.45) * 3.0, 0, 1)[:, :, None]
    shade = (200 + 55 * n)[:, :, None]
    return Image.fromarray(_u8(sky * (1 - cover) + shade * cover), "RGB")


def _sprite_rgba() -> Image.Image:
    x, y = _grid(300, 300)
    r = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2) * 2
    alpha = np.clip((1 - r) * 2.5, 0, 1) * 255
    color = np.dstack([255 * x, 180 + 0 * x, 255 * (1 - y)])
    rgba = np.dstack([color, alpha])
    im = Image.fromarray(_u8(rgba), "RGBA")
    ImageDraw.Draw(im).rectangle((20, 20, 70, 70), fill=(0, 0, 0, 128))
    return im


def _gray() -> Image.Image:
    x, y = _grid(256, 256)
    n = _value_noise(256, 256, 31, octaves=4)
    return Image.fromarray(_u8(255 * (0.6 * x + 0.4 * n) * (0.7 + 0.3 * y)), "L")


def _color_bars() -> Image.Image:
    bars = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192),
            (192, 0, 0), (0, 0, 192)]  # fmt: skip
    im = Image.new("RGB", (420, 240))
    d = ImageDraw.Draw(im)
    for i, c in enumerate(bars):
        d.rectangle((i * 60, 0, i * 60 + 59, 179), fill=c)
    for i in range(420):
        d.line([(i, 180), (i, 239)], fill=(i * 255 // 419,) * 3)
    return im


def _palette() -> Image.Image:
    n = _value_noise(320, 256, 41, octaves=4)
    rgb = _colormap(n, [(0, (10, 30, 120)), (0.5, (40, 170, 90)), (1, (250, 250, 220))])
    return Image.fromarray(rgb, "RGB").quantize(
        16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )


def _terrain() -> Image.Image:
    n = _value_noise(480, 320, 51, octaves=6)
    stops = [(0, (10, 40, 120)), (0.4, (40, 110, 200)), (0.45, (230, 210, 150)),
             (0.55, (60, 150, 60)), (0.8, (110, 90, 70)), (1, (250, 250, 250))]  # fmt: skip
    return Image.fromarray(_colormap(n, stops), "RGB")


def _mandelbrot() -> Image.Image:
    w, h = 360, 270
    x, y = _grid(w, h)
    c = (x * 3.0 - 2.2) + 1j * (y * 2.25 - 1.125)
    z = np.zeros_like(c)
    count = np.zeros(c.shape, np.float32)
    for _ in range(40):
        inside = np.abs(z) <= 2
        z[inside] = z[inside] ** 2 + c[inside]
        count += inside
    t = (count / 40).astype(np.float32)
    return Image.fromarray(_colormap(t, [(0, (0, 0, 30)), (0.3, (200, 60, 20)), (1, (0, 0, 0))]))


def _checker() -> Image.Image:
    x, y = np.mgrid[0:256, 0:320]
    board = ((x // 32 + y // 32) % 2).astype(np.float32)
    return Image.fromarray(_u8(40 + 180 * board), "L")


_JPEG = {"format": "JPEG", "quality": 90}
_PNG = {"format": "PNG", "compress_level": 6}

_SAMPLES: dict[str, tuple[Callable[[], Image.Image], dict[str, object]]] = {
    "gradient.png": (_gradient, _PNG),
    "radial.png": (_radial, _PNG),
    "shapes.png": (_shapes, _PNG),
    "text.png": (_text, _PNG),
    "noise.png": (_noise, _PNG),
    "plasma.jpg": (_plasma, _JPEG),
    "clouds.jpg": (_clouds, _JPEG),
    "sprite_rgba.png": (_sprite_rgba, _PNG),
    "gray.png": (_gray, _PNG),
    "color_bars.png": (_color_bars, _PNG),
    "palette.png": (_palette, _PNG),
    "more/terrain.jpg": (_terrain, _JPEG),
    "more/mandelbrot.png": (_mandelbrot, _PNG),
    "more/checker.png": (_checker, _PNG),
}


def _broken_bytes() -> bytes:
    """A JPEG header followed by garbage and cut short: every reader rejects it."""
    head = bytes.fromhex("ffd8ffe000104a46494600010100000100010000")
    rng = np.random.default_rng(666)
    return head + rng.integers(0, 256, 300, dtype=np.uint8).tobytes()


def _encode(name: str) -> bytes:
    make, options = _SAMPLES[name]
    buf = io.BytesIO()
    make().save(buf, **options)  # type: ignore[arg-type]
    return buf.getvalue()


def names(include_corrupt: bool = False) -> list[str]:
    """The sample files' relative POSIX paths, sorted."""
    return sorted([*_SAMPLES, *([BROKEN] if include_corrupt else [])])


def default_folder() -> Path:
    """``$CHAINLIB_SAMPLES`` if set, else ``samples-v1`` in the user's cache folder
    (``~/.cache/chainlib``, or ``$XDG_CACHE_HOME/chainlib``)."""
    env = os.environ.get("CHAINLIB_SAMPLES")
    if env:
        return Path(os.path.expanduser(env))
    return cache_dir() / f"samples-v{VERSION}"


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def folder(path: str | os.PathLike[str] | None = None, *, include_corrupt: bool = False) -> Path:
    """Create the sample images in ``path`` (default: :func:`default_folder`) and return it.

    Idempotent: files that already hold the right bytes are left alone, others are (re)written
    atomically; other files in the folder are not touched. ``include_corrupt=True`` also writes
    ``broken.jpg`` (truncated garbage after a JPEG header) to exercise error handling; without it
    a ``broken.jpg`` this function wrote earlier is removed.
    """
    root = Path(os.path.expanduser(os.fspath(path))) if path is not None else default_folder()
    root.mkdir(parents=True, exist_ok=True)
    for name in _SAMPLES:
        _write_if_changed(root.joinpath(*name.split("/")), _encode(name))
    broken = root / BROKEN
    if include_corrupt:
        _write_if_changed(broken, _broken_bytes())
    else:
        try:
            if broken.read_bytes() == _broken_bytes():
                broken.unlink()
        except OSError:
            pass
    return root


# -- a model and a video -----------------------------------------------------------------------


def media_folder() -> Path:
    """Where :func:`model` and :func:`video` write by default: ``media-v1`` next to
    :func:`default_folder`."""
    return default_folder().with_name(f"media-v{VERSION}")


def _target(path: str | os.PathLike[str] | None, default_name: str) -> Path:
    if path is None:
        return media_folder() / default_name
    return Path(os.path.expanduser(os.fspath(path)))


def model(path: str | os.PathLike[str] | None = None, *, scale: int = 2) -> Path:
    """Write a small deterministic ONNX upscaler and return its path (``chainlib[models]``).

    It has the common export shape (float32 NCHW RGB in 0..1, dynamic size, ``scale`` times
    larger out): bilinear interpolation plus a tiny seeded residual network, fast on a CPU.
    ``path`` defaults to ``media_folder()/upscale-x{scale}.onnx``. Idempotent.
    """
    if not isinstance(scale, int) or isinstance(scale, bool) or not 1 <= scale <= 4:
        raise ValueError(f"scale: expected 1, 2, 3 or 4, got {scale!r}")
    from ._sample_media import model_bytes

    target = _target(path, f"upscale-x{scale}.onnx")
    _write_if_changed(target, model_bytes(scale))
    return target


def video(
    path: str | os.PathLike[str] | None = None,
    *,
    frames: int = 48,
    width: int = 160,
    height: int = 120,
    fps: int = 24,
    audio: bool = True,
) -> Path:
    """Write a short synthetic MP4 and return its path (``chainlib[video]``).

    ``frames`` frames of a scrolling texture with a moving ball and the frame number, H.264
    (MPEG-4 Part 2 where PyAV lacks libx264), with a 440 Hz AAC tone when ``audio``. ``path``
    defaults to ``media_folder()/sample-{frames}f-{width}x{height}.mp4``. Idempotent.
    """
    for name, value, low in (("frames", frames, 1), ("width", width, 16),
                             ("height", height, 16), ("fps", fps, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected a whole number >= {low}, got {value!r}")
    if width % 2 or height % 2:
        raise ValueError(f"width, height: must be even for yuv420p video, got {width}x{height}")
    from ._sample_media import video_bytes

    name = f"sample-{frames}f-{width}x{height}{'' if audio else '-silent'}.mp4"
    target = _target(path, name)
    _write_if_changed(target, video_bytes(frames, width, height, fps, audio))
    return target
