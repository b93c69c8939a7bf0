// The per-node table: state, count, mean / total time, a bar of each node's share of the time
// (where the time goes), items in flight; the slowest node marked.
import { h, add, num, setAttr, setText } from "./dom.js";
import { formatDuration, formatMean } from "../format.js";
import { nodeStateText } from "../figures.js";

const COLUMNS = Object.freeze(["Node", "State", "Count", "Mean", "Total", "Running", "Share"]);

/** Each node's share of the time spent in all nodes, 0..1 (all 0 before any time is spent). */
export function timeShares(nodes) {
  const totals = {};
  let sum = 0;
  for (const [id, n] of Object.entries(nodes || {})) {
    const t = n && typeof n === "object" ? Math.max(0, num(n.total_s) ?? 0) : 0;
    totals[id] = t;
    sum += t;
  }
  const shares = {};
  for (const [id, t] of Object.entries(totals)) shares[id] = sum > 0 ? t / sum : 0;
  return shares;
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

const IN_FLIGHT_MARK = Object.freeze({ running: "●", parked: "‖" });

/** Items in flight: "● 2 (80%)" running, "‖ 2 (80%)" parked at a checkpoint, "" none. */
function inFlightText(running, progress, inFlight) {
  if (running <= 0 || !IN_FLIGHT_MARK[inFlight]) return "";
  const pct = progress !== undefined ? ` (${Math.round(progress * 100)}%)` : "";
  return `${IN_FLIGHT_MARK[inFlight]} ${running}${pct}`;
}

export function nodesView(doc) {
  const root = h(doc, "table", "chainlib-nodes", "nodes");
  const headRow = add(add(root, h(doc, "thead")), h(doc, "tr"));
  for (const name of COLUMNS) add(headRow, h(doc, "th")).textContent = name;
  const tbody = add(root, h(doc, "tbody"));
  const rows = new Map(); // node id -> {tr, cells}; rows are reused across paints

  function rowFor(id) {
    let row = rows.get(id);
    if (!row) {
      const tr = h(doc, "tr", "chainlib-node-row");
      const cells = COLUMNS.map(() => add(tr, h(doc, "td")));
      cells[0].className = "chainlib-node-id";
      // a meter named after its node, so assistive tech (and tests, by role) can read it
      const bar = add(cells[6], h(doc, "span", "chainlib-timebar", "timebar"));
      bar.setAttribute("role", "meter");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      const fill = add(bar, h(doc, "span", "chainlib-timebar-fill"));
      const pct = add(cells[6], h(doc, "span", "chainlib-timebar-text"));
      row = { tr, cells, bar, fill, pct };
      rows.set(id, row);
    }
    return row;
  }

  function paintRow(row, id, n, slowest, inFlight, share) {
    const running = inFlight === "running" ? (num(n.running) ?? 0) : 0;
    const [name, state, count, mean, total, flight, shareCell] = row.cells;
    const width = `${(share * 100).toFixed(1)}%`;
    if (row.fill.style.width !== width) row.fill.style.width = width;
    const pctText = `${Math.round(share * 100)}%`;
    const said = `${id}: ${pctText} of the time spent in nodes`;
    setText(row.pct, pctText);
    setAttr(shareCell, "title", said);
    setAttr(row.bar, "aria-label", said);
    setAttr(row.bar, "aria-valuenow", String(Math.round(share * 100)));
    setText(name, id);
    setText(state, nodeStateText(n.state, inFlight));
    setText(count, String(num(n.count) ?? 0));
    setText(mean, formatMean(num(n.mean_s)));
    setText(total, formatDuration(num(n.total_s)));
    setText(flight, inFlightText(num(n.running) ?? 0, num(n.progress), inFlight));
    setAttr(row.tr, "data-node", id);
    setAttr(row.tr, "data-running", running > 0 ? "true" : null);
    setAttr(row.tr, "data-slowest", slowest ? "true" : null);
    row.tr.classList.toggle("chainlib-slowest", slowest);
    row.tr.classList.toggle("chainlib-running", running > 0);
  }

  return {
    root,
    /** `snap`: the newest accepted snapshot ({} before any); `fig`: figures.js's verdict. */
    paint(snap, fig) {
      const nodes = snap.nodes && typeof snap.nodes === "object" ? snap.nodes : {};
      const slow = slowestNode(nodes);
      const shares = timeShares(nodes);
      const ids = Object.keys(nodes);
      ids.forEach((id, i) => {
        const row = rowFor(id);
        if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
        const n = nodes[id] && typeof nodes[id] === "object" ? nodes[id] : {};
        paintRow(row, id, n, id === slow, fig.inFlight, shares[id]);
      });
      const seen = new Set(ids);
      for (const [id, row] of rows) {
        if (!seen.has(id)) {
          row.tr.remove();
          rows.delete(id);
        }
      }
    },
  };
}
