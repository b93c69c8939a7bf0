"""B10 control server: what travels over HTTP while a run floods the runner with events.

(a) Events on the wire: a node calls ``ctx.progress`` about ``--rate`` times a second for
    ``--seconds`` s while a client reads ``GET /events``; counted per second: ``status`` events
    and heartbeats. Goals: steady state <= 10 events/s; the final state is the last event.
    Baseline: the producer's event rate (runner seq changes per second).
(b) Click -> ack over HTTP: ``--commands`` alternating pause / resume ``POST /commands`` on a
    keep-alive connection, while the run works. Goal: p99 <= 50 ms on loopback. Baselines in the
    same run: the same commands through the Python API (in process), and ``GET /status``.
(c) The truth on screen after a cut: the web page in Chromium (Playwright), the server's
    connection cut for ``--cut`` s (fault injection) while the run is paused behind the page's
    back; time from the end of the cut to the page showing the true state. Goal: <= 1 s.
    Skipped with ``--no-browser``.

    python benchmarks/b10_server.py [--seconds 10] [--rate 100000] [--commands 200] [--cut 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paced  # noqa: F401  (registers bench.paced; benchmarks/ is the script's folder)

import chainlib as cl
from chainlib.serve import ServeFaults, serve
from chainlib.serve.client import _iter_sse


@cl.node("bench.checkpointing")
def bench_checkpointing(ctx: cl.Context, x: int) -> int:
    for _ in range(20):
        time.sleep(0.005)
        ctx.checkpoint()
    return x


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def wire_events(seconds: float, rate: float) -> None:
    chain = cl.Chain("b10")
    chain.add("bench.paced", x=chain.add("core.range", n=1), rate=rate, seconds=seconds)
    run = cl.Runner(chain)
    srv = serve(run, announce=None)
    received: list[tuple[float, str, dict[str, object]]] = []
    connected = threading.Event()

    def read() -> None:
        with httpx.Client(timeout=httpx.Timeout(10, read=seconds + 30)) as client, client.stream(
                "GET", f"{srv.base_url}/events",
                headers={"authorization": f"Bearer {srv.token}"}) as response:
            connected.set()
            for event, data, _ in _iter_sse(response.iter_lines()):
                received.append((time.monotonic(), event, json.loads(data)))
                if event == "status" and json.loads(data)["state"] == "completed":
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    connected.wait(10)
    seq0 = run.status().seq
    t_start = time.monotonic()
    run.start()
    final = run.wait(seconds + 60)
    t_end = time.monotonic()
    reader.join(10)
    srv.close()
    produced = final.seq - seq0
    duration = t_end - t_start
    statuses = [r for r in received if r[1] == "status" and r[0] >= t_start]
    buckets: list[int] = []
    s = t_start + 1.0
    while s + 1.0 <= t_end - 0.5:
        buckets.append(sum(1 for r in received if s <= r[0] < s + 1.0))
        s += 1.0
    last = received[-1] if received else None
    final_ok = last is not None and last[1] == "status" and last[2]["seq"] == final.seq
    print(f"(a) events on the wire — producer {produced / duration:,.0f} events/s for "
          f"{duration:.1f} s ({produced:,} events)")
    print(f"{'measure':<46}{'value':>14}{'goal':>10}")
    if buckets:
        print(f"{'SSE events/s (steady, mean)':<46}{statistics.mean(buckets):>14.1f}"
              f"{'<= 10':>10}")
        print(f"{'SSE events/s (steady, max 1-s bucket)':<46}{max(buckets):>14d}{'<= 10':>10}")
    print(f"{'status events total':<46}{len(statuses):>14d}")
    print(f"{'reduction (producer events / status events)':<46}"
          f"{produced / max(1, len(statuses)):>13,.0f}x")
    print(f"{'final state was the last event':<46}{'yes' if final_ok else 'NO':>14}{'yes':>10}")


def click_to_ack(n: int) -> None:
    chain = cl.Chain("b10")
    chain.add("bench.checkpointing", x=chain.add("core.range", n=1_000_000))
    run = cl.Runner(chain, workers=2)
    srv = serve(run, announce=None)
    run.start()
    http: list[float] = []
    api: list[float] = []
    get: list[float] = []
    with httpx.Client(base_url=srv.base_url,
                      headers={"authorization": f"Bearer {srv.token}"}) as client:
        for i in range(n):
            name = "pause" if i % 2 == 0 else "resume"
            t0 = time.perf_counter()
            response = client.post("/commands", json={"command": name, "id": i})
            http.append(time.perf_counter() - t0)
            assert response.json()["accepted"], response.text
            t0 = time.perf_counter()
            client.get("/status").raise_for_status()
            get.append(time.perf_counter() - t0)
            time.sleep(0.005)
        for i in range(n):
            t0 = time.perf_counter()
            assert run.command("pause" if i % 2 == 0 else "resume").accepted
            api.append(time.perf_counter() - t0)
            time.sleep(0.005)
    run.stop()
    run.wait(30)
    srv.close()
    print(f"\n(b) click -> ack, {n} alternating pause/resume commands while the run works")
    print(f"{'path':<34}{'p50':>10}{'p99':>10}{'max':>10}{'goal p99':>10}")
    for label, values, goal in (("POST /commands (HTTP, loopback)", http, "<= 50 ms"),
                                ("GET /status (HTTP round trip)", get, ""),
                                ("Runner.command (in process)", api, "")):
        print(f"{label:<34}{pct(values, 50) * 1e3:>8.2f}ms{pct(values, 99) * 1e3:>8.2f}ms"
              f"{max(values) * 1e3:>8.2f}ms{goal:>10}")
    print(f"{'HTTP ack p99 / GET /status p99':<34}{pct(http, 99) / pct(get, 99):>9.2f}x")


def truth_after_cut(cut: float) -> None:
    from tests.e2e.serve_page import open_page, wait_state

    chain = cl.Chain("b10")
    chain.add("bench.checkpointing", x=chain.add("core.range", n=1_000_000))
    run = cl.Runner(chain, workers=2)
    srv = serve(run, announce=None, fault_injection=ServeFaults())
    run.start()
    with open_page(srv.url) as page:
        wait_state(page, "running", 10)
        srv.cut(cut)
        t_cut = time.monotonic()
        wait_state(page, "disconnected", cut)
        run.pause()
        while time.monotonic() < t_cut + cut:
            time.sleep(0.01)
        t_back = time.monotonic()
        wait_state(page, "paused", 5)
        shown = time.monotonic() - t_back
    run.stop()
    run.wait(30)
    srv.close()
    print(f"\n(c) truth on screen after a {cut:.0f} s cut (Chromium, the plain page)")
    print(f"{'cut ends -> page shows paused':<46}{shown:>13.3f}s{'<= 1 s':>10}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=100_000)
    ap.add_argument("--commands", type=int, default=200)
    ap.add_argument("--cut", type=float, default=10.0)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    print("B10 control server")
    wire_events(args.seconds, args.rate)
    click_to_ack(args.commands)
    if not args.no_browser:
        truth_after_cut(args.cut)


if __name__ == "__main__":
    main()
