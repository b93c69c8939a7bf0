// Time-driven rules of the state machine (../state.js, "tick"): when to pull, when a click times
// out, when silence means disconnected, when to warn that the kernel is busy or deaf, when a
// "Connection restored" notice has said its piece.
import {
  DEAF_AFTER, BUSY_NOTICE_AFTER, LABEL, RESTORED_NOTICE_S, TRANSITIONAL, isActive, kernelBusy,
  sendPull, setNotice, snapshotState,
} from "./base.js";
import { busyText, deafText, stopQueuedText, timeoutText } from "./notices.js";

export function disconnectDeadline(d) {
  if (!d.connected || d.ended) return Infinity;
  const D = d.config.disconnectAfter;
  let t = Infinity;
  if (isActive(snapshotState(d))) t = Math.min(t, d.lastContact + D);
  if (kernelBusy(d)) return t; // unanswered requests are explained: the kernel is busy
  if (d.pullSince !== null) t = Math.min(t, Math.max(d.lastContact, d.pullSince) + D);
  if (d.pending) t = Math.min(t, Math.max(d.lastContact, d.pending.sentAt) + D);
  return t;
}

export function nextPullAt(d) {
  if (d.ended) return Infinity;
  const fast = d.config.fastPullInterval;
  if (d.connected && kernelBusy(d)) return d.lastPullAt + d.config.pullInterval;
  if (d.connected && d.pending) return Math.max(d.lastPullAt, d.pending.sentAt) + fast;
  // The backend is on its way to paused/stopped: if that update is lost, find out quickly.
  if (d.connected && (d.suspect || d.reconnecting || TRANSITIONAL.includes(snapshotState(d)))) {
    return d.lastPullAt + fast;
  }
  return d.lastPullAt + d.config.pullInterval;
}

export function busyNoticeAt(d) {
  if (!d.pending || !kernelBusy(d) || (d.notice && d.notice.cause === "busy")) return Infinity;
  return d.pending.sentAt + BUSY_NOTICE_AFTER;
}

/** When an info notice about the connection ("Connection restored …") has said its piece. */
export function restoredNoticeEndsAt(d) {
  const n = d.notice;
  return n && n.cause === "connection" && n.level === "info" ? n.at + RESTORED_NOTICE_S : Infinity;
}

export function commandTimeoutAt(d) {
  if (!d.pending || kernelBusy(d)) return Infinity;
  return d.pending.clockFrom + d.config.commandTimeout;
}

export function nextWakeup(s) {
  if (s.ended) return Infinity;
  return Math.min(nextPullAt(s), commandTimeoutAt(s), busyNoticeAt(s), disconnectDeadline(s),
    restoredNoticeEndsAt(s));
}

export function goDisconnected(d) {
  const backend = d.config.backend;
  d.connected = false;
  d.freshFrom = d.nextId; // only answers to requests sent from now on prove the link is back
  if (d.pending) {
    const p = d.pending;
    d.pending = null;
    if (p.command === "stop") {
      d.queued = { command: "stop", id: p.id, since: d.now };
      setNotice(d, "warn", `Connection lost — ${stopQueuedText(backend)}`, "connection");
    } else {
      setNotice(d, "warn", `${LABEL[p.command]} not confirmed — connection to the ${backend} lost`,
        "connection");
    }
  } else if (!d.queued) {
    setNotice(d, "warn", `Connection to the ${backend} lost — showing the last known status`,
      "connection");
  }
}

export function busyNotice(d, command) {
  setNotice(d, "warn", busyText(command), "busy");
}

/** Time-driven rules: command timeout, busy notice, disconnect, deafness, periodic pull. */
export function advance(d) {
  const c = d.config;
  if (d.now >= commandTimeoutAt(d)) {
    const p = d.pending;
    d.pending = null;
    setNotice(d, "warn", timeoutText(p, c.commandTimeout, c.backend), "command");
    sendPull(d);
  }
  if (d.now >= busyNoticeAt(d)) busyNotice(d, d.pending.command);
  if (d.now >= restoredNoticeEndsAt(d)) d.notice = null;
  if (d.connected && d.now >= disconnectDeadline(d)) goDisconnected(d);
  if (d.connected && !d.deafWarned && !(d.kernel && d.kernel.busy) && d.pullSince !== null &&
      d.lastContact > d.pullSince && d.now - d.pullSince >= DEAF_AFTER) {
    // Updates arrive but our requests go unanswered while the kernel says it is not busy: the
    // kernel does not hear this view. Seen with JupyterLab's "Kernel comms over subshells" after a
    // page reload (messages to a deleted subshell are dropped by ipykernel).
    d.deafWarned = true;
    setNotice(d, "warn", deafText(c.backend), "deaf");
  }
  if (d.now >= nextPullAt(d)) sendPull(d);
}
