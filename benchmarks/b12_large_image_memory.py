"""B12: peak RSS of one worker on one large image (issue 10, bounded memory).

A 13000x13000 RGB PNG of zeros (about 0.49 MB on disk, 507 MB decoded) is read by itself and
run through ``load_folder -> resize(width=1024) -> save`` (one worker), each in a fresh process.
Prints each process's peak RSS, the same process's RSS before the image (the interpreter and
imports), and the growth over that baseline as a multiple of the decoded size (goal <= 2).
With ``--workers 2 --max-memory M`` (optional) it runs two such images at once.

    PYTHONPATH=. python benchmarks/b12_large_image_memory.py [--side 13000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys
import psutil
import chainlib as cl
from chainlib.nodes.image.convert import read_image
mode, src, out, workers, budget = sys.argv[1:6]
before = psutil.Process().memory_info().rss
if mode == "read":
    a = read_image(src + "/big0.png")
    shape = a.shape
    del a
else:
    chain = cl.Chain()
    f = chain.add("image.load_folder", folder=src)
    r = chain.add("image.resize", image=f["image"], width=1024)
    chain.add("image.save", image=r, folder=out, name=f["name"])
    kw = {"max_memory": int(budget)} if budget != "0" else {}
    s = cl.Runner(chain, workers=int(workers), **kw)
    s.start()
    st = s.wait()
    assert st.state == "completed" and st.failed == 0, st
    shape = None
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would include this script's
# own peak (it made the 507 MB picture)
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(json.dumps({"before": before, "peak": peak}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=13000)
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--max-memory", type=int, default=0, help="bytes (0: the default budget)")
    args = ap.parse_args()
    from PIL import Image

    decoded = args.side * args.side * 3
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        big = Image.new("RGB", (args.side, args.side))
        big.save(src / "big0.png", compress_level=9)
        del big
        for i in range(1, args.images):
            (src / f"big{i}.png").write_bytes((src / "big0.png").read_bytes())
        size = (src / "big0.png").stat().st_size
        print(f"image: {args.side}x{args.side} RGB PNG, {size / 2**20:.2f} MB on disk, "
              f"{decoded / 2**20:.0f} MB decoded; {args.images} image(s), "
              f"{args.workers} worker(s)")
        for mode in ("read", "chain"):
            res = subprocess.run(
                [sys.executable, "-c", CHILD, mode, str(src), str(Path(tmp) / f"out-{mode}"),
                 str(args.workers), str(args.max_memory)],
                capture_output=True, text=True, check=False)
            if res.returncode:
                print(res.stderr)
                raise SystemExit(1)
            d = json.loads(res.stdout.strip().splitlines()[-1])
            grow = d["peak"] - d["before"]
            print(f"{mode:6s} peak RSS {d['peak'] / 2**20:7.0f} MB, baseline "
                  f"{d['before'] / 2**20:5.0f} MB, growth {grow / 2**20:6.0f} MB = "
                  f"{grow / decoded:.2f} x decoded size (goal <= 2 x {args.images}"
                  f" image(s) in flight)")


if __name__ == "__main__":
    main()
