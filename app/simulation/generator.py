"""The generator: users, sessions and events drawn from SimulationParams (see the package docstring)."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, SafeUUID

from app.models import UserActionEvent
from app.simulation.params import DAY, HOUR, WEEK, SimulationParams

_from_epoch = datetime.fromtimestamp
BLOCK_SESSIONS = 256  # sessions sharing one random stream: the unit a part is made of


@dataclass(slots=True)
class _User:
    user_id: str
    source: str
    device: str
    signup_at: float  # seconds since window start
    alive_until: float
    weight: float
    activated: bool
    buyer: bool
    plan: str
    sets_sent_at: bool
    activated_at: float  # when activate happens (signup_at when the user never activates)


@dataclass(slots=True)
class _Session:
    start: float
    user: int
    length: int  # engagement events, besides funnel events
    kind: int  # 0 signup, 1 weekly visit, 2 regular, 3 win-back visit (after the alive weeks)
    first_purchase: bool = False  # the user's first purchase happens in this session
    after_purchase: bool = False  # a later session of a buyer: may hold a repeat purchase
    events: int = 0  # events this session produces, retries aside


class _TimeSampler:
    """Draws instants from the density day weight x hour weight, restricted to an interval."""

    def __init__(self, params: SimulationParams) -> None:
        self.span = params.days * DAY
        weights = [params.day_weight(d) * params.hour_weight(h) for d in range(params.days) for h in range(24)]
        self.cumulative = list(itertools.accumulate(weights, initial=0.0))

    def draw(self, rng: random.Random, low: float, high: float) -> float:
        first, last = int(low // HOUR), min(len(self.cumulative) - 1, math.ceil(high / HOUR))
        base, top = self.cumulative[first], self.cumulative[last]
        while True:
            slot = bisect.bisect_right(self.cumulative, base + rng.random() * (top - base)) - 1
            moment = (slot + rng.random()) * HOUR
            if low <= moment < high:  # the edge hours are only partly inside [low, high)
                return moment


class _Choice:
    """Weighted draws from a fixed mix, with the cumulative weights computed once (a hot path)."""

    def __init__(self, mix: Mapping[str, float]) -> None:
        self.items = tuple(mix)
        self.cumulative = tuple(itertools.accumulate(mix.values()))
        self.total = self.cumulative[-1]

    def one(self, rng: random.Random) -> str:
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.total)]

    def many(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.items, cum_weights=self.cumulative, k=count)


_UUID7_BITS = (0x7 << 76) | (0b10 << 62)  # version 7, RFC 9562 variant


def _uuid7(rng: random.Random, unix_seconds: float) -> UUID:
    """A UUIDv7 for an event at unix_seconds, its random bits drawn from the seeded generator.

    Time-ordered, like the ids modern client SDKs send: new rows land near the right edge of the event_id
    index instead of all over it, which keeps a bulk load fast.
    """
    value = (int(unix_seconds * 1000) << 80) | _UUID7_BITS | (rng.getrandbits(12) << 64) | rng.getrandbits(62)
    uuid = object.__new__(UUID)
    # What UUID(int=...) does, minus its argument checks: a tenth of the per-event cost otherwise.
    object.__setattr__(uuid, "int", value)
    object.__setattr__(uuid, "is_safe", SafeUUID.unknown)
    return uuid


class _Generator:
    def __init__(self, params: SimulationParams) -> None:
        self.p = params
        self.rng = random.Random(params.seed)
        self.time = _TimeSampler(params)
        # Seconds from the Monday 00:00 UTC on or before start to start: aligns weeks to the calendar.
        start = params.start.astimezone(UTC)
        monday = datetime(start.year, start.month, start.day, tzinfo=UTC) - timedelta(days=start.weekday())
        self.week_offset = (start - monday).total_seconds()
        self.start_epoch = params.start.timestamp()
        self.pages = _Choice(params.pages)
        self.currencies = _Choice(params.currency_mix)
        self.action_mix = {name: _Choice(profile.action_mix) for name, profile in params.sources.items()}
        self.users: list[_User] = []
        self.sessions: list[_Session] = []
        self.budget = 0
        self.block_offsets: list[int] = [0]
        self.retry_after: set[int] = set()

    def week_start(self, moment: float) -> float:
        """Start (window seconds, possibly negative) of the calendar week holding moment."""
        return ((moment + self.week_offset) // WEEK) * WEEK - self.week_offset

    def make_users(self) -> None:
        p, rng = self.p, self.rng
        names = list(p.sources)
        shares = [p.sources[n].user_share for n in names]
        for index in range(p.users):
            source = rng.choices(names, weights=shares)[0]
            signup_at = self.time.draw(rng, 0.0, self.time.span)
            alive_weeks = 1
            while rng.random() < p.weekly_retention:
                alive_weeks += 1
            alive_until = min(self.time.span, self.week_start(signup_at) + alive_weeks * WEEK)
            activated = rng.random() < p.activation_rate
            activated_at = signup_at
            if activated:  # in the signup session, one event gap after signing up
                activated_at += rng.expovariate(1.0 / p.activation_delay_mean_seconds)
                if activated_at >= alive_until:
                    activated_at = signup_at + (alive_until - signup_at) / 2
            self.users.append(
                _User(
                    user_id=f"user-{index:06d}",
                    source=source,
                    device=_Choice(p.sources[source].devices).one(rng),
                    signup_at=signup_at,
                    alive_until=alive_until,
                    weight=min(rng.paretovariate(p.activity_alpha), p.activity_cap),
                    activated=activated,
                    buyer=activated and rng.random() < p.purchase_rate,
                    plan=_Choice(p.plan_mix).one(rng),
                    sets_sent_at=p.sources[source].sets_sent_at,
                    activated_at=activated_at,
                )
            )

    def make_sessions(self, budget: int) -> None:
        """Signup sessions, one visit per later alive week, then regular sessions until budget is spent."""
        rng = self.rng
        mandatory = 0
        for index, user in enumerate(self.users):
            self.sessions.append(_Session(user.signup_at, index, 0, 0))
            mandatory += 1 + user.activated + user.buyer
            week = self.week_start(user.signup_at) + WEEK
            while week < user.alive_until:
                self.sessions.append(
                    _Session(self.time.draw(rng, week, min(week + WEEK, user.alive_until)), index, 1, 1)
                )
                mandatory += 1
                week += WEEK
            # Drawn only when planted, so that rate 0 leaves the random stream as it was.
            eligible = self.p.resurrection_rate and user.alive_until + WEEK < self.time.span
            if eligible and rng.random() < self.p.resurrection_rate:
                back = self.time.draw(rng, user.alive_until + WEEK, self.time.span)
                self.sessions.append(_Session(back, index, 1, 3))
                mandatory += 1
        remaining = budget - mandatory
        if remaining < 0:
            raise ValueError(
                f"{budget} events cannot hold the signups, funnel steps and weekly visits of "
                f"{self.p.users} users ({mandatory} events): ask for more events or fewer users"
            )
        intensity = list(itertools.accumulate(u.weight * max(u.alive_until - u.signup_at, 1.0) for u in self.users))
        stop = 1.0 / self.p.mean_session_events  # geometric length with this mean
        while remaining > 0:
            length = min(remaining, 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - stop)) if stop < 1 else 1)
            index = bisect.bisect_right(intensity, rng.random() * intensity[-1])
            index = min(index, len(self.users) - 1)  # guards a draw that lands exactly on the total
            user = self.users[index]
            self.sessions.append(_Session(self.time.draw(rng, user.signup_at, user.alive_until), index, length, 2))
            remaining -= length
        self.sessions.sort(key=lambda s: (s.start, s.user))

    def plan(self) -> None:
        """Users, sessions and where every event and retry falls, before any event is made.

        Refuses impossible parameters up front. Sessions then go in blocks of BLOCK_SESSIONS, each block
        with its own random stream, so any subset of blocks (a part) can be generated on its own and
        the union of all parts is the same stream whatever the number of parts.
        """
        p = self.p
        self.budget = p.events - round(p.events * p.retry_duplicate_fraction)
        self.make_users()
        self.make_sessions(self.budget)
        sessions_per_user = [0] * len(self.users)
        for session in self.sessions:
            sessions_per_user[session.user] += session.kind != 3
        bought: set[int] = set()
        for session in self.sessions:
            user = self.users[session.user]
            if user.buyer and session.kind != 3:
                if session.user in bought:
                    session.after_purchase = True
                elif session.kind != 0 or sessions_per_user[session.user] == 1:
                    # The first purchase comes on a later visit, or at signup for a user who never returns.
                    session.first_purchase = True
                    bought.add(session.user)
            base = 1 + user.activated if session.kind == 0 else session.length if session.kind == 2 else 1
            session.events = base + session.first_purchase
        self.block_offsets = [0]
        for first in range(0, len(self.sessions), BLOCK_SESSIONS):
            block = self.sessions[first : first + BLOCK_SESSIONS]
            self.block_offsets.append(self.block_offsets[-1] + sum(s.events for s in block))
        retries = p.events - self.budget
        every = self.budget / retries if retries else 0.0
        # A client retry follows these events (by position in the stream), evenly spread.
        self.retry_after = {int(every / 2 + k * every) for k in range(retries)}

    def block_count(self) -> int:
        return len(self.block_offsets) - 1

    def events(self, part: int = 0, parts: int = 1) -> Iterator[UserActionEvent]:
        """The events of blocks part, part + parts, part + 2 x parts...; all of them for parts=1."""
        for block in range(part, self.block_count(), parts):
            self.rng = random.Random(f"{self.p.seed}/{block}")
            position = self.block_offsets[block]
            first = block * BLOCK_SESSIONS
            for number in range(first, min(first + BLOCK_SESSIONS, len(self.sessions))):
                for event in self.session_events(number, self.sessions[number]):
                    yield event
                    if position in self.retry_after:
                        yield self.retry_of(event)
                    position += 1

    def session_events(self, number: int, session: _Session) -> Iterator[UserActionEvent]:
        p, rng = self.p, self.rng
        user = self.users[session.user]
        actions: list[str] = []
        if session.kind == 0:
            actions.append("signup")
            if user.activated:
                actions.append("activate")
        engagement = session.length if session.kind == 2 else 1 if session.kind in (1, 3) else 0
        actions.extend(self.action_mix[user.source].many(rng, engagement))
        if session.after_purchase and session.kind == 2 and rng.random() < p.repeat_purchase_rate:
            actions[-1] = "purchase"  # a repeat purchase ends the visit, within its budget
        if session.first_purchase:
            actions.append("purchase")
        session_id = f"s{number:08x}"
        moment = previous = session.start
        for position, action in enumerate(actions):
            if action == "activate":
                moment = user.activated_at
            elif position:
                moment += rng.expovariate(1.0 / p.mean_event_gap_seconds)
            if action == "purchase":
                # A later visit can start within seconds of signup: keep the funnel's order all the same.
                moment = max(moment, user.activated_at)
            if moment >= user.alive_until and session.kind != 3:
                # A session never spills past the user's last alive week (or the window): squeeze its
                # tail into the time left, keeping the events in order and apart.
                moment = previous + (user.alive_until - previous) / 2
            previous = moment
            yield self.event(user, action, moment, session_id, winback=session.kind == 3)

    def metadata(self, user: _User, action: str, session_id: str, winback: bool = False) -> dict[str, Any]:
        p, rng = self.p, self.rng
        data: dict[str, Any] = {"session_id": session_id, "device": user.device}
        if winback:
            data["campaign"] = "winback"
        if action == "page_view":
            data["page"] = self.pages.one(rng)
            data["referrer"] = (
                None if rng.random() < p.null_referrer_fraction else rng.choice(("search", "social", "email", "ad"))
            )
            data["duration_ms"] = int(rng.lognormvariate(8.0, 1.0))
        elif action == "click":
            data["page"] = self.pages.one(rng)
            data["element"] = rng.choice(("button", "link", "card", "menu"))
        elif action == "search":
            data["query_length"] = rng.randint(1, 40)
            data["results"] = int(rng.expovariate(1 / 25))
        elif action == "share":
            data["channel"] = rng.choice(("email", "link", "social"))
        elif action == "error":
            data["page"] = self.pages.one(rng)
            data["code"] = rng.choice((400, 404, 404, 500, 503))
        elif action in ("signup", "activate"):
            data["plan"] = user.plan
            if action == "signup":
                data["campaign"] = rng.choice(("organic", "organic", "newsletter", "partner", "ads"))
        elif action == "purchase":
            data["plan"] = user.plan if user.plan != "free" else "pro"
            currency = self.currencies.one(rng)
            median = p.purchase_amount_median * p.currency_rates[currency]
            data["amount"] = round(median * math.exp(rng.gauss(0.0, p.purchase_amount_sigma)), 2)
            data["currency"] = currency
        return data

    def event(self, user: _User, action: str, moment: float, session_id: str, winback: bool = False) -> UserActionEvent:
        p, rng = self.p, self.rng
        delay = rng.expovariate(1.0 / p.delivery_latency_seconds)
        if rng.random() < p.late_fraction:
            delay += rng.expovariate(1.0 / p.late_mean_seconds)
        at = self.start_epoch + moment
        timestamp = _from_epoch(at, UTC)
        received_at = _from_epoch(at + delay, UTC)
        sent_at = _from_epoch(at + delay - min(delay, 0.05), UTC) if user.sets_sent_at else None
        return UserActionEvent(
            event_id=_uuid7(rng, at),
            user_id=user.user_id,
            action=action,
            timestamp=timestamp,
            source=user.source,
            metadata=self.metadata(user, action, session_id, winback),
            received_at=received_at,
            sent_at=sent_at,
        )

    def retry_of(self, event: UserActionEvent) -> UserActionEvent:
        """The same fact sent again by a client that did not see the first answer: a new id, a later receipt."""
        return UserActionEvent(
            event_id=_uuid7(self.rng, event.received_at.timestamp()),
            user_id=event.user_id,
            action=event.action,
            timestamp=event.timestamp,
            source=event.source,
            metadata=event.metadata,
            received_at=event.received_at + timedelta(seconds=self.rng.uniform(1.0, 5.0)),
            sent_at=event.sent_at,
        )


def simulate(params: SimulationParams, part: int = 0, parts: int = 1) -> Iterator[UserActionEvent]:
    """Exactly params.events events, reproducible from params alone. Raises ValueError at once when the
    events cannot hold every user's signup, funnel steps and weekly visits.

    With parts > 1, only part `part` of the stream (0 <= part < parts): the parts are disjoint and together
    hold exactly the events of parts=1, so processes can generate and write them in parallel.
    """
    if not 0 <= part < parts:
        raise ValueError("part must be in 0..parts-1")
    generator = _Generator(params)
    generator.plan()
    return generator.events(part, parts)


def in_batches(events: Iterator[UserActionEvent], size: int) -> Iterator[Sequence[UserActionEvent]]:
    """Consecutive chunks of at most size events."""
    while chunk := list(itertools.islice(events, size)):
        yield chunk
