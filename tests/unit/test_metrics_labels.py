from prometheus_client.parser import text_string_to_metric_families

from app.observability.metrics import OTHER, BoundedLabel, PrometheusMetrics


def series(metrics: PrometheusMetrics, name: str) -> list[dict[str, str]]:
    families = text_string_to_metric_families(metrics.exposition().decode())
    return [s.labels for f in families if f.name == name for s in f.samples if s.name == name + "_total"]


def test_ten_thousand_distinct_actions_add_at_most_n_series() -> None:
    metrics = PrometheusMetrics(label_max_values=50)
    for i in range(10_000):
        metrics.event_recorded(f"action-{i}", "web")
    actions = {labels["action"] for labels in series(metrics, "telemetry_user_actions")}
    assert len(actions) == 51  # 50 distinct values and "other"
    assert OTHER in actions


def test_allow_list_keeps_only_listed_values() -> None:
    label = BoundedLabel(50, allowed={"click", "view"})
    assert [label(v) for v in ("click", "view", "buy")] == ["click", "view", OTHER]


def test_values_seen_before_the_limit_keep_their_own_series() -> None:
    label = BoundedLabel(2)
    assert [label(v) for v in ("a", "b", "c", "a", "b")] == ["a", "b", OTHER, "a", "b"]
