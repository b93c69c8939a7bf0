"""The distributions: an sdist holding only what belongs, a wheel built from it, and that wheel
installed into a fresh virtual environment *without* extras, where the base install works.

Builds with ``python -m build`` (PEP 517, isolated: the build backend comes from the package
index), then installs with this interpreter's pip into a venv that has no pip of its own.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import chainlib

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]
# What the sdist may hold at its top level (hatch's only-include list in pyproject.toml, plus the
# PKG-INFO and .gitignore hatch adds).
SDIST_TOP = {"chainlib", "hatch_build.py", "widget", "tests", "notebooks", "examples", "LICENSE",
             "README.md", "ARCHITECTURE.md", "pyproject.toml", "PKG-INFO", ".gitignore"}
# Never in a distribution: build and run leftovers, the repo's own tooling.
DECOYS = ["chainlib-demo-out/gradient.png", "demo-out/01-quickstart.html", "scratch.txt",
          "chainlib/__pycache__/stale.cpython-311.pyc", "widget/node_modules/x/index.js"]


def run(*args: str | Path, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sdist and wheel built from a copy of the source tree with decoy leftovers added (the wheel
    from the sdist, as ``python -m build`` does: so the sdist is proven installable)."""
    base = tmp_path_factory.mktemp("dist")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "__pycache__", ".*_cache", ".hypothesis", "dist",
        "build", "demo-out", "chainlib-demo-out"))
    for decoy in DECOYS:
        path = src / decoy
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"decoy")
    out = base / "out"
    run(sys.executable, "-m", "build", "--outdir", out, src)
    (sdist,) = out.glob("chainlib-*.tar.gz")
    (wheel,) = out.glob("chainlib-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_sdist_holds_only_what_belongs(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name]
    top = {n.split("/", 1)[0] for n in names}
    assert top <= SDIST_TOP, top - SDIST_TOP
    for needed in ("chainlib/py.typed", "chainlib/__init__.py", "widget/panel.js",
                   "widget/panel.css", "hatch_build.py", "LICENSE", "README.md",
                   "tests/conftest.py", "notebooks/01-quickstart.ipynb",
                   "examples/resize_folder.json"):
        assert needed in names
    assert not [n for n in names if any(d in n for d in ("__pycache__", "node_modules",
                                                        "demo-out", "scratch"))]
    assert dists["sdist"].stat().st_size < 2_000_000


def test_wheel_metadata_and_files(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = set(whl.namelist())
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.parser.Parser().parsestr(whl.read(meta_name).decode())
    assert meta["Version"] == chainlib.__version__  # one source: chainlib/__init__.py
    assert meta["License-Expression"] == "MIT"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert {"chainlib/py.typed", "chainlib/_widget/panel.js", "chainlib/_widget/panel.css"} <= names
    assert not [n for n in names if n.startswith(("tests/", "widget/", "notebooks/"))]
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers and "License :: OSI Approved :: MIT License" not in \
        classifiers  # the licence is given once, as an SPDX expression
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues"} <= set(urls)
    assert meta["Author"] or meta["Author-email"]
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"panel", "dask", "notebook"} <= extras
    assert "test" not in extras  # test tools are a dependency group, not a public extra


def test_fresh_venv_without_extras(dists: dict[str, Path], tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)  # this interpreter's pip installs into it (--python)
    py = env_dir / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", py, "install", "-q", dists["wheel"])
    installed = run(sys.executable, "-m", "pip", "--python", py, "list", "--format=freeze").stdout
    assert "anywidget" not in installed and "distributed" not in installed

    home = tmp_path / "home"
    here = tmp_path / "cwd"
    here.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XDG_CACHE_HOME",
                                                            "CHAINLIB_SAMPLES",
                                                            "CHAINLIB_DEMO_OUT")}
    env["HOME"] = str(home)

    version = run(py, "-c", "import chainlib; print(chainlib.__version__, chainlib.__file__)",
                  cwd=here, env=env).stdout.split()
    assert version[0] == chainlib.__version__ and str(env_dir) in version[1]
    assert "demo" in run(env_dir / "bin" / "chainlib", "--help", cwd=here, env=env).stdout

    demo = run(env_dir / "bin" / "chainlib", "demo", "--no-progress", cwd=here, env=env).stdout
    out = home / ".cache" / "chainlib" / "demo-out"
    assert f"output folder: {out}" in demo, demo
    assert (out / "contact_sheet.png").is_file()
    assert list(here.iterdir()) == []  # nothing written into the current folder

    panel = subprocess.run([str(py), "-c", "import chainlib.panel"], capture_output=True,
                           text=True, cwd=here, env=env, timeout=120)
    assert panel.returncode == 1
    assert 'ImportError: chainlib.panel needs the panel extra: pip install "chainlib[panel]"' in \
        panel.stderr
