"""The batch's view of the app tables: reads go through to the target, writes stay behind.

Handlers read and write whole rows here instead of running SQL per event. A row is read
from the target the first time a batch touches it (`prefetch` reads the rows of a slice
of events in one query per table); after that the batch works on its own copy, so a row
that changes ten times in a batch is written once, and a row added and deleted within a
batch is never written at all. `flush` writes what changed, table by table in key order
(deletes, then updates, then inserts, each one `executemany`), inside the caller's
transaction, so the rows still commit together with the checkpoint.

``memory_tags`` is derived here from ``memories.tags``: only the tags a memory lost or
gained are written. The batch's parked events and deviation records are written by the
same `flush`.

A batch in which an event's text holds a lone UTF-16 surrogate is marked `lossy`: its
rows are written as LiveStore writes them, each lone surrogate as U+FFFD in text columns
and keys (JavaScript's TextEncoder, which LiveStore's SQLite binding uses); other batches
pay nothing for it. JSON columns hold such a surrogate as JSON.stringify writes it, an
escape (`events.encoding.js_json`), and memory_tags holds U+FFFD for it.

A value SQLite refuses (a CHECK, an integer beyond 64 bits, text that is not Unicode)
surfaces only at `flush`; it is raised as `RowError` so the replay can redo the batch
one event at a time and park exactly the event at fault. Any other database error (a
full disk, an I/O error) is not the events' fault and propagates as it is.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from events.encoding import utf8_text
from projector.target import APP_TABLES, DEVIATIONS_TABLE, PARKED_TABLE

Row = dict[str, Any]
Key = str

#: The tables handlers write, with their key column, in the order a flush writes them
#: (memory_tags is written with memories: see `_tag_changes`).
ROW_TABLES: dict[str, str] = {t: key[0] for t, key in APP_TABLES.items() if t != "memory_tags"}
PARK_SQL = (
    f"INSERT INTO {PARKED_TABLE} (position, eventId, name, argsJson, kind, reason, entity, "
    "seqNumGlobal, seqNumClient, seqNumRebaseGeneration, clientId, sessionId) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
DEVIATION_SQL = (
    f"INSERT INTO {DEVIATIONS_TABLE} (position, eventId, deviation, entity, detail) "
    "VALUES (?, ?, ?, ?, ?)"
)
#: The original of a row written without being read first: it may or may not exist.
UNKNOWN: Any = object()
EMPTY_TAGS = "[]"


def _bindable(key: str) -> bool:
    """KEY is text SQLite can take (no lone surrogate); other keys are read one at a time."""
    if key.isascii():
        return True
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class RowError(Exception):
    """The target refused a value of the batch's rows (not an I/O or capacity failure)."""


class RowStore:
    """Rows of the current batch, over one target connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._columns: dict[str, tuple[str, ...]] = {}
        self._others: dict[str, list[str]] = {}
        self._sql: dict[str, dict[str, str]] = {}
        for table, key in ROW_TABLES.items():
            columns = tuple(r[1] for r in conn.execute(f'PRAGMA table_info("{table}")'))
            others = [c for c in columns if c != key]
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            sets = ", ".join(f"{c} = ?" for c in others)
            self._columns[table] = columns
            self._others[table] = others
            self._sql[table] = {
                "select": f'SELECT {names} FROM "{table}" WHERE {key} = ?',
                "select_many": f'SELECT {names} FROM "{table}" '
                f"WHERE {key} IN (SELECT value FROM json_each(?))",
                "delete": f'DELETE FROM "{table}" WHERE {key} = ?',
                "update": f'UPDATE "{table}" SET {sets} WHERE {key} = ?',
                "insert": f'INSERT INTO "{table}" ({names}) VALUES ({marks})',
                "upsert": f'INSERT INTO "{table}" ({names}) VALUES ({marks}) '
                f"ON CONFLICT ({key}) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in others),
            }
        self.clear()

    def clear(self) -> None:
        """Forget the batch's rows (after a flush, or when its transaction rolls back)."""
        self._rows: dict[str, dict[Key, Row | None]] = {t: {} for t in ROW_TABLES}
        self._original: dict[str, dict[Key, Any]] = {t: {} for t in ROW_TABLES}
        self._dirty: dict[str, set[Key]] = {t: set() for t in ROW_TABLES}
        self._parked: list[tuple[Any, ...]] = []
        self._deviations: list[tuple[Any, ...]] = []
        #: An event of the batch holds a lone surrogate: write rows as LiveStore does.
        self.lossy = False

    def park(self, values: tuple[Any, ...]) -> None:
        """Add a parked event's row (the `_projector_parked` columns, in order)."""
        self._parked.append(values)

    def deviate(self, values: tuple[Any, ...]) -> None:
        """Record that an applied event changed a row unlike LiveStore, on purpose
        (position, eventId, deviation, entity, detail: see projector.deviations)."""
        self._deviations.append(values)

    def _key(self, key: Key) -> Key:
        # Only a lossy batch can hold a key with a lone surrogate (see the module doc).
        return utf8_text(key) if self.lossy and not key.isascii() else key

    def get(self, table: str, key: Key) -> Row | None:
        """The row of TABLE with KEY as the batch sees it, or None. Do not mutate it: `put`."""
        if self.lossy:
            key = self._key(key)
        rows = self._rows[table]
        if key in rows:
            return rows[key]
        found = self.conn.execute(self._sql[table]["select"], (key,)).fetchone()
        row = dict(zip(self._columns[table], found, strict=True)) if found else None
        rows[key] = self._original[table][key] = row
        return row

    def prefetch(self, table: str, keys: set[Key]) -> None:
        """Read the rows of TABLE with KEYS in one query (`get` then finds them here)."""
        rows = self._rows[table]
        wanted = sorted(k for k in keys if k not in rows and _bindable(k))
        if not wanted:
            return
        columns = self._columns[table]
        original = self._original[table]
        for k in wanted:
            rows[k] = original[k] = None
        query = self._sql[table]["select_many"]
        index = columns.index(ROW_TABLES[table])
        for found in self.conn.execute(query, (json.dumps(wanted, ensure_ascii=False),)):
            rows[found[index]] = original[found[index]] = dict(zip(columns, found, strict=True))

    def put(self, table: str, key: Key, row: Row) -> None:
        """Set the whole row of TABLE with KEY (a new dict, holding every column)."""
        self._set(table, key, row)

    def delete(self, table: str, key: Key) -> None:
        self._set(table, key, None)

    def _set(self, table: str, key: Key, row: Row | None) -> None:
        if self.lossy:
            key = self._key(key)
        # A row written without being read first may or may not exist in the target.
        self._original[table].setdefault(key, UNKNOWN)
        self._rows[table][key] = row
        self._dirty[table].add(key)

    def flush(self) -> None:
        """Write the batch's parked events and changed rows to the target, then forget them."""
        if self._parked:
            self.conn.executemany(PARK_SQL, self._parked)
        if self._deviations:
            self.conn.executemany(DEVIATION_SQL, self._deviations)
        try:
            for table in ROW_TABLES:
                if self._dirty[table]:
                    self._flush_table(table)
        except (sqlite3.IntegrityError, sqlite3.InterfaceError, OverflowError, ValueError) as exc:
            # ValueError covers UnicodeEncodeError (a lone surrogate in text).
            raise RowError(str(exc)) from exc
        self.clear()

    def _flush_table(self, table: str) -> None:
        sql = self._sql[table]
        others = self._others[table]
        columns = self._columns[table]
        rows = self._rows[table]
        original = self._original[table]
        deletes: list[tuple[Key]] = []
        updates: list[list[Any]] = []
        inserts: list[list[Any]] = []
        upserts: list[list[Any]] = []
        tag_deletes: list[tuple[Key]] = []
        tag_removals: list[tuple[Key, Any]] = []
        tag_inserts: list[tuple[Key, Any]] = []
        memories = table == "memories"
        for key in sorted(self._dirty[table]):
            row = rows[key]
            before = original[key]
            if row is None:
                if before is not None:
                    deletes.append((key,))
            elif before is None:
                inserts.append([row[c] for c in columns])
            elif before is UNKNOWN:
                upserts.append([row[c] for c in columns])
            elif row is not before:
                updates.append([*(row[c] for c in others), key])
            if memories:
                _tag_changes(key, before, row, tag_deletes, tag_removals, tag_inserts)
        if self.lossy:
            updates = [_as_livestore(r) for r in updates]
            inserts = [_as_livestore(r) for r in inserts]
            upserts = [_as_livestore(r) for r in upserts]
        conn = self.conn
        if deletes:
            conn.executemany(sql["delete"], deletes)
        if updates:
            conn.executemany(sql["update"], updates)
        if upserts:
            conn.executemany(sql["upsert"], upserts)
        if inserts:
            conn.executemany(sql["insert"], inserts)
        if tag_deletes:
            conn.executemany("DELETE FROM memory_tags WHERE memoryId = ?", tag_deletes)
        if tag_removals:
            conn.executemany("DELETE FROM memory_tags WHERE memoryId = ? AND tag = ?", tag_removals)
        if tag_inserts:
            conn.executemany(
                "INSERT OR IGNORE INTO memory_tags (memoryId, tag) VALUES (?, ?)", tag_inserts
            )


def _as_livestore(values: list[Any]) -> list[Any]:
    """VALUES of a row as LiveStore's binding writes them: a lone surrogate as U+FFFD.
    (JSON text holds none: js_json writes it as JSON.stringify does, an escape.)"""
    return [utf8_text(v) if isinstance(v, str) and not v.isascii() else v for v in values]


def _tag(tag: Any) -> Any:
    """A tag as memory_tags holds it: TEXT, so a lone surrogate is U+FFFD."""
    return tag if not isinstance(tag, str) or tag.isascii() else utf8_text(tag)


def _tag_changes(
    key: Key,
    before: Any,
    row: Row | None,
    every: list[tuple[Key]],
    removed: list[tuple[Key, Any]],
    added: list[tuple[Key, Any]],
) -> None:
    """The memory_tags rows to change for memory KEY: tags it lost go, tags it gained
    come, tags it kept stay untouched (each untouched row saves two index writes)."""
    old_text = EMPTY_TAGS if before is None else (None if before is UNKNOWN else before["tags"])
    new_text = EMPTY_TAGS if row is None else row["tags"]
    if old_text == new_text:
        return
    new = json.loads(new_text) if new_text != EMPTY_TAGS else []
    if old_text is None or row is None:  # old tags unknown, or the memory is gone
        if old_text != EMPTY_TAGS:
            every.append((key,))
        added.extend((key, _tag(tag)) for tag in new)
        return
    old = set(json.loads(old_text))
    removed.extend((key, _tag(tag)) for tag in sorted(old.difference(new)))
    added.extend((key, _tag(tag)) for tag in new if tag not in old)


__all__ = ["ROW_TABLES", "RowError", "RowStore"]
