"""The batch's view of the app tables: reads go through to the target, writes stay behind.

Handlers read and write whole rows here instead of running SQL per event. A row is read
from the target the first time a batch touches it (`prefetch` reads the rows of a slice
of events in one query per table); after that the batch works on its own copy, so a row
that changes ten times in a batch is written once, and a row added and deleted within a
batch is never written at all. A first replay does not look up a key it never wrote
(`KeyFilter`: most of its lookups are new rows' keys). `flush` writes what changed,
table by table in key order (deletes, then updates, then inserts, each one
`executemany`), inside the caller's transaction, so the rows still commit together with
the checkpoint.

A derived table (one row per element of a parent's JSON-array column, like ai-desk's
``memory_tags``) is kept here: only the elements a parent row lost or gained are written.
The batch's parked events and deviation records are written by the same `flush`.

A batch in which an event's text holds a lone UTF-16 surrogate is marked `lossy`: its
rows are written as LiveStore writes them, each lone surrogate as U+FFFD in text columns
and keys (JavaScript's TextEncoder, which LiveStore's SQLite binding uses); other batches
pay nothing for it. JSON columns hold such a surrogate as JSON.stringify writes it, an
escape (`events.encoding.js_json`), and a derived table holds U+FFFD for it.

A value SQLite refuses (a CHECK, an integer beyond 64 bits, text that is not Unicode)
surfaces only at `flush`; it is raised as `RowError` so the replay can redo the batch
one event at a time and park exactly the event at fault. Any other database error (a
full disk, an I/O error) is not the events' fault and propagates as it is.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import msgspec

from events.encoding import utf8_text
from events.fastpath import loads
from events.validation import sample
from projector.errors import Unstorable
from projector.target import DEVIATIONS_TABLE, PARKED_TABLE, Table
from projector.writer import ROW_ERRORS, Op, row_error

Row = dict[str, Any]
Key = Any  # a row's key value: text, or an integer for an INTEGER key
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
UNKNOWN: Final[Any] = object()
EMPTY_ARRAY: Final = "[]"
#: Bits of the filter of keys a replay has written (`KeyFilter`): 2^23 bits, 1 MiB.
FILTER_BITS = 1 << 23


class KeyFilter:
    """The text keys a run has written into tables that were empty when it began: a key
    it never wrote cannot be there, and is not looked up (a new row's key, as ai-desk's
    v1.MemoryAdded brings, is most of a first replay's lookups).

    One bit a key, at the key's hash (a Bloom filter with one hash function), for every
    filtered table: a bit set by another key (about 4% of lookups at 300,000 keys) only
    means a lookup that finds nothing, as without the filter. Only text keys are filtered,
    and only where SQLite compares them as Python does (`filterable`): a key column of
    TEXT affinity under the BINARY collation (https://sqlite.org/datatype3.html, sections
    3 and 7). A table whose rows are written with a key of another type stops being
    filtered, as SQLite would store it converted.
    """

    def __init__(self, tables: set[str]):
        #: The tables filtered: empty when the run began, and written only by it.
        self.tables = tables
        self._bits = bytearray(FILTER_BITS // 8) if tables else bytearray()

    def add(self, table: str, keys: set[Key]) -> None:
        """Note KEYS as written into TABLE (a flush)."""
        if table not in self.tables:
            return
        bits = self._bits
        mask = FILTER_BITS - 1
        for key in keys:
            if type(key) is not str:
                self.tables.discard(table)
                return
            h = hash(key) & mask
            bits[h >> 3] |= 1 << (h & 7)

    def absent(self, table: str, keys: Iterable[Key]) -> list[Key]:
        """The KEYS TABLE surely holds no row with."""
        if table not in self.tables:
            return []
        bits = self._bits
        mask = FILTER_BITS - 1
        found = []
        for key in keys:
            if type(key) is str:
                h = hash(key) & mask
                if not bits[h >> 3] & (1 << (h & 7)):
                    found.append(key)
        return found


def filterable(conn: sqlite3.Connection, table: str, key: str) -> bool:
    """Whether TABLE is empty and compares its KEY column's text as Python compares str:
    the column's declared type has TEXT affinity (it holds a key bound as text unchanged)
    and its primary key index uses the BINARY collation."""
    if conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is not None:
        return False
    declared = next(
        (str(r[2]).upper() for r in conn.execute(f'PRAGMA table_info("{table}")') if r[1] == key),
        "",
    )
    if "INT" in declared or not any(t in declared for t in ("CHAR", "CLOB", "TEXT")):
        return False
    for index in conn.execute(f'PRAGMA index_list("{table}")'):
        if index[3] == "pk":
            collations = [
                r[4] for r in conn.execute(f'PRAGMA index_xinfo("{index[1]}")') if r[2] == key
            ]
            return collations == ["BINARY"]
    return False


def _bindable(key: Key) -> bool:
    """KEY is text SQLite can take (no lone surrogate); other keys are read one at a time."""
    if type(key) is not str:
        return type(key) is int
    if key.isascii():
        return True
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class RowError(Exception):
    """The target refused a value of the batch's rows (not an I/O or capacity failure)."""


def _sorted(keys: set[Key]) -> list[Key]:
    """KEYS in key order (a hostile mix of text and integers in repr order)."""
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=repr)


class RowStore:
    """Rows of the current batch, over one target connection.

    TABLES are the app's tables (`projector.target.read_tables`): handlers address rows of
    those with a single-column key; derived tables follow their parent's column.
    """

    def __init__(self, conn: sqlite3.Connection, tables: dict[str, Table]):
        self.conn = conn
        #: Handler-written tables and their key column, in the order a flush writes them.
        self.keys: dict[str, str] = {
            t.name: t.row_key for t in tables.values() if t.row_key and t.derived is None
        }
        #: Derived tables by parent table: the parent's column and the derived rows' SQL.
        self._derived: dict[str, list[tuple[str, dict[str, str]]]] = {}
        #: The same, with each derived table's name (what `defer` filters).
        self._all_derived: dict[str, list[tuple[str, str, dict[str, str]]]] = {}
        #: The same, for the check of each row put (`_check_arrays`): the parent's column,
        #: its name for messages, the derived table, whether its element column takes NULL.
        self._arrays: dict[str, list[tuple[str, str, str, bool]]] = {}
        for t in tables.values():
            if t.derived is not None:
                d = t.derived
                sql = {
                    "delete_all": f'DELETE FROM "{t.name}" WHERE "{d.key}" = ?',
                    "delete": f'DELETE FROM "{t.name}" WHERE "{d.key}" = ? AND "{d.element}" = ?',
                    # An element twice in one array is one row; any other constraint (NOT
                    # NULL: a null element) refuses the row, and its event is parked, where
                    # OR IGNORE dropped it without a word.
                    "insert": f'INSERT INTO "{t.name}" ("{d.key}", "{d.element}") '
                    "VALUES (?, ?) ON CONFLICT DO NOTHING",
                }
                self._all_derived.setdefault(d.parent, []).append((t.name, d.column, sql))
                null_ok = _holds_null(conn, t.name, d.element)
                self._arrays.setdefault(d.parent, []).append(
                    (d.column, f"{d.parent}.{d.column}", t.name, null_ok)
                )
        self._columns: dict[str, tuple[str, ...]] = {}
        self._others: dict[str, list[str]] = {}
        #: Row statements' table and the column each parameter binds, in order.
        self._bound: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._sql: dict[str, dict[str, str]] = {}
        self._journal: list[tuple[str, Key, Any, Any, bool]] | None = None
        self.defer(())
        self.filter = KeyFilter({t for t, k in self.keys.items() if filterable(conn, t, k)})
        for table, key in self.keys.items():
            columns = tables[table].columns
            others = [c for c in columns if c != key]
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" for _ in columns)
            sets = ", ".join(f'"{c}" = ?' for c in others)
            key = f'"{key}"'
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
                f"ON CONFLICT ({key}) "
                # A table of its key alone has nothing to update.
                + ("DO UPDATE SET " if others else "DO NOTHING")
                + ", ".join(f'"{c}" = excluded."{c}"' for c in others),
                "select_where": f'SELECT {names} FROM "{table}" WHERE ',
            }
            statements = self._sql[table]
            self._bound[statements["insert"]] = (table, columns)
            self._bound[statements["upsert"]] = (table, columns)
            self._bound[statements["update"]] = (table, (*others, self.keys[table]))
        self.clear()

    def defer(self, tables: Iterable[str]) -> None:
        """Write no rows of the derived TABLES (names) from now on: a bulk load builds them
        at its end from their parents' final rows (`build_derived`). Their parents' rows
        are still checked as they are put (`_check_arrays`), so events are refused alike."""
        deferred = set(tables)
        self._derived = {}
        for parent, derived in self._all_derived.items():
            kept = [(column, sql) for name, column, sql in derived if name not in deferred]
            if kept:
                self._derived[parent] = kept

    def clear(self) -> None:
        """Forget the batch's rows (after a flush, or when its transaction rolls back)."""
        self._rows: dict[str, dict[Key, Row | None]] = {t: {} for t in self.keys}
        self._original: dict[str, dict[Key, Any]] = {t: {} for t in self.keys}
        self._dirty: dict[str, set[Key]] = {t: set() for t in self.keys}
        self._parked: list[tuple[Any, ...]] = []
        self._deviations: list[tuple[Any, ...]] = []
        #: The derived tables' parent texts the batch's rows were put with, parsed.
        self._parsed: dict[str, list[Any]] = {}
        #: An event of the batch holds a lone surrogate: write rows as LiveStore does.
        self.lossy = False
        self._journal = None

    def park(self, values: tuple[Any, ...]) -> None:
        """Add a parked event's row (the `_projector_parked` columns, in order)."""
        self._parked.append(values)

    def deviate(self, values: tuple[Any, ...]) -> None:
        """Record that an applied event changed a row unlike LiveStore, on purpose
        (position, eventId, deviation, entity, detail: see projector.deviations)."""
        self._deviations.append(values)

    def _key(self, key: Key) -> Key:
        # Only a lossy batch can hold a key with a lone surrogate (see the module doc).
        return utf8_text(key) if type(key) is str and not key.isascii() else key

    def get(self, table: str, key: Key) -> Row | None:
        """The row of TABLE with KEY as the batch sees it, or None. Do not mutate it: `put`."""
        if self.lossy:
            key = self._key(key)
        rows = self._rows[table]
        if key in rows:
            return rows[key]
        if self.filter.absent(table, (key,)):
            rows[key] = self._original[table][key] = None
            return None
        found = self.conn.execute(self._sql[table]["select"], (key,)).fetchone()
        row = dict(zip(self._columns[table], found, strict=True)) if found else None
        rows[key] = self._original[table][key] = row
        return row

    def prefetch(self, table: str, keys: set[Key]) -> None:
        """Read the rows of TABLE with KEYS in one query (`get` then finds them here)."""
        rows = self._rows[table]
        original = self._original[table]
        unread = {k for k in keys if k not in rows and _bindable(k)}
        for k in self.filter.absent(table, unread):  # keys this run never wrote: no row
            rows[k] = original[k] = None
            unread.discard(k)
        wanted = _sorted(unread)
        if not wanted:
            return
        columns = self._columns[table]
        for k in wanted:
            rows[k] = original[k] = None
        query = self._sql[table]["select_many"]
        index = columns.index(self.keys[table])
        width = len(columns)
        for found in self.conn.execute(query, (json.dumps(wanted, ensure_ascii=False),)):
            row: Row = {}
            for at in range(width):  # the SELECT's columns: no zip (a call with keywords)
                row[columns[at]] = found[at]
            rows[found[index]] = original[found[index]] = row

    def put(self, table: str, key: Key, row: Row) -> None:
        """Set the whole row of TABLE with KEY (a new dict, holding every column)."""
        self._set(table, key, row)

    def delete(self, table: str, key: Key) -> None:
        self._set(table, key, None)

    def matching(self, table: str, where: dict[str, Any]) -> list[tuple[Key, Row]]:
        """Every row of TABLE whose columns equal WHERE's values (SQL ``IS``), as the batch
        sees it: the target's rows not yet read are read in one query, then the batch's
        own rows are filtered. For a bulk update or delete."""
        for column, value in where.items():
            if not _comparable(value):  # an event's arg no row can hold (a JSON object)
                raise ValueError(
                    f"{table}.{column}: a {type(value).__name__} matches no row (a column "
                    "holds text, numbers, bytes or NULL)"
                )
        rows = self._rows[table]
        original = self._original[table]
        columns = self._columns[table]
        index = columns.index(self.keys[table])
        if self.lossy:
            # Text with a lone surrogate matches as LiveStore's binding stores and binds
            # it, with U+FFFD, where it could not be bound at all.
            where = {c: _as_stored(v) for c, v in where.items()}
        sql = self._sql[table]["select_where"] + " AND ".join(f'"{c}" IS ?' for c in where)
        for found in self.conn.execute(sql, tuple(where.values())):
            key = found[index]
            if key not in rows:
                rows[key] = original[key] = dict(zip(columns, found, strict=True))
        if self.lossy:  # the batch's own rows are not written so yet: compared so
            return [
                (key, row)
                for key, row in rows.items()
                if row is not None and all(_as_stored(row[c]) == v for c, v in where.items())
            ]
        if len(where) == 1:  # the common case ("clear completed"), without a generator a row
            ((column, value),) = where.items()
            return [
                (key, row) for key, row in rows.items() if row is not None and row[column] == value
            ]
        items = where.items()
        return [
            (key, row)
            for key, row in rows.items()
            if row is not None and all(row[c] == v for c, v in items)
        ]

    def referenced(self, table: str, column: str, value: Any) -> bool:
        """Whether a row of TABLE, as the batch sees it, has COLUMN = VALUE (a foreign key
        pointing at a row about to be deleted)."""
        rows = self._rows[table]
        for row in rows.values():
            if row is not None and row[column] == value:
                return True
        key = self.keys[table]
        for (found,) in self.conn.execute(
            f'SELECT "{key}" FROM "{table}" WHERE "{column}" = ?', (value,)
        ):
            if found not in rows:
                return True
        return False

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo every row change made inside, should it raise (for handlers that write
        more than once: an event changes all its rows or none)."""
        outer = self._journal
        journal: list[tuple[str, Key, Any, Any, bool]] = []
        self._journal = journal
        try:
            yield
        except BaseException:
            for table, key, row, original, dirty in journal[::-1]:
                self._rows[table][key] = row
                if original is _ABSENT:
                    self._original[table].pop(key, None)
                    self._rows[table].pop(key, None)
                if not dirty:
                    self._dirty[table].discard(key)
            raise
        finally:
            self._journal = outer
            if outer is not None:
                outer.extend(journal)

    def _set(self, table: str, key: Key, row: Row | None) -> None:
        if row is not None and table in self._arrays:
            _check_arrays(row, self._arrays[table], self._parsed)
        if self.lossy:
            key = self._key(key)
        if self._journal is not None:
            self._journal.append(
                (
                    table,
                    key,
                    self._rows[table].get(key),
                    self._original[table].get(key, _ABSENT),
                    key in self._dirty[table],
                )
            )
        # A row written without being read first may or may not exist in the target.
        self._original[table].setdefault(key, UNKNOWN)
        self._rows[table][key] = row
        self._dirty[table].add(key)

    def flush(self, into: list[Op] | None = None) -> None:
        """Write the batch's parked events and changed rows to the target, then forget them.

        With INTO, the statements are appended to it instead, for `projector.writer` to
        run (in order, in one transaction; the rows' statements marked as such).
        """
        statements = self._row_statements()
        if into is not None:
            if self._parked:
                into.append(("many", PARK_SQL, self._parked, False))
            if self._deviations:
                into.append(("many", DEVIATION_SQL, self._deviations, False))
            into.extend(("many", sql, rows, True) for sql, rows in statements)
            self.clear()
            return
        if self._parked:
            self.conn.executemany(PARK_SQL, self._parked)
        if self._deviations:
            self.conn.executemany(DEVIATION_SQL, self._deviations)
        sql = ""
        try:
            for sql, rows in statements:
                self.conn.executemany(sql, rows)
        except ROW_ERRORS as exc:
            # ValueError covers UnicodeEncodeError (a lone surrogate in text).
            if not row_error(exc):
                raise
            raise RowError(self._row_error(sql, exc)) from exc
        self.clear()

    def _row_error(self, sql: str, exc: Exception) -> str:
        """EXC, raised by the row statement SQL, as a parked event's reason: a value the
        sqlite3 module cannot bind names its column (``items.name: type 'dict' is not
        supported``), where the module numbers it (``Error binding parameter 2``)."""
        text = str(exc)
        found = _BINDING.match(text)
        where = self._bound.get(sql)
        if found is None or where is None or not 0 < int(found[1]) <= len(where[1]):
            return text
        table, columns = where
        return f"{table}.{columns[int(found[1]) - 1]}: {found[2]}"

    def _row_statements(self) -> list[tuple[str, list[Any]]]:
        """(sql, rows for executemany) writing every changed row, table by table in the
        catalog's order, each table's derived rows after it (their arrays were checked as
        each row was put: `_check_arrays`)."""
        statements: list[tuple[str, list[Any]]] = []
        for table in self.keys:
            if self._dirty[table]:
                self.filter.add(table, self._dirty[table])
                self._table_statements(table, statements)
        return statements

    def _table_statements(self, table: str, statements: list[tuple[str, list[Any]]]) -> None:
        sql = self._sql[table]
        others = self._others[table]
        columns = self._columns[table]
        rows = self._rows[table]
        original = self._original[table]
        deletes: list[tuple[Key]] = []
        updates: list[list[Any]] = []
        inserts: list[list[Any]] = []
        upserts: list[list[Any]] = []
        derived = self._derived.get(table, ())
        # Each derived table's column and its rows to delete (all of a parent's, one
        # element's) and to insert; looped over a row at a time without a zip per row.
        changes: list[
            tuple[str, list[tuple[Key]], list[tuple[Key, Any]], list[tuple[Key, Any]]]
        ] = [(column, [], [], []) for column, _ in derived]
        for key in _sorted(self._dirty[table]):
            row = rows[key]
            before = original[key]
            if row is None:
                if before is not None:
                    deletes.append((key,))
            elif before is None:
                inserts.append([row[c] for c in columns])
            elif before is UNKNOWN:
                upserts.append([row[c] for c in columns])
            elif row is not before and others:
                update = [row[c] for c in others]
                update.append(key)
                updates.append(update)
            for column, every, removed, added in changes:
                _element_changes(column, key, before, row, every, removed, added, self._parsed)
        if self.lossy:
            updates = [_as_livestore(r) for r in updates]
            inserts = [_as_livestore(r) for r in inserts]
            upserts = [_as_livestore(r) for r in upserts]
        written: list[tuple[str, list[Any]]] = [
            ("delete", deletes),
            ("update", updates),
            ("upsert", upserts),
            ("insert", inserts),
        ]
        statements.extend((sql[verb], values) for verb, values in written if values)
        for (_, derived_sql), (_, every, removed, added) in zip(derived, changes, strict=True):
            derived_written: list[tuple[str, list[Any]]] = [
                ("delete_all", every),
                ("delete", removed),
                ("insert", added),
            ]
            statements.extend(
                (derived_sql[verb], values) for verb, values in derived_written if values
            )


#: The sqlite3 module's message for a value it cannot bind (Python 3.11), 1-based.
_BINDING = re.compile(r"Error binding parameter (\d+)(?: - |: )(.*)", re.DOTALL)

#: The journal's mark for a row the batch had not seen before the savepoint.
_ABSENT: Final[Any] = object()


def _comparable(value: Any) -> bool:
    """Whether VALUE is one a column can hold, so SQLite can compare it (`matching`)."""
    return value is None or type(value) in (str, int, float, bool, bytes)


def _as_stored(value: Any) -> Any:
    """VALUE as a text column stores it in a lossy batch: a lone surrogate as U+FFFD."""
    return utf8_text(value) if type(value) is str and not value.isascii() else value


def _as_livestore(values: list[Any]) -> list[Any]:
    """VALUES of a row as LiveStore's binding writes them: a lone surrogate as U+FFFD.
    (JSON text holds none: js_json writes it as JSON.stringify does, an escape.)"""
    return [_as_stored(v) for v in values]


def derived_element(element: Any) -> Any:
    """An element of a parent's JSON array as its derived row binds it: text with a lone
    surrogate as U+FFFD (as every text column); an integer beyond SQLite's 64 bits as
    the float SQLite's JSON functions read it as (JSON.stringify writes 1e20 as 21
    digits), which the sqlite3 module could not bind at all."""
    if type(element) is str:
        return element if element.isascii() else utf8_text(element)
    if type(element) is int and not -(2**63) <= element < 2**63:
        return float(element)
    return element


def build_derived(conn: sqlite3.Connection, table: Table, parent: Table) -> int:
    """Fill derived TABLE from every row of PARENT as it stands (TABLE is emptied first):
    one row per distinct element of each row's JSON array, as a replay writing row by
    row leaves it (`_element_changes`); the two agree for the tables
    `projector.target.deferrable_derived` accepts. Returns the rows written (count).

    SQLite's json_each reads the text elements of the arrays without an escape, in the
    parent's key order, so the derived table's pages are written once, in order. The
    arrays with an escape (a lone surrogate's among them), and those that may hold
    another element (a number, a boolean or null: an array in which a `[` or a `,` is
    followed by anything but a `"`), are parsed here, whole, and bound as a put row's are
    (`derived_element`). An element of both sets is one row: the element column has TEXT
    affinity and compares under BINARY (`deferrable_derived`), so two elements that are
    one row are stored as the same text, whichever came first. A parent value that is no
    JSON array, and an element no row can hold (an object, an array, a null where the
    element column takes none), give no rows: only a hand edit makes one (a put row is
    checked: `_check_arrays`), and `verify` names it. Raises sqlite3.Error (a full
    disk)."""
    d = table.derived
    if d is None or parent.row_key is None:
        raise ValueError(f"{table.name} is no derived table of {parent.name}")
    key, column = f'p."{parent.row_key}"', f'p."{d.column}"'
    escaped = f"instr({column}, '\\') > 0"
    insert = f'INSERT INTO "{table.name}" ("{d.key}", "{d.element}") '
    before = conn.total_changes
    conn.execute(f'DELETE FROM "{table.name}"')
    deleted = conn.total_changes - before
    # CASE: json_each refuses a BLOB and malformed JSON, and no such value is an array.
    conn.execute(
        f'{insert}SELECT {key}, j.value FROM "{parent.name}" AS p NOT INDEXED, json_each('
        f"CASE WHEN typeof({column}) = 'text' AND NOT {escaped} AND json_valid({column}) "
        f"AND json_type({column}) = 'array' THEN {column} ELSE '[]' END) AS j "
        f"WHERE j.type = 'text' ORDER BY {key} ON CONFLICT DO NOTHING"
    )
    null_ok = _holds_null(conn, table.name, d.element)
    rows: list[tuple[Any, Any]] = []
    for found, text in conn.execute(
        f'SELECT {key}, {column} FROM "{parent.name}" AS p '
        f"WHERE typeof({column}) = 'text' AND ({escaped} OR {column} GLOB '*[[,][^]\"]*')"
    ):
        for element in _stored_array(text) or ():
            if _element_fault(element, table.name, null_ok) is None:
                rows.append((found, derived_element(element)))
    conn.executemany(insert + "VALUES (?, ?) ON CONFLICT DO NOTHING", rows)
    return conn.total_changes - before - deleted


def _holds_null(conn: sqlite3.Connection, table: str, column: str) -> bool:
    """Whether COLUMN of TABLE takes NULL: not declared NOT NULL, nor a key column of a
    WITHOUT ROWID table (https://sqlite.org/withoutrowid.html, section 2)."""
    found = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    without_rowid = found is not None and "WITHOUTROWID" in re.sub(r"\s", "", found[0]).upper()
    for _, name, _, notnull, _, pk in conn.execute(f'PRAGMA table_info("{table}")'):
        if name == column:
            return not notnull and not (without_rowid and pk)
    return True


def _check_arrays(
    row: Row, arrays: list[tuple[str, str, str, bool]], parsed: dict[str, list[Any]]
) -> None:
    """Raise Unstorable when a derived table's parent column of ROW (ARRAYS: see
    `RowStore._arrays`) is no JSON array (or no JSON: a hooks.py handler may put any
    text), or holds an element its derived table cannot store: an object or an array,
    NaN or an infinity, or a null where the element column takes none. Checked as each
    row is put, so that the event is refused whatever the batch size (a later event of
    the batch overwriting the row hid it from the write). msgspec parses the text (a
    third of a microsecond for a few tags, as fast as screening it); text it refuses is
    parsed by ``json`` (a lone surrogate's escape, which a lossy batch holds), which
    refuses NaN and the infinities. A text that passes goes into PARSED with its elements
    (the batch's differences then read them there: `_element_changes`)."""
    for column, where, derived, null_ok in arrays:
        text = row.get(column)
        if type(text) is not str or not text.startswith("["):
            shown = sample(text) if type(text) is not str else text[:60]
            raise Unstorable(
                f"{where}: {shown} is not a JSON array, which {derived} takes its rows from"
            )
        try:
            elements = _DECODE(text)
        except Exception:
            try:
                elements = json.loads(text, parse_constant=_no_constant)
            except (ValueError, RecursionError):
                raise Unstorable(f"{where}: {text[:60]} is not JSON") from None
        if type(elements) is not list:
            raise Unstorable(f"{where}: {text[:60]} is not a JSON array")
        for element in elements:
            if type(element) is str:
                continue
            fault = _element_fault(element, derived, null_ok)
            if fault is not None:
                raise Unstorable(f"{where}: {fault}")
        parsed[text] = elements


def _element_fault(element: Any, derived: str, null_ok: bool) -> str | None:
    """Why no row of DERIVED can hold ELEMENT, an element of a parent's parsed array, or
    None when one can: an object or an array, a null where the element column takes none
    (NULL_OK False), NaN or an infinity. The rule of a put row (`_check_arrays`) and of a
    bulk load's fill (`build_derived`)."""
    if not _comparable(element):
        return (
            f"its array holds a {type(element).__name__}, which no row of {derived} can "
            "hold (text, numbers or NULL)"
        )
    if element is None and not null_ok:
        return f"its array holds null, which {derived} cannot hold (its element column is NOT NULL)"
    if type(element) is float and not math.isfinite(element):
        return f"its array holds {element}, which is no JSON number"
    return None


_DECODE: Final = msgspec.json.Decoder().decode


def _no_constant(name: str) -> Any:
    """``json``'s parse_constant: NaN, Infinity and -Infinity are no JSON."""
    raise ValueError(f"{name} is no JSON")


def _element_changes(
    column: str,
    key: Key,
    before: Any,
    row: Row | None,
    every: list[tuple[Key]],
    removed: list[tuple[Key, Any]],
    added: list[tuple[Key, Any]],
    parsed: dict[str, list[Any]],
) -> None:
    """The derived rows to change for parent KEY's JSON array COLUMN: elements it lost
    go, elements it gained come, elements it kept stay untouched (each untouched row saves
    two index writes). PARSED: the texts the batch's rows were put with, parsed."""
    old_text = EMPTY_ARRAY if before is None else (None if before is UNKNOWN else before[column])
    new_text = EMPTY_ARRAY if row is None else row[column]
    if old_text == new_text:
        return
    # Every row was put checked (`_check_arrays`): NEW_TEXT is an array of scalars.
    new = [] if new_text == EMPTY_ARRAY else parsed.get(new_text) or loads(new_text)
    old_list = [] if old_text is None or row is None else _stored_array(old_text)
    if (
        old_text is None
        or row is None
        or old_list is None
        or not (_all_text(new) and _all_text(old_list))
    ):
        # Old elements unknown (the stored text is no array: edited by hand), or the
        # parent is gone; or a number, boolean or null among them, which Python and the
        # column compare otherwise (True == 1 in Python, where a TEXT column holds true,
        # 1 and '1' alike as '1'): its rows are written anew.
        if old_text != EMPTY_ARRAY:
            every.append((key,))
        for tag in new:
            added.append((key, derived_element(tag)))
        return
    # Compared as the rows hold them: two texts with a lone surrogate each may be one row
    # (U+FFFD), which one of them leaving must not delete while the other stays.
    old = {derived_element(tag) for tag in old_list}
    stored = [derived_element(tag) for tag in new]
    for tag in sorted(old.difference(stored)):
        removed.append((key, tag))
    for tag in stored:
        if tag not in old:
            added.append((key, tag))


def _stored_array(text: Any) -> list[Any] | None:
    """The elements of TEXT, a parent row's stored column, or None when it is no JSON
    array (a target edited by hand: the row was put checked, `_check_arrays`)."""
    try:
        found = loads(text)
    except (ValueError, TypeError, RecursionError):
        return None
    return found if type(found) is list else None


def _all_text(elements: list[Any]) -> bool:
    """Whether every one of ELEMENTS is text (a derived table's usual elements: tags)."""
    for element in elements:
        if type(element) is not str:
            return False
    return True


__all__ = ["RowError", "RowStore", "build_derived", "derived_element"]
