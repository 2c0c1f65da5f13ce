"""Handlers: each event changes the tables exactly as LiveStore's materializer does."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.catalog import Catalog, Hooks
from events.encoding import js_json
from projector.replay import DEFAULT_BATCH, ReplayOptions, replay
from projector.store import RowStore
from projector.target import open_target
from tests.conftest import catalog_tables, write_ndjson

TABLES, HANDLERS = catalog_tables("ai-desk")

T0 = "2024-01-16T08:56:04.715Z"
T1 = "2024-01-17T09:00:00.000Z"
PERSONA = {"id": "p1", "name": "Ada", "personality": "calm", "createdAt": T0}
MANIFEST = {
    "name": "Web",
    "version": "1.0.0",
    "description": "d",
    "author": {"name": "A"},
    "entry": "index.js",
    "permissions": ["net"],
    "minAppVersion": "1.0.0",
    "settings": {"depth": 2, "ratio": 1e-7},
}


INSTALL = {"id": "w", "name": "Web", "version": "1.0.0", "manifest": MANIFEST, "installedAt": T0}

#: Batch sizes that put every event in a batch of its own (each row read back from the
#: target) and all events in one batch (every row worked on in memory, written once).
BATCHES = pytest.mark.parametrize("batch", [1, 20000])


def run(
    tmp_path: Path, events: list[tuple[str, dict[str, Any]]], batch_size: int = DEFAULT_BATCH
) -> sqlite3.Connection:
    """Replay EVENTS (as an NDJSON log) into a fresh target and open it."""
    target = tmp_path / "t.db"
    replay(
        write_ndjson(tmp_path / "log.ndjson", events), target, ReplayOptions(batch_size=batch_size)
    )
    conn = sqlite3.connect(target)
    conn.row_factory = sqlite3.Row
    return conn


def rows(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1')]


def test_v1_persona_is_upcast_with_null_avatar_and_voice(tmp_path: Path):
    conn = run(tmp_path, [("v1.PersonaCreated", PERSONA)])
    assert rows(conn, "personas") == [{**PERSONA, "avatar": None, "voice": None, "deletedAt": None}]


def test_v2_persona_keeps_voice_and_explicit_null_avatar(tmp_path: Path):
    conn = run(tmp_path, [("v2.PersonaCreated", {**PERSONA, "avatar": None, "voice": "alloy"})])
    assert rows(conn, "personas")[0]["voice"] == "alloy"


@BATCHES
def test_persona_update_touches_only_the_keys_present(tmp_path: Path, batch: int):
    conn = run(
        tmp_path,
        [
            ("v1.PersonaCreated", {**PERSONA, "avatar": "🌵"}),
            ("v1.PersonaUpdated", {"id": "p1", "name": "Bea"}),
            ("v1.PersonaUpdated", {"id": "p1", "avatar": None}),
            ("v1.PersonaUpdated", {"id": "nobody", "name": "x"}),
        ],
        batch_size=batch,
    )
    (row,) = rows(conn, "personas")
    assert (row["name"], row["personality"], row["avatar"]) == ("Bea", "calm", None)


def test_persona_delete_is_soft(tmp_path: Path):
    conn = run(
        tmp_path,
        [("v1.PersonaCreated", PERSONA), ("v1.PersonaDeleted", {"id": "p1", "deletedAt": T1})],
    )
    assert rows(conn, "personas")[0]["deletedAt"] == T1


MEMORY = {
    "id": "m1",
    "personaId": "p1",
    "content": "tea",
    "kind": "fact",
    "importance": 1,
    "tags": ["a", "b", "a"],
    "createdAt": T0,
}
WITH_MEMORY = [("v1.PersonaCreated", PERSONA), ("v1.MemoryAdded", MEMORY)]


def test_memory_added_sets_updated_at_and_tags(tmp_path: Path):
    conn = run(tmp_path, WITH_MEMORY)
    (row,) = rows(conn, "memories")
    assert row["updatedAt"] == T0 and row["tags"] == '["a","b","a"]'
    assert isinstance(row["importance"], float)
    assert rows(conn, "memory_tags") == [
        {"memoryId": "m1", "tag": "a"},
        {"memoryId": "m1", "tag": "b"},
    ]


@BATCHES
def test_memory_update_is_partial_and_keeps_tags_in_step(tmp_path: Path, batch: int):
    conn = run(
        tmp_path,
        [
            *WITH_MEMORY,
            ("v1.MemoryUpdated", {"id": "m1", "importance": 0.25, "updatedAt": T1}),
            ("v1.MemoryUpdated", {"id": "m1", "tags": ["c", "b", "c"], "updatedAt": T1}),
        ],
        batch_size=batch,
    )
    (row,) = rows(conn, "memories")
    assert (row["content"], row["importance"], row["tags"], row["updatedAt"]) == (
        "tea",
        0.25,
        '["c","b","c"]',
        T1,
    )
    # "a" went, "b" stayed, "c" came (once).
    assert rows(conn, "memory_tags") == [
        {"memoryId": "m1", "tag": "b"},
        {"memoryId": "m1", "tag": "c"},
    ]


@BATCHES
def test_memory_delete_is_hard_and_removes_tags(tmp_path: Path, batch: int):
    conn = run(
        tmp_path,
        [*WITH_MEMORY, ("v1.MemoryDeleted", {"id": "m1"})],
        batch_size=batch,
    )
    assert rows(conn, "memories") == [] and rows(conn, "memory_tags") == []


@BATCHES
def test_plugin_reinstall_replaces_the_row_and_resets_enabled(tmp_path: Path, batch: int):
    install = INSTALL
    conn = run(
        tmp_path,
        [
            ("v1.PluginInstalled", install),
            ("v1.PluginEnabled", {"id": "w"}),
            ("v1.PluginInstalled", {**install, "version": "2.0.0", "installedAt": T1}),
        ],
        batch_size=batch,
    )
    (row,) = rows(conn, "plugins")
    assert (row["version"], row["enabled"], row["installedAt"]) == ("2.0.0", 0, 1705482000000)
    assert row["manifest"].endswith('"settings":{"depth":2,"ratio":1e-7}}')


@BATCHES
def test_plugin_enable_disable_uninstall(tmp_path: Path, batch: int):
    install = INSTALL
    conn = run(
        tmp_path / "a",
        [("v1.PluginInstalled", install), ("v1.PluginEnabled", {"id": "w"})],
        batch_size=batch,
    )
    assert rows(conn, "plugins")[0]["enabled"] == 1
    conn = run(
        tmp_path / "b",
        [
            ("v1.PluginInstalled", install),
            ("v1.PluginDisabled", {"id": "w"}),
            ("v1.PluginUninstalled", {"id": "w"}),
        ],
        batch_size=batch,
    )
    assert rows(conn, "plugins") == []


def test_config_set_upserts_any_json_value(tmp_path: Path):
    conn = run(
        tmp_path,
        [
            ("v1.ConfigSet", {"key": "llm.provider", "value": "ollama"}),
            ("v1.ConfigSet", {"key": "n", "value": 365}),
            ("v1.ConfigSet", {"key": "llm.provider", "value": {"a": [1, None]}}),
        ],
    )
    assert rows(conn, "config") == [
        {"key": "llm.provider", "value": '{"a":[1,null]}'},
        {"key": "n", "value": "365"},
    ]


def test_draft_saved_upserts_by_persona(tmp_path: Path):
    conn = run(
        tmp_path,
        [
            ("v1.PersonaCreated", PERSONA),
            ("v1.DraftSaved", {"personaId": "p1", "text": "a", "savedAt": T0}),
            ("v1.DraftSaved", {"personaId": "p1", "text": "b", "savedAt": T1}),
        ],
    )
    assert rows(conn, "drafts") == [{"personaId": "p1", "text": "b", "savedAt": T1}]


@BATCHES
def test_client_document_set_merges_top_level_keys_into_defaults(tmp_path: Path, batch: int):
    """The first set inserts defaults + value; later ones replace top-level keys, nested whole."""
    conn = run(
        tmp_path,
        [
            ("userPreferencesSet", {"id": "default", "value": {"theme": "dark"}}),
            (
                "userPreferencesSet",
                {"id": "default", "value": {"notifications": {"enabled": False, "sound": "none"}}},
            ),
            ("userPreferencesSet", {"id": "default", "value": {}}),
            ("uiStateSet", {"id": "static", "value": {}}),
        ],
        batch_size=batch,
    )
    prefs = json.loads(rows(conn, "userPreferences")[0]["value"])
    assert prefs == {
        "theme": "dark",
        "language": "en",
        "fontSize": 14,
        "sendOnEnter": True,
        "activePersonaId": None,
        "notifications": {"enabled": False, "sound": "none"},
    }
    assert json.loads(rows(conn, "uiState")[0]["value"]) == {
        "selectedPersonaId": None,
        "sidebarOpen": True,
        "searchQuery": "",
        "scrollTop": 0,
    }


def test_memory_of_a_missing_persona_is_parked_with_its_followers(tmp_path: Path):
    """An integrity break is parked with its reason; later events on that row are held back."""
    conn = run(
        tmp_path,
        [
            ("v1.MemoryAdded", MEMORY),
            ("v1.MemoryUpdated", {"id": "m1", "content": "x", "updatedAt": T1}),
            ("v1.DraftSaved", {"personaId": "p9", "text": "a", "savedAt": T0}),
        ],
    )
    assert rows(conn, "memories") == [] and rows(conn, "drafts") == []
    parked = rows(conn, "_projector_parked")
    assert [(p["eventId"], p["kind"], p["entity"]) for p in parked] == [
        ("e1", "integrity", "memories:m1"),
        ("e2", "held", "memories:m1"),
        ("e3", "integrity", "drafts:p9"),
    ]
    assert "persona 'p1' does not exist" in parked[0]["reason"]


def test_duplicate_create_is_an_integrity_break(tmp_path: Path):
    conn = run(tmp_path, [("v1.PersonaCreated", PERSONA), ("v1.PersonaCreated", PERSONA)])
    (parked,) = rows(conn, "_projector_parked")
    assert parked["kind"] == "integrity" and "already exists" in parked["reason"]


def test_registering_a_handler_twice_is_an_error():
    """A catalog's hooks.py cannot register two handlers (or upcasters) for one name."""
    hooks = Hooks()
    hooks.handler("v1.X", tables=("t",))(lambda rows, args: None)
    with pytest.raises(ValueError, match="already registered"):
        hooks.handler("v1.X", tables=("t",))(lambda rows, args: None)
    hooks.upcaster("v1.Y", "v2.Y")(lambda args: args)
    with pytest.raises(ValueError, match="already registered"):
        hooks.upcaster("v1.Y", "v2.Y")(lambda args: args)


# ---------------------------------------------------------------- client documents = json_set

JSON_TEXT = st.text(st.characters(codec="utf-8"), max_size=6)  # quotes, \\, controls, emoji
JS_NUMBERS = st.one_of(
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e21, 1e-7, 0.1, -0.0, 5e-324, 1.7976931348623157e308, 123456789.125]),
)
PREFERENCES = st.fixed_dictionaries(
    {},
    optional={
        "theme": st.sampled_from(["system", "light", "dark"]),
        "language": JSON_TEXT,
        "fontSize": JS_NUMBERS,
        "sendOnEnter": st.booleans(),
        "activePersonaId": st.one_of(st.none(), JSON_TEXT),
        "notifications": st.fixed_dictionaries({"enabled": st.booleans(), "sound": JSON_TEXT}),
    },
)


def livestore_set(conn: sqlite3.Connection, value: dict[str, Any]) -> None:
    """What LiveStore runs for `userPreferencesSet` (client-document-def.ts), as SQL."""
    insert = "INSERT INTO doc (id, value) VALUES ('d', ?) ON CONFLICT (id) DO "
    initial = js_json({**TABLES["userPreferences"].client_document, **value})
    if not value:
        conn.execute(insert + "NOTHING", (initial,))
        return
    expr, params = "value", [initial]
    for key, item in value.items():
        expr = f"json_set({expr}, ?, json(?))"
        params.extend((f"$.{key}", js_json(item)))
    conn.execute(insert + f"UPDATE SET value = {expr}", params)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(PREFERENCES, min_size=1, max_size=5), split=st.integers(0, 5))
def test_client_document_merge_is_byte_identical_to_livestores_json_set(
    values: list[dict[str, Any]], split: int
):
    """The handler merges parsed documents; LiveStore runs json_set. The text must agree,
    whether the sets fall in one batch or the document is read back between them."""
    reference = sqlite3.connect(":memory:")
    reference.execute("CREATE TABLE doc (id TEXT PRIMARY KEY, value TEXT)")
    for value in values:
        livestore_set(reference, value)
    expected = reference.execute("SELECT value FROM doc").fetchone()[0]

    with tempfile.TemporaryDirectory() as d:
        db = open_target(Path(d) / "t.db", create=True, catalog=Catalog.bundled("ai-desk"))
        store = RowStore(db.conn, TABLES)
        user_preferences_set = HANDLERS.by_name["userPreferencesSet"].apply
        for index, value in enumerate(values):
            if index == split:
                store.flush()  # a batch boundary: the document is read back from the target
            user_preferences_set(store, {"id": "d", "value": value})
        store.flush()
        got = db.conn.execute("SELECT value FROM userPreferences").fetchone()[0]
        db.conn.close()
    assert got == expected
