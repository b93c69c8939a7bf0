/**
 * chainlib control panel — which figures are true in the state shown (pure, DOM-free).
 *
 *   figures(ui, snapshot) -> {
 *     rate, eta:   boolean  show the rate / the ETA: only while the backend runs and the view is
 *                           live (not disconnected, reconnecting or ended). Paused, pausing,
 *                           stopping and finished runs show neither (nothing counts down then).
 *     inFlight:    "running" | "parked" | "none"   items in flight: running (running, pausing,
 *                           stopping), parked at a checkpoint (paused), or none (idle, finished,
 *                           ended: the run is over whatever the last report said).
 *     notRun:      number | null   items that will not run: total - done - failed for a stopped or
 *                           failed run, or one whose kernel is gone; null otherwise or unknown.
 *   }
 *   nodeStateText(state, inFlight) -> the node state to show: a node "running" reads "paused"
 *                           when items are parked and "stopped" when nothing is in flight.
 *
 * The view shows what the kernel reported and nothing it did not: it hides figures that stopped
 * being true, it never computes new ones beyond `notRun` (a difference of reported counts).
 */

const LIVE_IN_FLIGHT = Object.freeze(["running", "pausing", "stopping"]);
const UNFINISHED_END = Object.freeze(["stopped", "failed"]);

function count(v) {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : null;
}

export function figures(ui, snap) {
  const backend = snap && typeof snap === "object" ? snap.state : null;
  const ended = ui === "ended";
  const live = !ended && ui !== "disconnected" && ui !== "reconnecting";
  let inFlight = "none";
  if (!ended && LIVE_IN_FLIGHT.includes(backend)) inFlight = "running";
  else if (!ended && backend === "paused") inFlight = "parked";
  let notRun = null;
  const unfinished = UNFINISHED_END.includes(backend) || (ended && backend !== "completed");
  if (unfinished && backend !== "idle") {
    const total = count(snap.total);
    if (total !== null) {
      notRun = Math.max(0, total - (count(snap.done) ?? 0) - (count(snap.failed) ?? 0));
    }
  }
  const moving = live && backend === "running";
  return Object.freeze({ rate: moving, eta: moving, inFlight, notRun });
}

export function nodeStateText(state, inFlight) {
  const s = state === null || state === undefined ? "" : String(state);
  if (s === "not_run") return "not run"; // the kernel's word for a node a stopped run never reached
  if (s !== "running") return s;
  if (inFlight === "parked") return "paused";
  if (inFlight === "none") return "stopped";
  return s;
}
