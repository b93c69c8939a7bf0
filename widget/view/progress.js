// Progress bar, counts, rate / ETA / elapsed, and the nodes currently running.
import { h, add, num, setHidden, setText, str } from "./dom.js";
import {
  formatDuration, formatEta, formatRate, progressFraction,
} from "../format.js";

// the error view explains a failure; these states show the stop's reason
const STOP_STATES = ["stopping", "stopped"];

function width(part, total) {
  return `${(Math.min(1, part / total) * 100).toFixed(1)}%`;
}

export function progressView(doc) {
  const root = h(doc, "div", "chainlib-progress-box");
  const bar = add(root, h(doc, "div", "chainlib-bar"));
  const barDone = add(bar, h(doc, "div", "chainlib-bar-done"));
  const barFailed = add(bar, h(doc, "div", "chainlib-bar-failed"));
  const stats = add(root, h(doc, "div", "chainlib-stats"));
  const progress = add(stats, h(doc, "span", "chainlib-progress", "progress"));
  const done = add(progress, h(doc, "span", "chainlib-done", "done"));
  add(progress, doc.createTextNode(" / "));
  const total = add(progress, h(doc, "span", "chainlib-total", "total"));
  const failedSep = add(progress, doc.createTextNode(""));
  const failed = add(progress, h(doc, "span", "chainlib-failed", "failed"));
  const failedSuffix = add(progress, doc.createTextNode(""));
  const notRunSep = add(progress, doc.createTextNode(""));
  const notRun = add(progress, h(doc, "span", "chainlib-not-run", "not-run"));
  const notRunSuffix = add(progress, doc.createTextNode(""));
  // why the run ended or is ending ("interrupted by the user", "kernel shutting down", ...)
  const reason = add(stats, h(doc, "span", "chainlib-reason", "reason"));
  const rate = add(stats, h(doc, "span", "chainlib-rate", "rate"));
  const eta = add(stats, h(doc, "span", "chainlib-eta", "eta"));
  const elapsed = add(stats, h(doc, "span", "chainlib-elapsed", "elapsed"));
  // The run's working time, pauses excluded (`active_s`). Not `elapsed` (wall time since the
  // start): the kernel builds one snapshot per seq, so a paused run repeats the one taken at the
  // pause and the wall time would jump by the whole pause at Resume.
  elapsed.setAttribute("title", "time the run has been working (pauses excluded)");
  return {
    root,
    /** `snap`: the newest accepted snapshot ({} before any); `fig`: figures.js's verdict. */
    paint(snap, fig) {
      const d = num(snap.done) ?? 0;
      const f = num(snap.failed) ?? 0;
      const t = num(snap.total);
      setText(done, String(d));
      setText(total, t === undefined ? "?" : String(t));
      setText(failedSep, f > 0 ? " · " : "");
      setText(failed, f > 0 ? String(f) : "");
      setText(failedSuffix, f > 0 ? " failed" : "");
      const n = fig.notRun;
      setText(notRunSep, n ? " · " : "");
      setText(notRun, n ? String(n) : "");
      setText(notRunSuffix, n ? " not run" : "");
      const frac = progressFraction(d, f, t);
      const wDone = frac === null ? "0%" : width(d, t);
      const wFailed = frac === null ? "0%" : width(f, t);
      if (barDone.style.width !== wDone) barDone.style.width = wDone;
      if (barFailed.style.width !== wFailed) barFailed.style.width = wFailed;
      bar.classList.toggle("chainlib-bar-unknown", frac === null);
      // no rate / ETA unless the run is moving: nothing counts down while paused or finished
      setText(rate, fig.rate ? formatRate(num(snap.rate)) : "");
      setHidden(rate, !fig.rate);
      setText(eta, fig.eta ? formatEta(num(snap.eta)) : "");
      setHidden(eta, !fig.eta);
      const why = STOP_STATES.includes(snap.state) && typeof snap.reason === "string"
        ? snap.reason : "";
      setText(reason, why ? `${snap.state}: ${why}` : "");
      setHidden(reason, !why);
      setText(elapsed, `elapsed ${formatDuration(num(snap.active_s) ?? num(snap.elapsed))}`);
    },
  };
}

const CURRENT_LABEL = Object.freeze({ running: "Running: ", parked: "Paused in: ", none: "Running: " });

// A paused snapshot's `current` is empty (nothing executes); the items parked at a checkpoint
// are the nodes' `running` counts.
function parkedIn(snap) {
  const nodes = snap.nodes && typeof snap.nodes === "object" ? snap.nodes : {};
  return Object.entries(nodes).filter(([, n]) => n && (num(n.running) ?? 0) > 0).map(([id]) => str(id));
}

export function currentView(doc) {
  const root = h(doc, "div", "chainlib-current-box");
  const label = add(root, h(doc, "span", "chainlib-label"));
  const current = add(root, h(doc, "span", "chainlib-current", "current"));
  return {
    root,
    paint(snap, fig) {
      const names = fig.inFlight === "parked" ? parkedIn(snap)
        : Array.isArray(snap.current) ? snap.current.map(str) : [];
      setText(label, CURRENT_LABEL[fig.inFlight]);
      setText(current, names.length && fig.inFlight !== "none" ? names.join(", ") : "—");
    },
  };
}
