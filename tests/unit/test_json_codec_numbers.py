"""Stored metadata reads back exactly: orjson would turn an integer past 64 bits into a float."""

from __future__ import annotations

from app.json_codec import dump_json, load_json


def test_integers_past_64_bits_read_back_exactly() -> None:
    value = {"big": 2**70 + 1, "negative": -(2**65), "small": 7}
    assert load_json(dump_json(value)) == value
    assert load_json(dump_json(value).encode()) == value
    assert isinstance(load_json(dump_json(value))["big"], int)


def test_ordinary_json_still_reads_back() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": "1234567890123456789 in a string"}}
    assert load_json(dump_json(value)) == value
