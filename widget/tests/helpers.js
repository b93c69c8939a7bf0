// Shared helpers for the widget tests (not a test file itself).
export const CFG = { pullInterval: 5, fastPullInterval: 0.5, commandTimeout: 5, disconnectAfter: 3 };

export function mulberry32(seed) {
  let a = seed >>> 0;
  return function rand() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function snap(state, seq, extra = {}) {
  return {
    run_id: state === "idle" ? "" : "r1",
    state,
    seq,
    done: 0,
    failed: 0,
    total: 10,
    current: [],
    nodes: {},
    elapsed: 0,
    eta: null,
    rate: null,
    error: null,
    failures: [],
    started_at: null,
    taken_at: 0,
    ...extra,
  };
}

export function deepFreeze(o) {
  if (o && typeof o === "object" && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  } else if (o && typeof o === "object") {
    for (const v of Object.values(o)) if (v && typeof v === "object" && !Object.isFrozen(v)) deepFreeze(v);
  }
  return o;
}

/** Independent copy of the button table (the spec), used to check buttons(). */
export const EXPECTED_BUTTONS = {
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
};

export function enabledSet(b) {
  return ["play", "pause", "resume", "stop"].filter((k) => b[k].enabled);
}
