// The state machine's vocabulary and the draft helpers every rule module uses (see ../state.js).
// Drafts: transition() copies the frozen state into a plain object `d` that the rules mutate.

export const FRONT_STATES = Object.freeze([
  "idle", "starting", "running", "pausing", "paused", "resuming",
  "stopping", "stopped", "completed", "failed", "disconnected", "reconnecting", "ended",
]);
export const BACKEND_STATES = Object.freeze([
  "idle", "running", "pausing", "paused", "stopping", "stopped", "completed", "failed",
]);
export const ACTIVE_STATES = Object.freeze(["running", "pausing", "paused", "stopping"]);
export const COMMANDS = Object.freeze(["start", "pause", "resume", "stop"]);
export const VALID_FROM = Object.freeze({
  start: Object.freeze(["idle", "stopped", "completed", "failed"]),
  pause: Object.freeze(["running"]),
  resume: Object.freeze(["pausing", "paused"]),
  stop: Object.freeze(["running", "pausing", "paused"]),
});
export const INTERMEDIATE = Object.freeze({
  start: "starting", pause: "pausing", resume: "resuming", stop: "stopping",
});
export const CLICK_COMMAND = Object.freeze({
  play: "start", pause: "pause", resume: "resume", stop: "stop",
});
export const DEFAULT_CONFIG = Object.freeze({
  pullInterval: 5, fastPullInterval: 0.5, commandTimeout: 5, disconnectAfter: 3,
});
/** Seconds of unanswered pulls, while updates still arrive, before the "not heard" notice. */
export const DEAF_AFTER = 12;
/** A trait snapshot whose seq jumps further than this is confirmed by a pull before it is used. */
export const MAX_SEQ_JUMP = 1_000_000;
/** Seconds a "Connection restored …" notice stays (its cause, the lost connection, is over). */
export const RESTORED_NOTICE_S = 5;
/** Seconds a click may stay unconfirmed while the kernel is busy before the busy notice shows. */
export const BUSY_NOTICE_AFTER = 0.5;
/** Kernel connection statuses (JupyterLab's) that mean this panel's kernel process is gone. */
export const KERNEL_GONE = Object.freeze({
  restarting: "restarted", autorestarting: "restarted", starting: "restarted", dead: "shut down",
});

export const BUTTON_TABLE = Object.freeze({
  idle: ["play"],
  starting: ["stop"],
  running: ["pause", "stop"],
  pausing: ["stop"],
  paused: ["resume", "stop"],
  resuming: ["stop"],
  stopping: [],
  stopped: ["play"],
  completed: ["play"],
  failed: ["play"],
  disconnected: ["stop"],
  reconnecting: ["stop"],
  ended: [],
});

export const LABEL = { start: "Start", pause: "Pause", resume: "Resume", stop: "Stop" };
export const MAX_PULL_IDS = 16;
export const TRANSITIONAL = Object.freeze(["pausing", "stopping"]);

export function isActive(state) {
  return ACTIVE_STATES.includes(state);
}

function posNumber(v, fallback) {
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : fallback;
}

export function normalizeConfig(config) {
  const c = config || {};
  return Object.freeze({
    pullInterval: posNumber(c.pullInterval, DEFAULT_CONFIG.pullInterval),
    fastPullInterval: posNumber(c.fastPullInterval, DEFAULT_CONFIG.fastPullInterval),
    commandTimeout: posNumber(c.commandTimeout, DEFAULT_CONFIG.commandTimeout),
    disconnectAfter: posNumber(c.disconnectAfter, DEFAULT_CONFIG.disconnectAfter),
    // what answers this view: a Jupyter kernel (the notebook panel) or chainlib's control server
    // (the plain web page); only the wording of notices differs
    backend: c.backend === "server" ? "server" : "kernel",
    // whether resume=True can skip this chain's finished items (it saves files into one folder);
    // the kernel says so in the `resumable` trait; unknown counts as yes
    resumable: c.resumable !== false,
  });
}

/** A snapshot is usable if it has an integer seq >= 0 and a known backend state. */
export function isValidSnapshot(s) {
  return (
    s !== null && typeof s === "object" &&
    Number.isInteger(s.seq) && s.seq >= 0 &&
    BACKEND_STATES.includes(s.state)
  );
}

export function epochOf(snap) {
  return typeof snap.epoch === "string" ? snap.epoch : "";
}

export function uiOf(s) {
  if (s.ended) return "ended";
  if (!s.connected || !s.snapshot) return "disconnected";
  if (s.reconnecting) return "reconnecting";
  if (s.pending) return INTERMEDIATE[s.pending.command];
  return s.snapshot.state;
}

export function send(d, msg) {
  d.outbox = [...d.outbox, msg];
}

export function sendPull(d) {
  const id = d.nextId++;
  send(d, { type: "status_request", id });
  d.pulls = [...d.pulls, id].slice(-MAX_PULL_IDS);
  if (d.pullSince === null) d.pullSince = d.now;
  d.lastPullAt = d.now;
}

export function sendCommand(d, command) {
  const id = d.nextId++;
  send(d, { type: "command", command, id });
  return id;
}

export function setNotice(d, level, text, cause) {
  d.notice = { level, text, at: d.now, cause };
}

export function clearNotice(d, cause) {
  if (d.notice && d.notice.cause === cause) d.notice = null;
}

/** The kernel runs a cell on its main shell and does not hear this panel meanwhile. */
export function kernelBusy(s) {
  return !!(s.kernel && s.kernel.busy && !s.kernel.hearsClicks);
}

export function snapshotState(d) {
  return d.snapshot ? d.snapshot.state : null;
}
