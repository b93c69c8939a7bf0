"""Driving the control server's web page in Chromium (tests and benchmark B10)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import chainlib as cl

from .helpers import VIEW_JS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]

# Records every state the badge ever shows (a MutationObserver sees each paint).
RECORDER_JS = """() => {
  const badge = document.querySelector('[data-testid="state"]');
  window.__shown = [badge.textContent];
  new MutationObserver(() => {
    const s = badge.textContent;
    if (window.__shown[window.__shown.length - 1] !== s) window.__shown.push(s);
  }).observe(badge, {childList: true, characterData: true, subtree: true});
}"""


@cl.node("serve_e2e.work")
def serve_e2e_work(ctx: cl.Context, x: int, ms: float = 20.0) -> int:
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        ctx.checkpoint()
        time.sleep(0.002)
    return x


def long_chain(items: int = 100_000, ms: float = 20.0) -> cl.Chain:
    chain = cl.Chain("served")
    chain.add("serve_e2e.work", x=chain.add("core.range", n=items), ms=ms)
    return chain


@cl.node("serve_e2e.slow_invert", output="image")
def serve_e2e_slow_invert(ctx: cl.Context, image: cl.Image, seconds: float = 0.5) -> cl.Image:
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # checkpointed, so Pause and Stop stay prompt
        ctx.checkpoint()
        time.sleep(0.01)
    return 255 - np.asarray(image)


def image_chain(folder: Path, seconds: float) -> cl.Chain:
    """The pictures in ``folder``, each inverted slowly: a gallery that changes for a while."""
    chain = cl.Chain("served photos")
    src = chain.add("image.load_folder", id="load_folder", folder=str(folder))
    chain.add("serve_e2e.slow_invert", id="invert", image=src["image"], seconds=seconds)
    return chain


# The gallery's tiles and the thumbnail as the page shows them (one round trip). An image counts
# as shown when it decoded to a real picture (naturalWidth > 0).
GALLERY_JS = """(el) => {
  const img = (e) => e ? {src: e.getAttribute("src") || "", alt: e.getAttribute("alt"),
                           width: e.complete ? e.naturalWidth : 0} : null;
  const gallery = el.querySelector('[data-testid="gallery"]');
  const thumb = el.querySelector('[data-testid="thumbnail"]');
  return {
    shown: !!gallery && !gallery.hidden,
    tiles: Array.from(el.querySelectorAll('[data-testid="gallery-item"]')).map((fig) => ({
      label: fig.querySelector('[data-testid="gallery-label"]').textContent,
      before: img(fig.querySelector('[data-testid="gallery-before"]')),
      after: img(fig.querySelector('[data-testid="gallery-after"]')),
    })),
    thumbnail: thumb && !thumb.closest("figure").hidden ? img(thumb) : null,
    state: el.querySelector('[data-testid="state"]').textContent,
  };
}"""


def gallery(page: Any) -> dict[str, Any]:
    return page.locator(".chainlib-panel").first.evaluate(GALLERY_JS)  # type: ignore[no-any-return]


def loaded(image: dict[str, Any] | None) -> bool:
    """An image shown through a blob: URL that decoded to a real picture."""
    return image is not None and image["src"].startswith("blob:") and image["width"] > 0


def goto(page: Any, url: str) -> None:
    """Open the page from the printed link and wait until it shows a backend state."""
    page.goto(url)
    page.wait_for_function(
        "() => { const b = document.querySelector('[data-testid=\"state\"]');"
        " return b && b.textContent && b.textContent !== 'disconnected'; }", timeout=20_000)
    page.evaluate(RECORDER_JS)


def view(page: Any) -> dict[str, Any]:
    return page.locator(".chainlib-panel").first.evaluate(VIEW_JS)  # type: ignore[no-any-return]


def shown(page: Any) -> list[str]:
    """Every state the badge showed since :func:`goto` (consecutive repeats collapsed)."""
    return page.evaluate("() => window.__shown.slice()")  # type: ignore[no-any-return]


def wait_state(page: Any, state: str, timeout: float) -> dict[str, Any]:
    """Wait (polling the DOM in the page) until the badge shows ``state``; return the view."""
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=\"state\"]').textContent === {state!r}",
        timeout=timeout * 1000, polling=10)
    return view(page)


def click(page: Any, button: str) -> None:
    page.locator(f".chainlib-panel [data-testid={button}]").first.click()


@contextlib.contextmanager
def open_page(url: str) -> Iterator[Any]:
    """A Chromium page on ``url`` (for scripts; the tests use the ``browser`` fixture)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            goto(page, url)
            yield page
        finally:
            browser.close()
