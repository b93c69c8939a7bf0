// Header: title, state badge, connection age.
import { h, add, setAttr, setText } from "./dom.js";
import { connectionText, formatAge } from "../format.js";

const INTERMEDIATE_UI = Object.freeze(["starting", "pausing", "resuming", "stopping"]);
const OFFLINE_UI = Object.freeze(["disconnected", "reconnecting", "ended"]);

/** The connection line: how fresh the figures are, and why not when they are not. */
export function connectionLine(ui, age) {
  const last = Number.isFinite(age) ? ` — last update ${formatAge(age)} ago` : "";
  if (ui === "reconnecting") return `reconnecting — asking the kernel for its status${last}`;
  if (ui === "ended") return `the kernel is gone${last}`;
  return connectionText(age, ui !== "disconnected");
}

export function headerView(doc) {
  const root = h(doc, "div", "chainlib-header");
  const title = add(root, h(doc, "span", "chainlib-title", "title"));
  const badge = add(root, h(doc, "span", "chainlib-badge", "state"));
  const connection = add(root, h(doc, "span", "chainlib-connection", "connection"));
  return {
    root,
    /** `ui`: front-end state name; `age`: seconds since the kernel was last heard. */
    paint({ titleText, ui, age }) {
      setText(title, titleText || "chainlib");
      setText(badge, ui);
      setAttr(badge, "data-state", ui);
      setAttr(badge, "data-intermediate", INTERMEDIATE_UI.includes(ui) ? "true" : null);
      setText(connection, connectionLine(ui, age));
      connection.classList.toggle("chainlib-warn", OFFLINE_UI.includes(ui));
    },
  };
}
