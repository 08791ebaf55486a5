"""The real service scraped by a real Prometheus (Debian's 2.42) loaded with the repo's rules.

What a user of the dashboard sees must be what the clients sent: counts by action and by source,
duplicates and rejections; and every rule and dashboard expression must evaluate on real data.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.monitoring import dashboard_expressions, metric_names, recorded_names, rules
from tests.support.prometheus import PrometheusProcess, wait_until
from tests.support.server import ServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

# (action, source, how many): sent partly one by one, partly in batches
PLAN = [("click", "web", 6), ("click", "ios", 3), ("view", "web", 4), ("purchase", "android", 2)]
SENT_TOTAL = sum(n for _, _, n in PLAN)


def _prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not on PATH (Debian package prometheus, listed in .ci/apt-packages.txt)")
    return binary


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(f"sqlite:///{tmp_path_factory.mktemp('service') / 'telemetry.db'}")
    try:
        yield server.wait_ready()
    finally:
        server.kill()


@pytest.fixture(scope="module")
def prometheus(service: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    prom = PrometheusProcess(_prometheus_binary(), tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{service.port}")
    try:
        yield prom.wait_ready()
    finally:
        prom.stop()


def _event(action: str, source: str, **extra: Any) -> dict[str, Any]:
    return {"user_id": f"user-{uuid.uuid4().hex[:8]}", "action": action, "source": source, "metadata": {}, **extra}


@pytest.fixture(scope="module")
def sent(service: ServerProcess, prometheus: PrometheusProcess) -> dict[str, Any]:
    """Send the PLAN, one duplicate and one invalid batch item; wait until Prometheus has scraped them all."""
    client = service.client
    batch: list[dict[str, Any]] = []
    for action, source, count in PLAN:
        assert client.post("/v1/events", json=_event(action, source)).status_code == 201
        batch.extend(_event(action, source) for _ in range(count - 1))
    response = client.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(batch)

    once = _event("click", "web", event_id=str(uuid.uuid4()), timestamp="2026-05-01T10:00:00Z")
    assert client.post("/v1/events", json=once).status_code == 201
    assert client.post("/v1/events", json=once).status_code == 200  # the same event again: a duplicate
    invalid = {"events": [_event("view", "ios"), {"action": "view", "source": "ios"}]}  # 2nd lacks user_id
    response = client.post("/v1/events/batch", json=invalid)
    assert response.json()["invalid"] == 1, response.text

    by_action = Counter[str]()
    by_source = Counter[str]()
    for action, source, count in [*PLAN, ("click", "web", 1), ("view", "ios", 1)]:
        by_action[action] += count
        by_source[source] += count
    total = sum(by_action.values())
    wait_until(
        lambda: prometheus.query_by("sum(telemetry_user_actions_total)", "") == {"": total},
        20,
        lambda: f"Prometheus never saw {total} actions: {prometheus.query('sum(telemetry_user_actions_total)')}",
    )
    return {"by_action": dict(by_action), "by_source": dict(by_source)}


def test_prometheus_counts_by_action_and_by_source_equal_what_was_sent(
    prometheus: PrometheusProcess, sent: dict[str, Any]
) -> None:
    assert prometheus.query_by("sum by (action) (telemetry_user_actions_total)", "action") == sent["by_action"]
    assert prometheus.query_by("sum by (source) (telemetry_user_actions_total)", "source") == sent["by_source"]
    assert sent["by_action"] == {"click": 10, "view": 5, "purchase": 2}


def test_duplicates_and_rejections_reach_prometheus(prometheus: PrometheusProcess, sent: dict[str, Any]) -> None:
    assert prometheus.query_by("sum(telemetry_events_duplicate_total)", "") == {"": 1.0}
    assert prometheus.query_by("sum by (reason) (telemetry_events_rejected_total)", "reason") == {"invalid": 1.0}


def test_recording_rules_produce_the_dashboard_views_from_the_real_scrape(
    prometheus: PrometheusProcess, sent: dict[str, Any]
) -> None:
    def views() -> bool:
        actions = set(prometheus.query_by("action:telemetry_user_actions:rate1m", "action"))
        sources = set(prometheus.query_by("source:telemetry_user_actions:rate1m", "source"))
        routes = set(prometheus.query_by("route:http_requests:rate1m", "route"))
        return (
            actions == set(sent["by_action"])
            and sources == set(sent["by_source"])
            and {"/v1/events", "/v1/events/batch", "/metrics"} <= routes
            and bool(prometheus.query("route:http_request_duration_seconds:p99_1m"))
            and bool(prometheus.query("instance:telemetry_write_queue:utilisation"))
            and bool(prometheus.query("telemetry:commit_batch_size:avg_1m"))
        )

    wait_until(views, 20, lambda: "recording rules never produced the views: " + prometheus.log_tail())


def test_every_rule_is_evaluated_by_prometheus_without_error(
    prometheus: PrometheusProcess, sent: dict[str, Any]
) -> None:
    expected = {rule.get("record") or rule["alert"] for rule in rules()}

    def evaluated() -> list[dict[str, Any]] | None:
        loaded = [rule for group in prometheus.api("/api/v1/rules")["groups"] for rule in group["rules"]]
        return loaded if all(rule["health"] != "unknown" for rule in loaded) else None

    loaded = wait_until(evaluated, 15, lambda: "some rules were never evaluated")
    assert {rule["name"] for rule in loaded} == expected
    errors = {rule["name"]: rule.get("lastError") for rule in loaded if rule["health"] != "ok"}
    assert errors == {}


def test_every_rule_and_dashboard_expression_is_accepted_by_the_query_api(
    prometheus: PrometheusProcess, sent: dict[str, Any]
) -> None:
    expressions = [rule["expr"] for rule in rules()] + dashboard_expressions()
    assert len(expressions) > 30
    for expr in expressions:
        prometheus.query(expr)  # raises with Prometheus's error text on a bad expression


def test_every_series_the_rules_read_is_exposed_by_the_service(
    prometheus: PrometheusProcess, sent: dict[str, Any]
) -> None:
    read = set().union(*(metric_names(rule["expr"]) for rule in rules())) - recorded_names() - {"up"}
    scraped = set(prometheus.api("/api/v1/label/__name__/values"))
    assert read - scraped == set(), "the rules read series the service never exposed"


def test_healthy_service_raises_no_availability_alert(prometheus: PrometheusProcess, sent: dict[str, Any]) -> None:
    active = {alert["labels"]["alertname"] for alert in prometheus.api("/api/v1/alerts")["alerts"]}
    quiet = {"TelemetryApiDown", "TelemetryIngestionStalled", "TelemetryHigh5xxRatio", "TelemetryRejectedEventsSpiking"}
    assert active & quiet == set()


def test_api_down_alert_goes_pending_when_the_target_does_not_answer(tmp_path: Path) -> None:
    prom = PrometheusProcess(_prometheus_binary(), tmp_path, f"127.0.0.1:{free_port()}").wait_ready()
    try:

        def api_down() -> list[dict[str, Any]]:
            alerts = prom.api("/api/v1/alerts")["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "TelemetryApiDown"]

        (alert,) = wait_until(api_down, 15, lambda: "TelemetryApiDown never became active: " + prom.log_tail())
        assert alert["state"] == "pending"  # `for: 1m` keeps it from firing within the test's time
        assert alert["annotations"]["runbook"]
    finally:
        prom.stop()
