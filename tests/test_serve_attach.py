"""A notebook panel attached to a CLI run (``ControlPanel.attach(URL)``): it survives a kernel
restart, and shows the served run's thumbnail and gallery as a local panel does.

The restart is tested at kernel-protocol level: a real ipykernel (``tests/kernel_harness.py``, the
test plays the browser) and a real ``chainlib run --serve`` process. The run lives in the CLI
process; the kernel only watches and controls it, so restarting the kernel leaves the run going,
and the new kernel attaches again. The gallery is tested on the panel's wire (``wire`` fixture):
the panel lives in the test process, the run in a CLI process (or, for ``gallery=False``, behind
an in-process server).
"""

from __future__ import annotations

import base64
import io
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image as PILImage

import chainlib as cl
from chainlib.panel import ControlPanel
from chainlib.run.preview import GALLERY_SIZE
from chainlib.serve import RemoteRun, serve
from tests.conftest import wait_until
from tests.kernel_harness import SETUP_CELL, Comm, KernelHarness
from tests.panel_wire import Wire, last_published
from tests.serve_nodes import picture_chain
from tests.served_cli import ServedRun


def attach(h: KernelHarness, url: str) -> Comm:
    h.execute(f"panel = ControlPanel.attach({url!r})\ndisplay(panel)")
    return h.panel_comm("panel")


def command(h: KernelHarness, comm: Comm, name: str, msg_id: int) -> dict[str, Any]:
    h.send_custom(comm, {"type": "command", "command": name, "id": msg_id})
    return h.reply_to(comm, msg_id, 10)


def panel_truth(h: KernelHarness, comm: Comm, msg_id: int) -> dict[str, Any]:
    h.send_custom(comm, {"type": "status_request", "id": msg_id})
    status: dict[str, Any] = h.reply_to(comm, msg_id, 10)["status"]
    return status


@pytest.mark.kernel
def test_an_attached_panel_survives_a_kernel_restart(served: ServedRun) -> None:
    served.wait_state("running")
    h = KernelHarness()
    try:
        h.start()
        comm = attach(h, served.url)
        assert comm.open_state["title"] == "ticks"
        assert comm.open_state["status"]["state"] == "running"
        ack = command(h, comm, "pause", 1)
        assert ack["accepted"] and ack["status"]["state"] in ("pausing", "paused")
        paused = served.wait_state("paused")  # the CLI process really paused
        h.wait_for(lambda: h.newest_state(comm) == "paused", 10, "the panel to publish paused")

        h.km.restart_kernel(now=False)  # the shutdown hook runs: an attached run is not stopped
        h.wait_for(lambda: any(r.msg.get("type") == "goodbye" for r in h.customs(comm)), 20,
                   "the panel's goodbye")
        goodbyes = [r.msg for r in h.customs(comm) if r.msg.get("type") == "goodbye"]
        assert len(goodbyes) == 1 and goodbyes[0]["status"]["state"] == "paused"
        assert served.proc.poll() is None
        after = served.status()
        assert after["state"] == "paused" and after["run_id"] == paused["run_id"]

        # A new kernel: nothing of the old one is left. The harness's reader thread owns the
        # IOPub socket, so readiness is the setup cell's answer (kc.wait_for_ready would read
        # IOPub from this thread too and tear multipart messages apart).
        h.execute(SETUP_CELL, timeout=60)
        comm2 = attach(h, served.url)
        assert comm2.open_state["status"]["run_id"] == paused["run_id"]
        # paused: the seq is stable, so the panel, the terminal and the server agree exactly
        assert panel_truth(h, comm2, 2) == served.status()
        ack = command(h, comm2, "resume", 3)
        assert ack["accepted"], ack  # the reason, if not
        served.wait_state("running")
        assert panel_truth(h, comm2, 4)["state"] == "running"
        ack = command(h, comm2, "stop", 5)
        assert ack["accepted"], ack
        served.proc.communicate(timeout=30)
        assert served.proc.returncode == 130  # stopped (by the attached panel)
    finally:
        h.shutdown()


# ---------------------------------------------------------------------- the gallery, attached

PICTURES = 200  # far more than the test waits for: it pauses the run, then stops it


def shade(i: int) -> int:
    """The gray level of picture ``i``."""
    return (i % 30) * 8


def name(i: int) -> str:
    return f"pic{i:03}.png"


def pictures(folder: Path) -> Path:
    folder.mkdir()
    for i in range(PICTURES):
        PILImage.fromarray(np.full((90, 120, 3), shade(i), np.uint8)).save(folder / name(i))
    return folder


def gray(data: bytes) -> int:
    """The middle pixel of an encoded image, in gray (raises if it does not decode)."""
    img = PILImage.open(io.BytesIO(data))
    img.load()
    g = img.convert("L")
    return int(np.asarray(g)[g.height // 2, g.width // 2])


@pytest.fixture
def served_pictures(tmp_path: Path) -> Iterator[ServedRun]:
    chain = tmp_path / "pictures.json"
    picture_chain(str(pictures(tmp_path / "in")), ms=150).save(chain)
    run = ServedRun(chain, "--workers", "1")
    yield run
    if run.proc.poll() is None:
        run.proc.kill()
        run.proc.wait(10)


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[threading.ExceptHookArgs]:
    """Exceptions that ended a thread (the publisher's included) during the test."""
    errors: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    return errors


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, threading.Thread]]:
    """When, and on which thread, an attached panel asked for the gallery."""
    calls: list[tuple[float, threading.Thread]] = []
    fetch = RemoteRun.fetch_gallery

    def recorded(self: RemoteRun, since: int | None) -> Any:
        calls.append((time.monotonic(), threading.current_thread()))
        return fetch(self, since)

    monkeypatch.setattr(RemoteRun, "fetch_gallery", recorded)
    return calls


def served_gallery(url: str) -> dict[str, Any]:
    """The server's ``/gallery`` now, its images base64-decoded."""
    base, token = url.split("/?token=")
    r = httpx.get(f"{base}/gallery", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()

    def b64(s: str | None) -> bytes | None:
        return None if s is None else base64.b64decode(s)

    return {"thumbnail": b64(body["thumbnail"]), "thumbnail_label": body["thumbnail_label"],
            "gallery": [{k: b64(v) if k != "label" else v for k, v in t.items()}
                        for t in body["gallery"]]}


def test_an_attached_panel_shows_the_served_gallery_at_most_once_a_second(
    served_pictures: ServedRun, wire: Wire, panels: list[ControlPanel],
    fetches: list[tuple[float, threading.Thread]], thread_errors: list[Any],
) -> None:
    served_pictures.wait_state("running")
    t0 = time.monotonic()
    p = ControlPanel.attach(served_pictures.url)
    panels.append(p)
    wait_until(lambda: len(wire.updates("gallery")) >= 3, 60,
               "three gallery updates while the run goes on")
    assert p.runner.pause().accepted
    served_pictures.wait_state("paused")
    truth = served_gallery(served_pictures.url)  # paused: the server's gallery stays put
    wait_until(lambda: p.gallery == truth["gallery"], 5, "the panel to show the server's gallery")
    # the server's bytes, not encoded again; the thumbnail is the newest output
    assert (p.thumbnail, p.thumbnail_label) == (truth["thumbnail"], truth["thumbnail_label"])
    tiles = p.gallery
    assert len(tiles) == GALLERY_SIZE and p.thumbnail == tiles[0]["after"]
    labels = [t["label"] for t in tiles]
    assert p.thumbnail_label == labels[0]
    indices = [int(label[3:6]) for label in labels]
    assert labels == [name(i) for i in indices]  # the input names, newest first
    assert indices == sorted(indices, reverse=True)
    for i, t in zip(indices, tiles, strict=True):  # each is the picture it names, and decodes
        assert abs(gray(t["before"]) - shade(i)) <= 3, t["label"]
        assert abs(gray(t["after"]) - (255 - shade(i))) <= 3, t["label"]
    # the panel went along with the run (not a single late update), as binary buffers
    sent = wire.updates("gallery", since=t0)
    assert len(sent) >= 3
    for u in sent:
        assert ["gallery", 0, "after"] in u.msg["buffer_paths"]
        assert ["thumbnail"] in u.msg["buffer_paths"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.9, gaps  # at most one gallery update a second
    # the server was asked at most once a second, never from this (the "kernel's main") thread
    asked = [at for at, _ in fetches]
    assert min(b - a for a, b in itertools.pairwise(asked)) >= 0.9
    assert {thread for _, thread in fetches} == {p.publisher_thread}
    assert p.runner.connected and not thread_errors
    assert p.runner.stop().accepted
    served_pictures.proc.communicate(timeout=30)
    assert served_pictures.proc.returncode == 130


def test_a_server_without_a_gallery_leaves_the_attached_panel_without_one(
    tmp_path: Path, wire: Wire, panels: list[ControlPanel],
    fetches: list[tuple[float, threading.Thread]], thread_errors: list[Any],
) -> None:
    run = cl.Runner(picture_chain(str(pictures(tmp_path / "in")), ms=5), workers=1)
    with serve(run, announce=None, gallery=False) as srv:
        p = ControlPanel.attach(srv.url)
        panels.append(p)
        remote = p.runner
        assert isinstance(remote, RemoteRun)
        run.start()
        assert run.wait(60).state == "completed"
        wait_until(lambda: (last_published(wire) or {}).get("state") == "completed", 10,
                   "the panel to publish the end")
        wait_until(lambda: len(fetches) >= 2, 10, "the publisher to look for thumbnails again")
        assert remote.gallery_requests == 1  # the 404 said it all: no more requests
        assert remote.fetch_gallery(7) == (7, None)
        assert remote.connected and p.publisher_thread.is_alive()
    assert p.gallery == [] and p.thumbnail == b"" and p.thumbnail_label == ""
    assert not wire.updates("gallery") and not wire.updates("thumbnail")
    assert not thread_errors
    assert run.gallery() == ()  # nothing kept images on either side


def test_fetching_the_gallery_from_a_gone_server_changes_nothing(tmp_path: Path) -> None:
    run = cl.Runner(picture_chain(str(pictures(tmp_path / "in")), ms=0), workers=1)
    srv = serve(run, announce=None)
    remote = RemoteRun(srv.url, timeout=2.0)
    try:
        run.start()
        assert run.wait(60).state == "completed"
        counter, update = remote.fetch_gallery(None)
        assert counter == PICTURES and update is not None
        assert [t["label"] for t in update.tiles] == [name(i) for i in range(PICTURES - 1,
                                                                             PICTURES - 5, -1)]
        assert remote.fetch_gallery(counter) == (counter, None)  # 204: unchanged
        srv.close()
        requests = remote.gallery_requests
        assert remote.fetch_gallery(counter) == (counter, None)  # unreachable: no change
        assert remote.gallery_requests == requests + 1  # ... and it will ask again (no 404)
    finally:
        remote.close()
        srv.close()
    assert remote.fetch_gallery(3) == (3, None)  # closed: no request, no error


def test_an_attached_panel_says_goodbye_when_the_server_closes(
    tmp_path: Path, wire: Wire, panels: list[ControlPanel], thread_errors: list[Any],
) -> None:
    """`chainlib run --serve` closes its server when the run ends: the attached panel must say
    that the server closed, with the final figures, as it says a kernel restarted (it went
    silent instead, and its front end then showed a lost connection with a Stop to queue)."""
    run = cl.Runner(picture_chain(str(pictures(tmp_path / "in")), ms=5), workers=1)
    srv = serve(run, announce=None, gallery=False)
    try:
        p = ControlPanel.attach(srv.url)
        panels.append(p)
        run.start()
        final = run.wait(60)
        assert final.state == "completed"
    finally:
        srv.close(reason="its chainlib run command has ended")
    wait_until(lambda: any(r.get("type") == "goodbye" for r in wire.replies()), 10,
               "the panel's goodbye")
    goodbyes = [r for r in wire.replies() if r.get("type") == "goodbye"]
    assert goodbyes == [{"type": "goodbye", "cause": "server",
                         "reason": "its chainlib run command has ended",
                         "status": final.to_dict(max_failures=20)}]
    assert last_published(wire) == final.to_dict(max_failures=20)  # before the goodbye
    p.publisher_thread.join(5)
    assert not p.publisher_thread.is_alive() and not thread_errors
