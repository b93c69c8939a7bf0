"""ONNX super-resolution models: checking a file, and one shared session per model per process.

The expected export shape (what ESRGAN-family exports use): one float32 (or float16) input of rank
4, NCHW, RGB (3 channels) or grayscale (1 channel) in 0..1; the first output has the same layout,
``scale`` times larger. The scale is read from static shapes when both are fixed, otherwise found by
a probe run on a small input.

Sessions are cached by file (path, size, modification time) and intra-op thread count: ONNX
Runtime's ``InferenceSession.run`` is thread-safe, so the workers of a run share one session and
each run call uses ``cores // workers`` threads.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._extras import require

PROBE = 32
"""Side of the probe input (a multiple of 8, 16 and 32, which windowed models often need)."""

_ALIGNMENTS = ((1, 31), (2, 34), (4, 36), (8, 40), (16, 48), (32, 64))
"""Size multiples a model may need (pixel-unshuffle: 2 or 4 as in Real-ESRGAN x2/x1 exports;
windowed attention: 8, 16, 32), each with a probe side it divides and the next one does not."""

_GPU_PROVIDERS = (
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "OpenVINOExecutionProvider",
)
"""Execution providers used when onnxruntime offers them, best first. TensorRT is left out (its
engine build takes minutes per shape); name it in ``CHAINLIB_ONNX_PROVIDERS`` to use it."""

_MAX_SESSIONS = 4
_TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")


class ModelError(ValueError):
    """A model file that cannot be used; the message starts with ``model:`` and names the file."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"model: {path!r} {problem}")
        self.path = path


@dataclass(frozen=True)
class ModelInfo:
    """What the tiling needs to know about a model."""

    path: str
    scale: int
    channels: int
    """1 (grayscale model) or 3 (RGB model)."""
    input_name: str
    output_name: str
    float16: bool
    fixed: tuple[int, int] | None
    """The input's (height, width) when the model only takes that size."""
    align: int = 1
    """A dynamic-size model's input sides must be multiples of this (patches are padded)."""


def ort() -> Any:
    """The onnxruntime module (a ChainError naming the pip command if it is missing)."""
    return require("onnxruntime", "models")


def providers() -> list[str]:
    """The execution providers sessions use: ``$CHAINLIB_ONNX_PROVIDERS`` (comma-separated) if
    set, else the available accelerators in preference order, then the CPU."""
    available = list(ort().get_available_providers())
    wanted = os.environ.get("CHAINLIB_ONNX_PROVIDERS", "")
    if wanted.strip():
        chosen = [p.strip() for p in wanted.split(",") if p.strip() in available]
    else:
        chosen = [p for p in _GPU_PROVIDERS if p in available]
    return [*chosen, "CPUExecutionProvider"] if "CPUExecutionProvider" not in chosen else chosen


def uses_accelerator(session: Any) -> bool:
    return any(p != "CPUExecutionProvider" for p in session.get_providers())


def cpu_count() -> int:
    """Cores this process may use (its CPU affinity where the platform tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_for(workers: int) -> int:
    """Intra-op threads per session call so that ``workers`` parallel calls fit the cores."""
    return max(1, cpu_count() // max(1, workers))


class _Sessions:
    """Process-wide cache: (file identity, threads) -> session, plus each file's ModelInfo."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._infos: dict[tuple[Any, ...], ModelInfo] = {}
        self._loading: dict[tuple[Any, ...], threading.Lock] = {}

    def session(self, path: str, threads: int) -> tuple[Any, ModelInfo]:
        """The shared session for ``path`` with ``threads`` intra-op threads, and its info."""
        ident = _identity(path)
        key = (*ident, threads)
        with self._lock:
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:  # two workers asking at once load the model once
            with self._lock:
                session = self._sessions.get(key)
                if session is not None:
                    self._sessions.move_to_end(key)
                    return session, self._infos[ident]
            session = _open(path, threads)
            with self._lock:
                info = self._infos.get(ident)
            if info is None:
                info = _inspect(path, session)
            with self._lock:
                self._sessions[key] = session
                self._infos[ident] = info
                while len(self._sessions) > _MAX_SESSIONS:
                    self._sessions.popitem(last=False)
            return session, info

    def info(self, path: str) -> ModelInfo:
        """Check ``path`` (raises ModelError) and describe it; cached per file version."""
        ident = _identity(path)
        with self._lock:
            info = self._infos.get(ident)
        if info is not None:
            return info
        return self.session(path, 1)[1]

    def cached(self) -> list[tuple[str, int]]:
        """``(model path, intra-op threads)`` of the sessions alive, oldest first."""
        with self._lock:
            return [(key[0], key[3]) for key in self._sessions]

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._infos.clear()


SESSIONS = _Sessions()


def _identity(path: str) -> tuple[str, int, int]:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"model: expected the path of an .onnx file, got {path!r}")
    full = os.path.abspath(os.path.expanduser(os.fspath(path)))
    try:
        st = os.stat(full)
    except FileNotFoundError:
        raise ModelError(os.fspath(path), "does not exist") from None
    except OSError as exc:
        raise ModelError(os.fspath(path), f"cannot be read: {exc.strerror}") from None
    if not os.path.isfile(full):
        raise ModelError(os.fspath(path), "is not a file")
    return full, st.st_size, st.st_mtime_ns


def _open(path: str, threads: int) -> Any:
    rt = ort()
    options = rt.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = rt.ExecutionMode.ORT_SEQUENTIAL
    # fatal only: warnings (unused initializers...) are not ours, and errors reach the user as
    # a ModelError naming the file (or are expected: probing for the sizes a model takes)
    options.log_severity_level = 4
    try:
        return rt.InferenceSession(os.path.expanduser(path), options, providers=providers())
    except Exception as exc:  # onnxruntime raises its own exception types for every cause
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if os.path.splitext(path)[1].lower() in _TORCH_SUFFIXES:
            hint = " (a PyTorch checkpoint: export it to ONNX first, see docs/models.md)"
        raise ModelError(path, f"is not a usable ONNX model{hint}: {first}") from None


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _inspect(path: str, session: Any) -> ModelInfo:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelError(path, f"has {len(inputs)} inputs ({names}); an upscaler has one image "
                         "input (NCHW)")
    inp, out = inputs[0], outputs[0]
    if inp.type not in ("tensor(float)", "tensor(float16)"):
        raise ModelError(path, f"takes {inp.type}; expected float32 or float16 images")
    if len(inp.shape) != 4:
        raise ModelError(path, f"takes rank-{len(inp.shape)} input {inp.shape}; expected an NCHW "
                         "image batch (rank 4)")
    batch, channels, height, width = (_dim(d) for d in inp.shape)
    if channels is None and height is None and width in (1, 3):
        raise ModelError(path, f"takes {inp.shape}: channels last (NHWC), as TensorFlow exports "
                         "do; expected channels first (NCHW: batch, channels, height, width)")
    if channels is None:
        channels = 3
    if channels not in (1, 3):
        raise ModelError(path, f"takes {channels} channels; expected 3 (RGB) or 1 (grayscale)")
    if batch not in (None, 1):
        raise ModelError(path, f"takes a batch of {batch}; expected 1 or a dynamic batch")
    fixed = (height, width) if height is not None and width is not None else None
    if (height is None) != (width is None):
        raise ModelError(path, f"fixes one side of its input only ({inp.shape}); cannot tile")
    float16 = inp.type == "tensor(float16)"
    ph, pw = fixed or (PROBE, PROBE)
    probe = np.zeros((1, channels, ph, pw), np.float16 if float16 else np.float32)
    try:
        result = session.run([out.name], {inp.name: probe})[0]
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(path, f"fails on a {ph}x{pw} input: {first}") from None
    shape = tuple(getattr(result, "shape", ()))
    if len(shape) != 4 or shape[1] != channels or shape[0] != 1:
        raise ModelError(path, f"gives output of shape {shape} for input {probe.shape}; expected "
                         f"(1, {channels}, H*scale, W*scale)")
    sy, ry = divmod(shape[2], ph)
    sx, rx = divmod(shape[3], pw)
    if ry or rx or sy != sx or sy < 1:
        raise ModelError(path, f"gives output of shape {shape} for input {probe.shape}: not an "
                         "upscale by one whole factor")
    align = 1 if fixed else _alignment(session, inp.name, out.name, probe, sy)
    return ModelInfo(os.path.abspath(os.path.expanduser(path)), sy, channels, inp.name, out.name,
                     float16, fixed, align)


def _alignment(session: Any, inp: str, out: str, probe: Any, scale: int) -> int:
    """The smallest size multiple a dynamic-size model takes: the first of ``_ALIGNMENTS``
    whose probe works. Most models take any size (one probe); exports that pixel-unshuffle
    their input (Real-ESRGAN's x2 and x1 models) need even sides or multiples of 4 and fail on
    any other size, so the tiler pads each patch to a multiple (by the edge) and crops."""
    for a, side in _ALIGNMENTS:
        x = np.zeros((*probe.shape[:2], side, side), probe.dtype)
        try:
            shape = tuple(session.run([out], {inp: x})[0].shape)
        except Exception:  # the model rejects this size: try the next multiple
            continue
        if shape[2:] == (side * scale, side * scale):
            return a
    return PROBE
