"""What the command line tells: ``--json`` lines for piping, ``-v`` logging, ``validate --svg``,
and hints that only suggest what works."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import chainlib as cl
from tests.conftest import wait_until
from tests.test_cli import EXAMPLE, N_SAMPLES, cli, env, posix_only


def example_args(inputs: Path, out: Path) -> tuple[str, ...]:
    return ("run", str(EXAMPLE), "--set", f"load_folder.folder={inputs}",
            "--set", f"save.folder={out}", "--set", "resize.width=16", "--no-progress")


def json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_json_writes_one_object_per_state_change(inputs: Path, tmp_path: Path) -> None:
    proc = cli(*example_args(inputs, tmp_path / "out"), "--json")
    assert proc.returncode == 0, proc.stderr
    lines = json_lines(proc.stdout)  # stdout holds JSON lines only
    assert [ln["event"] for ln in lines] == ["state", "end"]
    first, end = lines
    assert first["state"] == "running" and first["run_id"] == end["run_id"]
    assert end["state"] == "completed" and end["done"] == N_SAMPLES and end["exit_code"] == 0
    assert isinstance(first["seq"], int) and isinstance(end["seq"], int)
    assert first["seq"] < end["seq"]
    assert "completed:" in proc.stderr  # the summary moved to stderr


def test_json_reports_failures_and_the_exit_code(inputs: Path, tmp_path: Path) -> None:
    args = example_args(inputs, tmp_path / "out")
    assert cli(*args).returncode == 0
    again = cli(*args, "--json")
    assert again.returncode == 1
    end = json_lines(again.stdout)[-1]
    assert end["event"] == "end" and end["exit_code"] == 1 and end["failed"] == N_SAMPLES
    assert "hint: outputs exist from an earlier run; use --resume to skip finished items, or " \
           "--overwrite to replace existing files" in again.stderr


def run_with_stdout_closed(*args: str) -> subprocess.CompletedProcess[str]:
    """The command with its stdout a pipe whose reader went away at once (``| true``)."""
    proc = subprocess.Popen([sys.executable, "-m", "chainlib", *args], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)


def test_a_closed_stdout_changes_neither_the_run_nor_its_exit_code(inputs: Path,
                                                                    tmp_path: Path) -> None:
    # `chainlib run c.json --json | head -1`: the broken pipe used to end the command at once
    # with exit 0, the run abandoned half-way; without --json, failures exited 0
    args = example_args(inputs, tmp_path / "out")
    first = run_with_stdout_closed(*args, "--json")
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert "completed:" in first.stderr  # the summary still goes to stderr
    assert len(list((tmp_path / "out").glob("*.*"))) == N_SAMPLES
    for extra in ((), ("--json",)):  # the outputs exist now: every item fails
        again = run_with_stdout_closed(*args, *extra)
        assert again.returncode == 1, again.stderr
        assert "Traceback" not in again.stderr


def test_verbose_logs_state_changes_on_stderr(inputs: Path, tmp_path: Path) -> None:
    quiet = cli(*example_args(inputs, tmp_path / "a"))
    assert "chainlib: INFO" not in quiet.stderr
    loud = cli("-v", *example_args(inputs, tmp_path / "b"))
    assert loud.returncode == 0
    assert "chainlib: INFO chainlib: run " in loud.stderr and ": running" in loud.stderr
    assert ": completed" in loud.stderr
    level = cli("--log-level", "warning", *example_args(inputs, tmp_path / "c"))
    assert level.returncode == 0 and "INFO" not in level.stderr
    bad = cli("--log-level", "chatty", "nodes")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_other_libraries_info_logs_stay_quiet_without_verbose() -> None:
    # distributed sets its own loggers to INFO: `--cluster local:N` printed ~20 lines of them
    code = (
        "import logging, sys\n"
        "from chainlib.cli import setup_logging\n"
        "setup_logging(int(sys.argv[1]), None)\n"
        "other = logging.getLogger('distributed.scheduler'); other.setLevel(logging.INFO)\n"
        "other.info('other-info'); other.warning('other-warning')\n"
        "logging.getLogger('chainlib.run').info('own-info')\n"
    )
    quiet = subprocess.run([sys.executable, "-c", code, "0"], capture_output=True, text=True,
                           env=env(), check=True).stderr
    assert "other-info" not in quiet and "own-info" not in quiet
    assert "chainlib: WARNING distributed.scheduler: other-warning" in quiet
    verbose = subprocess.run([sys.executable, "-c", code, "1"], capture_output=True, text=True,
                             env=env(), check=True).stderr
    assert "own-info" in verbose and "other-info" not in verbose
    everything = subprocess.run([sys.executable, "-c", code, "2"], capture_output=True,
                                text=True, env=env(), check=True).stderr
    assert "other-info" in everything and "own-info" in everything


def test_validate_draws_the_chain(inputs: Path, tmp_path: Path) -> None:
    svg = tmp_path / "chain.svg"
    folder = f"load_folder.folder={inputs}"  # a folder listing no image would be an error
    proc = cli("validate", EXAMPLE, "--set", folder, "--svg", svg)
    assert proc.returncode == 0, proc.stderr
    assert f": {svg}" in proc.stdout
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "load_folder" in svg.read_text()
    unwritable = cli("validate", EXAMPLE, "--set", folder, "--svg", tmp_path / "missing" / "x.svg")
    assert unwritable.returncode == 2 and "--svg" in unwritable.stderr


@posix_only
def test_ctrl_c_without_a_save_node_does_not_hint_resume(tmp_path: Path) -> None:
    chain = cl.Chain("no files")
    src = chain.add("core.range", n=50)
    chain.add("test.wait", x=src)
    path = tmp_path / "nofiles.json"
    chain.save(path)
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainlib", "run", str(path), "--import", "cli_nodes",
         "--workers", "1", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env({"CHAINLIB_TEST_MARKS": str(marks)}),
    )
    try:
        wait_until(lambda: any(marks.iterdir()), timeout=30, what="an item in flight")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert stdout.startswith("stopped by the user:")
    assert "--resume" not in stdout and "hint" not in stdout
    # and what it would have suggested is indeed refused:
    refused = cli("run", path, "--import", "cli_nodes", "--resume")
    assert refused.returncode == 2
