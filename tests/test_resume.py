"""Resumable, lossless batches: the manifest, ``Runner(resume=True)``, atomic saves, bad inputs."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image as PILImage

import chainlib as cl
from chainlib import samples
from chainlib.manifest import MANIFEST_NAME, Manifest
from tests.conftest import copy_samples, wait_until

N_SAMPLES = len(samples.names())


class Throttle:
    """Holds items inside a checkpointing node until the test hands out permits."""

    def __init__(self) -> None:
        self.permits = threading.Semaphore(0)
        self.open = threading.Event()
        self.entered: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.lock = threading.Lock()

    def allow(self, n: int) -> None:
        for _ in range(n):
            self.permits.release()


@pytest.fixture
def throttle() -> Iterator[Throttle]:
    t = Throttle()

    @cl.node("test.throttle", output="image")
    def throttled(ctx: cl.Context, image: cl.Image, label: str) -> cl.Image:
        with t.lock:
            t.entered[label] += 1
        while not (t.open.is_set() or t.permits.acquire(timeout=0.002)):
            ctx.checkpoint()
        with t.lock:
            t.completed[label] += 1
        return image

    yield t
    t.open.set()


def batch_chain(src_dir: Path, out_dir: Path, *, width: int = 24, throttled: bool = False
                ) -> cl.Chain:
    chain = cl.Chain("batch")
    src = chain.add("image.load_folder", folder=str(src_dir), recursive=True)
    image = src["image"]
    if throttled:
        image = chain.add("test.throttle", image=image, label=src["path"])["image"]
    small = chain.add("image.resize", image=image, width=width)
    chain.add("image.save", image=small, folder=str(out_dir), name=src["name"],
              subfolder=src["subfolder"])
    return chain


def run(chain: cl.Chain, *, workers: int = 2, resume: bool = True,
        on_error: cl.run.runner.OnError = "skip") -> cl.Status:
    runner = cl.Runner(chain, workers=workers, resume=resume, on_error=on_error)
    assert runner.start().accepted
    return runner.wait(30)


def outputs(out: Path) -> list[str]:
    """Every file in the output folder (relative POSIX paths), the manifest excluded."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and not p.name.startswith(".chainlib-"))


def expected_outputs(ext: str = ".png") -> list[str]:
    return sorted(os.path.splitext(n)[0] + ext for n in samples.names())


def manifest_lines(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


def assert_valid_images(out: Path) -> None:
    for rel in outputs(out):
        with PILImage.open(out / rel) as im:
            im.load()


def test_complete_run_writes_one_record_per_input(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = run(batch_chain(inputs, out))
    assert (s.state, s.done, s.failed, s.skipped, s.total) == (
        "completed", N_SAMPLES, 0, 0, N_SAMPLES)
    assert outputs(out) == expected_outputs()
    records = manifest_lines(out)
    assert len(records) == N_SAMPLES
    assert {r["source"] for r in records} == {
        str((inputs / n).resolve()) for n in samples.names()}
    fp = batch_chain(inputs, out).fingerprint()
    for r in records:
        assert r["chain"] == fp
        src = Path(str(r["source"]))
        assert (r["size"], r["mtime_ns"]) == (src.stat().st_size, src.stat().st_mtime_ns)
        assert isinstance(r["outputs"], list) and len(r["outputs"]) == 1
        assert Path(r["outputs"][0]).is_file()
        assert Path(r["outputs"][0]).is_relative_to(out.resolve())


def test_resume_skips_everything_when_complete(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(batch_chain(inputs, out))
    before = {rel: (out / rel).stat().st_mtime_ns for rel in outputs(out)}
    s = run(batch_chain(inputs, out))
    assert (s.state, s.done, s.failed, s.skipped) == ("completed", N_SAMPLES, 0, N_SAMPLES)
    assert {rel: (out / rel).stat().st_mtime_ns for rel in outputs(out)} == before
    assert len(manifest_lines(out)) == N_SAMPLES


def test_resume_of_a_complete_batch_keeps_what_its_collectors_built(
    inputs: Path, tmp_path: Path
) -> None:
    # every item skipped: the contact sheet would get no image (the run failed) and its saved
    # file would be replaced by nothing; the collectors and what follows them do not run
    out = tmp_path / "out"

    def chain() -> tuple[cl.Chain, cl.NodeHandle]:
        c = batch_chain(inputs, out)
        sheet = c.add("image.contact_sheet", images=c.handle("resize"))
        c.add("image.save", image=sheet, folder=str(out), name="sheet", format="png")
        return c, sheet

    first = cl.Runner(chain()[0], workers=2, resume=True)
    first.start()
    assert first.wait(30).state == "completed"
    saved = out / "sheet.png"
    stamp = saved.stat().st_mtime_ns
    c, sheet = chain()
    again = cl.Runner(c, workers=2, resume=True)
    again.start()
    s = again.wait(30)
    assert (s.state, s.done, s.skipped, s.failed) == ("completed", N_SAMPLES, N_SAMPLES, 0)
    assert saved.stat().st_mtime_ns == stamp
    assert s.nodes["contact_sheet"].state == "not_run"
    with pytest.raises(LookupError, match="every item was already complete"):
        again.result(sheet)


def test_resume_of_a_complete_batch_runs_only_collectors_that_rebuild(
    inputs: Path, tmp_path: Path
) -> None:
    calls: list[tuple[str, list[object]]] = []

    @cl.collector("test.rebuilding_names", collect="names", rebuilds=True)
    def rebuilding(names: list[str]) -> int:
        calls.append(("rebuilding", list(names)))
        return len(names)

    @cl.collector("test.plain_names", collect="names")
    def plain(names: list[str]) -> int:
        calls.append(("plain", list(names)))
        return len(names)

    @cl.node("test.after")
    def after(n: int, label: str) -> str:
        calls.append((label, [n]))
        return label

    out = tmp_path / "out"

    def chain() -> cl.Chain:
        c = batch_chain(inputs, out)
        names = c.handle("load_folder")["name"]
        c.add("test.after", n=c.add("test.rebuilding_names", names=names), label="after_r",
              id="after_r")
        c.add("test.after", n=c.add("test.plain_names", names=names), label="after_p",
              id="after_p")
        return c

    first = cl.Runner(chain(), workers=2, resume=True)
    first.start()
    assert first.wait(30).state == "completed"
    assert sorted(label for label, _ in calls) == ["after_p", "after_r", "plain", "rebuilding"]
    calls.clear()
    again = cl.Runner(chain(), workers=2, resume=True)
    again.start()
    s = again.wait(30)
    assert (s.state, s.skipped) == ("completed", N_SAMPLES)
    assert sorted(calls) == [("after_r", [0]), ("rebuilding", [])]
    assert s.nodes["after_r"].state == "done"
    assert (s.nodes["plain_names"].state, s.nodes["after_p"].state) == ("not_run", "not_run")


def test_stop_mid_run_then_resume_runs_every_item_exactly_once(
    inputs: Path, tmp_path: Path, throttle: Throttle
) -> None:
    out = tmp_path / "out"
    chain = batch_chain(inputs, out, throttled=True)
    runner = cl.Runner(chain, workers=2, resume=True, on_error="skip")
    runner.start()
    throttle.allow(5)
    wait_until(lambda: runner.status().done == 5, what="5 items done")
    # both workers are now parked inside the throttle (checkpointing) on items 6 and 7
    wait_until(lambda: sum(throttle.entered.values()) == 7, what="two items in flight")
    assert runner.stop().accepted
    s = runner.wait(10)
    assert (s.state, s.done, s.failed, s.skipped) == ("stopped", 5, 0, 0)
    assert len(outputs(out)) == 5
    assert len(manifest_lines(out)) == 5
    assert not list(out.rglob(".chainlib-tmp-*"))
    assert_valid_images(out)

    throttle.open.set()
    s = run(chain)
    assert (s.state, s.done, s.failed, s.skipped) == ("completed", N_SAMPLES, 0, 5)
    assert outputs(out) == expected_outputs()  # each output exactly once
    assert_valid_images(out)
    records = manifest_lines(out)
    assert len(records) == N_SAMPLES  # one record per input, none twice
    assert len({r["source"] for r in records}) == N_SAMPLES
    # every item went through the chain to completion exactly once over both runs
    assert set(throttle.completed.values()) == {1}
    assert sorted(throttle.completed) == samples.names()
    # the two interrupted items were entered twice (stopped, then re-run), the others once
    assert sorted(throttle.entered.values()) == [1] * (N_SAMPLES - 2) + [2, 2]


def test_stop_while_paused_then_resume(inputs: Path, tmp_path: Path, throttle: Throttle) -> None:
    out = tmp_path / "out"
    chain = batch_chain(inputs, out, throttled=True)
    runner = cl.Runner(chain, workers=1, resume=True)
    runner.start()
    throttle.allow(3)
    wait_until(lambda: runner.status().done == 3, what="3 items done")
    runner.pause()
    wait_until(lambda: runner.status().state == "paused", what="paused")
    runner.stop()
    assert runner.wait(10).state == "stopped"
    throttle.open.set()
    s = run(chain, workers=3)
    assert (s.done, s.skipped, s.failed) == (N_SAMPLES, 3, 0)
    assert outputs(out) == expected_outputs()
    assert len(manifest_lines(out)) == N_SAMPLES


def test_changed_chain_reruns_everything(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(batch_chain(inputs, out, width=24))
    s = run(batch_chain(inputs, out, width=20))
    assert (s.state, s.done, s.skipped, s.failed) == ("completed", N_SAMPLES, 0, 0)
    for rel in outputs(out):  # outputs of the interrupted/older chain are replaced
        with PILImage.open(out / rel) as im:
            assert im.width == 20
    fps = Counter(r["chain"] for r in manifest_lines(out))
    assert len(fps) == 2 and set(fps.values()) == {N_SAMPLES}
    # and the new chain's records count from now on
    assert run(batch_chain(inputs, out, width=20)).skipped == N_SAMPLES


def test_renaming_the_chain_keeps_its_fingerprint(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(batch_chain(inputs, out))
    chain = batch_chain(inputs, out)
    chain.name = "renamed"
    assert run(chain).skipped == N_SAMPLES


def test_modified_input_reruns(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(batch_chain(inputs, out))
    touched = inputs / "gradient.png"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    with PILImage.open(inputs / "noise.png") as im:
        im.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT).save(inputs / "noise.png")
    s = run(batch_chain(inputs, out))
    assert (s.done, s.skipped, s.failed) == (N_SAMPLES, N_SAMPLES - 2, 0)
    relabels = Counter(r["label"] for r in manifest_lines(out))
    assert relabels["gradient.png"] == 2 and relabels["noise.png"] == 2
    assert run(batch_chain(inputs, out)).skipped == N_SAMPLES


def test_deleted_output_reruns(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(batch_chain(inputs, out))
    (out / "more" / "terrain.png").unlink()
    (out / "shapes.png").unlink()
    s = run(batch_chain(inputs, out))
    assert (s.done, s.skipped, s.failed) == (N_SAMPLES, N_SAMPLES - 2, 0)
    assert outputs(out) == expected_outputs()
    assert_valid_images(out)


def test_leftover_output_of_an_interrupted_item_is_replaced(inputs: Path, tmp_path: Path) -> None:
    """An output no record vouches for (the item was stopped after saving) is written again."""
    out = tmp_path / "out"
    run(batch_chain(inputs, out))
    lines = (out / MANIFEST_NAME).read_text().splitlines(keepends=True)
    dropped = json.loads(lines[-1])
    (out / MANIFEST_NAME).write_text("".join(lines[:-1]))
    s = run(batch_chain(inputs, out))
    assert (s.done, s.skipped, s.failed) == (N_SAMPLES, N_SAMPLES - 1, 0)
    assert manifest_lines(out)[-1]["source"] == dropped["source"]


@pytest.mark.parametrize("cut", [1, 10, "half"])
def test_truncated_manifest_last_line_is_tolerated(
    inputs: Path, tmp_path: Path, cut: int | str
) -> None:
    out = tmp_path / "out"
    run(batch_chain(inputs, out))
    path = out / MANIFEST_NAME
    data = path.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[1]
    n = len(last) // 2 if cut == "half" else int(cut)
    path.write_bytes(data[: len(data) - 1 - n])  # a crash mid-append: last line cut short
    s = run(batch_chain(inputs, out))
    assert (s.state, s.done, s.skipped, s.failed) == ("completed", N_SAMPLES, N_SAMPLES - 1, 0)
    # the new record starts on its own line: every line but the cut one parses
    text = path.read_text()
    assert text.endswith("\n")
    bad = [line for line in text.splitlines() if not _parses(line)]
    assert len(bad) == 1
    assert len(Manifest(out, "x")) == N_SAMPLES
    assert run(batch_chain(inputs, out)).skipped == N_SAMPLES


def test_garbage_lines_in_the_manifest_are_ignored(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(batch_chain(inputs, out))
    path = out / MANIFEST_NAME
    lines = path.read_text().splitlines()
    lines[3] = "{not json"
    lines.insert(5, '{"no_source": 1}')
    lines.insert(6, "[1, 2]")
    lines.insert(7, "")
    path.write_text("\n".join(lines) + "\n")
    s = run(batch_chain(inputs, out))
    assert (s.done, s.skipped, s.failed) == (N_SAMPLES, N_SAMPLES - 1, 0)


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_corrupt_input_is_one_failed_item_with_path_and_reason(
    sample_source: Path, tmp_path: Path
) -> None:
    inputs = copy_samples(sample_source, tmp_path / "in", include_corrupt=True)
    out = tmp_path / "out"
    s = run(batch_chain(inputs, out), workers=3)
    assert (s.state, s.done, s.failed, s.total) == ("completed", N_SAMPLES, 1, N_SAMPLES + 1)
    (failure,) = s.failures
    assert failure.label == samples.BROKEN
    assert failure.node == "load_folder"
    assert str(inputs / samples.BROKEN) in failure.message
    assert "corrupt" in failure.message
    assert s.error is not None and s.error.label == samples.BROKEN
    assert outputs(out) == expected_outputs()
    assert len(manifest_lines(out)) == N_SAMPLES  # the failed item is not recorded
    # a resumed run retries the failed item only
    s = run(batch_chain(inputs, out))
    assert (s.done, s.skipped, s.failed) == (N_SAMPLES, N_SAMPLES, 1)
    assert s.failures[0].label == samples.BROKEN


def test_unreadable_input_is_one_failed_item(inputs: Path, tmp_path: Path) -> None:
    (inputs / "empty.png").write_bytes(b"")
    (inputs / "fake.jpg").write_text("not an image at all")
    out = tmp_path / "out"
    s = run(batch_chain(inputs, out))
    assert (s.state, s.done, s.failed) == ("completed", N_SAMPLES, 2)
    assert sorted(f.label or "" for f in s.failures) == ["empty.png", "fake.jpg"]
    for f in s.failures:
        assert f.label is not None and str(inputs / f.label) in f.message


def test_corrupt_input_under_on_error_stop_fails_the_run(
    sample_source: Path, tmp_path: Path
) -> None:
    inputs = copy_samples(sample_source, tmp_path / "in", include_corrupt=True)
    s = run(batch_chain(inputs, tmp_path / "out"), workers=1, on_error="stop")
    assert s.state == "failed"
    assert s.failed == 1 and s.error is not None and s.error.label == samples.BROKEN


def test_skipped_counts_only_items_already_complete(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run(batch_chain(inputs, out))
    assert first.skipped == 0
    for rel in expected_outputs()[:4]:
        (out / rel).unlink()
    s = run(batch_chain(inputs, out), workers=1)
    assert (s.done, s.skipped) == (N_SAMPLES, N_SAMPLES - 4)
    assert s.to_dict()["skipped"] == N_SAMPLES - 4
    assert s.remaining == 0


def test_without_resume_nothing_is_skipped(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(batch_chain(inputs, out))
    s = run(batch_chain(inputs, out), resume=False)
    assert s.skipped == 0
    # the outputs exist and overwrite is off: every item fails, nothing is replaced
    assert s.failed == N_SAMPLES
    assert all("already exists" in f.message for f in s.failures)


def test_resume_needs_a_constant_output_folder() -> None:
    chain = cl.Chain()
    chain.add("core.collect", values=chain.add("core.range", n=3))
    with pytest.raises(ValueError, match="output folder"):
        cl.Runner(chain, resume=True)


def test_failed_save_leaves_no_partial_output(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save that dies mid-write leaves neither the target nor a temporary file."""
    real_save = PILImage.Image.save

    def failing_save(self: PILImage.Image, fp: object, *args: object, **kwargs: object) -> None:
        if hasattr(fp, "write"):
            fp.write(b"\x89PNG partial")
        raise OSError("disk full")

    out = tmp_path / "out"
    monkeypatch.setattr(PILImage.Image, "save", failing_save)
    s = run(batch_chain(inputs, out))
    monkeypatch.setattr(PILImage.Image, "save", real_save)
    assert s.failed == N_SAMPLES and all("disk full" in f.message for f in s.failures)
    assert outputs(out) == []
    assert not (out / MANIFEST_NAME).exists()
    s = run(batch_chain(inputs, out))
    assert (s.done, s.skipped, s.failed) == (N_SAMPLES, 0, 0)
    assert outputs(out) == expected_outputs()


def test_a_constant_file_a_node_reads_is_part_of_the_resume_fingerprint(tmp_path: Path) -> None:
    """image.load of a constant file (a watermark on every item): replacing the file redoes
    the items of a resumed run; chains without such files keep the chain's fingerprint."""
    from chainlib.chain.validate import compile_chain
    from chainlib.run.guard import resume_fingerprint

    mark = tmp_path / "mark.png"
    PILImage.new("RGB", (4, 4), "red").save(mark)
    chain = cl.Chain()
    chain.add("core.range", n=2)
    chain.add("image.load", path=str(mark))
    first = resume_fingerprint(chain.fingerprint(), compile_chain(chain))
    assert first != chain.fingerprint()
    assert resume_fingerprint(chain.fingerprint(), compile_chain(chain)) == first
    PILImage.new("RGB", (4, 5), "blue").save(mark)
    assert resume_fingerprint(chain.fingerprint(), compile_chain(chain)) != first
    plain = cl.Chain()
    plain.add("core.range", n=2)
    assert resume_fingerprint(plain.fingerprint(), compile_chain(plain)) == plain.fingerprint()
