"""``image.upscale``: super-resolution with an ONNX model (``pip install 'chainlib[models]'``).

The model runs with ONNX Runtime on the best execution provider it offers (CUDA, ROCm, DirectML,
CoreML, ... else the CPU; ``$CHAINLIB_ONNX_PROVIDERS`` overrides), one session per model file per
process shared by the workers. See ``docs/models.md`` for using a real ESRGAN-family export.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, cast

import numpy as np
from PIL import Image as PILImage

from ... import memory
from ...api import Context, Image, Range, node
from ..image.convert import as_image
from .model import SESSIONS, ModelError, ModelInfo, threads_for, uses_accelerator
from .tiles import F32, U8, upscale_tiled

__all__ = ["ModelError", "ModelInfo", "model_info", "upscale"]

AUTO_TILE_CPU = 256
AUTO_TILE_ACCELERATOR = 512
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Pillow's RGB -> L weights


def model_info(path: str) -> ModelInfo:
    """Check an ONNX model file and describe it (scale, channels, fixed input size).

    Raises ``ValueError`` naming the file when it is missing, not ONNX, or not an image upscaler.
    """
    return SESSIONS.info(path)


def _check_int(name: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}: expected a whole number >= {low}, got {value!r}")
    return value


def _check(constants: Mapping[str, Any]) -> None:
    """At validation: the tile settings make sense and a constant model file is usable."""
    tile = _check_int("tile", constants.get("tile", 0), 0)
    overlap = _check_int("overlap", constants.get("overlap", 16), 0)
    if tile and tile < 8:
        raise ValueError(f"tile: expected 0 (automatic) or at least 8 pixels, got {tile}")
    if tile and overlap * 2 >= tile:
        raise ValueError(f"overlap: {overlap} must be less than half the tile ({tile})")
    if "model" in constants:
        model_info(constants["model"])


def _tile_size(info: ModelInfo, tile: int, session: Any) -> tuple[int, int]:
    if info.fixed is not None:
        return info.fixed
    if tile:
        return tile, tile
    auto = AUTO_TILE_ACCELERATOR if uses_accelerator(session) else AUTO_TILE_CPU
    return auto, auto


def _inferrer(session: Any, info: ModelInfo, gray_out: bool) -> Any:
    """An ``Infer`` for the tiler: converts a uint8 patch to the model's layout and back."""
    dtype = np.float16 if info.float16 else np.float32
    s = info.scale

    def run(planes: F32) -> F32:  # (C, h, w) in the model's channels -> (C, h*s, w*s)
        h, w = planes.shape[1:]
        a = info.align
        fh, fw = info.fixed or (-(-h // a) * a, -(-w // a) * a)
        if (fh, fw) != (h, w):  # a smaller patch, or sides the model cannot take: pad by the edge
            planes = np.pad(planes, ((0, 0), (0, fh - h), (0, fw - w)), mode="edge")
        result = session.run([info.output_name], {info.input_name: planes[None].astype(dtype)})
        out: F32 = np.asarray(result[0][0], np.float32)[:, : h * s, : w * s]
        return out

    def infer(patch: U8) -> F32:
        x = np.ascontiguousarray(patch.transpose(2, 0, 1), dtype=np.float32)
        x *= np.float32(1 / 255)
        if info.channels == 3:
            if x.shape[0] == 1:
                x = np.repeat(x, 3, axis=0)
            y = run(x)
            if gray_out:
                y = np.tensordot(_LUMA, y, axes=1)[None]
        else:  # a grayscale model: each channel on its own
            y = np.concatenate([run(x[k : k + 1]) for k in range(x.shape[0])])
        return cast(F32, np.require(y, np.float32, "W"))

    return infer


@node("image.upscale", output="image", extra="models", requires=("onnxruntime",), check=_check,
      reads=("model",))
def upscale(
    image: Image,
    model: str,
    tile: Annotated[int, Range(0)] = 0,
    overlap: Annotated[int, Range(0)] = 16,
    ctx: Context | None = None,
) -> Image:
    """Upscale an image with an ONNX super-resolution model (ESRGAN-style export), tile by tile.

    ``model`` is an .onnx file taking float NCHW RGB (or grayscale) in 0..1; its scale is read
    from it. ``tile`` is the tile side in input pixels (0: the model's fixed size, else 256 on a
    CPU, 512 on a GPU); tiles overlap by ``overlap`` pixels and are blended, so large images fit
    in memory without seams. Alpha is upscaled with Pillow (bicubic) alongside; grayscale in
    gives grayscale out. Pause and stop take effect between tiles.
    """
    _check({"tile": tile, "overlap": overlap})
    image = as_image(image)
    workers = ctx.workers if ctx is not None else 1
    session, info = SESSIONS.session(os.fspath(model), threads_for(workers))
    th, tw = _tile_size(info, tile, session)
    # the overlap asked for (validation keeps it under half a chosen tile); a fixed-size model
    # imposes its tile, which may be small: there at most a quarter of it
    ov = min(overlap, min(th, tw) // 4 if info.fixed else (min(th, tw) - 1) // 2)
    gray = image.ndim == 2
    color = image[:, :, None] if gray else image[:, :, :3]

    def on_tile(done: int, total: int) -> None:
        if ctx is not None:
            ctx.checkpoint()
            ctx.progress(done / total)

    channels = 1 if gray else image.shape[2]
    memory.check_result("image", image.shape[1] * info.scale, image.shape[0] * info.scale,
                        channels)
    infer = _inferrer(session, info, gray_out=gray)
    try:
        big = upscale_tiled(color, infer, info.scale, (th, tw), ov, on_tile)
    except ValueError:
        raise
    except Exception as exc:  # onnxruntime's own exception types, for shapes the model rejects
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(model, f"failed on this {image.shape[1]}x{image.shape[0]} image: "
                         f"{first}") from None
    if gray:
        return big[:, :, 0]
    if image.shape[2] == 4:
        alpha = PILImage.fromarray(image[:, :, 3], "L").resize(
            (big.shape[1], big.shape[0]), PILImage.Resampling.BICUBIC)
        return cast(Image, np.dstack([big, np.asarray(alpha)]))
    return big
