"""Wheel build hook: the wheel carries the control panel's front end as one built module.

anywidget loads ``_esm`` as a single module, so ``chainlib/_widget/panel.js`` in the wheel is the
bundle of ``widget/panel.js`` and the modules it imports, built by ``chainlib/_bundle.py`` (the
same function :mod:`chainlib.panel` calls at import in a source checkout, so both give the same
text), plus ``widget/panel.css``, and ``widget/web/*.js`` for the control server's page. The other
JS sources and tests stay out of the wheel. Editable installs skip this: they import from the
source tree, where ``chainlib.panel`` bundles at import.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

TARGET = "chainlib/_widget"


def build_front_end(root: Path, out_dir: Path) -> dict[str, str]:
    """Write the built front end into ``out_dir``; return {file written: path in the wheel}."""
    # By path: at build time chainlib's dependencies (numpy, ...) need not be importable.
    spec = importlib.util.spec_from_file_location("_chainlib_bundle", root / "chainlib/_bundle.py")
    assert spec is not None and spec.loader is not None
    bundler = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bundler  # dataclasses look their module up there
    try:
        spec.loader.exec_module(bundler)
    finally:
        del sys.modules[spec.name]
    js = out_dir / "panel.js"
    js.write_text(bundler.bundle(root / "widget" / "panel.js"), encoding="utf-8")
    css = out_dir / "panel.css"
    shutil.copyfile(root / "widget" / "panel.css", css)
    files = {str(js): f"{TARGET}/panel.js", str(css): f"{TARGET}/panel.css"}
    # The control server's page (chainlib.serve) loads the same panel.js through these two.
    (out_dir / "web").mkdir(exist_ok=True)
    for name in ("web/model.js", "web/main.js"):
        shutil.copyfile(root / "widget" / name, out_dir / name)
        files[str(out_dir / name)] = f"{TARGET}/{name}"
    return files


class FrontEndBuildHook(BuildHookInterface[BuilderConfig]):
    """Adds ``chainlib/_widget/{panel.js,panel.css,web/*.js}`` to standard wheels."""

    PLUGIN_NAME = "chainlib-front-end"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        self._tmp = Path(tempfile.mkdtemp(prefix="chainlib-front-end-"))
        build_data["force_include"].update(build_front_end(Path(self.root), self._tmp))

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
