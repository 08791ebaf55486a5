"""The simulator's parameters: every planted pattern is one documented field of SimulationParams."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY

ENGAGEMENT_ACTIONS = ("page_view", "click", "search", "share", "error")
FUNNEL_ACTIONS = ("signup", "activate", "purchase")


@dataclass(frozen=True, slots=True)
class SourceProfile:
    """How the users of one source behave: their share of users, action mix and devices."""

    user_share: float
    action_mix: Mapping[str, float]  # weights over ENGAGEMENT_ACTIONS
    devices: Mapping[str, float]
    sets_sent_at: bool  # mobile SDKs stamp sent_at; browsers do not


def _default_sources() -> Mapping[str, SourceProfile]:
    return MappingProxyType(
        {
            "web": SourceProfile(
                0.55,
                {"page_view": 0.56, "click": 0.22, "search": 0.13, "share": 0.03, "error": 0.06},
                {"desktop": 0.8, "mobile-browser": 0.2},
                sets_sent_at=False,
            ),
            "ios": SourceProfile(
                0.25,
                {"page_view": 0.34, "click": 0.40, "search": 0.10, "share": 0.13, "error": 0.03},
                {"iphone": 0.85, "ipad": 0.15},
                sets_sent_at=True,
            ),
            "android": SourceProfile(
                0.20,
                {"page_view": 0.36, "click": 0.37, "search": 0.10, "share": 0.09, "error": 0.08},
                {"android-phone": 0.9, "android-tablet": 0.1},
                sets_sent_at=True,
            ),
        }
    )


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class SimulationParams:
    """Every pattern the simulator plants, as a parameter. Defaults describe a plausible small product."""

    events: int = 100_000  # exact number of events produced, retries included
    users: int = 2_000
    days: int = 28
    seed: int = 1
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: calendar weeks line up with the window
    # Daily cycle: hour weight = 1 + daily_amplitude * cos(2*pi*(hour - peak_hour) / 24), hours in UTC.
    peak_hour: int = 20
    daily_amplitude: float = 0.85
    # Weekly cycle, Monday first: weekends are quieter.
    weekday_weights: tuple[float, float, float, float, float, float, float] = (
        1.0,
        1.05,
        1.05,
        1.0,
        0.9,
        0.6,
        0.55,
    )
    # One anomalous day (a campaign): at this fraction of the window (day int(days * position)), with
    # spike_factor times its usual traffic. None: no anomaly.
    spike_position: float | None = 0.6
    spike_factor: float = 2.5
    activity_alpha: float = 1.3  # Pareto shape of per-user activity; smaller = more skewed
    activity_cap: float = 200.0  # the most active user is at most this many times the least (no lone giant)
    sources: Mapping[str, SourceProfile] = field(default_factory=_default_sources)
    # Funnel signup -> activate -> purchase; rates are per step, conditional on the step before.
    activation_rate: float = 0.6
    # Time from signup to activate: exponential with this mean (so median = mean x ln 2, p90 = mean x ln 10).
    activation_delay_mean_seconds: float = 40.0
    purchase_rate: float = 0.4
    repeat_purchase_rate: float = 0.1  # chance that a later session of a buyer holds another purchase
    weekly_retention: float = 0.7
    # Win-back: a user whose alive weeks end at least two weeks before the window's end comes back, with this
    # probability, for one visit (metadata campaign "winback") in a later week after a silent one: a
    # resurrecting user. 0 keeps the stream of earlier versions.
    resurrection_rate: float = 0.0
    mean_session_events: float = 6.0
    mean_event_gap_seconds: float = 40.0
    plan_mix: Mapping[str, float] = field(default_factory=lambda: _frozen({"free": 0.70, "pro": 0.25, "team": 0.05}))
    pages: Mapping[str, float] = field(
        default_factory=lambda: _frozen(
            {"/home": 0.30, "/pricing": 0.15, "/docs": 0.20, "/blog": 0.12, "/dashboard": 0.18, "/settings": 0.05}
        )
    )
    purchase_amount_median: float = 29.0  # in the first currency of currency_mix
    purchase_amount_sigma: float = 0.6  # of log(amount)
    # Purchases are in one currency each, drawn from this mix; an amount in currency c has median
    # purchase_amount_median x currency_rates[c] (so amounts must never be summed across currencies).
    currency_mix: Mapping[str, float] = field(default_factory=lambda: _frozen({"EUR": 0.6, "USD": 0.4}))
    currency_rates: Mapping[str, float] = field(default_factory=lambda: _frozen({"EUR": 1.0, "USD": 1.2}))
    null_referrer_fraction: float = 0.4
    delivery_latency_seconds: float = 0.25  # mean of the normal client -> server delay
    late_fraction: float = 0.02
    late_mean_seconds: float = 6 * HOUR
    retry_duplicate_fraction: float = 0.002

    def __post_init__(self) -> None:
        if self.users < 1 or self.days < 1 or self.events < 1:
            raise ValueError("events, users and days must all be at least 1")
        if self.start.tzinfo is None:
            raise ValueError("start must carry a timezone")
        if not 0 <= self.peak_hour < 24:
            raise ValueError("peak_hour must be in 0..23")
        if not 0 <= self.daily_amplitude < 1:
            raise ValueError("daily_amplitude must be in [0, 1)")
        for name in (
            "activation_rate",
            "purchase_rate",
            "repeat_purchase_rate",
            "null_referrer_fraction",
            "late_fraction",
            "retry_duplicate_fraction",
            "resurrection_rate",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 0 <= self.weekly_retention < 1:
            raise ValueError("weekly_retention must be in [0, 1)")
        if self.mean_session_events < 1:
            raise ValueError("mean_session_events must be at least 1")
        if self.activation_delay_mean_seconds <= 0:
            raise ValueError("activation_delay_mean_seconds must be positive")
        if set(self.currency_mix) - set(self.currency_rates) or not self.currency_mix:
            raise ValueError("every currency of currency_mix needs a rate in currency_rates")
        if self.spike_position is not None and not 0 <= self.spike_position < 1:
            raise ValueError("spike_position must be in [0, 1)")

    @property
    def spike_day(self) -> int | None:
        """Index (0 = start) of the anomalous day, if any."""
        return None if self.spike_position is None else int(self.days * self.spike_position)

    def hour_weight(self, hour: int) -> float:
        return 1 + self.daily_amplitude * math.cos(2 * math.pi * (hour - self.peak_hour) / 24)

    def day_weight(self, day: int) -> float:
        weekday = (self.start + timedelta(days=day)).weekday()
        spike = self.spike_factor if day == self.spike_day else 1.0
        return self.weekday_weights[weekday] * spike

    def overall_action_mix(self) -> dict[str, float]:
        """Expected share of each engagement action over all sources (weighted by user share)."""
        total_share = sum(p.user_share for p in self.sources.values())
        mix: dict[str, float] = {}
        for profile in self.sources.values():
            weight_sum = sum(profile.action_mix.values())
            for action, weight in profile.action_mix.items():
                mix[action] = mix.get(action, 0.0) + profile.user_share / total_share * weight / weight_sum
        return mix
