"""Fault campaign for the output layer: random I/O faults, a full disk, a read-only record.

Run-level cases (SIGKILL then resume, concurrent runs through the CLI, accounting in the Runner)
need the runner to open an OutputSession per run; see the notes of issue 10.
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
