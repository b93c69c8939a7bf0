"""The panel's gallery: the newest finished items as before -> after thumbnails, bounded in size,
at most one update a second (kernel side; ``widget/tests/views.test.js`` covers the view)."""

from __future__ import annotations

import io
import itertools
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

import chainlib as cl
from chainlib.panel import ControlPanel
from chainlib.run.preview import GALLERY_SIZE, PREVIEW_PX, Preview, PreviewBuffer
from chainlib.thumbnails import GALLERY_MAX_BYTES, MAX_LABEL, gallery_update
from tests.conftest import wait_until
from tests.panel_wire import Wire, make_panel


@cl.node("tg.picture")
def picture(x: int) -> cl.Image:
    return np.full((300, 500, 3), x % 256, dtype=np.uint8)


@cl.node("tg.slow_invert", output="image")
def slow_invert(ctx: cl.Context, image: cl.Image, seconds: float = 0.15) -> cl.Image:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ctx.checkpoint()
        time.sleep(0.01)
    return 255 - np.asarray(image)


def gray(data: bytes) -> int:
    """The middle pixel of an encoded thumbnail, in gray."""
    img = PILImage.open(io.BytesIO(data)).convert("L")
    return int(np.asarray(img)[img.height // 2, img.width // 2])


def test_buffer_keeps_the_newest_items_as_small_before_after_pairs() -> None:
    it, out = ("load", "image"), ("invert", "image")
    buf = PreviewBuffer(keys=(out, it), before=(it,))
    big = np.zeros((1000, 2000, 3), np.uint8)
    for i in range(10):
        buf.offer(f"f{i}.png", {it: big + i, out: big + 100 + i, ("load", "name"): "x"})
    items = buf.recent()
    assert [p.label for p in items] == [f"f{i}.png" for i in range(10 - GALLERY_SIZE, 10)]
    assert [p.counter for p in items] == list(range(11 - GALLERY_SIZE, 11))
    for i, p in zip(range(10 - GALLERY_SIZE, 10), items, strict=True):
        assert p.before is not None and int(p.before[0, 0, 0]) == i
        assert int(p.after[0, 0, 0]) == 100 + i
        for img in (p.before, p.after):  # never a full-size image kept
            assert max(img.shape[:2]) <= 2 * PREVIEW_PX and img.base is None
    assert buf.latest() == (10, "f9.png", items[-1].after)
    # the iterator's image is the only one: it is the output, with no "before"
    only_it = PreviewBuffer(keys=(it,), before=(it,))
    only_it.offer("a", {it: big})
    assert only_it.recent()[0].before is None and only_it.recent()[0].after.shape[1] <= 320
    # no image at all (or not an array): nothing kept
    only_it.offer("b", {it: "not an image"})
    assert [p.label for p in only_it.recent()] == ["a"]


def test_gallery_update_is_bounded_newest_first_and_labelled() -> None:
    rng = np.random.default_rng(0)
    noise = [Preview(i, f"n{i}" * (150 if i == 7 else 1),
                     rng.integers(0, 256, (160, 160, 3), np.uint8),
                     rng.integers(0, 256, (160, 160, 3), np.uint8)) for i in range(8)]
    full = gallery_update(noise, budget=10**9)
    assert full is not None and len(full.tiles) == 8
    assert [t["label"] for t in full.tiles[1:]] == [f"n{i}" for i in range(6, -1, -1)]
    assert len(full.tiles[0]["label"]) == MAX_LABEL and full.tiles[0]["label"].endswith("…")
    assert full.thumbnail == full.tiles[0]["after"] and full.label == full.tiles[0]["label"]
    budget = full.size // 3
    part = gallery_update(noise, budget=budget)
    assert part is not None and 1 <= len(part.tiles) < 8 and part.size <= budget
    assert [t["label"] for t in part.tiles] == [t["label"] for t in full.tiles[:len(part.tiles)]]
    for t in part.tiles:
        for data in (t["after"], t["before"]):
            img = PILImage.open(io.BytesIO(data))
            assert img.format == "JPEG" and max(img.size) <= 160
    # an odd array is left out, an item without a "before" has None
    odd = [Preview(1, "ok", np.zeros((8, 8), np.uint8)), Preview(2, "odd", np.zeros((4, 4, 7)))]
    got = gallery_update(odd)
    assert got is not None and [(t["label"], t["before"]) for t in got.tiles] == [("ok", None)]
    assert gallery_update([Preview(1, "odd", np.zeros((4, 4, 7)))]) is None


def test_panel_sends_before_after_gallery_as_buffers_at_most_once_a_second(
    wire: Wire, panels: list[ControlPanel], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    n = 16
    for i in range(n):
        PILImage.fromarray(np.full((300, 400, 3), 10 * i, np.uint8)).save(folder / f"img{i:02}.png")
    chain = cl.Chain("gallery")
    load = chain.add("image.load_folder", folder=str(folder))
    chain.add("tg.slow_invert", image=load["image"])
    run = cl.Runner(chain, workers=1)
    p = make_panel(panels, run)
    t0 = time.monotonic()
    run.start()
    final = run.wait(60)
    assert final.state == "completed", final.failures
    wait_until(lambda: [t["label"] for t in p.gallery][:1] == [f"img{n - 1:02}.png"], 2.5,
               "final gallery")
    tiles = p.gallery
    assert [t["label"] for t in tiles] == [f"img{i:02}.png" for i in range(n - 1, n - 5, -1)]
    for i, t in zip(range(n - 1, n - 5, -1), tiles, strict=True):
        assert abs(gray(t["before"]) - 10 * i) <= 3 and abs(gray(t["after"]) - (255 - 10 * i)) <= 3
    assert p.thumbnail == tiles[0]["after"] and p.thumbnail_label == tiles[0]["label"]
    sent = wire.updates("gallery", since=t0)
    assert len(sent) >= 2, "the gallery was not updated while the run went on"
    for u in sent:
        # the images travel as binary buffers, at their places in the list of tiles
        assert ["gallery", 0, "after"] in u.msg["buffer_paths"]
        assert ["gallery", 0, "before"] in u.msg["buffer_paths"]
        assert "after" not in u.msg["state"]["gallery"][0]
        assert sum(len(b) for b in u.buffers) <= GALLERY_MAX_BYTES
    gaps = [b.at - a.at for a, b in itertools.pairwise(sent)]
    assert min(gaps, default=1.0) >= 0.9, gaps  # at most one gallery update a second


def test_no_gallery_without_thumbnails(
    wire: Wire, panels: list[ControlPanel]
) -> None:
    chain = cl.Chain()
    chain.add("tg.picture", x=chain.add("core.range", n=3))
    run = cl.Runner(chain)
    p = make_panel(panels, run, thumbnail=False)
    run.start()
    run.wait(30)
    assert p.gallery == [] and not wire.updates("gallery")

