"""Validation: every event is checked against the JSON Schema for its name; errors say where."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.encoding import MAX_NESTING
from events.envelope import Event
from events.sources import open_source
from events.validation import (
    EXCESS_KEY,
    INVALID,
    LONE_SURROGATE,
    NESTING_REASON,
    NUL_IN_TEXT,
    UNKNOWN,
    UNPARSEABLE,
    Catalog,
    Validator,
    detect_catalog,
    fast_validator,
    nesting,
    reference_validator,
    validate_events,
)
from tests import differential
from tests.conftest import FIXTURES, MICRO, REBASE, SHARED, SMALL, at_stack_depth

GEN_SCHEMA = SHARED.parent / "gen" / "schema.mjs"
AI_DESK = Catalog.bundled("ai-desk")


def test_catalog_covers_every_event_of_the_apps_livestore_schema():
    """One schema per event: the 13 user events plus the two client-document set events."""
    assert set(AI_DESK.schemas) == {
        "v1.PersonaCreated",
        "v2.PersonaCreated",
        "v1.PersonaUpdated",
        "v1.PersonaDeleted",
        "v1.MemoryAdded",
        "v1.MemoryUpdated",
        "v1.MemoryDeleted",
        "v1.PluginInstalled",
        "v1.PluginEnabled",
        "v1.PluginDisabled",
        "v1.PluginUninstalled",
        "v1.ConfigSet",
        "v1.DraftSaved",
        "userPreferencesSet",
        "uiStateSet",
    }
    for doc in AI_DESK.schemas.values():
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    if GEN_SCHEMA.exists():
        text = GEN_SCHEMA.read_text("utf-8")
        for name in AI_DESK.schemas:
            if name.startswith("v"):
                assert f"name: '{name}'" in text, name


@pytest.mark.parametrize("path", [SMALL, REBASE, MICRO, FIXTURES / "small" / "export.json"])
def test_every_event_of_the_real_fixtures_is_valid(path: Path):
    """Real LiveStore logs validate in full, with the catalog picked from their names."""
    src = open_source(path)
    report = validate_events(src.events(), Validator(detect_catalog(src.event_names())))
    assert report.total > 0 and report.ok, report.examples[:3]


@pytest.mark.skipif(not (SHARED / "large").exists(), reason="shared fixtures not present")
def test_every_event_of_the_large_fixture_is_valid():
    """All 100,000 events of the large real log are valid."""
    src = open_source(SHARED / "large" / "ai-desk")
    report = validate_events(src.events(), Validator(AI_DESK))
    assert (report.total, report.valid) == (100_000, 100_000)


def test_the_micro_fixture_is_recognised_as_the_todo_catalog():
    assert detect_catalog(open_source(MICRO).event_names()).name == "todo-0.3.1"


def _event(name: str, args: object, position: int = 1234, client: int = 1) -> Event:
    args_json = args if isinstance(args, str) else json.dumps(args)
    return Event(position, 1230, client, 0, 1230, 0, name, args_json)


MEMORY = {
    "id": "m1",
    "personaId": "p1",
    "content": "hi",
    "kind": "fact",
    "importance": 0.5,
    "tags": ["a"],
    "createdAt": "2024-01-16T08:56:04.715Z",
}

CORRUPTIONS = {
    "wrong type": (
        {**MEMORY, "importance": "high"},
        INVALID,
        "$.importance",
        "is not of type 'number'",
    ),
    "missing field": (
        {k: v for k, v in MEMORY.items() if k != "kind"},
        INVALID,
        "$",
        "'kind' is a required property",
    ),
    "bad enum": ({**MEMORY, "kind": "gossip"}, INVALID, "$.kind", "is not one of"),
    "bad date": ({**MEMORY, "createdAt": "yesterday"}, INVALID, "$.createdAt", "toISOString()"),
    "no such day": (
        {**MEMORY, "createdAt": "2024-02-30T00:00:00.000Z"},
        INVALID,
        "$.createdAt",
        '"2024-02-30T00:00:00.000Z" is not a date as Date.prototype.toISOString() writes it',
    ),
    "date with a final newline": (
        {**MEMORY, "createdAt": "2024-01-16T08:56:04.715Z\n"},
        INVALID,
        "$.createdAt",
        "toISOString()",
    ),
    "item type": ({**MEMORY, "tags": ["a", 7]}, INVALID, "$.tags[1]", "is not of type 'string'"),
}


@pytest.mark.parametrize("case", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_invalid_args_are_reported_with_position_name_and_path(case: str):
    """The message names the event id (e1230.1), its ordinal, its name and the JSON path."""
    args, kind, path, reason = CORRUPTIONS[case]
    _, problem, _ = Validator(AI_DESK).check(_event("v1.MemoryAdded", args))
    assert problem is not None
    assert (problem.kind, problem.path) == (kind, path)
    message = problem.message("eventlog@6.db")
    assert message.startswith("e1230.1 (#1234, v1.MemoryAdded) in eventlog@6.db: ")
    assert reason in message and f"at {path}" in message


def test_long_offending_values_are_cut_short():
    _, problem, _ = Validator(AI_DESK).check(
        _event("v1.MemoryAdded", {**MEMORY, "importance": "x" * 5000})
    )
    assert problem is not None and len(problem.message()) < 400 and "…" in problem.message()


def test_unknown_names_are_unknown_not_invalid():
    _, problem, _ = Validator(AI_DESK).check(_event("v9.Teleported", {"id": 1}))
    assert (
        problem is not None and problem.kind == UNKNOWN and "unknown event name" in problem.reason
    )


@pytest.mark.parametrize("text", ["{not json", "", "NaN", '{"id": Infinity}', "[" * 100_000])
def test_args_that_are_not_json_are_unparseable(text: str):
    _, problem, _ = Validator(AI_DESK).check(_event("v1.MemoryDeleted", text))
    assert problem is not None and problem.kind == UNPARSEABLE
    assert "argsJson is not JSON" in problem.message()


def test_optional_keys_may_be_omitted_and_nullor_may_be_null():
    """Effect's Schema.optional omits the key; Schema.NullOr writes an explicit null."""
    v = Validator(AI_DESK)
    assert v.check(_event("v1.PersonaUpdated", {"id": "p"}))[1] is None
    assert v.check(_event("v1.PersonaUpdated", {"id": "p", "avatar": None}))[1] is None
    assert v.check(_event("v1.PersonaUpdated", {"id": "p", "name": None}))[1] is not None
    created = {"id": "p", "name": "n", "personality": "x", "createdAt": "2024-01-01T00:00:00.000Z"}
    assert v.check(_event("v1.PersonaCreated", created))[1] is None
    assert v.check(_event("v2.PersonaCreated", created))[1] is not None
    v2 = {**created, "avatar": None, "voice": "alloy"}
    assert v.check(_event("v2.PersonaCreated", v2))[1] is None


def test_client_document_values_are_partial_and_unknown_keys_are_dropped():
    """A set names only the keys it changes; a key the document does not know is dropped
    (LiveStore decodes the value with Schema.partial of the document's Struct)."""
    v = Validator(AI_DESK)
    ok = {"id": "default", "value": {"theme": "dark"}}
    assert v.check(_event("userPreferencesSet", ok))[1] is None
    bad = {"id": "default", "value": {"theme": "sepia"}}
    assert v.check(_event("userPreferencesSet", bad))[1].path == "$.value.theme"
    extra = {"id": "static", "value": {"zoom": 2, "scrollTop": 5}}
    args, problem, notes = v.check(_event("uiStateSet", extra))
    assert problem is None and args == {"id": "static", "value": {"scrollTop": 5}}
    assert [(n.kind, n.path) for n in notes] == [(EXCESS_KEY, "$.value.zoom")]
    nested = {"id": "default", "value": {"notifications": {"enabled": True}}}
    assert v.check(_event("userPreferencesSet", nested))[1].path == "$.value.notifications"


def test_keys_a_struct_does_not_declare_are_dropped_at_every_level_with_a_warning():
    """Like Effect's Struct decode: the event applies without the key; each is named."""
    manifest = {
        "name": "n", "version": "1", "description": "d", "author": {"name": "a", "x": 1},
        "entry": "e", "permissions": [], "minAppVersion": "0", "settings": {"kept": {"y": 2}},
        "removed": True,
    }  # fmt: skip
    args = {"id": "p", "name": "n", "version": "1", "manifest": manifest}
    args |= {"installedAt": "2024-01-16T08:56:04.715Z", "pinned": 1}
    decoded, problem, notes = Validator(AI_DESK).check(_event("v1.PluginInstalled", args))
    assert problem is None
    assert [n.path for n in notes] == ["$.manifest.author.x", "$.manifest.removed", "$.pinned"]
    assert {n.kind for n in notes} == {EXCESS_KEY}
    assert "pinned" not in decoded and "removed" not in decoded["manifest"]
    assert decoded["manifest"]["author"] == {"name": "a"}
    assert decoded["manifest"]["settings"] == {"kept": {"y": 2}}  # a Record keeps every key


def test_strict_keys_rejects_a_key_the_schema_does_not_declare():
    """--strict-keys: the schema's additionalProperties: false is enforced as written."""
    _, problem, _ = Validator(AI_DESK, strict_keys=True).check(
        _event("v1.MemoryAdded", {**MEMORY, "mood": 1})
    )
    assert problem is not None and problem.kind == INVALID
    assert "Additional properties are not allowed ('mood' was unexpected)" in problem.reason


def test_an_excess_key_beside_a_real_problem_reports_the_real_problem():
    """Dropping the key does not hide what LiveStore would refuse: a wrong type stays invalid."""
    _, problem, notes = Validator(AI_DESK).check(
        _event("v1.MemoryAdded", {**MEMORY, "mood": 1, "importance": "high"})
    )
    assert problem is not None and problem.path == "$.importance" and not notes
    assert problem.reason.endswith(
        "(in the args without $.mood: not in the schema, dropped as LiveStore drops them)"
    )


def test_a_required_key_misspelled_says_the_misspelling_was_dropped():
    """{"iid": ...} lacks "id" once the excess "iid" is dropped, as LiveStore drops it: the
    message says so, or its value ({}) would not be the one stored."""
    _, problem, _ = Validator(AI_DESK).check(_event("v1.PersonaDeleted", {"iid": "p1"}))
    assert problem is not None and problem.message() == (
        "e1230.1 (#1234, v1.PersonaDeleted): 'id' is a required property (in the args without "
        "$.iid: not in the schema, dropped as LiveStore drops them) at $ (value: {})"
    )


def test_lone_surrogates_and_nul_are_accepted_with_warnings():
    """Text cut mid-emoji and U+0000 are valid JSON that LiveStore stores: warned, applied."""
    text = (
        '{"id":"m","content":"cut \\ud83d and \\u0000 nul","updatedAt":"2024-01-16T08:56:04.715Z"}'
    )
    args, problem, notes = Validator(AI_DESK).check(_event("v1.MemoryUpdated", text))
    assert problem is None and args["content"] == "cut \ud83d and \x00 nul"
    assert sorted((n.kind, n.path) for n in notes) == [
        (LONE_SURROGATE, "$.content"),
        (NUL_IN_TEXT, "$.content"),
    ]


def test_numbers_are_read_as_javascript_reads_them():
    """An integer beyond 2^53 is the nearest double, as JSON.parse gives LiveStore."""
    text = '{"key":"k","value":[9007199254740993,12,1e21,-0]}'
    args, problem, _ = Validator(AI_DESK).check(_event("v1.ConfigSet", text))
    assert problem is None and args["value"] == [9007199254740992.0, 12, 1e21, 0]
    assert type(args["value"][1]) is int


def test_corrupted_copy_of_a_real_log_reports_each_event(small_copy: Path):
    """Corrupting real rows yields exactly those events as problems, each with its place."""
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    conn.execute(
        "UPDATE eventlog SET argsJson = json_set(argsJson, '$.importance', 'high') "
        "WHERE seqNumGlobal = 9 AND seqNumClient = 0"
    )
    conn.execute("UPDATE eventlog SET name = 'v1.Teleported' WHERE seqNumGlobal = 3")
    conn.execute(
        "UPDATE eventlog SET argsJson = '{oops' WHERE seqNumGlobal = 2 AND seqNumClient = 1"
    )
    conn.commit()
    conn.close()
    src = open_source(small_copy)
    report = validate_events(src.events(), Validator(AI_DESK))
    assert report.total == 200 and report.valid == 197
    by_id = {p.event_id: p for p in report.examples}
    assert by_id["e9"].kind == INVALID and by_id["e9"].path == "$.importance"
    assert by_id["e3"].kind == UNKNOWN and by_id["e3"].name == "v1.Teleported"
    assert by_id["e2.1"].kind == UNPARSEABLE and by_id["e2.1"].name == "uiStateSet"


# ---------------------------------------------------------------- the validators agree


def _fast_accepts(doc: dict[str, Any]) -> Callable[[Any], bool]:
    fast = fast_validator(doc)

    def accepts(args: Any) -> bool:
        try:
            fast(args)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return accepts


#: Every hot-path validator the project runs, checked against the explaining one
#: (jsonschema, with ECMA-262 patterns): a compiled validator added later joins here.
HOT_PATH: dict[str, Callable[[dict[str, Any]], Callable[[Any], bool]]] = {
    "fastjsonschema": _fast_accepts,
}
#: Strings on which Python's regex dialect, JavaScript's Date and the schemas part ways.
TRICKY = [
    "2024-01-16T08:56:04.715Z",
    "2024-01-16T08:56:04.715Z\n",
    "\u0662\u0660\u0662\u0664-01-16T08:56:04.715Z",
    "2024-01-16T08:56:04.715\uff3a",
    "2024-02-30T00:00:00.000Z",
    "2024-02-29T00:00:00.000Z",
    "2023-02-29T00:00:00.000Z",
    "+002024-01-16T08:56:04.715Z",
    "+275760-09-13T00:00:00.001Z",
    "-271821-04-20T00:00:00.000Z",
    "2024-01-16t08:56:04.715z",
    "2024-01-16T08:56:04Z",
    "\n",
    "\r",
    "\u2028",
    "a\x00b",
    "\ud83d",
    "fact",
    "fact\n",
    "system",
    "",
]
tricky_text = st.sampled_from(TRICKY) | st.text(alphabet="0123456789-:.TZ\n٣\u2028x", max_size=26)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tricky_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


def _near(doc: dict[str, Any], depth: int = 0) -> st.SearchStrategy:
    """Args near the schema: objects with its keys (some dropped, added or retyped), nested."""
    props = doc.get("properties", {})
    if not props or depth > 2:
        return json_values
    fields = {k: _near(sub, depth + 1) | json_values for k, sub in props.items()}
    return st.fixed_dictionaries({}, optional={**fields, "extra": json_values}) | json_values


def _assert_agree(name: str, args: Any) -> None:
    """Every hot-path validator accepts ARGS exactly when jsonschema does, and a rejected
    event gets a true reason from jsonschema (never the 'nested too deeply' fallback)."""
    doc = AI_DESK.schemas[name]
    reference = reference_validator(doc).is_valid(args)
    for label, make in HOT_PATH.items():
        assert make(doc)(args) == reference, (label, name, args)
    if not reference:
        problem = Validator(AI_DESK, strict_keys=True).explain(_event(name, "{}"), args)
        assert problem.reason != "nested too deeply" and "fastjsonschema" not in problem.reason


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_validators_agree_on_generated_args(data):
    """Generated args near each schema: the fast and the explaining validator agree."""
    name = data.draw(st.sampled_from(sorted(AI_DESK.schemas)))
    _assert_agree(name, data.draw(_near(AI_DESK.schemas[name])))


REAL_EVENTS = [
    (e.name, json.loads(e.args_json))
    for source in (SMALL, REBASE)
    for e in open_source(source).events()
]


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_validators_agree_on_mutated_real_events(data):
    """A real event with one value replaced (dates, enums, text, numbers, containers)."""
    name, args = data.draw(st.sampled_from(REAL_EVENTS))
    places = [f.path for f in differential.fields(AI_DESK.schemas[name], args) if f.present]
    if places:
        path = data.draw(st.sampled_from(places))
        args = differential._set(args, path, data.draw(json_values))
    _assert_agree(name, args)


def test_the_validators_agree_on_every_real_event():
    """Every real event is valid to both (and to the Validator, with no notes)."""
    v = Validator(AI_DESK)
    for source in (SMALL, REBASE):
        for event in open_source(source).events():
            _assert_agree(event.name, json.loads(event.args_json))
            assert v.check(event)[1:] == (None, ())


def test_a_date_with_a_final_newline_gets_a_true_reason():
    """The case that once fell back to 'nested too deeply': now both reject it, and why."""
    args = {**MEMORY, "createdAt": "2024-01-01T00:00:00.000Z\n"}
    _, problem, _ = Validator(AI_DESK).check(_event("v1.MemoryAdded", args))
    assert problem is not None and problem.path == "$.createdAt"
    assert problem.reason == (
        '"2024-01-01T00:00:00.000Z\\n" is not a date as Date.prototype.toISOString() writes it'
    )


@pytest.mark.parametrize("depth", [1, 64, 65, 128, 129, 300, 900, 990, 5000])
def test_how_deep_args_may_nest_does_not_depend_on_the_callers_stack(depth: int):
    """Up to MAX_NESTING levels the args are read, past it they are unparseable, named so,
    however deep the caller's stack is (json's own limit moves with it, and differed
    between the compiled and the pure build for args about 960 levels deep)."""
    value = "[" * depth + '"x"' + "]" * depth
    event = _event("v1.ConfigSet", '{"key": "k", "value": ' + value + "}")
    for frames in (0, 300, 700):
        _, problem, _ = at_stack_depth(frames, lambda: Validator(AI_DESK).check(event))
        if depth <= MAX_NESTING - 1:  # the args object is one level more
            assert problem is None, (depth, frames)
        else:
            assert problem is not None and problem.kind == UNPARSEABLE, (depth, frames)
            assert problem.reason == f"argsJson is not JSON ({NESTING_REASON})"


def test_nesting_counts_brackets_outside_strings():
    assert nesting('[[1],{"a":["[[[", "\\"]"]}]') == 3
    assert nesting("{}") == 1 and nesting('"[[["') == 0 and nesting("[" * 9) == 9
    assert nesting("[[][[]]]") == 3 and nesting('{"a":[{}]}') == 3
    assert nesting("[" * 300 + "]" * 300) == MAX_NESTING + 1  # counted no further


@pytest.mark.parametrize("cut", ["[" * 500, '{"key": "k", "value": ' + "[" * 500])
def test_deep_text_cut_short_gets_one_reason_at_any_call_depth(cut: str):
    """Text cut short inside deep brackets is not JSON; it is refused as nested too
    deeply (how deep json's parser would go before it finds the end) at any stack depth."""
    event = _event("v1.ConfigSet", cut)
    reasons = {
        at_stack_depth(frames, lambda: Validator(AI_DESK).check(event))[1].reason
        for frames in (0, 300, 700)
    }
    assert reasons == {f"argsJson is not JSON ({NESTING_REASON})"}
