"""The compiled fast path (msgspec + jsonschema_rs) changes no verdict and no parsed value.

`agree` is the property every check here asserts, reusable for any pair of validators:
for each event, ``Validator.check`` with the fast path gives exactly what the explaining
path alone gives (same args, down to float signs, int/float types and key order; same
problem, same message). It runs over every real event of every fixture, over the events
of the bug-report cases in ../shared (excess keys, lone surrogates, NUL), over real events
mutated near the schema, and over generated args and argsJson text, for every catalog,
and for every pair of validators in `PAIRS` (add one there and all of these run for it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.catalog import Catalog
from events.envelope import Event
from events.fastpath import (
    _LONG_NUMBER_RE,
    DECLINED,
    FastPath,
    Unsupported,
    _long_number,
    max_depth,
    strict_copy,
)
from events.sources import open_source
from events.sqlite_source import Blob
from events.validation import FORMATS, Validator
from tests.conftest import FIXTURES, ROOT, SHARED

CATALOGS = {
    "ai-desk": Catalog.bundled("ai-desk"),
    "todomvc": Catalog.bundled("todomvc"),
    "todo-0.3.1": Catalog.bundled("todo-0.3.1"),
    "readinglist": Catalog.load(ROOT / "tests" / "catalogs" / "readinglist"),
    "features": Catalog.load(ROOT / "tests" / "catalogs" / "features"),
}
CASES = SHARED.parent.parent / "cases"
TODOMVC_LARGE = SHARED.parent / "apps" / "todomvc" / "fixtures" / "large" / "todomvc"
#: Real logs and the catalog of their app (the shared ones are skipped when absent).
REAL_LOGS = {
    "small": (FIXTURES / "small" / "ai-desk", "ai-desk"),
    "small-ndjson": (FIXTURES / "small" / "events.ndjson", "ai-desk"),
    "small-export": (FIXTURES / "small" / "export.json", "ai-desk"),
    "synced-rebase": (FIXTURES / "synced-rebase" / "ai-desk", "ai-desk"),
    "v0.3.1-micro": (FIXTURES / "v0.3.1-micro" / "s031", "todo-0.3.1"),
    "todomvc-small": (FIXTURES / "todomvc-small" / "todomvc", "todomvc"),
    "todomvc-synced": (FIXTURES / "todomvc-synced" / "todomvc", "todomvc"),
    "readinglist-small": (FIXTURES / "readinglist-small" / "readinglist", "readinglist"),
    "readinglist-synced": (FIXTURES / "readinglist-synced" / "readinglist", "readinglist"),
    "large": (SHARED / "large" / "ai-desk", "ai-desk"),
    "todomvc-large": (
        SHARED.parent / "apps" / "todomvc" / "fixtures" / "large" / "todomvc",
        "todomvc",
    ),
    "case-excess-keys-memory": (CASES / "excess-keys" / "memory-updated" / "ai-desk", "ai-desk"),
    "case-excess-keys-document": (CASES / "excess-keys" / "client-document" / "ai-desk", "ai-desk"),
    "case-lone-surrogate": (CASES / "lone-surrogate" / "ai-desk", "ai-desk"),
    "case-nul-in-text": (CASES / "nul-in-text" / "ai-desk", "ai-desk"),
    "case-history-gap": (CASES / "history-gap" / "ai-desk", "ai-desk"),
}


def same(a: Any, b: Any) -> bool:
    """A and B are the same JSON value down to types, float bits and key order (walked
    without recursion: values may be nested a thousand deep)."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if type(x) is not type(y):
            return False
        if type(x) is dict:
            if list(x) != list(y):
                return False
            pending.extend((x[k], y[k]) for k in x)
        elif type(x) is list:
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif repr(x) != repr(y):  # floats by their bits: -0.0 is not 0.0
            return False
    return True


def agree(
    events: Iterable[Event], fast: Any, reference: Validator, *, many: bool = True
) -> tuple[int, int]:
    """Assert FAST and REFERENCE check every event alike, one at a time and as a list
    (`Validator.check_many`); return (events, events FAST's fast path accepts)."""
    count = accepted = 0
    events = list(events)
    # The replay's batch form gives the same results (unless MANY is false).
    listed = fast.check_many(events) if many else [None] * len(events)
    for event, at_once in zip(events, listed, strict=True):
        got, want = fast.check(event), reference.check(event)
        assert same(got[0], want[0]) and got[1:] == want[1:], (event, got, want)
        if at_once is not None:
            assert same(at_once[0], want[0]) and at_once[1:] == want[1:], (event, at_once, want)
        count += 1
        if fast.fastpath is not None:
            read = _as_read(event) if isinstance(fast, ReadAsUtf8) else event
            accepted += fast.fastpath.accept(read.name, read.args_json) is not DECLINED
    return count, accepted


#: Makes (candidate, reference) validators for a catalog.
Pair = Callable[[Catalog], tuple[Any, Validator]]


def validators(catalog: Catalog) -> tuple[Validator, Validator]:
    """(with the fast path, the explaining path alone) for CATALOG."""
    return Validator(catalog), Validator(catalog, fast=False)


def strict_validators(catalog: Catalog) -> tuple[Validator, Validator]:
    """The same pair under --strict-keys (an excess key is a problem, not a note)."""
    return Validator(catalog, strict_keys=True), Validator(catalog, strict_keys=True, fast=False)


def _as_read(event: Event) -> Event:
    """EVENT as a replay reads it from a STRICT eventlog: argsJson text as its UTF-8 bytes
    (`SqliteEventlog.events` with utf8_args). Text with a lone surrogate stays text: SQLite
    would hold bytes that are not UTF-8, which refuse the source either way
    (tests/test_utf8_args.py)."""
    text = event.args_json
    if type(text) is str:
        try:
            return event._replace(args_json=text.encode("utf-8"))
        except UnicodeEncodeError:
            pass
    return event


class ReadAsUtf8:
    """A `Validator` (the compiled class, so wrapped) given each event's args as a replay
    reads them (`_as_read`)."""

    def __init__(self, validator: Validator):
        self.validator = validator
        self.fastpath = validator.fastpath

    def check(self, event: Event) -> Any:
        return self.validator.check(_as_read(event))

    def check_many(self, events: Any, lap: Any = None) -> Any:
        return self.validator.check_many([_as_read(e) for e in events], lap)


def utf8_validators(catalog: Catalog) -> tuple[Any, Validator]:
    """(the fast path given UTF-8 bytes, the explaining path given the text) for CATALOG."""
    return ReadAsUtf8(Validator(catalog)), Validator(catalog, fast=False)


#: The validator pairs that must agree, each (candidate, reference) for a catalog. Another
#: validator (a new compiled path, patterns read as ECMA-262) is one more entry: every
#: agreement test below then runs for it too.
PAIRS: dict[str, Pair] = {
    "fastpath-vs-explaining": validators,
    "fastpath-vs-explaining-strict-keys": strict_validators,
    "fastpath-on-utf8-bytes-vs-explaining": utf8_validators,
}


@pytest.fixture(params=list(PAIRS))
def pair(request: pytest.FixtureRequest) -> Pair:
    return PAIRS[request.param]


def _event(name: Any, args_json: Any, position: int = 7) -> Event:
    return Event(position, position, 0, 0, position - 1, 0, name, args_json)


# ---------------------------------------------------------------- real events


@pytest.mark.parametrize("log", REAL_LOGS, ids=list(REAL_LOGS))
def test_every_real_event_gets_the_same_verdict_and_args(log: str, pair: Pair):
    """Every event of every real log: same args and same problem with the fast path as
    without it; and the fast path does accept nearly all of them."""
    path, catalog = REAL_LOGS[log]
    if not path.exists():
        pytest.skip(f"{path} not present")
    source = open_source(path)
    try:
        count, accepted = agree(source.events(), *pair(CATALOGS[catalog]))
    finally:
        source.close()
    assert count > 0
    if not log.startswith("case-"):
        assert accepted >= 0.95 * count, (accepted, count)


# ---------------------------------------------------------------- mutated and generated events

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, -0.0, 1.0, 1e300, 5e-324, 2.0**53, 123456789.0])
    | st.text(max_size=8)
    | st.sampled_from(
        [
            "2024-01-16T08:56:04.715Z",
            "2024-01-16T08:56:04.715Z\n",
            "\n2024-01-16T08:56:04.715Z",
            "٢٠٢٤-01-16T08:56:04.715Z",  # Arabic-Indic digits: \d in Python, not in ECMA
            "2024-01-16T08:56:04\u2028715Z",
            "+002024-01-16T08:56:04.715Z",
            "2024-13-16T08:56:04.715Z",
            "fact",
            "Fact",
            "system",
            "all",
            "a\u0007b",
            "\x00",
            "\ud800",
        ]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def near_schema(draw: st.DrawFn, catalog: Catalog) -> tuple[str, Any]:
    """(name, args) close to the name's schema: its keys, some dropped, retyped or extra."""
    name = draw(st.sampled_from(sorted(catalog.schemas)))
    props = catalog.schemas[name].get("properties", {})
    fields = {k: json_values for k in props}
    args = draw(st.fixed_dictionaries({}, optional={**fields, "extra": json_values}) | json_values)
    return name, args


def _texts(args: Any) -> list[str]:
    """ARGS as the texts a log may hold: JSON.stringify's compact form, spaced, escaped."""
    try:
        compact = json.dumps(args, ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        return []
    return [compact, json.dumps(args), json.dumps(args, ensure_ascii=True), f" {compact}\n"]


SLOW = settings(deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("catalog", CATALOGS, ids=list(CATALOGS))
@SLOW
@given(data=st.data())
def test_generated_args_near_the_schema_get_the_same_verdict(catalog: str, data: Any, pair: Pair):
    """Args built from each schema's keys (dropped, retyped, extra, odd dates and digits)
    written as several JSON texts: the fast path changes nothing."""
    name, args = data.draw(near_schema(CATALOGS[catalog]))
    agree((_event(name, text) for text in _texts(args)), *pair(CATALOGS[catalog]))


@st.composite
def mutated_real_event(draw: st.DrawFn) -> Event:
    """A real event of the small log with its argsJson mutated: a value replaced, a key
    added or removed, or the text cut, spliced or given a stray character."""
    source = open_source(FIXTURES / "small" / "ai-desk")
    events = list(source.events())
    source.close()
    event = draw(st.sampled_from(events))
    args = json.loads(event.args_json)
    how = draw(st.sampled_from(["value", "add", "drop", "text"]))
    if how in ("value", "drop") and args:
        path = [draw(st.sampled_from(sorted(args)))]
        target = args
        while isinstance(target[path[-1]], dict) and target[path[-1]] and draw(st.booleans()):
            target = target[path[-1]]
            path.append(draw(st.sampled_from(sorted(target))))
        if how == "drop":
            del target[path[-1]]
        else:
            target[path[-1]] = draw(json_values)
    elif how == "add":
        args[draw(st.text(max_size=6))] = draw(json_values)
    text = json.dumps(args, ensure_ascii=False, separators=(",", ":"))
    if how == "text":
        text = event.args_json
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", "\x01", "1", ",", "}", "\\u0000", "e9"]))
        text += text[cut + draw(st.integers(0, 2)) :]
    return event._replace(args_json=text)


@SLOW
@given(event=mutated_real_event())
def test_mutated_real_events_get_the_same_verdict(event: Event, pair: Pair):
    """Real events with a value replaced, a key added or dropped, or the text damaged."""
    agree([event], *pair(CATALOGS["ai-desk"]))


json_text = st.text(alphabet='{}[]":,.-+eE0123456789 \\u\n\ttrufalsn', max_size=24)


@SLOW
@given(name=st.sampled_from(sorted(CATALOGS["ai-desk"].schemas)), text=json_text)
def test_generated_argsjson_text_gets_the_same_verdict(name: str, text: str, pair: Pair):
    """Text made of JSON's own characters, mostly not JSON: same verdict either way."""
    agree([_event(name, text)], *pair(CATALOGS["ai-desk"]))


json_numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)


@SLOW
@given(numbers=st.lists(json_numbers, min_size=1, max_size=8))
def test_numbers_of_any_length_and_exponent_parse_to_the_same_values(
    numbers: list[str], pair: Pair
):
    """Long mantissas and big exponents (not the shortest forms JSON.stringify writes):
    msgspec's floats are Python's, bit for bit, or the event is declined."""
    text = '{"key":"k","value":[' + ",".join(numbers) + "]}"
    agree([_event("v1.ConfigSet", text)], *pair(CATALOGS["ai-desk"]))


@pytest.mark.parametrize(
    "text",
    [
        '{"key":"k","value":1e999}',  # json reads infinity; msgspec refuses: declined
        '{"key":"k","value":-1e400}',
        '{"key":"k","value":123456789012345678901234567890}',
        '{"key":"k","value":NaN}',
        '{"key":"k","value":"\\ud800"}',
        '{"key":"k","value":"\\ud83d\\ude00"}',
        '{"key":"k","value":1,"value":2}',
        '{"key":"k","value":' + "[" * 65 + "]" * 65 + "}",
        '{"key":"k","value":' + "[" * 5000 + "]" * 5000 + "}",
        '\ufeff{"key":"k","value":1}',
        '{"key":"k","value":-0.0}',
        '{"key":"k","value":-0}',
        '{"key":"k","value":"a\tb"}',
        '{"key":"k","value":1}  ',
        '{"key":"k","value":1} x',
        "",
    ],
)
def test_numbers_escapes_and_nesting_at_the_edges_get_the_same_verdict(text: str, pair: Pair):
    """Texts where json and msgspec could differ: the fast path declines or agrees."""
    agree([_event("v1.ConfigSet", text)], *pair(CATALOGS["ai-desk"]))


def test_nesting_near_the_recursion_limit_gets_the_same_verdict(
    pair: Pair,
):
    """json gives up a few levels before msgspec (how many depends on the stack): every
    depth around the limit gets the explaining path's verdict. (Compared one call at a
    time from the same depth: the explaining path's own verdict there depends on how
    deep the caller's stack is, so a list checked a frame deeper may differ.)"""
    events = [
        _event("v1.ConfigSet", '{"key":"k","value":' + "[" * depth + "]" * depth + "}")
        for depth in range(850, 1010)
    ]
    agree(events, *pair(CATALOGS["ai-desk"]), many=False)


def _memory_with_tags(tags: str) -> Event:
    """A v1.MemoryAdded whose tags are TAGS (text): its schema admits two levels."""
    return _event(
        "v1.MemoryAdded",
        '{"id":"m","personaId":"p","content":"c","kind":"fact","importance":0.5,'
        f'"tags":{tags},"createdAt":"2024-02-26T08:53:41.713Z"}}',
    )


@pytest.mark.parametrize("depth", [1, 2, 65, 129, 300, 900, 1000, 5000, 100_000])
def test_deep_text_where_the_schema_admits_two_levels_gets_the_same_verdict(depth: int, pair: Pair):
    """The bracket screen is skipped where the schema bounds the depth (`max_depth`):
    deeper text, however deep, fails validation or msgspec's own limit, and gets the
    explaining path's verdict. Brackets inside strings do not decline anything there."""
    events = [
        _memory_with_tags("[" * depth + "]" * depth),
        _memory_with_tags("[" + "[" * depth + '"a"' + "]" * depth + "]"),
        _memory_with_tags('["' + "[{" * depth + '"]'),
    ]
    fast, reference = pair(CATALOGS["ai-desk"])
    agree(events, fast, reference)
    if fast.fastpath is not None:  # a bracket-heavy string is no reason to decline
        assert fast.fastpath.accept(events[2].name, events[2].args_json) is not DECLINED


def test_max_depth_counts_the_nesting_a_schema_admits():
    """0 for scalars, one level an object or array, None wherever any value may go."""
    assert max_depth({"type": "string"}) == 0
    assert max_depth({"enum": ["a", None]}) == 0
    assert max_depth(False) == 0
    assert max_depth(True) is None
    assert max_depth({}) is None
    assert max_depth({"type": "object"}) is None  # undeclared keys of any value
    assert max_depth({"type": "object", "additionalProperties": False}) == 1
    assert max_depth({"type": "array"}) is None
    assert max_depth({"type": "array", "items": {"type": "number"}}) == 1
    nested = {
        "type": ["object", "null"],
        "properties": {"a": {"type": "array", "items": {"type": "array", "items": False}}},
        "additionalProperties": {"type": "integer"},
    }
    assert max_depth(nested) == 3
    assert max_depth({**nested, "additionalProperties": {"type": "array"}}) is None
    assert (
        max_depth({"type": "object", "properties": {"v": {}}, "additionalProperties": False})
        is None
    )
    memory = CATALOGS["ai-desk"].schemas["v1.MemoryAdded"]
    assert max_depth(memory) == 2
    assert max_depth(CATALOGS["ai-desk"].schemas["v1.ConfigSet"]) is None


def test_events_that_are_not_text_or_have_odd_names_get_the_same_verdict(
    pair: Pair,
):
    """A hostile source's names and argsJson may be numbers, BLOBs, NULL or JSON values."""
    fast, reference = pair(CATALOGS["ai-desk"])
    odd = [
        _event(None, "{}"),
        _event(7, "{}"),
        _event(["v1.ConfigSet"], "{}"),
        _event({"a": 1}, "{}"),
        _event("v1.ConfigSet", None),
        _event("v1.ConfigSet", Blob(b'{"key":"k","value":1}')),  # a BLOB, as a replay reads it
        _event("v1.ConfigSet", 12),
        _event("v9.Unknown", '{"key":"k","value":1}'),
    ]
    agree(odd, fast, reference)


# ---------------------------------------------------------------- what the fast path accepts


def test_patterns_are_rewritten_to_match_no_more_than_python_or_ecma():
    """\\d is ASCII digits and . excludes line terminators, so jsonschema_rs never accepts a
    string Python's re (fastjsonschema) or ECMA-262 (LiveStore) would refuse."""
    schema = {"type": "string", "pattern": "^\\d[.]a.b$"}
    fast = FastPath({"x": schema})
    assert fast.accept("x", '"1.a-b"') == "1.a-b"
    for refused in ['"٣.a-b"', '"1.a\\nb"', '"1.a\u2028b"', '"1xa-b"', '"1.a-b\\n"']:
        assert fast.accept("x", refused) is DECLINED, refused


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "^(?=a)"},
        {"type": "string", "pattern": "(a)\\1"},
        {"type": "string", "pattern": "\\w+"},
        {"type": "string", "pattern": "\\s"},
        {"type": "string", "pattern": "\\bx"},
        {"type": "string", "pattern": "\\p{L}"},
        {"type": "string", "pattern": "(?i)a"},
        {"type": "string", "pattern": "é"},
        {"type": "array", "uniqueItems": True},
        {"type": "number", "minimum": 0},
        {"enum": [1, 2]},
        {"enum": [{"a": 1}]},
        {"type": "array", "items": [{"type": "string"}]},
        {"$ref": "#/$defs/x"},
        {"oneOf": [{"type": "string"}]},
    ],
)
def test_schemas_outside_the_checked_keywords_get_no_fast_path(schema: dict[str, Any]):
    """A keyword or pattern whose meaning differs between the validators (or that was not
    checked) leaves that event name to the explaining path."""
    with pytest.raises(Unsupported):
        strict_copy(schema)
    fast = FastPath({"x": schema})
    assert "x" in fast.unsupported and fast.accept("x", '"a"') is DECLINED


def test_formats_are_checked_as_the_explaining_path_checks_them():
    """livestore-date runs the explaining path's own check; a format it treats as an
    annotation (date-time) is not asserted by the fast path either."""
    fast = FastPath(
        {
            "d": {"type": "string", "format": "livestore-date"},
            "t": {"type": "string", "format": "date-time"},
        },
        FORMATS,
    )
    assert fast.accept("d", '"2024-01-16T09:58:58.579Z"') == "2024-01-16T09:58:58.579Z"
    for refused in ['"2024-02-30T00:00:00.000Z"', '"2024-01-16"', '"x"']:
        assert fast.accept("d", refused) is DECLINED, refused
    assert fast.accept("t", '"not a date"') == "not a date"


@pytest.mark.parametrize(
    "text",
    [
        '{"s": "a\\u0000b"}',  # U+0000: the explaining path notes it (nul-in-text)
        '{"s\\u0000": 1}',
        '{"s": "\\ud83d"}',  # a lone surrogate: noted and stored as U+FFFD (msgspec refuses)
        '{"s": "\\ud83dx"}',
        '{"s": "\\uD83D\\u0041"}',
        '{"s": "\\udc00\\ud83d"}',
        '{"\\udc00": "k"}',
        '{"n": 9007199254740993}',  # beyond 2^53: JSON.parse reads 9007199254740992
        '{"n": -12345678901234567890}',
        '{"v": {"deep": [12345678901234567]}}',  # a value of any type: the text is scanned
    ],
)
def test_text_the_explaining_path_reads_otherwise_is_declined(text: str):
    """Escapes that spell U+0000 or a lone surrogate and integers JSON.parse rounds are
    left to the explaining path, which notes or rounds them, as text and as UTF-8."""
    schema = {
        "type": "object",
        "properties": {"s": {"type": "string"}, "n": {"type": "number"}, "v": {}},
    }
    assert FastPath({"x": schema}).accept("x", text) is DECLINED
    assert FastPath({"x": schema}).accept("x", text.encode("utf-8")) is DECLINED
    assert FastPath({"x": schema}).accept("x", '{"s": "é", "n": 0.6280709661077708}') == {
        "s": "é",
        "n": 0.6280709661077708,
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"s": "\\u0007 \\u001b[0m \\u001f"}',  # control characters, as JSON.stringify writes them
        '{"s": "\\u00e9\\u2028"}',
        '{"s": "\\uD83D\\uDE00 \\udbff\\udfff"}',  # surrogate pairs: one character each
        '{"s\\u0001": "\\u0000x"}',  # \\u0000 declines wherever it is (below)
    ],
)
def test_other_escapes_take_the_fast_path_with_the_same_text(text: str):
    """Escapes that spell neither U+0000 nor a lone surrogate parse to the same text
    either way: the fast path takes them. Real logs hold them: JSON.stringify writes
    control characters so (379 of large's events hold \\u0007 and \\u001b)."""
    schema = {"type": "object", "properties": {"s": {"type": "string"}}}
    fast = FastPath({"x": schema})
    for spelled in (text, text.encode("utf-8")):
        got = fast.accept("x", spelled)
        if "\\u0000" in text:
            assert got is DECLINED
        else:
            assert got is not DECLINED and same(got, json.loads(text))
    validator, reference = validators(_catalog_of(schema))
    agree([_event("x", text)], validator, reference)


def _catalog_of(schema: dict[str, Any]) -> Catalog:
    """A catalog of one event, ``x``, with SCHEMA."""
    return Catalog(name="t", directory=ROOT, schemas={"x": schema})


def test_every_bundled_and_test_catalog_schema_has_a_fast_path():
    """The catalogs use only the checked keywords, so none of their events is left slow."""
    for catalog in CATALOGS.values():
        assert Validator(catalog).fastpath.unsupported == {}, catalog.name  # type: ignore[union-attr]


def test_a_catalog_with_an_unchecked_keyword_still_validates_its_events(tmp_path: Path):
    """Events whose schema has no fast path are decided by the explaining path, as before."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "v1.Counted",
        "type": "object",
        "properties": {"n": {"type": "number", "minimum": 0}},
    }
    (tmp_path / "v1.Counted.json").write_text(json.dumps(schema))
    catalog = Catalog.load(tmp_path)
    fast, reference = validators(catalog)
    assert fast.fastpath is not None and "minimum" in fast.fastpath.unsupported["v1.Counted"]
    events = [_event("v1.Counted", '{"n": 1}'), _event("v1.Counted", '{"n": -1}')]
    assert agree(events, fast, reference) == (2, 0)
    assert fast.check(events[0])[1] is None and fast.check(events[1])[1] is not None


#: Text around long digit runs: digits, the characters the pattern looks at on either
#: side of a run (., e, E, +), and non-ASCII digits and letters (which must never count).
long_number_text = st.text(
    alphabet=st.sampled_from(list('0123456789.eE+-"{}[]:, a') + ["é", "٣", "\U0001d7d9", "\ud83d"]),
    max_size=60,
).map(lambda s: s.replace("a", "1234567890123456"))


@SLOW
@given(text=long_number_text)
def test_the_long_number_screen_declines_exactly_what_the_pattern_finds(text: str):
    """Screening text for a run of 16 ASCII digits before the pattern leaves the verdict
    the pattern alone gives (an integer JSON.parse may round is still declined), for text
    and for its UTF-8 as a replay reads it."""
    found = _LONG_NUMBER_RE(text) is not None
    assert _long_number(text) == found
    try:
        octets = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: bytes that are not UTF-8, never parsed
        return
    assert _long_number(octets) == found
