"""The layering rules of docs/ARCHITECTURE (and the README's picture), checked on the source itself."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
DRIVERS = {"sqlite3", "psycopg", "psycopg_pool", "orjson"}
# What a use case may not reach into: the drivers, the frameworks, and the adapters themselves.
NOT_FOR_SERVICES = DRIVERS | {"fastapi", "starlette", "pydantic", "prometheus_client", "structlog", "opentelemetry"}
ADAPTER_MODULES = ("app.repository.sqlite", "app.repository.postgres", "app.repository.memory", "app.api", "app.main")


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_services_import_no_driver_framework_or_adapter() -> None:
    for path in sorted((APP / "services").glob("*.py")):
        imported = imports_of(path)
        outside = {m for m in imported if m.split(".")[0] in NOT_FOR_SERVICES}
        adapters = {m for m in imported if m.startswith(ADAPTER_MODULES)}
        assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"
        assert not adapters, f"{path.relative_to(ROOT)} imports the adapters {sorted(adapters)}"


def test_the_storage_port_is_standard_library_and_domain_only() -> None:
    imported = imports_of(APP / "repository" / "port.py")
    allowed = {"app.models"}
    outside = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names and m not in allowed}
    assert outside <= {"__future__"}, f"app/repository/port.py imports {sorted(outside)}"


def test_importing_the_service_and_the_port_loads_no_database_driver() -> None:
    code = (
        "import sys, app.services.event_service, app.repository.port, app.repository; "
        "print(sorted(m for m in ('sqlite3', 'psycopg', 'psycopg_pool') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_module_reads_app_state_with_getattr() -> None:
    pattern = re.compile(r"getattr\(\s*(request\.)?app\.state")
    offenders = [str(p.relative_to(ROOT)) for p in APP.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_app_state_holds_only_the_runtime_and_only_deps_touches_it() -> None:
    touching = {str(p.relative_to(ROOT)) for p in APP.rglob("*.py") if "app.state" in p.read_text()}
    assert touching == {"app/api/deps.py"}
    deps = (APP / "api" / "deps.py").read_text()
    assert set(re.findall(r"app\.state\.(\w+)", deps)) == {"runtime"}


def test_the_edge_policy_is_declared_not_inferred() -> None:
    """No fabricated signatures, no duck-typed hooks found on dependencies, no paths scraped from OpenAPI."""
    for path in APP.rglob("*.py"):
        text = path.read_text()
        for smell in ("__signature__", "run_before_body", "app.openapi()"):
            assert smell not in text, f"{path.relative_to(ROOT)} uses {smell}"
