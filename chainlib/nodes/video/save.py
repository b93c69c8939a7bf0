"""Writing videos with PyAV: ``video.save`` (a collector)."""

from __future__ import annotations

import io
import itertools
import logging
import os
import re
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import IO, Any, Literal, cast

import numpy as np

from ...api import Context, Image, ItemCounts, collector
from ...outputs import output_folder
from ..image.convert import IMAGE_EXTENSIONS, as_image, read_image
from .frames import as_fraction, av, open_media, open_video, stream_fps

log = logging.getLogger("chainlib")

Codec = Literal["h264", "mpeg4"]
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_ENCODERS = {"h264": "libx264", "mpeg4": "mpeg4"}
_DIGITS = re.compile(r"(\d+)$")


def _check_save(constants: Mapping[str, Any]) -> None:
    """At validation: the settings make sense and the named files exist."""
    path = constants.get("path")
    if path is not None:
        _container_format(path)
    codec = constants.get("codec", "h264")
    if codec not in _ENCODERS:
        raise ValueError(f"codec: {codec!r} is not one of {', '.join(map(repr, _ENCODERS))}")
    quality = constants.get("quality", 65)
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise ValueError(f"quality: expected a whole number from 1 to 100, got {quality!r}")
    fps = constants.get("fps", 0.0)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps < 0 or fps > 1000:
        raise ValueError(f"fps: expected frames per second (0 = the source's), got {fps!r}")
    if constants.get("source"):
        container, _ = open_video("source", constants["source"])
        container.close()
    if constants.get("audio_from"):
        _check_audio(constants["audio_from"], _container_format(path) if path is not None else None)
    # fps=0 given as such (an absent fps may be linked, to video.info's, and is checked when
    # the node runs, before it encodes)
    if "fps" in constants and not fps and (constants.get("source") or constants.get("audio_from")):
        _source_fps(constants.get("source", ""), constants.get("audio_from", ""))


def _check_audio(audio_from: Any, fmt: str | None) -> None:
    """``audio_from`` is a readable media file whose audio (if any) the ``fmt`` container takes:
    FFmpeg refuses, for example, Opus or FLAC in .mov, which would fail only at the end of the
    encode, as an unexplained 'Invalid argument'."""
    with open_media("audio_from", audio_from, "media file") as container:
        if fmt is None or not container.streams.audio:
            return
        stream = container.streams.audio[0]
        out = av().open(io.BytesIO(), "w", format=fmt)
        try:
            out.add_stream_from_template(stream)
            out.start_encoding()  # writes the header: where the muxer checks its streams
        except Exception as exc:  # av.error.* (ValueError / OSError subclasses)
            raise ValueError(f"audio_from: the {stream.codec_context.name} audio of "
                             f"{audio_from!r} cannot be copied into the {fmt} container ({exc}); "
                             "choose another container (.mkv takes most codecs)") from None
        finally:
            out.close()


def _container_format(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"path: expected a video file path, got {path!r}")
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in _CONTAINERS:
        raise ValueError(f"path: {os.fspath(path)!r} must end in one of "
                         f"{', '.join(_CONTAINERS)}")
    return _CONTAINERS[ext]


def encoder_for(codec: str) -> str:
    """The FFmpeg encoder for ``codec``. H.264 needs libx264, which PyAV's wheels bundle; a PyAV
    built against an FFmpeg without it falls back to MPEG-4 Part 2 (FFmpeg's own encoder, always
    present), with a warning in the log."""
    name = _ENCODERS[codec]
    if name not in av().codecs_available:
        log.warning("video.save: FFmpeg has no %s encoder; writing MPEG-4 Part 2 instead", name)
        return "mpeg4"
    return name


def _frame_files(folder: str, collected: list[Any], expected: int | None) -> list[str]:
    """The image sequence in ``folder``, ordered by the number ending each file name, which must
    run 0, 1, 2, ... without a gap (so no frame is silently missing), ``expected`` frames (the
    run's items) if known."""
    root = os.path.abspath(os.path.expanduser(folder))
    if not os.path.isdir(root):
        raise ValueError(f"frames: {folder!r} is not a folder")
    numbered: dict[int, str] = {}
    for entry in os.scandir(root):
        stem, ext = os.path.splitext(entry.name)
        m = _DIGITS.search(stem)
        if entry.name.startswith(".") or ext.lower() not in IMAGE_EXTENSIONS or not m:
            continue
        n = int(m.group(1))
        if n in numbered:
            raise ValueError(f"frames: {numbered[n]!r} and {entry.name!r} in {folder!r} are both "
                             f"frame {n}")
        numbered[n] = entry.path
    missing = sorted(set(range(len(numbered))) - set(numbered))
    if missing or not numbered:
        what = f"frame {missing[0]} is missing" if missing else "it holds no numbered frames"
        raise ValueError(f"frames: {folder!r} is not a complete image sequence: {what} (a failed "
                         "or unfinished item?); the video is not encoded")
    if expected is not None and len(numbered) != expected:
        raise ValueError(f"frames: {folder!r} holds {len(numbered)} numbered frames but the run "
                         f"has {expected} items (one frame each): "
                         + ("the last frames are missing" if len(numbered) < expected else
                            "frames of another run are there (keep the folder for this video's "
                            "frames only)") + "; the video is not encoded")
    files = [numbered[n] for n in range(len(numbered))]
    known = set(map(os.path.abspath, files))
    for value in collected:
        if isinstance(value, str) and os.path.abspath(value) not in known:
            raise ValueError(f"frames: the frame {value!r} is not in {folder!r}")
    return files


def _check_items(counts: ItemCounts | None, frames: str) -> None:
    """Refuse to encode a video that would lack frames: items that failed in this run, or (without
    ``frames=``) items an earlier run finished, which this run does not collect."""
    if counts is None:
        return
    if counts.failed:
        raise ValueError(f"images: {counts.failed} frame(s) failed in this run, so the video "
                         "would lack them; it is not encoded (fix the cause, then run again with "
                         "--resume / resume=True)")
    if counts.skipped and not frames:
        raise ValueError(f"images: {counts.skipped} frame(s) were finished by an earlier run and "
                         "are not collected by this one; give frames= (the folder of the image "
                         "sequence) to encode every frame")


def _pictures(images: list[Any], frames: str, expected: int | None
              ) -> tuple[int, Iterator[Image]]:
    if frames:
        files = _frame_files(frames, images, expected)
        return len(files), (read_image(f) for f in files)
    return len(images), (read_image(v) if isinstance(v, str) else as_image(v) for v in images)


def _rgb_even(image: Image, size: tuple[int, int] | None, index: int) -> Image:
    """An RGB frame with even sides (yuv420p), alpha composited on white like image.save's JPEG."""
    if image.ndim == 2:
        image = cast(Image, np.repeat(image[:, :, None], 3, axis=2))
    elif image.shape[2] == 4:
        a = image[:, :, 3:4].astype(np.float32) / 255.0
        image = cast(Image, np.rint(image[:, :, :3] * a + 255.0 * (1 - a)).astype(np.uint8))
    h, w = image.shape[:2]
    if size is not None and (h, w) != size:
        raise ValueError(f"images: frame {index} is {w}x{h}, the first frame is "
                         f"{size[1]}x{size[0]}; every frame must have the same size")
    if h % 2 or w % 2:  # repeat the last row / column: yuv420p needs even sides
        image = cast(Image, np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge"))
    return image


class _Audio:
    """The audio stream copied from ``audio_from``, muxed in step with the video."""

    def __init__(self, out: Any, path: str) -> None:
        self.container = av().open(path)
        streams = self.container.streams.audio
        self.stream = streams[0] if streams else None
        self.out_stream = out.add_stream_from_template(self.stream) if self.stream else None
        self.packets = self.container.demux(self.stream) if self.stream else iter(())
        self.pending: Any = None

    def mux_until(self, out: Any, seconds: float | None) -> None:
        """Mux the audio packets that start before ``seconds`` (all of them for None)."""
        if self.out_stream is None:
            return
        while True:
            packet = self.pending if self.pending is not None else next(self.packets, None)
            self.pending = None
            if packet is None:
                return
            if packet.dts is None or packet.pts is None:  # the demuxer's flush packet
                continue
            if seconds is not None and float(packet.pts * packet.time_base) >= seconds:
                self.pending = packet
                return
            packet.stream = self.out_stream
            out.mux(packet)

    def close(self) -> None:
        self.container.close()


def _encode(out_file: IO[bytes], fmt: str, count: int, pictures: Iterator[Image], fps: Fraction,
            encoder: str, quality: int, audio_from: str, ctx: Context | None) -> None:
    first = next(pictures)
    size = first.shape[:2]
    with av().open(out_file, "w", format=fmt) as out:
        height, width = _rgb_even(first, None, 0).shape[:2]
        stream = out.add_stream(encoder, rate=fps)
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        if encoder == "libx264":
            stream.options = {"crf": str(round(51 * (100 - quality) / 100))}
        else:  # MPEG-4 Part 2: a fixed quantiser, 1 (best) .. 31
            stream.codec_context.qscale = 1 + round(30 * ((100 - quality) / 100) ** 2)
        audio = _Audio(out, audio_from) if audio_from else None
        try:
            for i, picture in enumerate(itertools.chain([first], pictures)):
                if ctx is not None:
                    ctx.checkpoint()
                    ctx.progress(i / count)
                frame = av().VideoFrame.from_ndarray(_rgb_even(picture, size, i), format="rgb24")
                frame.pts, frame.time_base = i, 1 / fps
                out.mux(stream.encode(frame))
                if audio is not None:
                    audio.mux_until(out, float(i / fps))
            out.mux(stream.encode(None))
            if audio is not None:
                audio.mux_until(out, float(count / fps))
        finally:
            if audio is not None:
                audio.close()


@collector("video.save", collect="images", output="path", rebuilds=True, extra="video",
           requires=("av",), check=_check_save)
def save(
    images: list[Image | str],
    path: str,
    fps: float = 0.0,
    codec: Codec = "h264",
    quality: int = 65,
    source: str = "",
    audio_from: str = "",
    frames: str = "",
    overwrite: bool = False,
    ctx: Context | None = None,
) -> str:
    """Encode the frames, in item order, into a video file (.mp4, .mov, .m4v, .mkv); outputs
    its path.

    ``images`` collects one frame per item: images, or paths of saved frame files (keeps memory
    flat for long videos). ``fps`` 0 takes the frame rate of ``source`` (the video the frames
    came from), else of ``audio_from``. ``codec``: ``h264`` (libx264 from PyAV's bundled FFmpeg;
    MPEG-4 Part 2 if that is missing) or ``mpeg4``; ``quality`` 1-100 (65 is about x264's CRF
    18). ``audio_from`` copies that file's first audio stream. ``frames``: the folder of an
    image sequence (``image.save`` with ``name`` from ``video.frames``); the video is then made
    from every frame there, checked for gaps, so a resumed run, which collects only the frames it
    processed, still encodes them all. No video lacking frames is written: when items of the
    run failed (``on_error="skip"``), or, without ``frames=``, an earlier run finished some (a
    resumed run does not collect them), this node fails saying so.

    The video is written like ``image.save``'s images (:mod:`chainlib.outputs`), into the
    ownership record of its folder: under a hidden temporary name renamed when complete (a stop
    or crash never leaves a half-written video; the next run into the folder removes a killed
    run's temporary file); an existing file is never replaced unless ``overwrite`` is set
    (``--overwrite``), except by a resumed run when chainlib wrote it there and nobody changed it
    since; an input of the run is never replaced. A refusal comes before the encode.
    """
    _check_save({"path": path, "codec": codec, "quality": quality, "fps": fps,
                 "source": source, "audio_from": audio_from})
    target = os.path.abspath(os.path.expanduser(os.fspath(path)))
    fmt = _container_format(target)
    folder = output_folder(os.path.dirname(target), ctx.outputs if ctx is not None else None,
                           record=ctx is not None)
    if ctx is not None and ctx.outputs is not None:  # never written over, even with overwrite
        ctx.outputs.add_inputs(p for p in (source, audio_from) if p)
    replace = bool(overwrite) or (ctx is not None and ctx.overwrite)
    resuming = ctx is not None and ctx.resuming
    folder.check(target, item="the video", overwrite=replace, resuming=resuming)
    counts = ctx.items if ctx is not None else None
    _check_items(counts, frames)
    rate = fps or _source_fps(source, audio_from)
    count, pictures = _pictures(list(images), frames, counts.total if counts else None)
    if count == 0:
        raise ValueError("images: no frames to encode")
    encoder = encoder_for(codec)

    def write(fh: IO[bytes]) -> None:
        _encode(fh, fmt, count, pictures, as_fraction(rate), encoder, quality, audio_from, ctx)
        if ctx is not None:
            ctx.checkpoint()  # a stop during the last frame still leaves no video

    return folder.write(target, write, item="the video", node=ctx.node if ctx else "",
                        overwrite=replace, resuming=resuming)


def _source_fps(source: str, audio_from: str) -> float:
    """The frame rate of ``source``, else of ``audio_from`` (fps=0)."""
    name, path = ("source", source) if source else ("audio_from", audio_from)
    if not path:
        raise ValueError("fps: 0 takes the rate of source= (or audio_from=); give one of them or "
                         "a frame rate")
    with open_media(name, path) as container:
        streams = container.streams.video
        rate = stream_fps(streams[0]) if streams else 0.0
    if not rate:
        what = "has no video stream" if not streams else "does not state its frame rate"
        raise ValueError(f"fps: 0 takes the frame rate of {name}=, and {path!r} {what}; give "
                         "fps")
    return rate
