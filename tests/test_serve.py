"""The control server over real HTTP on a loopback port: routes, security, SSE (closing, fault
injection and RemoteRun: ``test_serve_remote.py``)."""

from __future__ import annotations

import html
import json
import re
import socket
from collections.abc import Iterator

import httpx
import pytest

import chainlib as cl
from chainlib.serve import ControlServer, serve
from chainlib.serve.security import cookie_name
from tests.conftest import Gates, wait_until
from tests.serve_helpers import EventReader, progress_chain

ROUTES = [("GET", "/"), ("GET", "/status"), ("GET", "/events"), ("POST", "/commands"),
          ("GET", "/info"), ("GET", "/gallery"), ("GET", "/nope")]


@pytest.fixture
def client(server: ControlServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10,
                      headers={"authorization": f"Bearer {server.token}"}) as c:
        yield c


def command(client: httpx.Client, name: str, msg_id: int = 1) -> httpx.Response:
    return client.post("/commands", json={"command": name, "id": msg_id})


# ---------------------------------------------------------------- status and commands


def test_status_is_the_runners_snapshot(server: ControlServer, client: httpx.Client,
                                        gated_run: cl.Runner) -> None:
    r = client.get("/status")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body == json.loads(json.dumps(gated_run.status().to_dict(max_failures=20)))
    assert (body["state"], body["seq"], body["run_id"]) == ("idle", 0, "")


def test_commands_drive_the_run_and_answer_the_python_ack(
        server: ControlServer, client: httpx.Client, gated_run: cl.Runner, gates: Gates) -> None:
    r = command(client, "start", 7)
    assert r.status_code == 200
    ack = r.json()
    assert set(ack) == {"id", "command", "accepted", "reason", "status"}
    assert (ack["id"], ack["command"], ack["accepted"], ack["reason"]) == (7, "start", True,
                                                                           "started")
    assert ack["status"]["state"] == "running" and ack["status"]["run_id"] == gated_run.run_id
    gates.wait_entered()
    ack = command(client, "pause", 8).json()
    assert ack["accepted"] and ack["status"]["state"] in ("pausing", "paused")
    wait_until(lambda: gated_run.status().state == "paused", what="paused")
    assert client.get("/status").json()["state"] == "paused"
    assert command(client, "resume", 9).json()["status"]["state"] == "running"
    ack = command(client, "stop", 10).json()
    assert ack["accepted"] and ack["status"]["state"] == "stopping"
    gates.release.set()
    assert gated_run.wait(10).state == "stopped"
    assert client.get("/status").json()["state"] == "stopped"


def test_a_command_the_state_forbids_is_rejected_with_a_reason_and_changes_nothing(
        client: httpx.Client, gated_run: cl.Runner) -> None:
    before = gated_run.status()
    r = command(client, "pause")
    assert r.status_code == 200
    assert r.json()["accepted"] is False
    assert r.json()["reason"] == "cannot pause: run is idle"
    assert gated_run.status() == before


def test_a_server_told_to_refuse_start_rejects_it_with_the_reason_in_an_ack(
        gated_run: cl.Runner) -> None:
    with serve(gated_run, announce=None, refuse_start="start it from its command") as srv, \
            httpx.Client(base_url=srv.base_url,
                         headers={"authorization": f"Bearer {srv.token}"}) as c:
        ack = c.post("/commands", json={"command": "start", "id": 3}).json()
        assert ack == {"id": 3, "command": "start", "accepted": False,
                       "reason": "start it from its command",
                       "status": json.loads(json.dumps(gated_run.status().to_dict(
                           max_failures=20)))}
        assert gated_run.status().state == "idle"
        assert c.post("/commands", json={"command": "pause"}).json()["reason"] == (
            "cannot pause: run is idle")  # the others as ever


@pytest.mark.parametrize(("body", "ctype", "code", "needle"), [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 400, "must be a JSON object"),
    (b'"start"', "application/json", 400, "must be a JSON object"),
    (b'{"command": "explode"}', "application/json", 422, "unknown command 'explode'"),
    (b'{"command": 3}', "application/json", 422, "'command' must be a string"),
    (b'{"id": 1}', "application/json", 422, "missing field 'command'"),
    (b'{"command": "start", "id": "x"}', "application/json", 422, "'id' must be an integer"),
    (b'{"command": "start", "id": true}', "application/json", 422, "'id' must be an integer"),
    (b'{"command": "start", "extra": 1}', "application/json", 422, "unexpected field"),
    (b'{"command": "start"}', "text/plain", 415, "Content-Type must be application/json"),
    (b'{"command": "start"}', "", 415, "Content-Type must be application/json"),
    (b'{"command": "start", "id": 1, "pad": "' + b"x" * 5000 + b'"}', "application/json", 413,
     "too large"),
    (b"\xff\xfe", "application/json", 400, "not valid JSON"),
    (b"[" * 4000, "application/json", 400, "nested too deeply"),  # was a plain-text 500
    (b'{"a":[' * 680, "application/json", 400, "nested too deeply"),
])
def test_malformed_commands_get_a_4xx_json_error_and_change_nothing(
        client: httpx.Client, gated_run: cl.Runner, body: bytes, ctype: str, code: int,
        needle: str) -> None:
    before = gated_run.status()
    headers = {"content-type": ctype} if ctype else {}
    r = client.post("/commands", content=body, headers=headers)
    assert r.status_code == code, r.text
    assert needle in r.json()["error"]
    assert gated_run.status() == before


def test_wrong_methods_and_unknown_routes_are_json_errors(client: httpx.Client) -> None:
    r = client.get("/commands")
    assert (r.status_code, r.json()["error"]) == (405, "GET is not allowed on /commands")
    assert client.post("/status", json={}).status_code == 405
    r = client.get("/nope")
    assert r.status_code == 404 and "no route" in r.json()["error"]


def test_info_names_the_chain_and_the_timing_settings(client: httpx.Client) -> None:
    info = client.get("/info").json()
    assert info["title"] == "chain"  # gated_chain() has no name
    assert (info["heartbeat_interval"], info["retry_ms"], info["pull_interval"]) == (0.2, 500,
                                                                                      5.0)
    assert info["disconnect_after"] == 3.0


def test_the_page_waits_three_heartbeats_before_saying_disconnected(gated_run: cl.Runner) -> None:
    """With heartbeats every 5 s a quiet (paused) run is silent for 5 s: a page keeping the
    state machine's 3 s default flapped to `disconnected` between heartbeats."""
    with serve(gated_run, announce=None, heartbeat_interval=5.0) as srv, httpx.Client(
            base_url=srv.base_url, headers={"authorization": f"Bearer {srv.token}"}) as c:
        assert c.get("/info").json()["disconnect_after"] == 15.0
        page = c.get("/").text
        config = re.search(r'<meta name="chainlib-config" content="([^"]*)">', page)
        assert config is not None  # what web/model.js's boot() hands the state machine
        assert json.loads(html.unescape(config.group(1)))["disconnect_after"] == 15.0


# ---------------------------------------------------------------- security


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_the_token(server: ControlServer, gated_run: cl.Runner, method: str,
                                     path: str) -> None:
    before = gated_run.status()
    with httpx.Client(base_url=server.base_url, timeout=10) as anon:
        r = anon.request(method, path, json={"command": "start"} if method == "POST" else None)
        assert r.status_code == 401
        assert "missing token" in r.json()["error"]
        assert r.headers["www-authenticate"] == "Bearer"
        for wrong in ({"authorization": "Bearer nope"}, {"x-chainlib-token": server.token[:-1]},
                      {"cookie": f"{cookie_name(server.port)}=nope"}):
            r = anon.request(method, path, headers=wrong,
                             json={"command": "start"} if method == "POST" else None)
            assert (r.status_code, r.json()) == (403, {"error": "invalid token"})
        r = anon.request(method, path + "?token=wrong",
                         json={"command": "start"} if method == "POST" else None)
        assert r.status_code in (401, 403)  # a query token never counts for POST
    assert gated_run.status() == before


def test_the_token_is_accepted_in_both_headers_the_query_and_the_cookie(
        server: ControlServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as anon:
        assert anon.get("/status", headers={"x-chainlib-token": server.token}).status_code == 200
        assert anon.get("/status", headers={"authorization": f"bearer {server.token}"}
                        ).status_code == 200
        assert anon.get(f"/status?token={server.token}").status_code == 200
        assert anon.get("/status", headers={
            "cookie": f"other=1; {cookie_name(server.port)}={server.token}"}).status_code == 200


def test_another_apps_odd_cookie_does_not_hide_the_token_cookie(server: ControlServer) -> None:
    """Cookies are not scoped by port: any app on this host can set one the standard library's
    parser rejects (a space, a JSON value), which used to hide every cookie after it."""
    name = cookie_name(server.port)
    with httpx.Client(base_url=server.base_url, timeout=10) as anon:
        for other in ('prefs={"theme": "dark"}', "greeting=hello world", 'q="a'):
            r = anon.get("/status", headers={"cookie": f"{other}; {name}={server.token}"})
            assert r.status_code == 200, (other, r.text)
            r = anon.get("/status", headers={"cookie": f"{other}; {name}=nope"})
            assert r.status_code == 403, other


def test_the_printed_link_sets_an_httponly_lax_cookie_and_drops_the_token_from_the_url(
        server: ControlServer) -> None:
    with httpx.Client(timeout=10) as browser:
        r = browser.get(server.url, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{cookie_name(server.port)}={server.token};")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        # the cookie now authorizes reads, not commands
        assert browser.get(f"{server.base_url}/status").status_code == 200


def test_commands_need_the_token_in_a_header_not_a_cookie_or_query(
        server: ControlServer, gated_run: cl.Runner) -> None:
    before = gated_run.status()
    with httpx.Client(base_url=server.base_url, timeout=10) as anon:
        r = anon.post("/commands", json={"command": "start"},
                      headers={"cookie": f"{cookie_name(server.port)}={server.token}"})
        assert r.status_code == 403 and "need the token in the Authorization" in r.json()["error"]
        r = anon.post(f"/commands?token={server.token}", json={"command": "start"})
        assert r.status_code == 403
        assert "a query parameter is not enough" in r.json()["error"]
        r = anon.post("/commands", json={"command": "start"})
        assert r.status_code == 401 and "?token=" not in r.json()["error"]  # not for a POST
    assert gated_run.status() == before


def test_a_foreign_origin_is_refused_even_with_the_token(
        server: ControlServer, client: httpx.Client, gated_run: cl.Runner) -> None:
    before = gated_run.status()
    for origin in ("http://evil.example", "null", f"http://localhost:{server.port + 1}"):
        r = client.post("/commands", json={"command": "start"}, headers={"origin": origin})
        assert r.status_code == 403 and "cross-origin" in r.json()["error"]
        assert client.get("/status", headers={"origin": origin}).status_code == 403
    assert gated_run.status() == before
    own = f"http://127.0.0.1:{server.port}"
    assert client.get("/status", headers={"origin": own}).status_code == 200


def test_no_cors_is_granted(server: ControlServer, client: httpx.Client) -> None:
    r = client.options("/commands", headers={"origin": "http://evil.example",
                                             "access-control-request-method": "POST"})
    assert r.status_code == 403
    r = client.options("/commands")
    assert r.status_code == 405
    for resp in (r, client.get("/status")):
        assert not any(h.startswith("access-control-") for h in resp.headers)


def test_a_loopback_server_refuses_foreign_host_names(client: httpx.Client) -> None:
    r = client.get("/status", headers={"host": "attacker.example"})  # DNS rebinding
    assert r.status_code == 403 and "loopback" in r.json()["error"]
    assert client.get("/status", headers={"host": "localhost"}).status_code == 200


def test_binding_beyond_loopback_needs_an_explicit_flag_and_warns(gated_run: cl.Runner) -> None:
    with pytest.raises(ValueError, match="allow_remote=True"):
        serve(gated_run, host="0.0.0.0", announce=None)
    with pytest.warns(RuntimeWarning, match="beyond this machine"):
        srv = serve(gated_run, host="0.0.0.0", allow_remote=True, announce=None)
    try:
        r = httpx.get(f"http://127.0.0.1:{srv.port}/status",
                      headers={"authorization": f"Bearer {srv.token}"})
        assert r.status_code == 200  # no host check when serving beyond loopback
        assert httpx.get(f"http://127.0.0.1:{srv.port}/status").status_code == 401
    finally:
        srv.close()


def test_bad_arguments_are_refused_before_anything_listens(gated_run: cl.Runner) -> None:
    with pytest.raises(ValueError, match="port"):
        serve(gated_run, port=70000, announce=None)
    with pytest.raises(ValueError, match="max_rate"):
        serve(gated_run, max_rate=0, announce=None)
    with pytest.raises(ValueError, match="token"):
        serve(gated_run, token="short", announce=None)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        with pytest.raises(OSError, match=r"cannot listen on 127\.0\.0\.1"):
            serve(gated_run, port=busy.getsockname()[1], announce=None)
    finally:
        busy.close()


# ---------------------------------------------------------------- server-sent events


def test_events_start_with_retry_and_the_snapshot_then_heartbeats(
        server: ControlServer) -> None:
    reader = EventReader(server.base_url, server.token)
    try:
        first = reader.next()
        assert (first.event, first.id, first.data["seq"]) == ("status", "0", 0)
        assert reader.lines[0] == "retry: 500"
        beat = reader.next()
        assert beat.event == "heartbeat" and beat.id is None and beat.data["seq"] == 0
    finally:
        reader.close()


def test_events_follow_the_run_with_ids_equal_to_seq(
        server: ControlServer, client: httpx.Client, gated_run: cl.Runner, gates: Gates) -> None:
    reader = EventReader(server.base_url, server.token)
    try:
        reader.next("status")
        command(client, "start")
        gates.wait_entered()
        command(client, "pause")
        ev = reader.until(lambda s: s["state"] == "paused")
        assert ev.id == str(ev.data["seq"])
        assert ev.data == json.loads(json.dumps(gated_run.status().to_dict(max_failures=20)))
    finally:
        reader.close()


def test_last_event_id_resumes_with_the_newest_snapshot_only_if_it_is_newer(
        server: ControlServer, client: httpx.Client, gated_run: cl.Runner, gates: Gates) -> None:
    command(client, "start")
    gates.wait_entered()
    seen = gated_run.status().seq
    # the client is up to date: nothing but heartbeats
    reader = EventReader(server.base_url, server.token, last_event_id=str(seen))
    try:
        assert reader.next().event == "heartbeat"
    finally:
        reader.close()
    command(client, "pause")
    wait_until(lambda: gated_run.status().state == "paused", what="paused")
    reader = EventReader(server.base_url, server.token, last_event_id=str(seen))
    try:
        ev = reader.next()
        assert ev.event == "status"
        assert ev.data["seq"] > seen and ev.data["state"] == "paused"
        assert ev.data["seq"] == gated_run.status().seq
    finally:
        reader.close()


def test_head_events_answers_the_headers_and_starts_no_stream(
        server: ControlServer, client: httpx.Client) -> None:
    r = client.head("/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    # the same keep-alive connection answers the next request (it hung: the stream never ended)
    assert client.get("/status", timeout=5).status_code == 200
    assert server.hub.streams == 0


def test_a_malformed_last_event_id_is_a_400(client: httpx.Client) -> None:
    r = client.get("/events", headers={"last-event-id": "abc"})
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["error"]
    r = client.get("/events?last_event_id=1.5")
    assert r.status_code == 400


def test_a_progress_storm_is_coalesced_and_the_final_state_always_arrives() -> None:
    run = cl.Runner(progress_chain(items=3, steps=100_000))
    srv = serve(run, announce=None, max_rate=10.0)
    reader = EventReader(srv.base_url, srv.token)
    try:
        reader.next("status")
        run.start()
        final = run.wait(120)
        last = reader.until(lambda s: s["state"] == "completed", timeout=10)
        assert last.data["seq"] == final.seq and last.data["done"] == 3
        statuses = [ev for ev in list(reader.events.queue) if ev.event == "status"]
        assert statuses == []  # the final snapshot was the last event
        duration = final.elapsed
        assert final.seq > 1000 * duration  # the run really changed very often
        sent = srv.hub.events_sent - 1  # minus the snapshot sent at connect
        # <= 10/s, plus the transitions that go out at once (start, completed)
        assert sent <= 10 * duration + 4, (sent, duration)
    finally:
        reader.close()
        srv.close()
