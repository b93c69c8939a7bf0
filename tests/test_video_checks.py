"""What video runs refuse or check so that no video is wrong, lacks frames or replaces an input:
failed or stale frames, damaged sources, audio the container cannot hold, a model replaced in
place, items sent to Dask workers."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av", reason="needs chainlib[video]")
pytest.importorskip("onnxruntime", reason="needs chainlib[models]")

import chainlib as cl  # noqa: E402
from chainlib import samples  # noqa: E402
from chainlib.api.item import Item  # noqa: E402
from chainlib.errors import ChainError  # noqa: E402
from chainlib.nodes.video import frames, info, save  # noqa: E402
from tests.conftest import VIDEO_FRAMES, decode, wait_until  # noqa: E402

N = VIDEO_FRAMES


def solid(i: int) -> np.ndarray[Any, Any]:
    return np.full((64, 80, 3), (i * 20 % 256, 255 - i * 20 % 256, (i * 90) % 256), np.uint8)


def encode_frames(out: Any, stream: Any, images: list[np.ndarray[Any, Any]]) -> None:
    """Encode RGB ``images`` into ``stream`` of the open container ``out`` (pts 0, 1, ...), then
    flush the encoder."""
    for i, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


# -- audio_from --------------------------------------------------------------------------------


def _flac_clip(path: Path) -> str:
    """A short video with FLAC audio (FFmpeg's own encoder): .mov cannot hold FLAC."""
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("mpeg4", rate=8)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = out.add_stream("flac", rate=8000, layout="mono")
        encode_frames(out, video, [np.full((32, 32, 3), 60 * i, np.uint8) for i in range(4)])
        samples_s16 = np.zeros((1, 4000), np.int16)
        sound = av.AudioFrame.from_ndarray(samples_s16, format="s16", layout="mono")
        sound.sample_rate, sound.pts = 8000, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
    return str(path)


def test_audio_from_is_checked_at_validation(tmp_path: Path, clip: str) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a media file")
    flac = _flac_clip(tmp_path / "flac.mkv")
    for target, audio_from, words in (
        ("v.mp4", str(notes), "is not a readable media file"),
        ("v.mov", flac, "the flac audio of .* cannot be copied into the mov container"),
    ):
        chain = cl.Chain()
        src = chain.add("video.frames", path=clip, stop=2)
        chain.add("video.save", images=src["image"], path=str(tmp_path / target), fps=8.0,
                  audio_from=audio_from, id="enc")
        with pytest.raises(ChainError, match=words) as err:
            chain.validate()
        assert (err.value.node, err.value.input) == ("enc", "audio_from")
        assert audio_from in str(err.value)
    wav = tmp_path / "tone.wav"
    with av.open(str(wav), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        sound.sample_rate, sound.pts = 8000, 0
        out.mux(stream.encode(sound))
        out.mux(stream.encode(None))
    chain = cl.Chain()
    src = chain.add("video.frames", path=clip, stop=2)
    chain.add("video.save", images=src["image"], path=str(tmp_path / "w.mp4"), audio_from=str(wav),
              fps=0, id="enc")  # the rate of audio_from, which has no video
    with pytest.raises(ChainError, match=r"audio_from=, and .*tone.wav' has no video") as err:
        chain.validate()
    assert (err.value.node, err.value.input) == ("enc", "fps")
    chain.set("enc", "fps", chain.add("video.info", path=clip)["fps"])  # linked: not a constant
    run = cl.Runner(chain)
    run.start()
    assert run.wait(60).state == "completed"
    with av.open(str(tmp_path / "w.mp4")) as c:
        assert c.streams.audio and len(decode(tmp_path / "w.mp4")) == 2
    chain.nodes["enc"].inputs.pop("fps")  # the default, 0: said when the node runs
    run = cl.Runner(chain, overwrite=True)
    run.start()
    s = run.wait(60)
    assert s.state == "failed" and s.error is not None and s.error.node == "enc"
    assert "audio_from=, and" in s.error.message and "has no video stream" in s.error.message
    # where the container takes it, the audio is copied
    save([solid(0), solid(1)], str(tmp_path / "v.mkv"), fps=8.0, audio_from=flac)
    with av.open(str(tmp_path / "v.mkv")) as c:
        assert c.streams.audio[0].codec_context.name == "flac"


# -- a video that would lack frames is not encoded ---------------------------------------------

FAIL_AT: set[int] = set()


@cl.node("test.fail_frames", output="image")
def fail_frames(image: cl.Image, index: int) -> cl.Image:
    if index in FAIL_AT:
        raise RuntimeError(f"frame {index} cannot be processed")
    return image


@pytest.mark.parametrize("sequence", [True, False], ids=["frames-folder", "collected-images"])
@pytest.mark.parametrize("bad", [5, 11], ids=["middle", "last"])
def test_failed_frames_are_not_encoded_and_resume_completes_the_video(
    tmp_path: Path, clip: str, sequence: bool, bad: int
) -> None:
    out = tmp_path / "out"
    chain = cl.Chain("lossy")
    src = chain.add("video.frames", path=clip, stop=12, id="frames")
    kept = chain.add("test.fail_frames", image=src["image"], index=src["index"], id="work")
    saved = chain.add("image.save", image=kept, folder=str(out / "frames"), name=src["name"])
    chain.add("video.save", images=saved, path=str(out / "v.mp4"), source=clip,
              **({"frames": str(out / "frames")} if sequence else {}), id="encode")
    FAIL_AT.clear()
    FAIL_AT.add(bad)
    try:
        run = cl.Runner(chain, on_error="skip", resume=True)  # the command line's default
        run.start()
        s = run.wait(60)
    finally:
        FAIL_AT.clear()
    assert (s.state, s.done, s.failed) == ("failed", 11, 1)
    assert s.error is not None and s.error.node == "encode"
    assert "1 frame(s) failed" in s.error.message
    assert not (out / "v.mp4").exists()  # an 11-frame video of a 12-frame clip was written
    run = cl.Runner(chain, on_error="skip", resume=True)  # the cause fixed: finish the frames
    run.start()
    s = run.wait(60)
    if sequence:
        assert (s.state, s.done, s.skipped) == ("completed", 12, 11)
        assert len(decode(out / "v.mp4")) == 12
    else:  # the collected images are only this run's: refused, never a 1-frame video
        assert s.state == "failed" and s.error is not None
        assert "11 frame(s) were finished by an earlier run" in s.error.message
        assert "frames=" in s.error.message
        assert not (out / "v.mp4").exists()


def test_stale_frames_of_another_run_are_not_encoded(tmp_path: Path, clip: str) -> None:
    out = tmp_path / "out"

    def chain(stop: int) -> cl.Chain:
        c = cl.Chain("stale")
        src = c.add("video.frames", path=clip, stop=stop, id="frames")
        saved = c.add("image.save", image=src["image"], folder=str(out / "frames"),
                      name=src["name"])
        c.add("video.save", images=saved, path=str(out / "v.mp4"), source=clip,
              frames=str(out / "frames"), id="encode")
        return c

    run = cl.Runner(chain(8))
    run.start()
    assert run.wait(60).state == "completed"
    run = cl.Runner(chain(5), overwrite=True)  # a shorter selection into the same folder
    run.start()
    s = run.wait(60)
    assert s.state == "failed" and s.error is not None and s.error.node == "encode"
    assert "holds 8 numbered frames but the run has 5 items" in s.error.message
    assert len(decode(out / "v.mp4")) == 8  # the earlier video stays


def test_without_pyav_a_direct_call_says_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, clip: str
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # as if the extra were not installed
    with pytest.raises(ChainError, match=r"pip install 'chainlib\[video\]'"):
        next(iter(frames(clip)))
    with pytest.raises(ChainError, match=r"pip install 'chainlib\[video\]'"):
        info(clip)


def test_a_damaged_video_is_an_error_naming_the_file_and_frame(tmp_path: Path, clip: str) -> None:
    data = bytearray(Path(clip).read_bytes())
    third = len(data) // 3
    data[third : third + 4000] = b"Z" * 4000  # the packets of some frames in the middle
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    chain = cl.Chain()
    src = chain.add("video.frames", path=str(damaged), id="src")
    chain.add("core.constant", value=src["index"])
    run = cl.Runner(chain)
    run.start()
    s = run.wait(60)
    assert s.state == "failed" and s.error is not None and s.error.node == "src"
    assert str(damaged) in s.error.message
    assert "cannot be decoded after frame" in s.error.message
    assert 0 < s.done < N


def test_a_model_replaced_in_place_redoes_the_frames_on_resume(
    tmp_path: Path, clip: str, media: Path
) -> None:
    """A resumed run must not mix frames of two models: replacing the model file (same path,
    so the same chain) counts as a change of the chain."""
    model = tmp_path / "model.onnx"
    model.write_bytes(Path(samples.model(media / "x2.onnx", scale=2)).read_bytes())
    out = tmp_path / "out"
    chain = cl.Chain("upscale-video")
    src = chain.add("video.frames", path=clip, stop=6)
    big = chain.add("image.upscale", image=src["image"], model=str(model), id="up")
    saved = chain.add("image.save", image=big, folder=str(out / "frames"), name=src["name"])
    chain.add("video.save", images=saved, path=str(out / "big.mp4"), source=clip,
              frames=str(out / "frames"), id="encode")
    run = cl.Runner(chain, resume=True)
    run.start()
    assert run.wait(60).state == "completed"
    run = cl.Runner(chain, resume=True)  # unchanged: every frame is already complete
    run.start()
    assert run.wait(60).skipped == 6
    model.write_bytes(Path(samples.model(media / "x3.onnx", scale=3)).read_bytes())
    run = cl.Runner(chain, resume=True)
    run.start()
    s = run.wait(60)
    assert (s.state, s.done, s.skipped) == ("completed", 6, 0), s.error
    assert {f.shape for f in decode(out / "big.mp4")} == {(360, 480, 3)}


def test_frame_items_can_travel_to_a_dask_worker(clip: str) -> None:
    """A cluster run pickles the items it sends (cloudpickle): PyAV frames cannot be pickled,
    so a frame goes as its RGB array."""
    import cloudpickle

    item = next(iter(frames(clip)))
    assert isinstance(item, Item)
    copy = cloudpickle.loads(cloudpickle.dumps(item))
    assert np.array_equal(copy.value["image"].resolve(), item.value["image"].resolve())
    assert copy.source == item.source and copy.value["index"] == 0


@pytest.mark.parametrize("frames_from_clip", [True, False], ids=["iterator", "source-input"])
def test_the_source_video_is_never_written_over(
    tmp_path: Path, clip: str, frames_from_clip: bool
) -> None:
    """Not even with overwrite: the video the frames come from (the iterator's items name it as
    'clip.mp4#frame=N'), or the one named by source=/audio_from=, is an input of the run."""
    own = tmp_path / "clip.mp4"
    own.write_bytes(Path(clip).read_bytes())
    before = own.read_bytes()
    chain = cl.Chain("in-place")
    if frames_from_clip:
        src = chain.add("video.frames", path=str(own), stop=4)
    else:
        src = chain.add("video.frames", path=clip, stop=4)
    saved = chain.add("image.save", image=src["image"], folder=str(tmp_path / "frames"),
                      name=src["name"])
    chain.add("video.save", images=saved, path=str(own), source=str(own), audio_from=str(own),
              frames=str(tmp_path / "frames"), id="encode")
    run = cl.Runner(chain, overwrite=True)
    run.start()
    s = run.wait(60)
    assert s.state == "failed" and s.error is not None and s.error.node == "encode"
    assert "is an input of this run and is never written over" in s.error.message
    assert own.read_bytes() == before


def test_the_source_video_stays_an_input_when_every_frame_is_skipped(
    tmp_path: Path, clip: str
) -> None:
    own = tmp_path / "clip.mp4"
    own.write_bytes(Path(clip).read_bytes())
    before = own.read_bytes()
    chain = cl.Chain("skipped")
    src = chain.add("video.frames", path=str(own), stop=4)
    saved = chain.add("image.save", image=src["image"], folder=str(tmp_path / "frames"),
                      name=src["name"])
    chain.add("video.save", images=saved, path=str(own), fps=8.0,
              frames=str(tmp_path / "frames"), id="encode")
    for skipped in (0, 4):  # the frames are recorded; then a resumed run skips them all
        run = cl.Runner(chain, resume=True, overwrite=True)
        run.start()
        s = run.wait(60)
        assert (s.state, s.done, s.skipped) == ("failed", 4, skipped)
        assert s.error is not None and s.error.node == "encode"
        assert "is an input of this run" in s.error.message
        assert own.read_bytes() == before


@pytest.mark.parametrize(("degrees", "corner"), [(90, (-1, 0)), (-90, (0, -1)), (180, (-1, -1))])
def test_a_rotated_video_gives_upright_frames(
    tmp_path: Path, degrees: int, corner: tuple[int, int]
) -> None:
    """A phone's portrait video is stored landscape with a display rotation, which players
    apply (counter-clockwise degrees, as FFmpeg's own command line turns it); the frames and
    the video made of them are upright."""
    clip = tmp_path / "phone.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(degrees)
        stored = np.zeros((48, 64, 3), np.uint8)
        stored[:12, :16] = 255  # a white block in the stored frame's top-left corner
        encode_frames(out, stream, [stored] * 3)
    upright = (64, 48) if degrees % 180 else (48, 64)
    assert (info(str(clip))["height"], info(str(clip))["width"]) == upright
    images = [item.value["image"].resolve() for item in frames(str(clip))]
    assert len(images) == 3
    for image in images:
        assert image.shape == (*upright, 3)
        y, x = corner  # where the block is shown: a corner of the upright picture
        rows = slice(-8, None) if y else slice(0, 8)
        cols = slice(-8, None) if x else slice(0, 8)
        assert image[rows, cols].mean() > 200 and image[:8, :8].mean() < 50


GATE = threading.Event()


@cl.node("test.gate_frames", output="image")
def gate_frames(ctx: cl.Context, image: cl.Image, index: int) -> cl.Image:
    while index >= 3 and not GATE.is_set():
        ctx.checkpoint()
        time.sleep(0.005)
    return image


def test_a_stream_without_a_frame_count_has_an_unknown_total(tmp_path: Path) -> None:
    """A raw H.264 stream says neither its frame count nor its duration: the total is unknown
    (None) until the last frame, not 0 (which showed '3 done of 0')."""
    raw = tmp_path / "raw.h264"
    with av.open(str(raw), "w", format="h264") as out:
        stream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4",
                                rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        encode_frames(out, stream, [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(6)])
    chain = cl.Chain()
    src = chain.add("video.frames", path=str(raw))
    chain.add("test.gate_frames", image=src["image"], index=src["index"])
    GATE.clear()
    run = cl.Runner(chain)
    try:
        run.start()
        wait_until(lambda: run.status().done >= 3, timeout=30, what="3 frames")
        assert run.status().total is None
    finally:
        GATE.set()
    s = run.wait(30)
    assert (s.state, s.done, s.total) == ("completed", 6, 6)
