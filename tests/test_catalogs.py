"""Catalogs: any app's projection as one folder, declarative where it can be (docs/catalogs.md).

tests/catalogs/features is a catalog with every declarative form; each test replays a
small NDJSON log through it (at batch sizes 1 and 20,000: every row read back from the
target, or every row worked on in memory) and checks the rows.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from events.catalog import Catalog, bundled_catalog_names, detect_catalog, resolve_catalog
from events.errors import CatalogError
from projector.cli import cli
from projector.digest import digest
from projector.errors import CheckpointMismatch, ReplayError
from projector.handlers import compile_catalog
from projector.replay import DEFAULT_BATCH, ReplayOptions, replay
from projector.verify import verify
from tests.conftest import ROOT, SHARED, write_ndjson

FEATURES = ROOT / "tests" / "catalogs" / "features"
BATCHES = [1, DEFAULT_BATCH]
TODOMVC = SHARED.parent / "apps" / "todomvc" / "fixtures"


def run(
    tmp_path: Path, events: list[tuple[str, dict[str, Any]]], batch: int = DEFAULT_BATCH, **kw: Any
) -> sqlite3.Connection:
    log = write_ndjson(tmp_path / "log.ndjson", events)
    target = tmp_path / "target.db"
    options = ReplayOptions(
        on_invalid="park", batch_size=batch, catalog=Catalog.load(FEATURES), **kw
    )
    replay(log, target, options)
    conn = sqlite3.connect(target)
    conn.row_factory = sqlite3.Row
    return conn


def rows(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1')]


def parked(conn: sqlite3.Connection) -> list[tuple[str, str, str | None]]:
    return [
        (r["name"], r["kind"], r["entity"])
        for r in conn.execute("SELECT * FROM _projector_parked ORDER BY position")
    ]


OWNER = ("v1.OwnerAdded", {"id": "o1", "name": "Ada"})


def item(item_id: str, **args: Any) -> tuple[str, dict[str, Any]]:
    return ("v1.ItemAdded", {"id": item_id, "name": item_id.upper(), "labels": [], **args})


@pytest.mark.parametrize("batch", BATCHES)
def test_insert_maps_args_and_constants_and_gives_defaults_to_the_rest(tmp_path, batch):
    """Values come from args (nested paths too) and constants, encoded by the column's
    codec; a column not given takes its DDL default, an absent arg leaves it out."""
    conn = run(
        tmp_path,
        [OWNER, item("a", qty=3, ownerId="o1", labels=["x", "y"], extra={"meta": {"k": 1.0}})],
        batch,
    )
    (row,) = rows(conn, "items")
    assert row == {
        "id": "a", "name": "A", "qty": 3, "done": 0, "archived": 0, "due": None,
        "meta": '{"k":1}', "labels": '["x","y"]', "ownerId": "o1",
    }  # fmt: skip
    assert rows(conn, "item_labels") == [
        {"itemId": "a", "label": "x"},
        {"itemId": "a", "label": "y"},
    ]


@pytest.mark.parametrize("batch", BATCHES)
def test_on_conflict_fail_ignore_replace_update(tmp_path, batch):
    """A taken key: fail parks an integrity break, ignore keeps the row, replace swaps
    the whole row (defaults for the rest), update changes only the given columns."""
    conn = run(
        tmp_path,
        [
            item("a", qty=5, labels=["x"]),
            ("v1.ItemTouched", {"id": "a", "name": "ignored"}),
            ("v1.ItemTouched", {"id": "t", "name": "new"}),
            item("b", qty=7, labels=["z"]),
            ("v1.ItemUpserted", {"id": "b", "name": "B2", "labels": ["w"]}),
            ("v1.ItemMerged", {"id": "a", "qty": 9}),
            item("c"),
            item("c", qty=6),  # fail
        ],
        batch,
    )
    got = {r["id"]: (r["name"], r["qty"], r["labels"]) for r in rows(conn, "items")}
    assert got == {
        "a": ("$.literal", 9, '["x"]'),
        "b": ("B2", 0, '["w"]'),
        "c": ("C", 0, "[]"),
        "t": ("new", 0, "[]"),
    }
    assert parked(conn) == [("v1.ItemAdded", "integrity", "items:c")]
    assert rows(conn, "item_labels") == [
        {"itemId": "a", "label": "x"},
        {"itemId": "b", "label": "w"},
    ]


@pytest.mark.parametrize("batch", BATCHES)
def test_on_conflict_update_changes_only_the_set_columns(tmp_path, batch):
    """LiveStore's .onConflict(key, 'update', {...}): a taken key gets only `set`'s
    columns; a new key is inserted from `values`."""
    conn = run(
        tmp_path,
        [
            item("a", qty=5, labels=["x"]),
            ("v1.ItemMerged", {"id": "a", "qty": 9, "name": "not used"}),
            ("v1.ItemMerged", {"id": "n", "qty": 2, "name": "fresh"}),
        ],
        batch,
    )
    got = {r["id"]: (r["name"], r["qty"], r["labels"]) for r in rows(conn, "items")}
    assert got == {"a": ("$.literal", 9, '["x"]'), "n": ("fresh", 2, "[]")}


@pytest.mark.parametrize("batch", BATCHES)
def test_deleting_a_row_still_referenced_is_parked(tmp_path, batch):
    """A delete that would leave a row pointing nowhere breaks the target's foreign key:
    it is parked (LiveStore keeps the orphan; verify explains it), all or nothing."""
    conn = run(
        tmp_path,
        [
            OWNER,
            ("v1.OwnerAdded", {"id": "o2", "name": "Ada"}),
            ("v1.OwnerAdded", {"id": "o3", "name": "Bob"}),
            item("a", ownerId="o1"),
            ("v1.OwnerRemoved", {"id": "o3"}),
            ("v1.OwnerRemoved", {"id": "o1"}),  # referenced by item a
            ("v1.OwnersPurged", {"name": "Ada"}),  # o1 is referenced: neither o1 nor o2 goes
        ],
        batch,
    )
    assert [r["id"] for r in rows(conn, "owners")] == ["o1", "o2"]
    assert [(n, k, e) for n, k, e in parked(conn)] == [
        ("v1.OwnerRemoved", "integrity", "owners:o1"),
        ("v1.OwnersPurged", "held", "owners:*"),
    ]
    reason = conn.execute("SELECT reason FROM _projector_parked").fetchone()[0]
    assert "owner 'o1' is still referenced by items.ownerId" in reason


@pytest.mark.parametrize("batch", BATCHES)
def test_a_bulk_delete_of_a_referenced_row_deletes_none(tmp_path, batch):
    conn = run(
        tmp_path,
        [
            OWNER,
            ("v1.OwnerAdded", {"id": "o2", "name": "Ada"}),
            item("a", ownerId="o1"),
            ("v1.OwnersPurged", {"name": "Ada"}),
        ],
        batch,
    )
    assert [r["id"] for r in rows(conn, "owners")] == ["o1", "o2"]
    assert [(n, k, e) for n, k, e in parked(conn)] == [("v1.OwnersPurged", "integrity", "owners:*")]


@pytest.mark.parametrize("batch", BATCHES)
def test_a_value_that_does_not_fit_its_codec_names_the_column(tmp_path, batch):
    conn = run(tmp_path, [item("a"), ("v1.ItemUpdated", {"id": "a", "due": 1709644495302})], batch)
    ((name, kind, _),) = parked(conn)
    reason = conn.execute("SELECT reason FROM _projector_parked").fetchone()[0]
    assert (name, kind) == ("v1.ItemUpdated", "invalid")
    assert "items.due: not an ISO-8601 date: 1709644495302" in reason


@pytest.mark.parametrize("batch", BATCHES)
def test_partial_update_touches_only_args_present_and_skips_missing_rows(tmp_path, batch):
    """set changes the columns whose args are present; an update of a row that is not
    there changes nothing (LiveStore's UPDATE ... WHERE); {json = "null"} sets NULL."""
    conn = run(
        tmp_path,
        [
            item("a", qty=1, extra={"meta": [1]}),
            ("v1.ItemUpdated", {"id": "a", "qty": 2, "due": "2024-01-02T03:04:05.678Z"}),
            ("v1.ItemUpdated", {"id": "a", "done": True}),
            ("v1.ItemUpdated", {"id": "nobody", "qty": 5}),
            ("v1.ItemCleared", {"id": "a"}),
        ],
        batch,
    )
    (row,) = rows(conn, "items")
    assert (row["name"], row["qty"], row["due"], row["done"], row["meta"]) == (
        "A",
        2,
        1704164645678,
        1,
        None,
    )
    assert parked(conn) == []


@pytest.mark.parametrize("batch", BATCHES)
def test_bulk_update_and_delete_reach_every_matching_row(tmp_path, batch):
    """A where that is not the key changes every matching row: rows already in the
    target and rows added in the same batch alike, and derived rows follow."""
    conn = run(
        tmp_path,
        [
            item("a", labels=["x"]),
            item("b"),
            item("c"),
            ("v1.ItemUpdated", {"id": "a", "done": True}),
            ("v1.ItemUpdated", {"id": "c", "done": True}),
            ("v1.DoneArchived", {}),
            ("v1.ItemUpdated", {"id": "c", "done": False}),  # stays archived
            item("d"),
            ("v1.ItemUpdated", {"id": "d", "done": True}),  # done after the archive: kept
            ("v1.ArchivedPurged", {}),
        ],
        batch,
    )
    assert [(r["id"], r["done"], r["archived"]) for r in rows(conn, "items")] == [
        ("b", 0, 0),
        ("d", 1, 0),
    ]
    assert rows(conn, "item_labels") == []


@pytest.mark.parametrize("batch", BATCHES)
def test_a_delete_with_a_condition_deletes_only_a_matching_row(tmp_path, batch):
    conn = run(
        tmp_path,
        [
            item("a"),
            item("b"),
            ("v1.ItemUpdated", {"id": "b", "done": True}),
            ("v1.ItemRemovedIfDone", {"id": "a"}),
            ("v1.ItemRemovedIfDone", {"id": "b"}),
            ("v1.ItemRemoved", {"id": "never-there"}),
        ],
        batch,
    )
    assert [r["id"] for r in rows(conn, "items")] == ["a"]


@pytest.mark.parametrize("batch", BATCHES)
def test_an_event_writing_two_tables_applies_all_or_nothing(tmp_path, batch):
    """Several operations of one event apply in order; when one breaks integrity, the
    others are undone and the event is parked with every row it names."""
    conn = run(
        tmp_path,
        [
            item("a"),
            ("v1.ItemAudited", {"id": "a", "name": "A2", "auditId": "x1", "note": "renamed"}),
            # audit id x1 is taken: the rename of this event must not stick
            ("v1.ItemAudited", {"id": "a", "name": "A3", "auditId": "x1", "note": "again"}),
        ],
        batch,
    )
    assert [r["name"] for r in rows(conn, "items")] == ["A2"]
    assert rows(conn, "audit") == [{"id": "x1", "itemId": "a", "note": "renamed"}]
    ((name, kind, entity),) = parked(conn)
    assert (name, kind) == ("v1.ItemAudited", "integrity")
    assert json.loads(entity) == ["items:a", "audit:x1"]


@pytest.mark.parametrize("batch", BATCHES)
def test_a_python_handler_that_refuses_after_writing_changes_nothing(tmp_path, batch):
    """hooks.py handlers run in a savepoint of the batch's rows: a write followed by an
    IntegrityBreak is undone; upcasters registered there raise old events first."""
    conn = run(
        tmp_path,
        [
            ("v0.ItemAdded", {"id": "a", "title": "old shape"}),
            ("v1.ItemRenamed", {"id": "a", "name": "ok"}),
            ("v1.ItemRenamed", {"id": "a", "name": "  "}),
            ("v1.ItemRenamed", {"id": "zz", "name": "x"}),
        ],
        batch,
    )
    assert [(r["id"], r["name"], r["qty"]) for r in rows(conn, "items")] == [("a", "ok", 1)]
    assert [(n, k) for n, k, _ in parked(conn)] == [
        ("v1.ItemRenamed", "integrity"),
        ("v1.ItemRenamed", "integrity"),
    ]


@pytest.mark.parametrize("batch", BATCHES)
def test_foreign_keys_of_the_target_are_checked_before_a_row_is_written(tmp_path, batch):
    """A row pointing at a missing row is parked (LiveStore keeps it; verify explains it),
    and later events on that row are held back."""
    conn = run(
        tmp_path,
        [
            item("a", ownerId="ghost"),
            ("v1.ItemUpdated", {"id": "a", "qty": 3}),
            OWNER,
            item("b", ownerId="o1"),
            ("v1.ItemUpdated", {"id": "b", "ownerId": "ghost"}),
        ],
        batch,
    )
    assert [(r["id"], r["ownerId"]) for r in rows(conn, "items")] == [("b", "o1")]
    assert [(n, k) for n, k, _ in parked(conn)] == [
        ("v1.ItemAdded", "integrity"),
        ("v1.ItemUpdated", "held"),
        ("v1.ItemUpdated", "integrity"),
    ]
    reason = conn.execute("SELECT reason FROM _projector_parked LIMIT 1").fetchone()[0]
    assert reason.endswith("items.ownerId: owner 'ghost' does not exist")


@pytest.mark.parametrize("batch", BATCHES)
def test_a_bulk_change_waits_behind_a_parked_row_of_its_table(tmp_path, batch):
    """Re-applying a parked event later must not overtake a bulk change it preceded."""
    conn = run(
        tmp_path,
        [
            item("a", ownerId="ghost"),  # parked: items:a held
            item("b"),
            ("v1.ItemUpdated", {"id": "b", "done": True}),
            ("v1.DoneArchived", {}),
        ],
        batch,
    )
    assert [(n, k) for n, k, _ in parked(conn)] == [
        ("v1.ItemAdded", "integrity"),
        ("v1.DoneArchived", "held"),
    ]
    assert [(r["id"], r["archived"]) for r in rows(conn, "items")] == [("b", 0)]


@pytest.mark.parametrize("batch", BATCHES)
def test_client_documents_of_any_catalog_are_merged_by_the_engine(tmp_path, batch):
    """A table declared as a client document gets LiveStore's <table>Set merge, with its
    default (nulls kept) and top-level keys replaced whole; an empty set changes nothing."""
    conn = run(
        tmp_path,
        [
            ("prefsSet", {"id": "s", "value": {"nested": {"y": 1}}}),
            ("prefsSet", {"id": "s", "value": {"b": "new", "a": 2}}),
            ("prefsSet", {"id": "s", "value": {}}),
            ("prefsSet", {"id": "t", "value": {}}),
            ("v1.Nothing", {}),
        ],
        batch,
    )
    assert rows(conn, "prefs") == [
        {"id": "s", "value": '{"a":2,"nested":{"y":1},"none":null,"b":"new"}'},
        {"id": "t", "value": '{"a":1,"nested":{"x":true},"none":null}'},
    ]
    assert parked(conn) == []


def test_migrations_split_statements_like_sqlite_and_a_trigger_survives(tmp_path):
    """A ';' in a comment or a trigger body does not split a statement."""
    conn = run(tmp_path, [("v1.NoteWritten", {"id": "n", "body": "  padded  "})])
    assert rows(conn, "notes") == [{"id": "n", "body": "padded"}]
    triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    assert [t[0] for t in triggers] == ["notes_body_trimmed"]


def test_verify_maps_tables_and_columns_onto_livestores_state(tmp_path):
    """livestore = "name" and livestore_columns compare a renamed table and column with
    LiveStore's; a table of the target's own (livestore = false) is not compared; a
    mirrored table LiveStore's state lacks is a difference."""
    conn = run(
        tmp_path,
        [
            item("a"),
            ("v1.ItemAudited", {"id": "a", "name": "A2", "auditId": "x1", "note": "hi"}),
            ("v1.NoteWritten", {"id": "n", "body": "b"}),
        ],
    )
    conn.close()
    state = tmp_path / "state.db"
    s = sqlite3.connect(state)
    s.execute("CREATE TABLE __livestore_schema (tableName TEXT PRIMARY KEY, schemaHash, updatedAt)")
    s.execute("CREATE TABLE audit_log (id TEXT PRIMARY KEY, itemId TEXT, message TEXT)")
    s.execute("INSERT INTO audit_log VALUES ('x1', 'a', 'hi')")
    # The tables LiveStore's state holds under the target's own names, as they are.
    s.execute("ATTACH DATABASE ? AS t", (str(tmp_path / "target.db"),))
    for name in ("owners", "items", "prefs"):
        s.execute(f"CREATE TABLE main.{name} AS SELECT * FROM t.{name}")
    copied = sum(
        s.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in ("owners", "items", "prefs")
    )
    s.commit()
    s.execute("DETACH DATABASE t")
    report = verify(tmp_path / "target.db", state)
    assert report.ok and report.compared_rows == 1 + copied, [d.line() for d in report.differences]
    s.execute("DROP TABLE prefs")
    s.commit()
    dropped = verify(tmp_path / "target.db", state)
    assert [d.line() for d in dropped.differences] == [
        "prefs[*] extra: LiveStore's state has no table prefs -- UNEXPLAINED"
    ]
    s.execute("ATTACH DATABASE ? AS t", (str(tmp_path / "target.db"),))
    s.execute("CREATE TABLE main.prefs AS SELECT * FROM t.prefs")
    s.commit()
    s.execute("DETACH DATABASE t")
    s.execute("UPDATE audit_log SET message = 'changed'")
    s.commit()
    s.close()
    report = verify(tmp_path / "target.db", state)
    assert [d.line() for d in report.differences] == [
        "audit[x1] differs: message: LiveStore 'changed', target 'hi' -- UNEXPLAINED"
    ]


def test_a_users_catalog_is_recorded_and_used_again_by_a_catch_up(tmp_path):
    """A catalog passed by path is recorded in the target; a later run without --catalog
    uses it, and refuses it once its files changed."""
    catalog_dir = features_copy(tmp_path, "my-catalog")
    log = write_ndjson(tmp_path / "log.ndjson", [item("a")])
    target = tmp_path / "t.db"
    replay(log, target, ReplayOptions(catalog=Catalog.load(catalog_dir)))
    write_ndjson(log, [item("a"), item("b")])
    result = replay(log, target, ReplayOptions())
    assert (result.catalog, result.applied) == ("features", 1)
    with (catalog_dir / "catalog.toml").open("a") as fh:
        fh.write("\n# an edit\n")
    write_ndjson(log, [item("a"), item("b"), item("c")])
    with pytest.raises(CheckpointMismatch, match="changed since this migration began"):
        replay(log, target, ReplayOptions())


def test_every_bundled_catalog_loads_and_is_picked_by_its_events():
    """Each bundled catalog is valid, and detection picks it for its own event names."""
    names = bundled_catalog_names()
    assert {"ai-desk", "todomvc", "todo-0.3.1"} <= set(names)
    for name in names:
        catalog = Catalog.bundled(name)
        assert catalog.has_projection and catalog.migrations
        assert detect_catalog(catalog.schemas).name == name


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: (d / "catalog.toml").write_text("name = [", "utf-8"), "not valid TOML"),
        (
            lambda d: _append(d / "catalog.toml", '\n[tables.owners2]\nnoun = "x"\n'),
            "is not created by the migrations",
        ),
        (
            lambda d: _append(d / "catalog.toml", '\n[events."v1.X"]\ninsert = "items"\n'),
            "insert needs values",
        ),
        (
            lambda d: _append(
                d / "catalog.toml", '\n[events."v1.Y"]\ninsert = "items"\nvalues = { nope = 1 }\n'
            ),
            """/catalog.toml: [events."v1.Y"]: items has no column(s) ['nope']""",
        ),
        (
            lambda d: _append(
                d / "catalog.toml",
                '\n[events."v1.W"]\ndelete = "items"\nwhere = {id = "$.id"}\nset = {}\n',
            ),
            "`set` is not a key of delete (it takes delete, where)",
        ),
        (
            lambda d: _append(d / "catalog.toml", '\n[events."v1.V"]\nupdate = "items"\n'),
            "update needs set and where",
        ),
        (
            lambda d: _append(
                d / "catalog.toml",
                '\n[events."v1.U"]\ninsert = "items"\nvalues = {id = "$.id"}\n'
                'on_conflict = "update"\n',
            ),
            'on_conflict = "update" goes with set',
        ),
        (
            lambda d: _append(
                d / "catalog.toml", '\n[events."v1.Z"]\ndelete = "item_labels"\nwhere = {a = 1}\n'
            ),
            "derived",
        ),
        (lambda d: (d / "migrations" / "3.sql").write_text("", "utf-8"), "NNNN_lower_snake"),
        (lambda d: (d / "hooks.py").write_text("x = 1\n", "utf-8"), "defines no `hooks"),
        (lambda d: (d / "hooks.py").write_text("import nope\n", "utf-8"), "failed to import"),
        (lambda d: (d / "v1.Nothing.json").write_text("{", "utf-8"), "not a valid JSON Schema"),
        (
            lambda d: _event_reading(d, '{ name = "$.nmae" }'),
            """[events."v1.Q"]: set: name reads the arg 'nmae', which the event's schema does """
            "not declare (it declares id, x)",
        ),
        (
            lambda d: _event_reading(d, '{ name = { arg = "nmae.first" } }'),
            "set: name reads the arg 'nmae.first', which the event's schema does not declare",
        ),
        (
            lambda d: (d / "v1.Nothing.json").write_text(_schema_of({"pattern": "("}), "utf-8"),
            "/v1.Nothing.json: not a valid JSON Schema ('(' is not a 'regex' at "
            "$.properties.x.pattern)",
        ),
        (
            lambda d: (d / "v1.Nothing.json").write_text(
                _schema_of({"patternProperties": {"(": {}}}), "utf-8"
            ),
            "/v1.Nothing.json: not a valid JSON Schema ('(' is not a 'regex' at "
            "$.properties.x.patternProperties)",
        ),
        (
            lambda d: (d / "v1.Nothing.json").write_text(_nested_schema(100), "utf-8"),
            "/v1.Nothing.json: cannot be checked as a JSON Schema: nested too deeply for "
            "jsonschema (about 95 levels of properties are its limit)",
        ),
        (
            lambda d: (d / "v1.Nothing.json").write_text("[" * 5000 + "]" * 5000, "utf-8"),
            "/v1.Nothing.json: not a valid JSON Schema (nested too deeply)",
        ),
        (
            lambda d: (d / "v1.Nothing.json").write_text(_schema_of({"type": "strin"}), "utf-8"),
            "/v1.Nothing.json: not a valid JSON Schema ('strin' is not valid under any of the "
            "given schemas at $.properties.x.type)",
        ),
        (
            lambda d: (d / "migrations" / "0003_more.sql").write_text(
                "CREATE TABLE oops (", "utf-8"
            ),
            "/migrations/0003_more.sql: unterminated SQL statement: 'CREATE TABLE oops ('",
        ),
        (
            lambda d: (d / "migrations" / "0003_more.sql").write_text(
                "DROP TABLE nosuch;", "utf-8"
            ),
            "/migrations/0003_more.sql: SQLite refuses it (no such table: nosuch)",
        ),
        (
            lambda d: (d / "hooks.py").write_text(
                (d / "hooks.py")
                .read_text("utf-8")
                .replace('tables=("items",)', 'tables=("nosuch",)'),
                "utf-8",
            ),
            "/hooks.py: handler item_renamed of v1.ItemRenamed writes 'nosuch', which [tables] "
            "lacks",
        ),
    ],
)
def test_a_broken_catalog_is_one_line_before_anything_is_written(runner, tmp_path, edit, message):
    """Every part of a catalog is checked when it loads; the CLI says what and where,
    validate as replay does."""
    catalog_dir = features_copy(tmp_path, "broken")
    edit(catalog_dir)
    log = write_ndjson(tmp_path / "log.ndjson", [item("a")])
    target = tmp_path / "t.db"
    result = runner.invoke(cli, ["replay", "--catalog", str(catalog_dir), str(log), str(target)])
    assert result.exit_code == 1, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not target.exists()
    validated = runner.invoke(cli, ["validate", "--catalog", str(catalog_dir), str(log)])
    assert (validated.exit_code, validated.stderr) == (1, result.stderr)


def _nested_schema(levels: int) -> str:
    """An object schema whose property x is an object schema ..., LEVELS deep."""
    return '{"type": "object", "properties": {"x": ' * levels + "{}" + "}}" * levels


def _event_reading(catalog_dir: Path, changes: str) -> None:
    """Add the event v1.Q (args id and x) updating items with CHANGES (a TOML table)."""
    schema = json.loads(_schema_of({"type": "string"}))
    schema["properties"]["id"] = {"type": "string"}
    (catalog_dir / "v1.Q.json").write_text(json.dumps(schema), "utf-8")
    _append(
        catalog_dir / "catalog.toml",
        f'\n[events."v1.Q"]\nupdate = "items"\nset = {changes}\nwhere = {{ id = "$.id" }}\n',
    )


def _schema_of(x: dict[str, Any]) -> str:
    """An event schema whose one arg x has the JSON Schema X."""
    return json.dumps({"type": "object", "properties": {"x": x}})


def features_copy(tmp_path: Path, name: str) -> Path:
    """A copy of the features catalog (tests/catalogs/features) to edit, as TMP_PATH/NAME."""
    catalog_dir = tmp_path / name
    shutil.copytree(FEATURES, catalog_dir)
    return catalog_dir


def compile_refused(catalog_dir: Path) -> str:
    """The one-line CatalogError compiling the catalog at CATALOG_DIR raises."""
    with pytest.raises(CatalogError) as caught:
        compile_catalog(Catalog.load(catalog_dir))
    return str(caught.value)


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def test_a_catalog_is_named_by_path_or_bundled_name():
    assert resolve_catalog("todomvc").name == "todomvc"
    assert resolve_catalog(str(FEATURES)).name == "features"
    with pytest.raises(CatalogError, match="neither a catalog folder nor a bundled catalog"):
        resolve_catalog("no-such-app")


def test_a_bundled_name_is_the_bundled_catalog_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    """--catalog todomvc run where the app's own todomvc/ folder is (package.json, no
    catalog.toml) is the bundled catalog, where it read that folder as a catalog; a folder
    of that name holding a catalog.toml makes the name ambiguous (one line naming
    ./todomvc); ./todomvc is the folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "todomvc").mkdir()
    (tmp_path / "todomvc" / "package.json").write_text('{"type": "module"}', "utf-8")
    assert resolve_catalog("todomvc").directory == Catalog.bundled("todomvc").directory
    shutil.copytree(FEATURES, tmp_path / "todomvc", dirs_exist_ok=True)
    (tmp_path / "todomvc" / "package.json").unlink()
    with pytest.raises(CatalogError, match=r"pass \./todomvc for the folder"):
        resolve_catalog("todomvc")
    assert resolve_catalog("./todomvc").name == "features"


def test_the_oracles_schema_module_is_the_catalogs_or_the_one_that_knows_the_store(tmp_path):
    """`python -m events.catalog schema-module` (what `make oracle` runs): a catalog with a
    hooks.py (ai-desk) is read as such, where its Hooks were another copy's; without a
    catalog, the bundled one that knows the store's events, as a first replay picks it
    (todomvc's store got ai-desk's schema: LiveStore rebuilt empty tables); a log no
    bundled catalog knows is one line, exit 1."""

    def schema_module(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "events.catalog", "schema-module", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )

    ai_desk = schema_module("ai-desk")
    assert ai_desk.returncode == 0, ai_desk.stderr
    assert ai_desk.stdout.strip().endswith("schemas/ai-desk/livestore-schema.mjs")
    todos = schema_module("--store", str(ROOT / "fixtures" / "todomvc-small" / "todomvc"))
    assert todos.stdout.strip().endswith("schemas/todomvc/livestore-schema.mjs"), todos.stderr
    log = write_ndjson(tmp_path / "log.ndjson", [OWNER])
    other = schema_module("--store", str(log))
    assert other.returncode == 1 and other.stdout == ""
    assert "no bundled catalog knows its events" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_a_catalog_of_schemas_only_validates_but_does_not_replay(runner, tmp_path):
    only = tmp_path / "schemas-only"
    only.mkdir()
    shutil.copy(FEATURES / "v1.OwnerAdded.json", only)
    log = write_ndjson(tmp_path / "log.ndjson", [OWNER])
    ok = runner.invoke(cli, ["validate", "--catalog", str(only), str(log)])
    assert ok.exit_code == 0, ok.output
    refused = runner.invoke(cli, ["replay", "--catalog", str(only), str(log), str(tmp_path / "t")])
    assert refused.exit_code == 1 and "has no projection" in refused.stderr


@pytest.mark.skipif(not TODOMVC.exists(), reason="needs ../shared/livestore/apps/todomvc")
def test_todomvc_large_equals_livestores_state_with_no_python(tmp_path):
    """LiveStore's TodoMVC, 20,000 events with 47 bulk "clear completed": the declarative
    catalog (no hooks.py) gives LiveStore's own state, row for row."""
    store = TODOMVC / "large" / "todomvc"
    assert not (Catalog.bundled("todomvc").directory / "hooks.py").exists()
    result = replay(store, tmp_path / "t.db", ReplayOptions())
    assert (result.read, result.parked_total) == (20000, 0)
    report = verify(tmp_path / "t.db", store / "state-96296379336@6.db")
    assert report.ok and report.compared_rows == 2875 and not report.differences


@pytest.mark.parametrize("batch", [1, 7, DEFAULT_BATCH])
def test_bulk_changes_give_the_same_digest_at_any_batch_size(batch, tmp_path):
    """todomvc's bulk "clear completed" lands the same whatever the batch boundaries."""
    store = ROOT / "fixtures" / "todomvc-small" / "todomvc"
    replay(store, tmp_path / "t.db", ReplayOptions(batch_size=batch))
    replay(store, tmp_path / "ref.db", ReplayOptions())
    assert digest(tmp_path / "t.db") == digest(tmp_path / "ref.db")


def test_detection_loads_only_the_catalog_it_picks(monkeypatch: pytest.MonkeyPatch):
    """Detection scores the bundled catalogs by their schemas' event names alone; only the
    one picked is loaded and checked (a replay's setup, and every command's, pays for one)."""
    import events.catalog as catalog_module

    monkeypatch.setattr(catalog_module, "_BUNDLED", {})
    todo = Catalog.load(catalog_module.SCHEMAS_DIR / "todomvc")
    picked = detect_catalog([*todo.schemas, "v1.SomethingElse"])
    assert picked.name == "todomvc" and picked.schemas == todo.schemas
    assert list(catalog_module._BUNDLED) == ["todomvc"]
    # On a tie (no name known), the first by name, as before.
    assert detect_catalog(["v9.Nothing"]).bundled_name == min(bundled_catalog_names())


def test_a_schema_that_is_not_an_object_is_one_line(tmp_path: Path):
    """A schema file holding `true` (a valid JSON Schema, but no event's args) is refused
    naming the file, not a traceback."""
    folder = tmp_path / "cat"
    shutil.copytree(ROOT / "schemas" / "todomvc", folder)
    (folder / "v1.Extra.json").write_text("true")
    with pytest.raises(CatalogError, match=r"v1\.Extra\.json: an event's schema is a JSON object"):
        Catalog.load(folder)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT nope FROM items", "no such column: nope"),
        ("SELECT id FROM nosuch", "no such table: main.nosuch"),
        ("SELECT id FROM", "incomplete input"),
    ],
)
def test_a_view_sqlite_refuses_is_one_line_when_the_catalog_compiles(runner, tmp_path, sql, reason):
    """A view naming a missing table or column is refused like a syntax error: replay
    refuses it before any target exists, drizzle says it in one line (and as JSON)."""
    catalog_dir = features_copy(tmp_path, "broken")
    _append(catalog_dir / "catalog.toml", f'\n[views.v]\nsql = "{sql}"\n')
    expected = f"{catalog_dir}/catalog.toml: [views.v]: SQLite refuses it ({reason})"
    log = write_ndjson(tmp_path / "log.ndjson", [item("a")])
    target = tmp_path / "t.db"
    replayed = runner.invoke(cli, ["replay", "--catalog", str(catalog_dir), str(log), str(target)])
    assert replayed.exit_code == 1 and replayed.stderr == f"Error: {expected}\n"
    assert not target.exists()
    drizzled = runner.invoke(
        cli, ["drizzle", "--json", "--catalog", str(catalog_dir), str(tmp_path / "db")]
    )
    assert drizzled.exit_code == 1 and drizzled.stderr == f"Error: {expected}\n"
    assert json.loads(drizzled.stdout)["error"] == expected


@pytest.mark.parametrize(
    ("put", "problem"),
    [
        ('{**row, "nmae": args["name"]}', "puts column(s) ['nmae'] that items lacks"),
        ('{"id": args["id"], "name": args["name"]}', "puts a row without column(s) ['archived'"),
        ('{**row, "id": "other"}', "puts a row of items whose id is 'other' under the key 'a'"),
        (
            '{**row, "name": {"x": 1}}',
            "puts a dict, which SQLite cannot store (text, numbers, bytes or None), "
            "into items.name",
        ),
        (
            '{**row, "qty": 2**64}',
            "puts 18446744073709551616, beyond SQLite's 64-bit integers, into items.qty",
        ),
    ],
)
def test_a_python_handler_putting_a_row_its_table_does_not_fit_is_refused(tmp_path, put, problem):
    """`rows.put` takes every column of the table and nothing else: a misspelled column
    refuses the event (parked as invalid, naming hooks.py, the handler and the column)
    instead of dropping the change silently."""
    catalog_dir = features_copy(tmp_path, "cat")
    hooks = catalog_dir / "hooks.py"
    text = hooks.read_text("utf-8")
    hooks.write_text(text.replace('{**row, "name": args["name"]}', put), "utf-8")
    log = write_ndjson(
        tmp_path / "log.ndjson", [item("a"), ("v1.ItemRenamed", {"id": "a", "name": "new"})]
    )
    options = ReplayOptions(on_invalid="park", catalog=Catalog.load(catalog_dir))
    replay(log, tmp_path / "t.db", options)
    conn = sqlite3.connect(tmp_path / "t.db")
    ((kind, reason),) = conn.execute("SELECT kind, reason FROM _projector_parked").fetchall()
    assert kind == "invalid"
    assert reason.startswith(
        f"e2 (v1.ItemRenamed): {catalog_dir}/hooks.py: handler item_renamed of v1.ItemRenamed "
    )
    assert problem in reason
    assert conn.execute("SELECT name FROM items").fetchall() == [("A",)]


def test_a_python_handler_keyed_by_an_arg_its_event_does_not_declare_is_refused(tmp_path):
    """A handler's `key` (and `reads`) name args of its event: one its schema does not
    declare is refused when the catalog compiles."""
    catalog_dir = features_copy(tmp_path, "cat")
    hooks = catalog_dir / "hooks.py"
    hooks.write_text(hooks.read_text("utf-8").replace('key="id"', 'key="idz"'), "utf-8")
    compile_catalog(Catalog.load(catalog_dir))  # a schema declaring no properties says nothing
    schema = catalog_dir / "v1.ItemRenamed.json"
    declared = json.loads(schema.read_text("utf-8"))
    declared["properties"] = {"id": {"type": "string"}, "name": {"type": "string"}}
    schema.write_text(json.dumps(declared), "utf-8")
    caught = compile_refused(catalog_dir)
    assert caught == (
        f"{catalog_dir}/hooks.py: handler item_renamed of v1.ItemRenamed: key names the arg "
        "'idz', which the schema of v1.ItemRenamed does not declare (it declares id, name)"
    )


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("REFERENCES ownerz(id)", "ownerz is not a table the migrations create"),
        ("REFERENCES items(nope)", "items has no column(s) ['nope']"),
        ("REFERENCES items(name)", "name of items is neither its primary key nor UNIQUE"),
        ("REFERENCES item_labels", "the primary key of item_labels is (itemId, label)"),
        ("REFERENCES tracking(id)", "tracking is not a table the migrations create"),
    ],
)
def test_a_foreign_key_sqlite_could_never_satisfy_is_refused_naming_the_migration(
    tmp_path, reference, problem
):
    """A REFERENCES to a missing table or column, or to parent columns that are not its
    key or UNIQUE, is refused when the catalog compiles, not found by verify after a
    "clean" replay; a reference to the parent's key is accepted."""
    catalog_dir = features_copy(tmp_path, "cat")
    migration = catalog_dir / "migrations" / "0001_tables.sql"
    text = migration.read_text("utf-8")
    owners = "CREATE TABLE owners (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL"
    assert owners in text

    def owners_with(column: str) -> None:
        migration.write_text(text.replace(owners, f"{owners}, {column}"), "utf-8")

    owners_with(f"x TEXT {reference}")
    caught = compile_refused(catalog_dir)
    assert caught.startswith(f"{migration}: owners(x) {reference}: ")
    assert problem in caught
    for accepted in ("REFERENCES items(id)", "REFERENCES items"):
        owners_with(f"x TEXT {accepted}")
        compile_catalog(Catalog.load(catalog_dir))


@pytest.mark.parametrize(
    ("reference", "unique"),
    [
        ("x TEXT REFERENCES audit(itemId)", "CREATE UNIQUE INDEX audit_item ON audit (itemId);"),
        ("x TEXT, y TEXT, FOREIGN KEY (x, y) REFERENCES item_labels", ""),
        (
            "x TEXT, y TEXT, FOREIGN KEY (x, y) REFERENCES audit(id, itemId)",
            "CREATE UNIQUE INDEX audit_pair ON audit (id, itemId);",
        ),
    ],
)
def test_a_foreign_key_the_replay_cannot_check_is_refused(tmp_path, reference, unique):
    """SQLite accepts a foreign key to a UNIQUE column or to several columns, but the
    replay looks a parent row up by its single-column key: such a key would let a row
    through that verify then fails, or park a valid event; it is refused when the
    catalog compiles, saying what the projector checks."""
    catalog_dir = features_copy(tmp_path, "cat")
    migration = catalog_dir / "migrations" / "0001_tables.sql"
    text = migration.read_text("utf-8")
    owners = "CREATE TABLE owners (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL"
    migration.write_text(text.replace(owners, f"{owners}, {reference}") + unique + "\n", "utf-8")
    caught = compile_refused(catalog_dir)
    assert caught.startswith(f"{migration}: owners(x")
    parent = "item_labels has itemId, label" if "item_labels" in reference else "audit has id"
    assert caught.endswith(
        f"the projector checks a foreign key against its parent's single-column primary key "
        f"({parent}); refer to that"
    )


@pytest.mark.parametrize("name", ["tracking", "_projector_parked", "_Projector_later", "TRACKING"])
def test_a_table_named_like_the_projectors_bookkeeping_is_refused_as_reserved(tmp_path, name):
    """A catalog table may not take a bookkeeping table's name (or the projector's prefix):
    declared, or only created by a migration, it is refused saying the name is reserved,
    not as a table that "already exists"."""
    catalog_dir = features_copy(tmp_path, "cat")
    migration = catalog_dir / "migrations" / "0003_more.sql"
    migration.write_text(f'CREATE TABLE "{name}" (id TEXT PRIMARY KEY NOT NULL);\n', "utf-8")
    with pytest.raises(CatalogError, match="reserved for the projector's bookkeeping") as created:
        compile_catalog(Catalog.load(catalog_dir))
    assert str(created.value).startswith(f"{migration}: creates {name!r}, a name reserved")
    _append(catalog_dir / "catalog.toml", f'\n[tables."{name}"]\n')
    declared = compile_refused(catalog_dir)
    assert declared == (
        f"{catalog_dir}/catalog.toml: [tables.{name}]: {name!r} is reserved for the projector's "
        "bookkeeping (_sqlite_migrations, tracking, _projector_*); name the table otherwise"
    )


@pytest.mark.parametrize(
    ("raising", "raised"),
    [
        ('raise KeyError("oops")', "KeyError: 'oops'"),
        ("args.nope", "AttributeError: 'dict' object has no attribute 'nope'"),
        ("1 / 0", "ZeroDivisionError: division by zero"),
    ],
)
def test_an_exception_raised_in_a_python_handler_says_the_hook_raised_it(tmp_path, raising, raised):
    """A hooks.py handler that raises (a bug, not a value the target refused) has its event
    refused naming hooks.py, the handler, the exception and its line; its writes undone."""
    catalog_dir = features_copy(tmp_path, "cat")
    (catalog_dir / "hooks.py").write_text(
        "from projector.catalog import Hooks\n"
        "hooks = Hooks()\n"
        '@hooks.handler("v1.ItemRenamed", tables=("items",), key="id")\n'
        "def item_renamed(rows, args):\n"
        '    rows.put("items", args["id"], {**rows.get("items", args["id"]), "name": "x"})\n'
        f"    {raising}\n",
        "utf-8",
    )
    log = write_ndjson(
        tmp_path / "log.ndjson", [item("a"), ("v1.ItemRenamed", {"id": "a", "name": "new"})]
    )
    reason = (
        f"e2 (v1.ItemRenamed): {catalog_dir}/hooks.py: handler item_renamed of v1.ItemRenamed "
        f"raised {raised} at line 6"
    )
    catalog = Catalog.load(catalog_dir)
    with pytest.raises(ReplayError) as failed:
        replay(log, tmp_path / "failed.db", ReplayOptions(catalog=catalog))
    # The catalog given is in the command: a target the run made and undid records none.
    assert str(failed.value) == (
        f"{reason}; nothing was written (or park such events: `projector replay {log} "
        f"{tmp_path / 'failed.db'} --catalog {catalog_dir} --on-invalid park`)"
    )
    replay(log, tmp_path / "t.db", ReplayOptions(on_invalid="park", catalog=catalog))
    conn = sqlite3.connect(tmp_path / "t.db")
    assert conn.execute("SELECT kind, reason FROM _projector_parked").fetchall() == [
        ("invalid", reason)
    ]
    assert conn.execute("SELECT name FROM items").fetchall() == [("A",)]


def test_a_schema_nested_too_deeply_for_its_validator_is_one_line(runner, tmp_path):
    """fastjsonschema compiles a schema to Python, which refuses some 21 levels of nested
    arrays: a catalog with such a schema is refused in one line when an event needs it."""
    catalog_dir = tmp_path / "deep"
    catalog_dir.mkdir()
    deep: dict[str, Any] = {"type": "integer"}
    for _ in range(30):
        deep = {"type": "array", "items": deep}
    (catalog_dir / "v1.Deep.json").write_text(_schema_of(deep), "utf-8")
    log = write_ndjson(tmp_path / "log.ndjson", [("v1.Deep", {"x": [["not an array"]]})])
    result = runner.invoke(cli, ["validate", "--catalog", str(catalog_dir), str(log)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert "the schema of v1.Deep is nested too deeply for its validator" in result.stderr


def _upcasting(tmp_path: Path, body: str) -> Path:
    """A copy of the features catalog whose v0.ItemAdded upcaster is BODY (the lines of
    its function, args in ARGS), and whose v1.ItemAdded schema requires a name."""
    catalog_dir = features_copy(tmp_path, "cat")
    hooks = (catalog_dir / "hooks.py").read_text("utf-8")
    start = hooks.index("def upcast_item_added_v0_v1(args):")
    end = hooks.index("@hooks.handler")
    (catalog_dir / "hooks.py").write_text(
        hooks[:start] + "def upcast_item_added_v0_v1(args):\n" + body + "\n\n" + hooks[end:],
        "utf-8",
    )
    schema = json.loads((catalog_dir / "v1.ItemAdded.json").read_text("utf-8"))
    schema["required"] = ["id", "name"]
    (catalog_dir / "v1.ItemAdded.json").write_text(json.dumps(schema), "utf-8")
    return catalog_dir


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            '    if args["title"] == "bad":\n        raise ValueError("cannot upcast it")\n'
            '    return {"id": args["id"], "name": args["title"], "qty": 1, "labels": []}',
            "raised ValueError: cannot upcast it at line 11",
        ),
        (  # forgot the rename: v1's schema requires name
            '    return {"id": args["id"], "qty": 1, "labels": []} if args["title"] == "bad" '
            'else {"id": args["id"], "name": args["title"], "qty": 1, "labels": []}',
            "gives args the schema of v1.ItemAdded refuses: 'name' is a required property",
        ),
        (  # forgot the return
            '    if args["title"] != "bad":\n'
            '        return {"id": args["id"], "name": args["title"], "qty": 1, "labels": []}',
            "gives args the schema of v1.ItemAdded refuses: null is not an object",
        ),
        (  # NaN: what JSON cannot hold (the row's qty was NULL, refused as NOT NULL)
            '    qty = float("nan") if args["title"] == "bad" else 1\n'
            '    return {"id": args["id"], "name": args["title"], "qty": qty, "labels": []}',
            "gives args the schema of v1.ItemAdded refuses: nan is no JSON number",
        ),
        (  # sys.exit ended validate and replay silently, with its code
            '    if args["title"] == "bad":\n        raise SystemExit(3)\n'
            '    return {"id": args["id"], "name": args["title"], "qty": 1, "labels": []}',
            "raised SystemExit: 3 at line 11",
        ),
        (  # a RecursionError traceback from the check of its output
            '    out = {"id": args["id"], "name": args["title"], "qty": 1, "labels": []}\n'
            '    if args["title"] == "bad":\n        out["labels"].append(out)\n'
            "    return out",
            "gives args the schema of v1.ItemAdded refuses: it holds itself, or nests too "
            "deeply for JSON",
        ),
        (
            '    if args["title"] == "bad":\n        raise GeneratorExit()\n'
            '    return {"id": args["id"], "name": args["title"], "qty": 1, "labels": []}',
            "raised GeneratorExit at line 11",
        ),
        (  # a BaseException of its own: only Ctrl-C and the projector's SIGTERM stop a run
            '    if args["title"] == "bad":\n        raise BaseException("odd")\n'
            '    return {"id": args["id"], "name": args["title"], "qty": 1, "labels": []}',
            "raised BaseException: odd at line 11",
        ),
    ],
    ids=[
        "raises",
        "refused-output",
        "returns-none",
        "not-json",
        "exits",
        "holds-itself",
        "generator-exit",
        "base-exception",
    ],
)
def test_an_upcaster_that_raises_or_writes_what_its_schema_refuses_makes_its_event_invalid(
    runner, tmp_path, body, reason
):
    """An upcaster (hooks.py) is checked as a handler is: one that raises, or whose output
    the schema of the version it writes refuses, makes that event invalid, named with the
    upcaster: the run fails in one line, or with --on-invalid park the event is parked
    (later events on its row held) and the others apply. Before, the first stopped every
    run with a traceback, and the second wrote its rows as they came (a name of '')."""
    catalog = Catalog.load(_upcasting(tmp_path, body))
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [
            ("v0.ItemAdded", {"id": "a", "title": "good"}),
            ("v0.ItemAdded", {"id": "b", "title": "bad"}),
            ("v1.ItemRenamed", {"id": "b", "name": "B"}),
        ],
    )
    where = f"{catalog.directory}/hooks.py: upcaster upcast_item_added_v0_v1 (v0.ItemAdded -> "
    with pytest.raises(ReplayError) as failed:
        replay(log, tmp_path / "failed.db", ReplayOptions(catalog=catalog))
    assert str(failed.value).startswith(f"e2 (#2, v0.ItemAdded) in log.ndjson: {where}")
    assert reason in str(failed.value) and "; nothing was written" in str(failed.value)
    assert not (tmp_path / "failed.db").exists()
    target = tmp_path / "t.db"
    replay(log, target, ReplayOptions(on_invalid="park", catalog=catalog))
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT id, name FROM items").fetchall() == [("a", "good")]
    found = conn.execute("SELECT name, kind, entity, reason FROM _projector_parked").fetchall()
    # v0's schema declares no id: the parked event holds back its whole table.
    assert [row[:3] for row in found] == [
        ("v0.ItemAdded", "invalid", "items:*"),
        ("v1.ItemRenamed", "held", "items:b"),
    ]
    assert found[0][3].startswith(f"e2 (#2, v0.ItemAdded): {where}v1.ItemAdded) ")
    assert reason in found[0][3]
    # validate finds it too, where it said "3 of 3 events valid" (a fresh user's trial).
    checked = runner.invoke(cli, ["validate", "--catalog", str(catalog.directory), str(log)])
    assert checked.exit_code == 1, checked.output
    assert "2 of 3 events valid (features catalog)" in checked.output
    assert "problems: 1 invalid" in checked.output
    assert "invalid: v0.ItemAdded: : " not in checked.output  # no empty path in by-reason
    assert f"e2 (#2, v0.ItemAdded) in log.ndjson: {where}" in checked.output
    assert reason in checked.output


def test_replay_parked_that_reapplies_nothing_keeps_nothing_however_the_catalog_is_named(
    runner, tmp_path, monkeypatch
):
    """A parked event's reason names hooks.py by its resolved path, so replay-parked with
    the same catalog given another way (relative, then absolute, then through a symbolic
    link) re-applies nothing and keeps no run and no backup, where the reasons' text
    changed and it kept both (a fresh user's re-check, left from stop 28)."""
    _upcasting(tmp_path, '    raise ValueError("not yet")')
    write_ndjson(tmp_path / "log.ndjson", [("v0.ItemAdded", {"id": "a", "title": "t"})])
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(
        cli, ["-q", "replay", "log.ndjson", "t.db", "--catalog", "./cat"] + ["--on-invalid", "park"]
    )
    assert first.exit_code == 0, first.output
    reason = sqlite3.connect("t.db").execute("SELECT reason FROM _projector_parked").fetchone()[0]
    assert f": {tmp_path}/cat/hooks.py: upcaster upcast_item_added_v0_v1" in reason
    again = runner.invoke(cli, ["replay-parked", "t.db", "--catalog", str(tmp_path / "cat")])
    assert again.exit_code == 0, again.output
    assert (
        "nothing re-applied, every event parked as before: the target is unchanged" in again.output
    )
    (tmp_path / "link").symlink_to(tmp_path / "cat")  # the same folder through a link
    linked = runner.invoke(cli, ["replay-parked", "t.db", "--catalog", "link"])
    assert "nothing re-applied, every event parked as before" in linked.output, linked.output
    kept = runner.invoke(cli, ["backups", "t.db", "--json"])
    assert json.loads(kept.stdout)["backups"] == []


def test_validate_finds_the_events_replay_finds_no_handler_for(runner, tmp_path):
    """An event whose schema is in the catalog but that no handler takes is unknown to
    replay, which parks it: validate says so too (exit 1, the same reason, no hint that
    this is another app's log), where it said every event was valid."""
    catalog_dir = features_copy(tmp_path, "cat")
    schema = json.loads((catalog_dir / "v1.ItemRenamed.json").read_text("utf-8"))
    schema["title"] = "v1.ItemRelabelled"
    (catalog_dir / "v1.ItemRelabelled.json").write_text(json.dumps(schema), "utf-8")
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [item("a"), ("v1.ItemRelabelled", {"id": "a", "name": "A2"}), item("b")],
    )
    checked = runner.invoke(cli, ["validate", "--catalog", str(catalog_dir), str(log)])
    assert checked.exit_code == 1, checked.output
    assert "2 of 3 events valid (features catalog)" in checked.output
    assert "unknown: v1.ItemRelabelled: no handler for this event" in checked.output
    assert "another app's log" not in checked.output
    target = tmp_path / "t.db"
    result = replay(
        log, target, ReplayOptions(on_invalid="park", catalog=Catalog.load(catalog_dir))
    )
    assert (result.applied, result.parked) == (2, {"unknown": 1})
    conn = sqlite3.connect(target)
    (reason,) = conn.execute("SELECT reason FROM _projector_parked").fetchone()
    assert reason.endswith("v1.ItemRelabelled): no handler for this event")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda h: h.replace('"v1.ItemAdded")\ndef', '"v1.ItemAdedd")\ndef'),
            "upcaster upcast_item_added_v0_v1 (v0.ItemAdded -> v1.ItemAdedd) writes "
            "v1.ItemAdedd, which has no schema in the catalog (v1.ItemAdedd.json)",
        ),
        (
            lambda h: h.replace('@hooks.upcaster("v0.ItemAdded"', '@hooks.upcaster("v0.ItemAded"'),
            "upcaster upcast_item_added_v0_v1 (v0.ItemAded -> v1.ItemAdded) reads "
            "v0.ItemAded, which has no schema in the catalog (v0.ItemAded.json)",
        ),
        (
            lambda h: h.replace('@hooks.handler("v1.ItemRenamed"', '@hooks.handler("v0.ItemAdded"'),
            "upcaster upcast_item_added_v0_v1 (v0.ItemAdded -> v1.ItemAdded): v0.ItemAdded "
            "also has a handler (catalog.toml's [events] or a hooks.py handler), which would "
            "never run",
        ),
    ],
    ids=["misspelled-to", "misspelled-from", "dead-handler"],
)
def test_an_upcaster_that_cannot_work_is_refused_when_the_catalog_loads(tmp_path, edit, message):
    """An upcaster naming an event no schema declares (a misspelling: its events would be
    unknown, or have no handler, only once replayed), or from a name that also has a
    handler (which would never run), is refused when the catalog loads: by validate too,
    where validate said every event valid and replay then said 'no handler'."""
    catalog_dir = features_copy(tmp_path, "cat")
    hooks = catalog_dir / "hooks.py"
    hooks.write_text(edit(hooks.read_text("utf-8")), "utf-8")
    refused = compile_refused(catalog_dir)
    assert refused == f"{catalog_dir}/hooks.py: {message}" or refused.startswith(
        f"{catalog_dir}/hooks.py: {message}"
    )


def _renaming(tmp_path: Path, line: str) -> Path:
    """A copy of the features catalog whose v1.ItemRenamed handler (hooks.py) has LINE
    where it puts the renamed row."""
    catalog_dir = features_copy(tmp_path, "cat")
    hooks = catalog_dir / "hooks.py"
    put = '    rows.put("items", args["id"], {**row, "name": args["name"]})\n'
    hooks.write_text(hooks.read_text("utf-8").replace(put, line), "utf-8")
    return catalog_dir


def test_a_hooks_py_handler_that_exits_parks_its_event(tmp_path):
    """sys.exit in a hooks.py handler is its bug, as an exception is: the event is parked
    naming the handler (under "fail" the run says so in one line), where the run ended
    silently with the handler's exit code (a fresh user's trial)."""
    catalog_dir = _renaming(tmp_path, "    raise SystemExit(4)\n")
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [item("a"), ("v1.ItemRenamed", {"id": "a", "name": "n"}), item("b")],
    )
    catalog = Catalog.load(catalog_dir)
    result = replay(log, tmp_path / "t.db", ReplayOptions(on_invalid="park", catalog=catalog))
    assert (result.applied, result.parked) == (2, {"invalid": 1})
    (reason,) = (
        sqlite3.connect(tmp_path / "t.db")
        .execute("SELECT reason FROM _projector_parked")
        .fetchone()
    )
    assert "hooks.py: handler" in reason and "raised SystemExit: 4 at line" in reason
    with pytest.raises(ReplayError, match="raised SystemExit: 4"):
        replay(log, tmp_path / "f.db", ReplayOptions(catalog=catalog))


def test_a_fault_in_hooks_py_after_commits_says_the_way_on_and_it_works(tmp_path):
    """A hooks.py handler that fails under "fail" once batches are committed: fixing
    hooks.py changes the catalog, which the target then refuses, so "once the cause is
    fixed, resume goes on" could not work (a fresh user's trial). The message says what
    does (park such events, then replay-parked with the fixed catalog), and following it
    ends with every event applied."""
    catalog_dir = features_copy(tmp_path, "cat")
    hooks = catalog_dir / "hooks.py"
    fixed = hooks.read_text("utf-8")
    hooks.write_text(
        fixed.replace(
            '    rows.put("items", args["id"], {**row, "name": args["name"]})\n',
            '    rows.put("items", args["id"], {**row, "name": args["name"].upper2()})\n',
        ),
        "utf-8",
    )
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [item("a"), item("b"), ("v1.ItemRenamed", {"id": "a", "name": "new"}), item("c")],
    )
    target = tmp_path / "t.db"
    with pytest.raises(ReplayError) as failed:
        replay(log, target, ReplayOptions(catalog=Catalog.load(catalog_dir), batch_size=1))
    assert str(failed.value).endswith(
        f"raised AttributeError: 'str' object has no attribute 'upper2' at line 18; {target} "
        f"holds every batch up to #2 (`projector status {target}`): a fix to hooks.py changes "
        f"the catalog, which it then refuses; park such events (`projector replay {log} "
        f"{target} --catalog {catalog_dir} --on-invalid park`), then apply them with the "
        "fixed catalog (`projector "
        f"replay-parked {target} --catalog DIR`)"
    )
    runner = CliRunner()
    parking = runner.invoke(
        cli,
        ["-q", "replay", str(log), str(target), "--catalog", str(catalog_dir)]
        + ["--on-invalid", "park"],
    )
    assert parking.exit_code == 0, parking.output
    fixed_dir = tmp_path / "fixed"
    shutil.copytree(catalog_dir, fixed_dir)
    (fixed_dir / "hooks.py").write_text(fixed, "utf-8")
    again = runner.invoke(cli, ["-q", "replay-parked", str(target), "--catalog", str(fixed_dir)])
    assert again.exit_code == 0, again.output
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT id, name FROM items ORDER BY id").fetchall() == [
        ("a", "new"),
        ("b", "B"),
        ("c", "C"),
    ]
    assert conn.execute("SELECT COUNT(*) FROM _projector_parked").fetchone() == (0,)


def test_a_catalog_changed_since_the_migration_began_is_refused_by_every_command(tmp_path, runner):
    """The recorded catalog's files changed since the migration began (a migration added
    to a copied catalog, a fresh user's trial): verify failed nothing, drizzle wrote files
    the target does not have, and finalize said the target's index was not the catalog's.
    Each now says, as replay does, that the catalog changed, and how to go on; --catalog
    with the files the migration began with still works."""
    catalog_dir = tmp_path / "todos"
    shutil.copytree(Catalog.bundled("todomvc").directory, catalog_dir)
    store = ROOT / "fixtures" / "todomvc-small" / "todomvc"
    target = tmp_path / "t.db"
    replay(store, target, ReplayOptions(catalog=Catalog.load(catalog_dir)))
    kept = tmp_path / "kept"
    shutil.copytree(catalog_dir, kept)
    (catalog_dir / "migrations" / "0009_priority_index.sql").write_text(
        "CREATE INDEX idx_todos_text ON todos (text);\n", "utf-8"
    )
    changed = f"{target}: catalog 'todomvc' changed since this migration began ({catalog_dir})"
    verified = runner.invoke(cli, ["verify", str(target), "--no-source"])
    assert verified.exit_code == 1 and f"FAIL  catalog: {changed}" in verified.stdout
    for args in (["finalize", str(target)], ["drizzle", str(target), str(tmp_path / "dz")]):
        refused = runner.invoke(cli, args)
        assert refused.exit_code == 1 and refused.stderr.startswith(f"Error: {changed}")
    assert not (tmp_path / "dz").exists()
    kept_ok = runner.invoke(cli, ["verify", str(target), "--no-source", "--catalog", str(kept)])
    assert kept_ok.exit_code == 0, kept_ok.output


def test_the_command_a_refusal_gives_for_a_new_target_migrates_as_the_old_one_did(tmp_path, runner):
    """A history rewritten since the migration (a fresh user's re-check): the command the
    refusal gives for a new target carries the migration's catalog folder and policies,
    where pasting it detected a catalog again (the bundled todomvc instead of the app's
    own folder) and dropped --on-invalid park."""
    import shlex

    catalog_dir = tmp_path / "my cats" / "mine"
    shutil.copytree(Catalog.bundled("todomvc").directory, catalog_dir)
    spec = catalog_dir / "catalog.toml"
    spec.write_text(spec.read_text("utf-8").replace('name = "todomvc"', 'name = "mine"'), "utf-8")
    store = tmp_path / "store"
    shutil.copytree(ROOT / "fixtures" / "todomvc-small" / "todomvc", store)
    target = tmp_path / "m.db"
    args = ["-q", "replay", str(store), str(target), "--catalog", str(catalog_dir)]
    assert runner.invoke(cli, [*args, "--on-invalid", "park"]).exit_code == 0
    with contextlib.closing(sqlite3.connect(store / "eventlog@6.db")) as conn, conn:
        conn.execute("UPDATE eventlog SET argsJson = '{}' WHERE seqNumGlobal = 3")
    refused = runner.invoke(cli, ["replay", str(store), str(target)])
    assert refused.exit_code == 1
    pasted = refused.stderr.strip().rsplit("migrate it into a new target: ", 1)[1]
    words = shlex.split(pasted.strip("`"))
    assert words[:2] == ["projector", "replay"] and words[3] == str(tmp_path / "m-2.db")
    assert words[4:] == ["--catalog", str(catalog_dir), "--on-invalid", "park"]
    again = runner.invoke(cli, ["-q", *words[1:]])
    assert again.exit_code == 0, again.output
    status = json.loads(runner.invoke(cli, ["status", str(tmp_path / "m-2.db"), "--json"]).stdout)
    assert (status["catalog"], status["onInvalid"]) == (str(catalog_dir), "park")


def test_resume_takes_the_catalog_files_a_migration_began_with_and_records_them(tmp_path, runner):
    """The recorded catalog changed since the migration began (an upgrade of a bundled
    one, here a folder edited): the refusal says to go on with --catalog DIR holding the
    files it began with, which resume did not take; it does now, and a run with nothing to
    apply records it too, where only a run that applied events did, so every command after
    refused again."""
    catalog_dir = tmp_path / "todos"
    shutil.copytree(Catalog.bundled("todomvc").directory, catalog_dir)
    kept = tmp_path / "kept"
    shutil.copytree(catalog_dir, kept)
    store = ROOT / "fixtures" / "todomvc-small" / "todomvc"
    target = tmp_path / "t.db"
    replay(store, target, ReplayOptions(catalog=Catalog.load(catalog_dir)))
    spec = catalog_dir / "catalog.toml"
    spec.write_text(spec.read_text("utf-8") + "\n# upgraded\n", "utf-8")
    refused = runner.invoke(cli, ["resume", str(target)])
    assert refused.exit_code == 1 and "changed since this migration began" in refused.stderr
    assert "--catalog DIR holding the files it began with" in refused.stderr
    resumed = runner.invoke(cli, ["-q", "resume", str(target), "--catalog", str(kept)])
    assert resumed.exit_code == 0, resumed.output
    status = json.loads(runner.invoke(cli, ["status", str(target), "--json"]).stdout)
    assert status["catalog"] == str(kept)
    for args in (["resume", str(target)], ["verify", str(target), "--no-source"]):
        assert runner.invoke(cli, ["-q", *args]).exit_code == 0


@pytest.mark.parametrize("batch", BATCHES)
def test_a_value_sqlite_cannot_bind_parks_its_event_naming_the_column(tmp_path, batch):
    """An arg the event's schema lets through as any JSON value (an object where the
    column has no codec) cannot be bound by the sqlite3 module: that event is refused
    like any row the target refuses (parked, naming the column; the others apply), where
    the run stopped whatever its policy, saying 'write failed' and naming no event (a
    fresh user's re-check)."""
    events = [item("a"), item("b", name={"x": 1}), item("c")]
    conn = run(tmp_path, events, batch)
    assert [r["id"] for r in rows(conn, "items")] == ["a", "c"]
    reason = conn.execute("SELECT reason FROM _projector_parked").fetchone()[0]
    assert reason == "e2 (v1.ItemAdded): cannot be stored: items.name: type 'dict' is not supported"
    log = write_ndjson(tmp_path / "again.ndjson", events)
    with pytest.raises(ReplayError, match=r"^e2 \(v1.ItemAdded\): cannot be stored: items.name"):
        replay(log, tmp_path / "f.db", ReplayOptions(catalog=Catalog.load(FEATURES)))


@pytest.mark.parametrize("batch", BATCHES)
def test_args_no_row_can_hold_park_their_event_naming_the_column_wherever_they_go(tmp_path, batch):
    """Beyond a column's value (b13311d), a fresh user's re-check: an array matched by a
    bulk delete's where, an object among a derived table's elements and an object as a
    foreign key each park their event naming the column, where the first stopped the run
    ('write failed', no event named), the second raised a traceback, and the third said
    'unhashable type'."""
    events = [
        OWNER,
        ("v1.OwnersPurged", {"name": [1, 2]}),
        item("a", labels=[{"x": 1}]),
        item("b", ownerId={"id": "o1"}),
        item("c"),
    ]
    conn = run(tmp_path, events, batch)
    assert [r["id"] for r in rows(conn, "items")] == ["c"]
    reasons = [r[0] for r in conn.execute("SELECT reason FROM _projector_parked ORDER BY position")]
    assert reasons == [
        "e2 (v1.OwnersPurged): cannot be stored: owners.name: a list matches no row (a column "
        "holds text, numbers, bytes or NULL)",
        "e3 (v1.ItemAdded): cannot be stored: items.labels: its array holds a dict, which no "
        "row of item_labels can hold (text, numbers or NULL)",
        "e4 (v1.ItemAdded): cannot be stored: items.ownerId: a dict names no owner (a key is "
        "text or an integer)",
    ]


@pytest.mark.parametrize("batch", BATCHES)
def test_a_derived_table_holds_scalar_elements_as_its_column_stores_them(tmp_path, batch):
    """Numbers and booleans among a derived table's elements are stored as its TEXT
    column stores what the sqlite3 module binds (true as '1', 1.5 as '1.5'), and verify
    expects just that, where it reported elements missing and extra; a null element,
    which the NOT NULL column cannot hold, parks its event naming the column, where
    INSERT OR IGNORE dropped it without a word (a fresh user's re-check, left from stop
    28); an integer beyond 64 bits is the float SQLite's JSON functions read, where its
    event was parked as unbindable."""
    events = [
        item("a", labels=[1.5, True, "x", 1, False, 7, "1"]),
        item("b", labels=["y", None]),
        ("v1.ItemUpdated", {"id": "a", "labels": [True, 2.5]}),
        item("c", labels=[False, "z"]),
        item("d", labels=[1e20, "w"]),  # stored as JSON.stringify writes it: 21 digits
    ]
    conn = run(tmp_path, events, batch)
    assert sorted(tuple(r) for r in conn.execute("SELECT itemId, label FROM item_labels")) == [
        ("a", "1"),
        ("a", "2.5"),
        ("c", "0"),
        ("c", "z"),
        ("d", "1.0e+20"),  # as SQLite's json_each reads 21 digits: a REAL
        ("d", "w"),
    ]
    reasons = [r[0] for r in conn.execute("SELECT reason FROM _projector_parked")]
    assert reasons == [
        "e2 (v1.ItemAdded): cannot be stored: items.labels: its array holds null, which "
        "item_labels cannot hold (its element column is NOT NULL)"
    ]
    conn.close()
    report = verify(tmp_path / "target.db")
    assert report.ok, [(c.name, c.detail) for c in report.checks if not c.ok]


def test_an_array_no_derived_row_can_hold_is_refused_whatever_the_batch_size(tmp_path):
    """A derived table's parent column that is no JSON array (a string, a number), or holds
    a null its NOT NULL element column cannot take, or an object, is refused when the row
    is put: the same events are parked at every batch size, and the digests agree. Before,
    a later event of the batch overwriting the row hid the value from the write (parked at
    batch size 1, applied at 10,000), and a value that is no array raised a traceback (a
    fresh user's trial)."""
    events = [
        item("b", labels=["x"]),
        ("v1.ItemUpdated", {"id": "b", "labels": [None]}),
        ("v1.ItemUpdated", {"id": "b", "labels": ["y"]}),
        item("c", labels="notarray"),
        item("e", labels=["p"]),
        ("v1.ItemUpdated", {"id": "e", "labels": [{"a": 1}]}),
        ("v1.ItemUpdated", {"id": "e", "labels": ["q"]}),
        item("f", labels=5),
        item("g", labels=["nullable", "z"]),  # "null" in a text element is no null
    ]
    found = {}
    for batch in BATCHES:
        (tmp_path / str(batch)).mkdir()
        conn = run(tmp_path / str(batch), events, batch)
        parked = [
            tuple(r) for r in conn.execute("SELECT position, kind, reason FROM _projector_parked")
        ]
        conn.close()
        found[batch] = (parked, digest(tmp_path / str(batch) / "target.db")["overall"])
    parked, _ = found[1]
    assert found[DEFAULT_BATCH] == found[1]
    assert [(p, k) for p, k, _ in parked] == [
        (2, "invalid"),
        (3, "held"),
        (4, "invalid"),
        (6, "invalid"),
        (7, "held"),
        (8, "invalid"),
    ]
    reasons = {p: r for p, _, r in parked}
    assert reasons[2].endswith(
        "items.labels: its array holds null, which item_labels cannot hold (its element "
        "column is NOT NULL)"
    )
    assert reasons[4].endswith(
        'items.labels: "notarray" is not a JSON array, which item_labels takes its rows from'
    )
    assert reasons[6].endswith(
        "items.labels: its array holds a dict, which no row of "
        "item_labels can hold (text, numbers or NULL)"
    )
    assert reasons[8].endswith(
        "items.labels: 5 is not a JSON array, which item_labels takes its rows from"
    )


def test_array_text_a_hooks_py_handler_puts_is_parsed_whatever_the_batch_size(tmp_path):
    """A hooks.py handler may put any text into a derived table's parent column: text that
    is no JSON, or holds NaN or an infinity, parks its event naming the column at every
    batch size, where a screen of the text let it through to the write (a JSONDecodeError
    traceback, or NOT NULL at batch size 1 and applied at 10,000: a fresh user's re-check
    of e869514); verify says which rows of a hand-edited parent are no array, where it
    raised a traceback."""
    catalog_dir = _renaming(
        tmp_path, '    rows.put("items", args["id"], {**row, "labels": args["name"]})\n'
    )
    events = [item("a"), item("b"), item("c"), item("d")]
    for key, text in (("a", '["x","y"'), ("b", "[NaN]"), ("c", "[1e999]"), ("d", '["ok"]')):
        events += [
            ("v1.ItemRenamed", {"id": key, "name": text}),
            ("v1.ItemUpdated", {"id": key, "labels": ["z"]}),
        ]
    catalog = Catalog.load(catalog_dir)
    found = {}
    for batch in BATCHES:
        log = write_ndjson(tmp_path / f"{batch}.ndjson", events)
        target = tmp_path / f"{batch}.db"
        replay(log, target, ReplayOptions(on_invalid="park", batch_size=batch, catalog=catalog))
        with contextlib.closing(sqlite3.connect(target)) as conn:
            parked = conn.execute("SELECT position, kind, reason FROM _projector_parked").fetchall()
        found[batch] = (parked, digest(target)["overall"])
    assert found[1] == found[DEFAULT_BATCH]
    parked = found[1][0]
    assert [(p, k) for p, k, _ in parked] == [
        (5, "invalid"),
        (6, "held"),
        (7, "invalid"),
        (8, "held"),
        (9, "invalid"),
        (10, "held"),
    ]
    assert parked[0][2].endswith('items.labels: ["x","y" is not JSON')
    assert parked[2][2].endswith("items.labels: [NaN] is not JSON")
    assert parked[4][2].endswith("items.labels: its array holds inf, which is no JSON number")
    edited = tmp_path / "edited.db"
    shutil.copy(tmp_path / f"{DEFAULT_BATCH}.db", edited)
    with contextlib.closing(sqlite3.connect(edited)) as conn:
        conn.execute("UPDATE items SET labels = 'oops' WHERE id = 'd'")
        conn.commit()
    report = verify(edited, source=False)
    (check,) = [c for c in report.checks if c.name == "item_labels"]
    assert (
        not check.ok
        and check.detail == "items.labels is no JSON array in 1 row(s) (first: items[d])"
    )
    # A catch-up over the hand-edited row writes its derived rows anew, where parsing its
    # stored text raised a traceback (a fresh user's re-check).
    more = write_ndjson(
        tmp_path / "more.ndjson", [*events, ("v1.ItemUpdated", {"id": "d", "labels": ["n"]})]
    )
    replay(more, edited, ReplayOptions(catalog=catalog))
    with contextlib.closing(sqlite3.connect(edited)) as conn:
        labels = conn.execute("SELECT label FROM item_labels WHERE itemId = 'd'").fetchall()
    assert labels == [("n",)]
    assert verify(edited, source=False).ok


@pytest.mark.parametrize("batch", BATCHES)
def test_a_bulk_where_with_a_lone_surrogate_matches_as_livestore_stores_it(tmp_path, batch):
    """Text with a lone surrogate is stored with U+FFFD (LiveStore's binding), and a bulk
    delete's where holding one matches so too, at every batch size: it was parked as
    'cannot be stored' (the value could not be bound), and one holding U+FFFD missed the
    batch's own row, which still held the surrogate (a fresh user's re-check)."""
    events = [
        ("v1.OwnerAdded", {"id": "o1", "name": "a\ud800"}),
        ("v1.OwnerAdded", {"id": "o2", "name": "b\ud800"}),
        ("v1.OwnerAdded", {"id": "o3", "name": "c"}),
        ("v1.OwnersPurged", {"name": "a\ufffd"}),
        ("v1.OwnersPurged", {"name": "b\ud800"}),
    ]
    conn = run(tmp_path, events, batch)
    assert [r["id"] for r in rows(conn, "owners")] == ["o3"]
    assert conn.execute("SELECT COUNT(*) FROM _projector_parked").fetchone()[0] == 0


def test_a_dry_run_that_fails_says_the_target_is_as_it_was(tmp_path, runner):
    """A dry run failing on an event after its scratch copy committed batches said the
    real target 'holds every batch up to #N' and to resume it (a fresh user's re-check):
    it holds nothing new. It now says the target is as it was, and its park hint is a dry
    run too (pasted, it would have written the real target)."""
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [item("a"), item("b"), ("v1.Teleported", {"id": "zz"}), item("c")],
    )
    target = tmp_path / "t.db"
    args = ["replay", str(log), str(target), "--catalog", str(FEATURES), "--batch-size", "1"]
    failed = runner.invoke(cli, [*args, "--dry-run"])
    assert failed.exit_code == 1 and not target.exists()
    assert failed.stderr.strip().endswith(
        f"; a dry run: {target} is as it was (or park such events: `projector replay {log} "
        f"{target} --catalog {FEATURES} --on-invalid park --dry-run`)"
    )


def test_another_catalogs_files_under_the_recorded_name_are_refused_saying_so(tmp_path, runner):
    """resume --catalog with a copy of the catalog whose files differ (both named
    todomvc) said only 'was migrated with catalog todomvc, not DIR' (a fresh user's
    re-check): it now says --catalog takes the files the migration began with, and both
    digests. A new target for a rewritten history, asked for while --catalog names the
    files the migration began with, is made with those files, not the recorded ones."""
    store = tmp_path / "store"
    shutil.copytree(ROOT / "fixtures" / "todomvc-small" / "todomvc", store)
    target = tmp_path / "t.db"
    assert runner.invoke(cli, ["-q", "replay", str(store), str(target)]).exit_code == 0
    other = tmp_path / "other"
    shutil.copytree(Catalog.bundled("todomvc").directory, other)
    spec = other / "catalog.toml"
    spec.write_text(spec.read_text("utf-8") + "\n# edited\n", "utf-8")
    refused = runner.invoke(cli, ["resume", str(target), "--catalog", str(other)])
    recorded = Catalog.bundled("todomvc").digest[:12]
    assert refused.exit_code == 1 and refused.stderr.strip() == (
        f"Error: {target}: was migrated with catalog 'todomvc', not '{other}': --catalog takes "
        f"a catalog holding the files this migration began with (digest {recorded}; "
        f"{other}'s: {Catalog.load(other).digest[:12]})"
    )
    kept = tmp_path / "kept"
    shutil.copytree(Catalog.bundled("todomvc").directory, kept)
    with contextlib.closing(sqlite3.connect(store / "eventlog@6.db")) as conn, conn:
        conn.execute("UPDATE eventlog SET argsJson = '{}' WHERE seqNumGlobal = 3")
    rewritten = runner.invoke(cli, ["resume", str(target), "--catalog", str(kept)])
    assert rewritten.exit_code == 1
    assert rewritten.stderr.strip().endswith(f"{tmp_path / 't-2.db'} --catalog {kept}`")
