// chainlib control panel — anywidget front end (anywidget >= 0.9: export default { render }).
//
// This file is self-contained on purpose: anywidget loads `_esm` from a Blob URL, where relative
// imports cannot resolve. The state machine (widget/state.js) and the formatters (widget/format.js)
// are inlined below between the GENERATED markers by `node widget/build.mjs`; edit those files, not
// the generated block (a test checks the block is up to date).
//
// Traits read (the browser never writes traits): status, heartbeat, pull_interval,
// fast_pull_interval, command_timeout, disconnect_after, thumbnail, thumbnail_label, title.
// Messages sent (model.send): {type:"command", command, id}, {type:"status_request", id}.
// Messages received (msg:custom): {type:"ack"|"status"|"error", ...}.
//
// SECURITY: every string that comes from the kernel (title, node ids, labels, file names, error
// messages, tracebacks) is rendered through textContent / setAttribute only; the DOM is built with
// createElement. Never use HTML-string APIs in this file (a test enforces it).

// ---- BEGIN GENERATED (node widget/build.mjs) — do not edit by hand ----
const State = (() => {
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

  const FRONT_STATES = Object.freeze([
    "idle", "starting", "running", "pausing", "paused", "resuming",
    "stopping", "stopped", "completed", "failed", "disconnected",
  ]);
  const BACKEND_STATES = Object.freeze([
    "idle", "running", "pausing", "paused", "stopping", "stopped", "completed", "failed",
  ]);
  const ACTIVE_STATES = Object.freeze(["running", "pausing", "paused", "stopping"]);
  const COMMANDS = Object.freeze(["start", "pause", "resume", "stop"]);
  const VALID_FROM = Object.freeze({
    start: Object.freeze(["idle", "stopped", "completed", "failed"]),
    pause: Object.freeze(["running"]),
    resume: Object.freeze(["pausing", "paused"]),
    stop: Object.freeze(["running", "pausing", "paused"]),
  });
  const INTERMEDIATE = Object.freeze({
    start: "starting", pause: "pausing", resume: "resuming", stop: "stopping",
  });
  const CLICK_COMMAND = Object.freeze({
    play: "start", pause: "pause", resume: "resume", stop: "stop",
  });
  const DEFAULT_CONFIG = Object.freeze({
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

  function normalizeConfig(config) {
    const c = config || {};
    return Object.freeze({
      pullInterval: posNumber(c.pullInterval, DEFAULT_CONFIG.pullInterval),
      fastPullInterval: posNumber(c.fastPullInterval, DEFAULT_CONFIG.fastPullInterval),
      commandTimeout: posNumber(c.commandTimeout, DEFAULT_CONFIG.commandTimeout),
      disconnectAfter: posNumber(c.disconnectAfter, DEFAULT_CONFIG.disconnectAfter),
    });
  }

  /** A snapshot is usable if it has an integer seq >= 0 and a known backend state. */
  function isValidSnapshot(s) {
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
  function buttons(stateOrName) {
    const enabled = BUTTON_TABLE[uiName(stateOrName)] || [];
    return {
      play: { enabled: enabled.includes("play") },
      pause: { enabled: enabled.includes("pause") },
      resume: { enabled: enabled.includes("resume") },
      stop: { enabled: enabled.includes("stop") },
    };
  }

  /** Whether the Pause/Resume toggle reads "Pause" or "Resume". */
  function pauseButtonMode(stateOrName) {
    const ui = uiName(stateOrName);
    return ui === "paused" || ui === "resuming" ? "resume" : "pause";
  }

  function initial(config, now, options = {}) {
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
  const DEAF_AFTER = 12;

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

  function nextWakeup(s) {
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

  function transition(state, event) {
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
  return Object.freeze({ FRONT_STATES, BACKEND_STATES, ACTIVE_STATES, COMMANDS, VALID_FROM, INTERMEDIATE, CLICK_COMMAND, DEFAULT_CONFIG, normalizeConfig, isValidSnapshot, buttons, pauseButtonMode, initial, DEAF_AFTER, nextWakeup, transition });
})();

const Format = (() => {
  /**
   * chainlib control panel — pure formatting helpers (no DOM, no clock).
   *
   *   formatDuration(s)  null -> "—"; < 10 s -> "4.2 s"; < 60 s -> "42 s"; < 1 h -> "1:02";
   *                      else "1:02:03"
   *   formatEta(s)       "ETA 1:02" / "ETA —"
   *   formatMean(s)      per-item mean time: "850 ms", "1.23 s", "12.3 s", then formatDuration
   *   formatRate(r)      "12.3 items/s" ("0.25 items/s", "123 items/s"); null -> "—"
   *   progressFraction(done, failed, total) -> number in [0, 1] or null when total unknown/0
   *   formatProgress(done, failed, total) -> "12 / 100" or "12 / ?" plus " · 3 failed"
   *   formatAge(s)       "0.4 s", "12 s", "1:05" (for "updated 0.4 s ago")
   *   connectionText(ageSeconds, connected) -> "updated 0.4 s ago" /
   *                      "connection lost — last update 12 s ago"
   */

  function finite(x) {
    return typeof x === "number" && Number.isFinite(x);
  }

  function pad2(n) {
    return n < 10 ? `0${n}` : String(n);
  }

  function formatDuration(s) {
    if (!finite(s) || s < 0) return "—";
    if (s < 10) return `${(Math.floor(s * 10) / 10).toFixed(1)} s`;
    if (s < 60) return `${Math.floor(s)} s`;
    const total = Math.floor(s);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const sec = total % 60;
    return h > 0 ? `${h}:${pad2(m)}:${pad2(sec)}` : `${m}:${pad2(sec)}`;
  }

  function formatEta(s) {
    return `ETA ${formatDuration(s)}`;
  }

  function formatMean(s) {
    if (!finite(s) || s < 0) return "—";
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 10) return `${s.toFixed(2)} s`;
    if (s < 60) return `${s.toFixed(1)} s`;
    return formatDuration(s);
  }

  function formatRate(r) {
    if (!finite(r) || r < 0) return "—";
    if (r < 1) return `${r.toFixed(2)} items/s`;
    if (r < 100) return `${r.toFixed(1)} items/s`;
    return `${Math.round(r)} items/s`;
  }

  function progressFraction(done, failed, total) {
    if (!finite(total) || total <= 0) return null;
    const n = (finite(done) ? done : 0) + (finite(failed) ? failed : 0);
    return Math.min(1, Math.max(0, n / total));
  }

  function formatProgress(done, failed, total) {
    const d = finite(done) ? done : 0;
    const t = finite(total) ? String(total) : "?";
    const f = finite(failed) && failed > 0 ? ` · ${failed} failed` : "";
    return `${d} / ${t}${f}`;
  }

  function formatAge(s) {
    if (!finite(s)) return "—";
    const a = Math.max(0, s);
    if (a < 10) return `${a.toFixed(1)} s`;
    if (a < 60) return `${Math.floor(a)} s`;
    return formatDuration(a);
  }

  function connectionText(age, connected) {
    if (!finite(age)) return connected ? "waiting for the kernel…" : "connection lost";
    return connected
      ? `updated ${formatAge(age)} ago`
      : `connection lost — last update ${formatAge(age)} ago`;
  }
  return Object.freeze({ formatDuration, formatEta, formatMean, formatRate, progressFraction, formatProgress, formatAge, connectionText });
})();
// ---- END GENERATED ----

const RENDER_MIN_INTERVAL_MS = 100; // at most ~10 paints per second
const MAX_TICK_S = 0.5; // wake at least twice a second to refresh "updated x s ago"

function randomIdBase() {
  // Unique per view: several views of one panel share the comm (replies go to all of them).
  return 1_000_000 + Math.floor(Math.random() * 1e12);
}

function toBytes(v) {
  if (!v) return null;
  if (v instanceof Uint8Array) return v;
  if (typeof DataView !== "undefined" && v instanceof DataView) {
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

function sniffImageType(b) {
  if (b.length >= 4 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return "image/png";
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg";
  if (b.length >= 3 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return "image/gif";
  if (b.length >= 12 && b[0] === 0x52 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42) return "image/webp";
  return "application/octet-stream";
}

function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function str(v) {
  return v === null || v === undefined ? "" : String(v);
}

/** Build the static DOM skeleton. Only createElement / textContent. */
function buildDom(doc) {
  const mk = (tag, cls, testid) => {
    const e = doc.createElement(tag);
    if (cls) e.className = cls;
    if (testid) e.setAttribute("data-testid", testid);
    return e;
  };
  const add = (parent, child) => (parent.appendChild(child), child);
  const r = {};
  r.root = mk("div", "chainlib-panel");

  const header = add(r.root, mk("div", "chainlib-header"));
  r.title = add(header, mk("span", "chainlib-title", "title"));
  r.state = add(header, mk("span", "chainlib-badge", "state"));
  r.connection = add(header, mk("span", "chainlib-connection", "connection"));

  const controls = add(r.root, mk("div", "chainlib-controls"));
  r.play = add(controls, mk("button", "chainlib-button chainlib-play", "play"));
  r.play.type = "button";
  r.play.textContent = "Play";
  r.pause = add(controls, mk("button", "chainlib-button chainlib-pause", "pause"));
  r.pause.type = "button";
  r.pause.textContent = "Pause";
  r.stop = add(controls, mk("button", "chainlib-button chainlib-stop", "stop"));
  r.stop.type = "button";
  r.stop.textContent = "Stop";
  const seqBox = add(controls, mk("span", "chainlib-seq-box"));
  add(seqBox, doc.createTextNode("#"));
  r.seq = add(seqBox, mk("span", "chainlib-seq", "seq"));

  r.notice = add(r.root, mk("div", "chainlib-notice", "notice"));
  r.notice.setAttribute("role", "status");

  const prog = add(r.root, mk("div", "chainlib-progress-box"));
  r.bar = add(prog, mk("div", "chainlib-bar"));
  r.barDone = add(r.bar, mk("div", "chainlib-bar-done"));
  r.barFailed = add(r.bar, mk("div", "chainlib-bar-failed"));
  const stats = add(prog, mk("div", "chainlib-stats"));
  r.progress = add(stats, mk("span", "chainlib-progress", "progress"));
  r.done = add(r.progress, mk("span", "chainlib-done", "done"));
  add(r.progress, doc.createTextNode(" / "));
  r.total = add(r.progress, mk("span", "chainlib-total", "total"));
  r.failedSep = add(r.progress, doc.createTextNode(""));
  r.failed = add(r.progress, mk("span", "chainlib-failed", "failed"));
  r.failedSuffix = add(r.progress, doc.createTextNode(""));
  r.rate = add(stats, mk("span", "chainlib-rate", "rate"));
  r.eta = add(stats, mk("span", "chainlib-eta", "eta"));
  r.elapsed = add(stats, mk("span", "chainlib-elapsed", "elapsed"));

  const cur = add(r.root, mk("div", "chainlib-current-box"));
  add(cur, mk("span", "chainlib-label")).textContent = "Running: ";
  r.current = add(cur, mk("span", "chainlib-current", "current"));

  const body = add(r.root, mk("div", "chainlib-body"));
  r.nodes = add(body, mk("table", "chainlib-nodes", "nodes"));
  const thead = add(r.nodes, mk("thead"));
  const hr = add(thead, mk("tr"));
  for (const h of ["Node", "State", "Count", "Mean", "Total", "Running"]) {
    add(hr, mk("th")).textContent = h;
  }
  r.tbody = add(r.nodes, mk("tbody"));

  r.thumbBox = add(body, mk("figure", "chainlib-thumb"));
  r.thumbBox.hidden = true;
  r.thumbnail = add(r.thumbBox, mk("img", "chainlib-thumb-img", "thumbnail"));
  r.thumbnail.setAttribute("alt", "latest output");
  r.thumbLabel = add(r.thumbBox, mk("figcaption", "chainlib-thumb-label", "thumbnail-label"));

  r.errorBox = add(r.root, mk("div", "chainlib-error", "error"));
  r.errorBox.hidden = true;
  r.errorText = add(r.errorBox, mk("div", "chainlib-error-text"));
  r.errorDetails = add(r.errorBox, mk("details", "chainlib-traceback"));
  add(r.errorDetails, mk("summary")).textContent = "Traceback";
  r.traceback = add(r.errorDetails, mk("pre"));
  r.mk = mk;
  return r;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setAttr(node, name, value) {
  if (value === null) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== value) {
    node.setAttribute(name, value);
  }
}

function setDisabled(button, disabled) {
  if (button.disabled !== disabled) button.disabled = disabled;
  setAttr(button, "disabled", disabled ? "" : null);
}

/** The slowest node: the one with the largest total time (mean_s × count = where time goes). */
export function slowestNode(nodes) {
  let best = null;
  let bestTotal = 0;
  for (const [id, n] of Object.entries(nodes || {})) {
    if (!n || typeof n !== "object") continue;
    const total = num(n.total_s) ?? (num(n.mean_s) ?? 0) * (num(n.count) ?? 0);
    if (total > bestTotal) {
      bestTotal = total;
      best = id;
    }
  }
  return best;
}

function render({ model, el }) {
  const doc = el.ownerDocument || globalThis.document;
  const win = doc.defaultView || globalThis;
  const perf = win.performance || globalThis.performance;
  const clock = () => perf.now() / 1000;
  const readConfig = () => ({
    pullInterval: num(model.get("pull_interval")),
    fastPullInterval: num(model.get("fast_pull_interval")),
    commandTimeout: num(model.get("command_timeout")),
    disconnectAfter: num(model.get("disconnect_after")),
  });

  const dom = buildDom(doc);
  el.appendChild(dom.root);
  const rows = new Map(); // node id -> {tr, cells}
  let st = State.initial(readConfig(), clock(), { idBase: randomIdBase() });
  let disposed = false;
  let tickTimer = null;
  let renderTimer = null;
  let lastPaint = -Infinity;
  let thumbUrl = null;
  const offs = [];

  function flush() {
    for (const msg of st.outbox) {
      try {
        model.send(msg);
      } catch (err) {
        console.warn("chainlib panel: send failed", err); // the pull / timeout logic recovers
      }
    }
  }

  function scheduleTick() {
    if (tickTimer !== null) clearTimeout(tickTimer);
    const wake = State.nextWakeup(st);
    const delay = Math.min(MAX_TICK_S, Math.max(0, wake - clock()));
    tickTimer = setTimeout(() => {
      tickTimer = null;
      dispatch({ type: "tick" });
    }, Math.ceil(delay * 1000) + 1);
  }

  function dispatch(event) {
    if (disposed) return;
    st = State.transition(st, { ...event, now: clock() });
    flush();
    scheduleTick();
    requestPaint();
  }

  function requestPaint() {
    if (disposed || renderTimer !== null) return;
    const wait = Math.max(0, RENDER_MIN_INTERVAL_MS - (clock() * 1000 - lastPaint));
    renderTimer = setTimeout(() => {
      renderTimer = null;
      paint();
    }, wait);
  }

  function paintNodes(snap) {
    const nodes = snap && snap.nodes && typeof snap.nodes === "object" ? snap.nodes : {};
    const ids = Object.keys(nodes);
    const slow = slowestNode(nodes);
    const seen = new Set();
    ids.forEach((id, i) => {
      seen.add(id);
      let row = rows.get(id);
      if (!row) {
        const tr = dom.mk("tr", "chainlib-node-row");
        const cells = [];
        for (let c = 0; c < 6; c++) cells.push(tr.appendChild(dom.mk("td")));
        cells[0].className = "chainlib-node-id";
        row = { tr, cells };
        rows.set(id, row);
      }
      if (dom.tbody.children[i] !== row.tr) dom.tbody.insertBefore(row.tr, dom.tbody.children[i] || null);
      const n = nodes[id] && typeof nodes[id] === "object" ? nodes[id] : {};
      const running = num(n.running) ?? 0;
      const progress = num(n.progress);
      setText(row.cells[0], id);
      setText(row.cells[1], str(n.state));
      setText(row.cells[2], String(num(n.count) ?? 0));
      setText(row.cells[3], Format.formatMean(num(n.mean_s)));
      setText(row.cells[4], Format.formatDuration(num(n.total_s)));
      setText(
        row.cells[5],
        running > 0
          ? `● ${running}${progress !== undefined ? ` (${Math.round(progress * 100)}%)` : ""}`
          : "",
      );
      setAttr(row.tr, "data-node", id);
      setAttr(row.tr, "data-running", running > 0 ? "true" : null);
      setAttr(row.tr, "data-slowest", id === slow ? "true" : null);
      row.tr.classList.toggle("chainlib-slowest", id === slow);
      row.tr.classList.toggle("chainlib-running", running > 0);
    });
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
  }

  function paint() {
    if (disposed) return;
    lastPaint = clock() * 1000;
    const ui = st.ui;
    const snap = st.snapshot || {};
    const b = State.buttons(st);
    const mode = State.pauseButtonMode(st);

    setText(dom.title, str(model.get("title")) || "chainlib");
    setText(dom.state, ui);
    setAttr(dom.state, "data-state", ui);
    setAttr(dom.state, "data-intermediate",
      ["starting", "pausing", "resuming", "stopping"].includes(ui) ? "true" : null);
    setAttr(dom.root, "data-state", ui);

    setDisabled(dom.play, !b.play.enabled);
    setText(dom.pause, mode === "resume" ? "Resume" : "Pause");
    setAttr(dom.pause, "data-mode", mode);
    setDisabled(dom.pause, !(mode === "resume" ? b.resume.enabled : b.pause.enabled));
    setDisabled(dom.stop, !b.stop.enabled);
    setAttr(dom.stop, "title", ui === "disconnected" ? "Stop will be queued until the kernel answers" : null);
    setText(dom.seq, st.seq >= 0 ? String(st.seq) : "");

    // progress
    const done = num(snap.done) ?? 0;
    const failed = num(snap.failed) ?? 0;
    const total = num(snap.total);
    setText(dom.done, String(done));
    setText(dom.total, total === undefined ? "?" : String(total));
    setText(dom.failedSep, failed > 0 ? " · " : "");
    setText(dom.failed, failed > 0 ? String(failed) : "");
    setText(dom.failedSuffix, failed > 0 ? " failed" : "");
    const frac = Format.progressFraction(done, failed, total);
    const wDone = frac === null ? "0%" : `${(Math.min(1, done / total) * 100).toFixed(1)}%`;
    const wFailed = frac === null ? "0%" : `${(Math.min(1, failed / total) * 100).toFixed(1)}%`;
    if (dom.barDone.style.width !== wDone) dom.barDone.style.width = wDone;
    if (dom.barFailed.style.width !== wFailed) dom.barFailed.style.width = wFailed;
    dom.bar.classList.toggle("chainlib-bar-unknown", frac === null);
    setText(dom.rate, Format.formatRate(num(snap.rate)));
    setText(dom.eta, Format.formatEta(num(snap.eta)));
    setText(dom.elapsed, `elapsed ${Format.formatDuration(num(snap.elapsed))}`);

    const current = Array.isArray(snap.current) ? snap.current.map(str) : [];
    setText(dom.current, current.length ? current.join(", ") : "—");

    paintNodes(st.snapshot);

    // last error
    const err = snap.error && typeof snap.error === "object" ? snap.error : null;
    dom.errorBox.hidden = !err;
    if (err) {
      let where = `Error in node ${str(err.node)}`;
      if (err.label !== null && err.label !== undefined && err.label !== "") where += ` (item ${str(err.label)})`;
      else if (err.item !== null && err.item !== undefined) where += ` (item #${str(err.item)})`;
      setText(dom.errorText, `${where}: ${str(err.message)}`);
      setText(dom.traceback, str(err.traceback));
      dom.errorDetails.hidden = !err.traceback;
    }

    // connection
    const connected = ui !== "disconnected";
    setText(dom.connection, Format.connectionText(clock() - st.lastContact, connected));
    dom.connection.classList.toggle("chainlib-warn", !connected);

    // notice
    const n = st.notice;
    setText(dom.notice, n ? n.text : "");
    setAttr(dom.notice, "data-level", n ? n.level : null);
    dom.notice.hidden = !n;
  }

  function paintThumbnail() {
    const bytes = toBytes(model.get("thumbnail"));
    const old = thumbUrl;
    thumbUrl = null;
    if (bytes && bytes.byteLength > 0) {
      // copy: the DataView may be a view on a buffer that anywidget reuses
      const blob = new Blob([bytes.slice()], { type: sniffImageType(bytes) });
      thumbUrl = URL.createObjectURL(blob);
      dom.thumbnail.setAttribute("src", thumbUrl);
      dom.thumbBox.hidden = false;
    } else {
      dom.thumbnail.removeAttribute("src");
      dom.thumbBox.hidden = true;
    }
    if (old) URL.revokeObjectURL(old);
    paintThumbLabel();
  }

  function paintThumbLabel() {
    const label = str(model.get("thumbnail_label"));
    setText(dom.thumbLabel, label);
    dom.thumbnail.setAttribute("alt", label || "latest output");
  }

  // --- buttons
  const onPlay = () => dispatch({ type: "click", button: "play" });
  const onPause = () =>
    dispatch({ type: "click", button: State.pauseButtonMode(st) === "resume" ? "resume" : "pause" });
  const onStop = () => dispatch({ type: "click", button: "stop" });
  dom.play.addEventListener("click", onPlay);
  dom.pause.addEventListener("click", onPause);
  dom.stop.addEventListener("click", onStop);

  // --- model
  const on = (name, cb) => {
    model.on(name, cb);
    offs.push(() => model.off(name, cb));
  };
  on("change:status", () => dispatch({ type: "snapshot", status: model.get("status") }));
  on("change:heartbeat", () => dispatch({ type: "heartbeat", value: model.get("heartbeat") }));
  for (const t of ["pull_interval", "fast_pull_interval", "command_timeout", "disconnect_after"]) {
    on(`change:${t}`, () => dispatch({ type: "config", config: readConfig() }));
  }
  on("change:title", requestPaint);
  on("change:thumbnail", paintThumbnail);
  on("change:thumbnail_label", paintThumbLabel);
  on("msg:custom", (msg) => dispatch({ type: "message", msg }));

  // --- page
  const onVisibility = () => {
    if (doc.visibilityState === "visible") dispatch({ type: "visible" });
  };
  const onOnline = () => dispatch({ type: "online" });
  doc.addEventListener("visibilitychange", onVisibility);
  win.addEventListener("online", onOnline);

  // --- start: send the initial pull, feed the current trait value, paint now
  flush();
  dispatch({ type: "snapshot", status: model.get("status") });
  paintThumbnail();
  paint();

  return () => {
    disposed = true;
    if (tickTimer !== null) clearTimeout(tickTimer);
    if (renderTimer !== null) clearTimeout(renderTimer);
    tickTimer = renderTimer = null;
    for (const off of offs) {
      try {
        off();
      } catch (_) {
        /* model already closed */
      }
    }
    dom.play.removeEventListener("click", onPlay);
    dom.pause.removeEventListener("click", onPause);
    dom.stop.removeEventListener("click", onStop);
    doc.removeEventListener("visibilitychange", onVisibility);
    win.removeEventListener("online", onOnline);
    if (thumbUrl) URL.revokeObjectURL(thumbUrl);
    thumbUrl = null;
    dom.root.remove();
  };
}

export default { render };
