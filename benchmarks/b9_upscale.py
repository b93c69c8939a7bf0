"""B9 upscaling: image.upscale and video nodes vs plain onnxruntime / PyAV loops, same run.

Model: ``samples.model(scale=2)`` (the tiny deterministic ONNX upscaler). Measured:

1. images: ``--n`` synthetic 512x384 images tiled at 128 (overlap 16) -- chainlib
   (``Runner(workers=1)``; intra-op threads = cores) vs a plain loop calling ``session.run`` on
   the same tiles (float conversion, run, uint8 paste; no blending), then workers=1 vs workers=2
   with the intra-op threads split (cores // workers). Goal: overhead <= 3 %.
2. memory: peak RSS of a fresh process upscaling one ``--size``² image tiled at 256, over its RSS
   before the image existed (imports and model loaded). Goal: <= 3x (input + output bytes).
3. video: frames/s for decode -> upscale -> encode (H.264, same CRF) of a synthetic 320x240 clip,
   chainlib (video.frames -> image.upscale -> video.save, whole-frame tiles) vs a plain PyAV +
   onnxruntime loop. Goal: overhead <= 5 %.

    python benchmarks/b9_upscale.py [--n 12] [--repeat 5] [--size 4096] [--frames 120]
    python benchmarks/b9_upscale.py --quick      # smaller sizes, a fast sanity run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import chainlib as cl
from chainlib import samples
from chainlib.nodes.upscale.model import SESSIONS, cpu_count, threads_for
from chainlib.nodes.upscale.tiles import grid

TILE, OVERLAP = 128, 16


def make_image(i: int, h: int, w: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(100 + i)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.dstack([x / w, y / h, 0.5 + 0.5 * np.sin((x + y) / 23)]) * 220
    return np.clip(base + rng.integers(0, 35, (h, w, 3)), 0, 255).astype(np.uint8)


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[float, float]]:
    """Best wall time and best CPU time (all threads of this process) of each function over
    ``repeat`` rounds, the functions taking turns (so load from elsewhere on the machine hits
    them alike). CPU time is the steadier figure on a shared machine."""
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - t, time.process_time() - c))
    return {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in times.items()}


# -- 1. images -------------------------------------------------------------------------------


def plain_images(model: str, images: list[np.ndarray[Any, Any]], threads: int) -> None:
    session, info = SESSIONS.session(model, threads)
    s = info.scale
    for image in images:
        h, w = image.shape[:2]
        g = grid(h, w, (TILE, TILE), OVERLAP)
        out = np.empty((h * s, w * s, 3), np.uint8)
        for y0, y1 in g.rows:
            for x0, x1 in g.cols:
                x = np.ascontiguousarray(image[y0:y1, x0:x1].transpose(2, 0, 1), np.float32)
                x *= np.float32(1 / 255)
                y = session.run([info.output_name], {info.input_name: x[None]})[0][0]
                u8 = np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)
                out[y0 * s : y1 * s, x0 * s : x1 * s] = u8


def chainlib_images(model: str, images: list[np.ndarray[Any, Any]], workers: int) -> None:
    chain = cl.Chain()
    src = chain.add("core.items", items=images)
    chain.add("image.upscale", image=src, model=model, tile=TILE, overlap=OVERLAP)
    run = cl.Runner(chain, workers=workers)
    run.start()
    s = run.wait(3600)
    assert s.state == "completed" and s.done == len(images), s


def bench_images(model: str, n: int, repeat: int) -> dict[str, float]:
    images = [make_image(i, 384, 512) for i in range(n)]
    cores = cpu_count()
    chainlib_images(model, images[:1], 1)  # load the sessions outside the timing
    chainlib_images(model, images[:2], 2)
    t = interleaved({"plain": lambda: plain_images(model, images, threads_for(1)),
                     "w1": lambda: chainlib_images(model, images, 1),
                     "w2": lambda: chainlib_images(model, images, 2)}, repeat)
    (plain, plain_cpu), (w1, w1_cpu), (w2, _) = t["plain"], t["w1"], t["w2"]
    return {"cores": cores, "plain_s": plain, "w1_s": w1, "w2_s": w2,
            "overhead_w1": w1 / plain - 1, "overhead_w1_cpu": w1_cpu / plain_cpu - 1,
            "w2_vs_w1": w1 / w2, "n": n}


# -- 2. memory ---------------------------------------------------------------------------------

_RSS_CHILD = """
import json, sys
import numpy as np
from chainlib.nodes.upscale import upscale
from chainlib.nodes.upscale.model import SESSIONS
model, size = sys.argv[1], int(sys.argv[2])
def peak():  # VmHWM: ru_maxrss survives exec, and would include the parent's peak
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                if line.startswith("VmHWM:"))
SESSIONS.session(model, 2)
upscale(np.zeros((64, 64, 3), np.uint8), model, tile=256)  # warm the session's arena
base = peak()
rng = np.random.default_rng(0)
image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
out = upscale(image, model, tile=256)
print(json.dumps({"base": base, "peak": peak(), "input": image.nbytes, "output": out.nbytes}))
"""


def bench_memory(model: str, size: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", _RSS_CHILD, model, str(size)],
                          capture_output=True, text=True, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    images = r["input"] + r["output"]
    return {"size": size, "base_mb": r["base"] / 2**20, "peak_mb": r["peak"] / 2**20,
            "images_mb": images / 2**20, "ratio": (r["peak"] - r["base"]) / images}


# -- 3. video ----------------------------------------------------------------------------------


def plain_video(clip: str, model: str, target: str, crf: int) -> int:
    import av

    session, info = SESSIONS.session(model, threads_for(1))
    n = 0
    with av.open(clip) as src, av.open(target, "w") as out:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        stream = out.add_stream("libx264", rate=vin.average_rate)
        stream.width, stream.height = vin.width * info.scale, vin.height * info.scale
        stream.pix_fmt, stream.options = "yuv420p", {"crf": str(crf)}
        for frame in src.decode(vin):
            rgb = frame.to_ndarray(format="rgb24")
            x = np.ascontiguousarray(rgb.transpose(2, 0, 1), np.float32)
            x *= np.float32(1 / 255)
            y = session.run([info.output_name], {info.input_name: x[None]})[0][0]
            u8 = np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)
            new = av.VideoFrame.from_ndarray(np.ascontiguousarray(u8), format="rgb24")
            new.pts = n
            out.mux(stream.encode(new))
            n += 1
        out.mux(stream.encode(None))
    return n


def chainlib_video(clip: str, model: str, target: str, workers: int) -> int:
    chain = cl.Chain()
    src = chain.add("video.frames", path=clip)
    big = chain.add("image.upscale", image=src["image"], model=model, tile=1024)
    chain.add("video.save", images=big, path=target, source=clip, overwrite=True)
    run = cl.Runner(chain, workers=workers)
    run.start()
    s = run.wait(3600)
    assert s.state == "completed", s
    return s.done


def bench_video(model: str, frames: int, repeat: int, tmp: Path) -> dict[str, float]:
    clip = str(samples.video(tmp / "clip.mp4", frames=frames, width=320, height=240,
                             audio=False))
    crf = round(51 * (100 - 65) / 100)  # video.save's default quality
    plain_video(clip, model, str(tmp / "warm.mp4"), crf)
    n = chainlib_video(clip, model, str(tmp / "warm2.mp4"), 1)

    t = interleaved({
        "plain": lambda: plain_video(clip, model, str(tmp / "p.mp4"), crf),
        "w1": lambda: chainlib_video(clip, model, str(tmp / "c1.mp4"), 1),
        "w2": lambda: chainlib_video(clip, model, str(tmp / "c2.mp4"), 2)}, repeat)
    (p1, p1_cpu), (c1, c1_cpu), (c2, _) = t["plain"], t["w1"], t["w2"]
    return {"frames": n, "plain_fps": n / p1, "w1_fps": n / c1, "w2_fps": n / c2,
            "overhead_w1": c1 / p1 - 1, "overhead_w1_cpu": c1_cpu / p1_cpu - 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeat, args.size, args.frames = 4, 1, 1024, 48
    with tempfile.TemporaryDirectory(prefix="chainlib-b9-") as d:
        tmp = Path(d)
        model = str(samples.model(tmp / "x2.onnx", scale=2))
        print(f"cores: {cpu_count()}  onnxruntime threads: workers=1 -> {threads_for(1)}, "
              f"workers=2 -> {threads_for(2)} each", flush=True)
        im = bench_images(model, args.n, args.repeat)
        print(f"images ({im['n']} x 512x384, tiles {TILE}/{OVERLAP}): plain loop "
              f"{im['plain_s']:.3f} s, chainlib workers=1 {im['w1_s']:.3f} s "
              f"(overhead {im['overhead_w1']:+.1%}, CPU time {im['overhead_w1_cpu']:+.1%}), "
              f"workers=2 {im['w2_s']:.3f} s "
              f"({im['w2_vs_w1']:.2f}x workers=1); best: workers="
              f"{1 if im['w1_s'] <= im['w2_s'] else 2}", flush=True)
        mem = bench_memory(model, args.size)
        print(f"memory ({mem['size']}^2 tiled at 256): peak RSS {mem['peak_mb']:.0f} MB, "
              f"before the image {mem['base_mb']:.0f} MB; growth = {mem['ratio']:.2f}x "
              f"(input + output = {mem['images_mb']:.0f} MB)", flush=True)
        vid = bench_video(model, args.frames, args.repeat, tmp)
        print(f"video ({vid['frames']} frames 320x240 -> 640x480): plain PyAV+onnxruntime "
              f"{vid['plain_fps']:.1f} fps, chainlib workers=1 {vid['w1_fps']:.1f} fps "
              f"(overhead {vid['overhead_w1']:+.1%}, CPU time {vid['overhead_w1_cpu']:+.1%}), "
              f"workers=2 {vid['w2_fps']:.1f} fps",
              flush=True)


if __name__ == "__main__":
    main()
