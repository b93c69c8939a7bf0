// The newest output's thumbnail (bytes from the `thumbnail` trait, shown through a blob: URL).
import { h, add, setHidden, setText } from "./dom.js";

export function toBytes(v) {
  if (!v) return null;
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

export function sniffImageType(b) {
  const at = (i, x) => b.length > i && b[i] === x;
  if (at(0, 0x89) && at(1, 0x50) && at(2, 0x4e) && at(3, 0x47)) return "image/png";
  if (at(0, 0xff) && at(1, 0xd8) && at(2, 0xff)) return "image/jpeg";
  if (at(0, 0x47) && at(1, 0x49) && at(2, 0x46)) return "image/gif";
  if (b.length >= 12 && at(0, 0x52) && at(8, 0x57) && at(9, 0x45) && at(10, 0x42)) return "image/webp";
  return "application/octet-stream";
}

export function thumbnailView(doc) {
  const root = h(doc, "figure", "chainlib-thumb");
  root.hidden = true;
  const img = add(root, h(doc, "img", "chainlib-thumb-img", "thumbnail"));
  img.setAttribute("alt", "latest output");
  const caption = add(root, h(doc, "figcaption", "chainlib-thumb-label", "thumbnail-label"));
  let url = null;

  function revoke() {
    if (url) URL.revokeObjectURL(url);
    url = null;
  }

  return {
    root,
    /** `value`: the `thumbnail` trait (DataView / bytes; empty = none). */
    paintImage(value) {
      const bytes = toBytes(value);
      const old = url;
      url = null;
      if (bytes && bytes.byteLength > 0) {
        // copy: the DataView may be a view on a buffer that anywidget reuses
        url = URL.createObjectURL(new Blob([bytes.slice()], { type: sniffImageType(bytes) }));
        img.setAttribute("src", url);
      } else {
        img.removeAttribute("src");
      }
      setHidden(root, url === null);
      if (old) URL.revokeObjectURL(old);
    },
    paintLabel(label) {
      setText(caption, label);
      img.setAttribute("alt", label || "latest output");
    },
    dispose: revoke,
  };
}
