"""Tests of the standard image nodes (``chainlib.nodes.image``), called directly."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageFilter

from chainlib.api import Item, Lazy, NullContext, all_specs
from chainlib.nodes import image as im

# -- fixtures --------------------------------------------------------------------------------


def _rng_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(params=["L", "RGB", "RGBA"])
def any_image(request: pytest.FixtureRequest) -> np.ndarray[Any, Any]:
    shape = {"L": (24, 32), "RGB": (24, 32, 3), "RGBA": (24, 32, 4)}[request.param]
    return _rng_image(shape, 7)


def _mode(a: np.ndarray[Any, Any]) -> str:
    return {2: "L", 3: "RGB", 4: "RGBA"}[a.ndim if a.ndim == 2 else a.shape[2]]


# -- registration ----------------------------------------------------------------------------


EXPECTED_IDS = {
    "image.load", "image.load_folder", "image.save", "image.resize", "image.crop",
    "image.rotate", "image.flip", "image.grayscale", "image.invert",
    "image.brightness_contrast", "image.gamma", "image.gaussian_blur", "image.sharpen",
    "image.add_noise", "image.blend", "image.caption", "image.info", "image.contact_sheet",
}  # fmt: skip


def test_all_nodes_registered_with_docs() -> None:
    specs = {s.id: s for s in all_specs() if s.id.startswith("image.")}
    assert set(specs) >= EXPECTED_IDS
    for spec in specs.values():
        assert spec.doc, spec.id
    assert specs["image.load_folder"].kind == "iterator"
    assert set(specs["image.load_folder"].outputs) == {"image", "name", "path", "subfolder"}
    assert specs["image.contact_sheet"].kind == "collector"
    assert specs["image.contact_sheet"].collect == "images"
    assert list(specs["image.save"].outputs) == ["path"]
    assert list(specs["image.resize"].outputs) == ["image"]
    assert set(specs["image.info"].outputs) == {"width", "height", "channels", "mode"}
    assert specs["image.save"].wants_ctx and "ctx" not in specs["image.save"].inputs


# -- input checking --------------------------------------------------------------------------


def test_bad_image_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="image: expected a uint8"):
        im.invert(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"image: expected shape"):
        im.invert(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="image: the image is empty"):
        im.invert(np.zeros((0, 4), np.uint8))
    with pytest.raises(ValueError, match="overlay"):
        im.blend(np.zeros((4, 4), np.uint8), "nope")  # type: ignore[arg-type]


def test_single_channel_and_pil_inputs_are_accepted() -> None:
    a = _rng_image((5, 6, 1))
    assert im.invert(a).shape == (5, 6)
    pil = PILImage.fromarray(_rng_image((5, 6, 3)))
    np.testing.assert_array_equal(im.invert(pil), 255 - np.asarray(pil))


# -- tone ------------------------------------------------------------------------------------


def test_invert_hand_computed_and_alpha_untouched() -> None:
    a = np.array([[[0, 10, 255, 7]]], np.uint8)
    np.testing.assert_array_equal(im.invert(a), [[[255, 245, 0, 7]]])
    np.testing.assert_array_equal(im.invert(np.array([[0, 200]], np.uint8)), [[255, 55]])


def test_invert_twice_is_identity(any_image: np.ndarray[Any, Any]) -> None:
    out = im.invert(im.invert(any_image))
    np.testing.assert_array_equal(out, any_image)
    assert out.dtype == np.uint8


def test_grayscale_matches_pillow_and_keeps_alpha() -> None:
    rgb = _rng_image((10, 12, 3), 1)
    expected = np.asarray(PILImage.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(im.grayscale(rgb), expected)
    rgba = np.dstack([rgb, _rng_image((10, 12), 2)])
    out = im.grayscale(rgba)
    assert out.shape == (10, 12, 4)
    np.testing.assert_array_equal(out[:, :, 3], rgba[:, :, 3])
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], expected)
    np.testing.assert_array_equal(im.grayscale(rgba, keep_alpha=False), expected)
    gray = _rng_image((3, 4))
    np.testing.assert_array_equal(im.grayscale(gray), gray)


def test_brightness_contrast_identity_and_values(any_image: np.ndarray[Any, Any]) -> None:
    np.testing.assert_array_equal(im.brightness_contrast(any_image), any_image)
    a = np.array([[0, 100, 200]], np.uint8)
    np.testing.assert_array_equal(im.brightness_contrast(a, brightness=0.2), [[51, 151, 251]])
    np.testing.assert_array_equal(im.brightness_contrast(a, brightness=1.0), [[255, 255, 255]])
    np.testing.assert_array_equal(im.brightness_contrast(a, brightness=-1.0), [[0, 0, 0]])
    # contrast 1/3 -> slope 2 around 127.5: 100 -> 72.5 -> 72 (round half even), 200 -> 272.5
    np.testing.assert_array_equal(im.brightness_contrast(a, contrast=1 / 3), [[0, 72, 255]])
    np.testing.assert_array_equal(im.brightness_contrast(a, contrast=-1.0), [[128, 128, 128]])
    rgba = _rng_image((4, 4, 4))
    np.testing.assert_array_equal(im.brightness_contrast(rgba, 0.5, 0.5)[:, :, 3], rgba[:, :, 3])
    with pytest.raises(ValueError, match=r"brightness: must be between -1.0 and 1.0, got 2"):
        im.brightness_contrast(a, brightness=2)
    with pytest.raises(ValueError, match="contrast"):
        im.brightness_contrast(a, contrast=-1.5)


def test_gamma(any_image: np.ndarray[Any, Any]) -> None:
    np.testing.assert_array_equal(im.gamma(any_image, 1.0), any_image)
    a = np.array([[0, 64, 255]], np.uint8)
    expected = np.rint(255 * (np.array([0, 64, 255]) / 255) ** 0.5).astype(np.uint8)
    np.testing.assert_array_equal(im.gamma(a, 2.0), [expected])
    assert im.gamma(a, 2.0)[0, 1] > 64 > im.gamma(a, 0.5)[0, 1]
    rgba = _rng_image((4, 4, 4))
    np.testing.assert_array_equal(im.gamma(rgba, 3.0)[:, :, 3], rgba[:, :, 3])
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="gamma: must be greater than 0"):
            im.gamma(a, bad)


# -- geometry --------------------------------------------------------------------------------


def test_flip_hand_computed_and_involution(any_image: np.ndarray[Any, Any]) -> None:
    a = np.array([[1, 2], [3, 4]], np.uint8)
    np.testing.assert_array_equal(im.flip(a, "horizontal"), [[2, 1], [4, 3]])
    np.testing.assert_array_equal(im.flip(a, "vertical"), [[3, 4], [1, 2]])
    np.testing.assert_array_equal(im.flip(a, "both"), [[4, 3], [2, 1]])
    for d in ("horizontal", "vertical", "both"):
        np.testing.assert_array_equal(im.flip(im.flip(any_image, d), d), any_image)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction: 'diagonal'"):
        im.flip(a, "diagonal")  # type: ignore[arg-type]


def test_rotate_90_is_exact(any_image: np.ndarray[Any, Any]) -> None:
    a = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    np.testing.assert_array_equal(im.rotate(a, 90), [[3, 6], [2, 5], [1, 4]])  # counter-clockwise
    np.testing.assert_array_equal(im.rotate(a, -90), [[4, 1], [5, 2], [6, 3]])
    out = any_image
    for _ in range(4):
        out = im.rotate(out, 90)
    np.testing.assert_array_equal(out, any_image)
    np.testing.assert_array_equal(im.rotate(any_image, 360), any_image)
    # same as Pillow's exact transpose
    pil = PILImage.fromarray(any_image).rotate(90, expand=True)
    np.testing.assert_array_equal(im.rotate(any_image, 90), np.asarray(pil))


def test_rotate_arbitrary_angle_fill_and_alpha() -> None:
    rgb = np.full((20, 30, 3), 200, np.uint8)
    out = im.rotate(rgb, 45, expand=True, fill="red")
    assert out.shape[2] == 3 and out.shape[0] > 20 and out.shape[1] > 30
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    same = im.rotate(rgb, 45, expand=False)
    assert same.shape == rgb.shape
    clear = im.rotate(rgb, 30, fill="transparent")
    assert clear.shape[2] == 4 and clear[0, 0, 3] == 0
    assert clear[clear.shape[0] // 2, clear.shape[1] // 2, 3] == 255
    gray = im.rotate(np.full((10, 10), 50, np.uint8), 10, fill="white")
    assert gray.ndim == 2 and gray[0, 0] == 255
    with pytest.raises(ValueError, match="fill: unknown colour 'blurple'"):
        im.rotate(rgb, 10, fill="blurple")


def test_crop_and_clamping(any_image: np.ndarray[Any, Any]) -> None:
    a = np.arange(20, dtype=np.uint8).reshape(4, 5)
    np.testing.assert_array_equal(im.crop(a, 1, 2, 2, 2), [[11, 12], [16, 17]])
    np.testing.assert_array_equal(im.crop(a, 3, 1), a[1:, 3:])  # 0 = to the edge
    np.testing.assert_array_equal(im.crop(a, 3, 3, 100, 100), a[3:, 3:])  # clamped
    np.testing.assert_array_equal(im.crop(a, -2, -1, 4, 3), a[0:2, 0:2])
    out = im.crop(any_image, 2, 3, 10, 5)
    np.testing.assert_array_equal(out, any_image[3:8, 2:12])
    with pytest.raises(ValueError, match="outside the 5x4 image"):
        im.crop(a, 5, 0, 2, 2)
    with pytest.raises(ValueError, match="width: must be between 0 and 65535, got -1"):
        im.crop(a, 0, 0, -1, 2)


def test_resize_sizes(any_image: np.ndarray[Any, Any]) -> None:  # image is 32x24
    assert im.resize(any_image, width=16).shape[:2] == (12, 16)
    assert im.resize(any_image, height=48).shape[:2] == (48, 64)
    assert im.resize(any_image, scale=0.5).shape[:2] == (12, 16)
    assert im.resize(any_image, width=10, height=10, mode="fit").shape[:2] == (8, 10)
    assert im.resize(any_image, width=10, height=10, mode="fill").shape[:2] == (10, 10)
    assert im.resize(any_image, width=10, height=50, mode="exact").shape[:2] == (50, 10)
    assert im.resize(any_image, scale=0.001).shape[:2] == (1, 1)
    assert im.resize(any_image, width=16).shape[2:] == any_image.shape[2:]


def test_resize_matches_pillow() -> None:
    rgb = _rng_image((24, 32, 3), 3)
    for name, flt in [
        ("nearest", PILImage.Resampling.NEAREST),
        ("lanczos", PILImage.Resampling.LANCZOS),
    ]:
        expected = np.asarray(PILImage.fromarray(rgb).resize((13, 7), flt))
        got = im.resize(rgb, width=13, height=7, mode="exact", filter=name)  # type: ignore[arg-type]
        np.testing.assert_array_equal(got, expected)


def test_resize_alpha_is_premultiplied() -> None:
    # opaque red next to fully transparent green: the blend must not pick up green
    a = np.zeros((8, 8, 4), np.uint8)
    a[:, :4] = (255, 0, 0, 255)
    a[:, 4:] = (0, 255, 0, 0)
    out = im.resize(a, width=3, height=3, mode="exact", filter="bilinear")
    visible = out[out[:, :, 3] > 0]
    assert (visible[:, 1] == 0).all()


def test_resize_errors() -> None:
    a = _rng_image((4, 4))
    with pytest.raises(ValueError, match="give a target size"):
        im.resize(a)
    with pytest.raises(ValueError, match="scale: give either scale"):
        im.resize(a, width=3, scale=2.0)
    with pytest.raises(ValueError, match="width: must be between 0 and 65535, got -3"):
        im.resize(a, width=-3)
    with pytest.raises(ValueError, match="width: expected an integer"):
        im.resize(a, width=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="filter: 'fancy'"):
        im.resize(a, width=2, filter="fancy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode: 'stretch'"):
        im.resize(a, width=2, height=2, mode="stretch")  # type: ignore[arg-type]


def test_resize_refuses_a_result_over_the_per_image_limit(
    image_limit: Callable[[float], None]
) -> None:
    # width=65535 on an 800x600 photo asked Pillow for 65535x49151 RGB (9.6 GB) and the run
    # ground on for minutes (or was killed); the limit decoded images get applies to results too
    a = _rng_image((8, 8, 3))
    image_limit(1)
    with pytest.raises(ValueError, match=r"width: the result 1000x1000 with 3 channel\(s\) "
                                         r"is 3 MB, over the 1 MB limit per image"):
        im.resize(a, width=1000)
    assert im.resize(a, width=500).shape == (500, 500, 3)  # 0.7 MB: fine


def test_rotate_and_contact_sheet_refuse_a_result_over_the_per_image_limit(
    image_limit: Callable[[float], None]
) -> None:
    # like resize: the canvas is checked before it is allocated
    a = _rng_image((400, 400, 3))
    image_limit(0.5)
    with pytest.raises(ValueError, match=r"angle: the result 566x566 with 3 channel\(s\) is "
                                         r"1 MB, over the 0.5 MB limit per image"):
        im.rotate(a, angle=45, expand=True)
    assert im.rotate(a, angle=45, expand=False).shape == (400, 400, 3)  # same size: fine
    with pytest.raises(ValueError, match=r"images: the result .* over the 0.5 MB limit"):
        im.contact_sheet([a] * 40, columns=5, thumb_size=200)
    assert im.contact_sheet([a] * 4, columns=2, thumb_size=100).shape[2] == 3


def test_info(any_image: np.ndarray[Any, Any]) -> None:
    info = im.info(any_image)
    mode = _mode(any_image)
    assert info == {"width": 32, "height": 24, "channels": len(mode), "mode": mode}


# -- filters ---------------------------------------------------------------------------------


def test_gaussian_blur_matches_pillow_and_zero_is_identity(any_image: np.ndarray[Any, Any]) -> None:
    np.testing.assert_array_equal(im.gaussian_blur(any_image, 0), any_image)
    if any_image.ndim == 2 or any_image.shape[2] == 3:
        pil = PILImage.fromarray(any_image).filter(ImageFilter.GaussianBlur(1.5))
        np.testing.assert_array_equal(im.gaussian_blur(any_image, 1.5), np.asarray(pil))
    else:
        assert im.gaussian_blur(any_image, 1.5).shape == any_image.shape
    with pytest.raises(ValueError, match="radius"):
        im.gaussian_blur(any_image, -1)


def test_gaussian_blur_rgba_no_dark_fringe() -> None:
    a = np.zeros((20, 20, 4), np.uint8)
    a[5:15, 5:15] = (255, 255, 255, 255)  # white square, transparent black around
    out = im.gaussian_blur(a, 3)
    visible = out[out[:, :, 3] > 10]
    assert visible[:, :3].min() >= 250  # still white where it shows


def test_sharpen_matches_pillow_and_keeps_alpha() -> None:
    rgb = _rng_image((16, 16, 3), 4)
    expected = np.asarray(PILImage.fromarray(rgb).filter(ImageFilter.UnsharpMask(2, 150, 3)))
    np.testing.assert_array_equal(im.sharpen(rgb), expected)
    rgba = np.dstack([rgb, _rng_image((16, 16), 5)])
    out = im.sharpen(rgba)
    np.testing.assert_array_equal(out[:, :, :3], expected)
    np.testing.assert_array_equal(out[:, :, 3], rgba[:, :, 3])
    with pytest.raises(ValueError, match="threshold"):
        im.sharpen(rgb, threshold=300)


def test_add_noise_determinism(any_image: np.ndarray[Any, Any]) -> None:
    a = im.add_noise(any_image, 0.2, seed=1)
    np.testing.assert_array_equal(a, im.add_noise(any_image, 0.2, seed=1))
    assert not np.array_equal(a, im.add_noise(any_image, 0.2, seed=2))
    assert not np.array_equal(a, any_image)
    np.testing.assert_array_equal(im.add_noise(any_image, 0.0), any_image)
    if any_image.ndim == 3 and any_image.shape[2] == 4:
        np.testing.assert_array_equal(a[:, :, 3], any_image[:, :, 3])
    # per-item variety inside a run, reproducible per item
    i3 = im.add_noise(any_image, 0.2, seed=1, ctx=NullContext(item=3))
    np.testing.assert_array_equal(i3, im.add_noise(any_image, 0.2, seed=1, ctx=NullContext(item=3)))
    assert not np.array_equal(i3, im.add_noise(any_image, 0.2, seed=1, ctx=NullContext(item=4)))
    np.testing.assert_array_equal(
        im.add_noise(any_image, 0.2, seed=1, per_item=False, ctx=NullContext(item=3)), a
    )


def test_add_noise_monochrome_and_errors() -> None:
    flat = np.full((10, 10, 3), 128, np.uint8)
    out = im.add_noise(flat, 0.1, seed=5, monochrome=True).astype(int)
    assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all()
    with pytest.raises(ValueError, match="amount"):
        im.add_noise(flat, 2.0)
    with pytest.raises(ValueError, match="seed: expected a non-negative integer, got -1"):
        im.add_noise(flat, seed=-1)


# -- compositing -----------------------------------------------------------------------------


def test_blend_modes_hand_computed() -> None:
    base = np.array([[[100, 200, 0]]], np.uint8)
    top = np.array([[[50, 255, 255]]], np.uint8)
    b, s = base / 255.0, top / 255.0

    def expect(v: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.rint(v * 255).astype(np.uint8)

    np.testing.assert_array_equal(im.blend(base, top, "normal"), top)
    np.testing.assert_array_equal(im.blend(base, top, "multiply"), expect(b * s))
    np.testing.assert_array_equal(im.blend(base, top, "screen"), expect(b + s - b * s))
    np.testing.assert_array_equal(im.blend(base, top, "add"), expect(np.minimum(b + s, 1)))
    np.testing.assert_array_equal(im.blend(base, top, "difference"), expect(np.abs(b - s)))
    ov = np.where(b <= 0.5, 2 * b * s, 1 - 2 * (1 - b) * (1 - s))
    np.testing.assert_array_equal(im.blend(base, top, "overlay"), expect(ov))
    half = im.blend(base, top, "normal", opacity=0.5)
    np.testing.assert_array_equal(half, expect(0.5 * b + 0.5 * s))


def test_blend_opacity_zero_is_base(any_image: np.ndarray[Any, Any]) -> None:
    top = _rng_image((10, 10, 4), 9)  # different size: resized to the base
    same = im.blend(any_image, top, "multiply", opacity=0.0)
    if any_image.ndim == 2:  # a colour overlay makes the result colour
        assert same.shape == (*any_image.shape, 3)
        for c in range(3):
            np.testing.assert_array_equal(same[:, :, c], any_image)
    else:
        np.testing.assert_array_equal(same, any_image)
    np.testing.assert_array_equal(im.blend(any_image, any_image, opacity=0.0), any_image)
    out = im.blend(any_image, top, "screen", 0.7)
    assert out.shape[:2] == any_image.shape[:2]
    if any_image.ndim == 3 and any_image.shape[2] == 4:
        assert out.shape[2] == 4


def test_blend_shapes_and_alpha() -> None:
    gray = np.full((4, 4), 100, np.uint8)
    assert im.blend(gray, gray, "multiply").ndim == 2
    assert im.blend(gray, np.zeros((4, 4, 3), np.uint8)).shape == (4, 4, 3)
    transparent = np.zeros((4, 4, 4), np.uint8)
    np.testing.assert_array_equal(im.blend(gray, transparent), np.dstack([gray] * 3))  # invisible
    opaque_red = np.zeros((4, 4, 4), np.uint8)
    opaque_red[..., 0] = 255
    opaque_red[..., 3] = 255
    out = im.blend(np.zeros((4, 4, 4), np.uint8), opaque_red)  # onto a fully transparent base
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0, 255])
    with pytest.raises(ValueError, match="opacity"):
        im.blend(gray, gray, opacity=1.5)
    with pytest.raises(ValueError, match="mode: 'burn'"):
        im.blend(gray, gray, mode="burn")  # type: ignore[arg-type]


def test_caption_draws_and_keeps_modes(any_image: np.ndarray[Any, Any]) -> None:
    blank = np.zeros_like(any_image)
    out = im.caption(blank, "Hello", size=12, color="white", background="transparent")
    assert out.shape == blank.shape
    if any_image.ndim == 3 and any_image.shape[2] == 4:
        assert out[:, :, 3].max() > 200  # text made pixels visible
    else:
        assert out.max() > 200
    np.testing.assert_array_equal(im.caption(any_image, "   "), any_image)


def test_caption_positions_and_colour_promotion() -> None:
    blank = np.zeros((60, 120), np.uint8)
    top = im.caption(blank, "X", position="top", size=14, background="transparent")
    bottom = im.caption(blank, "X", position="bottom", size=14, background="transparent")
    assert top[:30].max() > 0 and top[30:].max() == 0
    assert bottom[30:].max() > 0 and bottom[:30].max() == 0
    left = im.caption(blank, "X", position="top-left", size=14, background="transparent")
    assert left[:, :60].max() > 0 and left[:, 60:].max() == 0
    red = im.caption(blank, "X", color="red")
    assert red.shape == (60, 120, 3) and red[..., 0].max() == 255
    with pytest.raises(ValueError, match="position"):
        im.caption(blank, "X", position="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="color: unknown colour"):
        im.caption(blank, "X", color="#12")


def test_contact_sheet_layout() -> None:
    imgs = [
        np.full((20, 40, 3), 10, np.uint8),
        np.full((40, 20), 20, np.uint8),
        np.full((30, 30, 4), 30, np.uint8),
        np.full((10, 10, 3), 40, np.uint8),
        np.full((10, 10, 3), 50, np.uint8),
    ]
    sheet = im.contact_sheet(imgs, columns=2, thumb_size=16, padding=2, background="white")
    assert sheet.shape == (3 * 16 + 4 * 2, 2 * 16 + 3 * 2, 3)
    assert tuple(sheet[0, 0]) == (255, 255, 255)
    # first thumbnail: 40x20 -> 16x8, centred vertically in its 16x16 cell at (2, 2)
    np.testing.assert_array_equal(sheet[2 + 4 : 2 + 12, 2 : 2 + 16], 10)
    assert tuple(sheet[2, 2]) == (255, 255, 255)
    # semi-transparent (alpha 30) image composited onto white
    cell = sheet[2 + 18 + 8, 2 + 8]
    expected = round(30 * 30 / 255 + 255 * (1 - 30 / 255))
    assert abs(int(cell[0]) - expected) <= 1
    clear = im.contact_sheet(imgs[:1], background="transparent")
    assert clear.shape[2] == 4 and clear[0, 0, 3] == 0
    with pytest.raises(ValueError, match="no images"):
        im.contact_sheet([])
    with pytest.raises(ValueError, match="columns"):
        im.contact_sheet(imgs, columns=0)
    with pytest.raises(ValueError, match=r"images\[1\]"):
        im.contact_sheet([imgs[0], np.zeros((3, 3), np.float64)])  # type: ignore[list-item]


# -- reading ---------------------------------------------------------------------------------


def test_load_png_round_trip_and_name(tmp_path: Path, any_image: np.ndarray[Any, Any]) -> None:
    p = tmp_path / "pic.one.png"
    PILImage.fromarray(any_image).save(p)
    out = im.load(str(p))
    assert out["name"] == "pic.one"
    np.testing.assert_array_equal(out["image"], any_image)


def test_load_palette_and_modes(tmp_path: Path) -> None:
    rgb = _rng_image((8, 8, 3), 1)
    pal = PILImage.fromarray(rgb).quantize(8)
    pal.save(tmp_path / "p.png")
    got = im.load(str(tmp_path / "p.png"))["image"]
    np.testing.assert_array_equal(got, np.asarray(pal.convert("RGB")))
    pal.save(tmp_path / "pt.png", transparency=0)
    assert im.load(str(tmp_path / "pt.png"))["image"].shape == (8, 8, 4)
    PILImage.new("1", (5, 4), 1).save(tmp_path / "bw.png")
    bw = im.load(str(tmp_path / "bw.png"))["image"]
    assert bw.shape == (4, 5) and (bw == 255).all()
    PILImage.new("LA", (5, 4), (10, 20)).save(tmp_path / "la.png")
    np.testing.assert_array_equal(
        im.load(str(tmp_path / "la.png"))["image"][0, 0], [10, 10, 10, 20]
    )
    PILImage.new("CMYK", (5, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    cmyk = im.load(str(tmp_path / "c.jpg"))["image"]
    assert cmyk.shape == (4, 5, 3) and cmyk[0, 0, 0] > 200 and cmyk[0, 0, 1] < 50


def test_load_16bit(tmp_path: Path) -> None:
    a16 = np.array([[0, 257 * 100, 65535]], np.uint16)
    PILImage.fromarray(a16).save(tmp_path / "deep.png")
    out = im.load(str(tmp_path / "deep.png"))["image"]
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 100, 255]])
    f = PILImage.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))
    f.save(tmp_path / "f.tif")
    np.testing.assert_array_equal(im.load(str(tmp_path / "f.tif"))["image"], [[0, 128, 255]])


def test_load_applies_exif_orientation(tmp_path: Path) -> None:
    a = np.zeros((10, 20, 3), np.uint8)
    a[:, :10] = 255  # left half white
    pil = PILImage.fromarray(a)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    pil.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = im.load(str(tmp_path / "o.jpg"))["image"]
    assert out.shape == (20, 10, 3)
    assert out[:8].mean() > 200 and out[12:].mean() < 50  # white half now on top


def test_corrupt_and_missing_files_name_the_file(tmp_path: Path) -> None:
    good = io.BytesIO()
    PILImage.fromarray(_rng_image((64, 64, 3))).save(good, "JPEG")
    trunc = tmp_path / "truncated.jpg"
    trunc.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    for p in (trunc, garbage, tmp_path / "missing.png"):
        with pytest.raises(ValueError, match=re.escape(p.name)) as err:
            im.load(str(p))
        assert "cannot read image" in str(err.value)
    with pytest.raises(ValueError, match="truncated"):
        im.read_image(trunc)


# -- load_folder -----------------------------------------------------------------------------


def _make_tree(root: Path) -> None:
    px = PILImage.new("RGB", (4, 3), (1, 2, 3))
    for rel in ["img10.png", "img2.png", "B.jpg", "a.PNG", "sub/c.png", "sub/deeper/d.webp",
                ".hidden.png", ".cache/e.png", "notes.txt", "sub/x.gif"]:  # fmt: skip
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".txt"):
            p.write_text("hi")
        else:
            px.save(p)


def _labels(items: list[Any]) -> list[str]:
    return [it.label for it in items]


def test_load_folder_order_pattern_recursion(tmp_path: Path) -> None:
    _make_tree(tmp_path)
    items = list(im.load_folder(str(tmp_path)))
    assert _labels(items) == ["a.PNG", "B.jpg", "img2.png", "img10.png"]
    assert im.load_folder.__chainlib_spec__.length(str(tmp_path)) == 4  # type: ignore[attr-defined]
    rec = list(im.load_folder(str(tmp_path), recursive=True))
    assert _labels(rec) == [
        "a.PNG", "B.jpg", "img2.png", "img10.png", "sub/c.png", "sub/deeper/d.webp", "sub/x.gif"
    ]  # fmt: skip
    assert _labels(list(im.load_folder(str(tmp_path), "*.png", True))) == [
        "a.PNG", "img2.png", "img10.png", "sub/c.png"
    ]  # fmt: skip
    assert _labels(list(im.load_folder(str(tmp_path), "sub/*", True))) == [
        "sub/c.png", "sub/deeper/d.webp", "sub/x.gif"
    ]  # fmt: skip
    assert _labels(list(im.load_folder(str(tmp_path), "img*"))) == ["img2.png", "img10.png"]
    # deterministic
    assert _labels(rec) == _labels(list(im.load_folder(str(tmp_path), recursive=True)))


def test_load_folder_items(tmp_path: Path) -> None:
    _make_tree(tmp_path)
    items = list(im.load_folder(str(tmp_path), recursive=True))
    assert all(isinstance(it, Item) for it in items)
    deep = items[-2]
    assert deep.label == "sub/deeper/d.webp"
    assert deep.source == str((tmp_path / "sub" / "deeper" / "d.webp").resolve())
    assert os.path.isabs(deep.source)
    value = deep.value
    assert value["name"] == "d"
    assert value["path"] == "sub/deeper/d.webp"
    assert value["subfolder"] == "sub/deeper"
    assert items[0].value["subfolder"] == ""
    assert isinstance(value["image"], Lazy)
    arr = value["image"].resolve()
    assert arr.shape == (3, 4, 3)


def test_load_folder_lazy_failure_names_file(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    (items,) = list(im.load_folder(str(tmp_path)))
    with pytest.raises(ValueError, match=r"bad\.png"):
        items.value["image"].resolve()


def test_load_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"folder: .* does not exist"):
        list(im.load_folder(str(tmp_path / "nope")))
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(ValueError, match="is not a folder"):
        list(im.load_folder(str(tmp_path / "f.png")))
    with pytest.raises(ValueError, match="pattern"):
        list(im.load_folder(str(tmp_path), pattern=""))


# -- save ------------------------------------------------------------------------------------


def _no_temp_files(folder: Path) -> bool:
    return not list(folder.rglob(".chainlib-tmp-*"))


def test_save_png_round_trip(tmp_path: Path, any_image: np.ndarray[Any, Any]) -> None:
    path = im.save(any_image, str(tmp_path), "pic")
    assert path == str(tmp_path / "pic.png")
    np.testing.assert_array_equal(im.load(path)["image"], any_image)
    assert _no_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pic.png"]


def test_save_refuses_overwrite_unless_asked(tmp_path: Path) -> None:
    a, b = _rng_image((4, 4, 3), 1), _rng_image((4, 4, 3), 2)
    path = im.save(a, str(tmp_path), "x")
    with pytest.raises(ValueError, match=r"already exists.*overwrite=True"):
        im.save(b, str(tmp_path), "x")
    np.testing.assert_array_equal(im.load(path)["image"], a)  # untouched
    assert _no_temp_files(tmp_path)
    im.save(b, str(tmp_path), "x", overwrite=True)
    np.testing.assert_array_equal(im.load(path)["image"], b)
    assert _no_temp_files(tmp_path)


def test_save_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(PILImage.Image, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        im.save(_rng_image((4, 4)), str(tmp_path), "x")
    assert list(tmp_path.iterdir()) == []


def test_save_jpeg_from_rgba_and_gray(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent -> white
    path = im.save(rgba, str(tmp_path), "t", format="jpeg", quality=95)
    assert path.endswith("t.jpg")
    out = im.load(path)["image"]
    assert out.shape == (8, 8, 3) and out.min() >= 250
    gray = np.full((8, 8), 77, np.uint8)
    out = im.load(im.save(gray, str(tmp_path), "g", format="jpeg"))["image"]
    assert out.shape == (8, 8) and abs(int(out.mean()) - 77) <= 2


@pytest.mark.parametrize("fmt", ["png", "webp", "bmp", "tiff"])
def test_save_formats(tmp_path: Path, fmt: str, any_image: np.ndarray[Any, Any]) -> None:
    path = im.save(any_image, str(tmp_path), "f", format=fmt, quality=100)  # type: ignore[arg-type]
    with PILImage.open(path) as pil:
        assert pil.format == {"png": "PNG", "webp": "WEBP", "bmp": "BMP", "tiff": "TIFF"}[fmt]
    out = im.load(path)["image"]
    assert out.shape[:2] == any_image.shape[:2]
    if fmt == "bmp" and any_image.ndim == 3 and any_image.shape[2] == 4:
        assert out.shape[2] == 3  # alpha composited onto white, like JPEG
    elif fmt != "webp":
        np.testing.assert_array_equal(out, any_image)


def test_save_names_templates_subfolders(tmp_path: Path) -> None:
    a = _rng_image((4, 4, 3))
    assert im.save(a, str(tmp_path), "p.jpg", format="auto").endswith("p.jpg")
    assert im.save(a, str(tmp_path), "q", format="auto").endswith("q.png")
    assert im.save(a, str(tmp_path), "r.jpg", format="png").endswith(os.sep + "r.png")
    assert im.save(a, str(tmp_path), "my.photo").endswith("my.photo.png")
    path = im.save(a, str(tmp_path), "s", template="{name}_{index:03d}", ctx=NullContext(item=7))
    assert path == str(tmp_path / "s_007.png")
    path = im.save(a, str(tmp_path), "s", subfolder="sub/deeper")
    assert path == str(tmp_path / "sub" / "deeper" / "s.png") and os.path.isfile(path)
    assert im.save(a, str(tmp_path), "s", subfolder="").endswith(os.sep + "s.png")
    assert _no_temp_files(tmp_path)
    with pytest.raises(ValueError, match="template: unknown field"):
        im.save(a, str(tmp_path), "s", template="{nme}")
    with pytest.raises(ValueError, match=r"name: .*path separator"):
        im.save(a, str(tmp_path), "a/b")
    with pytest.raises(ValueError, match="subfolder"):
        im.save(a, str(tmp_path), "s", subfolder="../escape")
    with pytest.raises(ValueError, match="quality: must be between 1 and 100, got 0"):
        im.save(a, str(tmp_path), "s", quality=0)
    with pytest.raises(ValueError, match="format: 'gif'"):
        im.save(a, str(tmp_path), "s", format="gif")  # type: ignore[arg-type]


def test_save_mirrors_load_folder(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    _make_tree(src)
    for it in im.load_folder(str(src), recursive=True):
        v = it.value
        out = im.invert(v["image"].resolve())
        im.save(out, str(dst), v["name"], subfolder=v["subfolder"])
    got = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert got == ["B.png", "a.png", "img10.png", "img2.png", "sub/c.png", "sub/deeper/d.png",
                   "sub/x.png"]  # fmt: skip
