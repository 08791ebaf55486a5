"""The shared budget for SDK bodies read before their key is checked: taken as bytes are held, all given back."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from app.api.compat.body import BodyTooLarge
from app.api.compat.inflate import BodyDecoder, BudgetExhausted, DecodeBudget, Reservation, inflate

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


def test_unchecked_bodies_queue_for_the_decoding_threads_only_up_to_the_bound() -> None:
    decoder = BodyDecoder(64 * MIB, threads=1, max_waiting=2)

    async def scenario() -> list[object]:
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow() -> str:
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)
            return "done"

        held = [asyncio.create_task(decoder.run(decoder.reservation(), slow)) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = await asyncio.gather(decoder.run(decoder.reservation(), slow), return_exceptions=True)
        checked = asyncio.create_task(decoder.run(None, lambda: "checked key: not bounded"))
        gate.set()
        return [*refused, *(await asyncio.gather(*held, checked))]

    try:
        refused, *served = asyncio.run(scenario())
    finally:
        decoder.close()
    assert isinstance(refused, BudgetExhausted)
    assert served == ["done", "done", "checked key: not bounded"]
