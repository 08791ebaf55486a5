"""The ingest benchmark's ratios: paired round by round, and the CPU above the HTTP server's floor."""

from __future__ import annotations

from typing import Any

from bench.ingest_bench import ratios, round_ratios


def _run(events_per_s: float, cpu: float, http_cpu: float = 0.0) -> dict[str, Any]:
    return {
        "target": "x",
        "load": "x",
        "events_per_s": events_per_s,
        "requests_per_s": events_per_s,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "errors": 0,
        "cpu_us_per_event": cpu,
        "peak_rss_mb": 1.0,
        "http_cpu_us_per_event": http_cpu,
    }


def _results() -> dict[str, Any]:
    # Three rounds on a host whose speed moves: the service wins every round by 10 %, but its slow
    # round meets the reference's fast one in the medians of each server's own rounds.
    return {
        "medians": {
            "reference/single": _run(4000, 250.0, 250.0),
            "floor/single": _run(15000, 70.0, 70.0),
            "service/single": _run(3300, 360.0, 205.0),
            "service/batch100": _run(30000, 50.0, 40.0),
            "reference/batch100": _run(170000, 6.0, 6.0),
            "w2/single": _run(3600, 380.0, 230.0),
            "w2/batch100": _run(29000, 52.0, 41.0),
        },
        "rounds": {
            "reference/single": [3000, 4000, 6000],
            "service/single": [3300, 4400, 6600],
            "w2/single": [3630, 4180, 6600],
            "service/batch100": [30000, 28000, 31000],
            "w2/batch100": [27000, 29400, 31000],
        },
        "raw_executemany_events_per_s": {"100_rows_per_commit": 20000, "2000_rows_per_commit": 40000},
    }


def test_round_ratios_pair_each_round_with_itself() -> None:
    rounds = {"a": [2.0, 9.0, 3.0], "b": [1.0, 10.0, 3.0]}

    assert round_ratios(rounds, "a", "b") == [2.0, 0.9, 1.0]
    assert round_ratios(rounds, "a", "missing") == []


def test_ratios_by_round_show_what_the_medians_of_each_server_hide() -> None:
    out = ratios(_results())

    assert out["single_throughput_vs_reference"] == 0.825  # 3300 / 4000: the medians of each server's rounds
    assert out["single_vs_reference_by_round_median"] == 1.1  # 1.1 in every round
    assert out["single_vs_reference_by_round_min"] == 1.1
    assert out["single_vs_reference_by_round_max"] == 1.1
    # A variant against the one-worker service, round by round: 1.1, 0.95, 1.0.
    assert out["w2_single_vs_service_by_round_median"] == 1.0
    assert out["w2_single_vs_service_by_round_min"] == 0.95
    assert out["w2_single_vs_service_by_round_max"] == 1.1
    assert out["w2_batch100_vs_service_by_round_median"] == 1.0


def test_cpu_above_the_floor_compares_the_apps_own_share() -> None:
    out = ratios(_results())

    assert out["floor_single_cpu_us_per_event"] == 70.0
    # The service's HTTP process (its writer process apart) 205 - 70 against the reference's 250 - 70.
    assert out["single_http_cpu_above_floor_vs_reference"] == 0.75
    assert "floor_single_throughput_vs_reference" not in out


def test_results_without_rounds_or_floor_keep_the_ratios_of_medians() -> None:
    results = _results()
    del results["rounds"]
    del results["medians"]["floor/single"]

    out = ratios(results)

    assert out["single_throughput_vs_reference"] == 0.825
    assert not any(key.endswith("_by_round_median") or "floor" in key for key in out)
