// Seeded random sequences against a simulated kernel: lossy / duplicating / reordering network,
// partitions, a busy main shell (custom messages queue up while trait + heartbeat keep flowing from a
// thread, and the `kernel` trait says so), other views sending commands, coalesced status
// publishing, and in some seeds a kernel restart (a goodbye, the page's kernel status, or both).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  initial, transition, buttons, kernelBusy, INTERMEDIATE, FRONT_STATES, BUSY_NOTICE_AFTER,
} from "../state.js";
import { CFG, mulberry32, EXPECTED_BUTTONS, enabledSet } from "./helpers.js";

const SEEDS = Number(process.env.SIM_SEEDS) || 500;
const STEPS = 200;
const ACTIVE = ["running", "pausing", "paused", "stopping"];

/** A small JS model of chainlib.run.runner.Runner's command rules and run states. */
class Backend {
  constructor(rand) {
    this.rand = rand;
    this.state = "idle";
    this.seq = 0;
    this.runId = "";
    this.runs = 0;
    this.done = 0;
    this.failed = 0;
    this.total = 5 + Math.floor(rand() * 30);
  }
  set(state) {
    this.state = state;
    this.seq += 1;
  }
  snapshot(now) {
    return {
      run_id: this.runId, state: this.state, seq: this.seq, done: this.done, failed: this.failed,
      total: this.total, current: [], nodes: {}, elapsed: 0, eta: null, rate: null, error: null,
      failures: [], started_at: null, taken_at: now,
    };
  }
  command(cmd) {
    const s = this.state;
    switch (cmd) {
      case "start":
        if (ACTIVE.includes(s)) return [false, `a run is already ${s}`];
        this.runId = `r${++this.runs}`;
        this.done = 0;
        this.failed = 0;
        this.set("running");
        return [true, "started"];
      case "pause":
        if (s === "pausing" || s === "paused") return [true, `already ${s}`];
        if (s !== "running") return [false, `cannot pause: run is ${s}`];
        this.set("pausing");
        return [true, "pause requested"];
      case "resume":
        if (s === "running") return [true, "already running"];
        if (s !== "pausing" && s !== "paused") return [false, `cannot resume: run is ${s}`];
        this.set("running");
        return [true, "resumed"];
      case "stop":
        if (s === "stopping" || s === "stopped") return [true, `already ${s}`];
        if (!ACTIVE.includes(s)) return [false, `cannot stop: run is ${s}`];
        this.set("stopping");
        return [true, "stop requested"];
      default:
        return [false, "unknown"];
    }
  }
  step() {
    const r = this.rand();
    if (this.state === "running" && r < 0.4) {
      if (this.rand() < 0.1) this.failed += 1;
      else this.done += 1;
      this.seq += 1;
      if (this.done + this.failed >= this.total) this.set(this.failed > 3 ? "failed" : "completed");
    } else if (this.state === "pausing" && r < 0.3) {
      this.set("paused");
    } else if (this.state === "stopping" && r < 0.3) {
      this.set("stopped");
    }
  }
}

function runSeed(seed, stats) {
  const rand = mulberry32(seed);
  const backend = new Backend(rand);
  const net = {
    loss: rand() * 0.2,
    dup: rand() * 0.1,
    maxDelay: 0.02 + rand() * 0.6,
  };
  let now = 1000;
  let partitionUntil = -1;
  let busyUntil = -1;
  let healed = false;
  let busyShown = false; // the kernel trait last published says busy
  // ~1 seed in 8: the kernel restarts at a random step; how the page learns it varies
  const restartAt = rand() < 0.125 ? Math.floor(rand() * STEPS) : -1;
  const restartSignals = restartAt < 0 ? null : ["goodbye", "status", "both"][Math.floor(rand() * 3)];
  let gone = false;
  const inFlight = []; // {at, to: "browser"|"kernel", kind, payload}
  const kernelQueue = []; // browser messages waiting for the main shell
  let lastPublish = -Infinity;
  let publishedSeq = -1;
  let lastHeartbeat = -Infinity;

  let m = initial(CFG, now, { idBase: 1_000_000 + seed * 1000 });
  let prevSeq = m.seq;
  let maxDelivered = -1;

  function ship(to, kind, payload) {
    if (!healed && (now < partitionUntil || rand() < net.loss)) return;
    const copies = !healed && rand() < net.dup ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      inFlight.push({ at: now + rand() * (healed ? 0.05 : net.maxDelay), to, kind, payload });
    }
  }

  function check(where) {
    const ctx = `seed ${seed} ${where} t=${now.toFixed(2)} ui=${m.ui} backend=${backend.state}`;
    assert.ok(m.seq >= prevSeq, `seq decreased: ${ctx}`);
    prevSeq = m.seq;
    if (m.ui !== "ended") assert.equal(m.seq, maxDelivered, `machine seq is the newest snapshot seen: ${ctx}`);
    assert.ok(FRONT_STATES.includes(m.ui), ctx);
    if (m.ui === "ended") {
      assert.deepEqual(m.outbox, [], `nothing is sent once ended: ${ctx}`);
      assert.equal(m.pending, null, ctx);
      assert.equal(m.queued, null, `no Stop queued forever: ${ctx}`);
      assert.equal(m.notice.cause, "ended", ctx);
    } else if (m.ui !== "disconnected" && m.ui !== "reconnecting") {
      assert.ok(m.snapshot, ctx);
      if (m.pending) {
        assert.equal(m.ui, INTERMEDIATE[m.pending.command], ctx);
        assert.ok(kernelBusy(m) || m.now - m.pending.clockFrom < CFG.commandTimeout, `pending too old: ${ctx}`);
      } else {
        assert.equal(m.ui, m.snapshot.state, `ui follows the newest snapshot: ${ctx}`);
      }
    }
    // busy kernel: never reload advice; a click waiting on a busy kernel is explained
    if (m.kernel && m.kernel.busy) assert.notEqual(m.notice && m.notice.cause, "deaf", ctx);
    if (m.connected && m.pending && kernelBusy(m) && m.now - m.pending.sentAt >= BUSY_NOTICE_AFTER) {
      assert.equal(m.notice && m.notice.cause, "busy", `busy notice: ${ctx}`);
    }
    if (m.notice && m.notice.cause === "busy") assert.ok(m.pending && kernelBusy(m), ctx);
    if (m.ui === "idle") assert.equal(m.snapshot.state, "idle", `false idle: ${ctx}`);
    if (m.snapshot && ACTIVE.includes(m.snapshot.state)) assert.notEqual(m.ui, "idle", ctx);
    assert.deepEqual(enabledSet(buttons(m)), EXPECTED_BUTTONS[m.ui], ctx);
    stats[m.ui] = (stats[m.ui] || 0) + 1;
  }

  function feed(event, where) {
    if (event.type === "snapshot") noteSnapshot(event.status);
    if (event.type === "message" && event.msg.status) noteSnapshot(event.msg.status);
    m = transition(m, { ...event, now });
    for (const msg of m.outbox) ship("kernel", "msg", msg);
    check(where);
  }

  function noteSnapshot(s) {
    if (s && Number.isInteger(s.seq) && s.seq > maxDelivered) maxDelivered = s.seq;
  }

  function kernelHandle(msg) {
    if (gone) return; // a new kernel process does not know this comm
    if (msg.type === "command") {
      const [accepted, reason] = backend.command(msg.command);
      ship("browser", "custom", {
        type: "ack", id: msg.id, command: msg.command, accepted, reason, status: backend.snapshot(now),
      });
    } else if (msg.type === "status_request") {
      ship("browser", "custom", { type: "status", id: msg.id, status: backend.snapshot(now) });
    } else {
      ship("browser", "custom", { type: "error", id: msg.id ?? null, error: "unknown message" });
    }
  }

  // the browser's initial pull
  for (const msg of m.outbox) ship("kernel", "msg", msg);
  // the trait value present when the view renders
  feed({ type: "snapshot", status: backend.snapshot(now) }, "render");

  function restart() {
    // the shutdown hook stops the run and says goodbye; then the process is gone
    if (ACTIVE.includes(backend.state)) backend.set("stopped");
    if (restartSignals !== "status") {
      ship("browser", "custom", { type: "goodbye", reason: "kernel shutting down", status: backend.snapshot(now) });
    }
    gone = true;
    kernelQueue.length = 0;
    if (restartSignals !== "goodbye") {
      inFlight.push({ at: now + 0.05 + rand() * 0.5, to: "page", kind: "ended", payload: "restarted" });
    }
  }

  function advance(dt, { clicks }, i = -1) {
    now += dt;
    if (i >= 0 && i === restartAt) restart();
    if (!healed && !gone) backend.step();
    if (!healed && rand() < 0.01) partitionUntil = now + 1 + rand() * 8;
    if (!healed && rand() < 0.01) busyUntil = now + 1 + rand() * 10;
    const busy = now < busyUntil && !healed;
    if (!gone && busy !== busyShown) {
      busyShown = busy;
      ship("browser", "kernel", { busy, busy_since: busy ? now : null, hears_clicks: false, pid: 1 });
    }
    // kernel side: coalesced trait publishing (thread), heartbeat (thread)
    if (!gone && backend.seq !== publishedSeq && now - lastPublish >= 0.1) {
      publishedSeq = backend.seq;
      lastPublish = now;
      ship("browser", "trait", backend.snapshot(now));
    }
    if (!gone && ACTIVE.includes(backend.state) && now - lastHeartbeat >= 1) {
      lastHeartbeat = now;
      ship("browser", "heartbeat", now);
    }
    // another view commands the same runner; its acks are broadcast to this view too
    if (!healed && !gone && rand() < 0.005) {
      const cmd = ["start", "pause", "resume", "stop"][Math.floor(rand() * 4)];
      const [accepted, reason] = backend.command(cmd);
      ship("browser", "custom", { type: "ack", id: 7, command: cmd, accepted, reason, status: backend.snapshot(now) });
    }
    // deliveries due, in delivery-time order
    inFlight.sort((a, b) => a.at - b.at);
    while (inFlight.length && inFlight[0].at <= now) {
      const d = inFlight.shift();
      if (d.to === "kernel") kernelQueue.push(d.payload);
      else if (d.kind === "ended") feed({ type: "ended", cause: d.payload }, "kernel status");
      else if (d.kind === "kernel") feed({ type: "kernel", value: d.payload }, "kernel trait");
      else if (d.kind === "trait") feed({ type: "snapshot", status: d.payload }, "trait");
      else if (d.kind === "heartbeat") feed({ type: "heartbeat", value: d.payload }, "heartbeat");
      else feed({ type: "message", msg: d.payload }, `msg:${d.payload.type}`);
    }
    if (now >= busyUntil || healed) {
      while (kernelQueue.length) kernelHandle(kernelQueue.shift());
    }
    // browser side
    feed({ type: "tick" }, "tick");
    if (clicks && rand() < 0.15) {
      const button = ["play", "pause", "resume", "stop"][Math.floor(rand() * 4)];
      feed({ type: "click", button }, `click:${button}`);
    }
    if (clicks && rand() < 0.01) feed({ type: rand() < 0.5 ? "visible" : "online" }, "page");
  }

  for (let i = 0; i < STEPS; i++) advance(0.05 + rand() * 0.45, { clicks: true }, i);

  // heal: no loss, no partition, kernel not busy, backend frozen, no more clicks
  healed = true;
  for (let i = 0; i < 200; i++) advance(0.1, { clicks: false });
  if (gone) {
    // told by a goodbye (lost messages are not re-sent) or by the page's kernel status
    const told = restartSignals !== "goodbye" || m.ui === "ended";
    if (restartSignals !== "goodbye") assert.equal(m.ui, "ended", `seed ${seed}: restart seen`);
    if (told && m.ui === "ended") stats.ended_told = (stats.ended_told || 0) + 1;
    return;
  }
  assert.equal(m.ui, backend.state, `seed ${seed}: converged display`);
  assert.equal(m.seq, backend.seq, `seed ${seed}: converged seq`);
}

test(`seeded random sequences (${SEEDS} seeds x ${STEPS} steps) against a simulated kernel`, () => {
  const stats = {};
  for (let seed = 1; seed <= SEEDS; seed++) runSeed(seed, stats);
  // the simulation must actually exercise every front-end state
  if (process.env.SIM_STATS) console.log(JSON.stringify(stats));
  for (const name of FRONT_STATES) assert.ok(stats[name] > 0, `state ${name} never visited: ${JSON.stringify(stats)}`);
});
