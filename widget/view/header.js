// Header: title, state badge, connection age.
import { h, add, setAttr, setText } from "./dom.js";
import { connectionText } from "../format.js";

const INTERMEDIATE_UI = Object.freeze(["starting", "pausing", "resuming", "stopping"]);

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
      const connected = ui !== "disconnected";
      setText(connection, connectionText(age, connected));
      connection.classList.toggle("chainlib-warn", !connected);
    },
  };
}
