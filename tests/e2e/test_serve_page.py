"""The control server's web page in Chromium: the notebook panel's front end over HTTP."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chainlib as cl
from chainlib import samples
from chainlib.nodes.image.io import list_images
from chainlib.serve import ServeFaults, serve

from .helpers import assert_buttons, wait_until
from .serve_page import (
    click,
    gallery,
    goto,
    image_chain,
    loaded,
    long_chain,
    shown,
    view,
    wait_state,
)

# no "/" in a file name; sorted last, so it is the newest item at the end
HOSTILE = "zz <b>x<b> <img src=x onerror=alert(7)>.png"
GALLERY_MAX = 4


@pytest.fixture
def run() -> Iterator[cl.Runner]:
    r = cl.Runner(long_chain(), workers=2)
    yield r
    r.stop()
    r.wait(30)


def settled(page: Any, run: cl.Runner, state: str, timeout: float = 10) -> dict[str, Any]:
    """Wait until the run and the page both show ``state``; the buttons must match it."""
    wait_until(lambda: run.status().state == state, timeout, f"the run to be {state}")
    v = wait_state(page, state, timeout)
    assert_buttons(v)
    return v


def test_play_pause_resume_stop_from_the_page(page: Any, run: cl.Runner) -> None:
    with serve(run, announce=None) as srv:
        goto(page, srv.url)
        assert "token" not in page.url  # the link's token went into an HttpOnly cookie
        v = settled(page, run, "idle")
        assert v["title"] == "served"
        click(page, "play")
        settled(page, run, "running")
        click(page, "pause")
        settled(page, run, "paused")
        click(page, "pause")  # the toggle now reads Resume
        settled(page, run, "running")
        click(page, "stop")
        v = settled(page, run, "stopped")
        truth = run.status()
        assert v["seq"] == str(truth.seq)
        assert v["done"] == str(truth.done)
        assert "disconnected" not in shown(page)
        assert page.evaluate("() => chainlibModel.stats.status") >= 1


def test_a_ten_second_cut_shows_disconnected_never_idle_and_the_truth_right_after(
        page: Any, run: cl.Runner) -> None:
    with serve(run, announce=None, fault_injection=ServeFaults()) as srv:
        goto(page, srv.url)
        click(page, "play")
        settled(page, run, "running")
        srv.cut(10.0)
        cut_at = time.monotonic()
        v = wait_state(page, "disconnected", 6)
        assert v["stop"]["enabled"] and not v["play"]["enabled"]  # stop stays available
        run.pause()  # behind the page's back, while it cannot hear
        wait_until(lambda: run.status().state == "paused", 10, "paused")
        left = cut_at + 10.0 - time.monotonic()
        assert left > 1, "the cut ended too early to test anything"
        time.sleep(left - 0.5)
        assert view(page)["state"] == "disconnected"
        wait_until(lambda: not srv.hub.cutting, 2, "the cut to end")
        back = time.monotonic()
        v = wait_state(page, "paused", 1.0)  # the truth within 1 s of the link's return
        assert time.monotonic() - back <= 1.0
        assert v["seq"] == str(run.status().seq)
        states = shown(page)
        after = [x for x in states[states.index("running"):] if x != "reconnecting"]
        assert after == ["running", "disconnected", "paused"], states  # never idle


def test_half_the_events_dropped_converges_within_the_pull_interval(
        page: Any, run: cl.Runner) -> None:
    with serve(run, announce=None, fault_injection=ServeFaults(drop_events=0.5, seed=3)) as srv:
        goto(page, srv.url)
        run.start()
        wait_state(page, "running", 6)
        for command, state in [("pause", "paused"), ("resume", "running"), ("pause", "paused"),
                               ("resume", "running"), ("stop", "stopped")]:
            getattr(run, command)()
            wait_until(lambda s=state: run.status().state == s, 10, state)
            t0 = time.monotonic()
            v = wait_state(page, state, 5.0 + 0.5)  # pull interval (+ a pull's round trip)
            assert_buttons(v)
            print(f"{command}: page shows {state} after {time.monotonic() - t0:.2f} s")
        assert srv.hub.events_dropped > 0
        truth = run.status()
        v = wait_state(page, "stopped", 1)
        assert v["seq"] == str(truth.seq) and v["done"] == str(truth.done)


def test_two_tabs_agree_at_every_step(browser: Any, run: cl.Runner) -> None:
    context = browser.new_context()
    try:
        with serve(run, announce=None) as srv:
            tabs = [context.new_page(), context.new_page()]
            for tab in tabs:
                goto(tab, srv.url)
            steps = [(0, "play", "running"), (1, "pause", "paused"), (0, "pause", "running"),
                     (1, "stop", "stopped"), (0, "play", "running"), (1, "stop", "stopped")]
            for who, button, state in steps:
                click(tabs[who], button)
                views = [settled(tab, run, state) for tab in tabs]
                assert views[0]["state"] == views[1]["state"] == run.status().state
            truth = run.status()
            for tab in tabs:
                wait_until(lambda t=tab: view(t)["seq"] == str(truth.seq), 5, "the final seq")
                assert "idle" not in shown(tab)[1:]
    finally:
        context.close()


def test_the_page_is_refused_without_the_token(page: Any, run: cl.Runner) -> None:
    with serve(run, announce=None) as srv:
        response = page.goto(srv.base_url + "/")
        assert response is not None and response.status == 401
        assert "missing token" in page.content()
        response = page.goto(srv.base_url + "/?token=wrong")
        assert response is not None and response.status == 403


def test_the_printed_link_works_when_clicked_on_another_site(page: Any, run: cl.Runner) -> None:
    """A notebook on http://localhost:8888 prints http://127.0.0.1:PORT/?token=...: another site.
    The cookie set by the link's redirect must come along to the page it redirects to (a
    SameSite=Strict cookie does not, after a navigation started cross-site: the page was a 401)."""
    with serve(run, announce=None) as srv:
        other_site = f"http://localhost:{srv.port}/elsewhere"  # "localhost" is not "127.0.0.1"
        page.goto(other_site)
        page.evaluate("""(url) => { const a = document.createElement("a"); a.href = url;
                                    a.textContent = "open"; document.body.append(a); }""",
                      srv.url)
        with page.expect_navigation():
            page.click("text=open")
        assert page.url == srv.base_url + "/"
        settled(page, run, "idle")
        page.reload()  # and it keeps working
        settled(page, run, "idle")
        click(page, "play")
        settled(page, run, "running")


def test_when_the_server_closes_the_page_says_so_with_the_final_status(
        page: Any, run: cl.Runner) -> None:
    """`chainlib run --serve` closes its server when the run ends: the page must say that the
    server closed, with the final figures, not `disconnected` with a Stop to queue (it did,
    about 8 s later, after an unanswered pull)."""
    srv = serve(run, announce=None)
    try:
        goto(page, srv.url)
        click(page, "play")
        settled(page, run, "running")
        click(page, "stop")
        settled(page, run, "stopped")
    finally:
        srv.close(reason="its chainlib run command has ended")
    final = run.status()
    v = wait_state(page, "ended", 5)
    assert v["notice"] == ("The control server closed (its chainlib run command has ended): "
                           f"the run is stopped, {final.done}/{final.total} done.")
    assert v["done"] == str(final.done) and v["seq"] == str(final.seq)
    assert "the server is gone" in v["connection"]
    assert_buttons(v)  # nothing enabled: nobody can hear a click
    time.sleep(1.5 * 5)  # a pull interval and more: nothing turns it into a lost connection
    assert shown(page)[-1] == "ended" and "disconnected" not in shown(page)
    assert page.evaluate("() => chainlibModel.stats.streamsOpened") == 1


def test_the_page_shows_the_gallery_of_an_image_run(page: Any, tmp_path: Path) -> None:
    bundled = samples.folder(tmp_path / "samples")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("clouds.jpg", "color_bars.png", "gradient.png", "palette.png", "plasma.jpg",
                 "radial.png", "shapes.png", "text.png"):
        shutil.copyfile(bundled / name, inputs / name)
    shutil.copyfile(bundled / "gradient.png", inputs / HOSTILE)
    names = list_images(str(inputs))  # what load_folder takes, in its order
    assert names[-1] == HOSTILE and len(names) > GALLERY_MAX + 2, names
    run = cl.Runner(image_chain(inputs, seconds=0.5), workers=1)
    try:
        with serve(run, announce=None) as srv:
            goto(page, srv.url)
            wait_state(page, "idle", 10)
            g = gallery(page)
            assert not g["shown"] and g["thumbnail"] is None  # nothing finished: nothing shown
            t0 = time.monotonic()
            click(page, "play")

            def look() -> dict[str, Any]:
                g = gallery(page)
                labels = [t["label"] for t in g["tiles"]]
                assert len(labels) <= GALLERY_MAX and set(labels) <= set(names), labels
                g["loaded"] = bool(g["tiles"]) and all(
                    loaded(t["before"]) and loaded(t["after"]) for t in g["tiles"])
                g["labels"] = labels
                return g

            def mid_run() -> dict[str, Any] | None:
                g = look()
                return g if (g["state"] == "running" and g["shown"] and g["loaded"]
                             and loaded(g["thumbnail"])) else None

            g = wait_until(mid_run, 20, "before -> after images in the gallery mid-run")
            assert run.status().state == "running"
            newest = g["tiles"][0]
            assert newest["after"]["alt"] == f"{newest['label']} (output)"
            assert newest["before"]["alt"] == f"{newest['label']} (input)"

            wait_until(lambda: run.status().state == "completed", 30, "the run to complete")
            def last_items() -> dict[str, Any] | None:
                g = look()
                return g if g["labels"] == names[::-1][:GALLERY_MAX] and g["loaded"] else None

            final = wait_until(last_items, 5, "the last items in the gallery")
            elapsed = time.monotonic() - t0
            # the hostile file name is shown as it is, as text: no element made of it
            assert final["tiles"][0]["label"] == HOSTILE
            panel = page.locator(".chainlib-panel").first
            assert panel.locator("b").count() == 0 and page.locator("img[src='x']").count() == 0
            assert panel.locator('[data-testid="thumbnail-label"]').text_content() == HOSTILE
            asks = page.evaluate("() => chainlibModel.stats.galleryAsks")
            assert 2 <= asks <= elapsed + 2, (asks, elapsed)  # on load, then at most 1 a second
            assert srv.gallery is not None and srv.gallery.encodes <= asks
    finally:
        run.stop()
        run.wait(30)
