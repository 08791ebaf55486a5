"""Simulated databases for the analysis tests: written through the real CLI and repository into a temp file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from app.cli import main as cli_main
from app.simulation import SimulationParams

# Small enough to keep the suite fast, large enough for the tolerances the tests state.
RECOVERY_PARAMS = SimulationParams(events=40_000, users=1_000, days=28, seed=11)


def simulate_into(path: Path, params: SimulationParams) -> str:
    """Run `python -m app simulate` in-process for params; returns the database URL."""
    url = f"sqlite:///{path}"
    code = cli_main(
        [
            "simulate",
            "--events",
            str(params.events),
            "--users",
            str(params.users),
            "--days",
            str(params.days),
            "--seed",
            str(params.seed),
            "--start",
            params.start.strftime("%Y-%m-%d"),
            "--database-url",
            url,
            "--quiet",
        ]
    )
    assert code == 0
    return url


def default_params(**changes: object) -> SimulationParams:
    """The CLI exposes events/users/days/seed/start; every other pattern keeps its documented default."""
    return replace(RECOVERY_PARAMS, **changes)  # type: ignore[arg-type]


# Every new pattern planted at once, far from its default, for the questions of test_analysis_questions.py.
PLANTED_PARAMS = replace(
    RECOVERY_PARAMS,
    seed=12,
    activation_delay_mean_seconds=600.0,
    resurrection_rate=0.3,
    mean_event_gap_seconds=90.0,
    currency_mix={"EUR": 0.7, "USD": 0.3},
    currency_rates={"EUR": 1.0, "USD": 1.5},
)


def write_through_repository(path: Path, params: SimulationParams) -> str:
    """The simulator's events for any params (the CLI exposes only a few), through the real SQLite
    repository; returns the database URL."""
    from app.repository import open_repository
    from app.simulation import in_batches, simulate

    url = f"sqlite:///{path}"
    repository = open_repository(url, synchronous="NORMAL")
    try:
        for chunk in in_batches(simulate(params), 5000):
            repository.add(chunk)
    finally:
        repository.close()
    return url
