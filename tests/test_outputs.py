"""Output ownership (chainlib.outputs), the folder lock (chainlib.lock), image.save under them."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import threading
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from chainlib.api.context import Context, NullContext
from chainlib.lock import LOCK_NAME, FolderBusy, FolderLock
from chainlib.nodes.image import io as im
from chainlib.outputs import (
    OWNED_NAME,
    TEMP_PATTERN,
    OutputFolder,
    OutputRefused,
    OutputSession,
    write_output,
)


def payload(data: bytes):  # type: ignore[no-untyped-def]
    def write(fh: IO[bytes]) -> None:
        fh.write(data)

    return write


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith(".chainlib-"))


def temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_PATTERN.match(p.name)]


def owned_lines(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / OWNED_NAME).read_text().splitlines()]


@pytest.fixture
def session(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = OutputSession([str(tmp_path / "out")]).open()
    yield s
    s.close()


def write(session: OutputSession, out: Path, rel: str, data: bytes, *, source: str,
          overwrite: bool = False, resuming: bool = False, node: str = "save") -> str:
    return write_output(str(out / rel), payload(data), folder=str(out), session=session,
                        item=repr(source), source=source, node=node, overwrite=overwrite,
                        resuming=resuming)


# -- ownership ---------------------------------------------------------------------------------


def test_a_write_is_recorded_with_its_identity(tmp_path: Path, session: OutputSession) -> None:
    out = tmp_path / "out"
    path = write(session, out, "sub/a.bin", b"hello", source="/in/a.png")
    assert Path(path).read_bytes() == b"hello"
    st = os.stat(path)
    entry = [r for r in owned_lines(out) if "path" in r][-1]
    assert entry == {"path": "sub/a.bin", "source": "/in/a.png", "size": 5,
                     "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
    assert session.folder(str(out)).is_ours(path)
    assert not temps(out)


def test_an_existing_file_not_ours_is_never_replaced_even_when_resuming(
        tmp_path: Path, session: OutputSession) -> None:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "a.bin").write_bytes(b"the user's")
    for resuming in (False, True):
        with pytest.raises(OutputRefused, match=r"a\.bin.*not written by chainlib.*overwrite"):
            write(session, out, "a.bin", b"ours", source="/in/a", resuming=resuming)
    assert (out / "a.bin").read_bytes() == b"the user's"
    assert not temps(out)
    write(session, out, "a.bin", b"ours", source="/in/a", overwrite=True)
    assert (out / "a.bin").read_bytes() == b"ours"


def test_our_file_is_replaced_only_when_resuming(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with _open(out) as s:
        write(s, out, "a.bin", b"v1", source="/in/a")
    with _open(out) as s:
        with pytest.raises(OutputRefused, match=r"already exists.*--resume"):
            write(s, out, "a.bin", b"v2", source="/in/a")
        write(s, out, "a.bin", b"v2", source="/in/a", resuming=True)
    assert (out / "a.bin").read_bytes() == b"v2"


def test_a_file_changed_by_the_user_is_no_longer_ours(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with _open(out) as s:
        write(s, out, "a.bin", b"v1", source="/in/a")
    (out / "a.bin").write_bytes(b"edited by hand")
    with _open(out) as s, pytest.raises(OutputRefused, match="not written by chainlib"):
        write(s, out, "a.bin", b"v2", source="/in/a", resuming=True)
    assert (out / "a.bin").read_bytes() == b"edited by hand"


def test_inputs_are_never_written_over_even_with_overwrite(
        tmp_path: Path, session: OutputSession) -> None:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "a.jpg").write_bytes(b"input")
    session.add_inputs([str(out / "a.jpg")])
    with pytest.raises(OutputRefused, match=r"a\.jpg.*is an input of this run"):
        write(session, out, "a.jpg", b"output", source=str(out / "a.jpg"), overwrite=True)
    assert (out / "a.jpg").read_bytes() == b"input"


def test_two_items_one_path_is_an_error_naming_both(tmp_path: Path,
                                                    session: OutputSession) -> None:
    out = tmp_path / "out"
    write(session, out, "photo.png", b"from png", source="/in/photo.png")
    with pytest.raises(OutputRefused, match=r"photo\.png.*'/in/photo\.png'.*'/in/photo\.jpg'"):
        write(session, out, "photo.png", b"from jpg", source="/in/photo.jpg", overwrite=True)
    assert (out / "photo.png").read_bytes() == b"from png"


def test_two_nodes_of_one_item_one_path_is_an_error(tmp_path: Path,
                                                    session: OutputSession) -> None:
    out = tmp_path / "out"
    write(session, out, "a.png", b"1", source="/in/a", node="save")
    with pytest.raises(OutputRefused, match=r"two writers.*save.*save_2"):
        write(session, out, "a.png", b"2", source="/in/a", node="save_2", overwrite=True)


def test_collision_across_runs_names_both_inputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    src = tmp_path / "in"
    src.mkdir()
    (src / "photo.png").write_bytes(b"x")
    (src / "photo.jpg").write_bytes(b"y")
    with _open(out) as s:
        write(s, out, "photo.png", b"from png", source=str(src / "photo.png"))
    with _open(out) as s, pytest.raises(OutputRefused, match="two inputs for one output"):
        write(s, out, "photo.png", b"from jpg", source=str(src / "photo.jpg"), resuming=True)
    # once the first input is gone, its output may go to the one that remains
    (src / "photo.png").unlink()
    with _open(out) as s:
        write(s, out, "photo.png", b"from jpg", source=str(src / "photo.jpg"), resuming=True)


def test_long_names_fit_temp_names_fixed_length(tmp_path: Path, session: OutputSession) -> None:
    out = tmp_path / "out"
    name = "n" * 251 + ".png"  # 255 bytes: the longest name most file systems allow
    write(session, out, name, b"data", source="/in/long")
    assert (out / name).read_bytes() == b"data"


def test_leftover_temp_files_are_removed_by_the_next_run_ours_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with _open(out) as s:  # a killed run recorded a temp file, then died writing it
        s.folder(str(out))._log.append({"temp": ".chainlib-tmp-0123456789abcdef.part"})
    (out / ".chainlib-tmp-0123456789abcdef.part").write_bytes(b"killed mid-write")
    (out / ".chainlib-tmp-fedcba9876543210.part").write_bytes(b"not in the record")
    (out / "user.part").write_bytes(b"user file")
    with _open(out):
        pass
    assert not (out / ".chainlib-tmp-0123456789abcdef.part").exists()
    assert (out / ".chainlib-tmp-fedcba9876543210.part").exists()  # not recorded: not ours
    assert (out / "user.part").exists()
    assert all("temp" not in r for r in owned_lines(out))  # compacted


def test_record_path_escaping_the_folder_is_not_deleted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / ".chainlib-tmp-0123456789abcdef.part"
    victim.write_bytes(b"outside")
    (out / OWNED_NAME).write_text(json.dumps({"temp": "../" + victim.name}) + "\n")
    with _open(out):
        pass
    assert victim.exists()


def test_failed_write_leaves_nothing_and_keeps_the_record_consistent(
        tmp_path: Path, session: OutputSession) -> None:
    out = tmp_path / "out"

    def fail(fh: IO[bytes]) -> None:
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_output(str(out / "a.bin"), fail, folder=str(out), session=session, item="'a'",
                     source="/in/a")
    assert files(out) == [] and not temps(out)
    assert not any("path" in r for r in owned_lines(out))


def test_direct_calls_keep_no_record(tmp_path: Path) -> None:
    path = im.save(np.zeros((4, 4), np.uint8), str(tmp_path), "pic")
    assert os.listdir(tmp_path) == ["pic.png"]
    with pytest.raises(ValueError, match="already exists and was not written by chainlib"):
        im.save(np.zeros((4, 4), np.uint8), str(tmp_path), "pic")
    assert im.save(np.ones((4, 4), np.uint8), str(tmp_path), "pic", overwrite=True) == path


def test_save_in_a_session_uses_the_item_source(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with _open(out) as s:
        ctx = Context(NullContext._NoHooks(), "save", 3, outputs=s, source="/in/a.jpg",
                      label="a.jpg")
        im.save(np.zeros((4, 4), np.uint8), str(out), "a", ctx=ctx)
        with pytest.raises(ValueError, match=r"two writers.*'/in/a\.jpg'.*'/in/b\.jpg'"):
            other = Context(NullContext._NoHooks(), "save", 4, outputs=s, source="/in/b.jpg")
            im.save(np.zeros((4, 4), np.uint8), str(out), "a", ctx=other)
    assert [r["source"] for r in owned_lines(out) if "path" in r] == ["/in/a.jpg"]


def test_load_folder_skips_outputs_and_declares_inputs(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in ("a", "b"):
        im.save(np.full((4, 4), 9, np.uint8), str(folder), n, format="jpeg")
    with _open(folder) as s:
        ctx = Context(NullContext._NoHooks(), "save", 0, outputs=s, source=str(folder / "a.jpg"))
        im.save(np.zeros((4, 4), np.uint8), str(folder), "a", ctx=ctx)  # a.png: an output
    with _open(folder) as s:
        ctx = Context(NullContext._NoHooks(), "load", None, outputs=s)
        labels = [item.label for item in im.load_folder(str(folder), ctx=ctx)]  # type: ignore
        assert labels == ["a.jpg", "b.jpg"]  # its own output a.png is not an input
        assert s.is_input(str(folder / "b.jpg"))
        save_ctx = Context(NullContext._NoHooks(), "save", 1, outputs=s,
                           source=str(folder / "b.jpg"))
        with pytest.raises(ValueError, match="is an input of this run"):
            im.save(np.zeros((4, 4), np.uint8), str(folder), "b", format="jpeg", overwrite=True,
                    ctx=save_ctx)


# -- the lock ----------------------------------------------------------------------------------


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    with FolderLock(tmp_path) as first:
        assert first.held
        with pytest.raises(FolderBusy) as caught:
            FolderLock(tmp_path).acquire()
        msg = str(caught.value)
        assert f"pid {os.getpid()}" in msg and socket.gethostname() in msg and "since" in msg
    with FolderLock(tmp_path):  # released: free again
        pass


def test_a_second_session_into_a_folder_fails_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with _open(out), pytest.raises(FolderBusy, match="in use by another run"):
        OutputSession([str(out)]).open()


def _hold_and_die(folder: str, ready: multiprocessing.synchronize.Event) -> None:
    FolderLock(folder).acquire()
    ready.set()
    threading.Event().wait(60)


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_and_die, args=(str(tmp_path), ready))
    proc.start()
    try:
        assert ready.wait(60)
        with pytest.raises(FolderBusy, match=f"pid {proc.pid} "):
            FolderLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.join(30)
    holder = json.loads((tmp_path / LOCK_NAME).read_text())
    assert holder["pid"] == proc.pid  # the stale note is still there ...
    with FolderLock(tmp_path):  # ... and the lock is free: the kernel released it
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


class _open:
    """``with _open(out) as session``: an opened session on one folder."""

    def __init__(self, out: Path) -> None:
        self.session = OutputSession([str(out)])

    def __enter__(self) -> OutputSession:
        return self.session.open()

    def __exit__(self, *exc: object) -> None:
        self.session.close()


def test_a_failed_rename_does_not_disown_the_file_there(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    with _open(out) as s:
        write(s, out, "a.bin", b"v1", source="/in/a")

    def broken(tmp: str, key: str, target: str, *, replace: bool) -> None:
        raise OSError(5, "I/O error")

    with _open(out) as s:
        monkeypatch.setattr(OutputFolder, "_commit", staticmethod(broken))
        with pytest.raises(OSError, match="I/O error"):
            write(s, out, "a.bin", b"v2", source="/in/a", resuming=True)
        monkeypatch.undo()
    with _open(out) as s:  # its claim is in the record, but the file there is still v1: ours
        assert s.folder(str(out)).is_ours(str(out / "a.bin"))
        write(s, out, "a.bin", b"v3", source="/in/a", resuming=True)
    assert (out / "a.bin").read_bytes() == b"v3"
