"""The virtualenv `make` builds holds compiled bytecode for what it installs.

uv writes no .pyc unless asked, and where PYTHONDONTWRITEBYTECODE is set (CI machines set it) Python never
writes one either: every server, CLI command and notebook kernel would compile its imports again at start-up.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["fastapi", "pydantic", "starlette.routing", "duckdb", "pandas.core.frame"])
def test_installed_packages_are_compiled(module: str) -> None:
    imported = importlib.import_module(module)
    cached = getattr(imported, "__cached__", None)
    assert cached, f"{module} has no bytecode path"
    assert Path(cached).is_file(), (
        f"{module} has no bytecode ({cached}): a venv from before; make clean, then make test"
    )
