"""Validation: every event is checked against the JSON Schema for its name; errors say where."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import fastjsonschema
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.envelope import Event
from events.sources import open_source
from events.validation import (
    INVALID,
    UNKNOWN,
    UNPARSEABLE,
    Catalog,
    Validator,
    _fast_validator,
    detect_catalog,
    validate_events,
)
from tests.conftest import FIXTURES, MICRO, REBASE, SHARED, SMALL

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
    "unexpected key": ({**MEMORY, "mood": 1}, INVALID, "$", "Additional properties"),
    "bad date": ({**MEMORY, "createdAt": "yesterday"}, INVALID, "$.createdAt", "does not match"),
    "item type": ({**MEMORY, "tags": ["a", 7]}, INVALID, "$.tags[1]", "is not of type 'string'"),
}


@pytest.mark.parametrize("case", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_invalid_args_are_reported_with_position_name_and_path(case: str):
    """The message names the event id (e1230.1), its ordinal, its name and the JSON path."""
    args, kind, path, reason = CORRUPTIONS[case]
    _, problem = Validator(AI_DESK).check(_event("v1.MemoryAdded", args))
    assert problem is not None
    assert (problem.kind, problem.path) == (kind, path)
    message = problem.message("eventlog@6.db")
    assert message.startswith("e1230.1 (#1234, v1.MemoryAdded) in eventlog@6.db: ")
    assert reason in message and f"at {path}" in message


def test_long_offending_values_are_cut_short():
    _, problem = Validator(AI_DESK).check(
        _event("v1.MemoryAdded", {**MEMORY, "importance": "x" * 5000})
    )
    assert problem is not None and len(problem.message()) < 400 and "…" in problem.message()


def test_unknown_names_are_unknown_not_invalid():
    _, problem = Validator(AI_DESK).check(_event("v9.Teleported", {"id": 1}))
    assert (
        problem is not None and problem.kind == UNKNOWN and "unknown event name" in problem.reason
    )


@pytest.mark.parametrize("text", ["{not json", "", "NaN", '{"id": Infinity}', "[" * 100_000])
def test_args_that_are_not_json_are_unparseable(text: str):
    _, problem = Validator(AI_DESK).check(_event("v1.MemoryDeleted", text))
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


def test_client_document_values_are_partial_but_closed():
    v = Validator(AI_DESK)
    ok = {"id": "default", "value": {"theme": "dark"}}
    assert v.check(_event("userPreferencesSet", ok))[1] is None
    bad = {"id": "default", "value": {"theme": "sepia"}}
    assert v.check(_event("userPreferencesSet", bad))[1].path == "$.value.theme"
    extra = {"id": "static", "value": {"zoom": 2}}
    assert v.check(_event("uiStateSet", extra))[1] is not None
    nested = {"id": "default", "value": {"notifications": {"enabled": True}}}
    assert v.check(_event("userPreferencesSet", nested))[1].path == "$.value.notifications"


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


# ---------------------------------------------------------------- fast path agrees with jsonschema

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


def _mutations(doc: dict) -> st.SearchStrategy:
    """Args near the schema: real-looking objects with keys dropped, added or retyped."""
    props = doc.get("properties", {})
    fields = {k: json_values for k in props}
    return st.fixed_dictionaries({}, optional={**fields, "extra": json_values}) | json_values


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fast_validators_agree_with_jsonschema(data):
    """fastjsonschema (hot path) and jsonschema (reference) accept exactly the same args."""
    name = data.draw(st.sampled_from(sorted(AI_DESK.schemas)))
    doc = AI_DESK.schemas[name]
    args = data.draw(_mutations(doc))
    fast = _fast_validator(doc)
    try:
        fast(args)
        fast_ok = True
    except fastjsonschema.JsonSchemaException:
        fast_ok = False
    assert fast_ok == jsonschema.Draft202012Validator(doc).is_valid(args), (name, args)


def test_fast_validators_agree_on_every_real_event():
    v = Validator(AI_DESK)
    for event in open_source(REBASE).events():
        args = json.loads(event.args_json)
        assert jsonschema.Draft202012Validator(AI_DESK.schemas[event.name]).is_valid(args)
        assert v.check(event)[1] is None
