"""Run-level fault cases through the command line (issue 10), shared by ``tests/test_faults.py``
(which asserts on each) and ``benchmarks/b11_fault_table.py`` (which prints the table).

Each case builds input and output folders under ``root``, runs ``python -m chainlib`` one or more
times under a fault, and returns a :class:`Outcome`: how many inputs, how many were **lost** (an
input without exactly one valid output at the end, or an item the run counted nowhere) and how
many files that were not chainlib's were **overwritten** (hashed before and after), plus the
facts the test asserts on. Inputs are small random PNGs; the chain copies each through
``test.slow`` (tests/cli_nodes.py) into ``out`` as PNG, so a valid output has the input's pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TEMP = re.compile(r"^\.chainlib-tmp-[0-9a-f]{16}\.part$")
SUMMARY = re.compile(r"^(completed|completed with failures|run failed|stopped by the user): "
                     r"(\d+) done, (?:\d+ of them already complete \(skipped\), )?(\d+) failed"
                     r"(?:, (\d+) not run)? \(of (\d+) items\)", re.M)


@dataclass
class Outcome:
    case: str
    fault: str
    inputs: int
    lost: int
    overwritten: int
    command: str
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), str(ROOT),
                                                     e.get("PYTHONPATH")]))
    e.pop("CHAINLIB_TEST_DELAY", None)
    e.pop("CHAINLIB_TEST_MARKS", None)
    e.update(extra or {})
    return e


def cli_args(command: str, *args: object) -> list[str]:
    """``python -m chainlib COMMAND --import cli_nodes ARGS`` (``test.slow`` is there)."""
    return [sys.executable, "-m", "chainlib", command, "--import", "cli_nodes", *map(str, args)]


def cli(command: str, *args: object, delay: float = 0.0, prefix: tuple[str, ...] = (),
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *cli_args(command, *args)], capture_output=True, text=True,
                          env=env({"CHAINLIB_TEST_DELAY": str(delay)}), timeout=timeout,
                          check=False)


def write_chain(path: Path, inputs: Path, out: Path, *, fmt: str = "png",
                template: str = "{name}") -> Path:
    def link(node: str, output: str) -> dict[str, object]:
        return {"link": {"node": node, "output": output}}

    nodes = [
        {"id": "load", "type": "image.load_folder", "inputs": {"folder": {"value": str(inputs)}}},
        {"id": "slow", "type": "test.slow",
         "inputs": {"image": link("load", "image"), "label": link("load", "path")}},
        {"id": "save", "type": "image.save",
         "inputs": {"image": {"link": {"node": "slow"}}, "folder": {"value": str(out)},
                    "name": link("load", "name"), "format": {"value": fmt},
                    "template": {"value": template}}},
    ]
    path.write_text(json.dumps({"format": "chainlib.chain", "version": 1, "name": "faults",
                                "nodes": nodes}))
    return path


def make_inputs(folder: Path, names: list[str], seed: int, size: int = 12) -> dict[str, bytes]:
    """Random RGB PNGs; returns name -> pixel bytes (what a valid output holds)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = {}
    for name in names:
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / name, format="PNG" if name.endswith(".png") else
                                  "JPEG" if name.endswith(".jpg") else None)
        with Image.open(folder / name) as im:
            pixels[name] = np.asarray(im.convert("RGB")).tobytes()
    return pixels


def hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def valid_output(path: Path, pixels: bytes) -> bool:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")).tobytes() == pixels
    except (OSError, ValueError):
        return False


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if TEMP.match(p.name))


def counts(proc: subprocess.CompletedProcess[str]) -> tuple[str, int, int, int, int] | None:
    """(headline, done, failed, not run, total) from the summary line."""
    m = SUMMARY.search(proc.stdout)
    if m is None:
        return None
    return m[1], int(m[2]), int(m[3]), int(m[4] or 0), int(m[5])


def accounted(proc: subprocess.CompletedProcess[str]) -> bool:
    """Each item counted exactly once: done + failed + not run == total (and no traceback)."""
    c = counts(proc)
    return c is not None and c[1] + c[2] + c[3] == c[4] and "Traceback" not in proc.stderr


def lost_outputs(out: Path, pixels: Mapping[str, bytes], ext: str = ".png") -> int:
    lost = 0
    for name, px in pixels.items():
        matches = [p for p in out.glob(Path(name).stem + ".*")
                   if not p.name.startswith(".")] if out.exists() else []
        target = out / (Path(name).stem + ext)
        if len(matches) != 1 or not valid_output(target, px):
            lost += 1
    return lost


def manifest_consistent(out: Path) -> bool:
    path = out / ".chainlib-manifest.jsonl"
    if not path.exists():
        return True
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a truncated last line (a kill mid-append) is ignored by readers
        if not all(os.path.exists(p) for p in rec.get("outputs", [])):
            return False
    return True


# -- the cases ----------------------------------------------------------------------------------


def sigkill_then_resume(root: Path, kills: int = 5, seed: int = 10) -> Outcome:
    """SIGKILL at random moments, ``kills`` times, then ``--resume`` to the end."""
    names = [f"img{i:02d}.png" for i in range(16)]
    pixels = make_inputs(root / "in", names, seed)
    out = root / "out"
    out.mkdir()
    (out / "user notes.txt").write_text("the user's file")
    theirs = hashes(out)
    chain = write_chain(root / "chain.json", root / "in", out)
    rng = random.Random(seed)
    o = Outcome("sigkill", f"SIGKILL at random moments x{kills}, then --resume", len(names), 0, 0,
                f"chainlib run chain.json --workers 2 --resume (killed {kills}x), then --resume")
    for k in range(kills):
        # killed at a random moment once items are in flight (the first item's mark appears),
        # so every kill lands mid-run whatever the machine's speed
        marks = root / f"marks{k}"
        marks.mkdir()
        proc = subprocess.Popen(cli_args("run", chain, "--workers", 2, "--resume",
                                         "--no-progress"),
                                env=env({"CHAINLIB_TEST_DELAY": "0.1",
                                         "CHAINLIB_TEST_MARKS": str(marks)}),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and not any(marks.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.4))
        running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        o.notes.append(f"kill {k + 1}: {'mid-run' if running else 'after the end'}, "
                       f"{len(list(out.glob('img*.png')))} outputs")
    final = cli("run", chain, "--workers", 2, "--resume", "--no-progress")
    o.runs.append(final)
    o.lost = lost_outputs(out, pixels) + (0 if final.returncode == 0 and accounted(final) else 1)
    o.overwritten = sum(hashes(out).get(k) != v for k, v in theirs.items())
    o.notes.append(f"temp files left: {len(temps(out))}; manifest consistent: "
                   f"{manifest_consistent(out)}")
    return o


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path | None]:
    """A small tmpfs at ``where`` (root only); None where it cannot be mounted."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield None
        return
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                         capture_output=True, text=True, check=False)
    if res.returncode:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def disk_full_then_resume(root: Path) -> Outcome | None:
    """The output folder on a 256 KB tmpfs: the disk fills while outputs and records are
    written; then more room (remount) and ``--resume``."""
    names = [f"img{i:02d}.png" for i in range(24)]
    pixels = make_inputs(root / "in", names, 3, size=64)  # ~12 KB each as PNG: 24 > 256 KB
    with tmpfs(root / "small", "256k") as mnt:
        if mnt is None:
            return None
        out = mnt / "out"
        chain = write_chain(root / "chain.json", root / "in", out)
        o = Outcome("disk full", "output folder on a 256 KB tmpfs (ENOSPC), then --resume",
                    len(names), 0, 0, "chainlib run chain.json --workers 2 --on-error skip")
        full = cli("run", chain, "--workers", 2, "--no-progress")
        o.runs.append(full)
        if not accounted(full) or full.returncode == 0:
            o.lost += 1
        o.notes.append(f"temp files left after the full disk: {len(temps(out))}")
        subprocess.run(["mount", "-o", "remount,size=4m", str(mnt)], check=True)
        again = cli("run", chain, "--workers", 2, "--resume", "--no-progress")
        o.runs.append(again)
        o.lost += lost_outputs(out, pixels) + (0 if again.returncode == 0 else 1)
        o.notes.append(f"temp files left at the end: {len(temps(out))}")
        return o


def read_only_record(root: Path) -> Outcome | None:
    """The manifest read-only, capabilities dropped (``setpriv``), two workers."""
    if shutil.which("setpriv") is None:
        return None
    names = [f"img{i:02d}.png" for i in range(6)]
    pixels = make_inputs(root / "in", names, 4)
    out = root / "out"
    out.mkdir()
    manifest = out / ".chainlib-manifest.jsonl"
    manifest.write_text("")
    manifest.chmod(0o444)
    chain = write_chain(root / "chain.json", root / "in", out)
    o = Outcome("read-only record", "read-only manifest, capabilities dropped (setpriv), then "
                "writable and --resume", len(names), 0, 0,
                "setpriv --inh-caps=-all --bounding-set=-all chainlib run chain.json --workers 2")
    prefix = ("setpriv", "--inh-caps=-all", "--bounding-set=-all")
    ro = cli("run", chain, "--workers", 2, "--no-progress", prefix=prefix)
    o.runs.append(ro)
    if not accounted(ro) or ro.returncode == 0:
        o.lost += 1
    manifest.chmod(0o644)
    again = cli("run", chain, "--workers", 2, "--resume", "--no-progress")
    o.runs.append(again)
    o.lost += lost_outputs(out, pixels) + (0 if again.returncode == 0 else 1)
    return o


def concurrent_runs(root: Path) -> Outcome:
    """A second run into a folder a first run holds: refused at once (exit 2), naming it. The
    first is then stopped (Ctrl-C) and a third run resumes it to the end."""
    names = [f"img{i:02d}.png" for i in range(4)]
    pixels = make_inputs(root / "in", names, 5)
    out = root / "out"
    marks = root / "marks"
    marks.mkdir()
    chain = write_chain(root / "chain.json", root / "in", out)
    o = Outcome("concurrent runs", "a second --resume run into the same folder meanwhile",
                len(names), 0, 0, "two `chainlib run chain.json --resume` at once")
    # the first run's items wait (checkpointing) until it is stopped: it surely holds the lock
    first = subprocess.Popen(cli_args("run", chain, "--resume", "--workers", 4, "--no-progress"),
                             env=env({"CHAINLIB_TEST_DELAY": "60",
                                      "CHAINLIB_TEST_MARKS": str(marks)}),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(marks.iterdir()) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    second = cli("run", chain, "--resume", "--no-progress")
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=60)
    third = cli("run", chain, "--resume", "--no-progress")
    o.runs += [subprocess.CompletedProcess(first.args, first.returncode, stdout, stderr), second,
               third]
    o.notes.append(f"first pid {first.pid}")
    o.lost = lost_outputs(out, pixels) + (0 if third.returncode == 0 else 1)
    o.lost += 0 if accounted(o.runs[0]) else 1
    return o


def collisions(root: Path) -> Outcome:
    """photo.png + photo.jpg both saved as photo.png: an error naming both, nothing written,
    plain or resumed."""
    make_inputs(root / "in", ["photo.png", "photo.jpg", "other.png"], 6)
    out = root / "out"
    chain = write_chain(root / "chain.json", root / "in", out)
    o = Outcome("collision", "photo.png + photo.jpg -> photo.png (plain, then --resume)", 3,
                0, 0, "chainlib run chain.json [--resume]")
    o.runs += [cli("run", chain, "--no-progress"), cli("run", chain, "--resume", "--no-progress"),
               cli("validate", chain)]
    written = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")] \
        if out.exists() else []
    o.notes.append(f"files written: {len(written)}")
    return o


def in_place(root: Path) -> Outcome:
    """Output folder == input folder: never an input written over, never an output taken as an
    input, run after run."""
    folder = root / "photos"
    pixels = make_inputs(folder, ["a.jpg", "b.png", "c.png"], 7)
    (folder / "notes.txt").write_text("the user's")
    before = hashes(folder)
    over = write_chain(root / "over.json", folder, folder, fmt="jpeg")  # a.jpg -> a.jpg
    small = write_chain(root / "small.json", folder, folder, template="{name}_small")
    o = Outcome("in place", "output folder = input folder (a.jpg -> a.jpg; then *_small.png "
                "x3 runs)", 3, 0, 0, "chainlib run over.json; chainlib run small.json "
                "[--resume]")
    o.runs += [cli("run", over, "--no-progress"), cli("run", small, "--no-progress"),
               cli("run", small, "--resume", "--no-progress"), cli("run", small, "--no-progress")]
    o.overwritten = sum(hashes(folder).get(k) != v for k, v in before.items())
    for name, px in pixels.items():
        if not valid_output(folder / f"{Path(name).stem}_small.png", px):
            o.lost += 1
    o.notes.append("outputs: " + ", ".join(sorted(p.name for p in folder.iterdir()
                                                  if "_small" in p.name)))
    return o


def not_ours(root: Path) -> Outcome:
    """A first-ever --resume into a folder holding an unrelated same-named file."""
    pixels = make_inputs(root / "in", ["a.png", "b.png"], 8)
    out = root / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"the user's own a.png")
    before = hashes(out)
    chain = write_chain(root / "chain.json", root / "in", out)
    o = Outcome("not ours", "first-ever --resume; out/a.png is the user's file", 2, 0, 0,
                "chainlib run chain.json --resume")
    o.runs.append(cli("run", chain, "--resume", "--no-progress"))
    o.overwritten = sum(hashes(out).get(k) != v for k, v in before.items())
    o.lost = 0 if valid_output(out / "b.png", pixels["b.png"]) else 1
    o.lost += 0 if accounted(o.runs[0]) else 1
    return o


HOSTILE = "evil\x1b[2J\ncompleted: 999 done, 0 failed (of 999 items)"


def hostile_names(root: Path) -> Outcome:
    """ANSI escapes and a newline in a failing file's name; a 250-character name."""
    folder = root / "in"
    pixels = make_inputs(folder, ["x" * 246 + ".png", "ok.png"], 9)
    (folder / (HOSTILE + ".png")).write_bytes(b"not a png")  # fails, so its label is printed
    out = root / "out"
    chain = write_chain(root / "chain.json", folder, out)
    o = Outcome("hostile names", "ANSI escape + newline in a failing name; 250-char name", 3,
                0, 0, "chainlib run chain.json")
    o.runs.append(cli("run", chain, "--no-progress"))
    o.lost = lost_outputs(out, pixels) + (0 if accounted(o.runs[0]) else 1)
    return o


CASES: list[tuple[str, Callable[[Path], Outcome | None]]] = [
    ("sigkill", sigkill_then_resume), ("disk full", disk_full_then_resume),
    ("read-only record", read_only_record), ("concurrent runs", concurrent_runs),
    ("collision", collisions), ("in place", in_place), ("not ours", not_ours),
    ("hostile names", hostile_names),
]


def safe_text(text: str) -> str:
    """Terminal-safe text of a run's output (for printing it in the table script)."""
    return text.encode("unicode_escape").decode("ascii").replace("\\n", "\n")
