"""Filter nodes: ``image.gaussian_blur``, ``image.sharpen``, ``image.add_noise``."""

from __future__ import annotations

from typing import Annotated, cast

import numpy as np
from PIL import ImageFilter

from ...api import Context, Image, Range, node
from .convert import as_image, check_range, from_pil, has_alpha, map_color, to_pil, to_uint8


@node("image.gaussian_blur", output="image")
def gaussian_blur(image: Image, radius: Annotated[float, Range(0, 1000)] = 2.0) -> Image:
    """Gaussian blur with the given ``radius`` in pixels (0 to 1000; 0 returns a copy).

    RGBA images are blurred premultiplied, so transparent areas do not bleed dark fringes.
    """
    image = as_image(image)
    check_range("radius", radius, 0.0, 1000.0)
    if radius == 0:
        return cast(Image, image.copy())
    pil = to_pil(image)
    blur = ImageFilter.GaussianBlur(float(radius))
    if has_alpha(image):
        return from_pil(pil.convert("RGBa").filter(blur).convert("RGBA"))
    return from_pil(pil.filter(blur))


@node("image.sharpen", output="image")
def sharpen(image: Image, radius: Annotated[float, Range(0, 1000)] = 2.0,
            percent: Annotated[int, Range(0, 1000)] = 150,
            threshold: Annotated[int, Range(0, 255)] = 3) -> Image:
    """Sharpen with an unsharp mask: blur ``radius`` (px), strength ``percent`` (0-1000) and
    ``threshold`` (0-255, the smallest difference that gets sharpened). Alpha is untouched."""
    image = as_image(image)
    check_range("radius", radius, 0.0, 1000.0)
    check_range("percent", percent, 0, 1000)
    check_range("threshold", threshold, 0, 255)
    mask = ImageFilter.UnsharpMask(
        radius=float(radius), percent=int(percent), threshold=int(threshold)
    )
    return map_color(image, lambda c: from_pil(to_pil(c).filter(mask)))


@node("image.add_noise", output="image")
def add_noise(
    image: Image,
    amount: Annotated[float, Range(0, 1)] = 0.1,
    seed: int = 0,
    monochrome: bool = False,
    per_item: bool = True,
    ctx: Context | None = None,
) -> Image:
    """Add Gaussian noise with standard deviation ``amount * 255`` (``amount`` 0-1).

    Deterministic: the same ``seed`` gives the same noise. With ``per_item`` (default), inside a
    run the item index is mixed into the seed so every item gets different (still reproducible)
    noise. ``monochrome`` adds the same noise to every colour channel. Alpha is untouched.
    """
    image = as_image(image)
    check_range("amount", amount, 0.0, 1.0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    entropy = [int(seed)]
    if per_item and ctx is not None and ctx.item is not None:
        entropy.append(int(ctx.item))
    rng = np.random.default_rng(np.random.SeedSequence(entropy))

    def noisy(color: Image) -> Image:
        shape = color.shape[:2] if (monochrome or color.ndim == 2) else color.shape
        noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(amount * 255.0)
        if noise.ndim < color.ndim:
            noise = noise[:, :, None]
        return to_uint8(color.astype(np.float32) + noise)

    return map_color(image, noisy)
