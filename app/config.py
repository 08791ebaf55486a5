"""Settings: read once from TELEMETRY_* environment variables at start-up, then passed down."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Scope = Literal["ingest", "read", "admin"]


class ApiKeySetting(BaseModel):
    """One API key as configured: its name (logged), the SHA-256 of the key (never the key), its scopes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the key: `python -m app hash-key`")
    scopes: frozenset[Scope] = Field(min_length=1)


def _parse_api_keys(value: Any) -> Any:
    """JSON list of {"name","sha256","scopes"}, or `name:sha256hex:scope1+scope2` entries split by commas."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return ()
    if text.startswith("["):
        return json.loads(text)
    keys = []
    for entry in text.split(","):
        if entry.count(":") != 2:
            raise ValueError("each key is name:sha256hex:scope1+scope2, keys split by commas (python -m app hash-key)")
        name, digest, scopes = entry.strip().split(":")
        keys.append({"name": name, "sha256": digest.lower(), "scopes": scopes.split("+")})
    return keys


def _parse_origins(value: Any) -> Any:
    """JSON list, or origins split by commas."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [origin.strip() for origin in text.split(",") if origin.strip()]


class Settings(BaseSettings):
    """Every knob of the service. docs/configuration.md lists each with its default (`make config-doc`)."""

    model_config = SettingsConfigDict(env_prefix="TELEMETRY_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="sqlite:///./data/telemetry.db",
        description="sqlite:///PATH (folder created) or postgresql://user@host/db",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="FULL: an acknowledged event survives power loss. NORMAL: survives a process crash only.",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=5000, ge=0, description="How long a connection waits for SQLite's write lock held by another process."
    )
    sqlite_wal_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Bound on the SQLite write-ahead log (telemetry.db-wal): past half of it the writer's"
        " checkpoints wait for readers; telemetry_sqlite_wal_limit_bytes, which TelemetrySqliteWalTooLarge uses.",
    )
    sqlite_wal_checkpoint_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        description="Once the WAL passes this size, the writer checkpoints between group commits, and a log that"
        " restarts is cut back to it (journal_size_limit). 0: off: the WAL then grows without bound under load.",
    )
    write_queue_max: int = Field(
        default=10_000, ge=1, description="Events waiting for commit before ingestion answers 503."
    )
    commit_batch_max: int = Field(default=2000, ge=1, description="Most events one group commit writes.")
    sqlite_writer_process: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="SQLite under `serve`: on: group commits run in one writer process shared by every worker"
        " (another core, out of the workers' GIL); off: a writer thread in each worker; auto: on when the"
        " service may use two CPUs or more, or runs --workers 2 or more; off on a single CPU (docs/benchmarks.md).",
    )
    writer_socket: str | None = Field(
        default=None,
        description="Set by `serve` for its workers: the writer process's Unix socket. Unset: the app writes"
        " through its own writer thread.",
    )
    shutdown_timeout_s: float = Field(default=20.0, gt=0, description="Time SIGTERM allows to drain and commit.")
    batch_max_events: int = Field(default=1000, ge=1, description="Most events in one POST /v1/events/batch.")
    lean_ingest: bool = Field(
        default=True,
        description="POST /v1/events and /v1/events/batch answered by the edge layer's lean handler: the same"
        " checks, validation and answers as the FastAPI route, without its per-request machinery. false: through"
        " the FastAPI route (docs/benchmarks.md compares the two).",
    )
    metrics_label_max_values: int = Field(
        default=50, ge=1, description="Distinct client-supplied values per metric label before 'other'."
    )
    metrics_allowed_actions: frozenset[str] | None = Field(
        default=None, description="If set (JSON list), only these actions get their own metric label value."
    )
    metrics_allowed_sources: frozenset[str] | None = Field(
        default=None, description="If set (JSON list), only these sources get their own metric label value."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe log line written; DEBUG also shows the traceback of a failed start."
    )
    log_format: Literal["json", "console"] = Field(
        default="json",
        description="json: one JSON object a line (for log collectors). console: aligned text for a terminal.",
    )
    # Drop-in SDK ingestion: Segment- and PostHog-compatible routes.
    segment_source: str | None = Field(
        default=None,
        max_length=128,
        description="Source of Segment events; unset: the SDK's context.library.name (else 'segment').",
    )
    posthog_source: str | None = Field(
        default=None,
        max_length=128,
        description="Source of PostHog events; unset: the SDK's $lib property (else 'posthog').",
    )
    posthog_max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest PostHog request body after decompression (413 past it); its SDK sends at most ~6 MiB.",
    )
    sdk_decode_budget_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1024,
        description="Bytes all SDK bodies read before their key is checked (PostHog's key is inside the body) may"
        " hold at once: on the wire, inflated, and as parsed (estimated before parsing: ~10x the text of compact"
        " JSON events); past it such a request is a 503 with Retry-After. Keep it above 12 x posthog_max_body_bytes.",
    )
    metrics_multiproc_dir: str | None = Field(
        default=None,
        description="With serve --workers N > 1: where prometheus_client's per-process files go (emptied at"
        " start). Default: a fresh temporary folder, removed at exit.",
    )

    # -- limits (hostile input) --
    request_max_bytes: int = Field(
        default=1_048_576, ge=1, description="Largest request body, counted as it streams in (chunked too): 413."
    )
    http_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A connection that has not sent complete request headers this long after it opened (or after"
        " its previous response) is closed: idle sockets cannot hold every file descriptor.",
    )
    http_max_connections: int | None = Field(
        default=None,
        ge=1,
        description="Open connections per process past which each new one closes the longest-idle connection."
        " Unset: the file-descriptor limit (ulimit -n) less a tenth, at least 64.",
    )
    http_keep_alive_timeout_s: float = Field(
        default=5.0, gt=0, description="An idle keep-alive connection is closed after this long without a request."
    )
    request_body_timeout_s: float = Field(
        default=15.0, gt=0, description="Longest wait for the next piece of a request body before 408."
    )
    event_max_bytes: int = Field(default=32_768, ge=1, description="Largest event, serialised as JSON: 422.")
    metadata_max_depth: int = Field(default=16, ge=1, description="Deepest nesting of objects/arrays in metadata.")
    metadata_max_keys: int = Field(default=512, ge=1, description="Most keys in all of one event's metadata.")
    timestamp_max_future_s: float = Field(
        default=86_400.0,
        ge=0,
        description="How far a timestamp may be ahead of the server clock, after clock-skew correction by sent_at.",
    )
    timestamp_min: AwareDatetime = Field(
        default=datetime(2000, 1, 1, tzinfo=UTC), description="Earliest timestamp (and sent_at) accepted."
    )

    # -- access control --
    api_keys: Annotated[tuple[ApiKeySetting, ...], NoDecode, BeforeValidator(_parse_api_keys)] = Field(
        default=(),
        description="API keys as hashes: JSON list of {name, sha256, scopes} or name:sha256:scope1+scope2,... "
        "Scopes: ingest, read, admin. Empty: the service runs open (and logs a warning).",
    )
    metrics_require_key: bool = Field(
        default=False, description="Protect /metrics with a key of scope read or admin (when keys are set)."
    )
    rate_limit_per_s: float = Field(
        default=0.0, ge=0, description="Requests per second per API key (open mode: per client address). 0: off."
    )
    rate_limit_burst: int = Field(
        default=0, ge=0, description="Token-bucket size: requests allowed at once. 0: twice the rate (at least 1)."
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_parse_origins)] = Field(
        default=(),
        description="Browser origins allowed to POST events (ingest routes only, no credentials). Empty: no CORS.",
    )
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
    read_concurrency: int = Field(
        default=4,
        ge=1,
        description="Reads (GET /v1/events..., /v1/stats, export pages) run at once, on threads of their own,"
        " so health, metrics and ingest never wait behind them.",
    )
    read_queue_max: int = Field(
        default=32, ge=0, description="Reads waiting for a turn; past that a read answers 503 + Retry-After."
    )
    read_queue_wait_s: float = Field(
        default=10.0, gt=0, description="Longest a read waits for a turn before 503 + Retry-After."
    )
    read_statement_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="PostgreSQL: longest one read statement may run before it is cancelled (503). Reads and"
        " exports use a pool of their own, read_concurrency connections, apart from the writer's. 0: no limit.",
    )
    stats_max_buckets: int = Field(
        default=10_000,
        ge=1,
        description="Most time buckets one GET /v1/stats returns (10,000 hours is ~14 months); past it: 422.",
    )
    postgres_pool_max_size: int = Field(default=8, ge=1, description="PostgreSQL connections per process, at most.")
    postgres_startup_timeout_s: float = Field(
        default=30.0, ge=0, description="At start-up, wait this long for a PostgreSQL still starting, then exit."
    )
    postgres_acquire_timeout_s: float = Field(
        default=2.0, gt=0, description="Wait for a PostgreSQL connection this long, then answer 503."
    )

    # -- data lifecycle --
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Events whose timestamp is older than this many days are removed by a background task in"
        " small chunks (and by `python -m app retention`). Unset: events are kept forever.",
    )
    retention_interval_s: float = Field(default=3600.0, gt=0, description="Time between two retention passes.")
    retention_chunk_rows: int = Field(
        default=1000, ge=1, description="Most events one retention transaction removes (ingestion goes on between)."
    )
    suppression_refresh_s: float = Field(
        default=5.0,
        gt=0,
        description="How often a replica re-reads the list of erased users whose events are refused (erased"
        " with suppress: true).",
    )
