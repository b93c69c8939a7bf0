"""Pixel building blocks shared by the generated samples (images, the sample video)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


def u8(a: npt.NDArray[np.floating] | F32) -> U8:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def value_noise(w: int, h: int, seed: int, octaves: int = 5, base: int = 4) -> F32:
    """Smooth fractal value noise in 0..1 (bicubic-upsampled random grids, summed over octaves)."""
    rng = np.random.default_rng(seed)
    total = np.zeros((h, w), np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        gw, gh = base * 2**o + 1, max(2, round((base * 2**o) * h / w)) + 1
        grid = rng.random((gh, gw), dtype=np.float32)
        layer = Image.fromarray(grid, "F").resize((w, h), Image.Resampling.BICUBIC)
        total += amp * np.asarray(layer, np.float32)
        norm += amp
        amp *= 0.5
    total /= norm
    lo, hi = float(total.min()), float(total.max())
    return ((total - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def colormap(t: F32, stops: list[tuple[float, tuple[int, int, int]]]) -> U8:
    xs = [s for s, _ in stops]
    chans = [np.interp(t, xs, [c[i] for _, c in stops]) for i in range(3)]
    return u8(np.dstack(chans))
