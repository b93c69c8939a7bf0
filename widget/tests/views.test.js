import { test } from "node:test";
import assert from "node:assert/strict";
import { makeDocument } from "./fakedom.js";
import { nodesView, timeShares } from "../view/nodes.js";
import { dashboardView, safeDashboardUrl } from "../view/dashboard.js";
import { galleryView, MAX_TILES } from "../view/gallery.js";

const node = (total_s, extra = {}) => ({ state: "done", count: 1, running: 0, total_s, mean_s: total_s, progress: null, ...extra });

test("time shares: each node's fraction of the time spent in nodes", () => {
  assert.deepEqual(timeShares({ a: node(1), b: node(3) }), { a: 0.25, b: 0.75 });
  assert.deepEqual(timeShares({ a: node(0), b: node(0) }), { a: 0, b: 0 });
  assert.deepEqual(timeShares({ a: node(-5), b: node(NaN), c: "junk", d: node(2) }), { a: 0, b: 0, c: 0, d: 1 });
  assert.deepEqual(timeShares(undefined), {});
});

test("the node table draws a share bar per node, widest for the slowest", () => {
  const { doc } = makeDocument();
  const view = nodesView(doc);
  view.paint({ nodes: { load: node(1), "<b>slow</b>": node(3) } }, { inFlight: "none" });
  const rows = view.root.all((e) => e.tagName === "TR" && e.hasAttribute("data-node"));
  const fills = rows.map((r) => r.all((e) => e.className === "chainlib-timebar-fill")[0].style.width);
  const texts = rows.map((r) => r.all((e) => e.className === "chainlib-timebar-text")[0].textContent);
  assert.deepEqual(fills, ["25.0%", "75.0%"]);
  assert.deepEqual(texts, ["25%", "75%"]);
  assert.equal(rows[1].getAttribute("data-slowest"), "true");
  // each bar is a meter named after its node (the name and the value for assistive tech)
  const bars = rows.map((r) => r.all((e) => e.getAttribute("data-testid") === "timebar")[0]);
  assert.deepEqual(bars.map((b) => b.getAttribute("role")), ["meter", "meter"]);
  assert.deepEqual(bars.map((b) => b.getAttribute("aria-label")),
    ["load: 25% of the time spent in nodes", "<b>slow</b>: 75% of the time spent in nodes"]);
  assert.deepEqual(bars.map((b) => b.getAttribute("aria-valuenow")), ["25", "75"]);
  assert.equal(doc.created.filter((e) => e.tagName === "B").length, 0); // node ids are text
  view.paint({ nodes: { load: node(2), "<b>slow</b>": node(2) } }, { inFlight: "none" });
  assert.deepEqual(rows.map((r) => r.all((e) => e.className === "chainlib-timebar-fill")[0].style.width), ["50.0%", "50.0%"]);
  assert.deepEqual(bars.map((b) => b.getAttribute("aria-valuenow")), ["50", "50"]);
});

test("dashboard link: only http(s) URLs, as an attribute and text, hidden otherwise", () => {
  assert.equal(safeDashboardUrl("http://127.0.0.1:8787/status"), "http://127.0.0.1:8787/status");
  assert.equal(safeDashboardUrl("https://dask.example/status"), "https://dask.example/status");
  for (const bad of ["javascript:alert(1)", "data:text/html,x", "//evil", "http://a b", 42, null, undefined]) {
    assert.equal(safeDashboardUrl(bad), null, String(bad));
  }
  const { doc } = makeDocument();
  const view = dashboardView(doc);
  const link = view.root.all((e) => e.tagName === "A")[0];
  view.paint({});
  assert.equal(view.root.hidden, true);
  view.paint({ dashboard: "http://127.0.0.1:8787/status" });
  assert.equal(view.root.hidden, false);
  assert.equal(link.getAttribute("href"), "http://127.0.0.1:8787/status");
  assert.equal(link.textContent, "http://127.0.0.1:8787/status");
  assert.equal(link.getAttribute("rel"), "noopener noreferrer");
  view.paint({ dashboard: "javascript:alert(1)" });
  assert.equal(view.root.hidden, true);
  assert.equal(link.hasAttribute("href"), false);
});

test("gallery: before -> after pairs from bytes, labels as text, old blob: URLs revoked", () => {
  const made = [];
  const revoked = [];
  const { createObjectURL, revokeObjectURL } = URL;
  URL.createObjectURL = (blob) => {
    const url = `blob:test/${made.length}`;
    made.push({ url, type: blob.type, size: blob.size });
    return url;
  };
  URL.revokeObjectURL = (url) => revoked.push(url);
  try {
    const { doc } = makeDocument();
    const view = galleryView(doc);
    const jpeg = (n) => new DataView(new Uint8Array([0xff, 0xd8, 0xff, ...Array(n).fill(1)]).buffer);
    view.paint([]);
    assert.equal(view.root.hidden, true);
    view.paint([
      { label: "<img src=x onerror=alert(1)>.png", before: jpeg(3), after: jpeg(4) },
      { label: "b.png", before: null, after: jpeg(5) },
      { label: "no image", before: jpeg(1), after: null }, // nothing to show: left out
      "junk",
    ]);
    assert.equal(view.root.hidden, false);
    const items = view.root.all((e) => e.getAttribute("data-testid") === "gallery-item");
    assert.equal(items.length, 2);
    const imgs = (item, role) => item.all((e) => e.getAttribute("data-testid") === `gallery-${role}`);
    assert.equal(imgs(items[0], "before").length, 1);
    assert.equal(imgs(items[1], "before").length, 0); // the output alone
    assert.equal(imgs(items[0], "after")[0].getAttribute("src"), made[0].url);
    assert.equal(imgs(items[0], "before")[0].getAttribute("src"), made[1].url);
    assert.deepEqual(made.map((m) => [m.type, m.size]), [["image/jpeg", 7], ["image/jpeg", 6], ["image/jpeg", 8]]);
    const labels = view.root.all((e) => e.getAttribute("data-testid") === "gallery-label");
    assert.deepEqual(labels.map((l) => l.textContent), ["<img src=x onerror=alert(1)>.png", "b.png"]);
    assert.equal(doc.created.filter((e) => e.tagName === "IMG").length, 3); // the label made none
    assert.deepEqual(revoked, []);
    const first = made.map((m) => m.url);
    view.paint([{ label: "c.png", after: jpeg(2) }]);
    assert.deepEqual(revoked, first); // replaced images free their URLs
    assert.equal(view.root.all((e) => e.getAttribute("data-testid") === "gallery-item").length, 1);
    view.paint(Array.from({ length: 20 }, (_, i) => ({ label: `x${i}`, after: jpeg(1) })));
    assert.equal(view.root.all((e) => e.getAttribute("data-testid") === "gallery-item").length, MAX_TILES);
    view.dispose();
    assert.equal(revoked.length, made.length); // every URL made is revoked in the end
  } finally {
    Object.assign(URL, { createObjectURL, revokeObjectURL });
  }
});
