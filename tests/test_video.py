"""``video.frames`` / ``video.info`` / ``video.save`` and resumable video runs."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av", reason="needs chainlib[video]")
pytest.importorskip("onnxruntime", reason="needs chainlib[models]")

import chainlib as cl  # noqa: E402
from chainlib.api.context import NullContext  # noqa: E402
from chainlib.api.item import Item, Lazy  # noqa: E402
from chainlib.errors import ChainError, RunStopped  # noqa: E402
from chainlib.lock import LOCK_NAME  # noqa: E402
from chainlib.manifest import MANIFEST_NAME  # noqa: E402
from chainlib.nodes.upscale import upscale  # noqa: E402
from chainlib.nodes.video import frames, info, save  # noqa: E402
from chainlib.outputs import (  # noqa: E402
    OWNED_NAME,
    TEMP_PATTERN,
    OutputFolder,
    OutputRefused,
    OutputSession,
)
from tests.conftest import VIDEO_FRAMES, decode, wait_until  # noqa: E402

frames_mod = importlib.import_module("chainlib.nodes.video.frames")  # the package shadows it
TESTS = Path(__file__).parent
N = VIDEO_FRAMES


def close(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], tol: float = 4.0) -> bool:
    """Equal up to lossy-codec noise (mean absolute difference in levels)."""
    return a.shape == b.shape and float(np.abs(a.astype(int) - b).mean()) < tol


# -- reading ---------------------------------------------------------------------------------


def test_info_and_length(clip: str) -> None:
    i = info(clip)
    assert (i["frames"], i["width"], i["height"], i["fps"], i["audio"]) == (N, 160, 120, 24.0,
                                                                            True)
    assert abs(i["duration"] - 2.0) < 0.1
    spec = frames.__chainlib_spec__  # type: ignore[attr-defined]
    assert spec.length(path=clip) == N
    assert spec.length(path=clip, start=5, stop=30, step=4) == len(range(5, 30, 4))
    assert spec.length(path=clip, start=40, stop=100) == 8


def test_frames_come_lazily_and_in_order(clip: str, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    real_open = frames_mod.av().open

    class Spy:
        def __init__(self, path: str) -> None:
            self.c = real_open(path)
            self.streams = self.c.streams

        def decode(self, stream: Any) -> Any:
            for frame in self.c.decode(stream):
                decoded.append(1)
                yield frame

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.c.close()

        def close(self) -> None:
            self.c.close()

    monkeypatch.setattr(frames_mod, "av", lambda: type("AV", (), {"open": Spy}))
    gen = frames(clip)
    first = next(gen)
    assert isinstance(first, Item) and isinstance(first.value["image"], Lazy)
    assert len(decoded) == 1  # one frame decoded for one item, not the whole video
    items = [first, *gen]
    assert [it.value["index"] for it in items] == list(range(N))
    assert [it.value["name"] for it in items[:2]] == ["frame_000000", "frame_000001"]
    times = [it.value["time"] for it in items]
    assert times == sorted(times) and abs(times[24] - 1.0) < 1e-6
    assert items[3].source == f"{clip}#frame=3" and items[3].label == "frame 3"
    expected = decode(clip)
    assert all(np.array_equal(it.value["image"].resolve(), expected[k])
               for k, it in enumerate(items))


def test_start_stop_step_select_frames(clip: str) -> None:
    items = list(frames(clip, start=5, stop=30, step=4))
    assert [it.value["index"] for it in items] == list(range(5, 30, 4))
    assert [it.value["name"] for it in items][-1] == f"frame_{len(items) - 1:06d}"


def test_bad_video_inputs_are_validation_errors(tmp_path: Path, clip: str) -> None:
    notvideo = tmp_path / "notes.mp4"
    notvideo.write_text("hello")
    for kwargs, words in (({"path": str(tmp_path / "none.mp4")}, "does not exist"),
                          ({"path": str(notvideo)}, "not a readable video"),
                          ({"path": str(notvideo), "step": 0}, "step"),
                          ({"path": str(notvideo), "start": 5, "stop": 5}, "stop"),
                          ({"path": clip, "start": N}, f"has {N} frames")):
        chain = cl.Chain()
        chain.add("video.frames", id="src", **kwargs)
        with pytest.raises(ChainError, match=words) as err:
            chain.validate()
        assert err.value.node == "src"


# -- writing ---------------------------------------------------------------------------------


def solid(i: int) -> np.ndarray[Any, Any]:
    """Frame ``i``: a flat colour that identifies it after lossy encoding."""
    return np.full((64, 80, 3), (i * 20 % 256, 255 - i * 20 % 256, (i * 90) % 256), np.uint8)


def test_save_encodes_in_item_order_with_workers(tmp_path: Path) -> None:
    @cl.node("test.solid_slow", output="image")
    def solid_slow(i: int) -> cl.Image:
        time.sleep(0.02 if i % 3 == 0 else 0.0)  # items finish out of order
        return solid(i)

    chain = cl.Chain()
    src = chain.add("core.range", n=12)
    img = chain.add("test.solid_slow", i=src)
    out = chain.add("video.save", images=img, path=str(tmp_path / "v.mp4"), fps=12.0)
    run = cl.Runner(chain, workers=3)
    run.start()
    assert run.wait(60).state == "completed"
    assert run.result(out) == str(tmp_path / "v.mp4")
    got = decode(tmp_path / "v.mp4")
    assert len(got) == 12
    assert all(close(got[i], solid(i)) for i in range(12))
    with av.open(str(tmp_path / "v.mp4")) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, float(v.average_rate)) == ("h264", 12.0)


def test_save_copies_audio_and_takes_the_source_fps(tmp_path: Path, clip: str) -> None:
    target = tmp_path / "with-audio.mkv"
    save([solid(i) for i in range(N)], str(target), source=clip, audio_from=clip)
    with av.open(clip) as src, av.open(str(target)) as out:
        assert float(out.streams.video[0].average_rate) == 24.0
        a_in, a_out = src.streams.audio[0], out.streams.audio[0]
        assert (a_out.codec_context.name, a_out.rate) == (a_in.codec_context.name, a_in.rate)
        src_packets = [bytes(p) for p in src.demux(a_in) if p.size]
        out_packets = [bytes(p) for p in out.demux(a_out) if p.size]
    assert out_packets == src_packets[: len(out_packets)]  # copied, not re-encoded
    assert len(out_packets) >= len(src_packets) - 2


def test_save_odd_sizes_gray_and_alpha(tmp_path: Path) -> None:
    gray = np.full((33, 41), 200, np.uint8)
    rgba = np.dstack([np.zeros((33, 41, 3), np.uint8), np.full((33, 41), 0, np.uint8)])
    save([gray, rgba], str(tmp_path / "odd.mp4"), fps=5.0)
    got = decode(tmp_path / "odd.mp4")
    assert got[0].shape == (34, 42, 3)
    assert close(got[0][:33, :41], np.full((33, 41, 3), 200, np.uint8))
    assert close(got[1][:33, :41], np.full((33, 41, 3), 255, np.uint8))  # transparent -> white


def test_save_refuses_bad_settings_and_existing_files(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    target.write_bytes(b"someone else's video")
    with pytest.raises(ValueError, match="already exists"):
        save([solid(0)], str(target), fps=5.0)
    assert target.read_bytes() == b"someone else's video"
    save([solid(0)], str(target), fps=5.0, overwrite=True)
    assert len(decode(target)) == 1
    with pytest.raises(ValueError, match="fps"):
        save([solid(0)], str(tmp_path / "nofps.mp4"))
    with pytest.raises(ValueError, match="same size"):
        save([solid(0), solid(1)[:10]], str(tmp_path / "sizes.mp4"), fps=5.0)
    chain = cl.Chain()
    src = chain.add("core.items", items=[1, 2])
    chain.add("video.save", images=src, path=str(tmp_path / "v.gif"), fps=5.0, id="save")
    with pytest.raises(ChainError, match=r"\.mp4") as err:
        chain.validate()
    assert (err.value.node, err.value.input) == ("save", "path")


def _write_sequence(folder: Path, n: int) -> list[str]:
    from chainlib.nodes.image import save as save_image

    return [save_image(solid(i), str(folder), f"frame_{i:06d}") for i in range(n)]


def test_sequence_with_a_gap_is_not_encoded(tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    paths = _write_sequence(seq, 6)
    os.unlink(paths[3])
    with pytest.raises(ValueError, match="frame 3 is missing"):
        save([], str(tmp_path / "v.mp4"), fps=5.0, frames=str(seq))
    assert not (tmp_path / "v.mp4").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


class StopAt(NullContext):
    def __init__(self, at: int) -> None:
        super().__init__("save")
        self.calls, self.at = 0, at

    def checkpoint(self) -> None:
        self.calls += 1
        if self.calls > self.at:
            raise RunStopped()


def test_stop_during_encode_leaves_no_video(tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    _write_sequence(seq, 10)
    for at in (0, 5, 10):  # before the first frame, midway, after the last (before the rename)
        with pytest.raises(RunStopped):
            save([], str(tmp_path / "v.mp4"), fps=5.0, frames=str(seq), ctx=StopAt(at))
        # no video, no temporary file: only the ownership record (which lists the temporary)
        assert sorted(p.name for p in tmp_path.iterdir()) == [OWNED_NAME, "seq"]


def test_sigkill_during_encode_leaves_no_video_and_resume_cleans_up(tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    _write_sequence(seq, 60)
    target, marker = tmp_path / "v.mp4", tmp_path / "marker"
    # at frame 55 the encoder (40 frames of look-ahead) has written part of the file
    proc = subprocess.Popen([sys.executable, str(TESTS / "video_nodes.py"), str(seq), str(target),
                             "55", str(marker)], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        wait_until(marker.exists, timeout=60, what="the encode to reach frame 55")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert not target.exists()
    leftovers = [p for p in tmp_path.iterdir() if TEMP_PATTERN.match(p.name)]
    assert len(leftovers) == 1  # the encode's temporary file (its bytes may be in buffers)

    # the next run into the folder (its session locks it) removes the killed run's temporary
    session = OutputSession([str(tmp_path)]).open()
    try:
        save([], str(target), fps=5.0, frames=str(seq), ctx=InRun(session, resuming=True))
    finally:
        session.close()
    assert len(decode(target)) == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        LOCK_NAME, OWNED_NAME, "marker", "seq", "v.mp4"]


class InRun(NullContext):
    """``video.save``'s context in a run: the run's output session and options."""

    def __init__(self, session: OutputSession, *, resuming: bool = False,
                 overwrite: bool = False) -> None:
        super().__init__("encode")
        self.outputs, self.resuming, self.overwrite = session, resuming, overwrite


def encode_into(folder: Path, *, resuming: bool = False, overwrite: bool = False,
                first: int = 0, images: list[Any] | None = None) -> str:
    """``video.save`` of two frames (or ``images``) into ``folder/v.mp4`` as a run's collector
    would."""
    session = OutputSession([str(folder)]).open()
    images = [solid(first), solid(first + 1)] if images is None else images
    try:
        return save(images, str(folder / "v.mp4"), fps=5.0,
                    ctx=InRun(session, resuming=resuming, overwrite=overwrite))
    finally:
        session.close()


def test_save_never_replaces_a_video_it_did_not_write(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    target.write_bytes(b"someone else's video")
    for resuming in (False, True):  # a resumed run neither
        with pytest.raises(OutputRefused) as refused:
            encode_into(tmp_path, resuming=resuming)
        assert str(target) in str(refused.value)
        assert "not written by chainlib" in str(refused.value)
        assert "overwrite=True (--overwrite)" in str(refused.value)  # the way out
        assert target.read_bytes() == b"someone else's video"
    assert not [p for p in tmp_path.iterdir() if TEMP_PATTERN.match(p.name)]
    encode_into(tmp_path, overwrite=True)
    assert len(decode(target)) == 2


def test_save_replaces_its_own_video_only_when_resuming(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    encode_into(tmp_path)
    assert OutputFolder(str(tmp_path), locked=False).open().is_ours(str(target))
    with pytest.raises(OutputRefused, match=r"written by an earlier run.*--resume"):
        encode_into(tmp_path, first=5)  # a plain run
    with pytest.raises(OutputRefused):  # refused before the encode, which would fail
        encode_into(tmp_path, images=[str(tmp_path / "no such frame.png")])
    assert close(decode(target)[0], solid(0))
    encode_into(tmp_path, resuming=True, first=5)  # ours, unchanged since: replaced
    assert close(decode(target)[0], solid(5))
    target.write_bytes(target.read_bytes() + b"edited")  # changed since: no longer ours
    with pytest.raises(OutputRefused, match="not written by chainlib"):
        encode_into(tmp_path, resuming=True)


def test_a_video_run_refuses_to_replace_a_video_not_its_own(tmp_path: Path, clip: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "v.mp4").write_bytes(b"someone else's video")
    chain = cl.Chain("reencode")
    src = chain.add("video.frames", path=clip, stop=4, id="frames")
    saved = chain.add("image.save", image=src["image"], folder=str(out / "frames"),
                      name=src["name"], id="save_frame")
    chain.add("video.save", images=saved, path=str(out / "v.mp4"), source=clip,
              frames=str(out / "frames"), id="encode")
    run = cl.Runner(chain, workers=2, resume=True)
    assert run.start().accepted
    st = run.wait(60)
    assert st.state == "failed" and st.done == 4
    assert any(f.node == "encode" and "not written by chainlib" in f.message
               and str(out / "v.mp4") in f.message for f in st.failures), st.failures
    assert (out / "v.mp4").read_bytes() == b"someone else's video"
    run = cl.Runner(chain, workers=2, resume=True, overwrite=True)
    assert run.start().accepted
    assert run.wait(60).state == "completed"
    assert len(decode(out / "v.mp4")) == 4
    run = cl.Runner(chain, workers=2, resume=True)  # ours now: a resumed run replaces it
    assert run.start().accepted
    assert run.wait(60).state == "completed"


# -- resumable video runs --------------------------------------------------------------------


def video_chain(clip: str, model: str, out: Path, *, hold: bool = False) -> cl.Chain:
    chain = cl.Chain("upscale-video")
    src = chain.add("video.frames", path=clip, id="frames")
    image = src["image"]
    if hold:
        image = chain.add("test.hold_frames", image=image, index=src["index"], id="hold")
    big = chain.add("image.upscale", image=image, model=model, id="up")
    saved = chain.add("image.save", image=big, folder=str(out / "frames"), name=src["name"],
                      id="save_frame")
    chain.add("video.save", images=saved, path=str(out / "big.mp4"), source=clip,
              audio_from=clip, frames=str(out / "frames"), id="encode")
    return chain


def check_result(clip: str, model: str, out: Path) -> None:
    frames_dir = out / "frames"
    names = sorted(p.name for p in frames_dir.iterdir() if not p.name.startswith("."))
    assert names == [f"frame_{i:06d}.png" for i in range(N)]
    got = decode(out / "big.mp4")
    assert len(got) == N and got[0].shape == (240, 320, 3)
    source = decode(clip)
    for i in (0, N // 2, N - 1):  # the video holds the upscaled frames in order
        assert close(got[i], upscale(source[i], model))
    with av.open(str(out / "big.mp4")) as c:
        assert c.streams.audio


def test_stop_then_resume_runs_each_frame_once(tmp_path: Path, clip: str, x2: str) -> None:
    out = tmp_path / "out"
    run = cl.Runner(video_chain(clip, x2, out), workers=2, resume=True)
    run.start()
    wait_until(lambda: run.status().done >= 10, timeout=60, what="10 frames")
    run.stop()
    first = run.wait(30)
    assert first.state == "stopped" and 10 <= first.done < N
    assert not (out / "big.mp4").exists()
    records = (out / "frames" / MANIFEST_NAME).read_text().splitlines()
    assert len(records) == first.done
    run2 = cl.Runner(video_chain(clip, x2, out), workers=2, resume=True)
    assert run2.start().accepted
    s = run2.wait(120)
    assert (s.state, s.done, s.skipped, s.failed) == ("completed", N, first.done, 0)
    assert s.nodes["up"].count == N - first.done  # only the missing frames were upscaled
    check_result(clip, x2, out)


def test_resume_after_every_frame_was_done_still_encodes(tmp_path: Path, clip: str,
                                                          x2: str) -> None:
    # every frame recorded, the video missing (the encode was interrupted): a resumed run skips
    # every frame and video.save, which rebuilds from its frames folder, still encodes them all
    out = tmp_path / "out"
    run = cl.Runner(video_chain(clip, x2, out), workers=2, resume=True)
    run.start()
    assert run.wait(120).state == "completed"
    (out / "big.mp4").unlink()
    again = cl.Runner(video_chain(clip, x2, out), workers=2, resume=True)
    again.start()
    s = again.wait(120)
    assert (s.state, s.done, s.skipped, s.failed) == ("completed", N, N, 0)
    assert s.nodes["up"].count == 0 and s.nodes["encode"].state == "done"
    check_result(clip, x2, out)


def cli(*args: object, **env: str) -> subprocess.Popen[str]:
    e = {**os.environ, **env}
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), e.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", "chainlib", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_resume_after_sigkill_of_a_cli_run(tmp_path: Path, clip: str, x2: str) -> None:
    out = tmp_path / "out"
    chain_file = tmp_path / "video.json"
    video_chain(clip, x2, out, hold=True).save(chain_file)
    manifest = out / "frames" / MANIFEST_NAME
    proc = cli("run", chain_file, "--resume", "--workers", "2", "--import", "video_nodes",
               CHAINLIB_TEST_HOLD_AT="20")
    try:
        wait_until(lambda: manifest.exists() and len(manifest.read_text().splitlines()) >= 20,
                   timeout=120, what="20 frames recorded")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert not (out / "big.mp4").exists()
    done_before = len(manifest.read_text().splitlines())
    assert done_before == 20  # frames 0-19; the workers hold at frame 20 and 21

    proc = cli("run", chain_file, "--resume", "--import", "video_nodes")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, (stdout, stderr)
    assert f"{N} done, {done_before} of them already complete (skipped)" in stdout
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    sources = [r["source"] for r in records]
    assert len(sources) == N == len(set(sources))  # each frame recorded exactly once
    check_result(clip, x2, out)
