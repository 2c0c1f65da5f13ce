"""The encodings' fast paths write exactly what their reference does (events/encoding.py).

`js_json` writes float-free values with msgspec, and `is_iso_date` checks the common
24-character timestamp without re; each is held here against an independent reference:
the json module (with JSON.stringify's lone-surrogate escape) and the toISOString shape
with Python's calendar.
"""

from __future__ import annotations

import calendar
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.encoding import is_iso_date, js_json

LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def stringify(value: Any) -> str:
    """JSON.stringify of a float-free JSON value, by the json module: compact, non-ASCII
    kept, each lone surrogate written as its escape (ECMA-262 25.5.2.3)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def test_js_json_writes_every_code_point_as_the_json_module_does():
    """Every code point (lone surrogates included) as text, as a key and inside a list:
    the escapes (\\n, \\u001f, \\ud800), and what is kept as it is (U+2028, DEL, emoji)."""
    for start in range(0, 0x110000, 0x1000):
        chars = [chr(c) for c in range(start, start + 0x1000)]
        for value in (
            "".join(chars),
            chars,
            {c: i for i, c in enumerate(chars)},
            [{"k": c} for c in chars[:64]],
        ):
            assert js_json(value) == stringify(value)


def test_js_json_writes_integers_of_any_size():
    for value in (0, -1, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**40, -(10**40)):
        assert js_json(value) == str(value)
        assert js_json([value, {"n": value}]) == f'[{value},{{"n":{value}}}]'


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(st.characters(exclude_categories=()), max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=()), max_size=6), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON_VALUES)
def test_js_json_of_float_free_values_is_the_json_modules(value: Any):
    assert js_json(value) == stringify(value)


def reference_is_iso_date(text: str) -> bool:
    """toISOString()'s 24-character shape (a four-digit year), by regex and calendar."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z", text):
        return False
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    if not (1 <= month <= 12 and hour <= 23 and minute <= 59 and second <= 59):
        return False
    return 1 <= day <= calendar.monthrange(year, month)[1]


VALID = ["2024-01-16T08:56:04.715Z", "2024-02-29T23:59:59.999Z", "0000-12-31T00:00:00.000Z"]
#: Characters to put anywhere: each kind the shape tells apart, and digits of other scripts
#: (Python's int() reads them; toISOString writes none).
POOL = "0123456789-T:.Z tz+/\n\x00é٣²０𝟘"


def test_is_iso_date_checks_each_character_of_the_shape():
    """Every position of a valid timestamp changed to every character of POOL."""
    checked = 0
    for valid in VALID:
        assert is_iso_date(valid)
        for index in range(len(valid)):
            for char in POOL:
                text = valid[:index] + char + valid[index + 1 :]
                assert is_iso_date(text) == reference_is_iso_date(text), text
                checked += 1
    assert checked == len(VALID) * 24 * len(POOL)


@settings(max_examples=500, deadline=None)
@given(
    year=st.integers(0, 9999),
    month=st.integers(0, 13),
    day=st.integers(0, 32),
    hour=st.integers(0, 25),
    minute=st.integers(0, 61),
    second=st.integers(0, 61),
    millis=st.integers(0, 999),
)
def test_is_iso_date_reads_the_calendar(
    year: int, month: int, day: int, hour: int, minute: int, second: int, millis: int
):
    text = f"{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z"
    assert is_iso_date(text) == reference_is_iso_date(text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.sampled_from(POOL), min_size=24, max_size=24))
def test_is_iso_date_of_any_24_characters(text: str):
    assert is_iso_date(text) == reference_is_iso_date(text)


def test_js_json_of_deeply_nested_values_is_the_json_modules():
    """Past `MAX_NESTING` levels the json module writes the value, refusing what it
    always refused (a value nested past the interpreter's recursion limit)."""
    # Past it too, floats print as JSON.stringify prints them.
    leaves = {"x": '"x"', 1e21: "1e+21", 2.0: "2", 0.5: "0.5", "f": '{"a":[1,1e-7]}'}
    for depth in (127, 128, 129, 200):
        for leaf, written in leaves.items():
            value: Any = {"a": [1, 1e-7]} if leaf == "f" else leaf
            for _ in range(depth):
                value = [value]
            assert js_json(value) == "[" * depth + written + "]" * depth
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        js_json(deep)
