// DOM helpers shared by the views. Only createElement / textContent / setAttribute: every string
// from the kernel is untrusted and must never be parsed as HTML.

/** A new element with an optional class and `data-testid` (the e2e tests find elements by it). */
export function h(doc, tag, cls, testid) {
  const e = doc.createElement(tag);
  if (cls) e.className = cls;
  if (testid) e.setAttribute("data-testid", testid);
  return e;
}

export function add(parent, child) {
  parent.appendChild(child);
  return child;
}

export function button(doc, cls, testid, label) {
  const b = h(doc, "button", `chainlib-button ${cls}`, testid);
  b.type = "button";
  b.textContent = label;
  return b;
}

// The setters write only on change: painting runs up to 10 times a second.
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function setAttr(node, name, value) {
  if (value === null) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== value) {
    node.setAttribute(name, value);
  }
}

export function setDisabled(btn, disabled) {
  if (btn.disabled !== disabled) btn.disabled = disabled;
  setAttr(btn, "disabled", disabled ? "" : null);
}

export function setHidden(node, hidden) {
  if (node.hidden !== hidden) node.hidden = hidden;
}

/** A finite number, else undefined (kernel data is checked, never trusted). */
export function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

export function str(v) {
  return v === null || v === undefined ? "" : String(v);
}
