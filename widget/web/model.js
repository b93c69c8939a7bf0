// chainlib control page — the notebook panel's view and state machine, over HTTP (widget/web/).
//
// The page served by `chainlib.serve` (GET /) renders the very same panel as the notebook
// (panel.js's render({model, el}), driven by state.js). Only the transport differs: instead of an
// anywidget model synced over a Jupyter comm, `createModel` returns an object with the same
// surface (get / on / off / send) fed by
//   - EventSource("/events"): `status` events set the `status` trait, `heartbeat` events the
//     `heartbeat` trait (both go through the state machine exactly as trait changes do);
//   - fetch: a {type:"status_request"} becomes GET /status, a {type:"command"} POST /commands
//     (token in a header); their answers come back as the custom messages the panel expects
//     ({type:"status"|"ack"|"error", id, ...}).
//   - GET /gallery (when the server has one): the `thumbnail`, `thumbnail_label` and `gallery`
//     traits, images decoded from base64 to bytes as the notebook's binary buffers arrive. Asked
//     on load, then at most once per `galleryIntervalMs` and only when the snapshot's seq moved
//     since the last ask (`?since=COUNTER`: a 204 means nothing new). A failed ask is repeated
//     at the next sign of the server (status or heartbeat), never on a timer of its own.
// A request that gets no usable answer (network error, timeout, 5xx) produces no message at all:
// silence is what the state machine's pull / disconnect rules are built on. A 4xx is an error
// reply (the notice names it). When the browser gives up on the event stream (it does on an HTTP
// error), the stream is reopened after `retry` ms with the last event id, so the server resumes.
// A `goodbye` event (the server is closing: its `chainlib run` ended, or its program closed it)
// becomes the goodbye message the notebook panel gets from a kernel shutting down, with
// cause "server": the panel says the server closed, with the final snapshot, instead of a lost
// connection; the stream is not reopened.

const STREAM_RETRY_MS = 500;
const GALLERY_INTERVAL_MS = 1000; // as the notebook panel's THUMBNAIL_INTERVAL
const NOT_ASKED = Symbol("not asked");
const PAGE_CONFIG = ["pull_interval", "fast_pull_interval", "command_timeout", "disconnect_after"];

function numberOr(v, fallback) {
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}

/**
 * A panel model over HTTP.
 * options: {win, token, base ("" = same origin), title, config: {pull_interval, ...},
 *           retryMs (reopen delay of a closed stream), requestTimeoutMs,
 *           gallery (true: the server has GET /gallery), galleryIntervalMs}
 */
export function createModel(options) {
  const win = options.win || globalThis;
  const base = options.base || "";
  const token = String(options.token || "");
  const config = options.config || {};
  const requestTimeoutMs = numberOr(options.requestTimeoutMs, 10_000);
  const traits = {
    status: {},
    heartbeat: 0,
    pull_interval: numberOr(config.pull_interval, 5),
    fast_pull_interval: numberOr(config.fast_pull_interval, 0.5),
    command_timeout: numberOr(config.command_timeout, 5),
    disconnect_after: numberOr(config.disconnect_after, 3),
    title: String(options.title || ""),
    thumbnail: null,
    thumbnail_label: "",
    gallery: [],
    backend: "server", // the notices say "server", not "kernel"
  };
  const listeners = new Map();
  let source = null;
  let lastEventId = null;
  const retryMs = numberOr(options.retryMs, STREAM_RETRY_MS);
  let reopenTimer = null;
  let closed = false;
  let serverGone = false; // the server said goodbye: no stream is reopened, no gallery asked
  const stats = {
    status: 0, heartbeat: 0, streamsOpened: 0, requests: 0, failedRequests: 0,
    galleryAsks: 0, galleryUpdates: 0,
  };
  let galleryWanted = options.gallery === true;
  const galleryIntervalMs = numberOr(options.galleryIntervalMs, GALLERY_INTERVAL_MS);
  const gallery = {
    counter: null, // the counter of the gallery shown (null: none yet)
    seq: null, // the newest snapshot seq seen
    askedSeq: NOT_ASKED, // the seq when the gallery was last asked for
    lastAsk: -Infinity, // Date.now() of the last ask
    busy: false,
    timer: null,
  };

  function emit(name, arg) {
    for (const cb of [...(listeners.get(name) || [])]) {
      try {
        cb(arg);
      } catch (err) {
        console.error("chainlib page: listener failed", err);
      }
    }
  }

  function setTrait(name, value) {
    traits[name] = value;
    emit(`change:${name}`);
  }

  // ------------------------------------------------------------------ gallery

  function noteSeq(snap) {
    if (snap && typeof snap === "object" && Number.isInteger(snap.seq)) gallery.seq = snap.seq;
    askGallery();
  }

  function askGallery() {
    if (!galleryWanted || closed || serverGone || gallery.busy || gallery.timer !== null) return;
    if (gallery.askedSeq === gallery.seq) return; // nothing happened since the last ask
    const wait = Math.max(0, gallery.lastAsk + galleryIntervalMs - Date.now());
    gallery.timer = setTimeout(fetchGallery, wait);
  }

  async function fetchGallery() {
    gallery.timer = null;
    if (closed) return;
    gallery.busy = true;
    gallery.askedSeq = gallery.seq;
    gallery.lastAsk = Date.now();
    stats.galleryAsks += 1;
    const since = gallery.counter === null ? "" : `?since=${encodeURIComponent(gallery.counter)}`;
    const { status, payload } = await request("GET", `/gallery${since}`);
    gallery.busy = false;
    if (closed) return;
    if (status === 200) {
      applyGallery(payload);
    } else if (status === 404) {
      galleryWanted = false; // this server keeps no gallery
    } else if (status === 0 || status >= 500) {
      gallery.askedSeq = NOT_ASKED; // no answer: ask again once the server is heard from
      return;
    }
    askGallery(); // the seq may have moved on during the request
  }

  function bytesOf(text) {
    if (typeof text !== "string" || text === "") return null;
    try {
      const raw = globalThis.atob(text);
      const out = new Uint8Array(raw.length);
      for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
      return out;
    } catch (_) {
      return null; // not base64: no image
    }
  }

  /** The /gallery answer as the notebook's traits: bytes where it has binary buffers. */
  function applyGallery(payload) {
    if (!payload || typeof payload !== "object" || !Number.isInteger(payload.counter)) return;
    const tiles = [];
    for (const tile of Array.isArray(payload.gallery) ? payload.gallery : []) {
      if (!tile || typeof tile !== "object") continue;
      const after = bytesOf(tile.after);
      if (after === null) continue;
      tiles.push({
        label: typeof tile.label === "string" ? tile.label : "",
        after,
        before: bytesOf(tile.before),
      });
    }
    gallery.counter = payload.counter;
    stats.galleryUpdates += 1;
    setTrait("thumbnail", bytesOf(payload.thumbnail));
    setTrait("thumbnail_label",
      typeof payload.thumbnail_label === "string" ? payload.thumbnail_label : "");
    setTrait("gallery", tiles);
  }

  async function request(method, path, body) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), requestTimeoutMs);
    stats.requests += 1;
    try {
      const response = await win.fetch(base + path, {
        method,
        headers: body === undefined
          ? { "x-chainlib-token": token }
          : { "x-chainlib-token": token, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
      let payload = null;
      try {
        payload = await response.json();
      } catch (_) {
        payload = null;
      }
      return { status: response.status, payload };
    } catch (_) {
      stats.failedRequests += 1;
      return { status: 0, payload: null }; // network error or timeout: no answer
    } finally {
      clearTimeout(timer);
    }
  }

  function answer(id, { status, payload }, onOk) {
    if (closed) return;
    if (status === 200 && payload && typeof payload === "object") {
      onOk(payload);
      noteSeq(payload.status && typeof payload.status === "object" ? payload.status : payload);
    } else if (status >= 400 && status < 500) {
      const error = payload && typeof payload.error === "string" ? payload.error : `HTTP ${status}`;
      emit("msg:custom", { type: "error", id, error });
    }
    // 0 (no answer) and 5xx: silence — the state machine's timers decide what it means
  }

  function send(msg) {
    if (closed || !msg || typeof msg !== "object") return;
    if (msg.type === "status_request") {
      request("GET", "/status").then((r) =>
        answer(msg.id, r, (status) => emit("msg:custom", { type: "status", id: msg.id, status })));
    } else if (msg.type === "command") {
      request("POST", "/commands", { command: msg.command, id: msg.id }).then((r) =>
        answer(msg.id, r, (ack) => emit("msg:custom", { ...ack, type: "ack", id: msg.id })));
    } else {
      throw new Error(`chainlib page: cannot send ${JSON.stringify(msg.type)}`);
    }
  }

  function openStream() {
    if (closed) return;
    const query = lastEventId === null ? "" : `?last_event_id=${encodeURIComponent(lastEventId)}`;
    const es = new win.EventSource(`${base}/events${query}`, { withCredentials: false });
    source = es;
    stats.streamsOpened += 1;
    es.addEventListener("status", (e) => {
      let snap;
      try {
        snap = JSON.parse(e.data);
      } catch (_) {
        return;
      }
      if (e.lastEventId) lastEventId = e.lastEventId;
      stats.status += 1;
      setTrait("status", snap);
      noteSeq(snap);
    });
    es.addEventListener("heartbeat", (e) => {
      let beat = {};
      try {
        beat = JSON.parse(e.data);
      } catch (_) {
        /* a heartbeat is contact whatever it carries */
      }
      stats.heartbeat += 1;
      setTrait("heartbeat", numberOr(beat.time, Date.now() / 1000));
      askGallery(); // contact: a failed gallery ask is repeated
    });
    es.addEventListener("goodbye", (e) => {
      let bye = null;
      try {
        bye = JSON.parse(e.data);
      } catch (_) {
        bye = null;
      }
      serverGone = true;
      es.close(); // the browser would retry a closed server for ever
      if (source === es) source = null;
      if (!bye || typeof bye !== "object") bye = {};
      emit("msg:custom", {
        type: "goodbye",
        cause: "server",
        reason: typeof bye.reason === "string" ? bye.reason : "",
        status: bye.status,
      });
    });
    es.addEventListener("error", () => {
      // CONNECTING: the browser retries by itself (after the server's `retry:`); CLOSED: it gave
      // up (an HTTP error such as 503) and we reopen, resuming from the last event id.
      if (es.readyState === win.EventSource.CLOSED && source === es && !closed && !serverGone) {
        es.close();
        source = null;
        if (reopenTimer === null) {
          reopenTimer = setTimeout(() => {
            reopenTimer = null;
            openStream();
          }, retryMs);
        }
      }
    });
  }

  const model = {
    get: (name) => traits[name],
    on(name, cb) {
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name).add(cb);
    },
    off(name, cb) {
      const set = listeners.get(name);
      if (set) set.delete(cb);
    },
    send,
    /** Start following the run (opens the event stream). */
    connect() {
      if (!source && !closed && !serverGone) openStream();
      askGallery(); // on load
    },
    /** Stop the stream and every timer (the page is going away). */
    close() {
      closed = true;
      if (reopenTimer !== null) clearTimeout(reopenTimer);
      if (gallery.timer !== null) clearTimeout(gallery.timer);
      if (source) source.close();
      source = null;
    },
    stats,
  };
  return model;
}

/**
 * Mount the panel in the page served by chainlib.serve: read the token and settings from the
 * page's <meta> tags, render `panel` (panel.js's default export) into #chainlib-root over HTTP.
 */
export function boot(doc, panel) {
  const win = doc.defaultView;
  const meta = (name) => {
    const el = doc.querySelector(`meta[name="chainlib-${name}"]`);
    return el ? el.getAttribute("content") : null;
  };
  let info = {};
  try {
    info = JSON.parse(meta("config") || "{}");
  } catch (_) {
    info = {};
  }
  const config = {};
  for (const key of PAGE_CONFIG) if (key in info) config[key] = info[key];
  const model = createModel({
    win, token: meta("token"), title: info.title, config, retryMs: info.retry_ms,
    gallery: info.gallery === true,
  });
  const el = doc.getElementById("chainlib-root");
  const dispose = panel.render({ model, el });
  model.connect();
  win.addEventListener("pagehide", () => {
    model.close();
    if (typeof dispose === "function") dispose();
  });
  return model;
}
