import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { makeDocument, makeModel, makeSignal } from "./fakedom.js";
import { snap } from "./helpers.js";
import { formatProgress } from "../format.js";

const dir = join(dirname(fileURLToPath(import.meta.url)), "..");
const cssSrc = readFileSync(join(dir, "panel.css"), "utf8");
const jsIn = (sub) => readdirSync(join(dir, sub)).filter((f) => f.endsWith(".js"))
  .map((f) => (sub === "." ? f : `${sub}/${f}`));
const runtimeSources = [...jsIn("."), ...jsIn("view")]; // every front-end module

/** The one module anywidget loads, built by chainlib/_bundle.py (stdlib-only Python). */
function buildBundle() {
  const python = process.env.PYTHON || "python3";
  const r = spawnSync(python, [join(dir, "..", "chainlib", "_bundle.py"), join(dir, "panel.js")],
    { encoding: "utf8" });
  assert.equal(r.error, undefined, `cannot run ${python} (set PYTHON): ${r.error}`);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}
const bundleSrc = buildBundle();
const importBundle = () =>
  import(`data:text/javascript;base64,${Buffer.from(bundleSrc).toString("base64")}`);
// Every render test runs against the sources (node resolves their imports) and the bundle.
const LOADERS = [["sources", () => import("../panel.js")], ["bundle", importBundle]];

test("the front end never uses HTML-string APIs or eval", () => {
  for (const file of runtimeSources) {
    const src = readFileSync(join(dir, file), "utf8");
    for (const bad of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "DOMParser", "createContextualFragment"]) {
      assert.ok(!src.includes(bad), `${file} must not use ${bad}`);
    }
  }
});

test("the bundle is one self-contained module exporting render, built from every source", async () => {
  assert.ok(!/^\s*import\b/m.test(bundleSrc), "anywidget loads _esm from a Blob URL: no imports");
  for (const file of runtimeSources) assert.ok(bundleSrc.includes(`// ---- ${file} (`), file);
  const mod = await importBundle();
  assert.equal(typeof mod.default.render, "function");
  assert.deepEqual(Object.keys(mod.default), ["render"]);
});

test("panel.css: every rule is scoped under .chainlib-panel and uses JupyterLab variables", () => {
  const noComments = cssSrc.replace(/\/\*[\s\S]*?\*\//g, "");
  const selectors = [...noComments.matchAll(/([^{}]+)\{/g)].map((m) => m[1].trim());
  assert.ok(selectors.length > 10);
  for (const sel of selectors) {
    for (const part of sel.split(",")) assert.match(part.trim(), /^\.chainlib-panel\b/, part);
  }
  for (const v of ["--jp-layout-color1", "--jp-ui-font-color1", "--jp-border-color1", "--jp-brand-color1", "--jp-warn-color1", "--jp-error-color1", "--jp-success-color1", "--jp-ui-font-family"]) {
    assert.ok(cssSrc.includes(`var(${v},`), `${v} with a fallback`);
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const [kind, load] of LOADERS) {
  test(`render (${kind}) with a fake DOM: buttons, badge, nodes, error, thumbnail, untrusted text, cleanup`, async () => {
    const { doc, win } = makeDocument();
    const evil = '<img src=x onerror="alert(1)">';
    const model = makeModel({
      status: snap("idle", 0),
      heartbeat: 0,
      pull_interval: 5,
      fast_pull_interval: 0.5,
      command_timeout: 5,
      disconnect_after: 3,
      thumbnail: new DataView(new ArrayBuffer(0)),
      thumbnail_label: "",
      title: evil,
    });
    const host = doc.createElement("div");
    const { default: widget } = await load();
    const cleanup = widget.render({ model, el: host });
    const $ = (id) => host.find(id);
    const imgCountBefore = doc.created.filter((e) => e.tagName === "IMG").length;

    assert.equal($("state").textContent, "idle");
    assert.equal($("title").textContent, evil);
    assert.equal($("play").hasAttribute("disabled"), false);
    assert.equal($("pause").hasAttribute("disabled"), true);
    assert.equal($("pause").textContent, "Pause");
    assert.equal($("stop").hasAttribute("disabled"), true);
    assert.equal($("seq").textContent, "0");
    assert.equal(model.sent.length, 1);
    assert.equal(model.sent[0].type, "status_request");
    assert.ok(model.sent[0].id >= 1_000_000);

    // click Play -> starting, command sent
    $("play").click();
    await sleep(130);
    const cmd = model.sent.find((m) => m.type === "command");
    assert.deepEqual({ type: cmd.type, command: cmd.command }, { type: "command", command: "start" });
    assert.equal($("state").textContent, "starting");
    assert.equal($("play").hasAttribute("disabled"), true);
    assert.equal($("stop").hasAttribute("disabled"), false);

    // ack -> running, with untrusted node ids / labels / messages
    const running = {
      ...snap("running", 1, { done: 12, failed: 3, total: 100, rate: 12.34, eta: 62 }),
      run_id: "r1",
      current: [evil],
      nodes: {
        load: { state: "done", count: 15, running: 0, total_s: 1.5, mean_s: 0.1, progress: null },
        [evil]: { state: "running", count: 12, running: 1, total_s: 24, mean_s: 2, progress: 0.5 },
      },
      error: { node: evil, item: 4, label: "</td><script>x</script>.png", message: "<b>boom</b>", traceback: "Traceback..." },
    };
    model.fire("msg:custom", { type: "ack", id: cmd.id, command: "start", accepted: true, reason: "started", status: running }, []);
    await sleep(130);
    assert.equal($("state").textContent, "running");
    assert.equal($("pause").hasAttribute("disabled"), false);
    assert.equal($("progress").textContent, formatProgress(12, 3, 100));
    assert.equal($("done").textContent, "12");
    assert.equal($("failed").textContent, "3");
    assert.equal($("total").textContent, "100");
    assert.equal($("current").textContent, evil);
    assert.equal($("seq").textContent, "1");
    const rows = $("nodes").all((e) => e.tagName === "TR" && e.hasAttribute("data-node"));
    assert.equal(rows.length, 2);
    const slow = rows.find((r) => r.getAttribute("data-slowest") === "true");
    assert.equal(slow.getAttribute("data-node"), evil);
    assert.ok(slow.classList.contains("chainlib-slowest"));
    assert.equal($("error").hidden, false);
    assert.match($("error").textContent, /Error in node <img src=x onerror="alert\(1\)"> \(item <\/td><script>x<\/script>\.png\): <b>boom<\/b>/);
    assert.match($("connection").textContent, /^updated \d+\.\d s ago$/);

    // no element was created from untrusted text
    assert.equal(doc.created.filter((e) => e.tagName === "IMG").length, imgCountBefore);
    assert.equal(doc.created.filter((e) => e.tagName === "SCRIPT" || e.tagName === "B").length, 0);

    // thumbnail: DataView -> blob: URL, old URL replaced
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
    model.values.thumbnail_label = "out_<1>.png";
    model.set("thumbnail", new DataView(png.buffer));
    const src1 = $("thumbnail").getAttribute("src");
    assert.match(src1, /^blob:/);
    model.set("thumbnail", new DataView(png.buffer.slice(0)));
    const src2 = $("thumbnail").getAttribute("src");
    assert.notEqual(src1, src2);
    assert.equal(host.find("thumbnail-label").textContent, "out_<1>.png");

    // pause via the toggle, rejected -> notice, back to running
    $("pause").click();
    const pauseCmd = model.sent.filter((m) => m.type === "command").at(-1);
    assert.equal(pauseCmd.command, "pause");
    model.fire("msg:custom", { type: "ack", id: pauseCmd.id, command: "pause", accepted: false, reason: "<i>no</i>", status: running }, []);
    await sleep(130);
    assert.equal($("state").textContent, "running");
    assert.equal($("notice").textContent, "Pause rejected: <i>no</i>");

    // trait snapshot: paused -> the toggle reads Resume
    model.set("status", { ...running, state: "paused", seq: 5 });
    await sleep(130);
    assert.equal($("state").textContent, "paused");
    assert.equal($("pause").textContent, "Resume");
    assert.equal($("pause").hasAttribute("disabled"), false);
    $("pause").click();
    assert.equal(model.sent.filter((m) => m.type === "command").at(-1).command, "resume");

    // visibility / online -> pulls
    const pulls = model.sent.filter((m) => m.type === "status_request").length;
    doc.fire("visibilitychange");
    win.fire("online");
    assert.equal(model.sent.filter((m) => m.type === "status_request").length, pulls + 2);

    // an error reply to another client's message (id null) is not this view's business
    model.fire("msg:custom", { type: "error", id: null, error: "owned by the kernel" }, []);
    await sleep(130);
    assert.doesNotMatch($("notice").textContent, /owned by the kernel/);
    // an error reply to a request this view sent becomes a notice
    const ownId = model.sent.at(-1).id;
    model.fire("msg:custom", { type: "error", id: ownId, error: "unknown message type" }, []);
    await sleep(130);
    assert.equal($("notice").textContent, "Kernel error: unknown message type");

    // ids unique
    const ids = model.sent.map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length);

    // cleanup removes every listener and timer
    cleanup();
    assert.equal(model.handlerCount(), 0);
    assert.equal(doc.listenerCount(), 0);
    assert.equal(host.childNodes.length, 0);
    const sentBefore = model.sent.length;
    await sleep(700);
    assert.equal(model.sent.length, sentBefore, "no timers fire after cleanup");
  });

  test(`disconnect (${kind}) in the fake DOM: badge, warning, queued stop`, async () => {
    const { doc } = makeDocument();
    const model = makeModel({
      status: { ...snap("running", 3), run_id: "r1" }, heartbeat: 0, pull_interval: 5,
      fast_pull_interval: 0.05, command_timeout: 0.5, disconnect_after: 0.2,
      thumbnail: null, thumbnail_label: "", title: "chain",
    });
    const host = doc.createElement("div");
    const { default: widget } = await load();
    const cleanup = widget.render({ model, el: host });
    await sleep(450);
    assert.equal(host.find("state").textContent, "disconnected");
    assert.ok(host.find("connection").classList.contains("chainlib-warn"));
    assert.match(host.find("connection").textContent, /^connection lost/);
    assert.equal(host.find("play").hasAttribute("disabled"), true);
    assert.equal(host.find("pause").hasAttribute("disabled"), true);
    assert.equal(host.find("stop").hasAttribute("disabled"), false);
    host.find("stop").click();
    await sleep(130);
    assert.match(host.find("notice").textContent, /queued — will be delivered when the kernel answers/);
    // kernel heard again: heartbeat -> stop re-sent; reconnecting until a fresh pull answers
    model.set("heartbeat", 123);
    await sleep(130);
    assert.equal(host.find("state").textContent, "reconnecting");
    assert.match(host.find("connection").textContent, /^reconnecting/);
    assert.equal(model.sent.filter((m) => m.type === "command" && m.command === "stop").length, 2);
    const pull = model.sent.filter((m) => m.type === "status_request").at(-1);
    model.fire("msg:custom", { type: "status", id: pull.id, status: { ...snap("running", 4), run_id: "r1" } }, []);
    await sleep(130);
    assert.equal(host.find("state").textContent, "stopping");
    cleanup();
  });

  test(`the web page (${kind}): every line about the backend names the server, not a kernel`, async () => {
    const { doc } = makeDocument();
    const model = makeModel({
      status: { ...snap("running", 3), run_id: "r1" }, heartbeat: 0, pull_interval: 5,
      fast_pull_interval: 0.05, command_timeout: 0.5, disconnect_after: 0.2,
      thumbnail: null, thumbnail_label: "", title: "chain", backend: "server",
    });
    const host = doc.createElement("div");
    const { default: widget } = await load();
    const cleanup = widget.render({ model, el: host });
    const said = () => ["connection", "notice"].map((id) => host.find(id).textContent)
      .concat([host.find("stop").getAttribute("title") || ""]).join(" | ");
    try {
      await sleep(450);
      assert.equal(host.find("state").textContent, "disconnected");
      assert.equal(host.find("stop").getAttribute("title"),
        "Stop will be queued until the server answers");
      host.find("stop").click();
      await sleep(130);
      assert.match(said(), /queued — will be delivered when the server answers/);
      model.set("heartbeat", 123);
      await sleep(130);
      assert.equal(host.find("state").textContent, "reconnecting");
      assert.match(host.find("connection").textContent,
        /^reconnecting — asking the server for its status/);
      assert.doesNotMatch(said(), /kernel/);
    } finally {
      cleanup(); // a failed check must not leave the panel's timers running
    }
  });

  test(`figures (${kind}): paused, stopped and a restarted kernel show only what is true`, async () => {
    const { doc } = makeDocument();
    const kernel = { statusChanged: makeSignal() };
    const nodes = (state, running) => ({
      load: { state: "done", count: 1, running: 0, total_s: 0.1, mean_s: 0.1, progress: null },
      slow: { state, count: 250, running, total_s: 50, mean_s: 0.2, progress: 0.8 },
    });
    const base = { run_id: "r1", total: 600, done: 250, rate: 5, eta: 70, elapsed: 50, current: ["slow"] };
    const model = makeModel({
      status: snap("running", 5, { ...base, nodes: nodes("running", 2) }), heartbeat: 0,
      pull_interval: 5, fast_pull_interval: 0.5, command_timeout: 5, disconnect_after: 3,
      thumbnail: null, thumbnail_label: "", title: "t", kernel: { busy: false, hears_clicks: true, pid: 1 },
    }, { kernel });
    const host = doc.createElement("div");
    const { default: widget } = await load();
    const cleanup = widget.render({ model, el: host });
    const $ = (id) => host.find(id);
    const slowRow = () => $("nodes").all((e) => e.getAttribute && e.getAttribute("data-node") === "slow")[0];
    await sleep(130);
    assert.equal($("rate").hidden, false);
    assert.equal($("eta").textContent, "ETA 1:10");
    assert.equal(slowRow().childNodes[5].textContent, "● 2 (80%)");
    assert.equal($("current").parentNode.textContent, "Running: slow");

    // as the kernel sends it: nothing executes, so `current` is empty; 2 items parked in slow
    model.set("status", snap("paused", 6, { ...base, current: [], nodes: nodes("paused", 2) }));
    await sleep(130);
    assert.equal($("state").textContent, "paused");
    assert.equal($("rate").hidden, true, "no rate while paused");
    assert.equal($("eta").hidden, true, "no ETA counting while paused");
    assert.equal(slowRow().childNodes[1].textContent, "paused");
    assert.equal(slowRow().childNodes[5].textContent, "‖ 2 (80%)");
    assert.equal(slowRow().hasAttribute("data-running"), false);
    assert.equal($("current").parentNode.textContent, "Paused in: slow");

    model.set("status", snap("stopped", 7, { ...base, done: 254, current: [], nodes: nodes("running", 0) }));
    await sleep(130);
    assert.equal($("progress").textContent, "254 / 600 · 346 not run");
    assert.equal($("rate").hidden || $("eta").hidden, true);
    assert.equal($("rate").hidden && $("eta").hidden, true, "no rate or ETA for a stopped run");
    assert.equal(slowRow().childNodes[1].textContent, "stopped");

    assert.equal(kernel.statusChanged.count(), 1);
    kernel.statusChanged.emit("busy");
    await sleep(130);
    assert.equal($("state").textContent, "stopped", "a busy kernel is alive");
    kernel.statusChanged.emit("restarting");
    await sleep(130);
    assert.equal($("state").textContent, "ended");
    assert.match($("notice").textContent, /^The kernel restarted: the run ended at 254\/600/);
    for (const b of ["play", "pause", "stop"]) assert.equal($(b).hasAttribute("disabled"), true, b);
    const sentBefore = model.sent.length;
    await sleep(600);
    assert.equal(model.sent.length, sentBefore, "nothing is sent to a gone kernel");
    cleanup();
    assert.equal(kernel.statusChanged.count(), 0, "cleanup disconnects from the kernel status");
    assert.equal(model.handlerCount(), 0);
  });

  test(`elapsed (${kind}): the run's working time, frozen while paused, no jump after Resume`, async () => {
    // The kernel's snapshot is built once per seq: a paused run's heartbeats repeat the one taken
    // at the pause, and `elapsed` (wall time since the start) jumps by the whole pause at Resume.
    // `active_s` (pauses excluded) is what the panel shows.
    const { doc } = makeDocument();
    const at = (state, seq, elapsed, active) =>
      snap(state, seq, { run_id: "r1", total: 600, done: 250, elapsed, active_s: active });
    const model = makeModel({
      status: at("running", 5, 50, 50), heartbeat: 0, pull_interval: 5, fast_pull_interval: 0.5,
      command_timeout: 5, disconnect_after: 3, thumbnail: null, thumbnail_label: "", title: "t",
      kernel: { busy: false, hears_clicks: true, pid: 1 },
    });
    const host = doc.createElement("div");
    const { default: widget } = await load();
    const cleanup = widget.render({ model, el: host });
    const $ = (id) => host.find(id);
    try {
      await sleep(130);
      assert.equal($("elapsed").textContent, "elapsed 50 s");
      model.set("status", at("paused", 6, 51, 51));
      await sleep(130);
      assert.equal($("elapsed").textContent, "elapsed 51 s");
      // 30 s of pause, then Resume: the first running snapshot after it
      model.set("status", at("running", 7, 82, 51.2));
      await sleep(130);
      assert.equal($("elapsed").textContent, "elapsed 51 s", "the pause is not counted");
      model.set("status", at("stopped", 8, 90, 59));
      await sleep(130);
      assert.equal($("elapsed").textContent, "elapsed 59 s");
      assert.match($("elapsed").getAttribute("title"), /pauses excluded/);
      // a snapshot without active_s (an older kernel): its elapsed
      model.set("status", { ...at("stopped", 9, 90, 59), active_s: undefined });
      await sleep(130);
      assert.equal($("elapsed").textContent, "elapsed 1:30");
    } finally {
      cleanup();
    }
  });

  test(`busy kernel and comm events (${kind}): the notice, then ended on comm_live_update`, async () => {
    const { doc } = makeDocument();
    const model = makeModel({
      status: snap("running", 5, { run_id: "r1" }), heartbeat: 0, pull_interval: 5,
      fast_pull_interval: 0.5, command_timeout: 5, disconnect_after: 3, thumbnail: null,
      thumbnail_label: "", title: "t", kernel: { busy: true, busy_since: 1, hears_clicks: false, pid: 1 },
    });
    const host = doc.createElement("div");
    const { default: widget } = await load();
    const cleanup = widget.render({ model, el: host });
    const $ = (id) => host.find(id);
    $("pause").click();
    await sleep(130);
    assert.equal($("state").textContent, "pausing");
    assert.match($("notice").textContent, /^The kernel is busy running another cell: Pause is queued/);
    model.set("kernel", { busy: false, busy_since: null, hears_clicks: false, pid: 1 });
    await sleep(130);
    assert.equal($("notice").hidden, true, "the notice clears when the cell ends");
    model.fire("comm_live_update");
    await sleep(130);
    assert.equal($("state").textContent, "ended");
    cleanup();
  });
}
