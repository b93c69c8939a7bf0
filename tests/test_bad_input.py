"""Bad input gets exit 2 and one line, no traceback; ``validate`` says what ``run`` would
(issue 10): oversized and non-regular chain files, deep nesting, non-finite floats, numeric
ranges, ``--workers`` out of range, ``--import`` by path, untrusted text escaped, a busy folder.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import chainlib as cl
from chainlib.chain import files
from chainlib.cli import main
from chainlib.cli.common import safe
from chainlib.errors import ChainError


def chain_dict() -> dict[str, Any]:
    return {"format": "chainlib.chain", "version": 1, "name": "t", "nodes": [
        {"id": "r", "type": "core.range", "inputs": {"n": {"value": 2}}},
        {"id": "c", "type": "core.constant", "inputs": {"value": {"value": 1}}},
    ]}


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("chainlib: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_a_chain_file_over_the_size_limit_is_refused_before_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(chain_dict()) + " " * 2048)
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 1024)
    for command in ("run", "validate"):
        code, _, err = run_main(capsys, command, str(path))
        one_line_error(code, err, "chain file too large", "limit is 0 MB")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_non_regular_chain_file_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "validate", "/dev/zero")
    one_line_error(code, err, "not a regular file")


def test_deeply_nested_json_and_set_values_are_clear_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "deep.json"
    path.write_text('{"format": "chainlib.chain", "version": 1, "nodes": ' + deep + "}")
    code, _, err = run_main(capsys, "validate", str(path))
    one_line_error(code, err, "nested too deeply")
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(chain_dict()))
    code, _, err = run_main(capsys, "run", str(ok), "--set", f"c.value={deep}")
    one_line_error(code, err, "nested too deeply")
    code, _, err = run_main(capsys, "validate", str(ok), "--set", "c.value=" + "[" * 80 + "]" * 80)
    one_line_error(code, err, "nested more than 64 levels")


def test_non_finite_floats_and_out_of_range_numbers_fail_validation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(chain_dict()))
    code, _, err = run_main(capsys, "validate", str(ok), "--set", "c.value=[1, 1e999]")
    one_line_error(code, err, "node 'c', input 'value'", "inf is not a finite number")
    code, _, err = run_main(capsys, "validate", str(ok), "--set", "r.n=-3")
    one_line_error(code, err, "node 'r', input 'n'", "must be at least 0, got -3")
    chain = cl.Chain()
    img = chain.add("image.load", path="x.png")
    chain.add("image.save", image=img["image"], folder="out", name="a", quality=101)
    with pytest.raises(ChainError, match="must be between 1 and 100, got 101"):
        chain.validate()
    chain.set("save", "quality", 100)
    chain.set("save", "folder", float("nan"))
    with pytest.raises(ChainError, match="expected str"):
        chain.validate()


def test_workers_out_of_range_is_a_usage_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(chain_dict()))
    for bad in ("0", "257", "200000"):
        code, out, err = run_main(capsys, "run", str(ok), "--workers", bad)
        assert (code, out) == (2, "")
        assert err == (f"chainlib run: error: argument --workers/-w: must be from 1 to 256, got "
                       f"{bad} (see chainlib run --help)\n")


@pytest.mark.parametrize(("argv", "prog", "fragment"), [
    ([], "chainlib", "the following arguments are required: COMMAND"),
    (["frob"], "chainlib", "argument COMMAND: invalid choice: 'frob'"),
    (["--log-level", "chatty", "nodes"], "chainlib", "argument --log-level: invalid choice"),
    (["run"], "chainlib run", "the following arguments are required: CHAIN.json"),
    (["run", "c.json", "--bogus"], "chainlib run", "unrecognized arguments: --bogus"),
    (["run", "c.json", "--max-memory", "2Q"], "chainlib run", "argument --max-memory: expected"),
    (["run", "c.json", "--on-error", "later"], "chainlib run", "argument --on-error: invalid"),
    (["validate", "c.json", "--workers", "2"], "chainlib validate", "unrecognized arguments"),
    (["nodes", "a", "b"], "chainlib nodes", "unrecognized arguments: b"),
    (["demo", "--workers", "x"], "chainlib demo", "expected a whole number, got 'x'"),
    (["status"], "chainlib status", "the following arguments are required: URL"),
    (["pause", "http://h", "more"], "chainlib pause", "unrecognized arguments: more"),
    (["frob\x1b[2J"], "chainlib", "invalid choice: 'frob\\x1b[2J'"),  # escaped, not raw
])
def test_every_argument_error_is_one_line_naming_the_help(
        argv: list[str], prog: str, fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith(f"{prog}: error: ") and err.endswith(f" (see {prog} --help)\n"), err
    assert fragment in err, (fragment, err)


def test_help_is_still_the_full_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "run", "--help")
    assert code == 0 and out.startswith("usage: chainlib run") and "--max-memory" in out


def test_import_by_path_does_not_put_the_current_folder_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tqdm.py").write_text("raise RuntimeError('the shadowing tqdm was imported')\n")
    (tmp_path / "mynodes.py").write_text(
        "import chainlib as cl\n@cl.node('bad_input.twice')\ndef twice(x: int) -> int:\n"
        "    return 2 * x\n")
    chain = tmp_path / "c.json"
    chain.write_text(json.dumps({"format": "chainlib.chain", "version": 1, "nodes": [
        {"id": "r", "type": "core.range", "inputs": {"n": {"value": 2}}},
        {"id": "t", "type": "bad_input.twice", "inputs": {"x": {"link": {"node": "r"}}}}]}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    sys.modules.pop("tqdm", None)
    code, out, err = run_main(capsys, "run", str(chain), "--import", "./mynodes.py",
                              "--no-progress")
    assert code == 0, err
    assert "completed: 2 done" in out
    assert str(tmp_path) not in sys.path[:1]


def test_untrusted_text_is_escaped_for_the_terminal() -> None:
    assert safe("a\x1b[31mb\nc\rd\x07\u202e") == "a\\x1b[31mb\\nc\\rd\\x07\\u202e"
    assert safe("photo é.png") == "photo é.png"


def test_a_second_runner_into_a_locked_folder_is_refused_naming_the_holder(
        tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "a.png")

    gate = threading.Event()

    @cl.node("bad_input.hold", output="image")
    def hold(image: cl.Image, ctx: cl.Context) -> cl.Image:
        while not gate.is_set():
            ctx.checkpoint()
            gate.wait(0.01)
        return image

    def build() -> cl.Chain:
        chain = cl.Chain()
        load = chain.add("image.load_folder", folder=str(folder))
        held = chain.add("bad_input.hold", image=load["image"])
        chain.add("image.save", image=held, name=load["name"], folder=str(tmp_path / "out"))
        return chain

    first, second = cl.Runner(build()), cl.Runner(build(), on_error="skip")
    assert first.start().accepted
    ack = second.start()
    assert not ack.accepted
    assert "in use by another run" in ack.reason and f"pid {os.getpid()}" in ack.reason
    assert second.status().state == "idle"
    gate.set()
    assert first.wait(30).state == "completed"
    assert second.start().accepted  # the lock went with the first run
    final = second.wait(30)
    assert final.state == "completed" and final.failed == 1  # a.png exists: not replaced
    assert "already exists (written by an earlier run)" in final.failures[0].message


def test_a_tilde_for_an_unknown_user_is_a_plain_name_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # pathlib's expanduser() raised "RuntimeError: Could not determine home directory." (a
    # traceback for validate, "run failed" for run); the shell, and os.path, leave it as it is
    monkeypatch.chdir(tmp_path)
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (8, 8)).save(inputs / "a.png")
    chain = cl.Chain("t")
    src = chain.add("image.load_folder", folder="~no-such-user-x/in")
    chain.add("image.save", image=src["image"], folder="out", name=src["name"])
    path = tmp_path / "c.json"
    chain.save(path)
    for command in ("validate", "run"):
        code, _, err = run_main(capsys, command, str(path))
        one_line_error(code, err, "node 'load_folder', input 'folder'",
                       "'~no-such-user-x/in' does not exist")
    code, _, err = run_main(capsys, "run", str(path), "--no-progress", "--set",
                              f"load_folder.folder={inputs}", "--set",
                              "save.folder=~no-such-user-x/out")
    assert code == 0, err
    assert (tmp_path / "~no-such-user-x" / "out" / "a.png").is_file()


def test_an_input_folder_name_too_long_for_the_file_system_names_the_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the OSError used to reach the command line as "cannot read the output folder's record"
    long_name = str(tmp_path / ("a" * 300))
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"format": "chainlib.chain", "version": 1, "nodes": [
        {"id": "load", "type": "image.load_folder", "inputs": {"folder": {"value": long_name}}},
    ]}))
    for command in ("validate", "run"):
        code, _, err = run_main(capsys, command, str(path))
        one_line_error(code, err, "node 'load', input 'folder'", "File name too long")
        assert "output folder" not in err


@pytest.mark.parametrize(("template", "fragment"), [
    ("{nope}", "unknown field(s) {nope}"),
    ("{name.__class__}", "unknown field(s) {name.__class__}"),
    ("{", "invalid template '{'"),
    ("{index:>1000000000}", "a width or precision of 1000000000"),  # used to build 1 GB per item
    ("{index:.999999999}", "a width or precision of 999999999"),
])
def test_a_save_template_that_cannot_work_fails_validation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], template: str, fragment: str) -> None:
    # it used to be accepted, then fail every item (or exhaust the memory) when the run came
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (8, 8)).save(inputs / "a.png")
    chain = cl.Chain("t")
    src = chain.add("image.load_folder", folder=str(inputs))
    chain.add("image.save", image=src["image"], folder=str(tmp_path / "out"), name=src["name"],
              template=template)
    path = tmp_path / "c.json"
    chain.save(path)
    for command in ("validate", "run"):
        code, _, err = run_main(capsys, command, str(path))
        one_line_error(code, err, "node 'save', input 'template'", fragment)
    assert not (tmp_path / "out").exists()
