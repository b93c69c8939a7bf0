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
 *   kernelGone(status) -> whether a kernel connection status means this panel's kernel is gone
 *   State.outbox    messages the view must model.send() after THIS transition (fresh each time)
 *   State.ui        the front-end state name shown in the badge
 *   State.notice    null | {level: "info"|"warn"|"error", text, at, cause}
 *   State.snapshot  newest accepted kernel snapshot (or null); State.seq its seq (-1 before any),
 *                   State.epoch its epoch (the Runner instance it comes from)
 *   State.kernel    null | {busy, hearsClicks, pid} from the `kernel` trait
 *   State.ended     null | {cause, reason}: the kernel restarted / shut down / the comm closed
 *   State.lastContact  time of the last heartbeat / snapshot / reply (for "updated x s ago")
 *
 * Modules: this file (events), machine/base.js (names, constants, draft helpers),
 * machine/ordering.js (which snapshot is adopted), machine/timers.js (the "tick" rules),
 * machine/notices.js (notice texts).
 *
 * Events (every event may carry `now`, seconds on a monotonic clock; default: state.now)
 *   {type:"click", button:"play"|"pause"|"resume"|"stop"}   ignored unless buttons() enables it
 *   {type:"snapshot", status}          the `status` trait changed
 *   {type:"kernel", value}             the `kernel` trait changed ({busy, hears_clicks, pid, ...})
 *   {type:"message", msg}              a kernel custom message: ack | status | error | goodbye
 *   {type:"heartbeat", value}          the `heartbeat` trait changed
 *   {type:"ended", cause}              the view learnt that the kernel is gone: "restarted" |
 *                                      "shut down" | "closed" (comm closed)
 *   {type:"tick"}                      timers (view calls it at nextWakeup())
 *   {type:"visible"} {type:"online"}   page visible again / browser back online -> pull now
 *   {type:"config", config}            interval traits changed
 *
 * Front-end states (ui) and how they are derived, first match wins:
 *   ended                          the kernel restarted or shut down, or the comm closed: terminal
 *   disconnected                   not connected (or no snapshot known yet)
 *   reconnecting                   contact is back after a disconnect, but no answer to a request
 *                                  sent since the disconnect has arrived yet (what arrives first
 *                                  may be messages the server buffered while the page was away)
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
 *   disconnected reconnecting        -> stop            (queued / sent; stop is idempotent)
 *   ended                            -> nothing         (no kernel can hear a click)
 *
 * Transition table (C = connected with a snapshot, P = a command is pending, B = "busy": the
 * kernel trait says a cell is running on the main shell and the panel's messages are not heard
 * off it — kernel.busy && !kernel.hears_clicks):
 *   click X (enabled)     C: pending={X,id,sentAt}, ui=intermediate(X), send command, notice cleared;
 *                         if B, at once the busy notice (below).
 *                         disconnected + stop: queued stop, send it now (best effort), notice
 *                         "Stop queued — will be delivered when the kernel answers".
 *   click X (disabled)    no change, nothing sent.
 *   snapshot / ack / status reply / kernel / heartbeat   always "contact" (resets the disconnect
 *                         timer, leaves disconnected).
 *   ordering              snapshots are ordered by seq within one epoch (one Runner). A snapshot is
 *                         adopted if its seq is newer; a snapshot of another epoch resets the
 *                         ordering. A trait snapshot of another epoch, or with a seq more than
 *                         MAX_SEQ_JUMP above the last, is held as `suspect` and a pull confirms it
 *                         first (a trait can be written by a misbehaving browser; replies and acks
 *                         come from the kernel only and are trusted). Adopting settles a pending
 *                         command when the snapshot has a different run_id than at click time or
 *                         its state is no longer one the command is valid in (start: idle/stopped/
 *                         completed/failed; pause: running; resume: pausing/paused; stop: running/
 *                         pausing/paused). So a backend `pausing` confirms a pause click (ui stays
 *                         `pausing` until `paused`), progress-only `running` snapshots do not.
 *   seq gap (trait only)  seq > last+1 -> pull, unless a pull is outstanding or one was sent less
 *                         than max(1 s, fast_pull_interval) ago (coalescing makes gaps normal; the
 *                         trait carries whole snapshots, so the pull only double-checks freshness).
 *   ack (id == pending)   accepted: adopt snapshot; pending cleared if the newest snapshot settles it,
 *                         else kept (ui intermediate) until a settling snapshot or timeout.
 *                         rejected: pending cleared, ui = snapshot state, notice "<Cmd> rejected: reason".
 *   ack (other id)        its snapshot is used like any snapshot (other views share the comm).
 *   status reply          snapshot adopted if newer; answers that pull and every earlier one.
 *   error reply           to an id this view sent: notice "Kernel error: …"; state unchanged
 *                         (answers a pull with that id). Any other id (null: the kernel refused
 *                         another client's message, e.g. a foreign trait update) is not ours: ignored.
 *   goodbye               the kernel is shutting down (or, with cause "server", the run's control
 *                         server is closing): adopt its final snapshot, then ended.
 *   ended (event)         ended. Terminal: no pending or queued command, no pull, no timer, every
 *                         later event is ignored except a goodbye (its final snapshot is adopted).
 *                         Notice: "<what happened>: the run ended at N/M. Run the cells again;
 *                         resume=True skips finished items."
 *   kernel                B begins: a pull goes out at once unless the previous probe is still
 *                         unanswered (a probe: the kernel only learns that the front end sends on
 *                         a subshell from a message that arrives there, and JupyterLab sends a
 *                         comm's first messages, the load-time pull among them, on the main shell
 *                         before its subshell exists; an answer during the cell proves that clicks
 *                         are heard, see "status reply"), and pending commands are held
 *                         (no timeout, no fast pulls, no disconnect for want of answers).
 *                         B ends: the busy notice clears and a
 *                         pending command's timeout starts afresh (the kernel hears it now).
 *   busy notice           while B and a command is pending (sent while B, or unconfirmed for
 *                         BUSY_NOTICE_AFTER s): "The kernel is busy running another cell: <Cmd> is
 *                         queued and applies when that cell ends. The kernel's Interrupt (■) ends
 *                         that cell now, so <Cmd> applies at once." (Stop: "… ends that cell and
 *                         stops the run now.") Cleared when B ends or the command is confirmed.
 *   tick                  (1) pending older than command_timeout (counted from the click, or from
 *                             the end of B) while not B -> cleared, ui = snapshot state, notice
 *                             "<Cmd> not confirmed …", pull.
 *                         (2) silence >= disconnect_after since max(lastContact, first unanswered
 *                             pull / pending send) while a pull or command is outstanding (not
 *                             while B: the kernel said why it does not answer), or since
 *                             lastContact while the snapshot state is active
 *                             (running/pausing/paused/stopping) -> disconnected. A pending stop becomes
 *                             a queued stop; another pending command is dropped with a notice.
 *                         (3) pull due -> status_request. Period: fast_pull_interval while a command
 *                             is pending, a snapshot is suspect, or the snapshot state is pausing/
 *                             stopping (a lost paused/stopped update is then found quickly),
 *                             pull_interval otherwise (also while disconnected, and while B).
 *                         (4) pulls unanswered for DEAF_AFTER s while updates still arrive and the
 *                             kernel is not busy -> a notice: the kernel does not hear this view
 *                             (reload the page). Cleared when a pull is answered.
 *   restored notice       "Connection restored …" (info) clears RESTORED_NOTICE_S s after it was set.
 *   visible, online       pull now.
 *   leaving disconnected  (first contact) reconnecting if the view was connected before; forget
 *                         unanswered pulls and pull afresh (unless the contact is itself a status
 *                         reply or a pull went out < fast_pull_interval ago — e.g. the load-time
 *                         pull). An answer to a request sent since the disconnect (a status reply,
 *                         or an ack of this view's command) ends `reconnecting`. A queued stop is
 *                         re-sent as a pending stop if the newest snapshot is running/pausing/paused,
 *                         otherwise dropped with a notice (the run already ended); an ack of the
 *                         queued stop itself counts as its delivery.
 */

export {
  FRONT_STATES, BACKEND_STATES, ACTIVE_STATES, COMMANDS, VALID_FROM, INTERMEDIATE, CLICK_COMMAND,
  DEFAULT_CONFIG, DEAF_AFTER, MAX_SEQ_JUMP, BUSY_NOTICE_AFTER, RESTORED_NOTICE_S, KERNEL_GONE,
  normalizeConfig,
  isValidSnapshot, kernelBusy,
} from "./machine/base.js";
export { nextWakeup } from "./machine/timers.js";
import {
  BUTTON_TABLE, CLICK_COMMAND, KERNEL_GONE, LABEL, VALID_FROM, clearNotice, kernelBusy,
  normalizeConfig, send, sendCommand, sendPull, setNotice, uiOf,
} from "./machine/base.js";
import { adopt, settles } from "./machine/ordering.js";
import { advance, busyNotice, busyNoticeAt } from "./machine/timers.js";
import { ENDED_HEAD, endedText, stopQueuedText } from "./machine/notices.js";

/** What a JupyterLab kernel status means for this panel: "restarted" | "shut down" | null. */
export function kernelGone(status) {
  return Object.prototype.hasOwnProperty.call(KERNEL_GONE, status) ? KERNEL_GONE[status] : null;
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
    everConnected: false,
    reconnecting: false,
    freshFrom: idBase, // replies to ids >= this were asked since the last disconnect
    firstId: idBase, // this view sent exactly the ids in [firstId, nextId)
    snapshot: null,
    seq: -1,
    epoch: "",
    suspect: null, // {seq, epoch, at}: a trait snapshot waiting for a pull to confirm it
    kernel: null, // {busy, hearsClicks, pid}
    ended: null, // {cause, reason}
    pending: null, // {command, id, sentAt, clockFrom, fromRunId, accepted}
    queued: null, // {command: "stop", id, since}
    pulls: [], // outstanding status_request ids (this view)
    probeId: -1, // the pull sent when the kernel last turned busy (see "kernel")
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

/** Any message from the kernel. Returns true if it ended a disconnection. */
function contact(d) {
  d.lastContact = d.now;
  if (d.connected) return false;
  d.connected = true;
  if (d.everConnected) d.reconnecting = true;
  d.everConnected = true;
  return true;
}

function afterReconnect(d, { isReply = false, ackedId = null, ackRejected = null } = {}) {
  if ((!isReply || d.reconnecting) && d.now - d.lastPullAt >= d.config.fastPullInterval) {
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
      if (ackRejected !== null) setNotice(d, "warn", `Stop rejected: ${ackRejected}`, "command");
      else setNotice(d, "info", "Connection restored — queued Stop delivered", "connection");
    } else if (!d.snapshot || VALID_FROM.stop.includes(d.snapshot.state)) {
      const id = sendCommand(d, "stop");
      d.pending = {
        command: "stop", id, sentAt: d.now, clockFrom: d.now,
        fromRunId: d.snapshot ? d.snapshot.run_id : "", accepted: false,
      };
      setNotice(d, "info", "Connection restored — queued Stop sent", "connection");
    } else {
      setNotice(d, "info", `Connection restored — queued Stop not needed (run is ${d.snapshot.state})`,
        "connection");
    }
  } else if (d.notice && d.notice.cause === "connection" && d.notice.level === "warn") {
    setNotice(d, "info", "Connection restored", "connection");
  }
}

function onClick(d, button) {
  if (!buttons(d.ui)[button] || !buttons(d.ui)[button].enabled) return;
  const command = CLICK_COMMAND[button];
  if (d.ui === "disconnected") {
    // only stop is enabled here
    const id = sendCommand(d, "stop");
    d.queued = { command: "stop", id, since: d.now };
    setNotice(d, "info", stopQueuedText(d.config.backend), "connection");
    return;
  }
  const id = sendCommand(d, command);
  d.pending = {
    command, id, sentAt: d.now, clockFrom: d.now,
    fromRunId: d.snapshot ? d.snapshot.run_id : "", accepted: false,
  };
  d.notice = null;
  if (kernelBusy(d)) busyNotice(d, command);
}

function onKernel(d, value) {
  if (!value || typeof value !== "object") return;
  const wasBusy = kernelBusy(d);
  d.kernel = {
    busy: value.busy === true,
    hearsClicks: value.hears_clicks === true,
    pid: Number.isInteger(value.pid) ? value.pid : null,
  };
  if (!wasBusy && kernelBusy(d) && d.connected && !d.pulls.includes(d.probeId)) {
    sendPull(d);
    d.probeId = d.nextId - 1;
  }
  if (wasBusy && !kernelBusy(d)) {
    clearNotice(d, "busy");
    if (d.pending) d.pending = { ...d.pending, clockFrom: d.now };
    // Requests held during the cell are answered now: their silence so far proves nothing.
    if (d.pullSince !== null) d.pullSince = d.now;
  }
  if (d.kernel.busy) clearNotice(d, "deaf");
}

function reasonOf(msg) {
  return typeof msg.reason === "string" && msg.reason ? msg.reason : "no reason given";
}

/** A reply to pull `id`: it and every earlier pull are settled; later ones are still out. */
function answered(d, id) {
  d.pulls = d.pulls.filter((p) => p > id);
  d.pullSince = d.pulls.length ? d.lastPullAt : null;
}

/**
 * The kernel answered one of this view's requests: it hears the view now (whatever a lost `kernel`
 * update may still say), and if the request was sent since the disconnect, the link is back.
 */
function heard(d, fresh) {
  if (fresh) d.reconnecting = false;
  if (kernelBusy(d)) {
    d.kernel = { ...d.kernel, hearsClicks: true };
    clearNotice(d, "busy");
    if (d.pending) d.pending = { ...d.pending, clockFrom: d.now };
  }
}

function end(d, cause, reason) {
  d.ended = { cause, reason };
  d.pending = null;
  d.queued = null;
  d.pulls = [];
  d.pullSince = null;
  d.suspect = null;
  d.reconnecting = false;
  setNotice(d, "warn", endedText(d.snapshot, cause, reason, d.config.resumable), "ended");
}

function onMessage(d, msg) {
  if (!msg || typeof msg !== "object") return;
  if (!["ack", "status", "error", "goodbye"].includes(msg.type)) return;
  const reconnected = contact(d);
  const info = { isReply: false, ackedId: null, ackRejected: null };
  const fresh = Number.isInteger(msg.id) && msg.id >= d.freshFrom;
  if (msg.type === "goodbye") {
    adopt(d, msg.status, true);
    // cause "server": a control server closing (the web page's, or an attached run's)
    end(d, msg.cause === "server" ? "server" : "goodbye",
      typeof msg.reason === "string" ? msg.reason : "");
    return;
  }
  if (msg.type === "ack") {
    const p = d.pending && d.pending.id === msg.id ? d.pending : null;
    if (d.queued && d.queued.id === msg.id) {
      info.ackedId = msg.id;
      if (msg.accepted !== true) info.ackRejected = reasonOf(msg);
    }
    if (p || info.ackedId !== null) heard(d, fresh);
    adopt(d, msg.status, true);
    if (p && msg.accepted !== true) {
      d.pending = null;
      setNotice(d, "warn", `${LABEL[p.command]} rejected: ${reasonOf(msg)}`, "command");
    } else if (p && d.pending === p) {
      d.pending = settles(p, d.snapshot) ? null : { ...p, accepted: true };
    }
  } else if (msg.type === "status") {
    if (d.pulls.includes(msg.id)) {
      answered(d, msg.id);
      d.deafWarned = false;
      clearNotice(d, "deaf");
      d.suspect = null; // answered: the reply's snapshot is the kernel's truth
      info.isReply = true;
      heard(d, fresh);
    }
    adopt(d, msg.status, true);
  } else if (Number.isInteger(msg.id) && msg.id >= d.firstId && msg.id < d.nextId) {
    if (d.pulls.includes(msg.id)) answered(d, msg.id);
    setNotice(d, "error", `Kernel error: ${String(msg.error)}`, "kernel-error");
  }
  if (reconnected) afterReconnect(d, info);
}

function onSnapshot(d, status) {
  const reconnected = contact(d);
  const { accepted, gap, suspect } = adopt(d, status, false);
  const pullFree = d.pulls.length === 0;
  if (suspect && pullFree) {
    sendPull(d);
  } else if (
    accepted && gap && pullFree &&
    d.now - Math.max(d.lastPullAt, d.lastGapPullAt) >= Math.max(1, d.config.fastPullInterval)
  ) {
    sendPull(d);
    d.lastGapPullAt = d.now;
  }
  if (reconnected) afterReconnect(d);
}

export function transition(state, event) {
  const type = event && event.type;
  if (state.ended && !(type === "message" && event.msg && event.msg.type === "goodbye")) {
    return state.outbox.length ? Object.freeze({ ...state, outbox: [] }) : state;
  }
  const d = { ...state, outbox: [] };
  const now = event && typeof event.now === "number" ? event.now : state.now;
  d.now = Math.max(state.now, now); // monotonic
  d.ui = uiOf(d);

  if (type === "config") {
    d.config = normalizeConfig(event.config);
  }
  if (!d.ended) advance(d);
  d.ui = uiOf(d);

  switch (type) {
    case "click":
      onClick(d, event.button);
      break;
    case "snapshot":
      onSnapshot(d, event.status);
      break;
    case "message":
      if (d.ended) {
        adopt(d, event.msg.status, true); // a late goodbye: its final snapshot is the truth
        setNotice(d, "warn", endedText(d.snapshot, d.ended.cause, d.ended.reason,
          d.config.resumable), "ended");
      } else {
        onMessage(d, event.msg);
      }
      break;
    case "kernel":
      if (contact(d)) afterReconnect(d);
      onKernel(d, event.value);
      break;
    case "heartbeat":
      if (contact(d)) afterReconnect(d);
      break;
    case "ended":
      end(d, Object.prototype.hasOwnProperty.call(ENDED_HEAD, event.cause) ? event.cause : "closed",
        "");
      break;
    case "visible":
    case "online":
      sendPull(d);
      break;
    default:
      break; // tick, config: time rules only
  }
  // the busy notice follows its cause, whichever event changed it
  if (!d.ended && d.now >= busyNoticeAt(d)) busyNotice(d, d.pending.command);
  if (d.notice && d.notice.cause === "busy" && (!d.pending || !kernelBusy(d))) d.notice = null;
  if (d.ended) d.outbox = [];
  d.ui = uiOf(d);
  return Object.freeze(d);
}
