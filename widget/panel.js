// chainlib control panel — anywidget front end (anywidget >= 0.9: export default { render }).
//
// The glue between the transport (the anywidget model), the state machine (state.js: every rule
// lives there, pure and unit-tested) and the views (view/*.js: DOM only). anywidget loads `_esm`
// as ONE module from a Blob URL, where relative imports cannot resolve: chainlib/_bundle.py builds
// that module from this file and its imports (at import of chainlib.panel in a source checkout, at
// wheel build otherwise). See widget/README.md.
//
// Traits read (the browser never writes traits): status, heartbeat, kernel, pull_interval,
// fast_pull_interval, command_timeout, disconnect_after, thumbnail, thumbnail_label, gallery,
// title.
// Messages sent (model.send): {type:"command", command, id}, {type:"status_request", id}.
// Messages received (msg:custom): {type:"ack"|"status"|"error"|"goodbye", ...}.
// Kernel gone (see widget/README.md): the model's "comm_live_update" (ipywidgets marks every
// model dead when JupyterLab restarts the kernel), "comm:close", and the JupyterLab kernel
// connection's status (restarting / autorestarting / starting / dead) when the widget manager
// exposes it.
//
// SECURITY: every string that comes from the kernel (title, node ids, labels, file names, error
// messages, tracebacks) is rendered through textContent / setAttribute only; the DOM is built with
// createElement. Never use HTML-string APIs in the front end (a test enforces it).
import * as State from "./state.js";
import { figures } from "./figures.js";
import { h, add, num, setAttr, str } from "./view/dom.js";
import { headerView } from "./view/header.js";
import { buttonsView } from "./view/buttons.js";
import { noticeView } from "./view/notice.js";
import { progressView, currentView } from "./view/progress.js";
import { nodesView } from "./view/nodes.js";
import { dashboardView } from "./view/dashboard.js";
import { thumbnailView } from "./view/thumbnail.js";
import { galleryView } from "./view/gallery.js";
import { errorView } from "./view/error.js";

const RENDER_MIN_INTERVAL_MS = 100; // at most ~10 paints per second
const MAX_TICK_S = 0.5; // wake at least twice a second to refresh "updated x s ago"
const CONFIG_TRAITS = Object.freeze([
  "pull_interval", "fast_pull_interval", "command_timeout", "disconnect_after",
]);

function randomIdBase() {
  // Unique per view: several views of one panel share the comm (replies go to all of them).
  return 1_000_000 + Math.floor(Math.random() * 1e12);
}

function readConfig(model) {
  return {
    pullInterval: num(model.get("pull_interval")),
    fastPullInterval: num(model.get("fast_pull_interval")),
    commandTimeout: num(model.get("command_timeout")),
    disconnectAfter: num(model.get("disconnect_after")),
    backend: model.get("backend"), // only the web page's model has it ("server")
    resumable: model.get("resumable"),
  };
}

/** All views, in page order; `paint(st, now)` brings every one up to date. */
function buildViews(doc, onClick) {
  const v = {
    header: headerView(doc),
    buttons: buttonsView(doc, onClick),
    notice: noticeView(doc),
    progress: progressView(doc),
    current: currentView(doc),
    dashboard: dashboardView(doc),
    nodes: nodesView(doc),
    thumbnail: thumbnailView(doc),
    gallery: galleryView(doc),
    error: errorView(doc),
  };
  v.root = h(doc, "div", "chainlib-panel");
  for (const part of [v.header, v.buttons, v.notice, v.progress, v.current, v.dashboard]) {
    add(v.root, part.root);
  }
  const body = add(v.root, h(doc, "div", "chainlib-body"));
  add(body, v.nodes.root);
  add(body, v.thumbnail.root);
  add(v.root, v.gallery.root);
  add(v.root, v.error.root);
  return v;
}

function paintViews(v, st, { title, now }) {
  const snap = st.snapshot || {};
  const fig = figures(st.ui, snap);
  setAttr(v.root, "data-state", st.ui);
  // an attached run's server that closed is what is gone, not the notebook's kernel
  const gone = st.ended && st.ended.cause === "server" ? "server" : st.config.backend;
  v.header.paint({ titleText: title, ui: st.ui, age: now - st.lastContact, backend: gone });
  v.buttons.paint(st);
  v.notice.paint(st.notice);
  v.progress.paint(snap, fig);
  v.current.paint(snap, fig);
  v.dashboard.paint(snap);
  v.nodes.paint(snap, fig);
  v.error.paint(snap);
}

/** Call `onGone(cause)` when JupyterLab reports that the panel's kernel process is gone. */
function watchKernelStatus(model, onGone) {
  let kernel = null;
  try {
    kernel = model.widget_manager ? model.widget_manager.kernel : null;
  } catch (_) {
    kernel = null; // a widget manager without a kernel (e.g. a static page)
  }
  const signal = kernel && kernel.statusChanged;
  if (!signal || typeof signal.connect !== "function") return () => {};
  const slot = (_sender, status) => {
    const gone = State.kernelGone(status);
    if (gone) onGone(gone);
  };
  signal.connect(slot);
  return () => signal.disconnect(slot);
}

function render({ model, el }) {
  const doc = el.ownerDocument || globalThis.document;
  const win = doc.defaultView || globalThis;
  const perf = win.performance || globalThis.performance;
  const clock = () => perf.now() / 1000;

  let st = State.initial(readConfig(model), clock(), { idBase: randomIdBase() });
  let disposed = false;
  let tickTimer = null;
  let renderTimer = null;
  let lastPaint = -Infinity;
  const offs = [];

  const views = buildViews(doc, (button) => dispatch({ type: "click", button }));
  el.appendChild(views.root);

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
    const delay = Math.min(MAX_TICK_S, Math.max(0, State.nextWakeup(st) - clock()));
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

  function paint() {
    if (disposed) return;
    lastPaint = clock() * 1000;
    paintViews(views, st, { title: str(model.get("title")), now: clock() });
  }

  function requestPaint() {
    if (disposed || renderTimer !== null) return;
    const wait = Math.max(0, RENDER_MIN_INTERVAL_MS - (clock() * 1000 - lastPaint));
    renderTimer = setTimeout(() => {
      renderTimer = null;
      paint();
    }, wait);
  }

  const paintThumbnail = () => {
    views.thumbnail.paintImage(model.get("thumbnail"));
    views.thumbnail.paintLabel(str(model.get("thumbnail_label")));
  };

  // --- model
  const on = (name, cb) => {
    model.on(name, cb);
    offs.push(() => model.off(name, cb));
  };
  on("change:status", () => dispatch({ type: "snapshot", status: model.get("status") }));
  on("change:heartbeat", () => dispatch({ type: "heartbeat", value: model.get("heartbeat") }));
  on("change:kernel", () => dispatch({ type: "kernel", value: model.get("kernel") }));
  on("comm_live_update", () => dispatch({ type: "ended", cause: "restarted" }));
  on("comm:close", () => dispatch({ type: "ended", cause: "closed" }));
  offs.push(watchKernelStatus(model, (cause) => dispatch({ type: "ended", cause })));
  for (const t of CONFIG_TRAITS) {
    on(`change:${t}`, () => dispatch({ type: "config", config: readConfig(model) }));
  }
  on("change:title", requestPaint);
  on("change:thumbnail", paintThumbnail);
  on("change:thumbnail_label", () => views.thumbnail.paintLabel(str(model.get("thumbnail_label"))));
  on("change:gallery", () => views.gallery.paint(model.get("gallery")));
  on("msg:custom", (msg) => dispatch({ type: "message", msg }));

  // --- page
  const onVisibility = () => {
    if (doc.visibilityState === "visible") dispatch({ type: "visible" });
  };
  const onOnline = () => dispatch({ type: "online" });
  doc.addEventListener("visibilitychange", onVisibility);
  win.addEventListener("online", onOnline);

  // --- start: send the initial pull, feed the current trait values, paint now
  flush();
  dispatch({ type: "snapshot", status: model.get("status") });
  dispatch({ type: "kernel", value: model.get("kernel") });
  paintThumbnail();
  views.gallery.paint(model.get("gallery"));
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
    views.buttons.dispose();
    views.thumbnail.dispose();
    views.gallery.dispose();
    doc.removeEventListener("visibilitychange", onVisibility);
    win.removeEventListener("online", onOnline);
    views.root.remove();
  };
}

export default { render };
