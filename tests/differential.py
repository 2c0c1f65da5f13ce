"""Differential testing against LiveStore: mutate a real log, let LiveStore rebuild it, compare.

A *mutation* is a short list of edits to a committed real eventlog (the base): replace one
event's argsJson, rename it, delete it, or add an event. The edits are the ones real apps
produce (a key a newer app version added, an optional key left out, text cut mid-emoji,
U+0000, numbers and dates at the edges of what JavaScript writes, events of a newer app,
client documents set with partial, extra or null keys, events for rows that do not exist)
and are chosen from the catalog's JSON Schemas, not from a list of the app's fields.

`make corpus` (``python -m tests.differential``, Node 20) draws mutations from a seed,
writes each mutated log, lets real LiveStore rebuild its state (`oracle/rebuild.mjs`) and
stores, per mutation, the edits and LiveStore's answer: the user-table rows that differ
from LiveStore's state of the unmutated base, or the reason LiveStore refused the log.
That is `fixtures/differential/corpus.json`; tests/test_differential.py replays every
entry with the projector and compares (`verify --against` a state DB rebuilt from the
base state and the stored rows), so CI needs no Node.

Corpus file: {"base": DIR, "baseState": FILE, "seed": N, "livestore": VERSION,
"mutations": [{"id", "kind", "note", "ops": [...], "livestore": {"ok": true, "rows":
{table: {key: row | null}}} | {"ok": false, "error": TEXT}}]}. An op is one of
{"set": EVENT_ID, "args": TEXT}, {"rename": EVENT_ID, "name": NAME}, {"delete": EVENT_ID},
{"insertAfter": EVENT_ID, "name": NAME, "args": TEXT} (a client-only event right after it)
and {"append": NAME, "args": TEXT} (a new synced event at the end). argsJson is kept as
text because its spelling is the point (``\\ud83d``, ``-0``, ``1e21``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events.validation import Catalog
from projector import deviations

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fixtures" / "differential" / "corpus.json"
BASE = ROOT / "fixtures" / "small" / "ai-desk"
BASE_STATE = BASE / "state-11367593325@6.db"
ORACLE = ROOT / "oracle"
EVENTLOG = "eventlog@6.db"
LIVESTORE_VERSION = "0.4.0"

Row = tuple[Any, ...]
#: eventlog columns, in the order the DDL declares them (FORMAT.md §2).
COLUMNS = (
    "seqNumGlobal",
    "seqNumClient",
    "seqNumRebaseGeneration",
    "parentSeqNumGlobal",
    "parentSeqNumClient",
    "parentSeqNumRebaseGeneration",
    "name",
    "argsJson",
    "clientId",
    "sessionId",
    "schemaHash",
    "syncMetadataJson",
)
_ID = re.compile(r"^e(\d+)(?:\.(\d+))?(?:r(\d+))?$")


# ---------------------------------------------------------------- applying a mutation


def _seq(event_id: str) -> tuple[int, int]:
    match = _ID.match(event_id)
    if not match:
        raise ValueError(f"not an event id: {event_id!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def apply_ops(base_store: Path, ops: list[dict[str, Any]], dest_store: Path) -> Path:
    """Write DEST_STORE/eventlog@6.db: BASE_STORE's eventlog with OPS applied, in order.

    Raises ValueError for an op naming an event the log does not hold.
    """
    dest_store.mkdir(parents=True, exist_ok=True)
    path = dest_store / EVENTLOG
    shutil.copyfile(base_store / EVENTLOG, path)
    path.chmod(0o644)
    with closing(sqlite3.connect(path)) as conn:
        for op in ops:
            _apply_op(conn, op)
        conn.commit()
    return path


def _row(conn: sqlite3.Connection, g: int, c: int) -> Row:
    found = conn.execute(
        "SELECT * FROM eventlog WHERE seqNumGlobal = ? AND seqNumClient = ?", (g, c)
    ).fetchone()
    if found is None:
        raise ValueError(f"no event e{g}{f'.{c}' if c else ''} in the base log")
    return tuple(found)


def _apply_op(conn: sqlite3.Connection, op: dict[str, Any]) -> None:
    where = "WHERE seqNumGlobal = ? AND seqNumClient = ?"
    if "set" in op:
        g, c = _seq(op["set"])
        _row(conn, g, c)
        conn.execute(f"UPDATE eventlog SET argsJson = ? {where}", (op["args"], g, c))
    elif "rename" in op:
        g, c = _seq(op["rename"])
        _row(conn, g, c)
        conn.execute(f"UPDATE eventlog SET name = ? {where}", (op["name"], g, c))
    elif "delete" in op:
        g, c = _seq(op["delete"])
        _row(conn, g, c)
        conn.execute(f"DELETE FROM eventlog {where}", (g, c))
    elif "insertAfter" in op:
        g, c = _seq(op["insertAfter"])
        parent = _row(conn, g, c)
        last = conn.execute(
            "SELECT MAX(seqNumClient) FROM eventlog WHERE seqNumGlobal = ?", (g,)
        ).fetchone()[0]
        row = (g, last + 1, parent[2], g, last, parent[2], op["name"], op["args"], *parent[8:10])
        conn.execute(
            'INSERT INTO eventlog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, \'{"_tag":"None"}\')',
            row,
        )
    elif "append" in op:
        last = conn.execute(
            "SELECT * FROM eventlog ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1"
        ).fetchone()
        row = (last[0] + 1, 0, last[2], last[0], 0, last[2], op["append"], op["args"], *last[8:10])
        conn.execute(
            'INSERT INTO eventlog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, \'{"_tag":"None"}\')',
            row,
        )
    else:
        raise ValueError(f"unknown op {op!r}")


# ---------------------------------------------------------------- LiveStore's state as rows


def user_tables(conn: sqlite3.Connection) -> list[str]:
    """The state DB's user tables (its `__livestore_*` tables are LiveStore's own)."""
    return [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
        if not name.startswith(("__livestore", "sqlite_"))
    ]


def _key_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    return [name for _, name in sorted((r[5], r[1]) for r in info if r[5])]


def state_rows(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Every user-table row of a state DB: {table: {key: {column: value}}} (key: the primary
    key's values joined by '/')."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        conn.text_factory = _text
        for table in user_tables(conn):
            keys = _key_columns(conn, table)
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cursor.description]
            rows = {}
            for values in cursor:
                row = dict(zip(names, values, strict=True))
                rows["/".join(str(row[k]) for k in keys)] = row
            found[table] = rows
    return found


def _text(data: bytes) -> str:
    # LiveStore's state holds what its SQLite binding wrote; keep any odd bytes visible.
    return data.decode("utf-8", "surrogateescape")


def state_delta(base_state: Path, state: Path) -> dict[str, dict[str, Any]]:
    """STATE's rows that differ from BASE_STATE's: {table: {key: row, or None if gone}}."""
    before, after = state_rows(base_state), state_rows(state)
    delta: dict[str, dict[str, Any]] = {}
    for table in sorted(before.keys() | after.keys()):
        old, new = before.get(table, {}), after.get(table, {})
        changed = {
            key: new.get(key)
            for key in sorted(old.keys() | new.keys())
            if not _same_row(old.get(key), new.get(key))
        }
        if changed:
            delta[table] = changed
    return delta


def _same_row(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.keys() == b.keys() and all(
        type(a[k]) is type(b[k]) and (a[k] == b[k] or _both_nan(a[k], b[k])) for k in a
    )


def _both_nan(x: Any, y: Any) -> bool:
    return isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)


def build_state(base_state: Path, delta: dict[str, dict[str, Any]], dest: Path) -> Path:
    """A state DB equal to LiveStore's for a mutated log: BASE_STATE with DELTA's rows."""
    shutil.copyfile(base_state, dest)
    dest.chmod(0o644)
    with closing(sqlite3.connect(dest)) as conn:
        for table, rows in delta.items():
            keys = _key_columns(conn, table)
            for key, row in rows.items():
                parts = key.split("/") if len(keys) > 1 else [key]
                match = " AND ".join(f'"{k}" = ?' for k in keys)
                conn.execute(f'DELETE FROM "{table}" WHERE {match}', [_bind(p) for p in parts])
                if row is not None:
                    names = ", ".join(f'"{c}"' for c in row)
                    marks = ", ".join("?" for _ in row)
                    conn.execute(
                        f'INSERT INTO "{table}" ({names}) VALUES ({marks})',
                        [_bind(v) for v in row.values()],
                    )
        conn.commit()
    return dest


def _bind(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")  # odd bytes, back as they were
    return value


# ---------------------------------------------------------------- the oracle


def oracle_available() -> bool:
    """Node and the oracle's packages are installed (`make oracle-install`)."""
    return shutil.which("node") is not None and (ORACLE / "node_modules" / "@livestore").is_dir()


def rebuild_many(
    jobs: list[tuple[Path, Path]], schema: Path | None = None, log: Path | None = None
) -> list[dict[str, Any]]:
    """Let LiveStore rebuild each (store dir, out state DB) in one Node process; return
    one {"ok": bool, "error"?: text} per job, in order."""
    with tempfile.TemporaryDirectory(prefix="oracle-jobs-") as tmp:
        job_file, results = Path(tmp) / "jobs.ndjson", Path(tmp) / "results.ndjson"
        job_file.write_text(
            "".join(json.dumps({"store": str(s), "out": str(o)}) + "\n" for s, o in jobs)
        )
        command = ["node", str(ORACLE / "rebuild.mjs"), "--jobs", str(job_file)]
        command += ["--results", str(results)]
        if schema is not None:
            command += ["--schema", str(schema)]
        with open(log or Path(tmp) / "oracle.log", "w") as out:
            subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT)
        answers = [json.loads(line) for line in results.read_text().splitlines() if line]
    if len(answers) != len(jobs):
        raise RuntimeError(f"the oracle answered {len(answers)} of {len(jobs)} jobs")
    return answers


# ---------------------------------------------------------------- drawing mutations


class Raw(str):
    """JSON text written verbatim into argsJson (an escape or number spelling JSON.stringify
    could produce but Python's json would respell)."""


def to_json(value: Any) -> str:
    """JSON.stringify's spelling of VALUE (compact, non-ASCII raw); Raw parts verbatim."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


@dataclass
class BaseEvent:
    event_id: str
    name: str
    args: Any
    client_only: bool


def base_events(store: Path = BASE) -> list[BaseEvent]:
    with closing(sqlite3.connect(f"file:{store / EVENTLOG}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT seqNumGlobal, seqNumClient, name, argsJson FROM eventlog "
            "ORDER BY seqNumGlobal, seqNumClient"
        ).fetchall()
    return [
        BaseEvent(f"e{g}{f'.{c}' if c else ''}", name, json.loads(args), c > 0)
        for g, c, name, args in rows
    ]


@dataclass
class Field:
    """A place in an event's args, with the schema that describes it."""

    path: tuple[str | int, ...]
    schema: dict[str, Any]
    present: bool
    required: bool


def fields(schema: dict[str, Any], value: Any, path: tuple[str | int, ...] = ()) -> Iterator[Field]:
    """Every place of VALUE the schema describes (and the optional keys it leaves out)."""
    props = schema.get("properties")
    if isinstance(props, dict) and isinstance(value, dict):
        required = set(schema.get("required", []))
        for key, sub in props.items():
            present = key in value
            yield Field((*path, key), sub, present, key in required)
            if present:
                yield from fields(sub, value[key], (*path, key))
    items = schema.get("items")
    if isinstance(items, dict) and isinstance(value, list):
        for index, item in enumerate(value):
            yield Field((*path, index), items, True, True)
            yield from fields(items, item, (*path, index))


def closed_objects(
    schema: dict[str, Any], value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[str | int, ...]]:
    """Paths of VALUE's objects whose schema declares every key (an Effect Struct)."""
    if isinstance(value, dict) and schema.get("additionalProperties") is False:
        yield path
    for sub in fields(schema, value, path):
        if sub.present and len(sub.path) == len(path) + 1:
            yield from closed_objects(sub.schema, _get(value, sub.path[-1]), sub.path)


def _get(value: Any, key: str | int) -> Any:
    return value[key]


def _set(args: Any, path: tuple[str | int, ...], new: Any) -> Any:
    """A copy of ARGS with the value at PATH replaced (or removed, when NEW is _DROP)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(args, dict):
        copy = dict(args)
        if not rest and new is _DROP:
            copy.pop(head, None)
        else:
            copy[head] = _set(args.get(head), rest, new)  # type: ignore[arg-type]
        return copy
    copy_list = list(args)
    copy_list[head] = _set(args[head], rest, new)  # type: ignore[index]
    return copy_list


_DROP: Any = object()


def _kind_of(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "enum"
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "string" and "pattern" in schema:
        return "date"
    return kind or "any"


TEXTS: dict[str, str] = {
    "nul": "before\x00after",
    "nul-only": "\x00",
    "lone-high": Raw('"cut emoji \\ud83d"'),
    "lone-low": Raw('"\\ude00 tail"'),
    "lone-end": Raw('"text ending mid-emoji \\ud83d"'),
    "pair-escaped": Raw('"escaped pair \\ud83d\\ude00"'),
    "astral": "𝕏 🙂 👨‍👩‍👧 𓂀 🏳️‍🌈",
    "rtl": "مرحبا بالعالم \u202eRTL override\u202c שלום",
    "combining": "e\u0301 a\u0308 Z\u0336\u0335",
    "bom-and-separators": "\ufeffline\u2028sep\u2029para",
    "control": "bell\x07 tab\t cr\r lf\n del\x7f",
    "long": "long text 🙂 " * 1500,  # written as the macro @LONG@ in the corpus file
    "empty": "",
    "escaped-ascii": Raw('"\\u0041\\u0042\\/slash"'),
    "sql": "'); DROP TABLE memories; --",
}
NUMBERS: dict[str, str] = {
    "negative-zero": "-0",
    "negative-zero-float": "-0.0",
    "1e21": "1e21",
    "2^53+1": "9007199254740993",
    "2^63": "9223372036854775808",
    "1e-7": "1e-7",
    "5e-324": "5e-324",
    "1.7976931348623157e308": "1.7976931348623157e308",
    "1e999": "1e999",
    "one-point-zero": "1.0",
    "exponent-upper": "1E+2",
    "point-one-plus-point-two": "0.30000000000000004",
    "negative": "-12.5",
    "int": "42",
}
DATES: dict[str, str] = {
    "max": "+275760-09-13T00:00:00.000Z",
    "min": "-271821-04-20T00:00:00.000Z",
    "beyond-max": "+275760-09-13T00:00:00.001Z",
    "year-zero": "0000-01-01T00:00:00.000Z",
    "leap-day": "2024-02-29T23:59:59.999Z",
    "feb-30": "2024-02-30T00:00:00.000Z",
    "no-millis": "2024-01-16T08:56:04Z",
    "date-only": "2024-01-16",
    "offset": "2024-01-16T10:56:04.715+02:00",
    "trailing-newline": "2024-01-16T08:56:04.715Z\n",
    "arabic-indic-digits": "\u0662\u0660\u0662\u0664-01-16T08:56:04.715Z",
    "four-digit-millis": "2024-01-16T08:56:04.7150Z",
    "words": "Tue Jan 16 2024 08:56:04 GMT+0000",
    "epoch": "1970-01-01T00:00:00.000Z",
    "lowercase": "2024-01-16t08:56:04.715z",
}
EXTRA_VALUES: list[Any] = [True, 1, "x", None, {"nested": [1, 2]}, [], 0.5]


Mutator = Callable[[random.Random, list[BaseEvent], Catalog], tuple[str, list[dict[str, Any]]]]
MUTATORS: dict[str, Mutator] = {}


def mutator(kind: str) -> Callable[[Mutator], Mutator]:
    def register(fn: Mutator) -> Mutator:
        if kind in MUTATORS:
            raise ValueError(f"a mutator {kind} is already registered")
        MUTATORS[kind] = fn
        return fn

    return register


def _pick_event(
    rng: random.Random,
    events: list[BaseEvent],
    catalog: Catalog,
    accept: Callable[[BaseEvent, list[Field]], list[Field]],
) -> tuple[BaseEvent, Field]:
    """A random event of the log with a random field ACCEPT keeps."""
    order = list(events)
    rng.shuffle(order)
    for event in order:
        schema = catalog.schemas.get(event.name)
        if schema is None:
            continue
        candidates = accept(event, list(fields(schema, event.args)))
        if candidates:
            return event, rng.choice(candidates)
    raise LookupError("no event has a field of that kind")


def _path_text(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _set_op(event: BaseEvent, args: Any) -> dict[str, Any]:
    return {"set": event.event_id, "args": to_json(args)}


@mutator("extra-key")
def extra_key(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
    order = list(events)
    rng.shuffle(order)
    for event in order:
        schema = catalog.schemas.get(event.name)
        places = list(closed_objects(schema, event.args)) if schema else []
        if places:
            place = rng.choice(places)
            key = rng.choice(["pinned", "compactMode", "x-newer-app", "schemaVersion", "__proto"])
            value = rng.choice(EXTRA_VALUES)
            target = event.args
            for part in place:
                target = target[part]
            args = _set(event.args, place, {**target, key: value})
            note = f"{event.event_id} {event.name}: extra key {key}={to_json(value)} at "
            return note + _path_text(place), [_set_op(event, args)]
    raise LookupError("no closed object")


@mutator("missing-key")
def missing_key(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
    required = rng.random() < 0.25

    def accept(event: BaseEvent, found: list[Field]) -> list[Field]:
        return [
            f for f in found if f.present and isinstance(f.path[-1], str) and f.required == required
        ]

    event, field = _pick_event(rng, events, catalog, accept)
    args = _set(event.args, field.path, _DROP)
    what = "required" if required else "optional"
    note = f"{event.event_id} {event.name}: {what} key {_path_text(field.path)} left out"
    return note, [_set_op(event, args)]


def _text_mutator(kind: str, texts: list[str]) -> None:
    @mutator(kind)
    def text(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
        def accept(event: BaseEvent, found: list[Field]) -> list[Field]:
            return [f for f in found if f.present and _kind_of(f.schema) == "string"]

        event, field = _pick_event(rng, events, catalog, accept)
        name = rng.choice(texts)
        new = TEXTS[name]
        old = _get_path(event.args, field.path)
        how = rng.choice(["replace", "prefix", "suffix"]) if old else "replace"
        if how != "replace" and isinstance(old, str):
            inner = new[1:-1] if isinstance(new, Raw) else json.dumps(new, ensure_ascii=False)[1:-1]
            old_inner = json.dumps(old, ensure_ascii=False)[1:-1]
            new = Raw('"' + (inner + old_inner if how == "prefix" else old_inner + inner) + '"')
        args = _set(event.args, field.path, new)
        note = f"{event.event_id} {event.name}: {name} text ({how}) at {_path_text(field.path)}"
        return note, [_set_op(event, args)]


def _get_path(value: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


_text_mutator("nul", ["nul", "nul-only"])
_text_mutator("lone-surrogate", ["lone-high", "lone-low", "lone-end"])
_text_mutator(
    "unicode",
    ["pair-escaped", "astral", "rtl", "combining", "bom-and-separators", "control", "empty"],
)
_text_mutator("long-text", ["long"])
_text_mutator("odd-text", ["escaped-ascii", "sql", "empty"])


@mutator("number")
def number(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
    def accept(event: BaseEvent, found: list[Field]) -> list[Field]:
        return [f for f in found if f.present and _kind_of(f.schema) == "number"]

    event, field = _pick_event(rng, events, catalog, accept)
    name = rng.choice(sorted(NUMBERS))
    args = _set(event.args, field.path, Raw(NUMBERS[name]))
    note = f"{event.event_id} {event.name}: number {NUMBERS[name]} at {_path_text(field.path)}"
    return note, [_set_op(event, args)]


@mutator("json-value-number")
def json_value_number(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
    """A number inside a value stored as JSON text (JSON.stringify prints it again)."""

    def accept(event: BaseEvent, found: list[Field]) -> list[Field]:
        return [f for f in found if f.present and _kind_of(f.schema) == "any"]

    event, field = _pick_event(rng, events, catalog, accept)
    name = rng.choice(sorted(NUMBERS))
    value = rng.choice([Raw(NUMBERS[name]), [Raw(NUMBERS[name])], {"n": Raw(NUMBERS[name])}])
    args = _set(event.args, field.path, value)
    note = f"{event.event_id} {event.name}: JSON value {to_json(value)} at {_path_text(field.path)}"
    return note, [_set_op(event, args)]


@mutator("date")
def date(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
    def accept(event: BaseEvent, found: list[Field]) -> list[Field]:
        return [f for f in found if f.present and _kind_of(f.schema) == "date"]

    event, field = _pick_event(rng, events, catalog, accept)
    name = rng.choice(sorted(DATES))
    args = _set(event.args, field.path, DATES[name])
    note = f"{event.event_id} {event.name}: date {name} {DATES[name]!r} at "
    return note + _path_text(field.path), [_set_op(event, args)]


@mutator("wrong-type")
def wrong_type(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
    def accept(event: BaseEvent, found: list[Field]) -> list[Field]:
        return [f for f in found if f.present and _kind_of(f.schema) != "any"]

    event, field = _pick_event(rng, events, catalog, accept)
    kind = _kind_of(field.schema)
    choices: list[Any] = ["high", 7, True, None, [], {}, "sepia"]
    nullable = isinstance(field.schema.get("type"), list) and "null" in field.schema["type"]
    choices = [
        c
        for c in choices
        if not _fits(kind, c)
        and not (c is None and nullable)
        and c != _get_path(event.args, field.path)
    ]
    value = rng.choice(choices)
    args = _set(event.args, field.path, value)
    note = (
        f"{event.event_id} {event.name}: {kind} field {_path_text(field.path)} := {to_json(value)}"
    )
    return note, [_set_op(event, args)]


def _fits(kind: str, value: Any) -> bool:
    if kind == "string" or kind == "date":
        return isinstance(value, str) and kind == "string"
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return False


@mutator("unknown-event")
def unknown_event(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
    event = rng.choice(events)
    name = rng.choice(["v2.MemoryPinned", "v1.PersonaArchived", "v3.MemoryAdded", "themeSet"])
    form = rng.choice(["rename", "insert", "append"])
    args = to_json(event.args if form == "rename" else {"id": "x1", "at": 1})
    if form == "rename":
        return f"{event.event_id} renamed to {name}", [{"rename": event.event_id, "name": name}]
    if form == "insert":
        return f"{name} inserted after {event.event_id}", [
            {"insertAfter": event.event_id, "name": name, "args": args}
        ]
    return f"{name} appended", [{"append": name, "args": args}]


def _client_documents(catalog: Catalog, events: list[BaseEvent]) -> list[BaseEvent]:
    documents = set(catalog.client_documents)
    return [e for e in events if e.name in documents]


@mutator("client-document")
def client_document(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
    sets = _client_documents(catalog, events)
    event = rng.choice(sets)
    schema = catalog.schemas[event.name]["properties"]["value"]
    props = schema.get("properties", {})
    value = dict(event.args["value"])
    form = rng.choice(
        ["extra", "null-key", "all-keys", "empty", "value-null", "value-array", "bad-and-good"]
        + ["nested-partial", "nested-extra", "null-id", "numeric-id"]
    )
    key = rng.choice(sorted(props))
    args: Any = dict(event.args)
    if form == "extra":
        value["removedField"] = rng.choice(EXTRA_VALUES)
    elif form == "null-key":
        value[key] = None
    elif form == "all-keys":
        value = {k: value.get(k, _sample(props[k])) for k in props}
    elif form == "empty":
        value = {}
    elif form == "value-null":
        value = None
    elif form == "value-array":
        value = [value]
    elif form == "bad-and-good":
        value = {**value, key: "sepia" if _kind_of(props[key]) != "string" else 17}
    elif form in ("nested-partial", "nested-extra"):
        nested = [k for k, s in props.items() if _kind_of(s) == "object"]
        if not nested:
            value["removedField"] = 1
        else:
            inner = nested[0]
            sample = _sample(props[inner])
            if form == "nested-partial":
                sample.pop(next(iter(sample)))
            else:
                sample["extraNested"] = True
            value[inner] = sample
    elif form == "null-id":
        args["id"] = None
    elif form == "numeric-id":
        args["id"] = 7
    args["value"] = value
    note = f"{event.event_id} {event.name}: {form} ({to_json(value)[:80]})"
    return note, [_set_op(event, args)]


def _sample(schema: dict[str, Any]) -> Any:
    """A valid value for SCHEMA (its first enum member, an empty string...)."""
    kind = _kind_of(schema)
    if kind == "enum":
        return schema["enum"][-1]
    if kind == "object":
        return {k: _sample(s) for k, s in schema.get("properties", {}).items()}
    return {
        "string": "sample",
        "number": 3,
        "boolean": False,
        "array": [],
        "date": DATES["epoch"],
    }.get(kind, None)


@mutator("missing-row")
def missing_row(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
    """An event for a row that does not exist: a fresh id, or its creation event deleted."""
    creators = [e for e in events if e.name.endswith(("Created", "Added", "Installed"))]
    if rng.random() < 0.5:
        event = rng.choice([e for e in events if isinstance(e.args, dict) and "id" in e.args])
        args = {**event.args, "id": "no-such-row-" + str(rng.randrange(1000))}
        note = f"{event.event_id} {event.name}: id of a row that never existed"
        return note, [_set_op(event, args)]
    event = rng.choice(creators)
    return f"{event.event_id} {event.name} deleted (its row's later events remain)", [
        {"delete": event.event_id}
    ]


@mutator("duplicate")
def duplicate(rng: random.Random, events: list[BaseEvent], catalog: Catalog) -> Any:
    """An event written twice (a retried commit): a creation twice is a UNIQUE conflict."""
    event = rng.choice(events)
    note = f"{event.event_id} {event.name} repeated right after itself"
    return note, [{"insertAfter": event.event_id, "name": event.name, "args": to_json(event.args)}]


#: How often each kind is drawn (the kinds the issue lists get most of the corpus).
WEIGHTS = {
    "extra-key": 4,
    "missing-key": 3,
    "nul": 2,
    "lone-surrogate": 2,
    "unicode": 3,
    "long-text": 1,
    "odd-text": 1,
    "number": 3,
    "json-value-number": 2,
    "date": 3,
    "wrong-type": 2,
    "unknown-event": 2,
    "client-document": 4,
    "missing-row": 2,
    "duplicate": 1,
}


def draw(seed: int, count: int, catalog: Catalog, events: list[BaseEvent]) -> list[dict[str, Any]]:
    """COUNT mutations drawn from SEED: mostly one edit, sometimes two or three."""
    rng = random.Random(seed)
    kinds = sorted(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(found) < count and attempts < count * 20:
        attempts += 1
        parts = 1 if rng.random() < 0.8 else rng.choice([2, 3])
        chosen = rng.choices(kinds, weights, k=parts)
        notes, ops = [], []
        untouched = list(events)
        try:
            for kind in chosen:
                note, more = MUTATORS[kind](rng, untouched, catalog)
                notes.append(note)
                ops.extend(more)
                # Each edit starts from the base args: one event is edited once.
                touched = {op.get("set") or op.get("rename") or op.get("delete") for op in more}
                untouched = [e for e in untouched if e.event_id not in touched]
        except LookupError:
            continue
        key = json.dumps(ops, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        found.append({"kind": "+".join(chosen), "note": "; ".join(notes), "ops": ops})
    return found


# ---------------------------------------------------------------- comparing


@dataclass
class Outcome:
    """What the projector made of one mutated log, against LiveStore's answer."""

    mutation: dict[str, Any]
    #: Parked events: (kind, reason, event id).
    parked: list[tuple[str, str, str]]
    #: verify --against's differences (None when LiveStore refused the log).
    differences: list[Any] | None = None

    @property
    def livestore_ok(self) -> bool:
        return bool(self.mutation["livestore"]["ok"])

    @property
    def unexplained(self) -> list[Any]:
        return [d for d in self.differences or [] if not d.explained]

    @property
    def undocumented(self) -> list[tuple[str, str, str]]:
        """Events parked from a log LiveStore accepts that no deviation stands for (a held
        event follows an earlier one on its row, which is judged itself)."""
        if not self.livestore_ok:
            return []
        return [
            p for p in self.parked if p[0] != "held" and deviations.for_parked(p[0], p[1]) is None
        ]

    @property
    def silently_applied(self) -> bool:
        """LiveStore refused the log, yet every event was applied."""
        return not self.livestore_ok and not self.parked

    @property
    def ok(self) -> bool:
        return not self.unexplained and not self.undocumented and not self.silently_applied

    def report(self) -> str:
        m = self.mutation
        lines = [f"{m['id']} ({m['kind']}): {m['note']}"]
        if self.silently_applied:
            lines.append(f"  LiveStore refused it ({m['livestore']['error']}); all applied")
        lines += [
            f"  parked, no deviation: {kind}: {reason}" for kind, reason, _ in self.undocumented
        ]
        lines += [f"  {d.line()}" for d in self.unexplained]
        return "\n".join(lines)


def compare(
    mutation: dict[str, Any], work: Path, base: Path = BASE, base_state: Path = BASE_STATE
) -> Outcome:
    """Replay MUTATION's log with the projector (parking what it cannot apply) and compare
    the target with LiveStore's answer (`verify --against` a state DB built from it)."""
    from projector.replay import ReplayOptions, replay
    from projector.verify import verify

    store = apply_ops(base, mutation["ops"], work / "store" / "ai-desk")
    target = work / "target.db"
    replay(store, target, ReplayOptions(on_invalid="park"))
    with closing(sqlite3.connect(f"file:{target}?mode=ro", uri=True)) as conn:
        parked = [
            (kind, reason, event_id)
            for kind, reason, event_id in conn.execute(
                "SELECT kind, reason, eventId FROM _projector_parked ORDER BY position"
            )
        ]
    outcome = Outcome(mutation, parked)
    if mutation["livestore"]["ok"]:
        state = build_state(base_state, mutation["livestore"]["rows"], work / "livestore.db")
        outcome.differences = verify(target, state).differences
    return outcome


def compare_all(mutations: list[dict[str, Any]]) -> list[Outcome]:
    outcomes = []
    for mutation in mutations:
        with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
            outcomes.append(compare(mutation, Path(tmp)))
    return outcomes


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """Counts for a report: logs, LiveStore's answers, differences and how each is explained."""
    accepted = [o for o in outcomes if o.livestore_ok]
    differences = [d for o in accepted for d in o.differences or []]
    by_deviation: dict[str, int] = {}
    for d in differences:
        for name in getattr(d, "deviations", {}) or {}:
            by_deviation[name] = by_deviation.get(name, 0) + 1
    parked_by: dict[str, int] = {}
    for o in accepted:
        for kind, reason, _ in o.parked:
            name = (
                "held"
                if kind == "held"
                else deviations.for_parked(kind, reason) or f"{kind} (no deviation)"
            )
            parked_by[name] = parked_by.get(name, 0) + 1
    return {
        "logs": len(outcomes),
        "livestoreAccepted": len(accepted),
        "livestoreRefused": len(outcomes) - len(accepted),
        "refusedButAllApplied": sum(1 for o in outcomes if o.silently_applied),
        "acceptedLogsWithDifferences": sum(1 for o in accepted if o.differences),
        "differences": len(differences),
        "explainedByParked": sum(1 for d in differences if d.explained_by),
        "explainedByDeviation": by_deviation,
        "unexplained": sum(1 for d in differences if not d.explained),
        "acceptedLogsWithParkedEvents": sum(1 for o in accepted if o.parked),
        "parkedInAcceptedLogs": parked_by,
    }


# ---------------------------------------------------------------- the corpus file

#: Long texts the corpus spells as a macro, so the file stays small (expanded on reading).
MACROS = {"@LONG@": TEXTS["long"]}


def _macros(value: Any, replace: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, dict):
        return {k: _macros(v, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [_macros(v, replace) for v in value]
    return value


def _pack(text: str) -> str:
    for name, long in MACROS.items():
        text = text.replace(long, name)
    return text


def _unpack(text: str) -> str:
    if "@" not in text:
        return text
    for name, long in MACROS.items():
        text = text.replace(name, long)
    return text


def load_corpus(path: Path = CORPUS) -> dict[str, Any]:
    """The corpus, its macros expanded."""
    corpus = json.loads(path.read_text("utf-8"))
    corpus["mutations"] = _macros(corpus["mutations"], _unpack)
    return corpus


def write_corpus(corpus: dict[str, Any], path: Path = CORPUS) -> None:
    """Write CORPUS compactly: its long texts as macros, one mutation per line."""
    head = {k: v for k, v in corpus.items() if k != "mutations"}
    lines = [json.dumps(m, ensure_ascii=False) for m in _macros(corpus["mutations"], _pack)]
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    text += ',\n "mutations": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")


# ---------------------------------------------------------------- make corpus


def make_corpus(seed: int, count: int, out: Path, extend: bool) -> dict[str, Any]:
    """Draw mutations, let LiveStore rebuild every mutated log, and write the corpus."""
    catalog = Catalog.bundled("ai-desk")
    events = base_events(BASE)
    corpus: dict[str, Any] = {
        "base": str(BASE.relative_to(ROOT)),
        "baseState": str(BASE_STATE.relative_to(ROOT)),
        "livestore": LIVESTORE_VERSION,
        "seed": seed,
        "mutations": [],
    }
    if extend and out.exists():
        corpus = load_corpus(out)
    have = {json.dumps(m["ops"], sort_keys=True) for m in corpus["mutations"]}
    fresh = [
        m
        for m in draw(seed, count, catalog, events)
        if json.dumps(m["ops"], sort_keys=True) not in have
    ]
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
        work = Path(tmp)
        jobs = []
        for index, mutation in enumerate(fresh):
            store = work / f"m{index}" / "ai-desk"
            apply_ops(BASE, mutation["ops"], store)
            jobs.append((store, work / f"m{index}" / "state.db"))
        answers = rebuild_many(jobs, log=work / "oracle.log") if jobs else []
        for mutation, (_, state), answer in zip(fresh, jobs, answers, strict=True):
            if answer["ok"]:
                mutation["livestore"] = {"ok": True, "rows": state_delta(BASE_STATE, state)}
            else:
                mutation["livestore"] = {"ok": False, "error": answer["error"]}
    start = len(corpus["mutations"])
    for offset, mutation in enumerate(fresh):
        mutation["id"] = f"m{start + offset:04d}"
        corpus["mutations"].append({"id": mutation.pop("id"), **mutation})
    write_corpus(corpus, out)
    return corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--out", type=Path, default=CORPUS)
    parser.add_argument(
        "--extend", action="store_true", help="Keep the corpus' mutations and add new ones."
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="Replay the corpus with the projector and print what differs from LiveStore.",
    )
    args = parser.parse_args(argv)
    if args.report:
        import logging

        import structlog

        from projector.log import configure

        configure("human", "quiet")
        # Its replays go into scratch targets deleted at once: their warnings (`parked`
        # advice naming such a target) would only bury the report.
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
        outcomes = compare_all(load_corpus(args.out)["mutations"])
        for outcome in outcomes:
            if not outcome.ok:
                print(outcome.report())
        print(json.dumps(summary(outcomes), indent=1))
        return 0 if all(o.ok for o in outcomes) else 1
    if not oracle_available():
        print("the oracle needs Node 20 and `make oracle-install`", file=sys.stderr)
        return 1
    corpus = make_corpus(args.seed, args.count, args.out, args.extend)
    refused = sum(1 for m in corpus["mutations"] if not m["livestore"]["ok"])
    print(
        f"wrote {args.out}: {len(corpus['mutations'])} mutations, LiveStore refused {refused}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
