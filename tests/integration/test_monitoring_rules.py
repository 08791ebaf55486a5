"""The Prometheus configuration, recording and alerting rules are checked by the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.monitoring import MONITORING, RULE_FILES, find_tool, rules

RULE_TESTS = sorted((MONITORING / "tests").glob("*.yml"))


def _promtool() -> str:
    path = find_tool("promtool")
    if path is None:
        pytest.skip("promtool not on PATH (Debian package prometheus, listed in .ci/apt-packages.txt)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], capture_output=True, text=True, timeout=60, check=False)


def _alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def test_rule_and_test_files_exist() -> None:
    assert [p.name for p in RULE_FILES] == ["alerts.yml", "recording.yml"]
    assert RULE_TESTS, "monitoring/tests holds the promtool unit tests"


def test_prometheus_config_passes_promtool_check_config() -> None:
    result = _run("check", "config", str(MONITORING / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    # the config loads the rule files itself: a bad glob would find none
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout + result.stderr


def test_rule_files_pass_promtool_check_rules() -> None:
    result = _run("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass_promtool_test_rules() -> None:
    result = _run("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_test_rules_fails_when_an_alert_threshold_breaks(tmp_path: Path) -> None:
    """The unit tests have teeth: loosen one threshold and promtool reports the firing case as failed."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    for path in RULE_FILES:
        text = path.read_text()
        if path.name == "alerts.yml":
            threshold = 'ratio_rate5m{job="telemetry-api"} > 0.05'
            assert threshold in text
            text = text.replace(threshold, threshold.replace("0.05", "0.5"))
        (tmp_path / "rules" / path.name).write_text(text)
    for path in RULE_TESTS:
        shutil.copy(path, tmp_path / "tests" / path.name)
    result = _run("test", "rules", *(str(tmp_path / "tests" / p.name) for p in RULE_TESTS))
    assert result.returncode != 0
    assert "TelemetryHigh5xxRatio" in result.stdout + result.stderr


def test_the_required_alerts_exist_each_with_a_runbook_line() -> None:
    rules = {rule["alert"]: rule for rule in _alerting_rules()}
    assert set(rules) == {
        "TelemetryApiDown",
        "TelemetryHigh5xxRatio",
        "TelemetryHighP99Latency",
        "TelemetryIngestionStalled",
        "TelemetryWriteQueueNearFull",
        "TelemetryRejectedEventsSpiking",
        "TelemetrySqliteWalTooLarge",
    }
    for name, rule in rules.items():
        runbook = rule.get("annotations", {}).get("runbook", "")
        assert runbook.strip(), f"{name} needs a runbook annotation"
        assert "\n" not in runbook.strip(), f"{name}: the runbook is one line"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name


def test_every_alert_is_unit_tested_both_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerting_rules()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"
