"""Build the control panel's front end into the one ES module anywidget loads.

anywidget hands ``_esm`` to the browser as a single module (from a Blob URL), where relative
imports cannot resolve. The sources in ``widget/`` are plain ES modules that ``node --test``
imports directly; this module concatenates an entry module and everything it imports into one
module. It is used at import time of :mod:`chainlib.panel` in a source checkout and by the wheel's
build hook (``hatch_build.py``), so both produce the same text. It has no dependencies beyond the
standard library (the build hook loads it by path, before chainlib's dependencies exist) and runs
as a script: ``python chainlib/_bundle.py widget/panel.js [-o OUT]``.

Only a small subset of module syntax is understood; anything else is a :class:`BundleError`
naming the file and line:

- at the top level, starting in column 0::

      import { a, b as c } from "./x.js";      // may span lines
      import * as X from "./sub/x.js";
      export { a, b as c } from "./x.js";      // re-export
      export function f(...)  /  export async function f  /  export function* f
      export const NAME = ...  /  export class C ...
      export default EXPRESSION;                // the entry module only

- relative specifiers ending in ``.js`` that stay inside the entry's folder; no import cycles.

Not supported: ``export let/var``, ``export { ... }`` without ``from``, ``export * from``, default
or side-effect imports, dynamic ``import()``, ``import.meta``, and import/export statements that
do not start in column 0. There is no JavaScript parser here: the rules are applied line by line,
so a line of a template literal or a block comment that starts with the word ``import`` or
``export`` is taken for a statement (and refused); reword such a line.

Each module becomes a function scope, in dependency order (imports before importers)::

    const __m_format = (() => {
    <format.js, its export keywords removed>
    return Object.freeze({ formatDuration, ... });
    })();

An import becomes ``const { a, b: c } = __m_x;`` (a copy, not a live binding: exporting ``let``
is refused for that reason). The source text is not re-indented, so template literals are kept
byte for byte. The output is deterministic: the same sources always give the same bundle.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BUILT_MARKER", "BundleError", "bundle", "front_end_module"]

BUILT_MARKER = "// chainlib front end, built by chainlib/_bundle.py"
"""First line of every bundle (how :func:`front_end_module` tells a built file from a source)."""

_IDENT = r"[A-Za-z_$][\w$]*"
_IMPORT = re.compile(
    r"^import[ \t]*(?:\{(?P<names>[^}]*)\}|\*[ \t]*as[ \t]+(?P<ns>" + _IDENT + r"))"
    r"\s*from\s*(?P<q>[\"'])(?P<spec>[^\"'\n]*)(?P=q)[ \t]*;?[ \t]*(?://[^\n]*)?$",
    re.MULTILINE,
)
_REEXPORT = re.compile(
    r"^export[ \t]*\{(?P<names>[^}]*)\}"
    r"\s*from\s*(?P<q>[\"'])(?P<spec>[^\"'\n]*)(?P=q)[ \t]*;?[ \t]*(?://[^\n]*)?$",
    re.MULTILINE,
)
_IMPORT_NAME = re.compile(r"^(?P<name>" + _IDENT + r")(?:\s+as\s+(?P<alias>" + _IDENT + r"))?$")
_EXPORT_DECL = re.compile(
    r"^export[ \t]+(?P<kind>(?:async[ \t]+)?function[ \t]*\*?|const|class)[ \t]*(?P<name>"
    + _IDENT + r")",
    re.MULTILINE,
)
_EXPORT_DEFAULT = re.compile(r"^export[ \t]+default[ \t]+", re.MULTILINE)
_ANY_STATEMENT = re.compile(r"^[ \t]*(?P<kw>import|export)\b(?![ \t]*[(.])", re.MULTILINE)
_DYNAMIC = re.compile(r"\bimport[ \t]*\(|\bimport\.meta\b")
_DEFAULT_NAME = "__default"


class BundleError(ValueError):
    """A front-end source uses syntax the bundler does not support, or imports are broken."""


@dataclass
class _Module:
    path: Path
    rel: str  # posix path relative to the root, e.g. "view/nodes.js"
    body: str = ""
    exports: list[str] = field(default_factory=list)
    has_default: bool = False
    # (local names / namespace, resolved path) per import, in source order
    imports: list[tuple[list[tuple[str, str]] | str, Path]] = field(default_factory=list)
    # (names, resolved path) per `export {...} from`: exported, not bound in the module's scope
    reexports: list[tuple[list[tuple[str, str]], Path]] = field(default_factory=list)

    @property
    def var(self) -> str:
        return "__m_" + re.sub(r"[^\w$]", "_", self.rel[: -len(".js")])


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _blank(match: re.Match[str]) -> str:
    """What replaces an import statement: as many newlines, so line numbers stay meaningful."""
    return "\n" * match.group(0).count("\n")


def _parse(path: Path, root: Path, *, entry: bool) -> _Module:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror})") from None
    rel = path.relative_to(root).as_posix()
    mod = _Module(path, rel)

    def fail(pos: int, what: str) -> BundleError:
        return BundleError(f"{rel}:{_line_of(text, pos)}: {what}")

    if text.startswith(BUILT_MARKER):
        raise fail(0, "this is a built bundle, not a source module")
    if m := _DYNAMIC.search(text):
        raise fail(m.start(), f"unsupported syntax {m.group(0)!r} (dynamic import / import.meta)")

    def name_list(m: re.Match[str]) -> list[tuple[str, str]]:
        names: list[tuple[str, str]] = []
        for part in m.group("names").split(","):
            part = part.strip()
            if not part:
                continue
            nm = _IMPORT_NAME.match(" ".join(part.split()))
            if nm is None:
                raise fail(m.start(), f"unsupported name {part!r}")
            names.append((nm.group("name"), nm.group("alias") or nm.group("name")))
        if not names:
            raise fail(m.start(), "empty name list")
        return names

    for m in _IMPORT.finditer(text):
        target = _resolve(m.group("spec"), path, root, functools.partial(fail, m.start()))
        if m.group("ns") is not None:
            mod.imports.append((m.group("ns"), target))
        else:
            mod.imports.append((name_list(m), target))
    body = _IMPORT.sub(_blank, text)
    # `export { a, b as c } from "./x.js"`: exported from the module, not bound inside it
    for m in _REEXPORT.finditer(body):
        target = _resolve(m.group("spec"), path, root, functools.partial(fail, m.start()))
        names = name_list(m)
        mod.reexports.append((names, target))
        for _name, alias in names:
            if alias in mod.exports:
                raise fail(m.start(), f"{alias!r} is exported twice")
            mod.exports.append(alias)
    body = _REEXPORT.sub(_blank, body)

    for m in _EXPORT_DECL.finditer(body):
        if m.group("name") in mod.exports:
            raise fail(m.start(), f"{m.group('name')!r} is exported twice")
        mod.exports.append(m.group("name"))
    body = _EXPORT_DECL.sub(lambda m: m.group(0)[len("export"):].lstrip(" \t"), body)

    defaults = list(_EXPORT_DEFAULT.finditer(body))
    if defaults and not entry:
        raise fail(defaults[0].start(), "`export default` is only supported in the entry module")
    if len(defaults) > 1:
        raise fail(defaults[1].start(), "more than one `export default`")
    if defaults:
        mod.has_default = True
        body = _EXPORT_DEFAULT.sub(f"const {_DEFAULT_NAME} = ", body)

    # Whatever import/export keyword is left at the start of a line is outside the subset.
    if m := _ANY_STATEMENT.search(body):
        line = body[m.start():].split("\n", 1)[0].strip()
        raise BundleError(
            f"{rel}:{_line_of(body, m.start())}: unsupported {m.group('kw')} statement {line!r} "
            "(supported: `import {a, b as c} from \"./x.js\"`, `import * as X from \"./x.js\"`, "
            "`export {a, b as c} from \"./x.js\"`, "
            "`export function|const|class NAME` and, in the entry, `export default EXPR;`, "
            "each starting in column 0)"
        )
    mod.body = body
    return mod


def _resolve(spec: str, importer: Path, root: Path, fail: Callable[[str], BundleError]) -> Path:
    if not spec.startswith(("./", "../")) or not spec.endswith(".js"):
        raise fail(f"unsupported import specifier {spec!r} (relative, ending in .js)")
    target = (importer.parent / spec).resolve()
    if not target.is_relative_to(root):
        raise fail(f"import {spec!r} leaves the front end's folder {root}")
    if not target.is_file():
        raise fail(f"import {spec!r}: no such file {target}")
    return target


def _collect(entry: Path) -> list[_Module]:
    """Every module reachable from ``entry``, dependencies first (depth-first post-order)."""
    root = entry.parent
    done: dict[Path, _Module] = {}
    order: list[_Module] = []
    visiting: list[Path] = []

    def visit(path: Path) -> _Module:
        if path in done:
            return done[path]
        if path in visiting:
            cycle = [*visiting[visiting.index(path):], path]
            raise BundleError(
                "import cycle: " + " -> ".join(p.relative_to(root).as_posix() for p in cycle))
        visiting.append(path)
        mod = _parse(path, root, entry=path == entry)
        for names, target in [*mod.imports, *mod.reexports]:
            dep = visit(target)
            if isinstance(names, list):
                for name, _alias in names:
                    if name not in dep.exports:
                        raise BundleError(
                            f"{mod.rel}: imports {name!r} from {dep.rel}, which does not export "
                            f"it (exports: {', '.join(dep.exports) or 'nothing'})")
        visiting.pop()
        done[path] = mod
        order.append(mod)
        return mod

    visit(entry)
    seen: dict[str, str] = {}
    for mod in order:
        if mod.var in seen:
            raise BundleError(
                f"{mod.rel} and {seen[mod.var]} map to one name {mod.var}; rename one")
        seen[mod.var] = mod.rel
    return order


def bundle(entry: Path | str) -> str:
    """Return ``entry`` and the modules it imports as one self-contained ES module.

    The bundle exports what the entry exports (its named exports and its default). Raises
    :class:`BundleError` for syntax outside the supported subset (see the module docstring).
    """
    entry = Path(entry).resolve()
    modules = _collect(entry)
    by_path = {m.path: m for m in modules}
    root = entry.parent
    out = [
        BUILT_MARKER + f" from {entry.name} and the modules it imports.",
        "// Do not edit: edit the sources and rebuild (it is rebuilt at import / wheel build).",
    ]
    for mod in modules:
        head = []
        for names, target in mod.imports:
            dep = by_path[target].var
            if isinstance(names, str):
                head.append(f"const {names} = {dep};")
            else:
                fields = ", ".join(n if n == a else f"{n}: {a}" for n, a in names)
                head.append(f"const {{ {fields} }} = {dep};")
        forwarded = {alias: f"{by_path[target].var}.{name}"
                     for names, target in mod.reexports for name, alias in names}
        exported = [e if e not in forwarded else f"{e}: {forwarded[e]}" for e in mod.exports]
        if mod.has_default:
            exported.append(f"default: {_DEFAULT_NAME}")
        out += [
            "",
            f"// ---- {mod.rel} ({mod.path.relative_to(root.parent).as_posix()})",
            f"const {mod.var} = (() => {{",
            *head,
            mod.body.rstrip("\n"),
            f"return Object.freeze({{ {', '.join(exported)} }});",
            "})();",
        ]
    main = by_path[entry]
    out.append("")
    if main.exports:
        out.append(f"export const {{ {', '.join(main.exports)} }} = {main.var};")
    if main.has_default:
        out.append(f"export default {main.var}.default;")
    return "\n".join(out) + "\n"


def front_end_module(path: Path) -> str:
    """The text anywidget should load for ``path``: the file itself if it is already a bundle
    (an installed wheel's ``chainlib/_widget/panel.js``), else the bundle built from the sources."""
    text = path.read_text(encoding="utf-8")
    return text if text.startswith(BUILT_MARKER) else bundle(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bundle the control panel's ES modules.")
    parser.add_argument("entry", type=Path, help="entry module, e.g. widget/panel.js")
    parser.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    args = parser.parse_args(argv)
    try:
        text = bundle(args.entry)
    except BundleError as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
