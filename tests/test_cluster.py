"""The Dask scale-out: ``Runner(chain, cluster=client)`` on a real LocalCluster of 2 processes.

Same outputs and counts as the local runner; pause, resume and stop reach tasks on the workers;
a killed worker process or a lost scheduler never loses or duplicates an output.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image as PILImage

import chainlib as cl
from chainlib import samples
from chainlib.manifest import MANIFEST_NAME
from tests.conftest import wait_until

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.dask, pytest.mark.timeout(120)]

N = len(samples.names())
ITEM_NODES = ("test_slow", "resize", "save")


def new_cluster() -> tuple[object, object]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    client = distributed.Client(cluster)
    # The workers must import the custom nodes' module (pickled by reference).
    client.run(__import__, "tests.cluster_nodes")
    return cluster, client


def close_cluster(cluster: object, client: object) -> None:
    client.close()  # type: ignore[attr-defined]
    cluster.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[tuple[object, object]]:
    cluster, client = new_cluster()
    yield cluster, client
    close_cluster(cluster, client)


@pytest.fixture
def client(shared_cluster: tuple[object, object]) -> object:
    """The shared cluster's client, with both workers up (a test may have killed one)."""
    _, c = shared_cluster
    c.wait_for_workers(2, timeout=30)  # type: ignore[attr-defined]
    wait_until(lambda: len(c.scheduler_info()["workers"]) == 2, 30,  # type: ignore[attr-defined]
               "two workers")
    return c


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


def make_chain(src: Path, out: Path, *, seconds: float | None = None, marks: Path | None = None
               ) -> cl.Chain:
    import tests.cluster_nodes  # noqa: F401  (registers test.cluster_slow)

    chain = cl.Chain("cluster-test")
    load = chain.add("image.load_folder", folder=str(src), recursive=True)
    image = load["image"]
    if seconds is not None:
        image = chain.add("test.cluster_slow", id="test_slow", image=image, label=load["path"],
                          seconds=seconds, marks=str(marks or ""))
    small = chain.add("image.resize", image=image, width=48)
    chain.add("image.save", image=small, folder=str(out), name=load["name"],
              subfolder=load["subfolder"])
    return chain


def outputs(out: Path) -> list[str]:
    """Every file under ``out`` (relative POSIX paths), the manifest excluded."""
    if not out.exists():
        return []
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and not p.name.startswith(".chainlib-"))


def expected_outputs() -> list[str]:
    return sorted(os.path.splitext(n)[0] + ".png" for n in samples.names())


def temp_files(out: Path) -> list[str]:
    return [p.name for p in out.rglob(".chainlib-tmp-*")] if out.exists() else []


def assert_valid_images(out: Path) -> None:
    for rel in outputs(out):
        with PILImage.open(out / rel) as im:
            im.load()


def manifest_sources(out: Path) -> Counter[str]:
    lines = (out / MANIFEST_NAME).read_text().splitlines()
    return Counter(json.loads(line)["source"] for line in lines if line.strip())


def snapshot_files(out: Path) -> dict[str, tuple[int, int]]:
    return {rel: ((out / rel).stat().st_size, (out / rel).stat().st_mtime_ns)
            for rel in outputs(out)}


def entered(marks: Path) -> int:
    return len(list(marks.iterdir()))


def no_run_tasks(client: object, run: cl.Runner) -> bool:
    """No task of this run is assigned to any worker."""
    prefix = f"chainlib-{run.run_id}-"
    processing = client.processing()  # type: ignore[attr-defined]
    return not any(str(k).startswith(prefix) for keys in processing.values() for k in keys)


def why(s: cl.Status) -> str:
    """The failure details of a status, for assertion messages."""
    return f"{s.failures} {s.error.traceback if s.error else ''}"


def wait_done(run: cl.Runner, n: int, timeout: float = 30) -> None:
    """Wait until ``n`` items are done; fail at once (with the reason) if the run ended."""
    def reached() -> bool:
        s = run.status()
        assert s.active, f"run ended early: {s.state} {why(s)}"
        return s.done >= n
    wait_until(reached, timeout, f"{n} items done")


def start(chain: cl.Chain, client: object, **kwargs: object) -> cl.Runner:
    run = cl.Runner(chain, cluster=client, **kwargs)  # type: ignore[arg-type]
    ack = run.start()
    assert ack.accepted, ack.reason
    return run


# -- tests -------------------------------------------------------------------------------------


def test_same_outputs_counts_and_timings_as_local(client: object, inputs: Path,
                                                  tmp_path: Path) -> None:
    local = cl.Runner(make_chain(inputs, tmp_path / "local"), workers=2)
    local.start()
    ls = local.wait(60)
    events: list[cl.Event] = []
    run = cl.Runner(make_chain(inputs, tmp_path / "remote"), cluster=client)
    sub = run.subscribe(events.append)
    assert run.start().accepted
    rs = run.wait(60)
    assert (rs.state, rs.done, rs.failed, rs.total) == ("completed", N, 0, N)
    assert (ls.state, ls.done, ls.failed, ls.total) == (rs.state, rs.done, rs.failed, rs.total)
    assert outputs(tmp_path / "remote") == outputs(tmp_path / "local") == expected_outputs()
    for rel in expected_outputs():
        assert (tmp_path / "remote" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes()
    # per-node timings gathered from the workers
    assert set(rs.nodes) == {"load_folder", "resize", "save"}
    for nid, ns in rs.nodes.items():
        assert (ns.state, ns.count, ns.running) == ("done", N, 0), nid
        assert ns.total_s > 0, nid
        assert ns.count == ls.nodes[nid].count
    # a finished run: nothing in flight, nothing counting down, its active time kept
    assert rs.current == () and rs.eta is None and rs.rate is None and rs.active_s > 0
    wait_until(lambda: sum(e.kind == "item_done" for e in events) == N, 5, "item events")
    sub.close()
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert len(manifest_sources(tmp_path / "remote")) == N


def test_pause_stops_new_work_and_resume_finishes(client: object, inputs: Path, marks: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = start(make_chain(inputs, out, seconds=0.15, marks=marks), client)
    wait_done(run, 2)
    assert run.pause().accepted
    wait_until(lambda: run.status().state == "paused", 10, "paused")
    paused = run.status()
    assert paused.done < N
    # parked batches are still "in" their nodes, but nothing executes (whether a batch was in
    # flight when the pause came, or between two batches, is timing: both are fine)
    assert paused.current == () and paused.rate is None and paused.eta is None
    assert all(paused.nodes[n].state in ("paused", "pending") for n in ITEM_NODES)
    assert all(paused.nodes[n].state == "paused" for n in ITEM_NODES if paused.nodes[n].running)
    files, started = snapshot_files(out), entered(marks)
    # while paused, nothing moves anywhere (an observation window, not a synchronization)
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:
        s = run.status()
        assert (s.state, s.done, s.failed) == ("paused", paused.done, 0)
        time.sleep(0.02)
    assert snapshot_files(out) == files
    assert entered(marks) == started
    assert run.resume().accepted
    s = run.wait(60)
    assert (s.state, s.done, s.failed) == ("completed", N, 0), why(s)
    assert outputs(out) == expected_outputs()
    assert s.nodes["test_slow"].count == N
    assert s.active_s <= s.elapsed - 0.8  # paused time is kept out of the rate / ETA
    assert s.nodes["test_slow"].total_s <= 2 * s.active_s  # nor in the node's time (2 workers)
    assert_valid_images(out)


def test_stop_cancels_and_leaves_only_complete_outputs(client: object, inputs: Path,
                                                       marks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = start(make_chain(inputs, out, seconds=0.2, marks=marks), client)
    wait_done(run, 2)
    assert run.stop().accepted
    s = run.wait(30)
    assert s.state == "stopped"
    assert 2 <= s.done < N and s.failed == 0
    # "stopped" means no task of the run is still running anywhere
    assert no_run_tasks(client, run)
    assert temp_files(out) == []
    assert len(outputs(out)) == s.done  # stopped items wrote nothing
    assert_valid_images(out)
    assert len(manifest_sources(out)) == s.done
    files, started = snapshot_files(out), entered(marks)
    time.sleep(0.5)  # an observation window: nothing may change after "stopped"
    assert snapshot_files(out) == files
    assert entered(marks) == started
    assert run.stop().reason == "already stopped"


def test_killed_worker_process_outputs_exactly_once(client: object, inputs: Path, marks: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    pids: dict[str, int] = client.run(os.getpid)  # type: ignore[attr-defined]
    run = start(make_chain(inputs, out, seconds=0.25, marks=marks), client, resume=True)
    victim = sorted(pids.values())[0]
    # kill a worker while it executes an item: one of its marks is there, the item not done yet
    wait_done(run, 2)

    def victim_busy() -> bool:  # the victim entered an item whose output is not there yet
        written = {rel.replace("/", "_") for rel in outputs(out)}
        return any(p.name.endswith(f"@{victim}") and
                   os.path.splitext(p.name.split("@")[0])[0] + ".png" not in written
                   for p in marks.iterdir())

    wait_until(victim_busy, 30, "the victim busy with an item")
    os.kill(victim, signal.SIGKILL)
    s = run.wait(90)
    assert (s.state, s.done, s.failed) == ("completed", N, 0), why(s)
    assert outputs(out) == expected_outputs()
    assert_valid_images(out)
    sources = manifest_sources(out)
    assert len(sources) == N and set(sources.values()) == {1}
    assert s.nodes["save"].count == N
    # the re-run happened on another (or the respawned) worker process
    after: dict[str, int] = client.run(os.getpid)  # type: ignore[attr-defined]
    assert victim not in after.values()


def test_lost_scheduler_fails_clearly_and_resume_completes(inputs: Path, marks: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    chain = make_chain(inputs, out, seconds=0.2, marks=marks)
    cluster, client = new_cluster()
    try:
        run = start(chain, client, resume=True)
        wait_done(run, 2)
        lost_at = time.monotonic()
        cluster.close()  # type: ignore[attr-defined]
        s = run.wait(60)
        took = time.monotonic() - lost_at
        print(f"lost scheduler noticed in {took:.2f} s")
    finally:
        close_cluster(cluster, client)
    assert s.state == "failed"
    assert s.error is not None and "cluster" in s.error.message.lower(), s.error
    assert took < 30, f"noticed the lost scheduler after {took:.1f} s"
    assert s.done < N
    first = s.done
    cluster, client = new_cluster()
    try:
        run2 = start(chain, client, resume=True)  # the same chain: the manifest applies
        s2 = run2.wait(60)
    finally:
        close_cluster(cluster, client)
    assert (s2.state, s2.done, s2.failed) == ("completed", N, 0), why(s2)
    assert s2.skipped >= first
    assert outputs(out) == expected_outputs()
    assert_valid_images(out)
    sources = manifest_sources(out)
    assert len(sources) == N and set(sources.values()) == {1}


def test_bad_addresses_fail_fast_and_clearly() -> None:
    from chainlib.run.cluster import connect

    t0 = time.monotonic()
    with pytest.raises(ValueError, match="Dask scheduler"):
        connect("tcp://127.0.0.1:1")
    assert time.monotonic() - t0 < 10
    with pytest.raises(ValueError, match="local:N"):
        connect("local:x")


def test_corrupt_input_is_one_failed_item(client: object, sample_source: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = start(make_chain(sample_source, out), client, on_error="skip")
    s = run.wait(60)
    assert (s.state, s.done, s.failed, s.total) == ("completed", N, 1, N + 1)
    assert len(s.failures) == 1
    failure = s.failures[0]
    assert failure.label == samples.BROKEN and failure.node == "load_folder"
    assert samples.BROKEN in failure.message
    assert s.nodes["load_folder"].count == N  # as locally: the failed fetch is not counted
    assert outputs(out) == expected_outputs()


def test_each_worker_process_applies_a_memory_budget(tmp_path: Path) -> None:
    """A worker running two items at once (two threads) holds one decoded image at a time when
    the run's budget fits one; an image over the whole budget fails its item on the worker."""
    import tests.cluster_nodes  # noqa: F401  (registers test.cluster_budget)
    from chainlib import memory

    folder, marks = tmp_path / "in", tmp_path / "marks"
    folder.mkdir()
    marks.mkdir()
    side = 800  # 1.9 MB decoded, 3.8 MB reserved: one fits in 5 MB, two do not
    for i in range(4):
        PILImage.new("RGB", (side, side), (i, 0, 0)).save(folder / f"i{i}.png")
    PILImage.new("RGB", (1200, 1200)).save(folder / "z_big.png")  # 8.6 MB reserved
    chain = cl.Chain("budget")
    load = chain.add("image.load_folder", folder=str(folder))
    chain.add("test.cluster_budget", image=load["image"], label=load["path"], marks=str(marks))
    max_memory = 5 << 20
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                       dashboard_address=":0")
    client = distributed.Client(cluster)
    try:
        client.run(__import__, "tests.cluster_nodes")
        worker_limit = next(iter(client.scheduler_info()["workers"].values()))["memory_limit"]
        run = cl.Runner(chain, cluster=client, max_memory=max_memory, on_error="skip")
        assert run.start().accepted
        s = run.wait(60)
    finally:
        close_cluster(cluster, client)
    assert (s.state, s.done, s.failed) == ("completed", 4, 1), why(s)
    (failure,) = s.failures
    assert failure.label == "z_big.png"
    assert "more than the whole memory budget of 5 MB" in failure.message
    records = [json.loads(p.read_text()) for p in sorted(marks.iterdir())]
    assert len(records) == 4
    limit = memory.worker_limit(max_memory, worker_limit)
    one = memory.DECODE_FACTOR * side * side * 3
    for r in records:
        assert (r["limit"], r["used"]) == (limit, one), r  # only its own image held
    spans = sorted((r["start"], r["end"]) for r in records)  # one worker process
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans


def test_a_worker_budget_is_the_runs_capped_at_half_the_worker_memory_limit() -> None:
    from chainlib import memory

    assert memory.worker_limit(5 << 20, 4 << 30) == 5 << 20
    assert memory.worker_limit(8 << 30, 4 << 30) == 2 << 30
    assert memory.worker_limit(None, 4 << 30) == 2 << 30
    no_limit = memory.default_budget()  # a worker without a memory limit: half the machine
    assert memory.worker_limit(None, None) == no_limit
    assert memory.worker_limit(None, 0) == no_limit
    if no_limit is not None:
        assert memory.worker_limit(1 << 20, None) == 1 << 20


def test_cli_nodes_imported_from_a_file_run_on_a_local_cluster(tmp_path: Path) -> None:
    # `--import nodes.py --cluster local:1` failed every item with "lost the Dask cluster:
    # ModuleNotFoundError: No module named 'file_nodes'": the workers cannot import a file
    # that is on no sys.path, so its nodes travel by value, as a notebook's do
    from tests.test_cli import cli

    (tmp_path / "file_nodes.py").write_text(
        "import chainlib as cl\n\n\n"
        "@cl.node('t.file_triple')\n"
        "def triple(value: int) -> int:\n"
        "    return 3 * value\n")
    chain = {"format": "chainlib.chain", "version": 1, "name": "t", "nodes": [
        {"id": "r", "type": "core.range", "inputs": {"n": {"value": 4}}},
        {"id": "t", "type": "t.file_triple", "inputs": {"value": {"link": {"node": "r"}}}},
        {"id": "c", "type": "core.collect", "inputs": {"values": {"link": {"node": "t"}}}},
    ]}
    (tmp_path / "c.json").write_text(json.dumps(chain))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = cli("run", tmp_path / "c.json", "--import", tmp_path / "file_nodes.py",
               "--cluster", "local:1", "--no-progress", "--json", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    end = json.loads(proc.stdout.splitlines()[-1])
    assert (end["state"], end["done"], end["failed"]) == ("completed", 4, 0), end


def test_a_batch_the_workers_cannot_load_is_not_a_lost_cluster(client: object, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    # a node module importable here (sys.path changed at run time) but not on the workers:
    # every batch fails to unpickle there; it was reported as "lost the Dask cluster"
    (tmp_path / "client_only_nodes.py").write_text(
        "import chainlib as cl\n\n\n"
        "@cl.node('t.client_only')\n"
        "def client_only(value: int) -> int:\n"
        "    return value\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import client_only_nodes  # noqa: F401  (registers t.client_only)

    chain = cl.Chain("client-only")
    chain.add("core.collect", values=chain.add("t.client_only", value=chain.add("core.range",
                                                                                 n=3)))
    s = start(chain, client).wait(60)
    assert s.state == "failed"
    assert s.error is not None
    assert "failed on the Dask cluster, outside any node" in s.error.message, s.error
    assert "client_only_nodes" in s.error.message and "lost" not in s.error.message


def test_ctx_workers_counts_every_worker_process_on_the_machine(client: object) -> None:
    """ONNX Runtime's intra-op threads are cores // ctx.workers: with two worker processes of
    one thread on this machine, each must see 2 (it saw 1, and both used every core)."""
    import tests.cluster_nodes  # noqa: F401  (registers test.cluster_workers)

    chain = cl.Chain("threads")
    src = chain.add("core.range", n=4)
    seen = chain.add("test.cluster_workers", n=src)
    chain.add("core.collect", values=seen, id="all")
    run = cl.Runner(chain, cluster=client)
    assert run.start().accepted
    assert run.wait(60).state == "completed"
    assert run.result("all") == [2, 2, 2, 2]


def test_a_video_chain_runs_on_the_cluster(client: object, tmp_path: Path) -> None:
    """video.frames' items (decoded frames) travel to the workers; the frames are upscaled
    there and the video is encoded from the saved sequence."""
    av = pytest.importorskip("av")
    pytest.importorskip("onnxruntime")
    clip = str(samples.video(tmp_path / "clip.mp4", frames=8))
    model = str(samples.model(tmp_path / "x2.onnx", scale=2))
    out = tmp_path / "out"
    chain = cl.Chain("video-on-dask")
    src = chain.add("video.frames", path=clip)
    big = chain.add("image.upscale", image=src["image"], model=model)
    saved = chain.add("image.save", image=big, folder=str(out / "frames"), name=src["name"])
    chain.add("video.save", images=saved, path=str(out / "big.mp4"), source=clip,
              frames=str(out / "frames"), id="encode")
    run = cl.Runner(chain, cluster=client, resume=True)
    assert run.start().accepted
    s = run.wait(90)
    assert (s.state, s.done, s.failed) == ("completed", 8, 0), s.error
    with av.open(str(out / "big.mp4")) as c:
        stream = c.streams.video[0]
        assert (stream.width, stream.height) == (320, 240)
        assert sum(1 for _ in c.decode(stream)) == 8
