"""The command line, run as a real subprocess (``python -m chainlib``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from PIL import Image as PILImage

import chainlib as cl
from chainlib import samples
from chainlib.manifest import MANIFEST_NAME
from tests.conftest import wait_until

TESTS = Path(__file__).resolve().parent
EXAMPLE = TESTS.parent / "examples" / "resize_folder.json"
N_SAMPLES = len(samples.names())

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")


def env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), e.get("PYTHONPATH")]))
    e.pop("CHAINLIB_TEST_DELAY", None)
    e.pop("CHAINLIB_TEST_MARKS", None)
    e.update(extra or {})
    return e


def cli(*args: object, extra_env: Mapping[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainlib", *map(str, args)],
        capture_output=True, text=True, env=env(extra_env), cwd=cwd, timeout=60,
    )


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


def outputs(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and not p.name.startswith(".chainlib-"))


def expected_outputs(ext: str) -> list[str]:
    return sorted(os.path.splitext(n)[0] + ext for n in samples.names())


def assert_valid_images(out: Path) -> None:
    for rel in outputs(out):
        with PILImage.open(out / rel) as im:
            im.load()


def manifest_records(out: Path) -> list[dict[str, object]]:
    path = out / MANIFEST_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


# -- run ---------------------------------------------------------------------------------------


def test_run_success_prints_a_summary_and_exits_0(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = cli("run", EXAMPLE, "--set", f"load_folder.folder={inputs}",
               "--set", f"save.folder={out}", "--set", "resize.width=40", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert f"completed: {N_SAMPLES} done, 0 failed (of {N_SAMPLES} items)" in proc.stdout
    assert f"output folder: {out}" in proc.stdout
    assert f"{N_SAMPLES}/{N_SAMPLES}" in proc.stderr  # the progress bar, on stderr
    assert "item/s" in proc.stderr
    assert outputs(out) == expected_outputs(".jpg")
    for rel in outputs(out):
        with PILImage.open(out / rel) as im:
            assert im.format == "JPEG" and im.width <= 40  # resize.width=40 was read as a number
    assert len(manifest_records(out)) == N_SAMPLES


def test_run_with_a_failed_item_exits_1_and_names_it(sample_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = cli("run", EXAMPLE, "--set", f"load_folder.folder={sample_source}",
               "--set", f"save.folder={out}", "--set", "resize.width=16", "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert f"completed with failures: {N_SAMPLES} done, 1 failed" in proc.stdout
    assert "failed items:" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith(samples.BROKEN))
    assert str(sample_source / samples.BROKEN) in line and "corrupt" in line
    assert len(outputs(out)) == N_SAMPLES


def test_run_on_error_stop_exits_1(sample_source: Path, tmp_path: Path) -> None:
    proc = cli("run", EXAMPLE, "--set", f"load_folder.folder={sample_source}",
               "--set", f"save.folder={tmp_path / 'out'}", "--on-error", "stop", "--workers", "1",
               "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("run failed:")
    assert samples.BROKEN in proc.stdout


def test_rerun_without_resume_fails_items_and_hints(inputs: Path, tmp_path: Path) -> None:
    args = ("run", EXAMPLE, "--set", f"load_folder.folder={inputs}",
            "--set", f"save.folder={tmp_path / 'out'}", "--set", "resize.width=16",
            "--no-progress")
    assert cli(*args).returncode == 0
    again = cli(*args)
    assert again.returncode == 1
    assert "already exists" in again.stdout and "--resume" in again.stdout
    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stdout
    assert f"{N_SAMPLES} of them already complete (skipped)" in resumed.stdout


def test_invalid_chain_exits_2_naming_the_node(tmp_path: Path) -> None:
    data = json.loads(EXAMPLE.read_text())
    data["nodes"][1]["type"] = "image.resise"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    assert_user_error(cli("run", path), "node 'resize'", "unknown node type 'image.resise'")
    assert_user_error(cli("validate", path), "node 'resize'")


def test_malformed_chain_file_exits_2_with_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(EXAMPLE.read_text()[:200])
    assert_user_error(cli("run", path), "invalid JSON", str(path))
    data = json.loads(EXAMPLE.read_text())
    data["nodes"][2]["inputs"]["quality"] = 90
    path.write_text(json.dumps(data))
    assert_user_error(cli("run", path), "$.nodes[2].inputs.quality", "node 'save'",
                      "input 'quality'")


def test_missing_chain_file_exits_2(tmp_path: Path) -> None:
    assert_user_error(cli("run", tmp_path / "nope.json"), "nope.json", "cannot read")


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["run"],
    ["run", str(EXAMPLE), "--workers", "0"],
    ["run", str(EXAMPLE), "--workers", "many"],
    ["run", str(EXAMPLE), "--on-error", "ignore"],
    ["run", str(EXAMPLE), "--bogus"],
    ["run", str(EXAMPLE), "--set", "resize"],
    ["validate"],
])
def test_bad_arguments_exit_2(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip()


def test_unknown_set_node_or_input_exits_2() -> None:
    assert_user_error(cli("run", EXAMPLE, "--set", "resise.width=3"),
                      "no node 'resise'", "load_folder, resize, save")
    assert_user_error(cli("validate", EXAMPLE, "--set", "resize.widht=3"),
                      "no input 'widht'", "width")
    assert_user_error(cli("validate", EXAMPLE, "--set", "resize.width=wide"),
                      "node 'resize', input 'width'", "expected int")


def test_resume_without_an_output_folder_exits_2(tmp_path: Path) -> None:
    chain = cl.Chain()
    chain.add("core.collect", values=chain.add("core.range", n=3))
    chain.save(tmp_path / "c.json")
    assert_user_error(cli("run", tmp_path / "c.json", "--resume"), "output folder")
    ok = cli("run", tmp_path / "c.json", "--no-progress")
    assert ok.returncode == 0 and "completed: 3 done, 0 failed (of 3 items)" in ok.stdout


def test_a_missing_input_folder_is_bad_input_for_validate_and_run_alike(tmp_path: Path) -> None:
    sets = ["--set", f"load_folder.folder={tmp_path / 'missing'}",
            "--set", f"save.folder={tmp_path / 'out'}"]
    run = cli("run", EXAMPLE, *sets, "--no-progress")
    check = cli("validate", EXAMPLE, *sets)
    for proc in (run, check):
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert "node 'load_folder', input 'folder'" in proc.stderr
        assert "does not exist" in proc.stderr
    assert run.stderr == check.stderr  # validate says exactly what run would
    assert not (tmp_path / "out").exists()


# -- validate, nodes, --import -----------------------------------------------------------------


def test_an_input_listing_no_file_is_bad_input_for_validate_and_run_alike(
        tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    sets = ["--set", f"load_folder.folder={tmp_path / 'in'}",
            "--set", f"save.folder={tmp_path / 'out'}"]
    run = cli("run", EXAMPLE, *sets)  # with the progress bar: none may appear
    check = cli("validate", EXAMPLE, *sets)
    for proc in (run, check):
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert proc.stdout == ""
        assert proc.stderr == (f"chainlib: error: node 'load_folder': no image file in "
                               f"{str(tmp_path / 'in')!r} matches '*'; nothing to run\n")
    assert not (tmp_path / "out").exists()
    narrow = cli("validate", EXAMPLE, *sets, "--set", "load_folder.pattern=x*.png")
    assert_user_error(narrow, "matches 'x*.png'; nothing to run")


def test_an_in_place_folder_holding_only_its_outputs_is_nothing_to_run(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    PILImage.new("RGB", (8, 8)).save(folder / "a.png")
    sets = ["--set", f"load_folder.folder={folder}", "--set", f"save.folder={folder}",
            "--set", "load_folder.pattern=*.jpg"]
    assert cli("run", EXAMPLE, *sets[:4], "--no-progress").returncode == 0  # writes a.jpg
    assert (folder / "a.jpg").is_file()
    proc = cli("validate", EXAMPLE, *sets)
    assert_user_error(proc, "matches '*.jpg' except the 1 this chain wrote there (its outputs "
                      "are never taken as inputs); nothing to run")


def test_a_runner_over_an_empty_folder_completes(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    chain = cl.Chain.load(EXAMPLE)
    chain.set("load_folder", "folder", str(tmp_path / "in"))
    chain.set("save", "folder", str(tmp_path / "out"))
    runner = cl.Runner(chain, workers=2)
    assert runner.start().accepted
    st = runner.wait(timeout=30)
    assert (st.state, st.total, st.done, st.failed) == ("completed", 0, 0, 0)


def test_validate_ok(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    PILImage.new("RGB", (8, 8)).save(tmp_path / "in" / "a.png")
    proc = cli("validate", EXAMPLE, "--set", f"load_folder.folder={tmp_path / 'in'}",
               "--set", "save.folder=elsewhere")
    assert proc.returncode == 0, proc.stderr
    assert "valid chain 'resize a folder' with 3 nodes" in proc.stdout
    assert "resize (image.resize" in proc.stdout
    assert "elsewhere" in proc.stdout
    assert "items: 1\n" in proc.stdout


def test_nodes_lists_every_node_with_inputs_and_defaults() -> None:
    proc = cli("nodes")
    assert proc.returncode == 0
    text = proc.stdout
    assert "image.resize (node)" in text
    assert "in   width: int = 0" in text
    assert "in   image: Image (required)" in text
    assert "image.load_folder (iterator)" in text
    assert "image.contact_sheet (collector)" in text
    for spec_id in ("core.range", "image.save", "image.gaussian_blur", "image.caption"):
        assert spec_id in text


def test_nodes_json_and_pattern() -> None:
    proc = cli("nodes", "--json")
    assert proc.returncode == 0
    specs = {d["id"]: d for d in json.loads(proc.stdout)}
    resize = specs["image.resize"]
    inputs = {i["name"]: i for i in resize["inputs"]}
    assert inputs["width"] == {"name": "width", "type": "int", "default": 0,
                               "range": {"min": 0, "max": 65535}}
    assert "default" not in inputs["image"]
    assert resize["outputs"] == [{"name": "image", "type": "Image"}]
    only = json.loads(cli("nodes", "image.re*", "--json").stdout)
    assert {d["id"] for d in only} == {"image.resize"}
    assert_user_error(cli("nodes", "no.such.*"), "no node type matches")


def test_import_registers_custom_nodes() -> None:
    by_name = cli("nodes", "test.*", "--import", "cli_nodes")
    assert by_name.returncode == 0, by_name.stderr
    assert "test.slow (node)" in by_name.stdout and "test.stubborn (node)" in by_name.stdout
    by_path = cli("nodes", "test.slow", "--json", "--import", TESTS / "cli_nodes.py",
                  extra_env={"PYTHONPATH": ""})
    assert by_path.returncode == 0, by_path.stderr
    assert [d["id"] for d in json.loads(by_path.stdout)] == ["test.slow"]


def test_import_errors_exit_2(tmp_path: Path) -> None:
    assert_user_error(cli("nodes", "--import", "no_such_module_xyz"),
                      "--import no_such_module_xyz", "no module named")
    broken = tmp_path / "broken_nodes.py"
    broken.write_text("import chainlib\nraise RuntimeError('boom')\n")
    assert_user_error(cli("nodes", "--import", broken), "RuntimeError: boom", "broken_nodes.py:2")
    assert_user_error(cli("nodes", "--import", tmp_path / "absent.py"), "no such file")


def test_help_and_version() -> None:
    proc = cli("--help")
    assert proc.returncode == 0 and "run" in proc.stdout and "Exit codes" in proc.stdout
    proc = cli("run", "--help")
    assert proc.returncode == 0
    for option in ("--set", "--workers", "--resume", "--on-error", "--import", "--cluster"):
        assert option in proc.stdout
    proc = cli("--version")
    assert proc.returncode == 0 and cl.__version__ in proc.stdout


def test_console_script() -> None:
    script = Path(sys.executable).with_name("chainlib")
    if not script.exists():
        pytest.skip("the chainlib console script is not installed next to this Python")
    proc = subprocess.run([str(script), "nodes", "image.resize"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "image.resize (node)" in proc.stdout


def test_cluster_errors_exit_2(inputs: Path) -> None:
    proc = cli("run", EXAMPLE, "--set", f"load_folder.folder={inputs}", "--cluster", "local:0")
    assert_user_error(proc, "--cluster local:0", "at least one worker")


# -- demo --------------------------------------------------------------------------------------


def test_demo(tmp_path: Path) -> None:
    home, here = tmp_path / "home", tmp_path / "cwd"
    here.mkdir()
    out = home / ".cache" / "chainlib" / "demo-out"  # the default: a cache folder, not the cwd
    extra = {"CHAINLIB_SAMPLES": str(tmp_path / "samples"), "HOME": str(home),
             "XDG_CACHE_HOME": "", "CHAINLIB_DEMO_OUT": ""}
    proc = cli("demo", "--workers", "2", extra_env=extra, cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert f"demo: writing into {out}" in proc.stdout
    assert f"completed: {N_SAMPLES} done, 0 failed" in proc.stdout
    assert f"output folder: {out}" in proc.stdout
    assert f"contact sheet: {out / 'contact_sheet.png'}" in proc.stdout
    assert f"{N_SAMPLES}/{N_SAMPLES}" in proc.stderr
    assert list(here.iterdir()) == []  # nothing in the current folder
    assert outputs(out) == sorted([*expected_outputs(".png"), "contact_sheet.png"])
    assert_valid_images(out)
    with PILImage.open(out / "gradient.png") as im:
        assert max(im.size) == 256
    with PILImage.open(out / "contact_sheet.png") as im:
        assert im.width > 256 and im.height > 256
    env_out = tmp_path / "from-env"
    by_env = cli("demo", "--no-progress", extra_env={**extra, "CHAINLIB_DEMO_OUT": str(env_out)})
    assert by_env.returncode == 0 and (env_out / "contact_sheet.png").is_file()
    # run again into the same folder (given explicitly): it replaces the outputs
    again = cli("demo", "--out", out, "--no-progress", "-w", "1", extra_env=extra)
    assert again.returncode == 0, again.stdout
    assert outputs(out) == sorted([*expected_outputs(".png"), "contact_sheet.png"])


def test_demo_never_replaces_files_it_did_not_write(tmp_path: Path) -> None:
    # it used to: `chainlib demo --out ~/Pictures` replaced the user's gradient.png
    extra = {"CHAINLIB_SAMPLES": str(tmp_path / "samples")}
    out = tmp_path / "pictures"
    out.mkdir()
    mine = out / "gradient.png"
    mine.write_bytes(b"the user's own file")
    proc = cli("demo", "--out", out, "--no-progress", extra_env=extra)
    assert_user_error(proc, f"--out {out}: {str(mine)!r} exists and was not written by chainlib")
    assert proc.stderr.count("\n") == 1
    assert mine.read_bytes() == b"the user's own file"
    assert sorted(p.name for p in out.iterdir()) == ["gradient.png"]
    mine.unlink()
    assert cli("demo", "--out", out, "--no-progress", extra_env=extra).returncode == 0
    again = cli("demo", "--out", out, "--no-progress", extra_env=extra)  # its own: replaced
    assert again.returncode == 0, again.stderr
    (out / "contact_sheet.png").write_bytes(b"edited since")  # no longer chainlib's
    proc = cli("demo", "--out", out, "--no-progress", extra_env=extra)
    assert_user_error(proc, "contact_sheet.png' exists and was not written by chainlib")
    assert (out / "contact_sheet.png").read_bytes() == b"edited since"


# -- Ctrl-C ------------------------------------------------------------------------------------


def slow_chain(tmp_path: Path, inputs: Path, out: Path, node: str) -> Path:
    chain = cl.Chain("slow")
    src = chain.add("image.load_folder", folder=str(inputs), recursive=True)
    slow = chain.add(node, image=src["image"], label=src["path"])
    small = chain.add("image.resize", image=slow, width=32)
    chain.add("image.save", image=small, folder=str(out), name=src["name"],
              subfolder=src["subfolder"])
    path = tmp_path / "slow.json"
    chain.save(path)
    return path


class StderrReader:
    """Collects a subprocess's stderr on a thread, so a test can wait for a message."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        self._stream = proc.stderr
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while chunk := os.read(self._stream.fileno(), 4096):
            with self._lock:
                self._chunks.append(chunk)

    @property
    def text(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def join(self) -> str:
        self._thread.join(10)
        return self.text


@posix_only
def test_sigint_stops_gracefully_and_resume_finishes(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    chain = slow_chain(tmp_path, inputs, out, "test.slow")
    args = [sys.executable, "-m", "chainlib", "run", str(chain), "--import", "cli_nodes",
            "--workers", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env({"CHAINLIB_TEST_DELAY": "0.25"}))
    try:
        wait_until(lambda: len(manifest_records(out)) >= 3, timeout=30, what="3 items saved")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = (b.decode() for b in proc.communicate(timeout=30))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert "stopping after the current items" in stderr and "Ctrl-C again" in stderr
    assert "Traceback" not in stderr
    assert stdout.startswith("stopped by the user:")
    assert "--resume" in stdout
    assert not list(out.rglob(".chainlib-tmp-*"))
    saved = outputs(out)
    assert 3 <= len(saved) < N_SAMPLES
    assert len(manifest_records(out)) == len(saved)
    assert_valid_images(out)

    resumed = cli("run", chain, "--import", "cli_nodes", "--workers", "2", "--resume")
    assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
    assert resumed.stdout.startswith(
        f"completed: {N_SAMPLES} done, {len(saved)} of them already complete (skipped), 0 failed")
    assert outputs(out) == expected_outputs(".png")  # every output exactly once
    assert_valid_images(out)
    records = manifest_records(out)
    assert len(records) == N_SAMPLES
    assert len({r["source"] for r in records}) == N_SAMPLES
    assert not list(out.rglob(".chainlib-tmp-*"))


@posix_only
def test_second_sigint_quits_at_once(inputs: Path, tmp_path: Path) -> None:
    out, marks = tmp_path / "out", tmp_path / "marks"
    marks.mkdir()
    chain = slow_chain(tmp_path, inputs, out, "test.stubborn")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainlib", "run", str(chain), "--import", "cli_nodes",
         "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env({"CHAINLIB_TEST_DELAY": "60", "CHAINLIB_TEST_MARKS": str(marks)}),
    )
    reader = StderrReader(proc)
    try:
        wait_until(lambda: any(marks.iterdir()), timeout=30, what="the first item in flight")
        proc.send_signal(signal.SIGINT)
        wait_until(lambda: "stopping after the current items" in reader.text, timeout=10,
                   what="the stopping message")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = reader.join()  # before communicate(), which would race the reader for stderr
        proc.communicate()
    assert "quitting now" in stderr
    assert outputs(out) == []
