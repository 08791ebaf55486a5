"""The named queries every backend provides. A new backend fills one `Queries` with its own dialect."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Queries:
    # Data quality
    overview: str  # one row: events, users, actions, sources, first/last timestamp and received_at
    sample_bounds: str  # one row: first, last (the range of seq, the insertion order)
    duplicate_event_ids: str  # one row: ids (event_ids stored more than once), extra_rows
    probable_retries: str  # one row: groups of same user/action/source/timestamp/metadata, extra_copies
    delivery_delay: str  # bucket (0-5, see quality.DELAY_BUCKETS), events, min_seconds, max_seconds, mean_seconds
    missing_values: str  # one row: per column, rows holding NULL or an empty value
    # Usage
    action_counts: str  # action, events, users
    actions_by_source: str  # action, source, events
    daily_active_users: str  # day (YYYY-MM-DD), users
    weekly_active_users: str  # week (Monday, YYYY-MM-DD), users
    events_per_user: str  # user_id, events
    # Temporal
    hourly_events: str  # hour (YYYY-MM-DDTHH), events
    # Metadata, on a sample (:first, :last, :stride: every stride-th seq from first to last);
    # :action, :path = a JSON path such as '$."plan"'
    sample_actions: str  # action, events (in the sample)
    metadata_values: str  # action, key, type, value (scalars; NULL for null/object/array), events
    top_values: str  # value, type, events, present (events of the action holding the key)
    numeric_summary: str  # one row: count, minimum, maximum, mean, mean_square
    numeric_quantiles: str  # position, value for :positions (JSON array of 0-based ranks)
    numeric_histogram: str  # bin, events for :low, :width, :bins
    # Funnel and retention
    funnel: Callable[[int], str]  # step count -> step, users; params :step0 ... :stepN-1
    retention_cohorts: str  # cohort (Monday), week_offset, users
