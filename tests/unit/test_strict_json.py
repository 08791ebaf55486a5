"""Strict JSON for request bodies: what the standard parser lets through, refused here."""

from __future__ import annotations

import pytest

from app.api.strict_json import StrictJsonError, is_json_media_type, parse_strict_json


def test_plain_json_parses_with_big_ints_exact_and_floats_as_floats() -> None:
    value = parse_strict_json('{"a": [1, 2.5, "é", null, true], "big": 18446744073709551615, "e": 1e-400}'.encode())
    assert value == {"a": [1, 2.5, "é", None, True], "big": 2**64 - 1, "e": 0.0}
    assert isinstance(value["big"], int)


def test_a_valid_surrogate_pair_escape_is_text() -> None:
    assert parse_strict_json(b'{"k": "\\ud83d\\ude00"}') == {"k": "😀"}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[NaN]", "NaN"),
        (b"[Infinity]", "Infinity"),
        (b"[-Infinity]", "-Infinity"),
        (b"[1e400]", "out of range"),
        (b"[-1e400]", "out of range"),
        (b"[1" + b"0" * 400 + b"]", "digits"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"x": {"b": 1, "b": 1}}', "duplicate key 'b'"),
        (b'["\\ud800"]', "surrogate"),
        (b'{"\\udfff": 1}', "surrogate"),
        (b'["\xff"]', "UTF-8"),
        (b'["\xed\xa0\x80"]', "UTF-8"),  # a surrogate encoded in UTF-8 bytes
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
        (b'{"a": ', "line 1"),
        (b"", "line 1"),
        (b"\xef\xbb\xbf{}", "BOM"),
    ],
)
def test_lenient_json_is_refused_saying_why(body: bytes, why: str) -> None:
    with pytest.raises(StrictJsonError, match=why):
        parse_strict_json(body)


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json", True),
        ("Application/JSON; charset=UTF-8", True),
        ('application/json; charset="utf-8"', True),
        ("application/vnd.api+json", True),
        ("application/json; charset=latin-1", False),
        ("text/plain", False),
        ("text/json", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("", False),
        (None, False),
    ],
)
def test_only_json_media_types_in_utf8_are_json(content_type: str | None, ok: bool) -> None:
    assert is_json_media_type(content_type) is ok
