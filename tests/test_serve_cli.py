"""``chainlib run --serve`` controlled from a second process (``chainlib status|pause|...``)."""

from __future__ import annotations

import http.server
import io
import re
import threading
from pathlib import Path

import httpx
import pytest

import chainlib as cl
from chainlib.serve.terminal import parse_address, remote_command, remote_status
from tests.serve_nodes import tick_chain
from tests.served_cli import ServedRun, cli


def test_a_cli_run_is_controlled_from_another_process(served: ServedRun) -> None:
    assert "?token=" in served.url
    s = served.wait_state("running")
    assert s["run_id"]
    proc = cli("pause", served.url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("pause: accepted (pause requested)")
    served.wait_state("paused")
    proc = cli("pause", served.url)  # idempotent, says so
    assert (proc.returncode, proc.stdout.splitlines()[0]) == (0, "pause: accepted (already paused)")
    proc = cli("status", served.url)
    assert proc.returncode == 0 and re.match(r"run \w+ #\d+ paused: \d+/100000 done", proc.stdout)
    assert cli("resume", served.url).returncode == 0
    served.wait_state("running")
    proc = cli("stop", served.url)
    assert proc.returncode == 0 and "stop: accepted" in proc.stdout
    out, _ = served.proc.communicate(timeout=30)
    assert served.proc.returncode == 130  # the summary's exit code for a stopped run
    assert "stopped" in out


def test_remote_commands_report_rejections_and_bad_urls(served: ServedRun) -> None:
    served.wait_state("running")
    proc = cli("resume", served.url)
    assert proc.returncode == 0 and "already running" in proc.stdout
    base = served.url.split("?")[0]
    proc = cli("pause", base)
    assert proc.returncode == 2 and "no token" in proc.stderr
    proc = cli("pause", base + "?token=wrong")
    assert proc.returncode == 3 and "HTTP 403: invalid token" in proc.stderr
    proc = cli("status", "not a url")
    assert proc.returncode == 2 and "not an http(s) URL" in proc.stderr
    assert served.status()["state"] == "running"  # nothing changed
    cli("stop", served.url)
    served.proc.communicate(timeout=30)
    proc = cli("status", served.url, timeout=30)
    assert proc.returncode == 3 and "cannot reach" in proc.stderr


def test_a_cli_run_cannot_be_started_again_through_its_server(served: ServedRun) -> None:
    """The CLI starts its run once and exits when it ends: a `start` accepted just after the end
    started a second run that the exiting process abandoned half done (exit 0)."""
    served.wait_state("running")
    base, token = served.url.split("/?token=")
    with httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"}) as c:
        before = c.get("/status").json()
        ack = c.post("/commands", json={"command": "start", "id": 4}).json()
        assert (ack["id"], ack["command"], ack["accepted"]) == (4, "start", False)
        assert "chainlib run" in ack["reason"] and "run the command again" in ack["reason"]
        assert ack["status"]["run_id"] == before["run_id"]
        assert c.post("/commands", json={"command": "stop"}).json()["accepted"]
    served.proc.communicate(timeout=30)
    assert served.proc.returncode == 130


def test_serve_addresses_parse_or_fail_clearly() -> None:
    assert parse_address("8765") == ("127.0.0.1", 8765)
    assert parse_address("0.0.0.0:0") == ("0.0.0.0", 0)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    assert parse_address("localhost:1") == ("localhost", 1)
    for bad, needle in (("x", "must be a number"), ("1:2:3", "IPv6 in brackets"),
                        ("[::1]9", "[IPV6]:PORT"), ("99999", "0..65535"), (":80", "[HOST:]PORT")):
        with pytest.raises(ValueError, match=re.escape(needle)):
            parse_address(bad)


def test_serving_beyond_loopback_needs_allow_remote(tmp_path: Path) -> None:
    chain = tmp_path / "ticks.json"
    tick_chain(items=3, ms=1).save(chain)
    proc = cli("run", str(chain), "--import", "serve_nodes", "--serve", "0.0.0.0:0")
    assert proc.returncode == 2 and "--allow-remote" in proc.stderr
    proc = cli("run", str(chain), "--import", "serve_nodes", "--no-progress", "--serve",
               "0.0.0.0:0", "--allow-remote")
    assert proc.returncode == 0, proc.stderr
    # warned once, in the CLI's words (not also as a Python warning naming a chainlib line)
    warnings = [line for line in proc.stderr.splitlines() if "beyond this machine" in line]
    assert len(warnings) == 1 and warnings[0].startswith("chainlib: WARNING:"), proc.stderr
    assert "RuntimeWarning" not in proc.stderr


def test_status_escapes_the_names_and_messages_it_prints(tmp_path: Path) -> None:
    """Error messages name files and nodes: `chainlib status URL` escapes their control
    characters as `chainlib run` does (an escape sequence drove the terminal, a newline forged
    a line)."""
    hostile = "bad \x1b[31mred\x1b[0m\nchainlib: forged line"

    @cl.node("serve_test.hostile_failure")
    def fail(x: int) -> int:
        raise ValueError(hostile)

    chain = cl.Chain("c")
    chain.add("serve_test.hostile_failure", x=chain.add("core.range", n=2))
    run = cl.Runner(chain)
    with run.serve(announce=None) as srv:
        run.start()
        assert run.wait(10).state == "failed"
        out, err = io.StringIO(), io.StringIO()
        assert remote_status(srv.url, as_json=False, out=out, err=err) == 0
    text = out.getvalue()
    assert "\x1b" not in text and "\nchainlib: forged" not in text
    assert "bad \\x1b[31mred\\x1b[0m\\nchainlib: forged line" in text
    assert len(text.splitlines()) == 2


class _NotChainlib(http.server.BaseHTTPRequestHandler):
    """Another web app on the port the URL names: answers 200 to everything, not a snapshot."""

    def _answer(self) -> None:
        body = b'{"hello": "world"}' if "json" in self.path else b"<html>hi</html>"
        self.send_response(200)
        self.send_header("content-type", "application/json" if b"{" in body else "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("command", ["status", "status --json", "pause", "stop"])
def test_a_url_of_another_kind_of_server_is_exit_3_not_a_traceback(command: str) -> None:
    # /status answers JSON that is not a snapshot; the POST answers HTML (no JSON at all)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotChainlib)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for path in ("/json", "/"):
            url = f"http://127.0.0.1:{srv.server_address[1]}{path}?token=abc"
            out, err = io.StringIO(), io.StringIO()
            name, *flags = command.split()
            if name == "status":
                code = remote_status(url, as_json=bool(flags), out=out, err=err)
            else:
                code = remote_command(url, name, out=out, err=err)
            assert code == 3, err.getvalue()
            assert "is not a chainlib control server" in err.getvalue()
            assert out.getvalue() == ""
    finally:
        srv.shutdown()
        srv.server_close()
