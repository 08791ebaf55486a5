"""The fast road of parse_strict_json (orjson plus guards) gives exactly what the standard road gives: the
same value, to the type of every number, or the same refusal with the same message."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.api import strict_json
from app.api.strict_json import StrictJsonError, parse_strict_json


def _outcome(parse: Any, body: bytes) -> tuple[str, str]:
    try:
        return "value", repr(parse(body))  # repr: 1 and 1.0, 0.0 and -0.0, key order all differ
    except StrictJsonError as exc:
        return "refused", str(exc)


def _both(body: bytes) -> None:
    assert _outcome(parse_strict_json, body) == _outcome(strict_json._parse_standard, body)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # past 64 bits on both sides
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8", exclude_characters='\\"'), max_size=8)
    | st.sampled_from(["a:b", "https://x", ":", '"', "\\", "é", "\u2028"])
)
keys = st.sampled_from(["a", "b", "a:", ":", "user_id", "é"])
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=25
)


def _text_with_duplicates(value: Any, repeat: bool) -> str:
    """JSON text of value; with repeat, every object's first key written twice (the second one kept by a
    lenient parser)."""
    if isinstance(value, dict):
        items = [f"{json.dumps(k)}: {_text_with_duplicates(v, repeat)}" for k, v in value.items()]
        if repeat and value:
            first_key, first = next(iter(value.items()))
            items.append(f"{json.dumps(first_key)} :{_text_with_duplicates(first, repeat)}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text_with_duplicates(v, repeat) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@settings(max_examples=400, deadline=None)
@given(value=values, repeat=st.booleans(), ascii_only=st.booleans())
def test_documents_take_either_road_to_the_same_answer(value: Any, repeat: bool, ascii_only: bool) -> None:
    text = _text_with_duplicates(value, repeat)
    _both(text.encode())
    _both(json.dumps(value, ensure_ascii=ascii_only).encode())


@settings(max_examples=400, deadline=None)
@given(body=st.text(alphabet='{}[]":,0123456789.eE-+ \tabnultrsf\\', max_size=30).map(str.encode))
@example(body=b'{"a":":","a":1}')
@example(body=b"18446744073709551616")
@example(body=b"[9223372036854775808.0]")
@example(body=b"[" * 300 + b"]" * 300)
def test_any_jumble_of_json_characters_gets_one_answer(body: bytes) -> None:
    _both(body)


def test_nesting_the_standard_parser_refuses_is_refused_on_either_road() -> None:
    for depth in (255, 256, 257, 1000, 1023, 1100):
        _both(b"[" * depth + b"]" * depth)
