import { test } from "node:test";
import assert from "node:assert/strict";
import { figures, nodeStateText } from "../figures.js";
import { FRONT_STATES, BACKEND_STATES } from "../state.js";

const snap = (state, extra = {}) => ({ state, done: 254, failed: 4, total: 600, ...extra });

test("rate and ETA only while the backend runs and the view is live", () => {
  for (const ui of FRONT_STATES) {
    for (const backend of BACKEND_STATES) {
      const f = figures(ui, snap(backend));
      const live = !["disconnected", "reconnecting", "ended"].includes(ui);
      assert.equal(f.rate, live && backend === "running", `${ui}/${backend}`);
      assert.equal(f.eta, f.rate);
    }
  }
});

test("items in flight: running, parked while paused, none once finished or ended", () => {
  const expect = {
    idle: "none", running: "running", pausing: "running", paused: "parked", stopping: "running",
    stopped: "none", completed: "none", failed: "none",
  };
  for (const backend of BACKEND_STATES) {
    assert.equal(figures(backend, snap(backend)).inFlight, expect[backend], backend);
    assert.equal(figures("ended", snap(backend)).inFlight, "none", `ended/${backend}`);
  }
  assert.equal(figures("disconnected", snap("running")).inFlight, "running", "last known");
});

test("not run: what a stopped, failed or ended run did not do; unknown totals stay unknown", () => {
  assert.equal(figures("stopped", snap("stopped")).notRun, 342);
  assert.equal(figures("failed", snap("failed")).notRun, 342);
  assert.equal(figures("ended", snap("running")).notRun, 342);
  assert.equal(figures("ended", snap("completed", { done: 600, failed: 0 })).notRun, null);
  assert.equal(figures("completed", snap("completed")).notRun, null);
  assert.equal(figures("running", snap("running")).notRun, null);
  assert.equal(figures("paused", snap("paused")).notRun, null);
  assert.equal(figures("stopped", snap("stopped", { total: null })).notRun, null);
  assert.equal(figures("ended", snap("idle")).notRun, null);
  assert.equal(figures("idle", {}).inFlight, "none");
});

test("a node never reads running when nothing runs", () => {
  assert.equal(nodeStateText("running", "running"), "running");
  assert.equal(nodeStateText("running", "parked"), "paused");
  assert.equal(nodeStateText("running", "none"), "stopped");
  assert.equal(nodeStateText("done", "none"), "done");
  // the backend's newer node states pass through, "not_run" in words
  assert.equal(nodeStateText("paused", "parked"), "paused");
  assert.equal(nodeStateText("stopped", "none"), "stopped");
  assert.equal(nodeStateText("not_run", "none"), "not run");
  assert.equal(nodeStateText(undefined, "none"), "");
});
