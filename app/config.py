"""Settings: read once from TELEMETRY_* environment variables at start-up, then passed down."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service. The README's settings table lists each with its default."""

    model_config = SettingsConfigDict(env_prefix="TELEMETRY_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="sqlite:///./data/telemetry.db",
        description="sqlite:///PATH (folder created) or postgresql://user@host/db",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="FULL: an acknowledged event survives power loss. NORMAL: survives a process crash only.",
    )
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    write_queue_max: int = Field(
        default=10_000, ge=1, description="Events waiting for commit before ingestion answers 503."
    )
    commit_batch_max: int = Field(default=2000, ge=1, description="Most events one group commit writes.")
    shutdown_timeout_s: float = Field(default=20.0, gt=0, description="Time SIGTERM allows to drain and commit.")
    batch_max_events: int = Field(default=1000, ge=1, description="Most events in one POST /v1/events/batch.")
    metrics_label_max_values: int = Field(
        default=50, ge=1, description="Distinct client-supplied values per metric label before 'other'."
    )
    metrics_allowed_actions: frozenset[str] | None = Field(
        default=None, description="If set (JSON list), only these actions get their own metric label value."
    )
    metrics_allowed_sources: frozenset[str] | None = Field(
        default=None, description="If set (JSON list), only these sources get their own metric label value."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    tracing_enabled: bool = Field(
        default=False,
        description="OpenTelemetry traces: trace_id/span_id on log lines, exemplars on the latency histogram. "
        "Configured by the standard OTEL_* variables.",
    )
    otel_traces_exporter: Literal["otlp", "console", "none"] = Field(
        default="otlp",
        validation_alias="OTEL_TRACES_EXPORTER",
        description="Where spans go when tracing is on: OTLP over HTTP (OTEL_EXPORTER_OTLP_ENDPOINT), stderr, nowhere.",
    )
