"""`python -m bench ARGS`: each argument reaches only the benchmarks that declare it."""

from __future__ import annotations

import pytest

from bench.__main__ import plan, usage


def test_each_benchmark_gets_only_the_arguments_it_declares() -> None:
    planned = plan(["--rounds", "3", "--duration=5", "--big-events", "0", "--fresh", "--storm-rows", "10"])

    assert planned["ingest_bench"] == ["--rounds", "3", "--duration=5", "--big-events", "0"]
    assert planned["postgres_bench"] == ["--rounds", "3"]
    assert planned["analysis_bench"] == ["--fresh"]
    assert planned["read_storm_bench"] == ["--storm-rows", "10"]
    assert planned["wal_bench"] == []


def test_only_selects_the_benchmarks_that_run() -> None:
    planned = plan(["--only=postgres_bench", "--rounds", "1", "--duration", "5"])

    assert planned == {"postgres_bench": ["--rounds", "1"]}


def test_an_argument_no_benchmark_declares_stops_before_anything_runs() -> None:
    with pytest.raises(SystemExit) as stopped:
        plan(["--rounds", "3", "--no-such-option", "1"])

    assert stopped.value.code == 2


def test_help_lists_every_benchmarks_options() -> None:
    shown = usage()

    assert "== postgres_bench" in shown
    assert "--big-events" in shown
    assert "--storm-rows" in shown
