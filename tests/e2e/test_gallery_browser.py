"""The panel's gallery and timing bar in a real browser (JupyterLab + Chromium, real kernel).

An image chain (the bundled sample images, plus one with HTML in its file name: load -> resize ->
a slow checkpointed invert -> save) runs with the panel displayed; the test reads the gallery
(before -> after images, captions) and the per-node timing bars from the DOM, by role and name
where the page has them, and compares them with the kernel's truth (``helpers.STATUS_DUMP``).

With ``CHAINLIB_UPDATE_DOCS=1`` the mid-run screenshot is saved as ``docs/panel.png``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from chainlib import samples
from chainlib.nodes.image.io import list_images

from .helpers import NotebookSession, wait_until
from .test_panel_browser import agreed

pytestmark = pytest.mark.browser

DOCS_PANEL = Path(__file__).resolve().parents[2] / "docs" / "panel.png"
DOCS_MAX_BYTES = 300 * 1024
# no "/" in a file name; sorted last (natural order), so it is the newest item at the end
HOSTILE = "zz <b>x<b> <img src=x onerror=alert(7)>.png"
SAMPLES = ("clouds.jpg", "color_bars.png", "gradient.png", "more/mandelbrot.png", "palette.png",
           "plasma.jpg", "radial.png", "shapes.png", "more/terrain.jpg", "text.png")
SLOW_S = 0.8  # seconds per item in the slow node: the run lasts several seconds
GALLERY_MAX = 4

IMAGE_CHAIN = '''
import numpy as np


@cl.node("e2e.slow_invert", output="image")
def e2e_slow_invert(ctx: cl.Context, image: cl.Image, seconds: float = 0.5) -> cl.Image:
    steps = 10
    for i in range(steps):  # checkpointed, so Pause and Stop stay prompt
        ctx.checkpoint()
        time.sleep(seconds / steps)
        ctx.progress((i + 1) / steps)
    return 255 - np.asarray(image)


chain = cl.Chain("photo batch")
src = chain.add("image.load_folder", id="load_folder", folder={inputs!r})
small = chain.add("image.resize", id="resize", image=src["image"], width=256, height=256,
                  mode="fit")
inverted = chain.add("e2e.slow_invert", id="invert", image=small, seconds={seconds!r})
chain.add("image.save", id="save", image=inverted, folder={out!r}, name=src["name"],
          format="png", overwrite=True)
run = cl.Runner(chain, workers=1)
'''

# The gallery's tiles and the node table's timing bars, as the page shows them (one round trip).
FACTS_JS = """(el) => {
  const img = (e) => e ? {src: e.getAttribute("src") || "", alt: e.getAttribute("alt"),
                           width: e.complete ? e.naturalWidth : 0} : null;
  const gallery = el.querySelector('[data-testid="gallery"]');
  const tiles = Array.from(el.querySelectorAll('[data-testid="gallery-item"]')).map((fig) => ({
    label: fig.querySelector('[data-testid="gallery-label"]').textContent,
    before: img(fig.querySelector('[data-testid="gallery-before"]')),
    after: img(fig.querySelector('[data-testid="gallery-after"]')),
  }));
  const bars = Array.from(el.querySelectorAll("tr[data-node]")).map((tr) => {
    const bar = tr.querySelector('[data-testid="timebar"]');
    return {
      node: tr.getAttribute("data-node"), state: tr.children[1].textContent,
      width: tr.querySelector(".chainlib-timebar-fill").getBoundingClientRect().width,
      track: bar.getBoundingClientRect().width, role: bar.getAttribute("role"),
      label: bar.getAttribute("aria-label"), value: bar.getAttribute("aria-valuenow"),
    };
  });
  const box = (e) => { const r = e.getBoundingClientRect();
                       return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const geometry = {
    panel: box(el),
    scroll: gallery ? {scrollWidth: gallery.scrollWidth, clientWidth: gallery.clientWidth} : null,
    tiles: Array.from(el.querySelectorAll('[data-testid="gallery-item"]')).map(box),
    panelScroll: {scrollWidth: el.scrollWidth, clientWidth: el.clientWidth},
    // the gallery's images and the current item's thumbnail beside the node table
    images: Array.from(el.querySelectorAll(".chainlib-gallery-img, .chainlib-thumb-img"))
        .filter((e) => e.getClientRects().length > 0).map((e) => ({
      alt: e.getAttribute("alt"), thumb: e.classList.contains("chainlib-thumb-img"), box: box(e),
      loaded: e.complete && e.naturalWidth > 0, naturalWidth: e.naturalWidth,
      naturalHeight: e.naturalHeight, border: parseFloat(getComputedStyle(e).borderLeftWidth),
    })),
  };
  return {shown: !!gallery && !gallery.hidden, tiles, bars, geometry,
          state: el.querySelector('[data-testid="state"]').textContent,
          done: el.querySelector('[data-testid="done"]').textContent};
}"""


def facts(nb: NotebookSession) -> dict[str, Any]:
    return nb.panels().first.evaluate(FACTS_JS)  # type: ignore[no-any-return]


def loaded(tile: dict[str, Any]) -> bool:
    """Both images of a tile are there: a blob: URL that decoded to a real image."""
    return all(im is not None and im["src"].startswith("blob:") and im["width"] > 0
               for im in (tile["before"], tile["after"]))


class Watcher:
    """Every gallery seen while waiting: at most GALLERY_MAX tiles, labels of real inputs,
    newest first (one worker: items finish in input order)."""

    def __init__(self, nb: NotebookSession, names: list[str]) -> None:
        self.nb, self.names = nb, names
        self.seen: list[str] = []

    def look(self) -> dict[str, Any]:
        f = facts(self.nb)
        labels = [t["label"] for t in f["tiles"]]
        assert len(labels) <= GALLERY_MAX, f"more than {GALLERY_MAX} gallery entries: {labels}"
        assert set(labels) <= set(self.names), f"captions that are no input's name: {labels}"
        order = [self.names.index(label) for label in labels]
        assert order == sorted(order, reverse=True), f"not newest first: {labels}"
        self.seen += [label for label in labels if label not in self.seen]
        return f

    def wait(self, predicate: Any, timeout: float, what: str) -> dict[str, Any]:
        return wait_until(lambda: (lambda f: f if predicate(f) else None)(self.look()),  # type: ignore[no-any-return]
                          timeout, what)


def check_timing_bars(f: dict[str, Any], truth: dict[str, Any]) -> None:
    """One bar per node, a meter named after it; the slow node's bar is the widest, as the
    kernel's per-node totals say."""
    bars = {b["node"]: b for b in f["bars"]}
    assert list(bars) == list(truth["nodes"]), (list(bars), list(truth["nodes"]))
    for node, b in bars.items():
        assert b["role"] == "meter", b
        assert re.fullmatch(rf"{re.escape(node)}: \d+% of the time spent in nodes",
                            b["label"] or ""), b
        assert 0 <= b["width"] <= b["track"] + 0.5, b
    widest = max(bars, key=lambda n: bars[n]["width"])
    assert widest == "invert", f"the slow node's bar is not the widest: {f['bars']}"
    assert widest == max(truth["nodes"], key=lambda n: truth["nodes"][n]["total_s"]), truth
    # the width is the share the bar says it is (of the bar's track)
    for b in bars.values():
        assert abs(b["width"] / b["track"] * 100 - int(b["value"])) <= 1.5, b
    assert int(bars["invert"]["value"]) >= 50, f"the slow node takes most of the time: {bars}"


def all_loaded(f: dict[str, Any]) -> bool:
    """Every tile, and every image the geometry has (the thumbnail too), is decoded."""
    return all(map(loaded, f["tiles"])) and all(im["loaded"] for im in f["geometry"]["images"])


def check_gallery_fits(f: dict[str, Any], rows: int, whole_panel: bool) -> None:
    """Every gallery image lies inside the panel, the gallery does not overflow sideways, the
    images keep their aspect ratio and the tiles fill ``rows`` rows. With ``whole_panel`` (the
    panel's usual width) the same holds for the thumbnail, and the panel does not overflow."""
    g = f["geometry"]
    panel = g["panel"]
    assert g["scroll"]["scrollWidth"] <= g["scroll"]["clientWidth"], g["scroll"]
    if whole_panel:
        assert g["panelScroll"]["scrollWidth"] <= g["panelScroll"]["clientWidth"], g["panelScroll"]
    images = [im for im in g["images"] if whole_panel or not im["thumb"]]
    assert len([im for im in images if not im["thumb"]]) == 2 * GALLERY_MAX, images
    for im in images:
        b = im["box"]
        assert (panel["left"] <= b["left"] and b["right"] <= panel["right"]
                and panel["top"] <= b["top"] and b["bottom"] <= panel["bottom"]), (
            f"{im['alt']!r} at {b} is not inside the panel {panel}")
        # the content box (inside the border) has the picture's shape, to within a pixel
        w, h = b["right"] - b["left"] - 2 * im["border"], b["bottom"] - b["top"] - 2 * im["border"]
        assert w > 20 and h > 20, f"{im['alt']!r} shrank to {w:.1f} x {h:.1f}"
        assert abs(w - h * im["naturalWidth"] / im["naturalHeight"]) <= 1.5, (
            f"{im['alt']!r} drawn {w:.1f} x {h:.1f}, "
            f"natural {im['naturalWidth']} x {im['naturalHeight']}")
    tops = sorted({round(t["top"]) for t in g["tiles"]})
    assert len(tops) == rows, f"tiles in {len(tops)} rows (tops {tops}), expected {rows}"


def test_gallery_and_timing_bar(notebook: Any, page: Any, tmp_path: Path) -> None:
    bundled = samples.folder(tmp_path / "samples")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in SAMPLES:  # pictures that read well before and after, for the screenshot
        shutil.copyfile(bundled / name, inputs / Path(name).name)
    shutil.copyfile(bundled / "gradient.png", inputs / HOSTILE)
    names = list_images(str(inputs))  # what load_folder will take, in its order
    assert names[-1] == HOSTILE and len(names) > GALLERY_MAX + 4, names
    chain = IMAGE_CHAIN.format(inputs=str(inputs), out=str(tmp_path / "out"), seconds=SLOW_S)
    nb = notebook("gallery", chain=chain)
    panel = nb.panels().first
    agreed(nb, "idle", 15)
    gallery = panel.get_by_role("region", name="newest outputs")
    assert not gallery.is_visible()  # nothing finished yet: no empty gallery

    nb.press("Play")
    w = Watcher(nb, names)
    first = w.wait(lambda f: f["shown"] and f["tiles"] and all(map(loaded, f["tiles"])), 20,
                   "the gallery's first before -> after images")
    assert gallery.is_visible()
    first_labels = [t["label"] for t in first["tiles"]]
    for t in first["tiles"]:
        assert t["before"]["alt"] == f"{t['label']} (input)"
        assert t["after"]["alt"] == f"{t['label']} (output)"
    # it follows the run: a later item's caption appears while the run goes on
    last_first = max(names.index(label) for label in first_labels)
    w.wait(lambda f: any(names.index(t["label"]) > last_first for t in f["tiles"]), 10,
           f"an item after {names[last_first]!r} in the gallery")

    # mid-run, the gallery full: what the screenshot shows
    def mid_run(f: dict[str, Any]) -> bool:
        return (len(f["tiles"]) == GALLERY_MAX and all_loaded(f)
                and f["state"] == "running" and int(f["done"]) <= len(names) - 3)

    f = w.wait(mid_run, 15, f"{GALLERY_MAX} loaded gallery entries mid-run")
    check_gallery_fits(f, rows=1, whole_panel=True)  # the usual width: four in one row
    shot = nb.screenshot("gallery")
    truth = nb.truth()
    assert truth["state"] == "running" and truth["done"] < len(names), truth
    check_timing_bars(f, truth)
    # the iterator has items to come: it is running, never "done" mid-run
    states = {b["node"]: b["state"] for b in f["bars"]}
    assert states["load_folder"] == "running", states
    slow_bar = panel.get_by_role("meter", name=re.compile(r"^invert: \d+% of the time"))
    assert slow_bar.count() == 1 and slow_bar.is_visible()
    if os.environ.get("CHAINLIB_UPDATE_DOCS") == "1":
        save_docs_shot(shot)

    agreed(nb, "completed", 30)
    final = w.wait(lambda f: [t["label"] for t in f["tiles"]] == names[::-1][:GALLERY_MAX]
                   and all_loaded(f), 10, "the last items in the gallery")
    assert len(w.seen) > GALLERY_MAX, f"the gallery never moved on: {w.seen}"
    check_gallery_fits(final, rows=1, whole_panel=True)
    # a narrow panel (a side-by-side view, a phone, a side bar): the tiles wrap to fewer columns
    # and, narrower than a column's usual minimum, shrink to one column (the node table is wider
    # than that: only the gallery is checked)
    for width, rows in ((400, 2), (160, GALLERY_MAX)):
        panel.evaluate(f"(el) => {{ el.style.width = '{width}px'; }}")
        narrow = w.wait(lambda f, width=width: f["geometry"]["panel"]["right"]
                        - f["geometry"]["panel"]["left"] == width and all_loaded(f),
                        5, f"the panel {width} px wide")
        check_gallery_fits(narrow, rows=rows, whole_panel=False)
    panel.evaluate("(el) => { el.style.width = ''; }")
    check_timing_bars(final, nb.truth())
    # the hostile file name is shown as it is, as text: no element made of it
    newest = gallery.get_by_role("figure").first
    assert newest.locator("figcaption").text_content() == HOSTILE
    assert gallery.get_by_role("figure", name=HOSTILE, exact=True).count() == 1
    assert panel.locator("b").count() == 0 and page.locator("img[src='x']").count() == 0
    assert final["tiles"][0]["after"]["alt"] == f"{HOSTILE} (output)"


def save_docs_shot(shot: Path) -> None:
    """Copy the screenshot into docs/, as a palette PNG if that is needed to stay small."""
    from PIL import Image

    data = shot.read_bytes()
    if len(data) > DOCS_MAX_BYTES:
        buf = io.BytesIO()
        Image.open(shot).convert("RGB").quantize(256).save(buf, format="PNG", optimize=True)
        data = buf.getvalue()
    assert len(data) <= DOCS_MAX_BYTES, f"docs/panel.png would be {len(data)} bytes"
    DOCS_PANEL.write_bytes(data)
