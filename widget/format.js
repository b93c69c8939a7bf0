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

export function formatDuration(s) {
  if (!finite(s) || s < 0) return "—";
  if (s < 10) return `${(Math.floor(s * 10) / 10).toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const total = Math.floor(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  return h > 0 ? `${h}:${pad2(m)}:${pad2(sec)}` : `${m}:${pad2(sec)}`;
}

export function formatEta(s) {
  return `ETA ${formatDuration(s)}`;
}

export function formatMean(s) {
  if (!finite(s) || s < 0) return "—";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  return formatDuration(s);
}

export function formatRate(r) {
  if (!finite(r) || r < 0) return "—";
  if (r < 1) return `${r.toFixed(2)} items/s`;
  if (r < 100) return `${r.toFixed(1)} items/s`;
  return `${Math.round(r)} items/s`;
}

export function progressFraction(done, failed, total) {
  if (!finite(total) || total <= 0) return null;
  const n = (finite(done) ? done : 0) + (finite(failed) ? failed : 0);
  return Math.min(1, Math.max(0, n / total));
}

export function formatProgress(done, failed, total) {
  const d = finite(done) ? done : 0;
  const t = finite(total) ? String(total) : "?";
  const f = finite(failed) && failed > 0 ? ` · ${failed} failed` : "";
  return `${d} / ${t}${f}`;
}

export function formatAge(s) {
  if (!finite(s)) return "—";
  const a = Math.max(0, s);
  if (a < 10) return `${a.toFixed(1)} s`;
  if (a < 60) return `${Math.floor(a)} s`;
  return formatDuration(a);
}

/** `backend`: "kernel" | "server", who is waited for. */
export function connectionText(age, connected, backend = "kernel") {
  if (!finite(age)) return connected ? `waiting for the ${backend}…` : "connection lost";
  return connected
    ? `updated ${formatAge(age)} ago`
    : `connection lost — last update ${formatAge(age)} ago`;
}
