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

test("the server's goodbye is the panel's goodbye message (cause server); the stream stays closed", async () => {
  const win = fakeWin(() => ({ status: 200, body: {} }));
  const model = createModel({ win, token: "t", retryMs: 5 });
  const got = collect(model);
  model.connect();
  const es = FakeEventSource.all[0];
  es.emit("status", snapshot(41, "completed"), "41");
  es.emit("goodbye", { reason: "its chainlib run command has ended", status: snapshot(41, "completed") });
  assert.deepEqual(got, [{
    type: "goodbye", cause: "server", reason: "its chainlib run command has ended",
    status: snapshot(41, "completed"),
  }]);
  assert.ok(es.closed, "a closed server is not retried for ever");
  es.fail(FakeEventSource.CLOSED);
  await new Promise((r) => setTimeout(r, 20));
  model.connect();
  assert.equal(FakeEventSource.all.length, 1, "no stream is reopened");
  model.close();
});

test("web/model.js never uses HTML-string APIs or eval", () => {
  const src = readFileSync(join(dir, "web", "model.js"), "utf8");
  for (const bad of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"]) {
    assert.ok(!src.includes(bad), `web/model.js must not use ${bad}`);
  }
});

// ------------------------------------------------------------------ GET /gallery

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3];
const JPEG = [0xff, 0xd8, 0xff, 0xe0, 9, 8, 7];
const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const HOSTILE = 'zz <b>x<b> <img src=x onerror=alert(7)>.png';
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(predicate, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    assert.ok(Date.now() < deadline, `not within ${timeoutMs} ms: ${predicate}`);
    await wait(2);
  }
}

/** A fake server for /gallery: answers from `replies` (a function of the URL), records asks. */
function galleryWin(reply) {
  const win = fakeWin((url) => (url.startsWith("/gallery") ? reply(url) : { status: 200, body: {} }));
  const fetch = win.fetch;
  win.fetch = (url, init) => fetch(url, { ...init, at: Date.now() });
  win.asks = () => win.calls.filter((c) => c.url.startsWith("/gallery"))
    .map((c) => ({ ...c, at: c.init.at }));
  return win;
}

test("the gallery is asked for on load and becomes the notebook's traits: bytes, captions as data", async () => {
  const win = galleryWin(() => ({
    status: 200,
    body: {
      counter: 3,
      thumbnail: b64(JPEG),
      thumbnail_label: HOSTILE,
      gallery: [
        { label: HOSTILE, after: b64(JPEG), before: b64(PNG) },
        { label: "b.png", after: b64(PNG), before: null },
        { label: 5, after: "%%% not base64", before: null }, // no image: no tile
        { label: "c.png" }, // no image: no tile
      ],
    },
  }));
  const model = createModel({ win, token: "tok", gallery: true });
  const changed = [];
  for (const name of ["thumbnail", "thumbnail_label", "gallery"]) {
    model.on(`change:${name}`, () => changed.push(name));
  }
  assert.equal(model.get("thumbnail"), null);
  assert.deepEqual(model.get("gallery"), []);
  model.connect();
  await wait(5);
  const asks = win.asks();
  assert.equal(asks.length, 1);
  assert.equal(asks[0].url, "/gallery"); // nothing shown yet: no `since`
  assert.equal(asks[0].init.method, "GET");
  assert.equal(asks[0].init.headers["x-chainlib-token"], "tok");
  assert.deepEqual(changed.sort(), ["gallery", "thumbnail", "thumbnail_label"]);
  const tiles = model.get("gallery");
  assert.equal(tiles.length, 2);
  assert.ok(tiles[0].after instanceof Uint8Array && tiles[0].before instanceof Uint8Array);
  assert.deepEqual([...tiles[0].after], JPEG);
  assert.deepEqual([...tiles[0].before], PNG);
  assert.equal(tiles[0].label, HOSTILE); // the caption stays the string it was
  assert.deepEqual([...tiles[1].after], PNG);
  assert.equal(tiles[1].before, null);
  assert.deepEqual([...model.get("thumbnail")], JPEG);
  assert.equal(model.get("thumbnail_label"), HOSTILE);
  model.close();
});

test("the gallery is asked at most once an interval, only when the seq moved, with ?since=", async () => {
  let counter = 1;
  const win = galleryWin((url) => {
    const since = new URL(url, "http://x").searchParams.get("since");
    if (since === String(counter)) return { status: 204, body: undefined };
    return { status: 200, body: { counter, thumbnail: b64(JPEG), thumbnail_label: "a", gallery: [{ label: `n${counter}`, after: b64(JPEG), before: null }] } };
  });
  const interval = 50;
  const model = createModel({ win, token: "t", gallery: true, galleryIntervalMs: interval });
  let galleryChanges = 0;
  model.on("change:gallery", () => galleryChanges++);
  model.connect();
  const es = FakeEventSource.all[0];
  await until(() => win.asks().length === 1);
  await until(() => model.get("gallery").length === 1);
  assert.equal(model.get("gallery")[0].label, "n1");
  // a burst of snapshots: one ask, once the interval has passed since the last
  for (let seq = 1; seq <= 5; seq++) es.emit("status", snapshot(seq), String(seq));
  await until(() => win.asks().length === 2);
  assert.equal(win.asks()[1].url, "/gallery?since=1");
  await wait(interval * 2);
  assert.equal(win.asks().length, 2, "a burst of snapshots asked more than once");
  const shown = model.get("gallery");
  assert.equal(galleryChanges, 1, "a 204 changes no trait");
  // no new seq (heartbeats, the same snapshot again): no ask
  es.emit("heartbeat", { seq: 5, time: 1 });
  es.emit("status", snapshot(5), "5");
  await wait(interval * 3);
  assert.equal(win.asks().length, 2, "asked while nothing changed");
  assert.equal(model.get("gallery"), shown);
  // a new item: the next seq brings it
  counter = 2;
  es.emit("status", snapshot(6), "6");
  await until(() => win.asks().length === 3);
  assert.equal(win.asks()[2].url, "/gallery?since=1");
  await until(() => model.get("gallery")[0].label === "n2");
  // the seq of a pull's answer counts too
  counter = 3;
  model.send({ type: "status_request", id: 1 }); // the fake answers {} (no seq): nothing new
  await wait(interval * 2);
  assert.equal(win.asks().length, 3);
  es.emit("status", snapshot(7), "7");
  await until(() => win.asks().length === 4);
  await until(() => model.get("gallery")[0].label === "n3");
  const at = win.asks().map((c) => c.at);
  for (let i = 1; i < at.length; i++) {
    assert.ok(at[i] - at[i - 1] >= interval - 1, `asks ${at[i] - at[i - 1]} ms apart`);
  }
  model.close();
  es.emit("status", snapshot(8), "8");
  await wait(interval * 2);
  assert.equal(win.asks().length, 4, "a closed model asks nothing");
});

test("a failed gallery ask is repeated once the server is heard from; a 404 stops the asking", async () => {
  const answers = ["network", { status: 503, body: { error: "cut" } },
    { status: 200, body: { counter: 1, thumbnail: null, thumbnail_label: "", gallery: [{ label: "a", after: b64(PNG), before: null }] } }];
  const win = galleryWin(() => answers.shift() || { status: 404, body: { error: "no gallery" } });
  const model = createModel({ win, token: "t", gallery: true, galleryIntervalMs: 20 });
  model.connect();
  const es = FakeEventSource.all[0];
  await wait(40);
  assert.equal(win.asks().length, 1, "a failure is not retried on a timer");
  es.emit("heartbeat", { seq: 0, time: 1 }); // contact: ask again
  await until(() => win.asks().length === 2);
  await wait(40);
  es.emit("heartbeat", { seq: 0, time: 2 });
  await until(() => model.get("gallery").length === 1);
  assert.equal(win.asks().length, 3);
  assert.equal(model.get("gallery")[0].label, "a");
  assert.equal(model.get("thumbnail"), null);
  es.emit("status", snapshot(2), "2");
  await until(() => win.asks().length === 4); // answered 404
  await wait(40);
  es.emit("status", snapshot(3), "3");
  es.emit("heartbeat", { seq: 3, time: 3 });
  await wait(40);
  assert.equal(win.asks().length, 4, "asked a server that has no gallery");
  assert.equal(model.get("gallery")[0].label, "a");
  model.close();
});

test("a server without a gallery is never asked for one", async () => {
  const win = galleryWin(() => ({ status: 200, body: {} }));
  const model = createModel({ win, token: "t", galleryIntervalMs: 1 });
  model.connect();
  FakeEventSource.all[0].emit("status", snapshot(1), "1");
  await wait(20);
  assert.equal(win.asks().length, 0);
  model.close();
});
