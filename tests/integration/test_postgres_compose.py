"""docker-compose.postgres.yml (PostgreSQL, two API replicas, Prometheus finding them by DNS), checked by the
real tools: the Compose specification schema, the Compose v2 CLI and promtool. No Docker engine here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.monitoring import MONITORING, REPO, compose_cli, find_tool, run_tool

COMPOSE = REPO / "docker-compose.postgres.yml"
PROMETHEUS = MONITORING / "prometheus-postgres.yml"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The file as Compose itself resolves it (defaults, interpolation, long syntax)."""
    result = run_tool([*compose_cli(), "--file", str(COMPOSE), "config", "--format", "json"])
    assert result.returncode == 0, result.stdout + result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    return resolved


def scrape_job(name: str) -> dict[str, Any]:
    jobs = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    return next(job for job in jobs if job["job_name"] == name)


def test_compose_file_matches_the_compose_specification_schema() -> None:
    checker = find_tool("check-jsonschema")
    if checker is None:
        pytest.skip("check-jsonschema not installed (requirements-dev.txt)")
    result = run_tool([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_api_replicas_share_the_postgres_service(config: dict[str, Any]) -> None:
    services = config["services"]
    assert set(services) == {"postgres", "api", "prometheus"}
    api = services["api"]
    assert api["deploy"]["replicas"] == 2
    url = urlsplit(api["environment"]["TELEMETRY_DATABASE_URL"])
    assert url.scheme == "postgresql"
    assert url.hostname == "postgres"
    assert url.path == "/" + services["postgres"]["environment"]["POSTGRES_DB"]
    assert url.username == services["postgres"]["environment"]["POSTGRES_USER"]
    assert url.password == services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    # The replicas start only once the database answers (the first one migrates the schema).
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ports" not in services["postgres"]  # reachable from the replicas only


def test_each_replica_gets_its_own_host_port(config: dict[str, Any]) -> None:
    api = config["services"]["api"]
    (port,) = api["ports"]
    low, high = (int(p) for p in str(port["published"]).split("-"))
    assert high - low + 1 == api["deploy"]["replicas"]
    assert port["target"] == 8000


def test_prometheus_discovers_every_replica_by_dns(config: dict[str, Any]) -> None:
    job = scrape_job("telemetry-api")
    assert "static_configs" not in job
    (discovery,) = job["dns_sd_configs"]
    # Compose's DNS answers the service name with one A record per replica.
    assert discovery["names"] == ["api"]
    assert discovery["type"] == "A"
    assert discovery["port"] == config["services"]["api"]["ports"][0]["target"]
    assert job["metrics_path"] == "/metrics"


def test_prometheus_mounts_this_config_and_files_that_exist(config: dict[str, Any]) -> None:
    prometheus = config["services"]["prometheus"]
    mounts = {v["target"]: Path(v["source"]) for v in prometheus["volumes"] if v["type"] == "bind"}
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    for source in mounts.values():
        assert source.exists(), f"prometheus mounts {source}, which is missing"


def test_the_scrape_job_keeps_the_name_the_alert_rules_select_on() -> None:
    main_config = MONITORING / "prometheus.yml"
    names = {job["job_name"] for job in yaml.safe_load(main_config.read_text())["scrape_configs"]}
    assert "telemetry-api" in names


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = find_tool("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus, .ci/apt-packages.txt)")
    result = run_tool([promtool, "check", "config", str(PROMETHEUS)])
    assert result.returncode == 0, result.stdout + result.stderr
