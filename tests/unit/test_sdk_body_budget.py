"""The shared budget for SDK bodies read before their key is checked: taken as bytes are held, all given back."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from app.api.compat.body import BodyTooLarge
from app.api.compat.inflate import (
    BodyDecoder,
    BudgetExhausted,
    DecodeBudget,
    Reservation,
    inflate,
    parsed_size_estimate,
)

MIB = 1024 * 1024


def test_inflating_takes_the_inflated_bytes_from_the_budget_and_release_gives_them_back() -> None:
    budget = DecodeBudget(64 * MIB)
    reservation = Reservation(budget)
    body = inflate(gzip.compress(b" " * (5 * MIB)), "gzip", limit=8 * MIB, reservation=reservation)
    assert len(body) == 5 * MIB
    assert budget.used == 5 * MIB
    reservation.release()
    assert budget.used == 0


def test_a_body_past_the_budget_is_refused_while_inflating_and_frees_its_share() -> None:
    budget = DecodeBudget(3 * MIB)
    reservation = Reservation(budget)
    with pytest.raises(BudgetExhausted):
        inflate(gzip.compress(b" " * (8 * MIB)), "gzip", limit=8 * MIB, reservation=reservation)
    assert 0 < budget.used <= 3 * MIB  # stopped at the budget, not at the 8 MiB the body would have become
    reservation.release()
    assert budget.used == 0


def test_two_requests_share_one_budget() -> None:
    budget = DecodeBudget(10 * MIB)
    first, second = Reservation(budget), Reservation(budget)
    inflate(gzip.compress(b"a" * (6 * MIB)), "gzip", limit=8 * MIB, reservation=first)
    with pytest.raises(BudgetExhausted):
        inflate(gzip.compress(b"b" * (6 * MIB)), "gzip", limit=8 * MIB, reservation=second)
    second.release()
    first.release()
    assert budget.used == 0


def test_the_size_limit_still_holds_with_a_budget() -> None:
    reservation = Reservation(DecodeBudget(64 * MIB))
    with pytest.raises(BodyTooLarge):
        inflate(gzip.compress(b" " * (9 * MIB)), "gzip", limit=8 * MIB, reservation=reservation)


def test_unchecked_bodies_queue_for_their_threads_only_up_to_the_bound_and_never_delay_checked_ones() -> None:
    decoder = BodyDecoder(64 * MIB, threads=1, max_waiting=2)

    async def scenario() -> tuple[object, str, list[str]]:
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow() -> str:
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)
            return "done"

        held = [asyncio.create_task(decoder.run(decoder.reservation(), slow)) for _ in range(2)]
        await asyncio.sleep(0.05)
        (refused,) = await asyncio.gather(decoder.run(decoder.reservation(), slow), return_exceptions=True)
        # The unchecked thread is stuck and its queue full: a body with a checked key is decoded all the same.
        checked = await asyncio.wait_for(decoder.run(None, lambda: "checked key"), 2)
        gate.set()
        return refused, checked, await asyncio.gather(*held)

    try:
        refused, checked, held = asyncio.run(scenario())
    finally:
        decoder.close()
    assert isinstance(refused, BudgetExhausted)
    assert checked == "checked key"
    assert held == ["done", "done"]


def test_the_parsed_size_estimate_covers_what_parsing_makes_of_a_body() -> None:
    import json
    import tracemalloc

    for raw in (
        b"[" + b"{}," * 200_000 + b"{}]",
        b"[" + b"1234," * 100_000 + b"1]",
        b"[" + b'"abcdefgh",' * 50_000 + b'"a"]',
    ):
        tracemalloc.start()
        value = json.loads(raw)
        parsed, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del value
        assert parsed_size_estimate(raw) >= parsed + len(raw), raw[:10]
    # A realistic PostHog batch is estimated at a few times its text, not hundreds.
    event = b'{"event":"$pageview","distinct_id":"user-1","properties":{"$current_url":"https://e.com/a","plan":"pro"}}'
    batch = b'{"batch":[' + b",".join([event] * 1000) + b"]}"
    assert parsed_size_estimate(batch) < 12 * len(batch)
