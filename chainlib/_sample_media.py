"""Builders for the sample model and video (see :func:`chainlib.samples.model` and ``video``).

Both are deterministic: the same bytes on every run with the same onnx / PyAV build.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .nodes._extras import require

# -- the model ---------------------------------------------------------------------------------

HIDDEN = 8
"""Hidden channels of the sample model's residual branch (keeps it fast on a CPU)."""


def _bilinear_kernel(scale: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """(3*s*s, 3, 3, 3) weights: each output sub-pixel interpolated from its 3x3 neighbourhood,
    laid out for DepthToSpace (CRD: channel c*s*s + dy*s + dx)."""

    def taps(k: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        o = (k + 0.5) / scale - 0.5  # sub-pixel offset from the input pixel's centre
        t = np.zeros(3, np.float32)
        if o >= 0:
            t[1], t[2] = 1 - o, o
        else:
            t[0], t[1] = -o, 1 + o
        return t

    w = np.zeros((3 * scale * scale, 3, 3, 3), np.float32)
    for c in range(3):
        for dy in range(scale):
            for dx in range(scale):
                w[c * scale * scale + dy * scale + dx, c] = np.outer(taps(dy), taps(dx))
    return w


def model_bytes(scale: int) -> bytes:
    """An ESRGAN-shaped ONNX upscaler: float32 NCHW RGB 0..1 in, ``scale`` times larger out.

    Bilinear interpolation plus a small seeded-random residual branch (conv-relu-conv), then
    DepthToSpace, as sub-pixel super-resolution networks do; edge padding, so borders keep their
    colour. Receptive field: 2 input pixels each way.
    """
    onnx = require("onnx", "models")
    helper, tp = onnx.helper, onnx.TensorProto
    rng = np.random.default_rng(1000 + scale)
    out_ch = 3 * scale * scale
    weights = {
        "w_skip": _bilinear_kernel(scale),
        "w1": (rng.standard_normal((HIDDEN, 3, 3, 3)) * 0.2).astype(np.float32),
        "b1": (rng.standard_normal(HIDDEN) * 0.05).astype(np.float32),
        "w2": (rng.standard_normal((out_ch, HIDDEN, 3, 3)) * 0.01).astype(np.float32),
        "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
        "lo": np.array(0.0, np.float32),
        "hi": np.array(1.0, np.float32),
    }
    inits = [onnx.numpy_helper.from_array(v, k) for k, v in weights.items()]
    nodes = [
        helper.make_node("Pad", ["input", "pads"], ["x1"], mode="edge"),
        helper.make_node("Conv", ["x1", "w_skip"], ["skip"], kernel_shape=[3, 3]),
        helper.make_node("Conv", ["x1", "w1", "b1"], ["h"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Pad", ["hr", "pads"], ["h1"], mode="edge"),
        helper.make_node("Conv", ["h1", "w2"], ["res"], kernel_shape=[3, 3]),
        helper.make_node("Add", ["skip", "res"], ["sum"]),
        helper.make_node("DepthToSpace", ["sum"], ["big"], blocksize=scale, mode="CRD"),
        helper.make_node("Clip", ["big", "lo", "hi"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        f"chainlib-sample-x{scale}",
        [helper.make_tensor_value_info("input", tp.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output", tp.FLOAT, ["batch", 3, "out_height",
                                                            "out_width"])],
        inits,
    )
    model = helper.make_model(graph, producer_name="chainlib.samples", producer_version="1",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime since 1.10
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


# -- the video ---------------------------------------------------------------------------------


def _frame(i: int, texture: np.ndarray[Any, np.dtype[np.uint8]], width: int, height: int,
           frames: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Frame ``i``: a scrolling texture, a ball crossing the picture, and the frame number."""
    shift = (i * 3) % (texture.shape[1] - width)
    im = Image.fromarray(np.ascontiguousarray(texture[:, shift : shift + width]), "RGB")
    d = ImageDraw.Draw(im)
    t = i / max(frames - 1, 1)
    cx, cy = 12 + t * (width - 24), height / 2 + (height / 3) * np.sin(t * 2 * np.pi)
    d.ellipse((cx - 10, cy - 10, cx + 10, cy + 10), fill=(250, 60, 40), outline=(20, 20, 20))
    d.rectangle((2, 2, 40, 14), fill=(0, 0, 0))
    d.text((5, 3), f"{i:04d}", fill=(255, 255, 255))
    return np.asarray(im)


def video_bytes(frames: int, width: int, height: int, fps: int, audio: bool) -> bytes:
    """An MP4 (H.264, or MPEG-4 Part 2 without libx264) of ``frames`` synthetic frames, with a
    440 Hz AAC tone when ``audio``."""
    from ._pixels import colormap as _colormap
    from ._pixels import value_noise as _value_noise

    av = require("av", "video")
    noise = _value_noise(width * 3, height, 61, octaves=5)
    stops = [(0, (20, 60, 140)), (0.45, (70, 140, 210)), (0.5, (220, 200, 150)),
             (0.6, (60, 150, 60)), (1, (240, 240, 240))]  # fmt: skip
    texture = _colormap(noise, stops)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.codec_context.thread_count = 1  # one thread: byte-identical output
        if codec == "libx264":
            v.options = {"crf": "16", "preset": "medium"}
        a = out.add_stream("aac", rate=48000, layout="mono") if audio else None
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_frame(i, texture, width, height, frames),
                                               format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None:
            rate, chunk = 48000, 1024
            total = frames * rate // fps
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
            for start in range(0, total, chunk):
                samples = tone[start : start + chunk]
                af = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = rate, start, Fraction(1, rate)
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return buf.getvalue()
