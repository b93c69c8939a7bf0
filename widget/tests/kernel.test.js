// Issue 9 rules of the state machine: busy kernel, kernel gone (ended), reconnecting, epochs and
// seq jumps. Every test drives state.js with explicit times.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  initial, transition, buttons, nextWakeup, kernelGone, kernelBusy,
  BUSY_NOTICE_AFTER, DEAF_AFTER, MAX_SEQ_JUMP, RESTORED_NOTICE_S,
} from "../state.js";
import { CFG, snap, enabledSet } from "./helpers.js";

const BASE = 5000;
const BUSY = { busy: true, busy_since: 1, hears_clicks: false, pid: 42 };
const FREE = { busy: false, busy_since: null, hears_clicks: false, pid: 42 };

/** A connected view showing `state` at seq 10 (pull answered at t=0). */
function at(state, extra = {}) {
  let s = initial(CFG, 0, { idBase: BASE });
  return transition(s, { type: "message", msg: { type: "status", id: BASE, status: snap(state, 10, extra) }, now: 0 });
}

const ev = (s, event) => transition(s, event);
const sent = (s, type) => s.outbox.filter((m) => m.type === type);
/** Heartbeats every 0.5 s in [from, to) (the publisher thread's, while the run is active). */
function beat(s, from, to) {
  for (let t = from; t < to; t += 0.5) s = ev(s, { type: "heartbeat", value: t, now: t });
  return s;
}
const pullIds = (s) => sent(s, "status_request").map((m) => m.id);

describe("busy kernel (a foreign cell blocks the main shell, clicks not heard)", () => {
  test("a click while busy: notice at once, no timeout back, no reload advice, no disconnect", () => {
    let s = ev(at("running"), { type: "kernel", value: BUSY, now: 0.5 });
    assert.ok(kernelBusy(s));
    assert.equal(s.notice, null, "busy alone says nothing: no click waits");
    s = ev(s, { type: "click", button: "pause", now: 1 });
    assert.equal(s.ui, "pausing");
    assert.equal(sent(s, "command").length, 1, "the click is sent (it queues in the kernel)");
    assert.equal(s.notice.cause, "busy");
    assert.equal(s.notice.text, "The kernel is busy running another cell: Pause is queued and " +
      "applies when that cell ends. The kernel's Interrupt (■) ends that cell now, so Pause " +
      "applies at once.");
    // 30 s of a blocked main shell: heartbeats and progress keep flowing from the publisher thread
    let pulls = 0;
    for (let t = 1.1, seq = 11; t < 31; t += 0.3) {
      s = ev(s, { type: "snapshot", status: snap("running", seq++), now: t });
      s = ev(s, { type: "tick", now: t + 0.1 });
      pulls += pullIds(s).length;
      assert.equal(s.ui, "pausing", `no timeout back while busy (t=${t.toFixed(1)})`);
      assert.equal(s.notice.cause, "busy", "no reload advice, no other notice");
    }
    assert.ok(pulls <= 30 / CFG.pullInterval + 1, `no fast pulls into a busy shell (${pulls})`);
    // the cell ends: the notice clears at once, the click keeps waiting for its ack
    s = ev(s, { type: "kernel", value: FREE, now: 31 });
    assert.equal(s.notice, null);
    assert.equal(s.ui, "pausing");
    assert.equal(nextWakeup(s) <= 31 + CFG.commandTimeout, true);
    const id = s.pending.id;
    s = ev(s, { type: "message", msg: { type: "ack", id, accepted: true, reason: "", status: snap("pausing", 200) }, now: 31.2 });
    s = ev(s, { type: "snapshot", status: snap("paused", 201), now: 31.4 });
    assert.equal(s.ui, "paused");
    assert.equal(s.notice, null);
  });

  test("busy begins: one probe pull; answered during the cell (a subshell), clicks get no busy notice", () => {
    // JupyterLab sends a comm's first messages on the main shell (its subshell does not exist yet),
    // so the kernel cannot say hears_clicks before a message reaches the subshell: the view asks.
    let s = ev(at("running"), { type: "kernel", value: BUSY, now: 0.5 });
    const probe = pullIds(s);
    assert.equal(probe.length, 1, "a pull goes out as the kernel turns busy");
    assert.equal(pullIds(ev(s, { type: "kernel", value: BUSY, now: 0.6 })).length, 0, "one per busy cell");
    s = ev(s, { type: "message", msg: { type: "status", id: probe[0], status: snap("running", 11) }, now: 0.55 });
    assert.equal(kernelBusy(s), false, "answered while busy: the panel is heard");
    s = ev(s, { type: "click", button: "pause", now: 1.5 });
    s = ev(s, { type: "tick", now: 1.5 + BUSY_NOTICE_AFTER + 0.01 });
    assert.equal(s.notice, null, "no busy notice for a click the kernel hears");
    // a pull sent before the cell (the load-time one, on the main shell) is stuck behind it:
    // it does not stand in for the probe
    let r = ev(at("running"), { type: "visible", now: 0.4 });
    assert.equal(pullIds(r).length, 1);
    r = ev(r, { type: "kernel", value: BUSY, now: 0.5 });
    const [probe2] = pullIds(r);
    assert.ok(probe2 !== undefined, "a probe even though an older pull is out");
    r = ev(r, { type: "message", msg: { type: "status", id: probe2, status: snap("running", 11) }, now: 0.55 });
    assert.equal(kernelBusy(r), false);
    // not answered (no subshell): the notice as before, and no second probe while one is out
    let q = ev(at("running"), { type: "kernel", value: BUSY, now: 0.5 });
    q = ev(q, { type: "kernel", value: FREE, now: 0.7 });
    q = ev(q, { type: "kernel", value: BUSY, now: 0.9 });
    assert.equal(pullIds(q).length, 0, "the first probe is still unanswered");
    q = ev(q, { type: "click", button: "pause", now: 1 });
    assert.equal(q.notice.cause, "busy");
  });

  test("the timeout counts from the end of the busy cell", () => {
    let s = ev(at("running"), { type: "kernel", value: BUSY, now: 0 });
    s = ev(s, { type: "click", button: "stop", now: 1 });
    s = beat(s, 1.5, 10);
    s = ev(s, { type: "kernel", value: FREE, now: 10 });
    for (let t = 10.5; t < 10 + CFG.commandTimeout; t += 0.5) {
      s = ev(s, { type: "heartbeat", value: t, now: t });
      assert.equal(s.ui, "stopping", `t=${t}`);
    }
    s = ev(s, { type: "tick", now: 10 + CFG.commandTimeout + 0.01 });
    assert.equal(s.ui, "running");
    assert.match(s.notice.text, /Stop not confirmed within 5 s/);
  });

  test("a click unconfirmed for BUSY_NOTICE_AFTER s once the kernel turns busy gets the notice", () => {
    let s = ev(at("running"), { type: "click", button: "pause", now: 1 });
    s = ev(s, { type: "kernel", value: BUSY, now: 1.1 });
    assert.equal(s.notice, null);
    assert.equal(nextWakeup(s), 1 + BUSY_NOTICE_AFTER);
    s = ev(s, { type: "tick", now: 1 + BUSY_NOTICE_AFTER });
    assert.equal(s.notice.cause, "busy");
    assert.match(s.notice.text, /Pause is queued and applies when that cell ends/);
  });

  test("busy but the panel is heard (subshell or Runner.wait pumping): no notice, normal timeout", () => {
    let s = ev(at("running"), { type: "kernel", value: { ...BUSY, hears_clicks: true }, now: 0 });
    assert.equal(kernelBusy(s), false);
    s = ev(s, { type: "click", button: "pause", now: 1 });
    s = ev(s, { type: "tick", now: 1 + BUSY_NOTICE_AFTER + 0.1 });
    assert.equal(s.notice, null);
    s = beat(s, 1.7, 1 + CFG.commandTimeout);
    s = ev(s, { type: "tick", now: 1 + CFG.commandTimeout + 0.01 });
    assert.match(s.notice.text, /not confirmed/);
  });

  test("idle run, busy kernel, no heartbeat: Play waits as queued, never `disconnected`", () => {
    let s = ev(at("idle"), { type: "kernel", value: BUSY, now: 0 });
    s = ev(s, { type: "click", button: "play", now: 1 });
    for (let t = 1.5; t < 40; t += 0.5) {
      s = ev(s, { type: "tick", now: t });
      assert.equal(s.ui, "starting", `t=${t}`);
    }
    assert.match(s.notice.text, /Start is queued/);
    // the Interrupt ends the blocking cell; the queued click then applies: no run is stopped
    assert.doesNotMatch(s.notice.text, /stops the run/);
    assert.match(s.notice.text, /Interrupt \(■\) ends that cell now, so Start applies at once/);
  });

  test("the busy notice says what the Interrupt does for each queued click", () => {
    const text = (button) => {
      let s = ev(at(button === "resume" ? "paused" : "running"), { type: "kernel", value: BUSY, now: 0 });
      return ev(s, { type: "click", button, now: 1 }).notice.text;
    };
    assert.match(text("stop"), /Stop is queued .* Interrupt \(■\) ends that cell and stops the run now\.$/);
    for (const [button, label] of [["pause", "Pause"], ["resume", "Resume"]]) {
      assert.doesNotMatch(text(button), /stops the run/, button);
      assert.match(text(button), new RegExp(`Interrupt \\(■\\) ends that cell now, so ${label} applies at once`));
    }
  });

  test("an answer while the view believed the kernel busy ends the hold (a lost busy=false)", () => {
    let s = ev(at("running"), { type: "kernel", value: BUSY, now: 0 });
    s = ev(s, { type: "click", button: "pause", now: 1 });
    s = ev(s, { type: "visible", now: 2 });
    const id = pullIds(s)[0];
    s = ev(s, { type: "message", msg: { type: "status", id, status: snap("running", 11) }, now: 2.1 });
    assert.equal(kernelBusy(s), false);
    assert.equal(s.notice, null);
    assert.equal(s.pending.clockFrom, 2.1);
  });

  test("reload advice only when the kernel is not busy, and it clears once a pull is answered", () => {
    const deaf = (kernel) => {
      let s = ev(at("running"), { type: "kernel", value: kernel, now: 0 });
      s = ev(s, { type: "visible", now: 0.1 });
      for (let t = 0.5, seq = 11; t < DEAF_AFTER + 3; t += 0.5) {
        s = ev(s, { type: "snapshot", status: snap("running", seq++), now: t });
      }
      return s;
    };
    assert.equal(deaf(BUSY).notice, null);
    assert.equal(deaf({ ...BUSY, hears_clicks: true }).notice, null);
    let s = deaf(FREE);
    assert.equal(s.notice.cause, "deaf");
    assert.match(s.notice.text, /reload the page/);
    const id = s.pulls.at(-1);
    s = ev(s, { type: "message", msg: { type: "status", id, status: snap("running", 99) }, now: DEAF_AFTER + 3 });
    assert.equal(s.notice, null, "the notice clears when its cause ends");
  });
});

describe("kernel gone: ended", () => {
  test("goodbye: its final snapshot, ended, nothing enabled, nothing sent, nothing scheduled", () => {
    let s = ev(at("running", { done: 250, total: 600 }), { type: "click", button: "pause", now: 1 });
    const final = snap("stopped", 30, { done: 254, total: 600, reason: "kernel shutting down" });
    s = ev(s, { type: "message", msg: { type: "goodbye", reason: "kernel shutting down", status: final }, now: 1.2 });
    assert.equal(s.ui, "ended");
    assert.equal(s.snapshot.state, "stopped");
    assert.equal(s.pending, null);
    assert.deepEqual(enabledSet(buttons(s)), []);
    assert.equal(nextWakeup(s), Infinity);
    assert.equal(s.notice.text, "The kernel is shutting down or restarting (kernel shutting down): " +
      "the run ended at 254/600. Run the cells again; resume=True skips finished items.");
    for (const e of [{ type: "tick", now: 60 }, { type: "click", button: "stop", now: 61 },
      { type: "snapshot", status: snap("running", 99), now: 62 }, { type: "visible", now: 63 },
      { type: "heartbeat", value: 5, now: 64 }, { type: "kernel", value: FREE, now: 65 }]) {
      s = ev(s, e);
      assert.equal(s.ui, "ended");
      assert.deepEqual(s.outbox, []);
      assert.equal(s.seq, 30);
    }
  });

  test("restart seen by the page while disconnected: the queued Stop is dropped, not queued forever", () => {
    let s = ev(at("running", { done: 31, total: 200 }), { type: "tick", now: 3.5 });
    assert.equal(s.ui, "disconnected");
    s = ev(s, { type: "click", button: "stop", now: 4 });
    assert.ok(s.queued);
    s = ev(s, { type: "ended", cause: "restarted", now: 4.5 });
    assert.equal(s.ui, "ended");
    assert.equal(s.queued, null);
    assert.equal(s.notice.text, "The kernel restarted: the run ended at 31/200 (its last report). " +
      "Run the cells again; resume=True skips finished items.");
  });

  test("a goodbye after the restart was seen still brings the true final figures", () => {
    let s = ev(at("running", { done: 31, total: 200 }), { type: "ended", cause: "restarted", now: 1 });
    s = ev(s, { type: "message", msg: { type: "goodbye", reason: "kernel shutting down", status: snap("stopped", 12, { done: 33, total: 200 }) }, now: 1.1 });
    assert.equal(s.ui, "ended");
    assert.equal(s.snapshot.done, 33);
    assert.match(s.notice.text, /ended at 33\/200/);
  });

  test("goodbye from a panel attached to a served run: the run goes on elsewhere", () => {
    let s = at("running", { done: 31, total: 200 });
    s = ev(s, { type: "message", msg: { type: "goodbye", reason: "kernel shutting down", status: snap("running", 40, { done: 35, total: 200 }) }, now: 1.1 });
    assert.equal(s.ui, "ended");
    assert.deepEqual(enabledSet(buttons(s)), []);
    assert.equal(s.notice.text, "The kernel is shutting down or restarting (kernel shutting down): " +
      "the run goes on in the process that serves it (running, 35/200). Attach again from the new kernel.");
  });

  test("a control server's goodbye: the final snapshot, ended, the server named, no notebook advice", () => {
    const bye = (status) => ({ type: "message", now: 1.1, msg: {
      type: "goodbye", cause: "server", reason: "its chainlib run command has ended", status } });
    let s = ev(at("running", { done: 31, total: 200 }), bye(snap("completed", 40, { done: 200, total: 200 })));
    assert.equal(s.ui, "ended");
    assert.equal(s.snapshot.state, "completed");
    assert.deepEqual(enabledSet(buttons(s)), []);
    assert.equal(nextWakeup(s), Infinity);
    assert.equal(s.notice.text, "The control server closed (its chainlib run command has ended): " +
      "the run is completed, 200/200 done.");
    s = ev(s, { type: "tick", now: 60 });
    assert.deepEqual(s.outbox, [], "no pull of a server that is gone");
    s = ev(at("paused", { done: 31, total: 200 }), bye(snap("paused", 41, { done: 31, total: 200 })));
    assert.equal(s.notice.text, "The control server closed (its chainlib run command has ended): " +
      "the run goes on without it (paused, 31/200); serve it again to follow it here.");
  });

  test("resume=True is advised only for a chain it works for (the `resumable` trait)", () => {
    const ended = (resumable) => {
      let s = transition(initial({ ...CFG, resumable }, 0, { idBase: BASE }), { type: "message", msg: { type: "status", id: BASE, status: snap("running", 10, { done: 31, total: 200 }) }, now: 0 });
      s = ev(s, { type: "ended", cause: "restarted", now: 1 });
      return s.notice.text;
    };
    assert.equal(ended(true), "The kernel restarted: the run ended at 31/200 (its last report). " +
      "Run the cells again; resume=True skips finished items.");
    assert.equal(ended(undefined), ended(true), "unknown counts as resumable");
    // Runner(chain, resume=True) raises ValueError for a chain that saves no files
    assert.equal(ended(false), "The kernel restarted: the run ended at 31/200 (its last report). " +
      "Run the cells again to start it over (this chain saves no files into one folder, so " +
      "resume=True cannot skip finished items).");
    assert.doesNotMatch(ended(false), /resume=True skips/);
  });

  test("an idle panel whose kernel restarted says its run no longer exists", () => {
    const s = ev(at("idle"), { type: "ended", cause: "shut down", now: 1 });
    assert.equal(s.notice.text, "The kernel shut down: this panel's run no longer exists. Run the cells again.");
  });

  test("which JupyterLab kernel statuses mean the kernel is gone", () => {
    assert.equal(kernelGone("restarting"), "restarted");
    assert.equal(kernelGone("autorestarting"), "restarted");
    assert.equal(kernelGone("starting"), "restarted");
    assert.equal(kernelGone("dead"), "shut down");
    for (const alive of ["idle", "busy", "unknown", "connecting", "connected", "disconnected", "terminating", "toString", ""]) {
      assert.equal(kernelGone(alive), null, alive);
    }
  });
});

describe("reconnect", () => {
  test("after a disconnect: `reconnecting` until a pull sent since answers; replayed updates are not the truth", () => {
    let s = at("running", { done: 30, total: 200 });
    s = ev(s, { type: "tick", now: 3.5 });
    assert.equal(s.ui, "disconnected");
    // the server replays what it buffered while the page was away: old progress first
    s = ev(s, { type: "snapshot", status: snap("running", 11, { done: 31, total: 200 }), now: 40 });
    assert.equal(s.ui, "reconnecting");
    assert.deepEqual(enabledSet(buttons(s)), ["stop"]);
    const fresh = pullIds(s);
    assert.equal(fresh.length, 1, "pull at once");
    for (let seq = 12; seq < 20; seq++) {
      s = ev(s, { type: "snapshot", status: snap("running", seq, { done: seq + 20 }), now: 40 + seq / 100 });
      assert.equal(s.ui, "reconnecting", "never `running` with Pause enabled on stale data");
    }
    s = ev(s, { type: "message", msg: { type: "status", id: fresh[0], status: snap("completed", 300, { done: 200, total: 200 }) }, now: 40.3 });
    assert.equal(s.ui, "completed");
    assert.equal(s.snapshot.done, 200);
    // "Connection restored" says its piece, then goes: its cause (the lost link) is over
    assert.equal(s.notice.text, "Connection restored");
    assert.ok(nextWakeup(s) <= 40 + RESTORED_NOTICE_S);
    s = ev(s, { type: "tick", now: 40 + RESTORED_NOTICE_S - 0.1 });
    assert.equal(s.notice.text, "Connection restored");
    s = ev(s, { type: "tick", now: 40 + RESTORED_NOTICE_S });
    assert.equal(s.notice, null);
  });

  test("a reply to a pull sent before the disconnect does not end `reconnecting`", () => {
    let s = ev(at("running"), { type: "visible", now: 1 });
    const old = pullIds(s)[0];
    s = ev(s, { type: "tick", now: 4.1 });
    assert.equal(s.ui, "disconnected");
    s = ev(s, { type: "message", msg: { type: "status", id: old, status: snap("running", 11) }, now: 30 });
    assert.equal(s.ui, "reconnecting");
    const fresh = pullIds(s);
    assert.equal(fresh.length, 1, "a fresh pull goes out");
    s = ev(s, { type: "message", msg: { type: "status", id: fresh[0], status: snap("running", 12) }, now: 30.1 });
    assert.equal(s.ui, "running");
  });

  test("the ack of a Stop clicked while reconnecting ends it too", () => {
    let s = ev(at("running"), { type: "tick", now: 3.5 });
    s = ev(s, { type: "heartbeat", value: 1, now: 10 });
    s = ev(s, { type: "click", button: "stop", now: 10.1 });
    assert.equal(s.ui, "reconnecting");
    const id = sent(s, "command")[0].id;
    s = ev(s, { type: "message", msg: { type: "ack", id, accepted: true, reason: "", status: snap("stopping", 12) }, now: 10.2 });
    assert.equal(s.ui, "stopping");
  });

  test("the first connection (page load) does not go through `reconnecting`", () => {
    const s = transition(initial(CFG, 0, { idBase: BASE }), { type: "snapshot", status: snap("running", 3), now: 0.1 });
    assert.equal(s.ui, "running");
  });
});

describe("ordering: epochs and seq jumps", () => {
  test("another epoch through the trait is confirmed by a pull, then resets the ordering", () => {
    let s = at("running", { epoch: "A" });
    s = ev(s, { type: "snapshot", status: snap("running", 2, { epoch: "B" }), now: 1 });
    assert.equal(s.seq, 10, "not adopted yet");
    assert.equal(s.epoch, "A");
    const id = pullIds(s)[0];
    assert.ok(id, "a pull confirms it");
    s = ev(s, { type: "message", msg: { type: "status", id, status: snap("running", 3, { epoch: "B" }) }, now: 1.1 });
    assert.equal(s.epoch, "B");
    assert.equal(s.seq, 3, "ordering reset: a lower seq of the new epoch is adopted");
    s = ev(s, { type: "snapshot", status: snap("running", 4, { epoch: "B" }), now: 1.2 });
    assert.equal(s.seq, 4);
    // a late message of the old runner is not adopted
    s = ev(s, { type: "snapshot", status: snap("completed", 50, { epoch: "A" }), now: 1.3 });
    assert.equal(s.ui, "running");
    assert.equal(s.seq, 4);
  });

  test("a kernel reply from another epoch is trusted at once", () => {
    let s = ev(at("completed", { epoch: "A" }), { type: "visible", now: 1 });
    const id = pullIds(s)[0];
    s = ev(s, { type: "message", msg: { type: "status", id, status: snap("idle", 0, { epoch: "B" }) }, now: 1.1 });
    assert.equal(s.ui, "idle");
    assert.equal(s.seq, 0);
  });

  test("an absurd seq jump through the trait is not trusted until a pull confirms it", () => {
    let s = at("running", { epoch: "A" });
    const bogus = snap("completed", 10 + MAX_SEQ_JUMP + 1, { epoch: "A" });
    s = ev(s, { type: "snapshot", status: bogus, now: 1 });
    assert.equal(s.ui, "running");
    assert.equal(s.seq, 10);
    const id = pullIds(s)[0];
    assert.ok(id);
    assert.equal(nextWakeup(s), 1 + CFG.fastPullInterval, "fast pulls while a snapshot is suspect");
    s = ev(s, { type: "message", msg: { type: "status", id, status: snap("running", 12, { epoch: "A" }) }, now: 1.1 });
    assert.equal(s.suspect, null);
    s = ev(s, { type: "snapshot", status: snap("running", 13, { epoch: "A" }), now: 1.2 });
    assert.equal(s.seq, 13, "real snapshots still flow: the bogus seq was never adopted");
    // a jump within the limit is a normal gap
    s = ev(s, { type: "snapshot", status: snap("running", 13 + MAX_SEQ_JUMP, { epoch: "A" }), now: 3 });
    assert.equal(s.seq, 13 + MAX_SEQ_JUMP);
  });

  test("a jump the kernel confirms (reply) is adopted", () => {
    let s = ev(at("running"), { type: "visible", now: 1 });
    const id = pullIds(s)[0];
    s = ev(s, { type: "message", msg: { type: "status", id, status: snap("running", 10 + 2 * MAX_SEQ_JUMP) }, now: 1.1 });
    assert.equal(s.seq, 10 + 2 * MAX_SEQ_JUMP);
  });
});
