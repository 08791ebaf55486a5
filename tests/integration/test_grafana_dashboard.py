"""The Grafana dashboard is valid JSON, reads the provisioned datasource, and draws only recorded series."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.support.monitoring import (
    DASHBOARD,
    DATASOURCES,
    MONITORING,
    REPO,
    dashboard,
    dashboard_expressions,
    dashboard_panels,
    find_tool,
    metric_names,
    recorded_names,
)


def test_metric_name_extraction_sees_through_promql_syntax() -> None:
    expr = 'sum by (route) (rate(http_requests_total{status=~"5.."}[1m])) / on () group_left x:y:z or pi()'
    assert metric_names(expr) == {"http_requests_total", "x:y:z"}


def test_dashboard_is_a_grafana_dashboard_with_unique_panel_ids() -> None:
    board = dashboard()
    assert board["uid"] == "telemetry-service"
    assert board["title"]
    ids = Counter(panel["id"] for panel in board["panels"])
    assert all(count == 1 for count in ids.values()), ids
    assert len(dashboard_panels()) >= 10


def test_every_panel_reads_the_provisioned_datasource_by_its_fixed_uid() -> None:
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert len(provisioned) == 1
    uid = provisioned[0]["uid"]
    assert provisioned[0]["type"] == "prometheus"
    assert provisioned[0]["url"] == "http://prometheus:9090"
    for panel in dashboard_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]


def test_every_panel_expression_reads_only_recording_rules() -> None:
    recorded = recorded_names()
    for expr in dashboard_expressions():
        names = metric_names(expr)
        assert names, f"no series in {expr!r}"
        assert names <= recorded, f"{expr!r} reads {names - recorded}, which no recording rule produces"


def test_dashboard_covers_red_actions_rejections_and_saturation() -> None:
    used = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
    assert {
        "route:http_requests:rate1m",
        "route:http_request_errors:ratio_rate1m",
        "route:http_request_duration_seconds:p95_1m",
        "route:http_request_duration_seconds:p99_1m",
        "telemetry:user_actions:rate1m",
        "action:telemetry_user_actions:rate1m",
        "source:telemetry_user_actions:rate1m",
        "reason:telemetry_events_rejected:rate1m",
        "telemetry:events_duplicate:rate1m",
        "telemetry:write_queue_depth:max",
        "telemetry:commit_duration_seconds:p99_1m",
        "telemetry:commit_batch_size:avg_1m",
    } <= used


def test_every_panel_expression_parses_as_promql(tmp_path: Path) -> None:
    """promtool has no bare PromQL parser, but it parses rule expressions: wrap each panel query in one."""
    promtool = find_tool("promtool")
    if promtool is None:
        pytest.skip("promtool not on PATH (Debian package prometheus, listed in .ci/apt-packages.txt)")
    queries = dashboard_expressions()
    rules = [{"record": f"dashboard:panel_query_{i}", "expr": expr} for i, expr in enumerate(queries)]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    command = [promtool, "check", "rules", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_compose_mounts_the_provisioning_and_the_dashboard_where_grafana_looks() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    read_only = [volume.removesuffix(":ro") for volume in grafana["volumes"] if volume.endswith(":ro")]
    mounts = dict(volume.split(":", 1) for volume in read_only)
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/telemetry.yml").read_text())
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert mounts["./monitoring/grafana/dashboards"] == dashboards_dir
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"


def test_panels_fit_the_24_column_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] < grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
