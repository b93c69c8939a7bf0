"""Tiled upscaling with overlap and blending, in bounded memory.

Tiles overlap their neighbours by ``overlap`` input pixels. Across each shared strip the two tiles'
outputs are cross-faded with complementary linear weights that are zero in the quarter of the strip
nearest each tile's edge, so the pixels a tile computes without enough context (near its cut edge)
never count, and no seam shows. Where the model's receptive field is within a quarter of the
overlap, the result equals the untiled one up to float rounding.

Memory: the output is written one row of tiles at a time; only that row (plus the strip it shares
with the next row) is held in float32. The input is converted to float one tile at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

Infer = Callable[[U8], F32]
"""Upscales one patch: uint8 (h, w, C) in, float32 (C, h*scale, w*scale) in 0..1 out (the model's
planar layout, kept until the final conversion to save a copy per tile)."""


def spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Tiles along one axis: ``[start, end)`` pairs covering ``0..size``, each ``tile`` long
    (one shorter tile if ``size < tile``), overlapping by at least ``overlap``."""
    if size <= tile:
        return [(0, size)]
    stride = tile - overlap
    starts = [*range(0, size - tile, stride), size - tile]
    return [(s, s + tile) for s in starts]


def _ramp(lo: int, hi: int) -> F32:
    """Fade-in weights over the output pixels ``lo..hi`` of a shared strip (0 in its first
    quarter, 1 in its last, linear between, sampled at pixel centres: a ramp and 1 - ramp sum to
    1)."""
    margin = (hi - lo) // 4
    x = np.arange(hi - lo, dtype=np.float32) + 0.5
    return np.clip((x - margin) / max(hi - lo - 2 * margin, 1), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class _Fade:
    """Blend weights of one tile along one axis, as the strips at its two ends (the rest is 1)."""

    head: F32  # fade-in over the strip shared with the previous tile (empty if none)
    tail: F32  # fade-out over the strip shared with the next tile (empty if none)


def _fades(axis: list[tuple[int, int]], scale: int) -> list[_Fade]:
    fades = []
    for i, (start, end) in enumerate(axis):
        head = _ramp(0, (axis[i - 1][1] - start) * scale) if i > 0 else np.ones(0, np.float32)
        tail = (1.0 - _ramp(0, (end - axis[i + 1][0]) * scale)) if i + 1 < len(axis) \
            else np.ones(0, np.float32)
        fades.append(_Fade(head, tail.astype(np.float32)))
    return _normalised(axis, scale, fades)


def _normalised(axis: list[tuple[int, int]], scale: int, fades: list[_Fade]) -> list[_Fade]:
    """The fades divided by their sum at each pixel, so that they add up to 1 everywhere.

    Two neighbours' fades already do; but with an overlap over a quarter of the tile, the last
    tile (flush with the image's end) can overlap two others, and their pairwise fades summed up
    to 1.6 % too much there. A pixel outside a tile's head and tail strips is in no other tile
    (a farther tile overlaps it only inside them), so only the strips change; a tile whose two
    strips meet gets one strip over its whole length."""
    total = np.zeros(axis[-1][1] * scale, np.float32)
    weights = []
    for (start, end), fade in zip(axis, fades, strict=True):
        w = np.ones((end - start) * scale, np.float32)
        w[: len(fade.head)] *= fade.head
        w[len(w) - len(fade.tail) :] *= fade.tail
        total[start * scale : end * scale] += w
        weights.append(w)
    result = []
    for (start, end), fade, w in zip(axis, fades, weights, strict=True):
        w /= total[start * scale : end * scale]
        n, head, tail = len(w), len(fade.head), len(fade.tail)
        if head + tail > n:
            result.append(_Fade(w, np.ones(0, np.float32)))
        else:
            result.append(_Fade(w[:head], w[n - tail :] if tail else np.ones(0, np.float32)))
    return result


def _apply(patch: F32, fade: _Fade, axis: int) -> None:
    """Multiply ``patch`` (C, H, W) in place by a fade along ``axis`` (1: rows, 2: columns)."""
    shape = [1, 1, 1]
    for weights, part in ((fade.head, slice(0, len(fade.head))),
                          (fade.tail, slice(patch.shape[axis] - len(fade.tail), None))):
        if len(weights):
            shape[axis] = len(weights)
            index = [slice(None)] * 3
            index[axis] = part
            patch[tuple(index)] *= weights.reshape(shape)


@dataclass(frozen=True)
class Grid:
    """The tiles of one image."""

    rows: list[tuple[int, int]]
    cols: list[tuple[int, int]]

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)


def grid(height: int, width: int, tile: tuple[int, int], overlap: int) -> Grid:
    return Grid(spans(height, tile[0], overlap), spans(width, tile[1], overlap))


def upscale_tiled(
    image: U8,
    infer: Infer,
    scale: int,
    tile: tuple[int, int],
    overlap: int,
    on_tile: Callable[[int, int], None] | None = None,
) -> U8:
    """Upscale ``image`` (uint8, (H, W, C)) tile by tile; returns uint8 (H*scale, W*scale, C).

    ``on_tile(done, total)`` is called before each tile (with the tiles done so far) and once at
    the end; a run's checkpoint goes there, so pause and stop act between tiles.
    """
    h, w, c = image.shape
    g = grid(h, w, tile, overlap)
    out = np.empty((h * scale, w * scale, c), np.uint8)
    row_fades, col_fades = _fades(g.rows, scale), _fades(g.cols, scale)
    carry: F32 | None = None  # the strip shared with the next row of tiles
    done = 0
    for i, (y0, y1) in enumerate(g.rows):
        rows_out = (y1 - y0) * scale
        acc = np.zeros((c, rows_out, w * scale), np.float32)
        if carry is not None:
            acc[:, : carry.shape[1]] += carry
        for j, (x0, x1) in enumerate(g.cols):
            if on_tile is not None:
                on_tile(done, g.count)
            patch = infer(np.ascontiguousarray(image[y0:y1, x0:x1]))
            if patch.shape != (c, rows_out, (x1 - x0) * scale):
                raise RuntimeError(f"the model gave a {patch.shape} tile for a "
                                   f"{(y1 - y0, x1 - x0, c)} input at scale {scale}")
            _apply(patch, row_fades[i], 1)
            _apply(patch, col_fades[j], 2)
            acc[:, :, x0 * scale : x1 * scale] += patch
            done += 1
        final = ((g.rows[i + 1][0] if i + 1 < len(g.rows) else y1) - y0) * scale
        out[y0 * scale : y0 * scale + final] = _to_u8(acc[:, :final])
        carry = acc[:, final:] if final < rows_out else None
    if on_tile is not None:
        on_tile(done, g.count)
    return out


def _to_u8(planes: F32) -> U8:
    """(C, H, W) floats in 0..1 (in place, they are not used again) -> (H, W, C) uint8."""
    np.multiply(planes, 255.0, out=planes)
    np.clip(planes, 0.0, 255.0, out=planes)
    np.rint(planes, out=planes)
    result: U8 = planes.astype(np.uint8).transpose(1, 2, 0)
    return result
