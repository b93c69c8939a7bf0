// The texts of the notices the state machine raises (one place, so they stay consistent).
import { ACTIVE_STATES, LABEL } from "./base.js";

export const ENDED_HEAD = Object.freeze({
  restarted: "The kernel restarted",
  "shut down": "The kernel shut down",
  closed: "The panel's connection to its kernel was closed",
  goodbye: "The kernel is shutting down or restarting",
  server: "The control server closed",
});

/**
 * The kernel's Interrupt (■) ends the blocking cell (it raises KeyboardInterrupt in it); the
 * queued click then applies at once. Only a queued Stop makes that "stops the run": after a
 * queued Pause the run pauses, after a queued Start it starts.
 */
export function busyText(command) {
  const label = LABEL[command];
  const now = command === "stop"
    ? "ends that cell and stops the run now"
    : `ends that cell now, so ${label} applies at once`;
  return `The kernel is busy running another cell: ${label} is queued and applies when that ` +
    `cell ends. The kernel's Interrupt (■) ${now}.`;
}

/** `backend`: "kernel" | "server" (the config's), the noun of every notice about it. */
export function timeoutText(pending, timeout, backend = "kernel") {
  const label = LABEL[pending.command];
  return pending.accepted
    ? `${label} accepted, but the ${backend} has not reported the new state within ${timeout} s — showing the last known state`
    : `${label} not confirmed within ${timeout} s — showing the ${backend}'s last known state`;
}

export function deafText(backend = "kernel") {
  return backend === "server"
    ? "The server sends updates but does not answer this page's requests — reload the page"
    : "The kernel sends updates but does not answer this panel's requests — reload the page " +
      "(if it persists, set Settings → Kernel → comms over subshells to disabled)";
}

export function stopQueuedText(backend = "kernel") {
  return `Stop queued — will be delivered when the ${backend} answers`;
}

/** The run as a server that closed left it: no notebook advice, no "run the cells again". */
function serverClosedText(snap, head) {
  if (!snap) return `${head}.`;
  const total = Number.isFinite(snap.total) ? String(snap.total) : "?";
  const done = Number.isFinite(snap.done) ? snap.done : 0;
  if (ACTIVE_STATES.includes(snap.state)) {
    return `${head}: the run goes on without it (${snap.state}, ${done}/${total}); serve it ` +
      "again to follow it here.";
  }
  return `${head}: the run is ${snap.state}, ${done}/${total} done.`;
}

/**
 * `snap`: the newest snapshot (or null); `cause`: a key of ENDED_HEAD; `resumable`: resume=True
 * works for the chain (it saves files into one folder, where finished items are recorded); for
 * any other chain `Runner(chain, resume=True)` is an error, so it is not advised.
 */
export function endedText(snap, cause, reason, resumable = true) {
  const head = ENDED_HEAD[cause] || ENDED_HEAD.restarted;
  const why = reason ? ` (${reason})` : "";
  if (cause === "server") return serverClosedText(snap, `${head}${why}`);
  if (!snap || snap.state === "idle") {
    return `${head}${why}: this panel's run no longer exists. Run the cells again.`;
  }
  const total = Number.isFinite(snap.total) ? String(snap.total) : "?";
  const done = Number.isFinite(snap.done) ? snap.done : 0;
  if (cause === "goodbye" && ACTIVE_STATES.includes(snap.state)) {
    // Only a panel attached to a run served by another process says goodbye to a live run.
    return `${head}${why}: the run goes on in the process that serves it (${snap.state}, ` +
      `${done}/${total}). Attach again from the new kernel.`;
  }
  const last = cause === "goodbye" ? "" : " (its last report)";
  const again = resumable
    ? "Run the cells again; resume=True skips finished items."
    : "Run the cells again to start it over (this chain saves no files into one folder, so " +
      "resume=True cannot skip finished items).";
  return `${head}${why}: the run ended at ${done}/${total}${last}. ${again}`;
}
