// The one notice line (role=status, so screen readers announce it).
import { h, setAttr, setHidden, setText } from "./dom.js";

export function noticeView(doc) {
  const root = h(doc, "div", "chainlib-notice", "notice");
  root.setAttribute("role", "status");
  return {
    root,
    /** `notice`: null | {level, text} (state.js's State.notice). */
    paint(notice) {
      setText(root, notice ? notice.text : "");
      setAttr(root, "data-level", notice ? notice.level : null);
      setHidden(root, !notice);
    },
  };
}
