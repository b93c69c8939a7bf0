// Header: title, state badge, connection age.
import { h, add, setAttr, setText } from "./dom.js";
import { connectionText, formatAge } from "../format.js";

const INTERMEDIATE_UI = Object.freeze(["starting", "pausing", "resuming", "stopping"]);
const OFFLINE_UI = Object.freeze(["disconnected", "reconnecting", "ended"]);

/** The connection line: how fresh the figures are, and why not when they are not. */
/** `backend`: "kernel" | "server" (the web page's), the noun of every line about it. */
export function connectionLine(ui, age, backend = "kernel") {
  const last = Number.isFinite(age) ? ` — last update ${formatAge(age)} ago` : "";
  if (ui === "reconnecting") return `reconnecting — asking the ${backend} for its status${last}`;
  if (ui === "ended") return `the ${backend} is gone${last}`;
  return connectionText(age, ui !== "disconnected", backend);
}

export function headerView(doc) {
  const root = h(doc, "div", "chainlib-header");
  const title = add(root, h(doc, "span", "chainlib-title", "title"));
  const badge = add(root, h(doc, "span", "chainlib-badge", "state"));
  const connection = add(root, h(doc, "span", "chainlib-connection", "connection"));
  return {
    root,
    /** `ui`: front-end state name; `age`: seconds since the backend was last heard. */
    paint({ titleText, ui, age, backend }) {
      setText(title, titleText || "chainlib");
      setText(badge, ui);
      setAttr(badge, "data-state", ui);
      setAttr(badge, "data-intermediate", INTERMEDIATE_UI.includes(ui) ? "true" : null);
      setText(connection, connectionLine(ui, age, backend));
      connection.classList.toggle("chainlib-warn", OFFLINE_UI.includes(ui));
    },
  };
}
