/**
 * chainlib control panel — front-end state machine (pure, DOM-free, time-injected).
 *
 * API
 *   initial(config, now, {idBase}) -> State       config: {pullInterval, fastPullInterval,
 *                                                  commandTimeout, disconnectAfter} in seconds
 *   transition(State, event) -> State             pure; never mutates its input
 *   buttons(State | uiName) -> {play, pause, resume, stop}: each {enabled: boolean}
 *   pauseButtonMode(State | uiName) -> "pause" | "resume"  (label of the Pause/Resume toggle)
 *   nextWakeup(State) -> absolute time (s) at which a {type:"tick"} must be fed, or Infinity
 *   State.outbox    messages the view must model.send() after THIS transition (fresh each time)
 *   State.ui        the front-end state name shown in the badge
 *   State.notice    null | {level: "info"|"warn"|"error", text, at}
 *   State.snapshot  newest accepted kernel snapshot (or null); State.seq its seq (-1 before any)
 *   State.lastContact  time of the last heartbeat / snapshot / reply (for "updated x s ago")
 *
 * Events (every event may carry `now`, seconds on a monotonic clock; default: state.now)
 *   {type:"click", button:"play"|"pause"|"resume"|"stop"}   ignored unless buttons() enables it
 *   {type:"snapshot", status}          the `status` trait changed
 *   {type:"message", msg}              a kernel custom message: ack | status | error
 *   {type:"heartbeat", value}          the `heartbeat` trait changed
 *   {type:"tick"}                      timers (view calls it at nextWakeup())
 *   {type:"visible"} {type:"online"}   page visible again / browser back online -> pull now
 *   {type:"config", config}            interval traits changed
 *
 * Front-end states (ui) and how they are derived:
 *   disconnected                   not connected (or no snapshot known yet)
 *   starting|pausing|resuming|stopping   a click is unconfirmed (pending command)
 *   otherwise                      the newest snapshot's backend state
 *                                  (idle running pausing paused stopping stopped completed failed)
 *   => `idle` is only ever shown when the newest accepted snapshot says idle.
 *
 * Buttons (pure function of ui):
 *   idle stopped completed failed    -> play
 *   running                          -> pause, stop
 *   paused                           -> resume, stop
 *   starting pausing resuming        -> stop            (stop supersedes the pending command)
 *   stopping                         -> nothing         (a stop is already on its way / in effect)
 *   disconnected                     -> stop            (queued; stop is idempotent)
 *
 * Transition table (C = connected with a snapshot, P = a command is pending):
 *   click X (enabled)     C: pending={X,id,sentAt}, ui=intermediate(X), send command, notice cleared.
 *                         disconnected + stop: queued stop, send it now (best effort), notice
 *                         "Stop queued — will be delivered when the kernel answers".
 *   click X (disabled)    no change, nothing sent.
 *   snapshot / ack / status reply   always "contact" (resets disconnect timer, leaves disconnected).
 *                         snapshot.seq <= seq -> snapshot ignored (contact still counts).
 *                         newer -> adopted; a pending command is settled (cleared) when the snapshot
 *                         has a different run_id than at click time or its state is no longer one
 *                         the command is valid in (start: idle/stopped/completed/failed;
 *                         pause: running; resume: pausing/paused; stop: running/pausing/paused).
 *                         So a backend `pausing` confirms a pause click (ui stays `pausing` until
 *                         `paused`), progress-only `running` snapshots do not.
 *   seq gap (trait only)  seq > last+1 -> pull, unless a pull is outstanding or one was sent less
 *                         than max(1 s, fast_pull_interval) ago (coalescing makes gaps normal; the
 *                         trait carries whole snapshots, so the pull only double-checks freshness).
 *   ack (id == pending)   accepted: adopt snapshot; pending cleared if the newest snapshot settles it,
 *                         else kept (ui intermediate) until a settling snapshot or timeout.
 *                         rejected: pending cleared, ui = snapshot state, notice "<Cmd> rejected: reason".
 *   ack (other id)        its snapshot is used like any snapshot (other views share the comm).
 *   status reply          snapshot adopted if newer; answers all outstanding pulls of this view.
 *   error reply           notice "Kernel error: …"; state unchanged (answers a pull with that id).
 *   heartbeat             contact only.
 *   tick                  (1) pending older than command_timeout -> cleared, ui = snapshot state,
 *                             notice "<Cmd> not confirmed …", pull.
 *                         (2) silence >= disconnect_after since max(lastContact, first unanswered
 *                             pull / pending send) while a pull or command is outstanding, or since
 *                             lastContact while the snapshot state is active
 *                             (running/pausing/paused/stopping) -> disconnected. A pending stop becomes
 *                             a queued stop; another pending command is dropped with a notice.
 *                         (3) pull due -> status_request. Period: fast_pull_interval while a command
 *                             is pending or the snapshot state is pausing/stopping (a lost
 *                             paused/stopped update is then found quickly), pull_interval otherwise
 *                             (also while disconnected).
 *                         (4) pulls unanswered for DEAF_AFTER s while updates still arrive -> a
 *                             notice: the kernel does not hear this view (reload the page).
 *   visible, online       pull now.
 *   leaving disconnected  (first contact) forget unanswered pulls and pull afresh (unless the contact
 *                         is itself a status reply or a pull went out < fast_pull_interval ago — e.g.
 *                         the load-time pull); a queued stop is re-sent as a
 *                         pending stop if the newest snapshot is running/pausing/paused, otherwise
 *                         dropped with a notice (the run already ended); an ack of the queued stop
 *                         itself counts as its delivery.
 */

export const FRONT_STATES = Object.freeze([
  "idle", "starting", "running", "pausing", "paused", "resuming",
  "stopping", "stopped", "completed", "failed", "disconnected",
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

const BUTTON_TABLE = Object.freeze({
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
});

const LABEL = { start: "Start", pause: "Pause", resume: "Resume", stop: "Stop" };
const MAX_PULL_IDS = 16;

function isActive(state) {
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

function uiOf(s) {
  if (!s.connected || !s.snapshot) return "disconnected";
  if (s.pending) return INTERMEDIATE[s.pending.command];
  return s.snapshot.state;
}

function uiName(stateOrName) {
  return typeof stateOrName === "string" ? stateOrName : stateOrName.ui;
}

/** Button availability: a pure function of the front-end state name. */
export function buttons(stateOrName) {
  const enabled = BUTTON_TABLE[uiName(stateOrName)] || [];
  return {
    play: { enabled: enabled.includes("play") },
    pause: { enabled: enabled.includes("pause") },
    resume: { enabled: enabled.includes("resume") },
    stop: { enabled: enabled.includes("stop") },
  };
}

/** Whether the Pause/Resume toggle reads "Pause" or "Resume". */
export function pauseButtonMode(stateOrName) {
  const ui = uiName(stateOrName);
  return ui === "paused" || ui === "resuming" ? "resume" : "pause";
}

export function initial(config, now, options = {}) {
  const idBase = Number.isInteger(options.idBase) ? options.idBase : 1_000_000;
  let s = {
    config: normalizeConfig(config),
    now,
    connected: false,
    snapshot: null,
    seq: -1,
    pending: null, // {command, id, sentAt, fromRunId, accepted}
    queued: null, // {command: "stop", id, since}
    pulls: [], // outstanding status_request ids (this view)
    pullSince: null, // time the oldest unanswered pull was sent
    deafWarned: false, // the "kernel does not hear this panel" notice was shown for this pull
    lastPullAt: -Infinity,
    lastGapPullAt: -Infinity,
    lastContact: now,
    nextId: idBase,
    notice: null,
    outbox: [],
    ui: "disconnected",
  };
  sendPull(s); // pull at load (covers page reloads)
  s.ui = uiOf(s);
  return Object.freeze(s);
}

// ---------------------------------------------------------------- draft helpers (mutate a copy)

function send(d, msg) {
  d.outbox = [...d.outbox, msg];
}

function sendPull(d) {
  const id = d.nextId++;
  send(d, { type: "status_request", id });
  d.pulls = [...d.pulls, id].slice(-MAX_PULL_IDS);
  if (d.pullSince === null) d.pullSince = d.now;
  d.lastPullAt = d.now;
}

function sendCommand(d, command) {
  const id = d.nextId++;
  send(d, { type: "command", command, id });
  return id;
}

function setNotice(d, level, text) {
  d.notice = { level, text, at: d.now };
}

function settles(pending, snap) {
  if (!snap) return false;
  return snap.run_id !== pending.fromRunId || !VALID_FROM[pending.command].includes(snap.state);
}

function snapshotState(d) {
  return d.snapshot ? d.snapshot.state : null;
}

function disconnectDeadline(d) {
  if (!d.connected) return Infinity;
  const D = d.config.disconnectAfter;
  let t = Infinity;
  if (isActive(snapshotState(d))) t = Math.min(t, d.lastContact + D);
  if (d.pullSince !== null) t = Math.min(t, Math.max(d.lastContact, d.pullSince) + D);
  if (d.pending) t = Math.min(t, Math.max(d.lastContact, d.pending.sentAt) + D);
  return t;
}

const TRANSITIONAL = Object.freeze(["pausing", "stopping"]);
/** Seconds of unanswered pulls, while updates still arrive, before the "not heard" notice. */
export const DEAF_AFTER = 12;

function nextPullAt(d) {
  if (d.connected && d.pending) {
    return Math.max(d.lastPullAt, d.pending.sentAt) + d.config.fastPullInterval;
  }
  // The backend is on its way to paused/stopped: if that update is lost, find out quickly.
  if (d.connected && TRANSITIONAL.includes(snapshotState(d))) {
    return d.lastPullAt + d.config.fastPullInterval;
  }
  return d.lastPullAt + d.config.pullInterval;
}

export function nextWakeup(s) {
  let t = nextPullAt(s);
  if (s.pending) t = Math.min(t, s.pending.sentAt + s.config.commandTimeout);
  return Math.min(t, disconnectDeadline(s));
}

/** Adopt a snapshot if it is newer than anything seen. Returns {accepted, gap}. */
function adopt(d, snap) {
  if (!isValidSnapshot(snap) || snap.seq <= d.seq) return { accepted: false, gap: false };
  const gap = d.seq >= 0 && snap.seq > d.seq + 1;
  d.seq = snap.seq;
  d.snapshot = snap;
  if (d.pending && settles(d.pending, snap)) d.pending = null;
  return { accepted: true, gap };
}

function goDisconnected(d) {
  d.connected = false;
  if (d.pending) {
    const p = d.pending;
    d.pending = null;
    if (p.command === "stop") {
      d.queued = { command: "stop", id: p.id, since: d.now };
      setNotice(d, "warn", "Connection lost — Stop queued, will be delivered when the kernel answers");
    } else {
      setNotice(d, "warn", `${LABEL[p.command]} not confirmed — connection to the kernel lost`);
    }
  } else if (!d.queued) {
    setNotice(d, "warn", "Connection to the kernel lost — showing the last known status");
  }
}

/** Time-driven rules: command timeout, disconnect, periodic pull. */
function advance(d) {
  const c = d.config;
  if (d.pending && d.now >= d.pending.sentAt + c.commandTimeout) {
    const p = d.pending;
    d.pending = null;
    setNotice(
      d, "warn",
      p.accepted
        ? `${LABEL[p.command]} accepted, but the kernel has not reported the new state within ${c.commandTimeout} s — showing the last known state`
        : `${LABEL[p.command]} not confirmed within ${c.commandTimeout} s — showing the kernel's last known state`,
    );
    sendPull(d);
  }
  if (d.connected && d.now >= disconnectDeadline(d)) goDisconnected(d);
  if (d.connected && !d.deafWarned && d.pullSince !== null && d.lastContact > d.pullSince &&
      d.now - d.pullSince >= DEAF_AFTER) {
    // Updates arrive but our requests go unanswered: the kernel does not hear this view. Seen
    // with JupyterLab's "Kernel comms over subshells" after a page reload (messages to a deleted
    // subshell are dropped by ipykernel). Buttons cannot work until the page is reloaded.
    d.deafWarned = true;
    setNotice(d, "warn", "The kernel sends updates but does not answer this panel's requests — " +
      "reload the page (if it persists, set Settings → Kernel → comms over subshells to disabled)");
  }
  if (d.now >= nextPullAt(d)) sendPull(d);
}

/** Any message from the kernel. Returns true if it ended a disconnection. */
function contact(d) {
  d.lastContact = d.now;
  if (d.connected) return false;
  d.connected = true;
  return true;
}

function afterReconnect(d, { isReply = false, ackedId = null, ackRejected = null } = {}) {
  if (!isReply && d.now - d.lastPullAt >= d.config.fastPullInterval) {
    // earlier unanswered pulls were probably lost: start afresh
    d.pulls = [];
    d.pullSince = null;
    sendPull(d);
  }
  if (d.queued) {
    const q = d.queued;
    d.queued = null;
    if (ackedId === q.id) {
      // The queued stop itself was answered: delivered.
      if (ackRejected !== null) setNotice(d, "warn", `Stop rejected: ${ackRejected}`);
      else setNotice(d, "info", "Connection restored — queued Stop delivered");
    } else if (!d.snapshot || VALID_FROM.stop.includes(d.snapshot.state)) {
      const id = sendCommand(d, "stop");
      d.pending = {
        command: "stop", id, sentAt: d.now, fromRunId: d.snapshot ? d.snapshot.run_id : "",
        accepted: false,
      };
      setNotice(d, "info", "Connection restored — queued Stop sent");
    } else {
      setNotice(d, "info", `Connection restored — queued Stop not needed (run is ${d.snapshot.state})`);
    }
  } else if (d.notice && d.notice.level === "warn" && /connection/i.test(d.notice.text)) {
    setNotice(d, "info", "Connection restored");
  }
}

function onClick(d, button) {
  if (!buttons(d.ui)[button] || !buttons(d.ui)[button].enabled) return;
  const command = CLICK_COMMAND[button];
  if (d.ui === "disconnected") {
    // only stop is enabled here
    const id = sendCommand(d, "stop");
    d.queued = { command: "stop", id, since: d.now };
    setNotice(d, "info", "Stop queued — will be delivered when the kernel answers");
    return;
  }
  const id = sendCommand(d, command);
  d.pending = {
    command, id, sentAt: d.now, fromRunId: d.snapshot ? d.snapshot.run_id : "", accepted: false,
  };
  d.notice = null;
}

function reasonOf(msg) {
  return typeof msg.reason === "string" && msg.reason ? msg.reason : "no reason given";
}

function onMessage(d, msg) {
  if (!msg || typeof msg !== "object") return;
  if (msg.type !== "ack" && msg.type !== "status" && msg.type !== "error") return;
  const reconnected = contact(d);
  const info = { isReply: false, ackedId: null, ackRejected: null };
  if (msg.type === "ack") {
    const p = d.pending && d.pending.id === msg.id ? d.pending : null;
    if (d.queued && d.queued.id === msg.id) {
      info.ackedId = msg.id;
      if (msg.accepted !== true) info.ackRejected = reasonOf(msg);
    }
    adopt(d, msg.status);
    if (p && msg.accepted !== true) {
      d.pending = null;
      setNotice(d, "warn", `${LABEL[p.command]} rejected: ${reasonOf(msg)}`);
    } else if (p && d.pending === p) {
      d.pending = settles(p, d.snapshot) ? null : { ...p, accepted: true };
    }
  } else if (msg.type === "status") {
    if (d.pulls.includes(msg.id)) {
      d.pulls = [];
      d.pullSince = null;
      d.deafWarned = false;
      info.isReply = true;
    }
    adopt(d, msg.status);
  } else {
    if (d.pulls.includes(msg.id)) {
      d.pulls = [];
      d.pullSince = null;
    }
    setNotice(d, "error", `Kernel error: ${String(msg.error)}`);
  }
  if (reconnected) afterReconnect(d, info);
}

export function transition(state, event) {
  const d = { ...state, outbox: [] };
  const now = event && typeof event.now === "number" ? event.now : state.now;
  d.now = Math.max(state.now, now); // monotonic
  d.ui = uiOf(d);
  const type = event && event.type;

  if (type === "config") {
    d.config = normalizeConfig(event.config);
  }
  advance(d);
  d.ui = uiOf(d);

  switch (type) {
    case "click":
      onClick(d, event.button);
      break;
    case "snapshot": {
      const reconnected = contact(d);
      const { accepted, gap } = adopt(d, event.status);
      if (
        accepted && gap && d.pulls.length === 0 &&
        d.now - Math.max(d.lastPullAt, d.lastGapPullAt) >= Math.max(1, d.config.fastPullInterval)
      ) {
        sendPull(d);
        d.lastGapPullAt = d.now;
      }
      if (reconnected) afterReconnect(d);
      break;
    }
    case "message":
      onMessage(d, event.msg);
      break;
    case "heartbeat": {
      if (contact(d)) afterReconnect(d);
      break;
    }
    case "visible":
    case "online":
      sendPull(d);
      break;
    default:
      break; // tick, config: time rules only
  }
  d.ui = uiOf(d);
  return Object.freeze(d);
}
