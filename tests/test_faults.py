"""Fault campaign (issue 10): random I/O faults, a full disk and a read-only record at the
output layer; then run-level cases through the command line (SIGKILL then resume, a full disk,
a read-only record without capabilities, concurrent runs, collisions, in-place runs, hostile
names), built in ``tests/fault_cases.py`` and tabled by ``benchmarks/b11_fault_table.py``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import fault_cases
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chainlib import outputs as outputs_mod
from chainlib import records
from chainlib.manifest import Manifest
from chainlib.outputs import (
    OWNED_NAME,
    TEMP_PATTERN,
    OutputRefused,
    OutputSession,
    RecordError,
    write_output,
)

SOURCES = [f"/in/item{i}.png" for i in range(6)]


def content(source: str, version: int) -> bytes:
    return hashlib.sha256(f"{source}:{version}".encode()).digest() * 64


class Faults:
    """Raises OSError at chosen points: the payload write, a record append, the final rename."""

    def __init__(self) -> None:
        self.plan: dict[str, bool] = {}

    def hit(self, where: str) -> None:
        if self.plan.pop(where, False):
            raise OSError(errno.ENOSPC, f"injected fault at {where}")


class OutputFaultMachine(RuleBasedStateMachine):
    """Items written (output, then manifest record) under random faults, folder reopened by
    later "runs": nothing partial, nothing not ours touched, every item done exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.faults = Faults()

    @initialize()
    def setup(self) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="faults-"))
        self.out = self.root / "out"
        self.out.mkdir()
        (self.out / "user.png").write_bytes(b"a file of the user")
        self.session: OutputSession | None = None
        self.manifest: Manifest | None = None
        self.version = 0
        self.done: dict[str, int] = {}  # source -> version of its recorded output
        self.counted: list[tuple[int, str, str]] = []  # (run, source, done|failed)
        self.run = 0
        self._patch()
        self.new_run()

    def _patch(self) -> None:
        faults = self.faults
        real_append = records.JsonlLog.append
        real_commit = outputs_mod.OutputFolder._commit

        def append(log: records.JsonlLog, rec: dict[str, object]) -> None:
            if log.path.name.endswith("manifest.jsonl"):
                faults.hit("manifest")
            else:
                faults.hit("temp" if "temp" in rec else "claim")
            real_append(log, rec)

        def commit(tmp: str, key: str, target: str, *, replace: bool) -> None:
            faults.hit("rename")
            real_commit(tmp, key, target, replace=replace)

        self._undo = [(records.JsonlLog, "append", real_append),
                      (outputs_mod.OutputFolder, "_commit", real_commit)]
        records.JsonlLog.append = append  # type: ignore[method-assign]
        outputs_mod.OutputFolder._commit = staticmethod(commit)  # type: ignore[method-assign,assignment]

    def teardown(self) -> None:
        for owner, name, fn in getattr(self, "_undo", []):
            setattr(owner, name, fn if name != "_commit" else staticmethod(fn))
        if self.session is not None:
            self.session.close()
        if hasattr(self, "root"):
            shutil.rmtree(self.root, ignore_errors=True)

    @rule()
    def new_run(self) -> None:
        """A new run into the folder: lock, clean leftovers, resume."""
        if self.session is not None:
            self.session.close()
        self.run += 1
        self.session = OutputSession([str(self.out)]).open()
        self.manifest = Manifest(self.out, "fp")
        assert not [p for p in self.out.rglob("*") if TEMP_PATTERN.match(p.name)]

    @rule(source=st.sampled_from(SOURCES),
          faults=st.lists(st.sampled_from(["temp", "write", "claim", "rename", "manifest"]),
                          max_size=2, unique=True))
    def process(self, source: str, faults: list[str]) -> None:
        assert self.session is not None and self.manifest is not None
        if any(s == source and r == self.run for r, s, _ in self.counted):
            return  # an item runs once per run
        if source in self.done:
            return
        self.faults.plan = dict.fromkeys(faults, True)
        self.version += 1
        data = content(source, self.version)
        target = str(self.out / (Path(source).stem + ".png"))

        def write(fh: IO[bytes]) -> None:
            fh.write(data[: len(data) // 2])
            self.faults.hit("write")
            fh.write(data[len(data) // 2:])

        try:
            write_output(target, write, folder=str(self.out), session=self.session,
                         item=repr(source), source=source, node="save", resuming=True)
            self.manifest.record(source, None, [target])
        except (OSError, RecordError, OutputRefused) as exc:
            assert not isinstance(exc, OutputRefused), exc  # faults never look like refusals
            self.counted.append((self.run, source, "failed"))
        else:
            self.counted.append((self.run, source, "done"))
            self.done[source] = self.version
        finally:
            self.faults.plan = {}

    @invariant()
    def disk_is_consistent(self) -> None:
        if not hasattr(self, "out"):
            return
        assert (self.out / "user.png").read_bytes() == b"a file of the user"
        for source, version in self.done.items():
            target = self.out / (Path(source).stem + ".png")
            assert target.read_bytes() == content(source, version)  # complete, and the latest
        for p in self.out.iterdir():
            if p.name.startswith(".chainlib-") or p.name == "user.png":
                continue
            data = p.read_bytes()
            assert any(data == content(f"/in/{p.stem}.png", v)
                       for v in range(1, self.version + 1)), f"partial output {p.name}"

    @invariant()
    def each_item_counted_once_per_run(self) -> None:
        if not hasattr(self, "counted"):
            return
        keys = [(r, s) for r, s, _ in self.counted]
        assert len(keys) == len(set(keys))
        done = [s for _, s, outcome in self.counted if outcome == "done"]
        assert len(done) == len(set(done)) == len(self.done)  # done exactly once overall


OutputFaultMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestOutputFaults = OutputFaultMachine.TestCase


# -- a full disk -------------------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KB tmpfs (CI runs as root); skipped only where mounting is impossible."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                         capture_output=True, text=True, check=False)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_fails_writes_cleanly_and_the_next_run_recovers(small_tmpfs: Path) -> None:
    out = small_tmpfs / "out"
    blob = os.urandom(60_000)
    written: list[str] = []
    failures: list[str] = []
    with _session(out) as s:
        for i in range(20):  # 20 x 60 KB > 512 KB: the disk fills up on the way
            def write(fh: IO[bytes]) -> None:
                fh.write(blob)

            try:
                written.append(write_output(str(out / f"f{i}.bin"), write, folder=str(out),
                                            session=s, item=f"'i{i}'", source=f"/in/i{i}"))
            except (OSError, RecordError) as exc:
                assert "No space left" in str(exc)
                failures.append(str(exc))
    assert written and failures and len(written) + len(failures) == 20
    for path in written:
        assert Path(path).read_bytes() == blob  # every output complete
    leftovers = sorted(p.name for p in out.iterdir() if p.name.startswith("f"))
    assert leftovers == sorted(Path(p).name for p in written)  # nothing partial
    for p in out.iterdir():
        if p.name.startswith("f"):
            p.unlink()
    with _session(out) as s:  # space again: the next run cleans up and writes
        assert not [p for p in out.iterdir() if TEMP_PATTERN.match(p.name)]
        write_output(str(out / "again.bin"), lambda fh: fh.write(b"ok"), folder=str(out),
                     session=s, item="'again'", source="/in/again")
    assert (out / "again.bin").read_bytes() == b"ok"


# -- a read-only record, capabilities dropped --------------------------------------------------


def test_read_only_record_without_capabilities_is_one_clear_error(tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    out = tmp_path / "out"
    out.mkdir()
    (out / OWNED_NAME).write_text("")
    (out / OWNED_NAME).chmod(0o444)
    script = textwrap.dedent(f"""
        from chainlib.outputs import OutputSession, write_output
        s = OutputSession([{str(out)!r}]).open()
        try:
            write_output({str(out / "a.bin")!r}, lambda fh: fh.write(b"x"), folder={str(out)!r},
                         session=s, item="'a'", source="/in/a")
        except Exception as exc:
            print(type(exc).__name__ + ": " + str(exc))
    """)
    res = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c", script],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith("RecordError: cannot write the record .chainlib-owned.jsonl")
    assert "Permission denied" in res.stdout and len(res.stdout.splitlines()) == 1
    assert not (out / "a.bin").exists()
    assert not [p for p in out.iterdir() if TEMP_PATTERN.match(p.name)]


class _session:
    def __init__(self, out: Path) -> None:
        self.s = OutputSession([str(out)])

    def __enter__(self) -> OutputSession:
        return self.s.open()

    def __exit__(self, *exc: object) -> None:
        self.s.close()


# -- run-level cases through the command line (tests/fault_cases.py) ---------------------------


def _no_traceback(*procs: subprocess.CompletedProcess[str]) -> None:
    for proc in procs:
        assert "Traceback" not in proc.stderr, proc.stderr


def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    o = fault_cases.sigkill_then_resume(tmp_path, kills=5)
    final = o.runs[-1]
    assert final.returncode == 0, (final.stdout, final.stderr)
    assert o.lost == 0 and o.overwritten == 0, o.notes
    out = tmp_path / "out"
    assert not fault_cases.temps(out)  # the killed runs' temporary files were cleaned up
    assert fault_cases.manifest_consistent(out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [f"img{i:02d}.png" for i in range(16)] + ["user notes.txt"])


def test_disk_full_fails_items_or_the_run_cleanly_then_resume_completes(tmp_path: Path) -> None:
    o = fault_cases.disk_full_then_resume(tmp_path)
    if o is None:
        pytest.skip("mounting a tmpfs needs root and mount(8) (CI runs as root)")
    full, again = o.runs
    _no_traceback(full, again)
    assert full.returncode == 1 and fault_cases.accounted(full), (full.stdout, full.stderr)
    assert "No space left on device" in full.stdout
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert o.lost == 0, o.notes
    assert o.notes[-1].endswith(": 0")  # no temp files at the end


def test_read_only_record_without_capabilities_fails_the_run_in_one_line(tmp_path: Path) -> None:
    o = fault_cases.read_only_record(tmp_path)
    if o is None:
        pytest.skip("setpriv (util-linux) is not installed")
    ro, again = o.runs
    _no_traceback(ro, again)
    assert ro.returncode == 1 and fault_cases.accounted(ro), (ro.stdout, ro.stderr)
    headline, _done, failed, _not_run, total = fault_cases.counts(ro) or ("", 0, 0, 0, 0)
    assert headline == "run failed" and failed >= 1 and total == 6
    reason = [line for line in ro.stdout.splitlines() if line.startswith("reason: ")]
    assert len(reason) == 1 and "cannot write the record .chainlib-manifest.jsonl" in reason[0]
    assert "Permission denied" in reason[0]
    assert ro.stderr == ""
    assert again.returncode == 0 and o.lost == 0, (again.stdout, again.stderr)


def test_a_second_run_into_a_busy_folder_exits_2_naming_the_holder(tmp_path: Path) -> None:
    o = fault_cases.concurrent_runs(tmp_path)
    first, second, third = o.runs
    assert second.returncode == 2, (second.stdout, second.stderr)
    assert second.stderr.count("\n") == 1 and "in use by another run" in second.stderr
    assert o.notes[0].removeprefix("first ") in second.stderr  # "pid N"
    assert "on host" in second.stderr and " since " in second.stderr
    assert first.returncode == 130 and "stopped by the user" in first.stdout, first.stdout
    assert third.returncode == 0 and o.lost == 0, (third.stdout, third.stderr)


def test_collisions_are_an_error_naming_both_inputs_before_anything_is_written(
        tmp_path: Path) -> None:
    o = fault_cases.collisions(tmp_path)
    for proc in o.runs:  # run, run --resume, validate: the same one-line error, exit 2
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert "two inputs for one output" in proc.stderr
        assert "'photo.jpg'" in proc.stderr and "'photo.png'" in proc.stderr
        assert "unique" in proc.stderr and proc.stderr.count("\n") == 1
    assert o.notes == ["files written: 0"]


def test_in_place_runs_never_write_over_inputs_nor_take_outputs_as_inputs(
        tmp_path: Path) -> None:
    o = fault_cases.in_place(tmp_path)
    over, first, resumed, plain = o.runs
    _no_traceback(*o.runs)
    assert over.returncode == 2 and "over the input 'a.jpg'" in over.stderr, over.stderr
    assert first.returncode == 0 and "completed: 3 done, 0 failed (of 3 items)" in first.stdout
    # the outputs are not inputs the next time: still 3 items
    assert resumed.returncode == 0 and "3 of them already complete" in resumed.stdout
    assert plain.returncode == 1 and "(of 3 items)" in plain.stdout
    assert "--resume" in plain.stdout and "--overwrite" in plain.stdout  # the hint
    assert o.overwritten == 0 and o.lost == 0, o.notes


def test_a_file_that_is_not_ours_is_never_replaced_even_by_a_first_resume(
        tmp_path: Path) -> None:
    o = fault_cases.not_ours(tmp_path)
    run = o.runs[0]
    assert run.returncode == 1 and o.overwritten == 0 and o.lost == 0, (run.stdout, run.stderr)
    assert "was not written by chainlib" in run.stdout
    hint = [line for line in run.stdout.splitlines() if line.startswith("hint:")]
    assert hint and "--overwrite" in hint[0] and "--resume" not in hint[0]


def test_hostile_names_are_escaped_and_long_names_work(tmp_path: Path) -> None:
    o = fault_cases.hostile_names(tmp_path)
    run = o.runs[0]
    assert run.returncode == 1 and o.lost == 0, (run.stdout, run.stderr)
    assert "\x1b" not in run.stdout + run.stderr
    assert not any(line.startswith("completed: 999") for line in run.stdout.splitlines())
    assert "evil\\x1b[2J\\ncompleted: 999 done" in run.stdout
    assert fault_cases.counts(run) == ("completed with failures", 2, 1, 0, 3)
