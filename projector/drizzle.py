"""Drizzle ORM files for the app database, written from the catalog (never pulled from a DB).

`write_drizzle` writes, for any catalog (see `projector.appschema`):

- ``schema.ts``: one ``sqliteTable`` per table and one ``sqliteView`` per declared view,
  with column modes that round-trip the stored encodings (catalog codecs: ``json`` ->
  ``text({ mode: 'json' }).$type<T>()``, with T from the event schemas that feed the
  column; ``boolean`` -> ``integer({ mode: 'boolean' })``; ``datetime_ms`` ->
  ``integer({ mode: 'timestamp_ms' })`` (a Date); ``datetime`` stays ISO text), enums (the
  catalog's, or those a CHECK makes certain), defaults, primary and foreign keys, indexes
  and CHECKs as the catalog's SQL declares them. drizzle-kit pull reads CHECKs wrongly
  (drizzle-orm issues #3407, #6195), which is why these files come from the catalog;
- ``relations.ts``: drizzle's ``relations()`` for every foreign key;
- ``migrations/``: a Drizzle migration folder: ``0000_<catalog>_from_livestore.sql`` (the
  app database's schema, the statements `projector finalize` runs), ``meta/_journal.json``
  and ``meta/0000_snapshot.json`` (the snapshot drizzle-kit would make of schema.ts, so
  ``drizzle-kit generate`` finds nothing to do);
- ``drizzle.config.ts``: drizzle-kit's config for the two.

`finalize --drizzle` records the 0000 migration as applied in the app database's
``__drizzle_migrations`` table (`applied_migration`), so the app's ``migrate()`` skips it
and applies only its own later migrations. The formats are drizzle-orm 0.45's
(``drizzle-orm/migrator.js``: ``readMigrationFiles`` hashes each file with sha256;
``sqlite-core/dialect.js``: ``migrate`` applies an entry when its journal ``when`` is later
than the newest ``created_at``) and drizzle-kit 0.31's (``generateSqliteSnapshot``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events.catalog import Catalog
from projector.appschema import AppSchema, Column, Relation, app_schema
from projector.errors import HandoffError

MIGRATIONS = "migrations"
BREAKPOINT = "\n--> statement-breakpoint\n"
#: drizzle-orm's migrations table, as its better-sqlite3 migrator creates it
#: (drizzle-orm 0.45 sqlite-core/dialect.js, SQLiteSyncDialect.migrate).
MIGRATIONS_TABLE = "__drizzle_migrations"
MIGRATIONS_TABLE_SQL = (
    f'CREATE TABLE IF NOT EXISTS "{MIGRATIONS_TABLE}" '
    "(id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)"
)
_NIL_UUID = "00000000-0000-0000-0000-000000000000"
_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_JS_RESERVED = frozenset(
    "break case catch class const continue debugger default delete do else enum export "
    "extends false finally for function if import in instanceof new null return super "
    "switch this throw true try typeof var void while with yield let static await sql "
    "relations".split()
)


@dataclass(frozen=True)
class DrizzleFiles:
    """What `write_drizzle` wrote (paths) and the migration `finalize` marks as applied."""

    out_dir: Path
    schema_ts: Path
    relations_ts: Path
    config_ts: Path
    migrations: Path
    migration: Path  # the 0000 file
    when: int  # its journal "when" (epoch ms)
    hash: str  # sha256 of the 0000 file, as drizzle-orm's migrator computes it

    def as_dict(self) -> dict[str, Any]:
        return {
            "outDir": str(self.out_dir),
            "schema": str(self.schema_ts),
            "relations": str(self.relations_ts),
            "config": str(self.config_ts),
            "migrations": str(self.migrations),
            "migration": self.migration.name,
            "when": self.when,
            "hash": self.hash,
        }


# ---------------------------------------------------------------- the 0000 migration


def migration_tag(catalog: Catalog) -> str:
    """The 0000 migration's journal tag, e.g. ``0000_ai_desk_from_livestore``."""
    return "0000_" + re.sub(r"[^a-z0-9]+", "_", catalog.name.lower()).strip("_") + "_from_livestore"


def migration_sql(schema: AppSchema) -> str:
    """The 0000 migration: every statement of the app database, in `finalize`'s order,
    split as drizzle's migrator splits (one statement per chunk)."""
    statements = [s.sql + ";" for s in schema.statements] + [p + ";" for p in schema.pragmas()]
    header = (
        f"-- The {schema.catalog.name} app database as `projector finalize` hands it over\n"
        "-- (livestore-projector). Marked as applied in a migrated database; a new install\n"
        "-- applies it as is.\n"
    )
    return header + BREAKPOINT.join(statements) + "\n"


# ---------------------------------------------------------------- names and TS types


def export_name(name: str, taken: set[str] | None = None) -> str:
    """A JS identifier for table NAME: ``memory_tags`` -> ``memoryTags``."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    ident = (parts[0][:1].lower() + parts[0][1:] if parts else "t") + "".join(
        p[:1].upper() + p[1:] for p in parts[1:]
    )
    if not _IDENT.match(ident):
        ident = "_" + ident
    if ident in _JS_RESERVED:
        ident += "Table"
    while taken is not None and ident in taken:
        ident += "_"
    return ident


def _pascal(ident: str) -> str:
    return ident[:1].upper() + ident[1:]


def _key(name: str) -> str:
    return name if _IDENT.match(name) else json.dumps(name)


def ts_type(schema: Any) -> str:
    """The TypeScript type of values valid under a JSON Schema (Draft 2020-12 subset:
    type, enum, const, anyOf/oneOf, items, properties/required, additionalProperties)."""
    if not isinstance(schema, dict):
        return "unknown"
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    if "enum" in schema:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(dict.fromkeys(_wrap(ts_type(s)) for s in schema[key]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_wrap(ts_type({**schema, "type": k})) for k in kind)
    if kind == "string":
        return "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        return f"Array<{ts_type(schema.get('items', {}))}>"
    if kind == "object":
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if not props:
            value = ts_type(extra) if isinstance(extra, dict) else "unknown"
            return "Record<string, never>" if extra is False else f"Record<string, {value}>"
        required = set(schema.get("required", []))
        fields = [
            f"{_key(k)}{'' if k in required else '?'}: {ts_type(v)}" for k, v in props.items()
        ]
        if extra is not False:
            fields.append(
                f"[key: string]: {ts_type(extra) if isinstance(extra, dict) else 'unknown'}"
            )
        return "{ " + "; ".join(fields) + " }"
    return "unknown"


def _wrap(text: str) -> str:
    return f"({text})" if " | " in text and not text.startswith("{") else text


def json_column_types(catalog: Catalog) -> dict[tuple[str, str], str]:
    """(table, column) -> the TS type of each JSON column, from the JSON Schema of the
    first event arg the catalog's projection writes into it; a client document's value
    from its ``<name>Set`` schema, every key of its default present."""
    found: dict[tuple[str, str], str] = {}
    for event, ops in catalog.spec.get("events", {}).items():
        event_schema = catalog.schemas.get(event, {})
        for op in ops if isinstance(ops, list) else [ops]:
            table = op.get("insert") or op.get("update")
            for column, value in {**op.get("values", {}), **op.get("set", {})}.items():
                path = value.get("arg") if isinstance(value, dict) else value
                if not isinstance(path, str) or (
                    isinstance(value, str) and not path.startswith("$.")
                ):
                    continue
                node: Any = event_schema
                for part in path.removeprefix("$.").split("."):
                    node = node.get("properties", {}).get(part) if isinstance(node, dict) else None
                if node is not None:
                    found.setdefault((table, column), ts_type(node))
    for table, spec in catalog.spec.get("tables", {}).items():
        if "client_document" in spec:
            value = catalog.schemas.get(f"{table}Set", {}).get("properties", {}).get("value")
            if isinstance(value, dict):
                keys = list(json.loads(spec["client_document"]))
                found[(table, "value")] = ts_type({**value, "required": keys})
    return found


# ---------------------------------------------------------------- columns


def _affinity(declared: str) -> str:
    """drizzle's column builder for a declared type, by SQLite's affinity rules
    (https://www.sqlite.org/datatype3.html#determination_of_column_affinity)."""
    t = declared.upper()
    if "INT" in t:
        return "integer"
    if any(s in t for s in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if not t or "BLOB" in t or t == "ANY":
        return "blob"
    if any(s in t for s in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def _js_number(text: str) -> int | float | None:
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)", text):
        value = float(text)
        return int(value) if value.is_integer() else value
    return None


def _template(sql: str) -> str:
    return "sql`" + sql.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${") + "`"


def _default(column: Column, codec: str | None) -> tuple[str, Any] | None:
    """(TS for ``.default(...)``, the snapshot's default) for COLUMN's DDL default, as
    drizzle-kit serializes it: a string as ``'text'``, a number or boolean as is, an
    object or array as ``'<JSON.stringify>'``, a ``sql`...` `` as its text."""
    text = column.default
    if text is None:
        return None
    literal = re.fullmatch(r"'((?:[^']|'')*)'", text, re.DOTALL)
    if literal is not None:
        value = literal.group(1).replace("''", "'")
        if codec == "json":
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            stringified = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
            if isinstance(parsed, dict | list) and stringified == value:
                return stringified, f"'{stringified}'"
        elif codec not in ("boolean", "datetime_ms"):
            return json.dumps(value, ensure_ascii=False), "'" + value.replace("'", "''") + "'"
    number = _js_number(text)
    if number is not None:
        if codec == "boolean" and number in (0, 1):
            return ("true" if number else "false"), bool(number)
        if codec not in ("datetime_ms", "json"):
            return str(number), number
    return _template(text), text


@dataclass(frozen=True)
class _Col:
    ts: str  # the builder expression
    snapshot: dict[str, Any]


def _column(
    relation: Relation,
    column: Column,
    ts_types: dict[tuple[str, str], str],
    exports: dict[str, str],
    single_pk: bool,
    view: bool = False,
) -> _Col:
    codec = relation.codecs.get(column.name)
    name = json.dumps(column.name)
    enum = relation.enums.get(column.name)
    if codec == "json":
        the_type = relation.ts_types.get(column.name) or ts_types.get((relation.name, column.name))
        if the_type is None and view:  # a view's column: the type its tables agree on
            agreed = {t for (_, c), t in ts_types.items() if c == column.name}
            the_type = agreed.pop() if len(agreed) == 1 else None
        the_type = the_type or "unknown"
        builder, sql_type = f"text({name}, {{ mode: 'json' }}).$type<{the_type}>()", "text"
    elif codec == "boolean":
        builder, sql_type = f"integer({name}, {{ mode: 'boolean' }})", "integer"
    elif codec == "datetime_ms":
        builder, sql_type = f"integer({name}, {{ mode: 'timestamp_ms' }})", "integer"
    else:
        sql_type = _affinity(column.type)
        if sql_type == "text" and enum:
            values = ", ".join(json.dumps(v, ensure_ascii=False) for v in enum)
            builder = f"text({name}, {{ enum: [{values}] }})"
        elif sql_type == "blob":
            builder = f"blob({name}, {{ mode: 'buffer' }})"
        else:
            builder = f"{sql_type}({name})"
    primary = single_pk and column.pk == 1 and not view
    not_null = (column.not_null or primary) and not view
    if primary:
        builder += ".primaryKey()"
    elif not_null:
        builder += ".notNull()"
    entry: dict[str, Any] = {
        "name": column.name,
        "type": sql_type,
        "primaryKey": primary,
        "notNull": not_null,
        "autoincrement": False,
    }
    if not view:
        default = _default(column, codec)
        if default is not None:
            builder += f".default({default[0]})"
            entry["default"] = default[1]
        for fk in relation.foreign_keys:
            if fk.columns == (column.name,):
                target = exports[fk.table]
                arrow = (
                    f"(): AnySQLiteColumn => {target}.{_prop(fk.to_columns[0])}"
                    if fk.table == relation.name
                    else f"() => {target}.{_prop(fk.to_columns[0])}"
                )
                options = {
                    k: v
                    for k, v in (("onDelete", fk.on_delete), ("onUpdate", fk.on_update))
                    if v != "no action"
                }
                opts = (
                    ", { " + ", ".join(f"{k}: '{v}'" for k, v in options.items()) + " }"
                    if options
                    else ""
                )
                builder += f".references({arrow}{opts})"
    return _Col(builder, entry)


def _prop(name: str) -> str:
    return name if _IDENT.match(name) else f"[{json.dumps(name)}]"


def _cols(names: tuple[str, ...], var: str = "t") -> str:
    return ", ".join(f"{var}.{_prop(n)}" for n in names)


# ---------------------------------------------------------------- schema.ts + snapshot


def render(schema: AppSchema) -> tuple[str, str, dict[str, Any]]:
    """(schema.ts, relations.ts, the 0000 snapshot without id/prevId) for SCHEMA."""
    taken: set[str] = set()
    exports: dict[str, str] = {}
    for name in [*schema.relations, *schema.views]:
        exports[name] = export_name(name, taken)
        taken.add(exports[name])
    ts_types = json_column_types(schema.catalog)
    imports = {"sqliteTable"}
    body: list[str] = []
    tables_snapshot: dict[str, Any] = {}
    for name, rel in schema.relations.items():
        single_pk = len(rel.key) == 1
        cols = [_column(rel, c, ts_types, exports, single_pk) for c in rel.columns]
        extras: list[str] = []
        composite: dict[str, Any] = {}
        indexes: dict[str, Any] = {}
        checks: dict[str, Any] = {}
        foreign: dict[str, Any] = {}
        if len(rel.key) > 1:
            imports.add("primaryKey")
            extras.append(f"primaryKey({{ columns: [{_cols(rel.key)}] }})")
            pk_name = f"{name}_{'_'.join(rel.key)}_pk"
            composite[pk_name] = {"columns": list(rel.key), "name": pk_name}
        for fk in rel.foreign_keys:
            fk_name = f"{name}_{'_'.join(fk.columns)}_{fk.table}_{'_'.join(fk.to_columns)}_fk"
            foreign[fk_name] = {
                "name": fk_name,
                "tableFrom": name,
                "tableTo": fk.table,
                "columnsFrom": list(fk.columns),
                "columnsTo": list(fk.to_columns),
                "onDelete": fk.on_delete,
                "onUpdate": fk.on_update,
            }
            if len(fk.columns) > 1:
                imports.add("foreignKey")
                extras.append(
                    f"foreignKey({{ columns: [{_cols(fk.columns)}], foreignColumns: "
                    f"[{_cols(fk.to_columns, exports[fk.table])}] }})"
                    + (f".onDelete('{fk.on_delete}')" if fk.on_delete != "no action" else "")
                    + (f".onUpdate('{fk.on_update}')" if fk.on_update != "no action" else "")
                )
        for index in rel.indexes:
            if any(c is None for c in index.columns):
                extras.append(f"// {index.name} is on an expression: in the database only")
                continue
            builder = "uniqueIndex" if index.unique else "index"
            imports.add(builder)
            where = f".where({_template(index.where)})" if index.where else ""
            extras.append(f"{builder}({json.dumps(index.name)}).on({_cols(index.columns)}){where}")
            indexes[index.name] = {
                "name": index.name,
                "columns": list(index.columns),
                "isUnique": index.unique,
                **({"where": index.where} if index.where else {}),
            }
        for check in rel.checks:
            imports.add("check")
            extras.append(f"check({json.dumps(check.name)}, {_template(check.expression)})")
            checks[check.name] = {"name": check.name, "value": check.expression}
        for col in cols:
            imports.add(col.ts.split("(", 1)[0])
        lines = [f"export const {exports[name]} = sqliteTable({json.dumps(name)}, {{"]
        lines += [f"  {_key(c.name)}: {col.ts}," for c, col in zip(rel.columns, cols, strict=True)]
        if extras:
            lines.append("}, (t) => [")
            lines += [f"  {e}," if not e.startswith("//") else f"  {e}" for e in extras]
            lines.append("]);")
        else:
            lines.append("});")
        typename = _pascal(exports[name])
        lines.append(f"export type {typename}Row = typeof {exports[name]}.$inferSelect;")
        lines.append(f"export type New{typename}Row = typeof {exports[name]}.$inferInsert;")
        body.append("\n".join(lines))
        tables_snapshot[name] = {
            "name": name,
            "columns": {c.name: col.snapshot for c, col in zip(rel.columns, cols, strict=True)},
            "indexes": indexes,
            "foreignKeys": foreign,
            "compositePrimaryKeys": composite,
            "uniqueConstraints": {},
            "checkConstraints": checks,
        }
    views_snapshot: dict[str, Any] = {}
    for name, view in schema.views.items():
        imports.add("sqliteView")
        cols = [_column(view, c, ts_types, exports, False, view=True) for c in view.columns]
        for col in cols:
            imports.add(col.ts.split("(", 1)[0])
        assert view.view_sql is not None
        lines = [f"export const {exports[name]} = sqliteView({json.dumps(name)}, {{"]
        lines += [f"  {_key(c.name)}: {col.ts}," for c, col in zip(view.columns, cols, strict=True)]
        lines.append(f"}}).as({_template(view.view_sql)});")
        body.append("\n".join(lines))
        views_snapshot[name] = {
            "columns": {c.name: col.snapshot for c, col in zip(view.columns, cols, strict=True)},
            "name": name,
            "isExisting": False,
            "definition": view.view_sql,
        }
    needs_sql = any("sql`" in b for b in body)
    needs_any = any("AnySQLiteColumn" in b for b in body)
    if needs_any:
        imports.add("type AnySQLiteColumn")
    order = sorted(imports, key=lambda i: i.removeprefix("type "))
    head = [
        f"// Drizzle schema of the {schema.catalog.name} app database, written by "
        "`projector drizzle` from its catalog.",
        "// Regenerate it rather than edit it by hand until the app owns its schema "
        "(see README: Hand-off to your app).",
        *(["import { sql } from 'drizzle-orm';"] if needs_sql else []),
        f"import {{ {', '.join(order)} }} from 'drizzle-orm/sqlite-core';",
    ]
    schema_ts = "\n".join(head) + "\n\n" + "\n\n".join(body) + "\n"
    snapshot = {
        "version": "6",
        "dialect": "sqlite",
        "tables": tables_snapshot,
        "views": views_snapshot,
        "enums": {},
        "_meta": {"schemas": {}, "tables": {}, "columns": {}},
        "internal": {"indexes": {}},
    }
    return schema_ts, render_relations(schema, exports), snapshot


def render_relations(schema: AppSchema, exports: dict[str, str]) -> str:
    """relations.ts: for each foreign key, ``one`` on the referencing table and ``many``
    (``one`` when the key is the referencing table's primary key) on the referenced one."""
    sides: dict[str, list[tuple[str, str]]] = {name: [] for name in schema.relations}
    for name, rel in schema.relations.items():
        pairs = [fk.table for fk in rel.foreign_keys]
        for fk in rel.foreign_keys:
            ambiguous = pairs.count(fk.table) > 1
            tag = (
                ", relationName: " + json.dumps(f"{name}_{'_'.join(fk.columns)}")
                if ambiguous
                else ""
            )
            column = fk.columns[0]
            child_field = (
                column[:-2]
                if len(fk.columns) == 1 and column.endswith("Id") and len(column) > 2
                else f"{exports[fk.table]}By{_pascal(export_name(column))}"
            )
            cols = ", ".join(f"{exports[name]}.{_prop(c)}" for c in fk.columns)
            refs = ", ".join(f"{exports[fk.table]}.{_prop(c)}" for c in fk.to_columns)
            one = f"one({exports[fk.table]}, {{ fields: [{cols}], references: [{refs}]{tag} }})"
            sides[name].append((child_field, one))
            unique = fk.columns == rel.key
            parent_field = exports[name] + (
                f"By{_pascal(export_name(column))}" if ambiguous else ""
            )
            how = "one" if unique else "many"
            sides[fk.table].append(
                (parent_field, f"{how}({exports[name]}" + (f", {{ {tag[2:]} }})" if tag else ")"))
            )
    used = [exports[name] for name, fields in sides.items() if fields]
    title = f"// Drizzle relations of the {schema.catalog.name} app database (`projector drizzle`)."
    if not used:
        return f"{title}\n// Its tables declare no foreign keys, so there are none.\nexport {{}};\n"
    out = [
        title,
        "import { relations } from 'drizzle-orm';",
        f"import {{ {', '.join(used)} }} from './schema';",
        "",
    ]
    for name, fields in sides.items():
        if not fields:
            continue
        helpers = sorted({f.split("(", 1)[0] for _, f in fields})
        column_names = {c.name for c in schema.relations[name].columns}
        seen: set[str] = set()
        entries = []
        for field, expr in fields:
            while field in seen or field in column_names:
                field += "_"
            seen.add(field)
            entries.append(f"  {field}: {expr},")
        out.append(
            f"export const {exports[name]}Relations = relations({exports[name]}, "
            f"({{ {', '.join(helpers)} }}) => ({{"
        )
        out += entries
        out.append("}));\n")
    return "\n".join(out).rstrip() + "\n"


CONFIG_TS = """// drizzle-kit's config for the files `projector drizzle` wrote:
// `npx drizzle-kit generate` after a change to schema.ts writes the next migration.
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './schema.ts',
  out: './migrations',
});
"""


def find_migrations(folder: Path) -> Path | None:
    """The Drizzle migration folder at FOLDER (one holding meta/_journal.json), or in
    FOLDER/migrations; None when there is none."""
    for candidate in (folder, folder / MIGRATIONS):
        if (candidate / "meta" / "_journal.json").is_file():
            return candidate
    return None


def write_drizzle(
    catalog: Catalog, out_dir: Path, *, schema: AppSchema | None = None, force: bool = False
) -> DrizzleFiles:
    """Write schema.ts, relations.ts, drizzle.config.ts and migrations/ into OUT_DIR.

    A migration folder already there that begins with this catalog's 0000 migration, byte
    for byte, is kept (its ``when`` too), so regenerating is idempotent. Raises
    HandoffError when OUT_DIR's migrations begin with another 0000, or hold the app's
    own later migrations (then schema.ts is the app's, and is not overwritten), or when a
    schema.ts, relations.ts or drizzle.config.ts there differs from what would be written
    (the app's edits: FORCE replaces them), and when OUT_DIR is a file.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise HandoffError(f"{out_dir}: is a file; the Drizzle files go into a folder")
    schema = schema or app_schema(catalog)
    schema_ts, relations_ts, snapshot = render(schema)
    sql = migration_sql(schema)
    tag = migration_tag(catalog)
    migrations = out_dir / MIGRATIONS
    journal_path = migrations / "meta" / "_journal.json"
    when = int(time.time() * 1000)
    if journal_path.exists():
        entries = _journal_entries(journal_path)
        existing = migrations / f"{entries[0]['tag']}.sql" if entries else None
        if existing is None or not existing.is_file() or existing.read_text("utf-8") != sql:
            raise HandoffError(
                f"{migrations}: holds another first migration than {tag}.sql of the "
                f"{catalog.name} catalog; write into a new folder"
            )
        if len(entries) > 1:
            raise HandoffError(
                f"{migrations}: holds the app's own migrations after {tag}; schema.ts is the "
                "app's now and is not overwritten (finalize --drizzle still marks 0000 applied)"
            )
        when = int(entries[0]["when"])
    (migrations / "meta").mkdir(parents=True, exist_ok=True)
    snapshot_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"livestore-projector:{tag}:{_sha256(sql)}"))
    ordered = {"version": "6", "dialect": "sqlite", "id": snapshot_id, "prevId": _NIL_UUID}
    ordered.update({k: v for k, v in snapshot.items() if k not in ordered})
    journal = {
        "version": "7",
        "dialect": "sqlite",
        "entries": [{"idx": 0, "version": "6", "when": when, "tag": tag, "breakpoints": True}],
    }
    files = {
        out_dir / "schema.ts": schema_ts,
        out_dir / "relations.ts": relations_ts,
        out_dir / "drizzle.config.ts": CONFIG_TS,
        migrations / f"{tag}.sql": sql,
        migrations / "meta" / "0000_snapshot.json": json.dumps(ordered, indent=2) + "\n",
        journal_path: json.dumps(journal, indent=2) + "\n",
    }
    if not force:
        edited = [
            path.name
            for path in (
                out_dir / "schema.ts",
                out_dir / "relations.ts",
                out_dir / "drizzle.config.ts",
            )
            if path.is_file() and path.read_text("utf-8") != files[path]
        ]
        if edited:
            one = len(edited) == 1
            raise HandoffError(
                f"{out_dir}: {', '.join(edited)} {'differs' if one else 'differ'} from what the "
                f"{catalog.name} catalog gives (edited by hand?); refusing to overwrite "
                f"{'it' if one else 'them'} (--force replaces {'it' if one else 'them'})"
            )
    for path, text in files.items():
        path.write_text(text, "utf-8")
    return DrizzleFiles(
        out_dir=out_dir,
        schema_ts=out_dir / "schema.ts",
        relations_ts=out_dir / "relations.ts",
        config_ts=out_dir / "drizzle.config.ts",
        migrations=migrations,
        migration=migrations / f"{tag}.sql",
        when=when,
        hash=_sha256(sql),
    )


def applied_migration(catalog: Catalog, folder: Path, schema: AppSchema) -> tuple[str, int, Path]:
    """(hash, when, file) of the first migration in the Drizzle migration folder FOLDER
    (or FOLDER/migrations), checked to be this catalog's 0000 byte for byte: the row
    `finalize` writes into ``__drizzle_migrations``.

    Raises HandoffError when there is no journal or its first migration is another one.
    """
    migrations = find_migrations(folder)
    if migrations is None:
        raise HandoffError(f"{folder}: no Drizzle migration folder (meta/_journal.json)")
    entries = _journal_entries(migrations / "meta" / "_journal.json")
    path = migrations / f"{entries[0]['tag']}.sql" if entries else migrations / "?"
    if not path.is_file() or path.read_text("utf-8") != migration_sql(schema):
        raise HandoffError(
            f"{path}: is not the {catalog.name} catalog's first migration "
            f"({migration_tag(catalog)}.sql as `projector drizzle` writes it); regenerate it"
        )
    return _sha256(path.read_text("utf-8")), int(entries[0]["when"]), path


def _journal_entries(path: Path) -> list[dict[str, Any]]:
    try:
        entries = json.loads(path.read_text("utf-8"))["entries"]
        assert isinstance(entries, list)
        return entries
    except (ValueError, KeyError, TypeError, AssertionError):
        raise HandoffError(f"{path}: not a Drizzle migration journal") from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = [
    "CONFIG_TS",
    "MIGRATIONS_TABLE",
    "MIGRATIONS_TABLE_SQL",
    "DrizzleFiles",
    "applied_migration",
    "export_name",
    "find_migrations",
    "json_column_types",
    "migration_sql",
    "migration_tag",
    "render",
    "ts_type",
    "write_drizzle",
]
