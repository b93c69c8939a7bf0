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
