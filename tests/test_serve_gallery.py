"""``GET /gallery``: the served page's before -> after thumbnails, as the notebook panel's traits
(the page's side is in ``widget/tests/web.test.js`` and ``tests/e2e/test_serve_page.py``)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image as PILImage

import chainlib as cl
from chainlib.serve import ControlServer, serve
from chainlib.serve.gallery import MAX_GALLERY_BODY, parse_body
from chainlib.serve.security import cookie_name
from chainlib.thumbnails import GALLERY_MAX_BYTES, gallery_update
from tests.conftest import wait_until

HOSTILE = 'zz <b>x<b> <img src=x onerror=alert(7)> & "q".png'
ITEMS = 6


@cl.node("tsg.invert", output="image")
def tsg_invert(ctx: cl.Context, image: cl.Image) -> cl.Image:
    return 255 - np.asarray(image)


@cl.node("tsg.noise", output="image")
def tsg_noise(ctx: cl.Context, x: int) -> cl.Image:
    """Random RGBA pixels: each thumbnail is a ~100 KB PNG, so the byte budget binds."""
    return np.random.default_rng(x).integers(0, 256, (400, 400, 4), np.uint8)


def image_chain(folder: Path) -> cl.Chain:
    """``ITEMS`` gray pictures (the last one named ``HOSTILE``) -> inverted."""
    folder.mkdir()
    for i in range(ITEMS):
        name = HOSTILE if i == ITEMS - 1 else f"img{i}.png"
        PILImage.fromarray(np.full((120, 200, 3), 20 * i, np.uint8)).save(folder / name,
                                                                           format="PNG")
    chain = cl.Chain("gallery")
    load = chain.add("image.load_folder", folder=str(folder))
    chain.add("tsg.invert", image=load["image"])
    return chain


def gray(b64: str) -> int:
    img = PILImage.open(io.BytesIO(base64.b64decode(b64))).convert("L")
    return int(np.asarray(img)[img.height // 2, img.width // 2])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[cl.Runner, ControlServer, httpx.Client]]:
    run = cl.Runner(image_chain(tmp_path / "in"), workers=1)
    srv = serve(run, announce=None)
    client = httpx.Client(base_url=srv.base_url, timeout=10,
                          headers={"authorization": f"Bearer {srv.token}"})
    yield run, srv, client
    client.close()
    srv.close()
    run.stop()
    run.wait(10)


def test_the_gallery_needs_the_token(
        served: tuple[cl.Runner, ControlServer, httpx.Client]) -> None:
    _, srv, _ = served
    with httpx.Client(base_url=srv.base_url, timeout=10) as anon:
        assert anon.get("/gallery").status_code == 401
        assert anon.get("/gallery", headers={"authorization": "Bearer nope"}).status_code == 403
        assert anon.get("/gallery?token=nope").status_code == 403
        # the page's cookie is enough to read it, as for /status
        r = anon.get("/gallery", headers={"cookie": f"{cookie_name(srv.port)}={srv.token}"})
        assert r.status_code == 200 and r.json()["counter"] == 0


def test_the_gallery_is_the_notebooks_encoding_once_per_counter_and_204_while_unchanged(
        served: tuple[cl.Runner, ControlServer, httpx.Client]) -> None:
    run, srv, client = served
    assert srv.gallery is not None
    assert client.get("/info").json()["gallery"] is True
    r = client.get("/gallery")  # nothing finished yet: an empty gallery, counter 0
    assert r.status_code == 200
    assert r.json() == {"counter": 0, "thumbnail": None, "thumbnail_label": "", "gallery": []}
    assert client.get("/gallery?since=0").status_code == 204
    assert srv.gallery.encodes == 0

    run.start()
    assert run.wait(30).state == "completed"
    r = client.get("/gallery?since=0")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == (
        "nosniff")
    body = r.json()
    assert body["counter"] == ITEMS
    labels = [t["label"] for t in body["gallery"]]
    assert labels == [HOSTILE, "img4.png", "img3.png", "img2.png"]  # newest first
    for i, t in zip(range(ITEMS - 1, ITEMS - 5, -1), body["gallery"], strict=True):
        assert abs(gray(t["before"]) - 20 * i) <= 3 and abs(gray(t["after"]) - (255 - 20 * i)) <= 3
    # exactly the notebook panel's traits, images in base64
    expected = gallery_update(run.gallery())
    assert expected is not None
    assert body["thumbnail"] == base64.b64encode(expected.thumbnail).decode()
    assert body["thumbnail_label"] == expected.label == HOSTILE
    assert [(base64.b64decode(t["after"]), base64.b64decode(t["before"]))
            for t in body["gallery"]] == [(t["after"], t["before"]) for t in expected.tiles]

    # unchanged since the counter: 204, no body; the encoding is cached, never redone
    r = client.get(f"/gallery?since={ITEMS}")
    assert (r.status_code, r.content) == (204, b"")
    for since in ("", "?since=3", "?since=0"):
        again = client.get(f"/gallery{since}")
        assert again.status_code == 200 and again.content == r_content(body)
    assert srv.gallery.encodes == 1


def test_a_body_parses_back_into_the_panels_traits_byte_for_byte(
        served: tuple[cl.Runner, ControlServer, httpx.Client]) -> None:
    run, _, client = served
    assert parse_body(client.get("/gallery").content) == (0, None)  # nothing showable yet
    run.start()
    assert run.wait(30).state == "completed"
    expected = gallery_update(run.gallery())
    assert parse_body(client.get("/gallery").content) == (ITEMS, expected)  # the label too


@pytest.mark.parametrize(("body", "problem"), [
    (b"<html>", "not JSON"),
    (b"[1]", "not a JSON object"),
    (b"[" * 100_000, "not JSON"),
    (b'{"counter":-1,"gallery":[],"thumbnail_label":""}', "counter"),
    (b'{"counter":true,"gallery":[],"thumbnail_label":""}', "counter"),
    (b'{"counter":1,"thumbnail_label":""}', "gallery list"),
    (b'{"counter":1,"gallery":[{"after":"AAAA"}],"thumbnail":"AAAA","thumbnail_label":""}',
     "tile 0 is not an object with a label"),
    (b'{"counter":1,"gallery":[{"label":"a","after":"%%%"}],"thumbnail":"AAAA",'
     b'"thumbnail_label":"a"}', "tile 0's after is not valid base64"),
    (b'{"counter":1,"gallery":[{"label":"a","after":"AAAA","before":7}],"thumbnail":"AAAA",'
     b'"thumbnail_label":"a"}', "tile 0's before is not a base64 string"),
    (b'{"counter":1,"gallery":[{"label":"a","after":"AAAA"}],"thumbnail":null,'
     b'"thumbnail_label":"a"}', "the thumbnail is not a base64 string"),
    (b" " * (MAX_GALLERY_BODY + 1), "over"),
])
def test_a_malformed_body_is_a_clear_error(body: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_body(body)


def r_content(body: dict[str, object]) -> bytes:
    """The served bytes of ``body`` (compact JSON, ASCII, markup characters escaped)."""
    text = json.dumps(body, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def test_a_hostile_file_name_comes_back_as_data_not_markup(
        served: tuple[cl.Runner, ControlServer, httpx.Client]) -> None:
    run, _, client = served
    run.start()
    assert run.wait(30).state == "completed"
    r = client.get("/gallery")
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-content-type-options"] == "nosniff"
    # not one byte of markup: the name's "<", ">" and "&" travel as JSON escapes
    for char in (b"<", b">", b"&"):
        assert char not in r.content
    body = r.json()
    assert body["gallery"][0]["label"] == body["thumbnail_label"] == HOSTILE  # the name, as text


def test_the_gallery_stays_within_its_byte_budget(tmp_path: Path) -> None:
    chain = cl.Chain("noise")
    chain.add("tsg.noise", x=chain.add("core.range", n=5))
    run = cl.Runner(chain, workers=1)
    with serve(run, announce=None) as srv, httpx.Client(
            base_url=srv.base_url, timeout=10, headers={"x-chainlib-token": srv.token}) as client:
        run.start()
        assert run.wait(30).state == "completed"
        r = client.get("/gallery")
        body = r.json()
        tiles = body["gallery"]
        images = [base64.b64decode(body["thumbnail"])] + [
            base64.b64decode(t["after"]) for t in tiles]
        assert all(PILImage.open(io.BytesIO(b)).format == "PNG" for b in images)  # alpha: PNG
        assert all(t["before"] is None for t in tiles)  # core.range gives no image
        # the budget left the older ones of the 4 kept items out; the newest stays
        kept = run.gallery()
        assert 1 <= len(tiles) < len(kept) == 4
        assert body["counter"] == kept[-1].counter == 5
        assert base64.b64decode(tiles[0]["after"]) == images[0]  # the thumbnail is the newest
        assert sum(map(len, images)) <= GALLERY_MAX_BYTES
        assert len(r.content) <= MAX_GALLERY_BODY
    run.wait(10)


def test_a_server_without_a_gallery_answers_404_and_keeps_no_images(tmp_path: Path) -> None:
    run = cl.Runner(image_chain(tmp_path / "in"), workers=1)
    with serve(run, announce=None, gallery=False) as srv, httpx.Client(
            base_url=srv.base_url, timeout=10, headers={"x-chainlib-token": srv.token}) as client:
        assert srv.gallery is None
        assert client.get("/info").json()["gallery"] is False
        run.start()
        assert run.wait(30).state == "completed"
        r = client.get("/gallery")
        assert r.status_code == 404 and "no gallery" in r.json()["error"]
        assert run.gallery() == ()  # serving did not make the run keep images


def test_a_bad_since_is_a_clear_400(served: tuple[cl.Runner, ControlServer, httpx.Client]
                                    ) -> None:
    _, _, client = served
    r = client.get("/gallery?since=abc")
    assert r.status_code == 400
    assert r.json()["error"] == "since must be an integer (a gallery counter), got 'abc'"


def test_the_counter_follows_a_running_run(
        served: tuple[cl.Runner, ControlServer, httpx.Client]) -> None:
    run, srv, client = served
    run.start()
    counters = [0]

    def moved() -> bool:
        r = client.get(f"/gallery?since={counters[-1]}")
        if r.status_code == 200:
            counters.append(r.json()["counter"])
        return counters[-1] == ITEMS

    wait_until(moved, what="the counter to reach the last item")
    assert counters == sorted(set(counters)), counters  # only grows
    assert srv.gallery is not None and srv.gallery.encodes == len(counters) - 1
