"""`projector scaffold`: a draft catalog inferred from a log, and an honest report on it.

The drafts of the real todomvc and ai-desk stores must load as catalogs, replay, and
reach the share of LiveStore's rows measured when scaffold was built (100% on both; the
bound below leaves a margin). The report may say "draft verified" only when the replay
parked nothing and verify found no difference at all.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.catalog import Catalog
from projector.cli import cli
from projector.errors import ReplayError, ScaffoldError
from projector.scaffold import Shape, infer_schema, read_log, scaffold
from tests.conftest import FIXTURES, SMALL, SMALL_STATE, at_stack_depth, write_ndjson

TODOMVC = FIXTURES / "todomvc-small" / "todomvc"
TODOMVC_STATE = TODOMVC / "state-96296379336@6.db"
#: The share of LiveStore's rows the drafts reach (measured: 100.0% on both), less a margin.
MIN_PERCENT_EQUAL = 95.0


def _state_db(path: Path, script: str) -> Path:
    """A hand-made LiveStore state DB: SCRIPT's tables beside LiveStore's own schema table."""
    conn = sqlite3.connect(path)
    conn.execute(
        'CREATE TABLE "__livestore_schema" ("tableName" text primary key, '
        '"schemaHash" integer not null, "updatedAt" text not null) strict'
    )
    conn.executescript(script)
    conn.commit()
    conn.close()
    return path


def _shape(values: list[Any]) -> Shape:
    shape = Shape()
    for value in values:
        shape.add(value)
    return shape


# ---------------------------------------------------------------- real stores


@pytest.mark.parametrize(
    ("store", "state", "tables"),
    [
        (TODOMVC, TODOMVC_STATE, ["todos", "uiState"]),
        (
            SMALL,
            SMALL_STATE,
            ["personas", "memories", "plugins", "config", "drafts", "userPreferences", "uiState"],
        ),
    ],
    ids=["todomvc-small", "ai-desk-small"],
)
def test_draft_of_a_real_store_loads_replays_and_reaches_livestores_rows(
    tmp_path: Path, store: Path, state: Path, tables: list[str]
):
    """Without its catalog, a real store's draft loads as a catalog, replays every event
    and reproduces LiveStore's rows (at least the measured share, less a margin)."""
    out = tmp_path / "draft"
    result = scaffold(store, out, state=state)
    catalog = Catalog.load(out)
    assert list(catalog.spec["tables"]) == tables
    assert result.replayed and result.applied + result.parked == result.events_read
    assert result.percent_equal is not None and result.percent_equal >= MIN_PERCENT_EQUAL
    report = (out / "REPORT.md").read_text("utf-8")
    assert result.figure in report
    assert f"{result.rows_equal:,} of {result.livestore_rows:,} LiveStore rows equal" in report
    if result.verified:
        assert result.parked == 0 and result.rows_equal == result.livestore_rows


def test_todomvc_draft_guesses_the_materializers(tmp_path: Path):
    """todomvc's draft reads like its LiveStore schema: flags, soft deletes, the bulk
    "clear completed", the client document, epoch-ms and boolean codecs."""
    scaffold(TODOMVC, tmp_path / "d", state=TODOMVC_STATE)
    spec = Catalog.load(tmp_path / "d").spec
    assert spec["tables"]["todos"]["codecs"] == {"completed": "boolean", "deletedAt": "datetime_ms"}
    assert json.loads(spec["tables"]["uiState"]["client_document"]).keys() == {
        "newTodoText",
        "filter",
    }
    events = spec["events"]
    assert events["v1.TodoCreated"] == {
        "insert": "todos",
        "values": {"id": "$.id", "text": "$.text"},
    }
    assert events["v1.TodoUncompleted"]["set"] == {"completed": False}
    assert events["v1.TodoDeleted"]["set"] == {"deletedAt": "$.deletedAt"}
    assert events["v1.TodoClearedCompleted"]["where"] == {"completed": True}
    assert "uiStateSet" not in events  # the engine's
    assert spec["client_only"] == ["uiStateSet"]


def test_a_verified_draft_names_the_guesses_no_state_can_confirm(tmp_path: Path):
    """A client document's default for keys the events set is the state's value, which
    no state can tell from the default (todomvc large's draft got filter "active" where
    the app's default is "all"): the verdict says "against this store" and lists it; a
    draft named as a bundled catalog is told to rename; the draft says where the app's
    LiveStore schema module goes (for `make oracle`), and loads with it uncommented."""
    out = tmp_path / "d"
    result = scaffold(TODOMVC, out, state=TODOMVC_STATE)
    assert result.verified
    assert result.verdict.startswith("draft verified against this store")
    assert result.verdict.endswith("but no state can confirm some guesses: check by hand")
    assert result.finish[0].startswith("uiState: the client document's default for ")
    assert any(item.startswith("name: 'todomvc' is also a bundled") for item in result.finish)
    report = (out / "REPORT.md").read_text("utf-8")
    assert result.verdict in report and result.finish[0] in report
    toml = (out / "catalog.toml").read_text("utf-8")
    assert toml.endswith('# [livestore]\n# schema_module = "livestore-schema.mjs"\n')
    (out / "catalog.toml").write_text(
        toml.replace("# [livestore]\n# schema_module", "[livestore]\nschema_module"), "utf-8"
    )
    assert Catalog.load(out).schema_module == (out / "livestore-schema.mjs").resolve()


def test_the_draft_works_with_the_ordinary_commands(runner, tmp_path: Path):
    """A draft is an ordinary catalog: validate, replay and verify --against accept it."""
    out = tmp_path / "draft"
    scaffold(SMALL, out, state=SMALL_STATE)
    target = tmp_path / "t.db"
    assert runner.invoke(cli, ["-q", "validate", "--catalog", str(out), str(SMALL)]).exit_code == 0
    replay = runner.invoke(cli, ["-q", "replay", "--catalog", str(out), str(SMALL), str(target)])
    assert replay.exit_code == 0, replay.output
    verify = runner.invoke(cli, ["verify", str(target), "--against", str(SMALL_STATE)])
    assert verify.exit_code == 0 and verify.stdout.endswith("verified\n")


def test_a_store_folder_with_two_eventlog_formats_is_drafted_from_the_one_chosen(
    runner, tmp_path: Path
):
    """A store mid-upgrade (eventlog@4.db beside @6.db, the older holding events the newer
    lacks) is refused until --format-version chooses, as by every command reading a
    SOURCE, and scaffold then drafts from that one."""
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(SMALL / "eventlog@6.db", store / "eventlog@6.db")
    shutil.copy(FIXTURES / "v0.3.1-micro" / "s031" / "eventlog@4.db", store / "eventlog@4.db")
    refused = runner.invoke(cli, ["scaffold", str(store), str(tmp_path / "d")])
    assert refused.exit_code == 1 and "--format-version 4 or --format-version 6" in refused.stderr
    for version, event in (("6", "v1.PersonaCreated"), ("4", "v1.TodoCreated")):
        out = tmp_path / f"draft{version}"
        done = runner.invoke(
            cli, ["scaffold", str(store), str(out), "--format-version", version, "--json"]
        )
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["source"].endswith(f"eventlog@{version}.db")
        assert event in Catalog.load(out).schemas


# ---------------------------------------------------------------- what the report claims


def test_report_never_says_verified_when_verify_finds_a_difference(tmp_path: Path):
    """When LiveStore's state differs from the draft's replay, the summary and REPORT.md
    say "draft NOT verified", name the table and column, and count the row as unequal."""
    state = tmp_path / "state.db"
    shutil.copyfile(TODOMVC_STATE, state)
    conn = sqlite3.connect(state)
    conn.execute(
        "UPDATE todos SET text = 'changed by hand' WHERE rowid = (SELECT MIN(rowid) FROM todos)"
    )
    conn.commit()
    conn.close()
    result = scaffold(TODOMVC, tmp_path / "d", state=state)
    assert not result.verified
    assert result.verdict.startswith("draft NOT verified")
    assert result.rows_equal == result.livestore_rows - 1
    assert any(
        item.startswith("todos: 1 differing row(s) (columns: text)") for item in result.finish
    )
    report = (tmp_path / "d" / "REPORT.md").read_text("utf-8")
    assert "draft NOT verified" in report and "draft verified" not in report
    assert "draft verified" not in "\n".join(result.summary())


def test_report_never_says_verified_when_events_were_parked(tmp_path: Path):
    """verify passes when every LiveStore row is equal, but a draft whose replay parked an
    event (here one it could not place) is still NOT verified."""
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [("v1.ItemCreated", {"id": "a", "label": "first"}), ("v1.Heartbeat", {})],
    )
    state = _state_db(
        tmp_path / "state.db",
        "CREATE TABLE items (id text primary key, label text not null) strict;"
        "INSERT INTO items VALUES ('a', 'first');",
    )
    result = scaffold(log, tmp_path / "d", state=state)
    assert result.parked == 1 and result.rows_equal == result.livestore_rows == 1
    assert all(c["ok"] for c in result.checks)
    assert not result.verified and result.verdict.startswith("draft NOT verified")
    assert result.finish == [
        "v1.Heartbeat: left out: no table for the noun 'Heartbeat': declare what it does by hand"
    ]


def test_a_key_created_again_makes_the_insert_an_upsert(tmp_path: Path):
    """A create of a key the log created before and did not delete since is guessed an
    upsert (marked), so the row is replaced instead of the event parked."""
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [
            ("v1.ItemCreated", {"id": "a", "label": "first"}),
            ("v1.ItemCreated", {"id": "a", "label": "again"}),
            ("v1.ItemCreated", {"id": "b", "label": "one"}),
            ("v1.ItemDeleted", {"id": "b"}),
            ("v1.ItemCreated", {"id": "b", "label": "two"}),
        ],
    )
    state = _state_db(
        tmp_path / "state.db",
        "CREATE TABLE items (id text primary key, label text not null) strict;"
        "INSERT INTO items VALUES ('a', 'again'), ('b', 'two');",
    )
    result = scaffold(log, tmp_path / "d", state=state)
    assert result.verified
    toml = (tmp_path / "d" / "catalog.toml").read_text("utf-8")
    assert "# guess: 1 occurrence(s) create a 'id' created before" in toml
    assert Catalog.load(tmp_path / "d").spec["events"]["v1.ItemCreated"]["on_conflict"] == "replace"


def test_a_failed_replay_is_reported_not_verified(tmp_path: Path):
    """Should the scratch replay fail, the draft and REPORT.md are still written and the
    verdict says the replay failed."""
    failure = ReplayError("draft.db: write failed after #0 (disk I/O error)")
    with mock.patch("projector.scaffold.replay", side_effect=failure):
        result = scaffold(TODOMVC, tmp_path / "d", state=TODOMVC_STATE)
    assert not result.replayed and not result.verified
    assert result.verdict == "draft NOT verified: its replay failed; finish by hand"
    assert "disk I/O error" in (tmp_path / "d" / "REPORT.md").read_text("utf-8")
    Catalog.load(tmp_path / "d")


def test_without_a_state_db_nothing_is_claimed(tmp_path: Path):
    """Without --state the draft (tables inferred from the events) replays, and the report
    says nothing can be claimed about its correctness."""
    result = scaffold(TODOMVC, tmp_path / "d")
    assert result.replayed and result.parked == 0
    assert not result.verified and result.figure is None and result.percent_equal is None
    assert "nothing can be claimed" in result.verdict
    assert result.state_hint is not None and "--state" in result.state_hint
    sql = (tmp_path / "d" / "migrations" / "0001_app_tables.sql").read_text("utf-8")
    assert '"completed" INTEGER NOT NULL DEFAULT 0' in sql
    report = (tmp_path / "d" / "REPORT.md").read_text("utf-8")
    assert "nothing can be claimed" in report and "draft verified" not in report


# ---------------------------------------------------------------- no app's names


def test_the_rules_fit_an_app_no_catalog_knows(tmp_path: Path):
    """A made-up app (notes: created, pinned/unpinned, renamed, archived with a date,
    purged, a bulk "cleared pinned", a client document) gets a verified draft from its
    names alone; a table named like the projector's own is renamed and mapped back."""
    events = [
        ("v2.NoteCreated", {"id": "n1", "title": "a", "tags": ["x"]}),
        ("v2.NoteCreated", {"id": "n2", "title": "b", "tags": []}),
        ("v2.NoteCreated", {"id": "n3", "title": "c", "tags": ["y", "z"]}),
        ("v2.NotePinned", {"id": "n1"}),
        ("v2.NotePinned", {"id": "n2"}),
        ("v2.NoteUnpinned", {"id": "n2"}),
        ("v2.NoteRenamed", {"id": "n3", "title": "c2"}),
        ("v2.NoteRemoved", {"id": "n2", "removedAt": "2024-05-01T10:00:00.000Z"}),
        ("v2.NotesClearedPinned", {"removedAt": "2024-05-02T10:00:00.000Z"}),
        ("v2.TrackingAdded", {"id": "t1", "noteId": "n3"}),
        ("editorSet", {"id": "s1", "value": {"font": "mono"}}),
    ]
    log = write_ndjson(tmp_path / "notes.ndjson", events)
    state = _state_db(
        tmp_path / "state.db",
        """
        CREATE TABLE notes (id text primary key, title text not null default '',
            tags text not null default '[]', pinned integer not null default 0,
            removedAt integer) strict;
        CREATE INDEX idx_notes_pinned ON notes (pinned);
        CREATE TABLE tracking (id text primary key, noteId text not null) strict;
        CREATE TABLE _projector_extra (id text primary key) strict;
        CREATE TABLE editor (id text primary key, value text not null) strict;
        INSERT INTO notes VALUES ('n1', 'a', '["x"]', 1, 1714644000000),
            ('n2', 'b', '[]', 0, 1714557600000), ('n3', 'c2', '["y","z"]', 0, NULL);
        INSERT INTO tracking VALUES ('t1', 'n3');
        INSERT INTO editor VALUES ('s1', '{"font":"mono","size":12}');
        """,
    )
    result = scaffold(log, tmp_path / "d", state=state)
    assert result.verified, result.finish
    spec = Catalog.load(tmp_path / "d").spec
    assert spec["tables"]["notes"]["codecs"] == {
        "tags": "json",
        "pinned": "boolean",
        "removedAt": "datetime_ms",
    }
    assert spec["tables"]["app_tracking"]["livestore"] == "tracking"
    assert spec["tables"]["app__projector_extra"]["livestore"] == "_projector_extra"
    assert json.loads(spec["tables"]["editor"]["client_document"]) == {"font": "mono", "size": 12}
    assert spec["events"]["v2.NotesClearedPinned"]["where"] == {"pinned": True}
    assert spec["events"]["v2.NoteRemoved"]["set"] == {"removedAt": "$.removedAt"}


def test_nested_args_epoch_dates_and_flag_first_bulk_deletes(tmp_path: Path):
    """An object arg's keys fill columns one level down (source.url -> url), an epoch-ms
    arg fills a NOT NULL date column no arg names, and "<Flag><DeleteVerb>" with no
    table of its own deletes every flagged row of the one table with that flag."""
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [
            ("v1.LinkImported", {"id": "l1", "source": {"url": "u1", "browser": "x"}}),
            ("v1.LinkImported", {"id": "l2", "source": {"url": "u2", "browser": "y"}}),
            ("v1.LinkStarred", {"id": "l1"}),
            ("v1.PositionSaved", {"linkId": "l2", "at": 1714644000000}),
            ("v1.StarredPurged", {}),
        ],
    )
    state = _state_db(
        tmp_path / "state.db",
        """
        CREATE TABLE links (id text primary key, url text not null,
            starred integer not null default 0) strict;
        CREATE TABLE positions (linkId text primary key, updatedAt integer not null) strict;
        INSERT INTO links VALUES ('l2', 'u2', 0);
        INSERT INTO positions VALUES ('l2', 1714644000000);
        """,
    )
    result = scaffold(log, tmp_path / "d", state=state)
    assert result.verified, result.finish
    events = Catalog.load(tmp_path / "d").spec["events"]
    assert events["v1.LinkImported"]["values"]["url"] == "$.source.url"
    assert events["v1.PositionSaved"]["values"]["updatedAt"] == "$.at"
    assert events["v1.StarredPurged"] == {"delete": "links", "where": {"starred": True}}


def test_events_the_rules_cannot_place_are_left_out_and_listed(tmp_path: Path):
    """An event whose noun names no table, or whose verb says nothing, is left out with a
    TODO in catalog.toml, parked by the replay and listed to finish by hand."""
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [
            ("v1.ItemCreated", {"id": "a"}),
            ("v1.ItemCreated", {"id": "b"}),
            ("v1.ItemDeleted", {"id": "b"}),
            ("v1.ItemPinged", {"id": "a"}),
            ("v1.Heartbeat", {}),
        ],
    )
    state = _state_db(
        tmp_path / "s.db",
        "CREATE TABLE items (id text primary key) strict; INSERT INTO items VALUES ('a');",
    )
    result = scaffold(log, tmp_path / "d", state=state)
    toml = (tmp_path / "d" / "catalog.toml").read_text("utf-8")
    assert "# TODO: v1.ItemPinged:" in toml and "# TODO: v1.Heartbeat:" in toml
    assert result.parked == 2 and not result.verified
    assert [i.split(":")[0] for i in result.finish] == ["v1.Heartbeat", "v1.ItemPinged"]


def test_a_draft_that_places_too_few_events_is_not_replayed(tmp_path: Path):
    """replay refuses a catalog whose handlers cover fewer than half of a log's names; the
    draft and its report are still written, and say the replay failed."""
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [("v1.ItemCreated", {"id": "a"}), ("v1.ItemPinged", {"id": "a"}), ("v1.Heartbeat", {})],
    )
    state = _state_db(
        tmp_path / "s.db",
        "CREATE TABLE items (id text primary key) strict; INSERT INTO items VALUES ('a');",
    )
    result = scaffold(log, tmp_path / "d", state=state)
    assert not result.replayed and not result.verified and result.figure is None
    assert result.verdict == "draft NOT verified: its replay failed; finish by hand"
    assert any("the replay with the draft failed" in item for item in result.finish)
    assert (tmp_path / "d" / "REPORT.md").is_file()


def test_the_state_db_of_another_store_is_refused_by_verify_and_nothing_claimed(
    tmp_path: Path,
):
    """With another store's state DB (the synced fixture's log, the small fixture's state),
    verify --against refuses to compare, and the report claims nothing: no figure."""
    synced = FIXTURES / "todomvc-synced" / "todomvc"
    result = scaffold(synced, tmp_path / "d", state=TODOMVC_STATE)
    assert result.replayed and not result.verified and result.figure is None
    assert result.verdict == "draft NOT verified: verify --against refused the state DB"
    assert any("is the state of another store" in item for item in result.finish)


# ---------------------------------------------------------------- schemas


def test_schema_required_keys_are_those_in_every_occurrence():
    """A key LiveStore omitted somewhere (an optional arg) is not required."""
    schema = infer_schema(_shape([{"id": "a", "n": 1}, {"id": "b"}]))
    assert schema["required"] == ["id"] and schema["additionalProperties"] is False
    assert schema["properties"]["n"] == {"type": "number"}


def test_schema_enum_only_for_few_tokens_over_many_occurrences():
    """An enum needs <= 8 distinct short tokens over >= 20 occurrences, and never for ids."""
    few = [{"kind": k, "ownerId": "u1"} for k in ["fact", "episode"] * 10]
    schema = infer_schema(_shape(few))
    assert schema["properties"]["kind"] == {"enum": ["fact", "episode"]}
    assert schema["properties"]["ownerId"] == {"type": "string"}
    assert infer_schema(_shape(few[:19]))["properties"]["kind"] == {"type": "string"}
    text = [{"kind": k} for k in ["a b", "c"] * 10]
    assert infer_schema(_shape(text))["properties"]["kind"] == {"type": "string"}
    many = [{"kind": f"k{i % 9}"} for i in range(40)]
    assert infer_schema(_shape(many))["properties"]["kind"] == {"type": "string"}


def test_every_enum_the_draft_guesses_is_marked_as_a_guess(tmp_path: Path):
    """An enum taken from the values a log holds (here a free-form tags array) is a guess:
    catalog.toml and REPORT.md's "Guesses" name the schema file, the path and the values."""
    events = [
        ("v1.NoteAdded", {"id": f"n{i}", "kind": "memo", "tags": [["a", "b", "c"][i % 3]]})
        for i in range(25)
    ]
    scaffold(write_ndjson(tmp_path / "log.ndjson", events), tmp_path / "d")
    schema = json.loads((tmp_path / "d" / "v1.NoteAdded.json").read_text("utf-8"))
    assert schema["properties"]["tags"]["items"] == {"enum": ["a", "b", "c"]}
    toml = (tmp_path / "d" / "catalog.toml").read_text("utf-8")
    report = (tmp_path / "d" / "REPORT.md").read_text("utf-8")
    for path, seen in (("tags[]", '"a", "b", "c"'), ("kind", '"memo"')):
        guess = f"v1.NoteAdded.json: {path} is an enum of the values seen ({seen}); "
        assert f"# guess: {guess}" in toml
        assert f"- v1.NoteAdded: {guess}" in report.split("## Guesses")[1]


def test_schema_types_dates_records_and_any_json():
    """ISO dates get toISOString()'s pattern, null joins the type, arrays type their items,
    a nested object whose keys vary is a record, three kinds of value are any JSON."""
    schema = infer_schema(
        _shape(
            [
                {"at": "2024-01-02T03:04:05.006Z", "x": None, "l": [1], "s": {"a": 1}, "v": 1},
                {"at": "2024-01-02T03:04:05.007Z", "x": "t", "l": [], "s": {"b": 2}, "v": "s"},
                {"at": "2024-01-02T03:04:05.008Z", "x": "u", "l": [2.5], "s": {"c": 3}, "v": [1]},
            ]
        )
    )
    props = schema["properties"]
    assert props["at"]["pattern"].startswith("^(?:\\d{4}|[+-]\\d{6})")
    assert props["x"]["type"] == ["string", "null"]
    assert props["l"] == {"type": "array", "items": {"type": "number"}}
    assert "additionalProperties" not in props["s"] and props["s"]["required"] == []
    assert "type" not in props["v"]


def test_client_document_set_event_has_every_value_key_optional(tmp_path: Path):
    """A client document's <name>Set schema: {id, value} with the value's keys optional."""
    scaffold(TODOMVC, tmp_path / "d", state=TODOMVC_STATE)
    schema = json.loads((tmp_path / "d" / "uiStateSet.json").read_text("utf-8"))
    assert schema["title"] == "uiStateSet" and schema["required"] == ["id", "value"]
    value = schema["properties"]["value"]
    assert value["required"] == [] and value["additionalProperties"] is False
    assert value["properties"]["filter"]["enum"] == ["active", "all", "completed"]


# ---------------------------------------------------------------- the CLI


def test_cli_refuses_a_non_empty_out_dir(runner, tmp_path: Path):
    """A non-empty OUT_DIR is refused (one line, exit 1, nothing written) unless --force,
    which replaces the catalog files and leaves the others."""
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = runner.invoke(cli, ["scaffold", str(TODOMVC), str(out)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "--force" in result.stderr and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (out / "v1.Stale.json").write_text("{}")
    result = runner.invoke(cli, ["-q", "scaffold", "--force", str(TODOMVC), str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / "v1.Stale.json").exists() and (out / "notes.txt").read_text() == "mine"
    assert (out / "catalog.toml").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/store"], "no such file or directory"),
        ([str(FIXTURES / "small" / "case.json")], ""),
        (
            [str(TODOMVC), "--state", str(TODOMVC / "eventlog@6.db")],
            "is an eventlog (the history), not LiveStore's state DB; pass the state<hash>@N.db",
        ),
        ([str(TODOMVC), "--state", str(FIXTURES / "small" / "case.json")], "not a readable"),
        ([str(TODOMVC), "--state", "/no/such/state.db"], "no such state database"),
    ],
    ids=["no-source", "not-a-log", "state-is-eventlog", "state-not-sqlite", "no-state"],
)
def test_bad_input_is_a_one_line_error(runner, tmp_path: Path, args: list[str], message: str):
    """Bad input: exit 1, one `Error:` line on stderr, no traceback, OUT_DIR not created."""
    out = tmp_path / "d"
    source, *options = args
    result = runner.invoke(cli, ["scaffold", source, str(out), *options])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr and "Traceback" not in result.output
    assert not out.exists()


def test_a_projector_target_as_state_is_named_as_verify_names_it(runner, tmp_path: Path):
    """--state refuses what verify --against refuses, in its words: a projector target."""
    target = tmp_path / "t.db"
    assert runner.invoke(cli, ["-q", "replay", str(TODOMVC), str(target)]).exit_code == 0
    result = runner.invoke(
        cli, ["scaffold", str(TODOMVC), str(tmp_path / "d"), "--state", str(target)]
    )
    assert result.exit_code == 1
    assert result.stderr == f"Error: {target}: is a projector target, not LiveStore's state DB\n"


def test_cli_out_dir_must_not_hold_the_inputs(runner, tmp_path: Path):
    """OUT_DIR may not be a file, nor the store's own folder (even with --force)."""
    store = tmp_path / "store"
    shutil.copytree(TODOMVC, store)
    for out in (store / "eventlog@6.db", store):
        result = runner.invoke(cli, ["scaffold", "--force", str(store), str(out)])
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    assert sorted(p.name for p in store.iterdir()) == sorted(p.name for p in TODOMVC.iterdir())


def test_cli_json_summary(runner, tmp_path: Path):
    """--json prints one machine-readable document: the figure, the verdict, per event and
    per table outcomes."""
    result = runner.invoke(
        cli,
        [
            "-q",
            "scaffold",
            str(TODOMVC),
            str(tmp_path / "d"),
            "--state",
            str(TODOMVC_STATE),
            "--json",
        ],
    )
    assert result.exit_code == 0 and result.stderr == ""
    doc = json.loads(result.stdout)
    assert doc["verified"] is (doc["rowsEqual"] == doc["livestoreRows"] and doc["parked"] == 0)
    rows = f"{doc['rowsEqual']} of {doc['livestoreRows']} LiveStore rows equal"
    assert doc["figure"] == f"{rows} ({doc['percentEqual']}%)"
    assert {e["name"] for e in doc["byEvent"]} >= {"v1.TodoCreated", "uiStateSet"}
    assert [t["table"] for t in doc["byTable"]] == ["todos", "uiState"]


# ---------------------------------------------------------------- engine cases drafts meet


def test_a_table_of_its_key_alone_takes_upserts(tmp_path: Path):
    """A table whose only column is its key (a draft makes one for `v1.TagSaved {id}`)
    takes an upsert and a re-save of the same row."""
    log = write_ndjson(
        tmp_path / "log.ndjson", [("v1.TagSaved", {"id": "a"}), ("v1.TagSaved", {"id": "a"})]
    )
    state = _state_db(
        tmp_path / "s.db",
        "CREATE TABLE tags (id text primary key) strict; INSERT INTO tags VALUES ('a');",
    )
    result = scaffold(log, tmp_path / "d", state=state)
    assert (result.applied, result.parked, result.verified) == (2, 0, True)


def test_keys_of_mixed_json_types_in_one_batch(tmp_path: Path):
    """Keys that are numbers in some events and strings in others (a schema inferred from
    such a log allows both) are read in one batch without failing."""
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [("v1.ThingCreated", {"id": 1, "n": 1}), ("v1.ThingCreated", {"id": "a", "n": 2})],
    )
    result = scaffold(log, tmp_path / "d")
    assert result.applied + result.parked == 2


def test_quiet_scaffold_writes_nothing_to_stderr(runner, tmp_path: Path):
    """Under -q a draft whose replay parks events prints only its summary: the scratch
    replay's "list them with `projector parked`" line would name a deleted target."""
    micro = FIXTURES / "v0.3.1-micro" / "s031"
    result = runner.invoke(cli, ["-q", "scaffold", str(micro), str(tmp_path / "d")])
    assert result.exit_code == 0 and result.stderr == ""
    assert "  - v1.Draft: left out" in result.stdout


# ---------------------------------------------------------------- hostile logs

_names = st.one_of(
    st.sampled_from(
        ["v1.ThingCreated", "v1.ThingUpdated", "v1.ThingDeleted", "thingSet", "v1.\ud800Created"]
    ),
    st.text(min_size=1, max_size=12),
)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_args = st.dictionaries(
    st.sampled_from(["id", "value", "text", "x y", '"q"', "é", "a.b", "\udc80", "ID", "\n"]),
    _json,
    max_size=4,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(_names, _args), min_size=1, max_size=12))
def test_any_log_gets_a_draft_that_loads_and_replays(tmp_path_factory, events):
    """Whatever the names and args, scaffold writes a draft that loads as a catalog and a
    replay that accounts for every event; it never claims to be verified without a state."""
    tmp = tmp_path_factory.mktemp("hostile")
    log = write_ndjson(tmp / "log.ndjson", events)
    result = scaffold(log, tmp / "d")
    Catalog.load(tmp / "d")
    assert not result.verified
    if result.replayed:
        assert result.applied + result.parked == len(events)


def test_another_apps_state_db_is_refused(tmp_path: Path):
    """--state of another app (its event names are not the log's) is a one-line refusal
    before anything is written."""
    out = tmp_path / "draft"
    with pytest.raises(ScaffoldError, match="is the state of another app"):
        scaffold(
            FIXTURES / "todomvc-small" / "todomvc",
            out,
            state=FIXTURES / "small" / "ai-desk" / "state-11367593325@6.db",
        )
    assert not out.exists()


def test_the_state_may_be_given_as_its_store_folder(tmp_path: Path):
    """--state takes the store folder, as verify --against does: its one state DB."""
    by_file = scaffold(TODOMVC, tmp_path / "a", state=TODOMVC_STATE)
    by_folder = scaffold(TODOMVC, tmp_path / "b", state=TODOMVC)
    assert by_folder.percent_equal == by_file.percent_equal is not None


def test_args_nested_deeper_than_the_validator_compiles_are_drafted_as_any_json(
    runner, tmp_path: Path
):
    """100 levels of arrays: the draft describes the deep part as any JSON value, so its
    schema compiles (fastjsonschema's Python refuses some 21 levels of arrays; the draft
    failed with a traceback) and the draft replays every event."""
    deep = "[" * 100 + "]" * 100
    log = tmp_path / "deep.ndjson"
    line = '{"name": "v1.ConfigSet", "seqNum": %d, "args": {"key": "k%d", "value": %s}}\n'
    log.write_text("".join(line % (i, i, deep) for i in (1, 2, 3)))
    result = runner.invoke(cli, ["scaffold", str(log), str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "read 3 = applied 3 + parked 0" in result.output + result.stderr


def test_args_nested_past_the_limit_are_unparseable_at_any_stack_depth(tmp_path: Path):
    """200 levels: not JSON to the replay (deviation deep-nesting), so not to the draft
    either, however deep the caller's stack (json's own limit moves with it)."""
    deep = "[" * 200 + "]" * 200
    log = tmp_path / "deep.ndjson"
    line = '{"name": "v1.ConfigSet", "seqNum": %d, "args": {"key": "k%d", "value": %s}}\n'
    log.write_text("".join(line % (i, i, deep) for i in (1, 2, 3)))
    for frames in (0, 700):
        facts = at_stack_depth(frames, lambda: read_log(log))
        assert facts.events["v1.ConfigSet"].unparseable == 3, frames
