// The Dask dashboard link of a run on a cluster (the snapshot's `dashboard`), hidden otherwise.
import { h, add, setAttr, setHidden, setText } from "./dom.js";

/** The link when it is an absolute http(s) URL, else null: never a javascript: or data: URL. */
export function safeDashboardUrl(url) {
  if (typeof url !== "string") return null;
  return /^https?:\/\/[^\s]+$/i.test(url) ? url : null;
}

export function dashboardView(doc) {
  const root = h(doc, "div", "chainlib-dashboard", "dashboard");
  add(root, h(doc, "span", "chainlib-label")).textContent = "Dask dashboard: ";
  const link = add(root, h(doc, "a", "chainlib-dashboard-link", "dashboard-link"));
  setAttr(link, "target", "_blank");
  setAttr(link, "rel", "noopener noreferrer");
  setHidden(root, true);
  return {
    root,
    /** `snap`: the newest accepted snapshot ({} before any). */
    paint(snap) {
      const url = safeDashboardUrl(snap.dashboard);
      setHidden(root, url === null);
      setAttr(link, "href", url);
      setText(link, url || "");
    },
  };
}
