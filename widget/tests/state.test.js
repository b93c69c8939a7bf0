import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  initial, transition, buttons, nextWakeup, pauseButtonMode, FRONT_STATES, INTERMEDIATE,
} from "../state.js";
import { CFG, snap, deepFreeze, EXPECTED_BUTTONS, enabledSet } from "./helpers.js";
import { DEAF_AFTER } from "../state.js";

const T = 100;
const BASE = 5000;

function step(s, event) {
  return transition(s, event);
}

/** Underlying backend state of each front-end state as built by `build`. */
const UNDERLYING = {
  idle: "idle", starting: "idle", running: "running", pausing: "running", paused: "paused",
  resuming: "paused", stopping: "running", stopped: "stopped", completed: "completed",
  failed: "failed", disconnected: "running", reconnecting: "running", ended: "running",
};
const PENDING_FROM = { starting: "play", pausing: "pause", resuming: "resume", stopping: "stop" };

/**
 * Build a machine in the given front-end state. Connected states: pulled at T-2 and answered, seq 10,
 * a pending click at T. disconnected: running snapshot at T-3.5 then silence until T-0.5.
 */
function build(name) {
  if (name === "reconnecting") {
    // contact is back (a heartbeat) but no request sent since the disconnect is answered yet
    const s = step(build("disconnected"), { type: "heartbeat", value: 1, now: T - 0.2 });
    assert.equal(s.ui, "reconnecting");
    return s;
  }
  if (name === "ended") {
    const s = step(build("running"), { type: "ended", cause: "restarted", now: T });
    assert.equal(s.ui, "ended");
    return s;
  }
  if (name === "disconnected") {
    let s = initial(CFG, T - 3.5, { idBase: BASE });
    s = step(s, { type: "message", msg: { type: "status", id: BASE, status: snap("running", 10) }, now: T - 3.5 });
    s = step(s, { type: "tick", now: T - 0.5 });
    assert.equal(s.ui, "disconnected");
    return s;
  }
  let s = initial(CFG, T - 2, { idBase: BASE });
  s = step(s, { type: "message", msg: { type: "status", id: BASE, status: snap(UNDERLYING[name], 10) }, now: T - 2 });
  if (PENDING_FROM[name]) s = step(s, { type: "click", button: PENDING_FROM[name], now: T });
  assert.equal(s.ui, name);
  assert.equal(s.seq, 10);
  return s;
}

/** The snapshot that "naturally" answers the pending command (used by accepted acks). */
const ACK_RESULT = {
  starting: { ...snap("running", 11), run_id: "r2" },
  pausing: snap("pausing", 11),
  resuming: snap("running", 11),
  stopping: snap("stopping", 11),
};

function outboxSummary(s) {
  return s.outbox.map((m) => (m.type === "command" ? `command:${m.command}` : m.type)).join(",");
}

const E = T + 0.2;

const EVENTS = {
  click_play: (s) => step(s, { type: "click", button: "play", now: E }),
  click_pause: (s) => step(s, { type: "click", button: "pause", now: E }),
  click_resume: (s) => step(s, { type: "click", button: "resume", now: E }),
  click_stop: (s) => step(s, { type: "click", button: "stop", now: E }),
  ack_accepted: (s, name) => {
    const id = s.pending ? s.pending.id : 999;
    const status = ACK_RESULT[name] || snap(UNDERLYING[name], 11);
    return step(s, { type: "message", msg: { type: "ack", id, command: "x", accepted: true, reason: "ok", status }, now: E });
  },
  ack_rejected: (s, name) => {
    const id = s.pending ? s.pending.id : 999;
    return step(s, {
      type: "message",
      msg: { type: "ack", id, command: "x", accepted: false, reason: "nope", status: snap(UNDERLYING[name], 11) },
      now: E,
    });
  },
  snapshot_newer: (s, name) => step(s, { type: "snapshot", status: snap(UNDERLYING[name], 11), now: E }),
  snapshot_older: (s) => step(s, { type: "snapshot", status: snap("idle", 9), now: E }),
  snapshot_gap: (s, name) => step(s, { type: "snapshot", status: snap(UNDERLYING[name], 15), now: E }),
  status_reply: (s, name) => {
    s = step(s, { type: "visible", now: T + 0.1 });
    const id = s.outbox.length ? s.outbox[0].id : 999; // ended: nothing is sent
    return step(s, { type: "message", msg: { type: "status", id, status: snap(UNDERLYING[name], 11) }, now: E });
  },
  heartbeat: (s) => step(s, { type: "heartbeat", value: 1e9, now: E }),
  tick_early: (s) => step(s, { type: "tick", now: E }),
  tick_command_timeout: (s) => {
    for (const t of [0.9, 1.8, 2.7, 3.6, 4.5, 4.9]) s = step(s, { type: "heartbeat", value: 1e9 + t, now: T + t });
    return step(s, { type: "tick", now: T + 5.1 });
  },
  tick_silence: (s) => step(s, { type: "tick", now: T + 3.1 }),
  tick_pull_unanswered: (s) => {
    s = step(s, { type: "visible", now: T + 0.1 });
    return step(s, { type: "tick", now: T + 3.2 });
  },
  visible: (s) => step(s, { type: "visible", now: E }),
  online: (s) => step(s, { type: "online", now: E }),
  // an error reply to an id this view sent (its last request)
  error_reply: (s) => step(s, { type: "message", msg: { type: "error", id: s.nextId - 1, error: "bad message" }, now: E }),
  // the kernel refused another client's message (a foreign trait update): id null, not ours
  error_reply_foreign: (s) => step(s, { type: "message", msg: { type: "error", id: null, error: "owned by the kernel" }, now: E }),
};

// Explicit expected outcomes: "<ui after>|<messages sent by the last event>".
// Columns: idle starting running pausing paused resuming stopping stopped completed failed disconnected
// reconnecting ended
const COLS = FRONT_STATES;
const TABLE = {
  click_play: [
    "starting|command:start", "starting|", "running|", "pausing|", "paused|",
    "resuming|", "stopping|", "starting|command:start", "starting|command:start", "starting|command:start",
    "disconnected|", "reconnecting|", "ended|",
  ],
  click_pause: [
    "idle|", "starting|", "pausing|command:pause", "pausing|", "paused|",
    "resuming|", "stopping|", "stopped|", "completed|", "failed|",
    "disconnected|", "reconnecting|", "ended|",
  ],
  click_resume: [
    "idle|", "starting|", "running|", "pausing|", "resuming|command:resume",
    "resuming|", "stopping|", "stopped|", "completed|", "failed|",
    "disconnected|", "reconnecting|", "ended|",
  ],
  click_stop: [
    "idle|", "stopping|command:stop", "stopping|command:stop", "stopping|command:stop", "stopping|command:stop",
    "stopping|command:stop", "stopping|", "stopped|", "completed|", "failed|",
    "disconnected|command:stop", "reconnecting|command:stop", "ended|",
  ],
  ack_accepted: [
    "idle|", "running|", "running|", "pausing|", "paused|",
    "running|", "stopping|", "stopped|", "completed|", "failed|",
    "reconnecting|status_request", "reconnecting|", "ended|",
  ],
  ack_rejected: [
    "idle|", "idle|", "running|", "running|", "paused|",
    "paused|", "running|", "stopped|", "completed|", "failed|",
    "reconnecting|status_request", "reconnecting|", "ended|",
  ],
  snapshot_newer: [
    "idle|", "starting|", "running|", "pausing|", "paused|",
    "resuming|", "stopping|", "stopped|", "completed|", "failed|",
    "reconnecting|status_request", "reconnecting|", "ended|",
  ],
  snapshot_older: [
    "idle|", "starting|", "running|", "pausing|", "paused|",
    "resuming|", "stopping|", "stopped|", "completed|", "failed|",
    "reconnecting|status_request", "reconnecting|", "ended|",
  ],
  snapshot_gap: [
    "idle|status_request", "starting|status_request", "running|status_request", "pausing|status_request", "paused|status_request",
    "resuming|status_request", "stopping|status_request", "stopped|status_request", "completed|status_request", "failed|status_request",
    "reconnecting|status_request", "reconnecting|", "ended|",
  ],
  status_reply: [
    "idle|", "starting|", "running|", "pausing|", "paused|",
    "resuming|", "stopping|", "stopped|", "completed|", "failed|",
    "running|", "running|", "ended|",
  ],
  heartbeat: [
    "idle|", "starting|", "running|", "pausing|", "paused|",
    "resuming|", "stopping|", "stopped|", "completed|", "failed|",
    "reconnecting|status_request", "reconnecting|", "ended|",
  ],
  tick_early: [
    "idle|", "starting|", "running|", "pausing|", "paused|",
    "resuming|", "stopping|", "stopped|", "completed|", "failed|",
    "disconnected|", "reconnecting|", "ended|",
  ],
  tick_command_timeout: [
    "idle|", "idle|status_request", "running|", "running|status_request", "paused|",
    "paused|status_request", "running|status_request", "stopped|", "completed|", "failed|",
    "reconnecting|status_request", "reconnecting|status_request", "ended|",
  ],
  tick_silence: [
    "idle|status_request", "disconnected|status_request", "disconnected|status_request", "disconnected|status_request", "disconnected|status_request",
    "disconnected|status_request", "disconnected|status_request", "stopped|status_request", "completed|status_request", "failed|status_request",
    "disconnected|status_request", "disconnected|", "ended|",
  ],
  tick_pull_unanswered: COLS.map((c) => (c === "ended" ? "ended|" : "disconnected|")),
  visible: COLS.map((c) => (c === "ended" ? "ended|" : `${c}|status_request`)),
  online: COLS.map((c) => (c === "ended" ? "ended|" : `${c}|status_request`)),
  error_reply: [
    "idle|", "starting|", "running|", "pausing|", "paused|",
    "resuming|", "stopping|", "stopped|", "completed|", "failed|",
    "reconnecting|status_request", "reconnecting|", "ended|",
  ],
  error_reply_foreign: [
    "idle|", "starting|", "running|", "pausing|", "paused|",
    "resuming|", "stopping|", "stopped|", "completed|", "failed|",
    "reconnecting|status_request", "reconnecting|", "ended|",
  ],
};

describe("transition table: every (state, event) pair", () => {
  for (const [kind, row] of Object.entries(TABLE)) {
    assert.equal(row.length, COLS.length, kind);
    COLS.forEach((name, i) => {
      test(`${name} + ${kind} -> ${row[i]}`, () => {
        const before = build(name);
        const frozenCopy = JSON.stringify(before);
        const after = EVENTS[kind](before, name);
        assert.equal(`${after.ui}|${outboxSummary(after)}`, row[i]);
        assert.equal(JSON.stringify(before), frozenCopy, "input state must not be mutated");
        assert.ok(after.seq >= before.seq, "seq never decreases");
        assert.deepEqual(enabledSet(buttons(after)), EXPECTED_BUTTONS[after.ui]);
        if (kind === "snapshot_older") assert.equal(after.seq, 10);
        if (kind === "snapshot_gap") assert.equal(after.seq, name === "ended" ? 10 : 15);
        if (name === "ended") {
          assert.equal(after.notice.cause, "ended", "ended is terminal: its notice stays");
          assert.deepEqual(after.outbox, []);
        } else if (kind === "error_reply") {
          assert.equal(after.notice.level, "error");
          assert.match(after.notice.text, /bad message/);
        } else if (kind === "error_reply_foreign") {
          assert.ok(!after.notice || after.notice.cause !== "kernel-error", "not this view's error");
          assert.ok(before.pulls.every((id) => after.pulls.includes(id)), "answers none of this view's pulls");
        }
        if (kind === "ack_rejected" && PENDING_FROM[name]) {
          assert.equal(after.notice.level, "warn");
          assert.match(after.notice.text, /rejected: nope/);
          assert.equal(after.pending, null);
        }
        if (kind === "ack_accepted") assert.equal(after.pending, null);
        if (kind === "tick_command_timeout" && PENDING_FROM[name]) {
          assert.match(after.notice.text, /not confirmed within 5 s/);
        }
        if (kind === "click_stop" && name === "disconnected") {
          assert.match(after.notice.text, /queued — will be delivered when the kernel answers/);
          assert.ok(after.queued);
        }
        if (kind === "tick_silence" && name === "stopping") {
          assert.ok(after.queued, "a pending stop becomes a queued stop on disconnect");
        }
      });
    });
  }
});

describe("targeted behaviour", () => {
  test("initial: disconnected (never a false idle) until a snapshot; pulls at once", () => {
    const s = initial(CFG, 0, { idBase: 77 });
    assert.equal(s.ui, "disconnected");
    assert.deepEqual(s.outbox, [{ type: "status_request", id: 77 }]);
    const s2 = transition(s, { type: "snapshot", status: snap("idle", 0), now: 0.01 });
    assert.equal(s2.ui, "idle");
    assert.equal(s2.seq, 0);
    assert.deepEqual(s2.outbox, [], "no duplicate pull right after the load pull");
  });

  test("invalid snapshots are ignored", () => {
    let s = build("running");
    for (const bad of [null, 3, {}, { seq: 11 }, { seq: 11, state: "weird" }, { seq: -1, state: "idle" }, { seq: 1.5, state: "idle" }]) {
      const t = transition(s, { type: "snapshot", status: bad, now: E });
      assert.equal(t.ui, "running");
      assert.equal(t.seq, 10);
    }
  });

  test("backend pausing confirms a pause click; progress-only running snapshots do not", () => {
    let s = build("running");
    s = transition(s, { type: "click", button: "pause", now: T });
    assert.equal(s.ui, "pausing");
    s = transition(s, { type: "snapshot", status: snap("running", 11, { done: 3 }), now: T + 0.1 });
    assert.equal(s.ui, "pausing");
    assert.ok(s.pending);
    s = transition(s, { type: "snapshot", status: snap("pausing", 12), now: T + 0.2 });
    assert.equal(s.ui, "pausing");
    assert.equal(s.pending, null, "confirmed by backend pausing");
    s = transition(s, { type: "snapshot", status: snap("paused", 13), now: T + 0.3 });
    assert.equal(s.ui, "paused");
    assert.equal(pauseButtonMode(s), "resume");
  });

  test("accepted ack whose snapshot does not show the effect keeps the intermediate state", () => {
    let s = build("idle");
    s = transition(s, { type: "click", button: "play", now: T });
    const id = s.outbox[0].id;
    s = transition(s, { type: "message", msg: { type: "ack", id, command: "start", accepted: true, reason: "", status: snap("idle", 11) }, now: T + 0.1 });
    assert.equal(s.ui, "starting");
    assert.equal(s.pending.accepted, true);
    s = transition(s, { type: "snapshot", status: { ...snap("running", 12), run_id: "r9" }, now: T + 0.2 });
    assert.equal(s.ui, "running");
    assert.equal(s.pending, null);
  });

  test("start from completed is settled by a new run id even if it already completed", () => {
    let s = build("completed");
    s = transition(s, { type: "click", button: "play", now: T });
    s = transition(s, { type: "snapshot", status: { ...snap("completed", 14), run_id: "r2" }, now: T + 0.1 });
    assert.equal(s.ui, "completed");
    assert.equal(s.pending, null);
  });

  test("stop supersedes a pending pause; the old ack only contributes its snapshot", () => {
    let s = build("running");
    s = transition(s, { type: "click", button: "pause", now: T });
    const pauseId = s.outbox[0].id;
    s = transition(s, { type: "click", button: "stop", now: T + 0.1 });
    const stopId = s.outbox[0].id;
    assert.notEqual(pauseId, stopId);
    assert.equal(s.ui, "stopping");
    s = transition(s, { type: "message", msg: { type: "ack", id: pauseId, accepted: true, reason: "", status: snap("pausing", 11) }, now: T + 0.2 });
    assert.equal(s.ui, "stopping");
    s = transition(s, { type: "message", msg: { type: "ack", id: stopId, accepted: true, reason: "", status: snap("stopping", 12) }, now: T + 0.3 });
    assert.equal(s.ui, "stopping");
    assert.equal(s.pending, null);
    s = transition(s, { type: "snapshot", status: snap("stopped", 13), now: T + 0.4 });
    assert.equal(s.ui, "stopped");
  });

  test("disconnected: stop is queued, re-sent as a pending stop when the kernel answers", () => {
    let s = build("disconnected");
    assert.deepEqual(enabledSet(buttons(s)), ["stop"]);
    s = transition(s, { type: "click", button: "stop", now: T });
    const firstId = s.outbox[0].id;
    assert.equal(s.queued.id, firstId);
    s = transition(s, { type: "heartbeat", value: 1, now: T + 1 });
    assert.equal(s.ui, "reconnecting", "a heartbeat alone does not prove the shown state is current");
    const types = s.outbox.map((m) => m.type + (m.command ? `:${m.command}` : ""));
    assert.deepEqual(types.sort(), ["command:stop", "status_request"]);
    assert.equal(s.queued, null);
    assert.match(s.notice.text, /queued Stop sent/);
    const pull = s.outbox.find((m) => m.type === "status_request").id;
    s = transition(s, { type: "message", msg: { type: "status", id: pull, status: snap("running", 11) }, now: T + 1.1 });
    assert.equal(s.ui, "stopping");
  });

  test("disconnected: an ack of the queued stop itself counts as delivery", () => {
    let s = build("disconnected");
    s = transition(s, { type: "click", button: "stop", now: T });
    const id = s.outbox[0].id;
    s = transition(s, { type: "message", msg: { type: "ack", id, accepted: true, reason: "", status: snap("stopping", 11) }, now: T + 1 });
    assert.equal(s.ui, "stopping");
    assert.equal(s.pending, null);
    assert.equal(s.queued, null);
    assert.ok(!s.outbox.some((m) => m.type === "command"), "no duplicate stop");
  });

  test("disconnected: queued stop dropped if the run already ended", () => {
    let s = build("disconnected");
    s = transition(s, { type: "click", button: "stop", now: T });
    s = transition(s, { type: "snapshot", status: snap("completed", 20), now: T + 1 });
    assert.equal(s.ui, "reconnecting");
    assert.equal(s.queued, null);
    assert.ok(!s.outbox.some((m) => m.type === "command"));
    assert.match(s.notice.text, /not needed/);
  });

  test("never idle while the newest snapshot is active, even after silence", () => {
    let s = build("running");
    for (let t = T; t < T + 60; t += 0.7) {
      s = transition(s, { type: "tick", now: t });
      assert.notEqual(s.ui, "idle");
      s = transition(s, { type: "snapshot", status: snap("idle", 3), now: t + 0.1 }); // stale
      assert.notEqual(s.ui, "idle");
    }
  });

  test("ids are unique per view and start at the injected base", () => {
    let s = initial(CFG, 0, { idBase: 123456 });
    const ids = [s.outbox[0].id];
    s = transition(s, { type: "snapshot", status: snap("idle", 1), now: 0 });
    for (let i = 0; i < 20; i++) {
      s = transition(s, { type: "visible", now: i });
      ids.push(...s.outbox.map((m) => m.id));
    }
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(ids[0], 123456);
  });

  test("ack or reply for another view's id is used as a snapshot, without notice", () => {
    let s = build("idle");
    s = transition(s, { type: "message", msg: { type: "ack", id: 42, accepted: false, reason: "x", status: { ...snap("running", 11), run_id: "r3" } }, now: E });
    assert.equal(s.ui, "running");
    assert.equal(s.notice, null);
  });

  test("nextWakeup: fast pull while pending, timeout, disconnect deadline, periodic pull", () => {
    let s = build("idle");
    assert.equal(nextWakeup(s), T - 2 + CFG.pullInterval);
    s = transition(s, { type: "click", button: "play", now: T });
    assert.equal(nextWakeup(s), T + CFG.fastPullInterval);
    let r = build("running");
    assert.equal(nextWakeup(r), T - 2 + CFG.disconnectAfter);
    const d = build("disconnected");
    assert.equal(nextWakeup(d), T - 3.5 + CFG.pullInterval);
  });

  test("backend pausing/stopping without a pending click: pulls at the fast interval", () => {
    for (const backend of ["pausing", "stopping", "running"]) {
      let s = initial(CFG, T - 2, { idBase: BASE });
      s = step(s, { type: "message", msg: { type: "status", id: BASE, status: snap(backend, 10) }, now: T - 2 });
      assert.equal(s.pending, null);
      const fastDue = T - 2 + CFG.fastPullInterval;
      s = transition(s, { type: "tick", now: fastDue });
      const pulled = s.outbox.some((m) => m.type === "status_request");
      // a lost paused/stopped update is found quickly; a plain running run pulls at the normal pace
      assert.equal(pulled, backend !== "running", backend);
    }
  });

  test("updates arrive but pulls are never answered: a notice says the kernel does not hear us", () => {
    let s = initial(CFG, 0, { idBase: BASE });
    s = step(s, { type: "message", msg: { type: "status", id: BASE, status: snap("running", 1) }, now: 0.1 });
    let seq = 1;
    for (let t = 0.5; t <= DEAF_AFTER + 6; t += 0.5) {
      s = step(s, { type: "snapshot", status: snap("running", ++seq), now: t });
      s = step(s, { type: "tick", now: t + 0.01 });
      if (t < DEAF_AFTER) assert.equal(s.notice, null, `no notice yet at ${t}`);
    }
    assert.equal(s.ui, "running");
    assert.match(s.notice.text, /does not answer this panel's requests/);
    // an answer ends it; a later deafness warns again
    const lastPull = s.pulls[s.pulls.length - 1];
    s = step(s, { type: "message", msg: { type: "status", id: lastPull, status: snap("running", ++seq) }, now: DEAF_AFTER + 6.1 });
    assert.equal(s.pullSince, null);
    assert.equal(s.deafWarned, false);
  });

  test("config events change the intervals", () => {
    let s = build("idle");
    s = transition(s, { type: "config", config: { ...CFG, pullInterval: 1 }, now: T });
    assert.equal(s.config.pullInterval, 1);
    assert.equal(nextWakeup(s), T - 2 + 1 > T ? T - 2 + 1 : nextWakeup(s));
    const bad = transition(s, { type: "config", config: { pullInterval: -3, fastPullInterval: "x" }, now: T });
    assert.equal(bad.config.pullInterval, 5);
    assert.equal(bad.config.fastPullInterval, 0.5);
  });

  test("a gap pull is rate limited and skipped while a pull is outstanding", () => {
    let s = build("running");
    s = transition(s, { type: "snapshot", status: snap("running", 15), now: T });
    assert.equal(s.outbox.length, 1);
    s = transition(s, { type: "snapshot", status: snap("running", 20), now: T + 0.1 });
    assert.equal(s.outbox.length, 0, "pull outstanding");
  });

  test("frozen input is never mutated (deep freeze)", () => {
    let s = deepFreeze(build("running"));
    const events = [
      { type: "click", button: "pause", now: T + 1 },
      { type: "snapshot", status: deepFreeze(snap("pausing", 11)), now: T + 1.1 },
      { type: "tick", now: T + 20 },
      { type: "heartbeat", value: 5, now: T + 21 },
      { type: "message", msg: deepFreeze({ type: "error", id: null, error: "e" }), now: T + 21.5 },
    ];
    for (const ev of events) s = deepFreeze(transition(s, ev));
    assert.ok(FRONT_STATES.includes(s.ui));
  });

  test("buttons and pause-button label are pure functions of the front-end state name", () => {
    for (const name of FRONT_STATES) {
      assert.deepEqual(enabledSet(buttons(name)), EXPECTED_BUTTONS[name], name);
    }
    assert.equal(pauseButtonMode("paused"), "resume");
    assert.equal(pauseButtonMode("resuming"), "resume");
    assert.equal(pauseButtonMode("running"), "pause");
    assert.equal(pauseButtonMode("pausing"), "pause");
    assert.deepEqual(Object.values(INTERMEDIATE).sort(), ["pausing", "resuming", "starting", "stopping"]);
  });
});

describe("notices name what answers the view: the kernel (notebook) or the server (web page)", () => {
  /** Lose the connection with a pending Stop, a pending Pause, nothing pending (then click
   * Stop); every notice text. */
  function texts(config) {
    const out = [];
    for (const button of ["stop", "pause", null]) {
      let s = initial(config, T - 2, { idBase: BASE });
      s = step(s, { type: "message", msg: { type: "status", id: BASE, status: snap("running", 10) }, now: T - 2 });
      if (button) s = step(s, { type: "click", button, now: T });
      s = step(s, { type: "tick", now: T + 10 });
      assert.equal(s.ui, "disconnected");
      out.push(s.notice.text);
      if (!button) {
        s = step(s, { type: "click", button: "stop", now: T + 11 }); // only Stop is enabled
        out.push(s.notice.text);
      }
    }
    // a command that times out while the connection holds (heartbeats keep coming)
    let s = initial(config, T - 2, { idBase: BASE });
    s = step(s, { type: "message", msg: { type: "status", id: BASE, status: snap("running", 10) }, now: T - 2 });
    for (let t = T - 1.5; t <= T + 6; t += 0.5) {
      if (t === T) s = step(s, { type: "click", button: "pause", now: T });
      s = step(s, { type: "heartbeat", value: t, now: t });
    }
    assert.equal(s.ui, "running");
    out.push(s.notice.text);
    return out;
  }

  test("the notebook panel says kernel", () => {
    for (const text of texts(CFG)) assert.match(text, /kernel/, text);
  });

  test("the web page says server, never kernel", () => {
    const all = texts({ ...CFG, backend: "server" });
    assert.equal(all.length, 5);
    for (const text of all) {
      assert.doesNotMatch(text, /kernel/i, text);
      assert.match(text, /server|not confirmed|Connection lost/, text);
    }
  });
});
