// The newest finished items (the `gallery` trait, newest first): before -> after thumbnails, or
// the output alone, each labelled with its item's name. Images come as bytes (DataView) and are
// shown through blob: URLs, revoked when the next update replaces them. Labels are text only.
import { h, add, setHidden, str } from "./dom.js";
import { toBytes, sniffImageType } from "./thumbnail.js";

export const MAX_TILES = 8; // the kernel sends 4; more from a misbehaving kernel are not drawn

export function galleryView(doc) {
  const root = h(doc, "div", "chainlib-gallery", "gallery");
  root.setAttribute("role", "region");
  root.setAttribute("aria-label", "newest outputs");
  root.hidden = true;
  let urls = [];

  function image(value, cls, alt, fresh) {
    const bytes = toBytes(value);
    if (!bytes || bytes.byteLength === 0) return null;
    // copy: the DataView may be a view on a buffer that anywidget reuses
    const url = URL.createObjectURL(new Blob([bytes.slice()], { type: sniffImageType(bytes) }));
    fresh.push(url);
    const img = h(doc, "img", `chainlib-gallery-img ${cls}`, `gallery-${cls}`);
    img.setAttribute("src", url);
    img.setAttribute("alt", alt);
    return img;
  }

  function revoke(list) {
    for (const url of list) URL.revokeObjectURL(url);
  }

  return {
    root,
    /** `tiles`: the `gallery` trait, `[{label, after, before}]` (bytes; `before` may be null). */
    paint(tiles) {
      const fresh = [];
      const items = [];
      for (const tile of Array.isArray(tiles) ? tiles.slice(0, MAX_TILES) : []) {
        if (!tile || typeof tile !== "object") continue;
        const label = str(tile.label);
        const after = image(tile.after, "after", label ? `${label} (output)` : "output", fresh);
        if (!after) continue;
        const item = h(doc, "figure", "chainlib-gallery-item", "gallery-item");
        const pair = add(item, h(doc, "div", "chainlib-gallery-pair"));
        const before = image(tile.before, "before", label ? `${label} (input)` : "input", fresh);
        if (before) {
          add(pair, before);
          add(pair, h(doc, "span", "chainlib-gallery-arrow")).textContent = "→";
        }
        add(pair, after);
        add(item, h(doc, "figcaption", "chainlib-gallery-label", "gallery-label")).textContent = label;
        items.push(item);
      }
      for (const old of [...root.children]) old.remove(); // a copy: `children` is live
      for (const item of items) add(root, item);
      setHidden(root, items.length === 0);
      revoke(urls); // after the new images are in place: no flash of a broken image
      urls = fresh;
    },
    dispose() {
      revoke(urls);
      urls = [];
    },
  };
}
