"""Bounded memory: the per-image limit, the memory budget, low-peak decoding and striped resize."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

import chainlib as cl
from chainlib import memory
from chainlib.errors import RunStopped
from chainlib.nodes.image import geometry
from chainlib.nodes.image.convert import from_pil, read_image, to_pil


def reference(path: Path) -> np.ndarray[Any, Any]:
    """What Pillow's own path gives: load, EXIF transpose, convert."""
    with PILImage.open(path) as im:
        im.load()
        return from_pil(ImageOps.exif_transpose(im))


def _sample(mode: str) -> PILImage.Image:
    rng = np.random.default_rng(1)
    return PILImage.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)).convert(mode)


def _writable(mode: str, fmt: str) -> bool:
    try:
        _sample(mode).save(io.BytesIO(), format=fmt)
    except (OSError, ValueError, KeyError):
        return False
    return True


# Every (mode, format) pair Pillow can write: the fast path and Pillow's path must agree.
_PAIRS = [(m, f) for m in ["L", "RGB", "RGBA", "P", "LA", "I;16", "1", "CMYK"]
          for f in ["png", "bmp", "tiff", "jpeg", "webp", "gif"] if _writable(m, f)]


@pytest.mark.parametrize(("mode", "fmt"), _PAIRS)
def test_decoding_matches_pillows_own_path(tmp_path: Path, mode: str, fmt: str) -> None:
    path = tmp_path / f"x.{fmt}"
    _sample(mode).save(path)
    np.testing.assert_array_equal(read_image(path), reference(path))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int, mode: str) -> None:
    rng = np.random.default_rng(orientation)
    img = PILImage.fromarray(rng.integers(0, 256, (30, 47, 3), dtype=np.uint8)).convert(mode)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    img.save(path, exif=exif)
    got = read_image(path)
    np.testing.assert_array_equal(got, reference(path))
    assert got.flags.c_contiguous


def test_the_per_image_limit_refuses_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    PILImage.new("RGB", (2000, 1000)).save(path)
    memory.set_max_image_mb(5)  # 2000 x 1000 x 3 = 5.7 MB
    try:
        with pytest.raises(ValueError, match=r"wide\.png.*2000x1000.*6 MB.*5 MB limit"):
            read_image(path)
        memory.set_max_image_mb(6)
        assert read_image(path).shape == (1000, 2000, 3)
    finally:
        memory.set_max_image_mb(None)
    assert memory.max_image_mb() == memory.DEFAULT_MAX_IMAGE_MB


def test_the_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINLIB_MAX_IMAGE_MB", "12.5")
    assert memory.max_image_mb() == 12.5
    monkeypatch.setenv("CHAINLIB_MAX_IMAGE_MB", "-3")
    with pytest.raises(ValueError, match="CHAINLIB_MAX_IMAGE_MB"):
        memory.max_image_mb()


@pytest.mark.parametrize(("text", "value"), [("800M", 800 << 20), ("2G", 2 << 30),
                                             ("1.5GB", 3 << 29), ("1000", 1000),
                                             ("64MiB", 64 << 20)])
def test_parse_size(text: str, value: int) -> None:
    assert memory.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "abc", "-1G", "0", "infG", "nanM"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        memory.parse_size(text)


def test_reading_reserves_twice_the_decoded_size_for_the_item(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    PILImage.new("RGB", (100, 50)).save(path)
    budget = memory.MemoryBudget(1 << 20)
    with memory.item_scope(budget, lambda: None):
        read_image(path)
        assert budget.used == 2 * 100 * 50 * 3
    assert budget.used == 0
    read_image(path)  # outside an item: nothing reserved, nothing waits
    assert budget.used == 0


def test_an_image_over_the_whole_budget_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    PILImage.new("RGB", (100, 50)).save(path)
    with memory.item_scope(memory.MemoryBudget(20_000), lambda: None), \
            pytest.raises(ValueError, match=r"a\.png.*more than the whole memory budget"):
        read_image(path)


def test_the_budget_bounds_items_in_flight_and_stop_wakes_waiters() -> None:
    budget = memory.MemoryBudget(100)
    inside = 0
    most = 0
    lock = threading.Lock()
    stop = threading.Event()
    outcomes: list[str] = []

    def checkpoint() -> None:
        if stop.is_set():
            raise RunStopped()

    def item(hold: float) -> None:
        nonlocal inside, most
        try:
            with memory.item_scope(budget, checkpoint):
                memory.reserve(30, "img")  # 60 of 100: one item at a time
                with lock:
                    inside += 1
                    most = max(most, inside)
                time.sleep(hold)
                with lock:
                    inside -= 1
            outcomes.append("done")
        except RunStopped:
            outcomes.append("stopped")

    threads = [threading.Thread(target=item, args=(0.02,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert outcomes == ["done"] * 4 and most == 1 and budget.peak == 60 and budget.used == 0

    outcomes.clear()
    blocker = threading.Thread(target=item, args=(0.5,))
    blocker.start()
    deadline = time.monotonic() + 5
    while budget.used < 60 and time.monotonic() < deadline:
        time.sleep(0.001)
    waiter = threading.Thread(target=item, args=(0.0,))
    waiter.start()
    stop.set()
    waiter.join(2)
    assert not waiter.is_alive()  # a stop reaches an item waiting for memory
    blocker.join(5)
    assert sorted(outcomes) == ["done", "stopped"] and budget.used == 0


@pytest.mark.parametrize("shape", [(1500, 1400, 3), (1499, 1501), (1600, 1300, 4)])
@pytest.mark.parametrize("flt", ["bilinear", "bicubic", "lanczos"])
def test_striped_downscale_matches_whole_resize(monkeypatch: pytest.MonkeyPatch,
                                                shape: tuple[int, ...], flt: str) -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    if len(shape) == 3 and shape[2] == 4:
        a[..., 3] = 255  # opaque: premultiplied rounding aside, results must agree
    monkeypatch.setattr(geometry, "STRIPE_PIXELS", 1 << 18)
    for size in [(512, 500), (101, 1200), (1400, 7)]:
        whole = from_pil(to_pil(a).resize(size, geometry._FILTERS[flt]))
        striped = geometry.resize_to(a, size, flt)
        assert striped.shape == whole.shape
        diff = np.abs(whole.astype(int) - striped.astype(int))
        assert diff.max() <= 1  # rounding of the filter weights only


def test_a_runner_budget_bounds_the_images_its_items_hold(tmp_path: Path) -> None:
    """Runner(max_memory=...): four workers on four 64x64 images, a budget for two at a time;
    and an image larger than the whole budget fails its item naming both figures."""
    memory_mod = memory
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        PILImage.fromarray(np.full((64, 64, 3), i, np.uint8)).save(folder / f"i{i}.png")
    held: list[int] = []
    lock = threading.Lock()

    @cl.node("test_memory.hold")
    def hold(image: cl.Image, ctx: cl.Context) -> int:
        item = memory_mod._current.get()
        assert item is not None  # the runner installed the item's scope
        with lock:
            held.append(item.budget.used)
        ctx.checkpoint()
        return int(image.size)

    def chain() -> cl.Chain:
        c = cl.Chain()
        load = c.add("image.load_folder", folder=str(folder))
        c.add("test_memory.hold", image=load["image"])
        return c

    one = memory_mod.DECODE_FACTOR * 64 * 64 * 3
    run = cl.Runner(chain(), workers=4, max_memory=2 * one)
    assert run.start().accepted
    final = run.wait(30)
    assert final.state == "completed" and final.done == 4
    assert held and max(held) <= 2 * one  # never more than two decoded at once
    small = cl.Runner(chain(), on_error="skip", max_memory=one // 2)
    assert small.start().accepted
    final = small.wait(30)
    assert final.failed == 4
    assert "more than the whole memory budget" in final.failures[0].message
