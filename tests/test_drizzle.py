"""`projector drizzle`: Drizzle ORM files for any catalog, written from the catalog (no Node
needed here; tests/test_consumer.py runs them with the real client)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from events.catalog import Catalog
from projector.appschema import app_schema, enum_values, parse_checks
from projector.cli import cli
from projector.drizzle import (
    BREAKPOINT,
    export_name,
    migration_sql,
    render,
    ts_type,
    write_drizzle,
)
from projector.errors import HandoffError
from tests.conftest import ROOT

FEATURES = ROOT / "tests" / "catalogs" / "features"


def test_checks_are_read_with_their_text_as_declared():
    """CHECKs come out of CREATE TABLE whole: nested parentheses, quoted ')' and commas,
    named constraints and table-level ones, each named as drizzle names them."""
    sql = """CREATE TABLE t (
        a TEXT NOT NULL CHECK (a IN ('x)', 'y,z')) -- a comment (with a paren
        , b INTEGER CHECK (b > 0) CHECK (b < 10),
        c TEXT CONSTRAINT c_is_json CHECK (json_valid(c)),
        CHECK (length(a) + b  <
               20)
    ) STRICT"""
    checks = [(c.name, c.column, c.expression) for c in parse_checks("t", sql)]
    assert checks == [
        ("t_a_check", "a", "a IN ('x)', 'y,z')"),
        ("t_b_check", "b", "b > 0"),
        ("t_b_check_2", "b", "b < 10"),
        ("c_is_json", "c", "json_valid(c)"),
        ("t_check_1", None, "length(a) + b < 20"),
    ]


def test_enums_only_where_a_check_makes_them_certain():
    """`c IN ('a', ...)` and `c = 'a' OR c = 'b'` give an enum; any other CHECK does not."""
    assert enum_values("kind", "kind IN ('a', 'it''s')") == ["a", "it's"]
    assert enum_values("kind", "kind = 'a' OR kind = 'b'") == ["a", "b"]
    assert enum_values("kind", "(\"kind\" in ('a'))") == ["a"]
    assert enum_values("kind", "kind = 'a' OR other = 'b'") is None
    assert enum_values("kind", "kind IN ('a') AND length(kind) > 0") is None
    assert enum_values("n", "n IN (0, 1)") is None


@pytest.mark.parametrize(
    "schema, expected",
    [
        ({"type": "array", "items": {"type": "string"}}, "Array<string>"),
        ({"type": ["string", "null"]}, "string | null"),
        ({"enum": ["a", "b"]}, '"a" | "b"'),
        ({}, "unknown"),
        ({"type": "object"}, "Record<string, unknown>"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b-c": {"type": "boolean"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            '{ a: number; "b-c"?: boolean }',
        ),
        ({"anyOf": [{"type": "integer"}, {"const": "x"}]}, 'number | "x"'),
    ],
)
def test_json_schemas_become_typescript_types(schema, expected):
    """A JSON column's TS type is the JSON Schema of the arg the projection writes into it."""
    assert ts_type(schema) == expected


def test_ai_desk_schema_round_trips_the_stored_encodings():
    """JSON columns as typed json mode, 0/1 as booleans, epoch ms as Dates, CHECK-certain
    enums, keys, references, indexes and the declared views."""
    schema_ts, relations_ts, snapshot = render(app_schema(Catalog.bundled("ai-desk")))
    assert (
        "tags: text(\"tags\", { mode: 'json' }).$type<Array<string>>().notNull().default([])"
        in (schema_ts)
    )
    assert (
        "enabled: integer(\"enabled\", { mode: 'boolean' }).notNull().default(false)" in schema_ts
    )
    assert "installedAt: integer(\"installedAt\", { mode: 'timestamp_ms' }).notNull()" in schema_ts
    assert 'kind: text("kind", { enum: ["fact", "preference", "episode"' in schema_ts
    assert "permissions: Array<string>" in schema_ts  # plugins.manifest typed from its schema
    assert 'theme: "system" | "light" | "dark"' in schema_ts  # the client document's value
    assert ".references(() => memories.id, { onDelete: 'cascade' })" in schema_ts
    assert "primaryKey({ columns: [t.memoryId, t.tag] })" in schema_ts
    assert 'index("idx_memory_tags_tag").on(t.tag, t.memoryId)' in schema_ts
    assert 'sqliteView("persona_memories"' in schema_ts
    assert (
        "persona: one(personas, { fields: [memories.personaId], references: [personas.id] })"
        in (relations_ts)
    )
    memories = snapshot["tables"]["memories"]
    assert memories["checkConstraints"]["memories_kind_check"]["value"].startswith("kind = 'fact'")
    assert memories["columns"]["tags"]["default"] == "'[]'"
    assert memories["foreignKeys"] == {
        "memories_personaId_personas_id_fk": {
            "name": "memories_personaId_personas_id_fk",
            "tableFrom": "memories",
            "tableTo": "personas",
            "columnsFrom": ["personaId"],
            "columnsTo": ["id"],
            "onDelete": "no action",
            "onUpdate": "no action",
        }
    }
    assert snapshot["tables"]["memory_tags"]["compositePrimaryKeys"] == {
        "memory_tags_memoryId_tag_pk": {
            "columns": ["memoryId", "tag"],
            "name": "memory_tags_memoryId_tag_pk",
        }
    }
    assert snapshot["views"]["active_personas"]["definition"].startswith("SELECT id, name")


@pytest.mark.parametrize("catalog", ["ai-desk", "todomvc", "todo-0.3.1", str(FEATURES)])
def test_every_catalog_gets_a_consistent_schema_and_snapshot(catalog, tmp_path):
    """For any catalog, every table, column, index and CHECK of schema.ts is in the
    snapshot drizzle-kit compares with, and the 0000 migration holds every statement."""
    cat = Catalog.bundled(catalog) if "/" not in catalog else Catalog.load(Path(catalog))
    files = write_drizzle(cat, tmp_path / "db")
    schema_ts = files.schema_ts.read_text()
    snapshot = json.loads((files.migrations / "meta" / "0000_snapshot.json").read_text())
    schema = app_schema(cat)
    assert set(snapshot["tables"]) == set(schema.tables)
    for name, table in snapshot["tables"].items():
        assert f'sqliteTable("{name}"' in schema_ts
        for column in table["columns"]:
            assert f'("{column}"' in schema_ts
        for check in table["checkConstraints"]:
            assert f'check("{check}"' in schema_ts
    chunks = files.migration.read_text().split(BREAKPOINT.strip())
    assert len(chunks) == len(schema.statements) + len(schema.pragmas())
    journal = json.loads((files.migrations / "meta" / "_journal.json").read_text())
    assert journal["entries"][0]["tag"] == files.migration.stem
    assert re.fullmatch(r"0000_[a-z0-9_]+_from_livestore", files.migration.stem)


def test_regenerating_keeps_the_applied_migration(tmp_path):
    """Writing the files again into the same folder changes nothing: the 0000 migration and
    its `when` stay, so databases it was marked applied in stay in step."""
    catalog = Catalog.bundled("todomvc")
    first = write_drizzle(catalog, tmp_path)
    journal = (first.migrations / "meta" / "_journal.json").read_text()
    second = write_drizzle(catalog, tmp_path)
    assert (second.when, second.hash) == (first.when, first.hash)
    assert (first.migrations / "meta" / "_journal.json").read_text() == journal


def test_a_folder_of_another_migration_or_with_the_apps_own_is_left_alone(tmp_path):
    """A migration folder that starts with another 0000, or holds the app's own later
    migrations (its schema.ts is the app's now), is refused, not overwritten."""
    write_drizzle(Catalog.bundled("todomvc"), tmp_path / "a")
    with pytest.raises(HandoffError, match="another first migration"):
        write_drizzle(Catalog.bundled("ai-desk"), tmp_path / "a")
    files = write_drizzle(Catalog.bundled("todomvc"), tmp_path / "b")
    journal_path = files.migrations / "meta" / "_journal.json"
    journal = json.loads(journal_path.read_text())
    journal["entries"].append({**journal["entries"][0], "idx": 1, "tag": "0001_app"})
    journal_path.write_text(json.dumps(journal))
    files.schema_ts.write_text("// the app's own\n")
    with pytest.raises(HandoffError, match="the app's own migrations"):
        write_drizzle(Catalog.bundled("todomvc"), tmp_path / "b")
    assert files.schema_ts.read_text() == "// the app's own\n"


def test_the_migration_builds_the_same_schema_a_fresh_install_gets(tmp_path):
    """Applying the 0000 migration chunk by chunk (as drizzle's migrator does) to an empty
    database gives the tables, indexes, triggers and views of the catalog."""
    import sqlite3

    schema = app_schema(Catalog.bundled("ai-desk"))
    conn = sqlite3.connect(tmp_path / "fresh.db")
    for chunk in migration_sql(schema).split("--> statement-breakpoint"):
        conn.execute(chunk)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {s.name for s in schema.statements} <= names
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x4149444B


def test_export_names_are_javascript_identifiers():
    """Table names become camelCase identifiers, never a reserved word."""
    assert export_name("memory_tags") == "memoryTags"
    assert export_name("userPreferences") == "userPreferences"
    assert export_name("delete") == "deleteTable"
    assert export_name("2fa codes") == "_2faCodes"


def test_cli_drizzle_needs_a_catalog_and_writes_the_files(runner, tmp_path):
    """`projector drizzle OUT_DIR` without a target or --catalog is a one-line error;
    with --catalog it lists what it wrote (--json: the paths and the migration's hash)."""
    result = runner.invoke(cli, ["drizzle", str(tmp_path / "x")])
    assert result.exit_code == 1 and "--catalog" in result.stderr
    result = runner.invoke(cli, ["drizzle", "--catalog", "todomvc", str(tmp_path / "db"), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["catalog"] == "todomvc" and data["migration"] == "0000_todomvc_from_livestore.sql"
    assert (tmp_path / "db" / "schema.ts").exists() and (tmp_path / "db" / "relations.ts").exists()


def test_cli_drizzle_into_a_file_is_one_line_naming_it(runner, tmp_path):
    """OUT_DIR that is a file (e.g. the target named twice) is refused, naming it, with
    nothing written beside it."""
    taken = tmp_path / "app.db"
    taken.write_bytes(b"not a folder")
    result = runner.invoke(cli, ["drizzle", "--catalog", "ai-desk", str(taken)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {taken}: is a file; the Drizzle files go into a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_an_edited_schema_ts_is_not_overwritten_without_force(tmp_path: Path):
    """Regenerating over the app's own edits refuses (one line); --force replaces them."""
    catalog = Catalog.bundled("todomvc")
    out = tmp_path / "db"
    write_drizzle(catalog, out)
    write_drizzle(catalog, out)  # unchanged files: idempotent
    edited = (out / "schema.ts").read_text("utf-8") + "\nexport const mine = 1;\n"
    (out / "schema.ts").write_text(edited, "utf-8")
    with pytest.raises(HandoffError, match=r"schema.ts differs .*overwrite it \(--force"):
        write_drizzle(catalog, out)
    assert (out / "schema.ts").read_text("utf-8") == edited
    (out / "relations.ts").write_text("// mine\n", "utf-8")
    with pytest.raises(HandoffError, match=r"schema.ts, .*relations.ts differ .*overwrite them"):
        write_drizzle(catalog, out)
    write_drizzle(catalog, out, force=True)
    assert "export const mine" not in (out / "schema.ts").read_text("utf-8")
