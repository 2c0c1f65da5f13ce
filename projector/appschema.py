"""The app's database as handed over: its catalog's schema, for any catalog.

What `finalize` writes into the app database and `drizzle` describes in TypeScript, worked
out from the catalog alone in a scratch in-memory database (so both agree byte for byte,
and a mistake in the catalog is found before anything is written):

- the tables and indexes its migrations create (the SQL text SQLite stores, unchanged);
- for each derived table, triggers that keep it in step with its parent's JSON-array
  column under the app's own writes (after insert, after update of the column or the
  key, after delete), doing what the projector does while replaying
  (`projector.store`); the projector does not install them in a target, where they
  would do its work twice;
- the views catalog.toml declares (``[views.<name>] sql = "SELECT ..."``);
- the PRAGMAs of its ``[target]`` section (``user_version``, ``application_id``).

It also reads what the CREATE statements say and PRAGMAs do not: CHECK constraints
(https://www.sqlite.org/lang_createtable.html#ckconst) and the enums they make certain.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from events.catalog import Catalog
from events.errors import CatalogError
from projector.target import (
    BOOKKEEPING_TABLES,
    Table,
    checked_tables,
    create_views,
)


@dataclass(frozen=True)
class Statement:
    """One CREATE statement of the app's schema (SQL without the final ``;``)."""

    kind: str  # table | index | trigger | view
    name: str
    table: str  # the table it belongs to (its own name for a table or view)
    sql: str


@dataclass(frozen=True)
class Column:
    """A column as PRAGMA table_info reports it."""

    name: str
    type: str  # the declared type, e.g. TEXT (empty when none)
    not_null: bool
    default: str | None  # the DDL default expression, as written
    pk: int  # position in the primary key, 0 when not part of it


@dataclass(frozen=True)
class Check:
    """A CHECK constraint: NAME (drizzle's convention), COLUMN (None at table level)."""

    name: str
    column: str | None
    expression: str  # the SQL inside CHECK (...), whitespace collapsed


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str
    to_columns: tuple[str, ...]
    on_delete: str  # lower case, as drizzle writes it: "no action", "cascade", ...
    on_update: str


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool
    where: str | None = None


@dataclass
class Relation:
    """What drizzle needs of a table or view: columns, keys, references, indexes, CHECKs."""

    name: str
    columns: list[Column]
    checks: list[Check] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    #: The table's catalog spec (codecs, enums, ts_types), or the view's.
    codecs: dict[str, str] = field(default_factory=dict)
    enums: dict[str, list[str]] = field(default_factory=dict)
    ts_types: dict[str, str] = field(default_factory=dict)
    view_sql: str | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in sorted((c for c in self.columns if c.pk), key=lambda c: c.pk))


@dataclass
class AppSchema:
    """The app database's schema (see the module docstring)."""

    catalog: Catalog
    tables: dict[str, Table]
    #: Tables and indexes (catalog order), then the migrations' own triggers and views,
    #: then the derived tables' triggers, then the declared views.
    statements: list[Statement]
    relations: dict[str, Relation]
    views: dict[str, Relation]
    user_version: int | None = None
    application_id: int | None = None

    def pragmas(self) -> list[str]:
        """The ``[target]`` PRAGMAs, as statements (none when the catalog sets none)."""
        out = []
        if self.user_version is not None:
            out.append(f"PRAGMA user_version = {self.user_version}")
        if self.application_id is not None:
            out.append(f"PRAGMA application_id = {self.application_id}")
        return out


def app_schema(catalog: Catalog) -> AppSchema:
    """CATALOG's app database schema, compiled in a scratch database.

    Raises CatalogError (one line, naming catalog.toml) for a trigger SQLite refuses, or
    anything `projector.target.read_tables` or `create_views` refuses.
    """
    where = f"{catalog.directory}/catalog.toml"
    with checked_tables(catalog) as (conn, tables):
        statements = _migration_statements(conn, tables)
        for table in tables.values():
            if table.derived is not None:
                for name, sql in derived_triggers(table, tables).items():
                    _create(conn, sql, f"{where}: [tables.{table.name}] derived trigger {name}")
                    statements.append(Statement("trigger", name, table.derived.parent, sql))
        declared_views: dict[str, Any] = catalog.spec.get("views", {})
        for name, sql in create_views(conn, catalog, tables).items():
            statements.append(Statement("view", name, name, sql))
        relations = {name: _relation(conn, name, catalog.spec["tables"][name]) for name in tables}
        views = {
            name: _view_relation(conn, name, spec, relations)
            for name, spec in declared_views.items()
        }
    for view in views.values():
        for column in view.columns:
            agreed = {
                tuple(r.enums.get(column.name, ()))
                for r in relations.values()
                if column.name in {c.name for c in r.columns}
            }
            if column.name not in view.enums and len(agreed) == 1 and (values := agreed.pop()):
                view.enums[column.name] = list(values)
    target = catalog.spec.get("target", {})
    return AppSchema(
        catalog=catalog,
        tables=tables,
        statements=statements,
        relations=relations,
        views=views,
        user_version=target.get("user_version"),
        application_id=target.get("application_id"),
    )


def _create(conn: sqlite3.Connection, sql: str, where: str) -> None:
    try:
        conn.execute(sql)
    except sqlite3.DatabaseError as exc:
        raise CatalogError(f"{where}: SQLite refuses it ({exc})") from None


def _migration_statements(conn: sqlite3.Connection, tables: dict[str, Table]) -> list[Statement]:
    rows = [
        Statement(kind, name, tbl, sql)
        for kind, name, tbl, sql in conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE sql IS NOT NULL ORDER BY rowid"
        )
        if tbl not in BOOKKEEPING_TABLES and not name.startswith("sqlite_")
    ]
    ordered: list[Statement] = []
    for table in tables:
        ordered += [s for s in rows if s.kind == "table" and s.name == table]
        ordered += [s for s in rows if s.kind == "index" and s.table == table]
    ordered += [s for s in rows if s.kind == "trigger"]
    ordered += [s for s in rows if s.kind == "view"]
    return ordered


def derived_triggers(table: Table, tables: dict[str, Table]) -> dict[str, str]:
    """Triggers keeping derived TABLE in step with its parent's JSON-array column: the
    distinct elements of the array, one row each (as `projector.store` writes them: an
    element the table cannot hold, a null in a NOT NULL column, fails the app's write,
    as the projector parks its event; ON CONFLICT DO NOTHING skips duplicates only)."""
    d = table.derived
    assert d is not None
    parent_key = tables[d.parent].row_key
    t, p = f'"{table.name}"', f'"{d.parent}"'
    k, e, c, pk = f'"{d.key}"', f'"{d.element}"', f'"{d.column}"', f'"{parent_key}"'
    insert = (
        f"INSERT INTO {t} ({k}, {e}) "
        # WHERE true: an upsert's SELECT needs one (https://sqlite.org/lang_upsert.html).
        f"SELECT NEW.{pk}, j.value FROM json_each(NEW.{c}) AS j WHERE true "
        "ON CONFLICT DO NOTHING;"
    )
    base = f"{table.name}_from_{d.parent}"
    return {
        f"{base}_insert": (
            f'CREATE TRIGGER "{base}_insert" AFTER INSERT ON {p}\nBEGIN\n    {insert}\nEND'
        ),
        f"{base}_update": (
            f'CREATE TRIGGER "{base}_update" AFTER UPDATE OF {c}, {pk} ON {p}\nBEGIN\n'
            f"    DELETE FROM {t} WHERE {k} = OLD.{pk} AND (NEW.{pk} IS NOT OLD.{pk} "
            f"OR {e} NOT IN (SELECT j.value FROM json_each(NEW.{c}) AS j));\n"
            f"    {insert}\nEND"
        ),
        f"{base}_delete": (
            f'CREATE TRIGGER "{base}_delete" AFTER DELETE ON {p}\nBEGIN\n'
            f"    DELETE FROM {t} WHERE {k} = OLD.{pk};\nEND"
        ),
    }


def _columns(conn: sqlite3.Connection, name: str) -> list[Column]:
    return [
        Column(r[1], r[2] or "", bool(r[3]), r[4], r[5])
        for r in conn.execute(f'PRAGMA table_info("{name}")')
    ]


def _relation(conn: sqlite3.Connection, name: str, spec: dict[str, Any]) -> Relation:
    columns = _columns(conn, name)
    create = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()[0]
    fks: dict[int, list[Any]] = {}
    for row in conn.execute(f'PRAGMA foreign_key_list("{name}")'):
        fks.setdefault(row[0], []).append(row)
    foreign_keys = [
        ForeignKey(
            tuple(r[3] for r in rows),
            rows[0][2],
            tuple(r[4] for r in rows),
            rows[0][6].lower(),
            rows[0][5].lower(),
        )
        for _, rows in sorted(fks.items(), reverse=True)  # SQLite lists the last one first
    ]
    indexes = []
    for row in conn.execute(f'PRAGMA index_list("{name}")'):
        if row[3] != "c":  # only CREATE INDEX; PRIMARY KEY and UNIQUE are the table's
            continue
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (row[1],)).fetchone()[0]
        cols = tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{row[1]}")'))
        match = re.search(r"\)\s+WHERE\s+(.*)$", sql, re.IGNORECASE | re.DOTALL)
        indexes.append(
            Index(row[1], cols, bool(row[2]), _collapse(match.group(1)) if match else None)
        )
    indexes.sort(key=lambda i: i.name)
    checks = parse_checks(name, create)
    codecs = dict(spec.get("codecs", {}))
    if "client_document" in spec:
        codecs["value"] = "json"
    enums = {c.column: v for c in checks if c.column and (v := enum_values(c.column, c.expression))}
    enums.update(spec.get("enums", {}))
    return Relation(
        name,
        columns,
        checks,
        foreign_keys,
        indexes,
        codecs,
        enums,
        dict(spec.get("ts_types", {})),
    )


def _view_relation(
    conn: sqlite3.Connection, name: str, spec: dict[str, Any], relations: dict[str, Relation]
) -> Relation:
    """A declared view; a column's codec is the view's own, else the one every table with
    a column of that name agrees on (so `createdAt` stays an ISO date in a view)."""
    columns = _columns(conn, name)
    codecs = dict(spec.get("codecs", {}))
    for column in columns:
        if column.name in codecs:
            continue
        found = {
            r.codecs.get(column.name)
            for r in relations.values()
            if column.name in {c.name for c in r.columns}
        }
        if len(found) == 1 and (codec := found.pop()) is not None:
            codecs[column.name] = codec
    sql = spec["sql"].strip().rstrip(";")
    return Relation(
        name,
        columns,
        codecs=codecs,
        enums=dict(spec.get("enums", {})),
        ts_types=dict(spec.get("ts_types", {})),
        view_sql=sql,
    )


# ---------------------------------------------------------------- reading CREATE TABLE

_TOKEN = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?\*/|\s+|[(),]|[^\s(),'"`\[]+""",
    re.DOTALL,
)


def _tokens(sql: str) -> list[str]:
    return _TOKEN.findall(sql)


def _collapse(sql: str) -> str:
    """SQL with comments dropped and each run of whitespace outside literals one space."""
    out: list[str] = []
    for tok in _tokens(sql):
        if tok.startswith("--") or tok.startswith("/*") or tok.isspace():
            if out and out[-1] != " ":
                out.append(" ")
        else:
            out.append(tok)
    return "".join(out).strip()


def unquote(name: str) -> str:
    """An SQL identifier as written in DDL, without its quotes ('"', backticks, [])."""
    if name[:1] in '"`[' and len(name) >= 2:
        return name[1:-1].replace('""', '"')
    return name


def parse_checks(table: str, create_sql: str) -> list[Check]:
    """The CHECK constraints of a CREATE TABLE statement, each named as drizzle would
    name it (``<table>_<column>_check``, or ``<table>_check_<n>`` at table level, or the
    CONSTRAINT name), with the expression's text as written (whitespace collapsed)."""
    tokens = [t for t in _tokens(create_sql) if t[:2] not in ("--", "/*")]
    start = tokens.index("(")
    definitions: list[list[str]] = [[]]
    depth = 0
    for tok in tokens[start + 1 :]:
        if tok == "(":
            depth += 1
        elif tok == ")":
            if depth == 0:
                break
            depth -= 1
        elif tok == "," and depth == 0:
            definitions.append([])
            continue
        definitions[-1].append(tok)
    checks: list[Check] = []
    table_level = 0
    for raw in definitions:
        definition = [t for t in raw if not t.isspace()]
        if not definition:
            continue
        head = definition[0].upper()
        column = None if head in _TABLE_CONSTRAINTS else unquote(definition[0])
        at = [k for k, t in enumerate(raw) if not t.isspace()]  # raw index of each token
        i = 0
        while i < len(definition):
            constraint = None
            if definition[i].upper() == "CONSTRAINT" and i + 1 < len(definition):
                constraint = unquote(definition[i + 1])
                i += 2
            if i + 1 < len(definition) and definition[i].upper() == "CHECK":
                depth, j = 0, i + 1
                while j < len(definition):
                    depth += definition[j] == "("
                    depth -= definition[j] == ")"
                    j += 1
                    if depth == 0:
                        break
                expression = _collapse("".join(raw[at[i + 1] + 1 : at[j - 1]]))
                if constraint:
                    name = constraint
                elif column is not None:
                    same = sum(1 for c in checks if c.column == column)
                    name = f"{table}_{column}_check" + (f"_{same + 1}" if same else "")
                else:
                    table_level += 1
                    name = f"{table}_check_{table_level}"
                checks.append(Check(name, column, expression))
                i = j
            else:
                i += 1
    return checks


_TABLE_CONSTRAINTS = {"CONSTRAINT", "CHECK", "PRIMARY", "UNIQUE", "FOREIGN"}
_LITERAL = r"'(?:[^']|'')*'"


def enum_values(column: str, expression: str) -> list[str] | None:
    """The text values a CHECK allows COLUMN, when it is ``c IN ('a', ...)`` or
    ``c = 'a' OR c = 'b' ...``; None for any other expression."""
    name = rf"(?:{re.escape(column)}|\"{re.escape(column)}\")"
    text = expression.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    found = re.fullmatch(
        rf"{name}\s+IN\s*\(\s*({_LITERAL}(?:\s*,\s*{_LITERAL})*)\s*\)", text, re.IGNORECASE
    )
    if found is None:
        one = rf"{name}\s*=\s*({_LITERAL})"
        if not re.fullmatch(rf"{one}(?:\s+OR\s+{one})*", text, re.IGNORECASE):
            return None
        literals = re.findall(rf"=\s*({_LITERAL})", text)
    else:
        literals = re.findall(_LITERAL, found.group(1))
    return [lit[1:-1].replace("''", "'") for lit in literals]


__all__ = [
    "AppSchema",
    "Check",
    "Column",
    "ForeignKey",
    "Index",
    "Relation",
    "Statement",
    "app_schema",
    "derived_triggers",
    "enum_values",
    "parse_checks",
]
