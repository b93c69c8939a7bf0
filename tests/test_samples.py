"""Tests of the generated sample images (``chainlib.samples``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from chainlib import samples
from chainlib.nodes import image as im


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_deterministic_and_byte_identical(tmp_path: Path) -> None:
    a = samples.folder(tmp_path / "a")
    b = samples.folder(tmp_path / "b")
    assert a == tmp_path / "a"
    assert _files(a) == _files(b)
    assert sorted(_files(a)) == samples.names()


def test_count_and_variety(tmp_path: Path) -> None:
    root = samples.folder(tmp_path)
    names = samples.names()
    assert len(names) >= 12
    assert any(n.startswith("more/") for n in names)
    assert {Path(n).suffix for n in names} >= {".png", ".jpg"}
    modes = set()
    for name in names:
        out = im.load(str(root / name))
        image = out["image"]
        assert out["name"] == Path(name).stem
        assert image.dtype == np.uint8
        assert 256 <= max(image.shape[:2]) <= 640
        assert image.std() > 5, name  # not blank
        modes.add(im.info(image)["mode"])
    assert {"L", "RGB", "RGBA"} <= modes


def test_idempotent_and_repairs(tmp_path: Path) -> None:
    root = samples.folder(tmp_path)
    target = root / "gradient.png"
    before = target.stat().st_mtime_ns
    samples.folder(tmp_path)
    assert target.stat().st_mtime_ns == before  # right content: left alone
    good = target.read_bytes()
    target.write_bytes(b"damaged")
    (root / "mine.txt").write_text("user file")
    samples.folder(tmp_path)
    assert target.read_bytes() == good
    assert (root / "mine.txt").read_text() == "user file"
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name]


def test_corrupt_flag(tmp_path: Path) -> None:
    root = samples.folder(tmp_path, include_corrupt=True)
    assert samples.BROKEN in samples.names(include_corrupt=True)
    assert samples.BROKEN not in samples.names()
    broken = root / samples.BROKEN
    assert broken.is_file()
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        im.load(str(broken))
    items = list(im.load_folder(str(root), recursive=True))
    assert len(items) == len(samples.names(include_corrupt=True))
    samples.folder(tmp_path)  # without the flag, the corrupt file it wrote goes away
    assert not broken.exists()


def test_default_folder_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINLIB_SAMPLES", str(tmp_path / "cache"))
    assert samples.folder() == tmp_path / "cache"
    assert (tmp_path / "cache" / "more").is_dir()


def test_generation_is_fast(tmp_path: Path) -> None:
    samples.folder(tmp_path / "warm")
    t = time.perf_counter()
    samples.folder(tmp_path / "timed")
    assert time.perf_counter() - t < 2.0  # < 1 s normally; slack for loaded CI machines
