// web.js: the panel model over HTTP (fetch + EventSource), with fakes for both.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { createModel } from "../web/model.js";

const dir = join(dirname(fileURLToPath(import.meta.url)), "..");

class FakeEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static all = [];
  constructor(url, init) {
    this.url = url;
    this.init = init;
    this.readyState = FakeEventSource.CONNECTING;
    this.listeners = {};
    this.closed = false;
    FakeEventSource.all.push(this);
  }
  addEventListener(name, cb) {
    (this.listeners[name] ||= []).push(cb);
  }
  emit(name, data, lastEventId = "") {
    for (const cb of this.listeners[name] || []) cb({ data: JSON.stringify(data), lastEventId });
  }
  fail(readyState) {
    this.readyState = readyState;
    for (const cb of this.listeners.error || []) cb({});
  }
  close() {
    this.closed = true;
    this.readyState = FakeEventSource.CLOSED;
  }
}

function fakeWin(respond) {
  FakeEventSource.all = [];
  const calls = [];
  return {
    calls,
    EventSource: FakeEventSource,
    fetch: async (url, init) => {
      calls.push({ url, init });
      const r = await respond(url, init);
      if (r === "network") throw new TypeError("Failed to fetch");
      return { status: r.status, json: async () => r.body };
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const snapshot = (seq, state = "running") => ({ seq, state, run_id: "r" });

function collect(model) {
  const got = [];
  model.on("msg:custom", (m) => got.push(m));
  return got;
}

test("a status_request becomes GET /status with the token header; the answer a status reply", async () => {
  const win = fakeWin(() => ({ status: 200, body: snapshot(4) }));
  const model = createModel({ win, token: "tok" });
  const got = collect(model);
  model.send({ type: "status_request", id: 7 });
  await tick();
  assert.equal(win.calls[0].url, "/status");
  assert.equal(win.calls[0].init.method, "GET");
  assert.equal(win.calls[0].init.headers["x-chainlib-token"], "tok");
  assert.equal(win.calls[0].init.credentials, "same-origin");
  assert.deepEqual(got, [{ type: "status", id: 7, status: snapshot(4) }]);
});

test("a command becomes POST /commands with a JSON body; the answer an ack with the view's id", async () => {
  const ack = { id: 3, command: "pause", accepted: true, reason: "pause requested", status: snapshot(5, "pausing") };
  const win = fakeWin(() => ({ status: 200, body: ack }));
  const model = createModel({ win, token: "tok" });
  const got = collect(model);
  model.send({ type: "command", command: "pause", id: 3 });
  await tick();
  const call = win.calls[0];
  assert.equal(call.url, "/commands");
  assert.equal(call.init.method, "POST");
  assert.equal(call.init.headers["content-type"], "application/json");
  assert.equal(call.init.headers["x-chainlib-token"], "tok");
  assert.deepEqual(JSON.parse(call.init.body), { command: "pause", id: 3 });
  assert.deepEqual(got, [{ ...ack, type: "ack" }]);
});

test("a 4xx is an error reply; a 5xx or a network error is silence", async () => {
  const answers = [
    { status: 403, body: { error: "invalid token" } },
    { status: 503, body: { error: "connection cut" } },
    "network",
    { status: 400, body: null },
  ];
  const win = fakeWin(() => answers.shift());
  const model = createModel({ win, token: "t" });
  const got = collect(model);
  for (let id = 1; id <= 4; id++) model.send({ type: "status_request", id });
  await tick();
  await tick();
  assert.deepEqual(got, [
    { type: "error", id: 1, error: "invalid token" },
    { type: "error", id: 4, error: "HTTP 400" },
  ]);
  assert.equal(model.stats.failedRequests, 1);
});

test("stream events set the status and heartbeat traits, firing change events", () => {
  const win = fakeWin(() => ({ status: 200, body: {} }));
  const model = createModel({ win, token: "t", title: "batch", config: { pull_interval: 2 } });
  const changes = [];
  model.on("change:status", () => changes.push(["status", model.get("status").seq]));
  model.on("change:heartbeat", () => changes.push(["heartbeat", model.get("heartbeat")]));
  model.connect();
  const es = FakeEventSource.all[0];
  assert.equal(es.url, "/events");
  es.emit("status", snapshot(9), "9");
  es.emit("heartbeat", { seq: 9, time: 123.5 });
  es.emit("status", "{broken"); // not a snapshot object: still a trait value, the machine validates
  assert.deepEqual(changes.slice(0, 2), [["status", 9], ["heartbeat", 123.5]]);
  assert.equal(model.get("title"), "batch");
  assert.equal(model.get("pull_interval"), 2);
  assert.equal(model.get("disconnect_after"), 3);
});

test("a stream the browser gave up on is reopened after retryMs, resuming from the last id", async () => {
  const win = fakeWin(() => ({ status: 200, body: {} }));
  const model = createModel({ win, token: "t", retryMs: 5 });
  model.connect();
  const first = FakeEventSource.all[0];
  first.emit("status", snapshot(41), "41");
  first.fail(FakeEventSource.CONNECTING); // the browser retries by itself: nothing to do
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(FakeEventSource.all.length, 1);
  first.fail(FakeEventSource.CLOSED); // e.g. a 503: the browser gave up
  assert.ok(first.closed);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(FakeEventSource.all.length, 2);
  assert.equal(FakeEventSource.all[1].url, "/events?last_event_id=41");
  model.close();
  assert.ok(FakeEventSource.all[1].closed);
  model.send({ type: "status_request", id: 1 });
  assert.equal(win.calls.length, 0, "a closed model sends nothing");
});

test("web/model.js never uses HTML-string APIs or eval", () => {
  const src = readFileSync(join(dir, "web", "model.js"), "utf8");
  for (const bad of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"]) {
    assert.ok(!src.includes(bad), `web/model.js must not use ${bad}`);
  }
});
