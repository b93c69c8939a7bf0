"""Missing optional dependencies are reported with the command that installs them."""

from __future__ import annotations

import pytest

from chainlib._extras import require_extra


def test_missing_module_names_the_extra() -> None:
    with pytest.raises(ImportError) as info:
        require_extra("chainlib.panel", "panel", "json", "no_such_module_chainlib_x")
    assert str(info.value) == ('chainlib.panel needs the panel extra: pip install '
                               '"chainlib[panel]" (missing: no_such_module_chainlib_x)')
    assert info.value.name == "no_such_module_chainlib_x"


def test_present_modules_pass() -> None:
    require_extra("chainlib.panel", "panel", "json", "traitlets")


def test_a_node_extra_installed_but_broken_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed package that fails to import (a missing shared library) is not 'not
    installed': the error says what failed, and how to reinstall."""
    import importlib
    import sys

    from chainlib.errors import ChainError
    from chainlib.nodes._extras import require

    class Broken:
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            if name == "chainlib_test_broken_pkg":
                raise ImportError("libbroken.so: cannot open shared object file")

    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    with pytest.raises(ChainError, match=r"installed but cannot be imported \(ImportError: "
                       r"libbroken.so.*pip install --force-reinstall 'chainlib\[models\]'"):
        require("chainlib_test_broken_pkg", "models")
    monkeypatch.setitem(sys.modules, "chainlib_test_blocked_pkg", None)
    with pytest.raises(ChainError, match=r"is not installed .*pip install 'chainlib\[models\]'"):
        require("chainlib_test_blocked_pkg", "models")
    importlib.invalidate_caches()
