// Inline widget/state.js and widget/format.js into widget/panel.js (between the GENERATED markers).
//
// anywidget loads `_esm` from a Blob URL, where relative imports cannot resolve, so panel.js must be
// self-contained. state.js / format.js stay the tested sources of truth; run
//     node widget/build.mjs
// after editing them. widget/tests/panel.test.js fails if panel.js is out of date.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const BEGIN = "// ---- BEGIN GENERATED (node widget/build.mjs) — do not edit by hand ----";
export const END = "// ---- END GENERATED ----";

const here = dirname(fileURLToPath(import.meta.url));

function inlineModule(name, source) {
  const names = [];
  const body = source.replace(/^export (function|const|class) ([A-Za-z_$][\w$]*)/gm, (_m, kind, id) => {
    names.push(id);
    return `${kind} ${id}`;
  });
  if (/^\s*(import|export)\b/m.test(body)) throw new Error(`${name}: unsupported import/export`);
  const indented = body.trimEnd().split("\n").map((l) => (l ? `  ${l}` : l)).join("\n");
  return `const ${name} = (() => {\n${indented}\n  return Object.freeze({ ${names.join(", ")} });\n})();`;
}

export function generatedBlock(dir = here) {
  const state = readFileSync(join(dir, "state.js"), "utf8");
  const format = readFileSync(join(dir, "format.js"), "utf8");
  return [BEGIN, inlineModule("State", state), "", inlineModule("Format", format), END].join("\n");
}

export function build(panelSource, dir = here) {
  const a = panelSource.indexOf(BEGIN);
  const b = panelSource.indexOf(END);
  if (a < 0 || b < a) throw new Error("panel.js: GENERATED markers not found");
  return panelSource.slice(0, a) + generatedBlock(dir) + panelSource.slice(b + END.length);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const path = join(here, "panel.js");
  const before = readFileSync(path, "utf8");
  const after = build(before);
  if (after !== before) writeFileSync(path, after);
  console.log(after !== before ? "panel.js updated" : "panel.js already up to date");
}
