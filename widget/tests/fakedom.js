// A tiny fake DOM, just enough for widget/panel.js (no npm packages available).
class Node {
  constructor(doc) {
    this.ownerDocument = doc;
    this.parentNode = null;
    this.childNodes = [];
  }
  get children() {
    return this.childNodes.filter((c) => c instanceof Element);
  }
  appendChild(c) {
    return this.insertBefore(c, null);
  }
  insertBefore(c, ref) {
    if (c.parentNode) c.parentNode._detach(c);
    const i = ref ? this.childNodes.indexOf(ref) : -1;
    if (i < 0) this.childNodes.push(c);
    else this.childNodes.splice(i, 0, c);
    c.parentNode = this;
    return c;
  }
  _detach(c) {
    this.childNodes = this.childNodes.filter((x) => x !== c);
    c.parentNode = null;
  }
  remove() {
    if (this.parentNode) this.parentNode._detach(this);
  }
  get textContent() {
    return this.childNodes.map((c) => c.textContent).join("");
  }
  set textContent(v) {
    for (const c of this.childNodes) c.parentNode = null;
    this.childNodes = [];
    const s = String(v);
    if (s) this.appendChild(new Text(this.ownerDocument, s));
  }
}

class Text extends Node {
  constructor(doc, data) {
    super(doc);
    this.data = String(data);
  }
  get textContent() {
    return this.data;
  }
  set textContent(v) {
    this.data = String(v);
  }
}

class ClassList {
  constructor(el) {
    this.el = el;
  }
  _get() {
    return this.el.className.split(/\s+/).filter(Boolean);
  }
  contains(c) {
    return this._get().includes(c);
  }
  toggle(c, force) {
    const set = new Set(this._get());
    const on = force === undefined ? !set.has(c) : !!force;
    if (on) set.add(c);
    else set.delete(c);
    this.el.className = [...set].join(" ");
    return on;
  }
}

class Element extends Node {
  constructor(doc, tag) {
    super(doc);
    this.tagName = tag.toUpperCase();
    this.attributes = new Map();
    this.style = {};
    this.listeners = {};
    this.classList = new ClassList(this);
    this.className = "";
    this.hidden = false;
    this._disabled = false;
  }
  get disabled() {
    return this._disabled;
  }
  set disabled(v) {
    this._disabled = !!v;
    if (v) this.attributes.set("disabled", "");
    else this.attributes.delete("disabled");
  }
  set type(v) {
    this.attributes.set("type", v);
  }
  setAttribute(n, v) {
    if (n === "disabled") this._disabled = true;
    this.attributes.set(n, String(v));
  }
  getAttribute(n) {
    return this.attributes.has(n) ? this.attributes.get(n) : null;
  }
  hasAttribute(n) {
    return this.attributes.has(n);
  }
  removeAttribute(n) {
    if (n === "disabled") this._disabled = false;
    this.attributes.delete(n);
  }
  addEventListener(t, f) {
    (this.listeners[t] ||= new Set()).add(f);
  }
  removeEventListener(t, f) {
    this.listeners[t]?.delete(f);
  }
  click() {
    if (this._disabled) return;
    for (const f of this.listeners.click || []) f({ type: "click" });
  }
  find(testid) {
    if (this.getAttribute("data-testid") === testid) return this;
    for (const c of this.children) {
      const r = c.find(testid);
      if (r) return r;
    }
    return null;
  }
  all(pred, out = []) {
    if (pred(this)) out.push(this);
    for (const c of this.children) c.all(pred, out);
    return out;
  }
  // HTML-string APIs deliberately throw: panel.js must never use them.
  set innerHTML(_v) {
    throw new Error("innerHTML used");
  }
  set outerHTML(_v) {
    throw new Error("outerHTML used");
  }
  insertAdjacentHTML() {
    throw new Error("insertAdjacentHTML used");
  }
}

export function makeDocument() {
  const listeners = {};
  const win = {
    performance: globalThis.performance,
    addEventListener(t, f) {
      (listeners[`win:${t}`] ||= new Set()).add(f);
    },
    removeEventListener(t, f) {
      listeners[`win:${t}`]?.delete(f);
    },
    fire(t) {
      for (const f of listeners[`win:${t}`] || []) f({ type: t });
    },
  };
  const doc = {
    created: [],
    visibilityState: "visible",
    defaultView: win,
    createElement(tag) {
      const e = new Element(doc, tag);
      doc.created.push(e);
      return e;
    },
    createTextNode(s) {
      return new Text(doc, s);
    },
    addEventListener(t, f) {
      (listeners[`doc:${t}`] ||= new Set()).add(f);
    },
    removeEventListener(t, f) {
      listeners[`doc:${t}`]?.delete(f);
    },
    fire(t) {
      for (const f of listeners[`doc:${t}`] || []) f({ type: t });
    },
    listenerCount() {
      return Object.values(listeners).reduce((n, s) => n + s.size, 0);
    },
  };
  return { doc, win };
}

/** A Lumino-like signal (JupyterLab's kernel.statusChanged): connect / disconnect / emit. */
export function makeSignal() {
  const slots = new Set();
  return {
    connect(fn) {
      slots.add(fn);
      return true;
    },
    disconnect(fn) {
      return slots.delete(fn);
    },
    emit(value) {
      for (const fn of [...slots]) fn(null, value);
    },
    count() {
      return slots.size;
    },
  };
}

export function makeModel(values, widgetManager = undefined) {
  const handlers = new Map();
  return {
    values,
    widget_manager: widgetManager,
    sent: [],
    get(k) {
      return values[k];
    },
    set(k, v) {
      values[k] = v;
      this.fire(`change:${k}`);
    },
    on(name, cb) {
      if (!handlers.has(name)) handlers.set(name, new Set());
      handlers.get(name).add(cb);
    },
    off(name, cb) {
      handlers.get(name)?.delete(cb);
    },
    fire(name, ...args) {
      for (const cb of handlers.get(name) || []) cb(...args);
    },
    send(msg) {
      this.sent.push(msg);
    },
    handlerCount() {
      return [...handlers.values()].reduce((n, s) => n + s.size, 0);
    },
  };
}
