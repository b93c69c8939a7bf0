"""Reading videos with PyAV: ``video.frames`` (an iterator) and ``video.info``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any, TypedDict, cast

import numpy as np

from ...api import Image, Item, Lazy, iterator, node
from .._extras import require

FRAME_KEY = "#frame="
"""Items are identified as ``<video path>#frame=<index>`` (the resume record's source)."""


def av() -> Any:
    """The PyAV module (a ChainError naming the pip command if it is missing)."""
    return require("av", "video")


def check_path(name: str, path: Any) -> str:
    """``path`` as an absolute path to an existing file, else ValueError naming the input."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{name}: expected a video file path, got {path!r}")
    full = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.isfile(full):
        raise ValueError(f"{name}: {os.fspath(path)!r} does not exist" if not
                         os.path.exists(full) else f"{name}: {os.fspath(path)!r} is not a file")
    return full


def open_media(name: str, path: str, what: str = "video") -> Any:
    """Open ``path`` (input ``name``) for reading with PyAV; ValueError naming both if it cannot
    be read (a ChainError naming the pip command without PyAV)."""
    full = check_path(name, path)
    module = av()  # outside the try: a missing PyAV is said as such, not as an unreadable file
    try:
        return module.open(full)
    except Exception as exc:  # PyAV raises av.error.* (OSError / ValueError subclasses)
        raise ValueError(f"{name}: {path!r} is not a readable {what}: {exc}") from None


def open_video(name: str, path: str) -> tuple[Any, Any]:
    """Open ``path`` for reading; returns (container, its first video stream)."""
    container = open_media(name, path)
    if not container.streams.video:
        container.close()
        raise ValueError(f"{name}: {path!r} has no video stream")
    return container, container.streams.video[0]


def stream_fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def frame_count(stream: Any, container: Any) -> int:
    """The number of frames the container declares, else an estimate from duration and rate."""
    if stream.frames:
        return int(stream.frames)
    fps = stream_fps(stream)
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    else:
        return 0
    return round(seconds * fps)


def _selection(start: int, stop: int | None, step: int) -> None:
    for name, value, low in (("start", start, 0), ("step", step, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected a whole number >= {low}, got {value!r}")
    if stop is not None and (not isinstance(stop, int) or isinstance(stop, bool) or stop < 0):
        raise ValueError(f"stop: expected a frame index >= 0 or None (the end), got {stop!r}")
    if stop is not None and stop <= start:
        raise ValueError(f"stop: {stop} is not after start ({start}): no frame is selected")


def _count(path: str, start: int = 0, stop: int | None = None, step: int = 1) -> int | None:
    """The number of items, or None when the container says neither its frame count nor its
    duration (a raw H.264 stream): unknown, not 0, until the last frame."""
    _selection(start, stop, step)
    container, stream = open_video("path", path)
    with container:
        n = frame_count(stream, container)
    if not n:
        return None
    return len(range(start, n if stop is None else min(stop, n), step))


def _check_frames(constants: Mapping[str, Any]) -> None:
    _selection(constants.get("start", 0), constants.get("stop"), constants.get("step", 1))
    if "path" in constants:
        container, stream = open_video("path", constants["path"])
        with container:
            known = int(stream.frames or 0)  # declared by the container: exact (else estimated)
        start = constants.get("start", 0)
        if known and start >= known:
            raise ValueError(f"start: {constants['path']!r} has {known} frames (0 to {known - 1}); "
                             f"start={start} selects none")


class DecodedFrame:
    """A decoded frame whose conversion to RGB waits for the worker that resolves the item
    (``Lazy(DecodedFrame.rgb, ...)``), so that it does not hold up the decoding. PyAV frames
    cannot be pickled: one sent to a Dask worker is converted first and travels as its array."""

    __slots__ = ("frame",)

    def __init__(self, frame: Any) -> None:
        self.frame = frame

    def rgb(self) -> Image:
        """The frame as RGB, turned upright: a phone's portrait video is stored landscape with a
        display rotation (counter-clockwise degrees), which players apply and the encoded
        output would not carry."""
        frame = self.frame
        if isinstance(frame, np.ndarray):
            return cast(Image, frame)
        image = frame.to_ndarray(format="rgb24")
        turns = _quarter_turns(frame)
        return cast(Image, np.ascontiguousarray(np.rot90(image, turns)) if turns else image)

    def __reduce__(self) -> tuple[Any, ...]:
        return DecodedFrame, (self.rgb(),)


def _quarter_turns(frame: Any) -> int:
    """Counter-clockwise quarter turns of ``frame``'s display rotation (0 for none, or for an
    angle that is not a multiple of 90)."""
    degrees = round(float(getattr(frame, "rotation", 0) or 0))
    return (degrees // 90) % 4 if degrees % 90 == 0 else 0


class FrameItem(TypedDict):
    image: Image
    index: int
    time: float
    name: str


@iterator("video.frames", length=_count, extra="video", requires=("av",), check=_check_frames)
def frames(path: str, start: int = 0, stop: int | None = None, step: int = 1
           ) -> Iterator[FrameItem]:
    """Decode a video's frames in order, one item each (``frames[start:stop:step]``).

    Outputs per item: ``image`` (RGB), ``index`` (the frame's number in the video), ``time``
    (seconds) and ``name`` (``frame_000000``, ``frame_000001``, ... numbered by item: link it to
    ``image.save``'s ``name`` for an image sequence that ``video.save`` can encode). Frames are
    decoded lazily (one at a time as items are taken; the conversion to RGB runs on the worker)
    and the number of items is known up front from the container. In a resumable run each frame
    is an item of its own, so a resumed run redoes only the missing frames.
    """
    _selection(start, stop, step)
    full = check_path("path", path)
    container, stream = open_video("path", path)
    stream.thread_type = "AUTO"  # FFmpeg's own decoding threads
    fps = stream_fps(stream)
    with container:
        position = 0
        for index, frame in _decoded(container, stream, path):
            if stop is not None and index >= stop:
                break
            if index < start or (index - start) % step:
                continue
            seconds = float(frame.time) if frame.time is not None else (
                index / fps if fps else 0.0)
            value = {"image": Lazy(DecodedFrame.rgb, DecodedFrame(frame)), "index": index,
                     "time": seconds, "name": f"frame_{position:06d}"}
            position += 1
            yield cast(FrameItem, Item(value, label=f"frame {index}",
                                       source=f"{full}{FRAME_KEY}{index}"))


def _decoded(container: Any, stream: Any, path: str) -> Iterator[tuple[int, Any]]:
    """``enumerate(container.decode(stream))``, where a decoding error (a damaged file) names
    the file and the last good frame instead of FFmpeg's bare 'avcodec_send_packet()'."""
    frames = container.decode(stream)
    index = 0
    while True:
        try:
            frame = next(frames, None)
        except Exception as exc:  # av.error.* (ValueError / OSError subclasses)
            where = f"after frame {index - 1}" if index else "at its first frame"
            raise ValueError(f"path: {path!r} cannot be decoded {where} (a damaged or "
                             f"truncated file?): {exc}") from None
        if frame is None:
            return
        yield index, frame
        index += 1


class VideoInfo(TypedDict):
    fps: float
    frames: int
    width: int
    height: int
    duration: float
    audio: bool


@node("video.info", extra="video", requires=("av",))
def info(path: str) -> VideoInfo:
    """A video's frame rate, frame count (as the container declares it), size (as displayed:
    a portrait video's stored with a rotation is taller than wide), duration in seconds and
    whether it has audio. Link ``fps`` to ``video.save`` to keep the source's rate."""
    container, stream = open_video("path", path)
    with container:
        fps = stream_fps(stream)
        n = frame_count(stream, container)
        if container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = n / fps if fps else 0.0
        width, height = int(stream.width), int(stream.height)
        try:  # the display rotation is on the frames: the first one says (as video.frames turns)
            first = next(container.decode(stream), None)
        except Exception:  # a damaged first frame: video.frames says so
            first = None
        if first is not None and _quarter_turns(first) % 2:
            width, height = height, width
        return {"fps": fps, "frames": n, "width": width, "height": height,
                "duration": float(duration), "audio": bool(container.streams.audio)}


def as_fraction(fps: float) -> Fraction:
    """A frame rate as a fraction (29.97 -> 30000/1001) for the encoder's time base."""
    return Fraction(fps).limit_denominator(1001)
