// The run's last error: where (node, item) and what, with the traceback folded.
import { h, add, setHidden, setText, str } from "./dom.js";

function present(v) {
  return v !== null && v !== undefined && v !== "";
}

export function errorText(err) {
  let where = `Error in node ${str(err.node)}`;
  if (present(err.label)) where += ` (item ${str(err.label)})`;
  else if (err.item !== null && err.item !== undefined) where += ` (item #${str(err.item)})`;
  return `${where}: ${str(err.message)}`;
}

export function errorView(doc) {
  const root = h(doc, "div", "chainlib-error", "error");
  root.hidden = true;
  const text = add(root, h(doc, "div", "chainlib-error-text"));
  const details = add(root, h(doc, "details", "chainlib-traceback"));
  add(details, h(doc, "summary")).textContent = "Traceback";
  const traceback = add(details, h(doc, "pre"));
  return {
    root,
    paint(snap) {
      const err = snap.error && typeof snap.error === "object" ? snap.error : null;
      setHidden(root, !err);
      if (!err) return;
      setText(text, errorText(err));
      setText(traceback, str(err.traceback));
      setHidden(details, !err.traceback);
    },
  };
}
