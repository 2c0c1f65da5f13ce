"""`scaffold`: a draft catalog for an app the projector has never seen, and how far it is.

`scaffold(SOURCE, OUT_DIR, state=STATE_DB)` reads every event of SOURCE once and writes a
catalog folder (the contract is docs/catalogs.md) into OUT_DIR:

1. one JSON Schema per event name, inferred from the args the log holds (`infer_schema`:
   types, required keys, enums where a string takes few values, ISO dates);
2. the target tables: LiveStore's own, recreated from STATE_DB's DDL, or, without it,
   tables inferred from the events (best effort), as ``migrations/0001_app_tables.sql``,
   with client documents recognised and each column's codec guessed;
3. a declarative projection guessed from the event names and args (`plan_event`);

then replays SOURCE with the draft into a scratch target (`projector.replay.replay`) and
compares that with STATE_DB (`projector.verify.verify`), and writes OUT_DIR/REPORT.md:
per event name what was applied and parked and why, per table how many of LiveStore's
rows are equal, and what is left to finish by hand. The draft is called verified only
when the replay parked nothing and verify found no difference at all; otherwise the
report says "draft NOT verified". Every guess is marked in catalog.toml.

No rule here knows an app. They read event names in LiveStore's convention (a version
prefix, then a noun and a verb in past tense: ``v1.TodoCreated``), arg names, the values
the log holds and SQLite's catalog of the state DB.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from events.catalog import HOOKS_FILE, MIGRATIONS_DIR, SPEC_FILE, Catalog, bundled_catalog_names
from events.errors import CatalogError
from events.sources import connect_readonly, open_source
from events.sqlite_source import EVENTLOG_FILE, state_files
from events.validation import escape_surrogates, parse_args
from projector.appschema import unquote
from projector.errors import ReplayError, ScaffoldError, TargetError
from projector.replay import ReplayOptions, replay
from projector.target import PARKED_TABLE, in_source_folder, reserved
from projector.verify import not_a_state_db, verify

# ---------------------------------------------------------------- the rules, as data

#: Date.prototype.toISOString()'s form, as the bundled schemas spell it (Schema.Date).
ISO_DATE_PATTERN = (
    r"^(?:\d{4}|[+-]\d{6})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$"
)
_ISO = re.compile(ISO_DATE_PATTERN, re.ASCII)
#: A string key becomes an enum when it takes at most ENUM_MAX_VALUES distinct values
#: over at least ENUM_MIN_OCCURRENCES occurrences, every value is a short token (a
#: letter, then letters, digits or ``_.:/-``: what Schema.Literal values look like; free
#: text has spaces or is empty) and the key does not name an identifier (``id``,
#: ``...Id``, ``key``: few ids in a small log are not a closed set).
ENUM_MAX_VALUES = 8
ENUM_MIN_OCCURRENCES = 20
_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_.:/-]{0,31}$")
_IDENTIFIER_KEY = re.compile(r"^(?:id|key|.*Id|.*_id|.*Key)$")
#: Integers in this range are epoch milliseconds (2001-09-09 .. 2286-11-20), a guess.
EPOCH_MS = (10**12, 10**13)
#: Deeper nesting, or more distinct keys in one object, is described as any JSON value
#: (fastjsonschema compiles a schema to Python, which refuses more than 20 nested blocks:
#: about 21 levels of arrays).
MAX_DEPTH = 16
MAX_KEYS = 200
#: How many keys per noun are tracked to notice a create of a key already created.
MAX_TRACKED_KEYS = 1_000_000
#: How many client-document row ids are tracked (their keys set) per document.
MAX_DOCUMENT_IDS = 10_000
TYPE_ORDER = ("string", "number", "boolean", "array", "object", "null")

# The verbs are English past participles, the way LiveStore's docs name events; they
# say what a materializer most likely does. A verb not listed is guessed from the state
# DB (a boolean column of that name: a flag), else left for the user.
CREATE_VERBS = frozenset({"created", "added", "inserted", "registered"})
UPSERT_VERBS = frozenset(
    {"installed", "set", "saved", "upserted", "stored", "put", "replaced", "imported"}
)
UPDATE_VERBS = frozenset(
    {"updated", "changed", "renamed", "edited", "modified", "moved", "patched", "reordered"}
)
DELETE_VERBS = frozenset(
    {"deleted", "removed", "uninstalled", "cleared", "discarded", "destroyed", "dropped"}
    | {"purged", "erased"}
)
#: Flag verbs that are each other's opposite without an un-/de-/dis- prefix.
FLAG_OPPOSITES = {
    "disabled": "enabled",
    "closed": "opened",
    "hidden": "shown",
    "stopped": "started",
    "rejected": "accepted",
}
_NEGATIONS = ("un", "de", "dis")
_VERSION_PREFIX = re.compile(r"^[vV]\d+[._-]")
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_DATE_COLUMN = re.compile(r"(?:At|_at|Date|_date|Time|_time|On)$")
_SAFE_FILE = re.compile(r"[^A-Za-z0-9._-]")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SQL_TYPES = {"INT": "INTEGER", "INTEGER": "INTEGER", "REAL": "REAL", "TEXT": "TEXT"}
SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
MIGRATION_FILE = "0001_app_tables.sql"
REPORT_FILE = "REPORT.md"
#: Lines of "finish by hand" items printed by the CLI (REPORT.md has them all).
SHOWN_ITEMS = 20


# ---------------------------------------------------------------- 1. what the log holds


class Shape:
    """What the values seen at one place of the args looked like, over the whole log."""

    __slots__ = (
        "seen",
        "types",
        "strings",
        "many_strings",
        "iso",
        "tokens",
        "integers",
        "epoch_ms",
        "items",
        "properties",
        "objects",
        "open",
    )

    def __init__(self) -> None:
        self.seen = 0
        self.types: Counter[str] = Counter()
        #: Distinct strings, in order of first appearance, while at most ENUM_MAX_VALUES.
        self.strings: dict[str, None] = {}
        self.many_strings = False
        self.iso = True  # every string seen is an ISO date
        self.tokens = True  # every string seen is a short token
        self.integers = True  # every number seen is integral
        self.epoch_ms = True  # every number seen looks like epoch milliseconds
        self.items: Shape | None = None
        self.properties: dict[str, Shape] = {}
        self.objects = 0
        self.open = False  # too deep or too many keys to describe

    def add(self, value: Any, depth: int = 0) -> None:
        self.seen += 1
        kind = type(value)
        if value is None:
            self.types["null"] += 1
        elif kind is bool:
            self.types["boolean"] += 1
        elif kind is int or kind is float:
            self.types["number"] += 1
            if kind is float and not value.is_integer():
                self.integers = self.epoch_ms = False
            elif not EPOCH_MS[0] <= value < EPOCH_MS[1]:
                self.epoch_ms = False
        elif kind is str:
            self.types["string"] += 1
            if not self.many_strings and value not in self.strings:
                if len(self.strings) >= ENUM_MAX_VALUES:
                    self.many_strings = True
                    self.strings.clear()
                else:
                    self.strings[value] = None
            if self.iso and not _ISO.match(value):
                self.iso = False
            if self.tokens and not _TOKEN.match(value):
                self.tokens = False
        elif kind is list:
            self.types["array"] += 1
            if depth >= MAX_DEPTH:
                self.open = True
                return
            if self.items is None:
                self.items = Shape()
            for item in value:
                self.items.add(item, depth + 1)
        elif kind is dict:
            self.types["object"] += 1
            self.objects += 1
            if depth >= MAX_DEPTH:
                self.open = True
                return
            properties = self.properties
            for key, item in value.items():
                shape = properties.get(key)
                if shape is None:
                    if len(properties) >= MAX_KEYS:
                        self.open = True
                        continue
                    shape = properties[key] = Shape()
                shape.add(item, depth + 1)
        else:  # pragma: no cover - json.loads yields nothing else
            self.types["other"] += 1

    @property
    def kinds(self) -> list[str]:
        """The JSON types seen, in a fixed order."""
        return [t for t in TYPE_ORDER if self.types[t]]

    @property
    def is_epoch_ms(self) -> bool:
        """Every value seen is an integer that looks like epoch milliseconds (or null)."""
        return (
            bool(self.types["number"])
            and self.integers
            and self.epoch_ms
            and set(self.kinds) <= {"number", "null"}
        )

    @property
    def is_date(self) -> bool:
        """Every value seen is an ISO date (or null), and one was seen."""
        return bool(self.types["string"]) and self.iso and set(self.kinds) <= {"string", "null"}

    def required(self) -> list[str]:
        """The keys present in every object seen (LiveStore omits an undefined key)."""
        return [k for k, s in self.properties.items() if s.seen == self.objects]


@dataclass
class DocumentFacts:
    """What a client document's ``<name>Set`` events set, for guessing its default."""

    #: Per row id, the value keys its events set.
    keys_by_id: dict[str, set[str]] = field(default_factory=dict)
    #: The first value with the most keys, and the first value of each key.
    fullest: dict[str, Any] = field(default_factory=dict)
    first_values: dict[str, Any] = field(default_factory=dict)

    def add(self, row_id: str, value: dict[str, Any]) -> None:
        keys = self.keys_by_id.get(row_id)
        if keys is None and len(self.keys_by_id) < MAX_DOCUMENT_IDS:
            keys = self.keys_by_id[row_id] = set()
        if keys is not None:
            keys.update(value)
        if len(value) > len(self.fullest):
            self.fullest = value
        for key, item in value.items():
            self.first_values.setdefault(key, item)


@dataclass
class EventFacts:
    """One event name's occurrences in the log."""

    name: str
    count: int = 0
    client_only: int = 0  # occurrences at seqNumClient > 0
    unparseable: int = 0
    args: Shape = field(default_factory=Shape)
    #: Set while every occurrence has args ``{id: string, value: object}``.
    document_shaped: bool = True
    document: DocumentFacts = field(default_factory=DocumentFacts)
    #: "create" or "delete" when the name's verb says so (`split_name`), else None.
    verb_kind: str | None = None
    noun: str = ""
    #: Per identifier arg, the occurrences that created a key the noun already had
    #: (created and not deleted since): a hint that the materializer is an upsert.
    repeated_keys: Counter[str] = field(default_factory=Counter)


@dataclass
class LogFacts:
    source: str
    store_dir: Path
    events: dict[str, EventFacts]
    total: int


def read_log(
    source: Path, *, lock_timeout: float | None = None, format_version: int | None = None
) -> LogFacts:
    """Read every event of SOURCE once and gather what the draft is inferred from
    (LOCK_TIMEOUT, FORMAT_VERSION: as `events.sources.open_source`).

    Raises SourceError (a one-line message) for a source that is not an event log, and
    ScaffoldError for one that holds no event.
    """
    src = open_source(source, lock_timeout=lock_timeout, format_version=format_version)
    facts: dict[str, EventFacts] = {}
    live: dict[tuple[str, str], set[Any]] = {}
    total = 0
    try:
        for event in src.events():
            total += 1
            name = event.name if isinstance(event.name, str) else str(event.name)
            ef = facts.get(name)
            if ef is None:
                ef = facts[name] = EventFacts(name)
                ef.noun, verbs = split_name(name)
                if verbs and verbs[-1] in CREATE_VERBS:
                    ef.verb_kind = "create"
                elif verbs and verbs[-1] in DELETE_VERBS:
                    ef.verb_kind = "delete"
            ef.count += 1
            if event.client_only:
                ef.client_only += 1
            if type(event.args_json) is not str:
                # A BLOB argsJson (a hand-made table) is not JSON to replay either
                # (events.validation: "argsJson is not text").
                ef.unparseable += 1
                continue
            try:
                args = parse_args(event.args_json)
            except (ValueError, RecursionError):
                ef.unparseable += 1
                continue
            ef.args.add(args)
            if ef.verb_kind is not None and type(args) is dict:
                _track_keys(ef, args, live)
            if ef.document_shaped:
                if (
                    type(args) is dict
                    and args.keys() == {"id", "value"}
                    and type(args["id"]) is str
                    and type(args["value"]) is dict
                ):
                    ef.document.add(args["id"], args["value"])
                else:
                    ef.document_shaped = False
    finally:
        src.close()
    if total == 0:
        raise ScaffoldError(f"{source}: the log holds no events; nothing to infer a catalog from")
    return LogFacts(str(src.path), src.path.parent, facts, total)


def _track_keys(
    ef: EventFacts, args: dict[str, Any], live: dict[tuple[str, str], set[Any]]
) -> None:
    """Count a create of a key its noun already holds (LIVE: per noun and identifier arg,
    the keys created and not deleted since)."""
    for arg, value in args.items():
        if type(value) is not str and type(value) is not int:
            continue
        if not _IDENTIFIER_KEY.match(arg):
            continue
        keys = live.setdefault((ef.noun, arg), set())
        if ef.verb_kind == "delete":
            keys.discard(value)
        elif value in keys:
            ef.repeated_keys[arg] += 1
        elif len(keys) < MAX_TRACKED_KEYS:
            keys.add(value)


# ---------------------------------------------------------------- 2. event schemas


def _is_enum(shape: Shape, key: str | None) -> bool:
    return (
        set(shape.kinds) <= {"string", "null"}
        and not shape.many_strings
        and bool(shape.strings)
        and shape.types["string"] >= ENUM_MIN_OCCURRENCES
        and shape.tokens
        and not shape.iso
        and not (key is not None and _IDENTIFIER_KEY.match(key))
    )


def infer_schema(shape: Shape, key: str | None = None, *, nested: bool = False) -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of the values SHAPE saw at KEY.

    Rules: JSON's types as seen (a number is ``number``, integral or not: JavaScript has
    no integers); three or more types, or nesting beyond MAX_DEPTH, is any JSON value;
    an enum by the rule at ENUM_MAX_VALUES; an ISO date gets toISOString()'s pattern; an
    object's ``required`` are the keys present in every occurrence and it admits no
    other key, unless (NESTED) it has three or more keys and none is always present:
    then it is taken for a record (Schema.Record) and other keys are allowed.
    """
    kinds = shape.kinds
    if not kinds:
        return {}
    concrete = [t for t in kinds if t != "null"]
    if len(concrete) >= 3 or (shape.open and not shape.properties and shape.items is None):
        return {"description": f"any JSON value (seen: {', '.join(kinds)})"}
    if _is_enum(shape, key):
        values: list[Any] = list(shape.strings)
        return {"enum": values + [None] if "null" in kinds else values}
    out: dict[str, Any] = {"type": kinds[0] if len(kinds) == 1 else kinds}
    if "string" in kinds and shape.iso:
        out["description"] = "a date as Date.toISOString() writes it (Schema.Date)"
        out["pattern"] = ISO_DATE_PATTERN
        out["format"] = "livestore-date"  # real calendar days, as toISOString() writes them
    if "number" in kinds and shape.integers and shape.epoch_ms:
        out["description"] = "epoch milliseconds? (every value looks like one)"
    if "array" in kinds and shape.items is not None and shape.items.seen:
        out["items"] = infer_schema(shape.items, nested=True)
    if "object" in kinds:
        out.update(_object_schema(shape, nested=nested))
    return out


def _object_schema(shape: Shape, *, nested: bool, partial: bool = False) -> dict[str, Any]:
    if shape.open:
        return {"description": "an object with too many distinct keys to list (a record?)"}
    properties = {k: infer_schema(s, k, nested=True) for k, s in shape.properties.items()}
    required = [] if partial else shape.required()
    out: dict[str, Any] = {"properties": properties, "required": required}
    if nested and not partial and len(properties) >= 3 and not required:
        out["description"] = "keys vary, none in every occurrence: a record? (other keys allowed)"
    else:
        out["additionalProperties"] = False
    return out


def event_schema(facts: EventFacts, document: bool, source_name: str) -> dict[str, Any]:
    """The JSON Schema of one event name, titled with the name. For a client document's
    ``<name>Set`` event (DOCUMENT), the value's keys are all optional (LiveStore's
    partialSet), as docs/catalogs.md says."""
    head: dict[str, Any] = {
        "$schema": SCHEMA_URI,
        "title": facts.name,
        "description": (
            f"Inferred by `projector scaffold` from {facts.count:,} occurrence(s) in "
            f"{source_name}: check it against the app's LiveStore schema."
        ),
    }
    shape = facts.args
    if document:
        value = shape.properties["value"]
        return head | {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "value": {"type": "object"} | _object_schema(value, nested=True, partial=True),
            },
            "required": ["id", "value"],
            "additionalProperties": False,
        }
    body = infer_schema(shape)
    body.pop("description", None)
    return head | body


# ---------------------------------------------------------------- 3. tables


@dataclass
class Column:
    name: str
    type: str  # SQLite's declared type, upper case ("" for none)
    notnull: bool = False
    default: str | None = None  # the DDL default, as SQL text
    pk: int = 0
    codec: str | None = None
    check: str | None = None


@dataclass
class TableDraft:
    """A target table of the draft: LiveStore's (from the state DB) or inferred."""

    name: str
    columns: list[Column]
    strict: bool = True
    without_rowid: bool = False
    indexes: list[str] = field(default_factory=list)
    noun: str = ""
    #: The client document's default value (a guess), for a client document table.
    document: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: LiveStore's name of the table, when the draft's differs.
    livestore: str | None = None

    @property
    def state_name(self) -> str:
        return self.livestore or self.name

    @property
    def key(self) -> str | None:
        """The single-column primary key the projection addresses rows by, or None."""
        keys = [c for c in self.columns if c.pk]
        return keys[0].name if len(keys) == 1 else None

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


@dataclass
class ColumnStats:
    """What the state DB's values of one column are (non-null ones)."""

    values: int = 0
    integers: int = 0
    zero_one: int = 0
    epoch_ms: int = 0
    texts: int = 0
    json_texts: int = 0  # text that is a JSON string, array or object
    iso_texts: int = 0


class StateDB:
    """LiveStore's state DB, read-only: its app tables (``__livestore_*`` and
    ``sqlite_*`` are LiveStore's and SQLite's own) and their values."""

    def __init__(self, path: Path):
        if path.is_dir():  # a store folder, as verify --against takes it
            found = state_files(path)
            if len(found) != 1:
                raise ScaffoldError(
                    f"{path}: a folder holding {len(found)} state DBs (state<hash>@N.db); "
                    "pass the state DB's file"
                )
            path = found[0]
        if not path.is_file():
            raise ScaffoldError(f"{path}: no such state database")
        try:
            self.conn = connect_readonly(path)
            listed = self.conn.execute("PRAGMA table_list").fetchall()
        except sqlite3.DatabaseError as exc:
            raise ScaffoldError(f"{path}: not a readable SQLite state database ({exc})") from None
        self.path = path
        names = [r[1] for r in listed if r[0] == "main" and r[2] == "table"]
        order = [
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid"
            )
        ]
        problem = not_a_state_db(set(names))  # as verify --against refuses it
        if problem:
            self.conn.close()
            raise ScaffoldError(f"{path}: {problem}")
        flags = {r[1]: (bool(r[4]), bool(r[5])) for r in listed}
        self.tables: dict[str, TableDraft] = {}
        for name in order:
            if name.startswith("__livestore") or name.startswith("sqlite_") or name not in flags:
                continue
            table = self._table(name, *flags[name])
            self.tables[table.name] = table
        if not self.tables:
            self.conn.close()
            raise ScaffoldError(f"{path}: holds no app tables; is it LiveStore's state DB?")
        self._stats: dict[tuple[str, str], ColumnStats] = {}

    def refuse_another_app(self, names: set[str]) -> None:
        """Refuse the state DB of another app: LiveStore records the event names of the
        app that wrote it (``__livestore_schema_event_defs``), and fewer than half of the
        log's names are among them (what verify --against checks, the other way round)."""
        try:
            defined = {
                r[0]
                for r in self.conn.execute("SELECT eventName FROM __livestore_schema_event_defs")
            }
        except sqlite3.DatabaseError:
            return  # an older state DB without the table: the comparison will tell
        unknown = sorted(names - defined)
        if defined and len(unknown) * 2 > len(names):
            self.conn.close()
            raise ScaffoldError(
                f"{self.path}: is the state of another app: {len(unknown):,} of the log's "
                f"{len(names):,} event names ({', '.join(unknown[:4])}) are not its events"
            )

    def _table(self, name: str, without_rowid: bool, strict: bool) -> TableDraft:
        columns = []
        for _, column, decl, notnull, default, pk in self.conn.execute(
            f"PRAGMA table_info({_ident(name)})"
        ):
            declared = (decl or "").upper()
            columns.append(
                Column(column, _SQL_TYPES.get(declared, declared), bool(notnull), default, pk)
            )
        indexes = [
            sql
            for (sql,) in self.conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL ORDER BY rowid",
                (name,),
            )
        ]
        table = TableDraft(name, columns, strict, without_rowid, indexes, noun=_singular(name))
        if reserved(name):
            # The projector keeps its own table of that name in every target: the app's
            # gets another name, mapped back to LiveStore's for verify.
            table.name, table.livestore = f"app_{name}", name
            table.indexes = [_index_on(self.conn, sql, table.name) for sql in indexes]
            table.notes.append(f"renamed from {name!r}, a name the projector's tables use")
        return table

    def rows(self, table: str) -> int:
        row = self.conn.execute(f"SELECT COUNT(*) FROM {_ident(table)}").fetchone()
        return int(row[0])

    def stats(self, table: str, column: str) -> ColumnStats:
        """Counts of the kinds of value COLUMN holds (one scan of the table)."""
        found = self._stats.get((table, column))
        if found is None:
            c = _ident(column)
            lo, hi = EPOCH_MS
            row = self.conn.execute(
                f"SELECT COUNT({c}), "
                f"SUM(typeof({c}) = 'integer'), "
                f"SUM(typeof({c}) = 'integer' AND {c} IN (0, 1)), "
                f"SUM(typeof({c}) = 'integer' AND {c} >= {lo} AND {c} < {hi}), "
                f"SUM(typeof({c}) = 'text'), "
                f"SUM(typeof({c}) = 'text' AND substr({c}, 1, 1) IN ('\"', '[', '{{') "
                f"AND json_valid({c})), "
                f"SUM(typeof({c}) = 'text' AND {c} GLOB "
                "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:*Z') "
                f"FROM {_ident(table)}"
            ).fetchone()
            found = self._stats[(table, column)] = ColumnStats(*(int(v or 0) for v in row))
        return found

    def document_rows(self, table: str) -> list[tuple[str, Any]]:
        """The (id, parsed value) rows of a client document table; unparseable left out."""
        rows = []
        for row_id, text in self.conn.execute(f"SELECT id, value FROM {_ident(table)}"):
            try:
                rows.append((row_id, json.loads(text)))
            except (TypeError, ValueError):
                continue
        return rows

    def close(self) -> None:
        self.conn.close()


def _ident(name: str) -> str:
    """NAME quoted as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _encodable(text: str) -> bool:
    """Whether TEXT can be written as UTF-8 (a hostile name may hold a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _spellable(arg: str) -> bool:
    """Whether a catalog can name the arg ARG, and a column be named after it: ``"$.a.b"``
    reads a nested path, and the engine quotes column names without escaping ``"``."""
    return (
        bool(arg)
        and "." not in arg
        and '"' not in arg
        and _encodable(arg)
        and not _CONTROL.search(arg)
    )


def _index_on(conn: sqlite3.Connection, sql: str, table: str) -> str:
    """CREATE INDEX statement SQL, rebuilt for a table renamed to TABLE: plain column
    indexes are spelled anew; any other is kept, commented out, for the user to adapt."""
    match = re.match(r'(?is)\s*CREATE\s+(UNIQUE\s+)?INDEX\s+("(?:[^"]|"")+"|\S+)', sql)
    name = unquote(match.group(2)) if match else ""
    columns = [r[2] for r in conn.execute(f"PRAGMA index_info({_ident(name)})")] if name else []
    if not columns or None in columns or " where " in sql.lower():
        return "-- TODO: adapt to the renamed table: " + " ".join(sql.split())
    unique = "UNIQUE " if match and match.group(1) else ""
    spelled = ", ".join(_ident(c) for c in columns)
    return f"CREATE {unique}INDEX {_ident(name)} ON {_ident(table)} ({spelled})"


def _norm(name: str) -> str:
    """A name compared loosely: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _singular(name: str) -> str:
    if name.endswith("ies") and len(name) > 3:
        return name[:-3] + "y"
    if name.endswith("ses") or name.endswith("xes"):
        return name[:-2]
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def _plurals(noun: str) -> list[str]:
    """The forms a table named after NOUN (already normalised) may take."""
    forms = [noun, noun + "s", noun + "es"]
    if noun.endswith("y"):
        forms.append(noun[:-1] + "ies")
    return forms


def _plural(noun: str) -> str:
    if noun.endswith("y") and not noun.endswith(("ay", "ey", "oy", "uy")):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def table_ddl(table: TableDraft) -> str:
    """CREATE TABLE (and its indexes) for TABLE: columns, types, NOT NULL, defaults, the
    primary key (NOT NULL too, as the bundled catalogs have it), CHECKs for the guessed
    boolean and JSON codecs, STRICT, WITHOUT ROWID."""
    keys = [c for c in table.columns if c.pk]
    lines = []
    for c in table.columns:
        parts = [_ident(c.name)]
        if c.type:
            parts.append(c.type)
        if len(keys) == 1 and c.pk:
            parts.append("PRIMARY KEY")
        if c.notnull or c.pk:
            parts.append("NOT NULL")
        if c.default is not None:
            parts.append(f"DEFAULT {c.default}")
        if c.check:
            parts.append(f"CHECK ({c.check})")
        lines.append("    " + " ".join(parts))
    if len(keys) > 1:
        ordered = sorted(keys, key=lambda c: c.pk)
        lines.append(f"    PRIMARY KEY ({', '.join(_ident(c.name) for c in ordered)})")
    options = [
        o for o, on in (("STRICT", table.strict), ("WITHOUT ROWID", table.without_rowid)) if on
    ]
    text = f"CREATE TABLE {_ident(table.name)} (\n" + ",\n".join(lines) + "\n)"
    text += (" " + ", ".join(options) if options else "") + ";\n"
    for index in table.indexes:
        text += "\n" + index.rstrip(";") + ";\n"
    return text


# ---------------------------------------------------------------- 4. the projection


@dataclass
class Plan:
    """What the draft makes of one event name."""

    event: str
    what: str  # a few words: "insert todos", "left out", "client document uiState"
    table: str | None = None
    ops: list[dict[str, Any]] = field(default_factory=list)
    guesses: list[str] = field(default_factory=list)
    #: What its JSON Schema guesses (an enum from the values seen: `schema_guesses`).
    schema_guesses: list[str] = field(default_factory=list)
    todo: str | None = None  # why it is left out, or what is left to finish
    unmapped: list[str] = field(default_factory=list)  # args that fill no column


def _words(name: str) -> list[str]:
    """The words of an event name, without its version prefix: ``v1.TodoClearedCompleted``
    -> ``["Todo", "Cleared", "Completed"]``."""
    base = _VERSION_PREFIX.sub("", name)
    return _WORD.findall(base)


def _is_verb(word: str) -> bool:
    w = word.lower()
    verbs = CREATE_VERBS | UPSERT_VERBS | UPDATE_VERBS | DELETE_VERBS
    return w in verbs or w in FLAG_OPPOSITES or (w.endswith("ed") and len(w) > 3)


def split_name(name: str, tables: Iterable[str] = ()) -> tuple[str, list[str]]:
    """(noun, verb words) of an event name. With TABLES, the noun is the longest run of
    leading words naming one of them (``TodoTextChanged`` -> ``Todo``, when a table
    ``todos`` exists); otherwise the words before the first verb-like word."""
    words = _words(name)
    if not words:
        return "", []
    by_norm = {_norm(t): t for t in tables}
    for end in range(len(words) - 1, 0, -1):
        noun = "".join(words[:end])
        if any(form in by_norm for form in _plurals(_norm(noun))):
            return noun, [w.lower() for w in words[end:]]
    for end in range(1, len(words)):
        if _is_verb(words[end]):
            return "".join(words[:end]), [w.lower() for w in words[end:]]
    return "".join(words[:-1]) or words[0], [words[-1].lower()] if len(words) > 1 else []


def _table_for(noun: str, tables: dict[str, TableDraft]) -> TableDraft | None:
    forms = _plurals(_norm(noun))
    for table in tables.values():
        if _norm(table.state_name) in forms:
            return table
    return None


def _arg_column(arg: str, table: TableDraft, noun: str) -> str | None:
    """The column of TABLE an arg fills: the same name (or the same loosely: ``due_at``
    for ``dueAt``), or the key column for ``<noun>Id``. An arg whose name a declaration
    cannot spell (a dot reads as a nested path; a lone surrogate is no TOML) fills none."""
    if not _spellable(arg):
        return None
    if table.column(arg) is not None:
        return arg
    loose = {_norm(c.name): c.name for c in table.columns}
    if _norm(arg) in loose:
        return loose[_norm(arg)]
    key = table.key
    if key is not None and _norm(arg) == _norm(noun) + _norm(key):
        return key
    return None


def _flag(verb: str, table: TableDraft, booleans: set[str]) -> tuple[str, bool] | None:
    """(boolean column, value) a flag verb sets: ``completed`` for Completed (true) and
    Uncompleted (false), ``enabled`` for Enabled and Disabled, ``isArchived`` for
    Archived."""

    def column_for(word: str) -> str | None:
        for c in table.columns:
            if c.name in booleans and _norm(c.name) in (word, "is" + word, "has" + word):
                return c.name
        return None

    found = column_for(verb)
    if found:
        return found, True
    opposite = FLAG_OPPOSITES.get(verb) or next(
        (o for o, p in FLAG_OPPOSITES.items() if p == verb), None
    )
    if opposite and (found := column_for(opposite)):
        return found, False
    for prefix in _NEGATIONS:
        if verb.startswith(prefix) and (found := column_for(verb[len(prefix) :])):
            return found, False
    return None


def _date_arg(shape: Shape) -> str | None:
    """The first arg that is always a date: ISO text, or (a guess) epoch milliseconds."""
    for key, s in shape.properties.items():
        if s.is_date or s.is_epoch_ms:
            return key
    return None


def _shape_at(shape: Shape, path: str) -> Shape | None:
    """The shape of the args at PATH (``a`` or ``a.b``)."""
    found: Shape | None = shape
    for step in path.split("."):
        found = found.properties.get(step) if found is not None else None
    return found


@dataclass
class Mapping:
    """How one event's args map onto one table's columns."""

    columns: dict[str, str]  # column -> arg
    key_arg: str | None
    unmapped: list[str]


def _map_args(shape: Shape, table: TableDraft, noun: str) -> Mapping:
    """Args to columns by name; the keys of an object arg that fills no column are tried
    too, one level down (``source.url`` fills ``url``)."""
    columns: dict[str, str] = {}
    unmapped = []
    nested = []
    for arg, arg_shape in shape.properties.items():
        column = _arg_column(arg, table, noun)
        if column is not None and column not in columns:
            columns[column] = arg
        elif column is None and arg_shape.kinds == ["object"] and _spellable(arg):
            nested.append((arg, arg_shape))
        else:
            unmapped.append(arg)
    for arg, arg_shape in nested:
        filled = False
        for inner in arg_shape.properties:
            column = _arg_column(inner, table, noun)
            if column is not None and column not in columns and column != table.key:
                columns[column] = f"{arg}.{inner}"
                filled = True
            else:
                unmapped.append(f"{arg}.{inner}")
        if not filled:
            unmapped.append(arg)
    key = table.key
    return Mapping(columns, columns.get(key) if key else None, unmapped)


def _ref(arg: str) -> str:
    return f"$.{arg}"


def plan_event(
    facts: EventFacts,
    tables: dict[str, TableDraft],
    booleans: dict[str, set[str]],
    documents: set[str],
) -> Plan:
    """Guess what the materializer of one event does (see `_plan`); args the guess does
    not use are noted."""
    plan = _plan(facts, tables, booleans, documents)
    used = {
        value[2:]
        for op in plan.ops
        for part in ("values", "set", "where")
        for value in op.get(part, {}).values()
        if isinstance(value, str) and value.startswith("$.")
    }
    ignored = [arg for arg in plan.unmapped if arg not in used]
    if ignored and plan.ops:
        plan.guesses.insert(0, f"args {ignored} map to no column of {plan.table}: ignored")
    return plan


def _plan(
    facts: EventFacts,
    tables: dict[str, TableDraft],
    booleans: dict[str, set[str]],
    documents: set[str],
) -> Plan:
    """Guess what the materializer of one event does (see the module docstring).

    - ``<doc>Set`` of a client document table: the engine's (nothing to declare);
    - the noun (``Todo`` of ``v1.TodoCreated``) names the table (``todos``); args map to
      columns by name, and ``<noun>Id`` to the key;
    - a delete verb followed by a flag (``ClearedCompleted``): every row whose boolean
      column is true, soft-deleted when the event carries a date, else deleted;
    - a verb naming a boolean column (``Completed``, ``Uncompleted``, ``Disabled``): a
      flag update of that column (plus the args that map);
    - ``Created``/``Added``...: an insert; ``Installed``/``Set``/``Saved``...: an upsert
      replacing the row; ``Updated``/``Changed``/``Renamed``...: a partial update of the
      args present; ``Deleted``/``Removed``...: a soft delete of the date arg's column
      when it carries a date, else a hard delete;
    - a NOT NULL column without a default that no arg fills, on insert: a date column
      takes the event's date arg (``updatedAt = createdAt``), a guess;
    - anything else is left out, with what is missing.
    """
    name = facts.name
    if not _encodable(name):
        return Plan(
            name, "left out", todo="its name holds a lone surrogate, which TOML cannot spell"
        )
    if name in documents:
        document = name[: -len("Set")]
        return Plan(name, f"client document {document}", document)
    if facts.args.kinds != ["object"]:
        return Plan(name, "left out", todo="its args are not always a JSON object")
    noun, verbs = split_name(
        name, [t.state_name for t in tables.values() if t.name not in documents]
    )
    table = _table_for(noun, tables) if noun else None
    if table is None and noun and verbs and verbs[-1] in DELETE_VERBS:
        # A flag, then a delete verb ("ArchivedCleared"): every row of the one table with
        # that boolean column set.
        flagged = [
            (t, found)
            for t in tables.values()
            if t.name not in documents
            and (found := _flag(_norm(noun), t, booleans.get(t.name, set()))) is not None
        ]
        if len(flagged) == 1:
            table, flag = flagged[0]
            plan = Plan(name, "", table.name)
            words = f"{noun.lower()} {verbs[-1]}"
            return _bulk_delete(plan, table, flag, words, facts.args, noun)
    if table is None or table.name in documents:
        hint = f"no table for the noun {noun!r}" if noun else "no noun in the name"
        return Plan(name, "left out", todo=f"{hint}: declare what it does by hand")
    if not verbs:
        return Plan(name, "left out", table.name, todo="no verb in the name")
    plan = Plan(name, "", table.name)
    shape = facts.args
    mapping = _map_args(shape, table, noun)
    key = table.key
    bools = booleans.get(table.name, set())
    if key is None:
        plan.what, plan.todo = "left out", f"{table.name} has no single-column primary key"
        return plan
    plan.unmapped = mapping.unmapped
    required = set(shape.required())
    first, last = verbs[0], verbs[-1]
    date = _date_arg(shape)
    date_column = next((c for c, a in mapping.columns.items() if a == date), None)
    values = {c: _ref(a) for c, a in mapping.columns.items()}
    changes = {c: v for c, v in values.items() if c != key}

    # A delete verb qualified by a flag: "clear completed" rewrites every completed row.
    qualifier = _flag("".join(verbs[1:]), table, bools) if len(verbs) > 1 else None
    if first in DELETE_VERBS and qualifier is not None and mapping.key_arg is None:
        return _bulk_delete(plan, table, qualifier, f"{first} {''.join(verbs[1:])}", shape, noun)

    if mapping.key_arg is None:
        plan.what, plan.todo = "left out", f"no arg names the {table.name}.{key} of its row"
        return plan
    where = {key: _ref(mapping.key_arg)}
    if mapping.key_arg not in required:
        plan.guesses.append(f"the key arg {mapping.key_arg!r} is not in every occurrence")

    sets = _flag(last, table, bools) if len(verbs) == 1 or last not in DELETE_VERBS else None
    if sets is not None:
        column, value = sets
        plan.what = f"flag {table.name}.{column}"
        plan.ops = [{"update": table.name, "set": {**changes, column: value}, "where": where}]
        plan.guesses.append(f'"{last.title()}" sets the boolean {column} to {_toml_value(value)}')
    elif last in DELETE_VERBS:
        if date_column is not None:
            plan.what = f"soft delete {table.name}"
            plan.ops = [{"update": table.name, "set": changes, "where": where}]
            plan.guesses.append(
                f'"{last.title()}" with a date: a soft delete setting {date_column}'
            )
        else:
            plan.what = f"delete {table.name}"
            plan.ops = [{"delete": table.name, "where": where}]
            if date is not None:
                plan.guesses.append(f"the date arg {date!r} maps to no column: a hard delete")
    elif last in CREATE_VERBS or last in UPSERT_VERBS:
        values.update(_fill_not_null(table, mapping, shape, plan))
        op: dict[str, Any] = {"insert": table.name, "values": values}
        repeated = facts.repeated_keys.get(mapping.key_arg, 0)
        if last in UPSERT_VERBS:
            op["on_conflict"] = "replace"
            plan.what = f"upsert {table.name}"
            plan.guesses.append(f'"{last.title()}" of a keyed row: an upsert replacing the row')
        elif repeated:
            op["on_conflict"] = "replace"
            plan.what = f"upsert {table.name}"
            plan.guesses.append(
                f"{repeated:,} occurrence(s) create a {mapping.key_arg!r} created before and "
                "not deleted since: an upsert replacing the row (LiveStore's may update only "
                "some columns: onConflict 'update')"
            )
        else:
            plan.what = f"insert {table.name}"
        plan.ops = [op]
    elif last in UPDATE_VERBS or changes:
        if not changes:
            plan.what, plan.todo = "left out", "no arg maps to a column to update"
            return plan
        plan.what = f"update {table.name}"
        plan.ops = [{"update": table.name, "set": changes, "where": where}]
        if last not in UPDATE_VERBS:
            plan.guesses.append(f'"{last.title()}" is no known verb: taken for a partial update')
    else:
        plan.what = "left out"
        plan.todo = f'"{last.title()}" is no known verb and no arg maps to a column'
    return plan


def _bulk_delete(
    plan: Plan, table: TableDraft, flag: tuple[str, bool], words: str, shape: Shape, noun: str
) -> Plan:
    """Every row of TABLE whose boolean column FLAG holds: soft-deleted when the event
    carries a date that fills a column, else deleted."""
    column, value = flag
    mapping = _map_args(shape, table, noun)
    date = _date_arg(shape)
    date_column = next((c for c, a in mapping.columns.items() if a == date), None)
    where = {column: value}
    said = f'"{words}": every row whose {column} is {_toml_value(value)}'
    if date_column is not None:
        changes = {c: _ref(a) for c, a in mapping.columns.items() if c != table.key}
        plan.what = f"bulk soft delete {table.name}"
        plan.ops = [{"update": table.name, "set": changes, "where": where}]
        plan.guesses.append(f"{said} gets {date_column} (a soft delete: the event has a date)")
    else:
        plan.what = f"bulk delete {table.name}"
        plan.ops = [{"delete": table.name, "where": where}]
        plan.guesses.append(f"{said} is deleted")
    return plan


def _fill_not_null(table: TableDraft, mapping: Mapping, shape: Shape, plan: Plan) -> dict[str, str]:
    """Values for the NOT NULL columns without a default that no arg fills on insert."""
    filled = {}
    date = _date_arg(shape)
    for c in table.columns:
        if c.pk or not c.notnull or c.default is not None or c.name in mapping.columns:
            continue
        if date is not None and (
            _DATE_COLUMN.search(c.name) or c.codec in ("datetime", "datetime_ms")
        ):
            filled[c.name] = _ref(date)
            plan.guesses.append(f"{c.name} (NOT NULL, no default, no arg) takes the date {date!r}")
        else:
            plan.todo = (
                f"{table.name}.{c.name} is NOT NULL without a default and no arg fills it: "
                "the insert is refused until it gets a value"
            )
    return filled


# ---------------------------------------------------------------- tables without a state DB


def infer_tables(
    log: LogFacts, documents: set[str]
) -> tuple[dict[str, TableDraft], dict[str, set[str]]]:
    """Tables guessed from the events alone (best effort): a table per noun that an event
    creates (``TodoCreated`` -> ``todos``), its columns the args of the noun's events (the
    key: ``id``, else ``key``, else the first ``...Id`` arg of the creating event), a
    boolean column per flag verb, and a client document per ``<doc>Set`` event. Returns
    the tables and each table's boolean columns."""
    by_noun: dict[str, list[tuple[EventFacts, list[str]]]] = {}
    for facts in log.events.values():
        if facts.name in documents or facts.args.kinds != ["object"]:
            continue
        noun, verbs = split_name(facts.name)
        if noun and verbs:
            by_noun.setdefault(noun, []).append((facts, verbs))
    tables: dict[str, TableDraft] = {}
    booleans: dict[str, set[str]] = {}
    for noun, events in by_noun.items():
        creates = [f for f, v in events if v[-1] in CREATE_VERBS | UPSERT_VERBS]
        if not creates:
            continue
        name = _plural(noun[:1].lower() + noun[1:])
        key = _guess_key(creates)
        if key is None:
            continue
        # Each arg's values over every event of the noun: its column's type and codec. A
        # column is NOT NULL when every creating event carries its arg and no event nulls it.
        shapes: dict[str, list[Shape]] = {key: []}
        required: set[str] | None = None
        for facts in creates:
            req = set(facts.args.required())
            required = req if required is None else required & req
        for facts, _ in events:
            for arg, shape in facts.args.properties.items():
                if arg == key:
                    shapes[key].append(shape)
                    continue
                if _norm(arg) == _norm(noun) + _norm(key):
                    continue  # todoId of a todo names the key
                if not _spellable(arg) or (
                    arg not in shapes and arg.lower() in {a.lower() for a in shapes}
                ):
                    continue  # no column: SQLite's names are case-insensitive
                shapes.setdefault(arg, []).append(shape)
        columns = [Column(key, _sql_type(shapes[key]), True, pk=1)]
        for arg, found in shapes.items():
            if arg == key:
                continue
            nullable = any("null" in shape.kinds for shape in found)
            column = Column(arg, _sql_type(found), arg in (required or set()) and not nullable)
            column.codec = _codec_from_args(found)
            columns.append(column)
        table = TableDraft(name, columns, noun=noun[:1].lower() + noun[1:])
        flags: set[str] = set()
        for _, verbs in events:
            word = verbs[-1]
            if word in CREATE_VERBS | UPSERT_VERBS | UPDATE_VERBS | DELETE_VERBS:
                continue
            positive = FLAG_OPPOSITES.get(word, word)
            for prefix in _NEGATIONS:
                if word.startswith(prefix) and any(v[-1] == word[len(prefix) :] for _, v in events):
                    positive = word[len(prefix) :]
            taken = {c.name.lower() for c in table.columns}
            if positive.endswith("ed") and positive.lower() not in taken:
                table.columns.append(Column(positive, "INTEGER", True, "0", codec="boolean"))
                flags.add(positive)
        table.notes.append(
            f"inferred from the events of {noun!r} (no state DB): check columns, types, "
            "NOT NULL and the key"
        )
        tables[name] = table
        booleans[name] = flags | {c.name for c in table.columns if c.codec == "boolean"}
    for doc in sorted(documents):
        document = doc[: -len("Set")]
        tables[document] = TableDraft(
            document,
            [Column("id", "TEXT", True, pk=1), Column("value", "TEXT", True)],
            noun=document,
        )
    return tables, booleans


def _guess_key(creates: list[EventFacts]) -> str | None:
    common: list[str] | None = None
    for facts in creates:
        req = facts.args.required()
        common = req if common is None else [k for k in common if k in req]
    for candidate in common or []:
        if candidate in ("id", "key"):
            return candidate
    for candidate in common or []:
        if _IDENTIFIER_KEY.match(candidate) and facts.args.properties[candidate].kinds == [
            "string"
        ]:
            return candidate
    return None


def _sql_type(shapes: list[Shape]) -> str:
    kinds = {k for s in shapes for k in s.kinds} - {"null"}
    if kinds == {"number"}:
        return "INTEGER" if all(s.integers for s in shapes) else "REAL"
    if kinds == {"boolean"}:
        return "INTEGER"
    return "TEXT"


def _codec_from_args(shapes: list[Shape]) -> str | None:
    kinds = {k for s in shapes for k in s.kinds} - {"null"}
    if kinds == {"boolean"}:
        return "boolean"
    if kinds & {"array", "object"} or len(kinds) > 1:
        return "json"
    if all(s.is_date for s in shapes):
        return "datetime"
    return None


# ---------------------------------------------------------------- codecs from the state DB


def guess_codecs(
    tables: dict[str, TableDraft],
    plans: list[Plan],
    log: LogFacts,
    state: StateDB,
    booleans: dict[str, set[str]],
) -> None:
    """Set each column's codec from what the args that fill it are and what LiveStore
    stored: epoch-ms integers from ISO dates -> ``datetime_ms``; 0/1 integers from
    booleans (or a flag) -> ``boolean``; text from arrays, objects or mixed values (or
    text that is JSON-quoted) -> ``json``; ISO text -> ``datetime``."""
    filled: dict[tuple[str, str], list[Shape]] = {}
    flagged: set[tuple[str, str]] = set()
    for plan in plans:
        shape = log.events[plan.event].args
        for op in plan.ops:
            target = str(op.get("insert") or op.get("update") or op.get("delete"))
            for column, value in {**op.get("values", {}), **op.get("set", {})}.items():
                if isinstance(value, str) and value.startswith("$."):
                    arg = _shape_at(shape, value[2:])
                    if arg is not None:
                        filled.setdefault((target, column), []).append(arg)
                elif isinstance(value, bool):
                    flagged.add((target, column))
    for (table_name, column_name), shapes in filled.items():
        table = tables[table_name]
        column = table.column(column_name)
        assert column is not None
        kinds = {k for s in shapes for k in s.kinds} - {"null"}
        dates = all(s.is_date for s in shapes)
        stats = state.stats(table.state_name, column_name)
        codec = None
        if column.type == "INTEGER":
            if dates and stats.epoch_ms == stats.values:
                codec = "datetime_ms"
            elif kinds == {"boolean"} and stats.zero_one == stats.values:
                codec = "boolean"
        elif column.type == "TEXT":
            if kinds & {"array", "object"} or len(kinds) > 1 or kinds - {"string"}:
                codec = "json"
            elif stats.values and stats.json_texts == stats.values and not stats.iso_texts:
                codec = "json"
            elif dates:
                codec = "datetime"
        if codec is not None:
            column.codec = codec
        elif dates and column.type == "INTEGER":
            table.notes.append(
                f"{column_name}: INTEGER filled from ISO dates but the state holds other "
                "integers: give it a codec by hand"
            )
    for table_name, column_name in flagged:
        column = tables[table_name].column(column_name)
        if column is not None and column.codec is None and column.type == "INTEGER":
            column.codec = "boolean"
    for table in tables.values():
        for column in table.columns:
            if column.codec == "boolean":
                booleans.setdefault(table.name, set()).add(column.name)


def boolean_columns(state: StateDB) -> dict[str, set[str]]:
    """Per table, the INTEGER columns holding only 0 and 1 (or, in an empty table,
    defaulting to 0 or 1): the columns a flag event may set."""
    found: dict[str, set[str]] = {}
    for table in state.tables.values():
        for c in table.columns:
            if c.type != "INTEGER" or c.pk:
                continue
            stats = state.stats(table.state_name, c.name)
            if stats.values and stats.zero_one == stats.values:
                found.setdefault(table.name, set()).add(c.name)
            elif not stats.values and c.default in ("0", "1"):
                found.setdefault(table.name, set()).add(c.name)
    return found


def _add_checks(tables: dict[str, TableDraft]) -> None:
    """CHECKs that hold for what each codec stores (what a relational app relies on)."""
    for table in tables.values():
        if table.document is not None:
            value = table.column("value")
            assert value is not None
            value.check = "json_type(value) = 'object'"
            continue
        for c in table.columns:
            if c.codec == "boolean":
                c.check = f"{_ident(c.name)} IN (0, 1)"
            elif c.codec == "json":
                c.check = f"json_valid({_ident(c.name)})"


# ---------------------------------------------------------------- client documents


def find_documents(log: LogFacts, state: StateDB | None) -> set[str]:
    """The ``<doc>Set`` event names that are a client document's generated event: with a
    state DB, for a table of exactly the columns (id, value); without, every event of that
    name with args ``{id: string, value: object}``."""
    found = set()
    for facts in log.events.values():
        name = facts.name
        if not name.endswith("Set") or len(name) == 3 or not facts.document_shaped:
            continue
        if facts.unparseable == facts.count:
            continue
        table = name[: -len("Set")]
        if state is None:
            if not _VERSION_PREFIX.match(name) and "." not in name:
                found.add(name)
            continue
        draft = state.tables.get(table)
        if draft is not None and draft.livestore:
            continue  # renamed: the engine would not call its Set event by LiveStore's name
        if draft is not None and sorted(c.name for c in draft.columns) == ["id", "value"]:
            found.add(name)
    return found


def document_default(
    facts: EventFacts, rows: list[tuple[str, Any]] | None
) -> tuple[dict[str, Any], str, list[str]]:
    """A guess of a client document's default value, how it was guessed, and its keys
    whose value is a guess (every key, without ROWS).

    With the state's ROWS: a key a row holds that no event set for that row id shows the
    default's value exactly; other keys take the value a row holds (a guess: the last
    value an event set, which no state can tell from the default), in the order of the
    row with the most keys (LiveStore's json_set keeps the default's key order). Without:
    the first value that has every key the events set (or the first value of each key)."""
    doc = facts.document
    if rows:
        rows = [(i, v) for i, v in rows if isinstance(v, dict)]
    if rows:
        exact: dict[str, Any] = {}
        guessed: dict[str, Any] = {}
        for row_id, value in rows:
            set_keys = doc.keys_by_id.get(row_id, set())
            for key, item in value.items():
                if key not in set_keys:
                    exact.setdefault(key, item)
                else:
                    guessed.setdefault(key, item)
        order = max((v for _, v in rows), key=len)
        default = {k: exact.get(k, guessed.get(k)) for k in order}
        for key in list(exact) + list(guessed):
            default.setdefault(key, exact.get(key, guessed.get(key)))
        unsure = [k for k in default if k not in exact]
        how = (
            "read from the state's rows (exact: no event set these keys)"
            if not unsure
            else f"from the state's rows; {unsure} were set by events, so their default "
            "values are a guess"
        )
        return default, how, unsure
    keys = list(doc.first_values)
    if set(doc.fullest) == set(keys):
        full = dict(doc.fullest)
        return full, "the first value the events set in full (a guess)", list(full)
    merged = {**doc.fullest}
    for key in keys:
        merged.setdefault(key, doc.first_values[key])
    return merged, "the first value of each key the events set (a guess)", list(merged)


# ---------------------------------------------------------------- writing the catalog


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")  # pragma: no cover


def _comment(text: str) -> str:
    """TEXT as TOML comment lines (which admit no control character but tab)."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", escape_surrogates(text))
    return "\n".join("# " + line for line in text.split("\n"))


def _json_text(value: Any, **kw: Any) -> str:
    """JSON of VALUE, non-ASCII kept unless it holds a lone surrogate (not UTF-8)."""
    text = json.dumps(value, ensure_ascii=False, **kw)
    return text if _encodable(text) else json.dumps(value, **kw)


def catalog_toml(
    name: str,
    log: LogFacts,
    tables: dict[str, TableDraft],
    plans: list[Plan],
    state: Path | None,
) -> str:
    """catalog.toml of the draft, every guess marked in a comment."""
    client_only = sorted(f.name for f in log.events.values() if f.client_only)
    out = [
        _comment(
            f"A DRAFT written by `projector scaffold` from {log.source} ({log.total:,} events)"
        ),
        _comment(f"and LiveStore's state DB {state}." if state else "without a state DB."),
        "# Every guess is marked with `guess:` and every gap with `TODO:`; REPORT.md says how",
        "# far a replay with this draft is from LiveStore's state. The contract is",
        "# docs/catalogs.md in the projector's repository.",
        "",
        f"name = {_toml_string(name)}",
        f"description = {_toml_string('Scaffolded draft: finish it by hand (see REPORT.md).')}",
        "# Events seen at seqNumClient > 0: never pushed to a sync backend.",
        f"client_only = {_toml_value(client_only)}",
        "",
        "# ---------------------------------------------------------------- tables",
        "# Columns, keys and types are in migrations/0001_app_tables.sql.",
    ]
    for table in tables.values():
        out.append("")
        for note in table.notes:
            out.append(_comment(f"guess: {note}"))
        out.append(f"[tables.{_toml_key(table.name)}]")
        if table.document is not None:
            text = _json_text(table.document)
            literal = "'" not in text and "\n" not in text and text.isprintable()
            # A TOML literal string when it can be one: the JSON reads as it is.
            quoted = f"'{text}'" if literal else _toml_string(text)
            out.append(f"client_document = {quoted}")
            continue
        out.append(f"noun = {_toml_string(table.noun or _singular(table.name))}")
        if table.livestore:
            out.append(f"livestore = {_toml_string(table.livestore)}")
        codecs = {c.name: c.codec for c in table.columns if c.codec}
        if codecs:
            out.append("# guess: each codec from the args that fill the column and what it holds")
            out.append(f"codecs = {_toml_value(codecs)}")
    enums = [g for plan in plans for g in plan.schema_guesses]
    if enums:
        out += ["", "# ---------------------------------------------------------- event schemas"]
        out += [_comment(f"guess: {g}") for g in enums]
    out += ["", "# ---------------------------------------------------------------- projection"]
    for plan in plans:
        if plan.what.startswith("client document"):
            continue
        out.append("")
        if not plan.ops:
            out.append(_comment(f"TODO: {plan.event}: {plan.todo} (left out: it is parked)"))
            continue
        for guess in plan.guesses:
            out.append(_comment(f"guess: {guess}"))
        if plan.todo:
            out.append(_comment(f"TODO: {plan.todo}"))
        header = f"[events.{_toml_string(plan.event)}]"
        for op in plan.ops:
            out.append(header)
            for key, value in op.items():
                out.append(f"{key} = {_toml_value(value)}")
    documents = [p for p in plans if p.what.startswith("client document")]
    if documents:
        out += [
            "",
            "# Client documents' Set events are applied by the engine:",
            *(f"#   {p.event} -> {p.table}" for p in documents),
        ]
    out += [
        "",
        "# ---------------------------------------------------------------- LiveStore",
        "# Optional: the app's LiveStore schema module (exporting `schema`), a path relative",
        "# to this folder, lets real LiveStore rebuild the state of any of the app's logs for",
        "# verify --against (`make oracle STORE=DIR CATALOG=<this folder>` in the projector's",
        "# repository). Uncomment both lines, last in this file:",
        "# [livestore]",
        '# schema_module = "livestore-schema.mjs"',
    ]
    return "\n".join(out) + "\n"


def migration_sql(tables: dict[str, TableDraft], state: Path | None) -> str:
    head = (
        "-- A DRAFT written by `projector scaffold`: LiveStore's tables as its state DB\n"
        f"-- ({_comment(state.name)[2:]}) declares them, the primary keys NOT NULL, and\n"
        "-- CHECKs for the guessed boolean and JSON codecs. Add foreign keys and CHECKs\n"
        "-- your app relies on.\n"
        if state
        else "-- A DRAFT written by `projector scaffold` WITHOUT a state DB: tables inferred\n"
        "-- from the events (best effort). Check every column, type, NOT NULL and key.\n"
    )
    return head + "".join("\n" + table_ddl(t) for t in tables.values())


# ---------------------------------------------------------------- 5. replay and compare


@dataclass
class EventOutcome:
    name: str
    count: int
    client_only: bool
    draft: str
    applied: int = 0
    parked: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, str] = field(default_factory=dict)  # kind -> first reason
    todo: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "clientOnly": self.client_only,
            "draft": self.draft,
            "applied": self.applied,
            "parked": sum(self.parked.values()),
            "parkedByKind": dict(sorted(self.parked.items())),
            "reasons": self.reasons,
            "todo": self.todo,
        }


@dataclass
class TableOutcome:
    table: str
    livestore_rows: int
    equal: int = 0
    missing: int = 0
    extra: int = 0
    differing: int = 0
    columns: Counter[str] = field(default_factory=Counter)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "livestoreRows": self.livestore_rows,
            "equal": self.equal,
            "missing": self.missing,
            "extra": self.extra,
            "differing": self.differing,
            "topDifferingColumns": dict(self.columns.most_common(5)),
            "note": self.note,
        }


@dataclass
class ScaffoldResult:
    """What `scaffold` wrote and how far the draft is from LiveStore's state."""

    source: str
    out_dir: str
    catalog: str
    state: str | None
    events_read: int
    files: list[str]
    events: list[EventOutcome]
    tables: list[TableOutcome]
    replayed: bool
    applied: int = 0
    parked: int = 0
    livestore_rows: int = 0
    rows_equal: int = 0
    verified: bool = False
    verdict: str = ""
    finish: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    state_hint: str | None = None
    #: Whether verify --against compared the draft's replay with the state DB.
    compared: bool = False
    #: Guesses a replay equal to this store's state cannot confirm (client documents'
    #: defaults for keys the events set): said with the verdict, to check by hand.
    unconfirmed: list[str] = field(default_factory=list)

    @property
    def percent_equal(self) -> float | None:
        if not self.compared:
            return None
        if not self.livestore_rows:
            return 100.0
        return round(100 * self.rows_equal / self.livestore_rows, 1)

    @property
    def figure(self) -> str | None:
        """The figure "N of M LiveStore rows equal (P%)", once compared with a state DB."""
        if not self.compared:
            return None
        return (
            f"{self.rows_equal:,} of {self.livestore_rows:,} LiveStore rows equal "
            f"({self.percent_equal}%)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "outDir": self.out_dir,
            "catalog": self.catalog,
            "state": self.state,
            "events": self.events_read,
            "files": self.files,
            "replayed": self.replayed,
            "applied": self.applied,
            "parked": self.parked,
            "livestoreRows": self.livestore_rows if self.compared else None,
            "rowsEqual": self.rows_equal if self.compared else None,
            "percentEqual": self.percent_equal,
            "figure": self.figure,
            "verified": self.verified,
            "verdict": self.verdict,
            "finishByHand": self.finish,
            "byEvent": [e.as_dict() for e in self.events],
            "byTable": [t.as_dict() for t in self.tables],
            "checks": self.checks,
            "stateHint": self.state_hint,
        }

    def summary(self) -> list[str]:
        """The lines the CLI prints."""
        lines = [
            f"scaffold: {self.source} -> {self.out_dir} (catalog {self.catalog!r}: "
            f"{len(self.events)} event schema(s), {len(self.tables) or 'no'} table(s))"
        ]
        if self.replayed:
            lines.append(
                f"  replay: read {self.events_read:,} = applied {self.applied:,} "
                f"+ parked {self.parked:,}"
            )
        if self.figure:
            lines.append(f"  verify --against: {self.figure}")
        lines.append(self.verdict + (":" if self.finish else ""))
        for item in self.finish[:SHOWN_ITEMS]:
            lines.append(f"  - {item}")
        if len(self.finish) > SHOWN_ITEMS:
            lines.append(f"  ... {len(self.finish) - SHOWN_ITEMS} more in {REPORT_FILE}")
        if self.state_hint:
            lines.append(self.state_hint)
        lines.append(f"report: {Path(self.out_dir) / REPORT_FILE}")
        return lines


def _drop_attention(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if event.get("event") == "replay.attention":
        raise structlog.DropEvent
    return event


@contextmanager
def _without_attention_line() -> Iterator[None]:
    """The scratch replay's "parked N event(s); list them with `projector parked
    TARGET`" warning names a target deleted afterwards; the report lists them instead."""
    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[_drop_attention, *processors])
    try:
        yield
    finally:
        structlog.configure(processors=processors)


def _replay_and_compare(
    out_dir: Path,
    log: LogFacts,
    state: Path | None,
    result: ScaffoldResult,
    state_db: StateDB | None,
    lock_timeout: float | None,
) -> None:
    catalog = Catalog.load(out_dir)
    with tempfile.TemporaryDirectory(prefix="projector-scaffold-") as scratch:
        target = Path(scratch) / "draft.db"
        try:
            with _without_attention_line():
                options = ReplayOptions(
                    on_invalid="park", catalog=catalog, lock_timeout=lock_timeout
                )
                run = replay(log.source, target, options)
        except ReplayError as exc:
            # A batch the target refused as a whole: the draft is reported, not thrown away.
            result.finish.append(f"the replay with the draft failed: {exc}")
            return
        result.replayed = True
        result.applied, result.parked = run.applied, run.parked_total
        for warning in run.warning_examples:
            result.finish.append(f"replay warned: {warning['kind']}: {warning['detail']}")
        outcomes = {e.name: e for e in result.events}
        conn = connect_readonly(target)
        try:
            for name, kind, count, reason in conn.execute(
                f"SELECT name, kind, COUNT(*), MIN(reason) FROM {PARKED_TABLE} "
                "GROUP BY name, kind ORDER BY MIN(position)"
            ):
                outcome = outcomes.get(str(name))
                if outcome is not None:
                    outcome.parked[kind] += count
                    outcome.reasons.setdefault(kind, str(reason))
        finally:
            conn.close()
        for outcome in result.events:
            outcome.applied = outcome.count - sum(outcome.parked.values())
        if state is None or state_db is None:
            return
        try:
            report = verify(target, state, catalog=catalog)
        except TargetError as exc:
            # e.g. the state DB of another store: nothing to compare, nothing to claim.
            result.finish.append(f"verify --against refused the state DB: {exc}")
            return
        result.compared = True
    result.checks = [c.as_dict() for c in report.checks]
    by_table = {t.table: t for t in result.tables}
    for difference in report.differences:
        found = by_table.get(difference.table)
        if found is None:
            found = by_table[difference.table] = TableOutcome(
                difference.table,
                state_db.rows(difference.table),  # a table only LiveStore has
            )
            result.tables.append(found)
        if difference.key == "*":
            found.note = difference.detail
            found.missing = found.livestore_rows
            continue
        if difference.what == "missing":
            found.missing += 1
        elif difference.what == "extra":
            found.extra += 1
        else:
            found.differing += 1
            found.columns.update(difference.columns)
    for table in result.tables:
        table.equal = max(0, table.livestore_rows - table.missing - table.differing)
    result.livestore_rows = sum(t.livestore_rows for t in result.tables)
    result.rows_equal = sum(t.equal for t in result.tables)
    result.differences = [d.line() for d in report.differences]
    failed = [c for c in report.checks if not c.ok and c.name != "against"]
    for check in failed:
        result.finish.append(f"verify check {check.name} failed: {check.detail}")
    # Stricter than verify: a draft whose replay parked events is not called right even
    # when those events explain every difference (a wrong guess parks events too).
    result.verified = report.ok and not report.differences and result.parked == 0


def scaffold(
    source: str | Path,
    out_dir: str | Path,
    *,
    state: str | Path | None = None,
    force: bool = False,
    lock_timeout: float | None = None,
    format_version: int | None = None,
) -> ScaffoldResult:
    """Write a draft catalog for SOURCE's app into OUT_DIR and report how far it is from
    LiveStore's state (STATE, LiveStore's ``state<hash>@N.db``).

    OUT_DIR is created if missing; a non-empty OUT_DIR is refused unless FORCE, which
    replaces the catalog files in it (catalog.toml, ``*.json``, ``migrations/*.sql``,
    REPORT.md) and leaves the rest. Writes catalog.toml, one ``<event>.json`` per event
    name, ``migrations/0001_app_tables.sql`` (when any table is found) and REPORT.md;
    replays SOURCE with the draft into a scratch target (deleted afterwards) and, with
    STATE, runs ``verify --against`` on it. LOCK_TIMEOUT and FORMAT_VERSION read SOURCE as
    `events.sources.open_source` does (a store folder with eventlog@4.db and @6.db).

    Raises SourceError for a SOURCE that is not an event log, ScaffoldError for an
    unusable OUT_DIR or STATE DB or an empty log, CatalogError should the draft not load
    (a bug: report it).
    """
    out = Path(out_dir)
    state_path = Path(state) if state is not None else None
    log = read_log(Path(source), lock_timeout=lock_timeout, format_version=format_version)
    state_db = StateDB(state_path) if state_path is not None else None
    if state_db is not None:
        state_db.refuse_another_app(set(log.events))
    try:
        _prepare_out_dir(out, force, [Path(log.source), *([state_path] if state_path else [])])
        return _scaffold(log, out, state_path, state_db, lock_timeout)
    finally:
        if state_db is not None:
            state_db.close()


def _scaffold(
    log: LogFacts,
    out: Path,
    state_path: Path | None,
    state_db: StateDB | None,
    lock_timeout: float | None,
) -> ScaffoldResult:
    documents = find_documents(log, state_db)
    if state_db is not None:
        tables = state_db.tables
        booleans = boolean_columns(state_db)
    else:
        tables, booleans = infer_tables(log, documents)
    unconfirmed: list[str] = []
    for doc in documents:
        table = tables[doc[: -len("Set")]]
        rows = state_db.document_rows(table.state_name) if state_db else None
        table.document, how, unsure = document_default(log.events[doc], rows)
        table.notes.append(f"a client document (its {doc} events); default: {how}")
        if unsure and state_db is not None:
            unconfirmed.append(
                f"{table.name}: the client document's default for {', '.join(unsure)} is the "
                "value the state holds, which events set: no state can tell it from the "
                "default; take the default from the app's LiveStore schema "
                "(a store whose events never set a key shows it: verify --against there)"
            )
    plans = [
        plan_event(log.events[name], tables, booleans, documents) for name in sorted(log.events)
    ]
    if state_db is not None:
        guess_codecs(tables, plans, log, state_db, booleans)
    _add_checks(tables)

    name = _catalog_name(log.store_dir, Path(log.source))
    files = _write_catalog(out, name, log, tables, plans, documents, state_path)
    result = ScaffoldResult(
        source=log.source,
        out_dir=str(out),
        catalog=name,
        state=str(state_path) if state_path else None,
        events_read=log.total,
        files=files,
        events=[
            EventOutcome(
                p.event,
                log.events[p.event].count,
                bool(log.events[p.event].client_only),
                p.what,
                todo=p.todo,
            )
            for p in plans
        ],
        tables=[
            TableOutcome(t.name, state_db.rows(t.state_name) if state_db else 0)
            for t in tables.values()
        ],
        replayed=False,
    )
    result.unconfirmed = unconfirmed
    if name in bundled_catalog_names():
        result.finish.append(
            f"name: {name!r} is also a bundled catalog's name; give yours another in "
            "catalog.toml (`--catalog NAME` means the bundled one, and Drizzle's files and "
            "the projector's messages name a catalog by it)"
        )
    if state_path is None and (beside := state_beside(log.store_dir)) is not None:
        result.state_hint = f"(LiveStore's state DB is beside the log: add --state {beside})"
    if tables:
        try:
            _replay_and_compare(out, log, state_path, result, state_db, lock_timeout)
        except CatalogError as exc:
            raise ScaffoldError(f"the draft in {out} does not load as a catalog: {exc}") from None
    _verdict(result, plans, state_path)
    report = report_markdown(result, plans, tables)
    (out / REPORT_FILE).write_text(report, "utf-8", errors="backslashreplace")
    return result


def _verdict(result: ScaffoldResult, plans: list[Plan], state: Path | None) -> None:
    """What may be claimed, and the list of what to finish by hand."""
    items = []
    for plan in plans:
        if not plan.ops and not plan.what.startswith("client document"):
            items.append(f"{plan.event}: left out: {plan.todo}")
        elif plan.todo:
            items.append(f"{plan.event}: {plan.todo}")
    for event in result.events:
        for kind, count in sorted(event.parked.items()):
            if event.draft == "left out" and kind == "unknown":
                continue
            items.append(f"{event.name}: {count:,} parked ({kind}): {event.reasons.get(kind, '')}")
    for table in result.tables:
        if table.note:
            items.append(f"{table.table}: {table.note}")
        elif table.missing or table.extra or table.differing:
            parts = [
                f"{n:,} {what}"
                for n, what in (
                    (table.missing, "missing"),
                    (table.extra, "extra"),
                    (table.differing, "differing"),
                )
                if n
            ]
            columns = ", ".join(table.columns) if table.columns else ""
            items.append(
                f"{table.table}: {', '.join(parts)} row(s)"
                + (f" (columns: {columns})" if columns else "")
            )
    result.finish = items + result.finish
    if not result.tables:
        result.verdict = (
            "draft NOT verified: no table could be inferred, nothing was replayed; finish by hand"
        )
    elif not result.replayed:
        result.verdict = "draft NOT verified: its replay failed; finish by hand"
    elif state is not None and not result.compared:
        result.verdict = "draft NOT verified: verify --against refused the state DB"
    elif state is None:
        result.verdict = (
            f"no state DB given: the draft replays (applied {result.applied:,}, parked "
            f"{result.parked:,}) but nothing can be claimed about its correctness; "
            "pass --state STATE_DB to compare with LiveStore's state"
        )
    elif result.verified and result.unconfirmed:
        result.verdict = (
            f"draft verified against this store: replay parked nothing and verify --against "
            f"found 0 differences over {result.livestore_rows:,} LiveStore rows, but no state "
            "can confirm some guesses: check by hand"
        )
        result.finish = result.unconfirmed + result.finish
    elif result.verified:
        result.verdict = (
            f"draft verified: replay parked nothing and verify --against found 0 "
            f"differences over {result.livestore_rows:,} LiveStore rows"
        )
    else:
        result.verdict = "draft NOT verified: finish by hand"


def _catalog_name(store_dir: Path, source: Path) -> str:
    base = store_dir.name if source.suffix == ".db" else source.stem
    name = re.sub(r"[^A-Za-z0-9._-]", "-", base).lstrip("._-")
    return name or "draft"


def _prepare_out_dir(out: Path, force: bool, inputs: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise ScaffoldError(f"{out}: exists and is not a directory")
    resolved = out.resolve()
    for path in inputs:
        folder = path.resolve().parent
        if folder == resolved:
            raise ScaffoldError(f"{out}: holds the input {path.name}; write the draft elsewhere")
        if EVENTLOG_FILE.match(path.name) and in_source_folder(out, path):
            raise ScaffoldError(
                f"{out}: is in the source's store folder ({folder}); no command writes there: "
                "write the draft elsewhere"
            )
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ScaffoldError(
                f"{out}: not empty; choose an empty or new folder, or pass --force to "
                "replace the catalog files in it"
            )
        for path in [out / SPEC_FILE, out / REPORT_FILE, *out.glob("*.json")]:
            if path.is_file():
                path.unlink()
        migrations = out / MIGRATIONS_DIR
        if migrations.is_dir():
            for path in migrations.glob("*.sql"):
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def schema_guesses(schema: dict[str, Any], file: str, path: str = "") -> list[str]:
    """What an inferred event SCHEMA (written to FILE) guesses: each enum (at PATH, ``[]``
    for an array's items), taken from the few values a log happened to hold. A value the
    log did not hold would be invalid, and Drizzle's type narrows to the values seen, so
    each is for the reader to confirm (a Schema.Literal) or open up (free text, tags)."""
    found = []
    if "enum" in schema:
        seen = ", ".join(_json_text(v) for v in schema["enum"] if v is not None)
        found.append(
            f"{file}: {path or 'the args'} is an enum of the values seen ({seen}); another "
            'value is invalid: if it is free text, make it {"type": "string"}'
        )
    for key, sub in schema.get("properties", {}).items():
        if isinstance(sub, dict):
            found += schema_guesses(sub, file, f"{path}.{key}" if path else key)
    if isinstance(schema.get("items"), dict):
        found += schema_guesses(schema["items"], file, f"{path}[]")
    return found


def _schema_file(name: str, taken: set[str]) -> str:
    base = _SAFE_FILE.sub("_", name).lstrip(".") or "event"
    candidate, n = f"{base}.json", 1
    while candidate.lower() in taken or candidate == "catalog.json":
        n += 1
        candidate = f"{base}-{n}.json"
    taken.add(candidate.lower())
    return candidate


def _write_catalog(
    out: Path,
    name: str,
    log: LogFacts,
    tables: dict[str, TableDraft],
    plans: list[Plan],
    documents: set[str],
    state: Path | None,
) -> list[str]:
    files = []
    taken: set[str] = set()
    source_name = Path(log.source).name
    by_event = {plan.event: plan for plan in plans}
    for event_name in sorted(log.events):
        facts = log.events[event_name]
        schema = event_schema(facts, event_name in documents, source_name)
        file = _schema_file(event_name, taken)
        (out / file).write_text(_json_text(schema, indent=2) + "\n", "utf-8")
        files.append(file)
        if event_name in by_event:
            by_event[event_name].schema_guesses = schema_guesses(schema, file)
    if tables:
        (out / MIGRATIONS_DIR).mkdir(exist_ok=True)
        (out / MIGRATIONS_DIR / MIGRATION_FILE).write_text(migration_sql(tables, state), "utf-8")
        files.append(f"{MIGRATIONS_DIR}/{MIGRATION_FILE}")
        (out / SPEC_FILE).write_text(catalog_toml(name, log, tables, plans, state), "utf-8")
    else:
        # No table: a schemas-only catalog (docs/catalogs.md), good for `validate`.
        text = f"name = {_toml_string(name)}\n# TODO: no table could be inferred.\n"
        (out / SPEC_FILE).write_text(text, "utf-8")
    files.append(SPEC_FILE)
    if (out / HOOKS_FILE).exists():
        files.append(f"{HOOKS_FILE} (yours, left as it was)")
    files.append(REPORT_FILE)
    return files


# ---------------------------------------------------------------- REPORT.md


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def report_markdown(
    result: ScaffoldResult, plans: list[Plan], tables: dict[str, TableDraft]
) -> str:
    """REPORT.md: the verdict, the figure, what to finish, per event and per table."""
    out = [
        f"# Scaffold report: {result.catalog}",
        "",
        f"- Source: `{result.source}` ({result.events_read:,} events, "
        f"{len(result.events)} event names)",
        f"- State DB: `{result.state}`" if result.state else "- State DB: none",
        f"- Draft: `{result.out_dir}`",
        "",
        f"**{result.verdict}**",
        "",
    ]
    if result.figure:
        out += [f"**{result.figure}**", ""]
    if result.replayed:
        out += [
            f"Replay of the log with the draft (`--on-invalid park`, a scratch target): "
            f"read {result.events_read:,} = applied {result.applied:,} + parked "
            f"{result.parked:,}.",
            "",
        ]
    if result.finish:
        out += ["## What to finish by hand", ""]
        out += [f"- {_md(item)}" for item in result.finish]
        out.append("")
    out += [
        "## Events",
        "",
        "| event | count | client-only | draft | applied | parked | why parked (first) |",
        "|---|---:|---|---|---:|---:|---|",
    ]
    for e in result.events:
        why = "; ".join(f"{k}: {r}" for k, r in e.reasons.items())
        out.append(
            f"| {_md(e.name)} | {e.count:,} | {'yes' if e.client_only else ''} | {_md(e.draft)} "
            f"| {e.applied:,} | {sum(e.parked.values()):,} | {_md(why)} |"
        )
    out.append("")
    if result.state:
        out += [
            "## Tables",
            "",
            "| table | LiveStore rows | equal | missing | extra | differing "
            "| top differing columns |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for t in result.tables:
            columns = ", ".join(f"{c} ({n})" for c, n in t.columns.most_common(5))
            if t.note:
                columns = _md(t.note)
            out.append(
                f"| {_md(t.table)} | {t.livestore_rows:,} | {t.equal:,} | {t.missing:,} | "
                f"{t.extra:,} | {t.differing:,} | {_md(columns)} |"
            )
        out.append("")
    guesses = [(p.event, g) for p in plans for g in p.guesses + p.schema_guesses]
    notes = [(t.name, n) for t in tables.values() for n in t.notes]
    if guesses or notes:
        out += ["## Guesses the draft makes (marked in catalog.toml)", ""]
        out += [f"- {_md(where)}: {_md(text)}" for where, text in notes + guesses]
        out.append("")
    if result.checks:
        out += ["## verify", ""]
        out += [
            f"- {'ok' if c['ok'] else 'FAIL'} {c['check']}: {_md(c['detail'])}"
            for c in result.checks
        ]
        out.append("")
    if result.differences:
        shown = result.differences[:50]
        out += [f"## Differences ({len(result.differences):,}; the first {len(shown)})", ""]
        out += [f"- {_md(line)}" for line in shown]
        out.append("")
    return "\n".join(out)


def state_beside(source: Path) -> Path | None:
    """LiveStore's state DB in SOURCE's store directory, when there is exactly one."""
    directory = source if source.is_dir() else source.parent
    found = state_files(directory)
    return found[0] if len(found) == 1 else None


__all__ = ["ScaffoldResult", "infer_schema", "plan_event", "scaffold"]
