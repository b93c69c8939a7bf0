"""The front end's bundler (chainlib/_bundle.py) and the wheel's build hook (hatch_build.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

from chainlib._bundle import BUILT_MARKER, BundleError, bundle, front_end_module

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "widget" / "panel.js"
NODE = shutil.which("node")


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root / "main.js"


def run_node(module: Path) -> object:
    """Import ``module`` in node and return its exports as JSON (a function as "function")."""
    assert NODE is not None, "node is needed (the front end's tests run on it too)"
    script = (f"const m = await import({json.dumps(module.as_uri())});"
              "console.log(JSON.stringify(Object.fromEntries(Object.entries(m).map("
              "([k, v]) => [k, typeof v === 'function' ? 'function' : v]))));")
    out = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True,
                         text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def test_import_time_module_is_the_bundle_of_the_sources() -> None:
    from chainlib.panel import ControlPanel

    assert ControlPanel._esm == bundle(ENTRY)
    assert ControlPanel._esm.startswith(BUILT_MARKER)
    for source in ["state.js", "format.js", "view/nodes.js", "panel.js"]:
        assert f"// ---- {source} (" in ControlPanel._esm


def test_wheel_carries_the_same_bundle_and_only_the_served_pages_js(tmp_path: Path) -> None:
    builder = pytest.importorskip("hatchling.builders.wheel").WheelBuilder(str(ROOT))
    wheel = Path(next(builder.build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        built = zf.read("chainlib/_widget/panel.js").decode()
        css = zf.read("chainlib/_widget/panel.css").decode()
        web = {n: zf.read(n).decode() for n in names if n.startswith("chainlib/_widget/web/")}
    assert built == bundle(ENTRY)
    assert css == (ROOT / "widget" / "panel.css").read_text()
    assert sorted(n for n in names if n.endswith((".js", ".mjs"))) == [
        "chainlib/_widget/panel.js", "chainlib/_widget/web/main.js",
        "chainlib/_widget/web/model.js"]
    for name, text in web.items():  # the control server's page (chainlib.serve), as they are
        assert text == (ROOT / "widget" / name.removeprefix("chainlib/_widget/")).read_text()
    # and an installed wheel loads that file as it is
    assert front_end_module(_extract(wheel, tmp_path)) == built


def _extract(wheel: Path, tmp: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        zf.extract("chainlib/_widget/panel.js", tmp / "unzipped")
    return tmp / "unzipped" / "chainlib" / "_widget" / "panel.js"


def test_bundle_semantics_in_node(tmp_path: Path) -> None:
    main = write(tmp_path, {
        "main.js": """
            import { twice, NAME as name } from "./lib/a.js";
            import * as B from "./b.js";
            import { helper } from "./b.js";
            export { helper, greet as hello } from "./b.js";  // not bound here: no clash
            export const result = [twice(helper(21)), name, B.greet("x"), B.multi];
            export function local() { return 1; }
            export default { result, n: local() };
        """,
        "lib/a.js": """
            import { helper } from "../b.js";
            export function twice(x) { return helper(x) * 2; }
            export const NAME = "a";
        """,
        "b.js": """
            const hidden = "private";  // module scope: never leaks into others
            export function helper(x) { return x; }
            export const greet = (w) => `hi ${w} ${hidden}`;
            export const multi = `line 1
              imports and exports, kept as they are;
            line 3`;
        """,
    })
    text = bundle(main)
    assert text == bundle(main)  # deterministic
    order = [text.index(f"// ---- {name} (") for name in ("b.js", "lib/a.js", "main.js")]
    assert order == sorted(order)  # dependencies first
    (tmp_path / "out.js").write_text(text)
    exports = run_node(tmp_path / "out.js")
    multi = "line 1\n  imports and exports, kept as they are;\nline 3"
    expected = [42, "a", "hi x private", multi]
    assert exports == {"default": {"result": expected, "n": 1}, "result": expected,
                       "local": "function", "helper": "function", "hello": "function"}


@pytest.mark.parametrize(("files", "message"), [
    ({"main.js": "export let x = 1;\n"}, r"main\.js:1: unsupported export statement"),
    ({"main.js": "const a = 1;\nexport { a };\n"}, r"main\.js:2: unsupported export"),
    ({"main.js": 'export * from "./b.js";\n', "b.js": ""}, r"main\.js:1: unsupported export"),
    ({"main.js": 'import b from "./b.js";\n', "b.js": ""}, r"main\.js:1: unsupported import"),
    ({"main.js": 'import "./b.js";\n', "b.js": ""}, r"main\.js:1: unsupported import"),
    ({"main.js": 'const a = 1;\nconst m = import("./b.js");\n'}, r"main\.js:2: .*dynamic import"),
    ({"main.js": "const u = import.meta.url;\n"}, r"main\.js:1: .*import\.meta"),
    ({"main.js": 'if (1) {\n  import { a } from "./b.js";\n}\n', "b.js": "export const a = 1;\n"},
     r"main\.js:2: unsupported import"),
    # a line is read as a statement wherever it starts (no JS parser): documented, and refused
    ({"main.js": "const t = `\n  export const x = 1;\n`;\n"}, r"main\.js:2: unsupported export"),
    ({"main.js": 'import { a } from "b";\n'}, r"unsupported import specifier 'b'"),
    ({"main.js": 'import { a } from "./b.mjs";\n'}, r"unsupported import specifier"),
    ({"main.js": 'import { a } from "../out.js";\n'}, r"leaves the front end's folder"),
    ({"main.js": 'import { a } from "./missing.js";\n'}, r"no such file"),
    ({"main.js": 'import { a } from "./b.js";\n', "b.js": "export const c = 1;\n"},
     r"imports 'a' from b\.js, which does not export it \(exports: c\)"),
    ({"main.js": 'import { a } from "./b.js";\nexport const m = 1;\n',
      "b.js": 'import { m } from "./main.js";\nexport const a = 1;\n'},
     r"import cycle: main\.js -> b\.js -> main\.js"),
    ({"main.js": 'import { a } from "./b.js";\n', "b.js": "export default 1;\n"},
     r"b\.js:1: `export default` is only supported in the entry"),
    ({"main.js": 'export const a = 1;\nexport { a } from "./b.js";\n',
      "b.js": "export const a = 1;\n"}, r"main\.js:\d: 'a' is exported twice"),
    ({"main.js": "export const a = 1;\nexport const a = 2;\n"},
     r"main\.js:2: 'a' is exported twice"),
])
def test_unsupported_syntax_is_a_clear_error(tmp_path: Path, files: dict[str, str],
                                             message: str) -> None:
    main = write(tmp_path / "src", files)
    (tmp_path / "out.js").write_text("export const a = 1;\n")
    with pytest.raises(BundleError, match=message):
        bundle(main)


def test_a_built_bundle_is_loaded_as_is_and_never_rebundled(tmp_path: Path) -> None:
    built = tmp_path / "panel.js"
    built.write_text(bundle(ENTRY))
    assert front_end_module(built) == bundle(ENTRY)
    with pytest.raises(BundleError, match="built bundle, not a source"):
        bundle(built)


def test_script_writes_the_same_bundle(tmp_path: Path) -> None:
    out = tmp_path / "panel.js"
    subprocess.run(["python3", str(ROOT / "chainlib" / "_bundle.py"), str(ENTRY), "-o", str(out)],
                   check=True, timeout=60)
    assert out.read_text() == bundle(ENTRY)


def test_no_notebook_stores_a_copy_of_the_front_end() -> None:
    """Saved widget state embeds the panel's whole `_esm`: a second, stale copy of the front end.

    Clear it before committing a notebook (JupyterLab: Settings → Save Widget State Automatically
    off, or delete ``metadata.widgets``)."""
    notebooks = [p for folder in ("notebooks", "docs", "examples")
                 for p in sorted((ROOT / folder).rglob("*.ipynb"))
                 if ".ipynb_checkpoints" not in p.parts]
    assert notebooks, "the example notebooks were not found"
    stored = [str(p.relative_to(ROOT)) for p in notebooks
              if "widgets" in json.loads(p.read_text()).get("metadata", {})]
    assert stored == [], f"notebooks with saved widget state (remove metadata.widgets): {stored}"
