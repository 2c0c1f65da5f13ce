"""Sources: LiveStore's SQLite eventlog (formats 6 and 4), its JSON export, and NDJSON.

`open_source` detects the format from the content, never from the file name, and opens
it read-only. Every source streams `Event` envelopes in LiveStore's replay order
(``seqNumGlobal, seqNumClient``) with bounded memory.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ijson

from events.encoding import js_json
from events.envelope import Event, format_event_id
from events.errors import SourceError

SQLITE_MAGIC = b"SQLite format 3\x00"
EVENTLOG_FILE = re.compile(r"^eventlog@(\d+)\.db$")
#: Rows fetched per read transaction: short transactions never hold the live app's
#: writer off for long, and memory stays bounded.
PAGE_ROWS = 2000

KIND_SQLITE = "sqlite-eventlog"
KIND_EXPORT = "json-export"
KIND_NDJSON = "ndjson"


@dataclass
class Source:
    """A readable event log: what it is, and a way to stream its events."""

    path: Path
    kind: str
    format_version: int | None
    store_id: str | None
    details: dict[str, Any] = field(default_factory=dict)

    def events(self) -> Iterator[Event]:  # pragma: no cover - overridden
        raise NotImplementedError

    def event_names(self) -> set[str]:
        """The distinct event names in the log (to pick the schema catalog)."""
        return {e.name for e in self.events() if isinstance(e.name, str)}

    def name_counts(self) -> dict[str, tuple[int, int]]:
        """``{name: (events, events the writing app did not know)}``: LiveStore stores an
        event its schema does not define with ``schemaHash = -1`` and skips it on replay
        (FORMAT.md section 2: ``common/schema/schema.ts:15``, ``materialize-event.ts:42-54``)."""
        counts: dict[str, list[int]] = {}
        for e in self.events():
            if isinstance(e.name, str):
                seen = counts.setdefault(e.name, [0, 0])
                seen[0] += 1
                seen[1] += e.schema_hash == -1
        return {name: (n, unknown) for name, (n, unknown) in counts.items()}

    def count(self) -> int | None:
        """How many events the log holds, when that is known without reading it all."""
        return None

    def close(self) -> None:
        """Release the source (a no-op for files read per pass)."""

    def describe(self) -> str:
        version = f" v{self.format_version}" if self.format_version is not None else ""
        return f"{self.kind}{version}"


def open_source(path: str | Path) -> Source:
    """Detect and open SOURCE read-only: a store directory, an eventlog file, or an export."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file or directory")
    if p.is_dir():
        return SqliteEventlog(_pick_eventlog(p))
    try:
        with p.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise SourceError(f"{p}: cannot read: {exc.strerror}") from None
    if not head:
        raise SourceError(f"{p}: empty file, not an event log")
    if head.startswith(SQLITE_MAGIC):
        return SqliteEventlog(p)
    if head.startswith(SQLITE_MAGIC[:6]):
        raise SourceError(f"{p}: truncated or corrupt SQLite file (header is damaged)")
    text_head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text_head.startswith(b"{"):
        return _open_json(p)
    raise SourceError(f"{p}: not a LiveStore event log (neither SQLite nor a JSON/NDJSON export)")


def _pick_eventlog(directory: Path) -> Path:
    """The store directory's history is its highest-format ``eventlog@N.db``."""
    found = []
    for child in directory.iterdir():
        match = EVENTLOG_FILE.match(child.name)
        if match and child.is_file():
            found.append((int(match.group(1)), child))
    if not found:
        stores = _store_folders(directory)
        hint = (
            f"; it holds the store folder {stores[0]}: try that"
            if len(stores) == 1
            else f"; it holds store folders: {', '.join(str(s) for s in stores[:5])}"
            if stores
            else " (state files are not the history)"
        )
        raise SourceError(f"{directory}: no eventlog@N.db in this directory{hint}")
    return max(found)[1]


def _store_folders(directory: Path) -> list[Path]:
    """Sub-folders of DIRECTORY that are LiveStore store folders (hold an eventlog@N.db):
    LiveStore puts each store in ``<baseDirectory>/<storeId>/`` (FORMAT.md section 1)."""
    try:
        children = sorted(c for c in directory.iterdir() if c.is_dir())
    except OSError:
        return []
    return [
        c for c in children if any(EVENTLOG_FILE.match(f.name) for f in c.iterdir() if f.is_file())
    ]


# ---------------------------------------------------------------- SQLite eventlog

V6_COLUMNS = (
    "seqNumGlobal",
    "seqNumClient",
    "seqNumRebaseGeneration",
    "parentSeqNumGlobal",
    "parentSeqNumClient",
    "name",
    "argsJson",
    "clientId",
    "sessionId",
    "schemaHash",
)
REQUIRED_COLUMNS = {
    "seqNumGlobal",
    "seqNumClient",
    "parentSeqNumGlobal",
    "parentSeqNumClient",
    "name",
    "argsJson",
}


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open a SQLite file so that nothing, not even a journal, can be written.

    On a read-only file system the file is opened ``immutable=1``: a WAL-mode database
    (a projector target) cannot otherwise be read there, since its ``-shm`` file cannot be
    created (https://sqlite.org/wal.html#readonly), and nothing can change it there anyway.
    """
    uri = path.resolve().as_uri() + "?mode=ro"
    if _read_only_fs(path):
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class SqliteEventlog(Source):
    """LiveStore's ``eventlog@N.db``: format 6 (0.4.x) or 4 (0.3.x, no rebase generation)."""

    def __init__(self, path: Path):
        match = EVENTLOG_FILE.match(path.name)
        store_id = path.resolve().parent.name if match else None
        super().__init__(path=path, kind=KIND_SQLITE, format_version=None, store_id=store_id)
        try:
            with open(path, "rb") as fh:
                if fh.read(16) != SQLITE_MAGIC:
                    raise SourceError(f"{path}: not a SQLite database")
            self._conn = connect_readonly(path)
            self._probe()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            # UnicodeDecodeError: a damaged schema (sqlite_master) holds bytes that are not UTF-8.
            raise SourceError(f"{path}: corrupt or unreadable SQLite file ({exc})") from None

    def _probe(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA query_only = 1")
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "eventlog" not in tables:
            raise SourceError(f"{self.path}: SQLite database without an eventlog table")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(eventlog)")}
        missing = REQUIRED_COLUMNS - columns
        if missing:
            raise SourceError(
                f"{self.path}: eventlog table lacks column(s) {', '.join(sorted(missing))}"
            )
        self._has_generation = "seqNumRebaseGeneration" in columns
        self._has_schema_hash = "schemaHash" in columns
        self.format_version = 6 if self._has_generation else 4
        match = EVENTLOG_FILE.match(self.path.name)
        if match:
            self.format_version = int(match.group(1))
        self._select = ", ".join(
            (c if c in columns else "NULL")
            if c != "seqNumRebaseGeneration" or self._has_generation
            else "NULL"
            for c in V6_COLUMNS
        )
        dup = conn.execute(
            "SELECT seqNumGlobal, seqNumClient, COUNT(*) FROM eventlog "
            "GROUP BY seqNumGlobal, seqNumClient HAVING COUNT(*) > 1 LIMIT 1"
        ).fetchone()
        if dup:
            raise SourceError(
                f"{self.path}: duplicate event position {format_event_id(dup[0], dup[1], None)} "
                f"({dup[2]} rows); LiveStore identifies events by (global, client)"
            )
        head = conn.execute(
            "SELECT seqNumGlobal, seqNumClient FROM eventlog "
            "ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1"
        ).fetchone()
        self._head = tuple(head) if head else None
        if "__livestore_sync_status" in tables:
            row = conn.execute("SELECT * FROM __livestore_sync_status LIMIT 1").fetchone()
            if row:
                self.details["syncHead"] = row[0]

    def events(self) -> Iterator[Event]:
        """Stream the rows that existed when the source was opened, in replay order."""
        if self._head is None:
            return
        head_g, head_c = self._head
        position = 0
        last: tuple[int, int] | None = None
        sql_first = (
            f"SELECT {self._select} FROM eventlog "
            "WHERE (seqNumGlobal, seqNumClient) <= (?, ?) "
            "ORDER BY seqNumGlobal, seqNumClient LIMIT ?"
        )
        sql_next = (
            f"SELECT {self._select} FROM eventlog "
            "WHERE (seqNumGlobal, seqNumClient) > (?, ?) "
            "AND (seqNumGlobal, seqNumClient) <= (?, ?) "
            "ORDER BY seqNumGlobal, seqNumClient LIMIT ?"
        )
        while True:
            try:
                if last is None:
                    rows = self._conn.execute(sql_first, (head_g, head_c, PAGE_ROWS)).fetchall()
                else:
                    rows = self._conn.execute(
                        sql_next, (*last, head_g, head_c, PAGE_ROWS)
                    ).fetchall()
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
                where = format_event_id(*last, None) if last else "the first event"
                raise SourceError(
                    f"{self.path}: corrupt or unreadable SQLite file after {where} ({exc})"
                ) from None
            for g, c, r, pg, pc, name, args_json, client_id, session_id, schema_hash in rows:
                position += 1
                if type(g) is not int or type(c) is not int or not (r is None or type(r) is int):
                    # Only a hand-made (non-STRICT) or damaged table can hold these; an event
                    # without an integer position can be neither checkpointed nor parked.
                    raise SourceError(
                        f"{self.path}: event #{position} has a position that is not an integer "
                        f"(seqNum {repr(g)[:40]}, {repr(c)[:40]}, {repr(r)[:40]})"
                    )
                yield Event(
                    position, g, c, r, pg, pc, name, args_json, client_id, session_id, schema_hash
                )
            if len(rows) < PAGE_ROWS:
                return
            last = (rows[-1][0], rows[-1][1])

    def event_names(self) -> set[str]:
        try:
            rows = self._conn.execute("SELECT DISTINCT name FROM eventlog").fetchall()
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"{self.path}: corrupt or unreadable SQLite file ({exc})") from None
        return {row[0] for row in rows if isinstance(row[0], str)}

    def name_counts(self) -> dict[str, tuple[int, int]]:
        unknown = "SUM(schemaHash = -1)" if self._has_schema_hash else "0"
        try:
            rows = self._conn.execute(
                f"SELECT name, COUNT(*), {unknown} FROM eventlog GROUP BY name"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"{self.path}: corrupt or unreadable SQLite file ({exc})") from None
        return {name: (n, u or 0) for name, n, u in rows if isinstance(name, str)}

    def count(self) -> int | None:
        if self._head is None:
            return 0
        try:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM eventlog WHERE (seqNumGlobal, seqNumClient) <= (?, ?)",
                self._head,
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"{self.path}: corrupt or unreadable SQLite file ({exc})") from None
        return int(row[0])

    def close(self) -> None:
        self._conn.close()


# ---------------------------------------------------------------- JSON export and NDJSON


def _json_error(exc: Exception) -> str:
    """The first line of a JSON parser's message (ijson's spans several)."""
    return str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__


def _open_json(path: Path) -> Source:
    with path.open("rb") as fh:
        first = fh.readline()
    try:
        obj = json.loads(first)
    except (ValueError, UnicodeDecodeError, RecursionError):
        obj = None
    if isinstance(obj, dict) and "name" in obj:
        return NdjsonSource(path)
    return JsonExport(path)


def _seq(value: Any, where: str) -> tuple[int, int, int | None]:
    """A seqNum: an int (global, as in `livestore sync export`) or LiveStore's client form."""
    if isinstance(value, bool):
        raise SourceError(f"{where}: seqNum is not a number")
    if isinstance(value, int):
        seq: tuple[int, int, int | None] = (value, 0, None)
    elif isinstance(value, dict) and isinstance(value.get("global"), int):
        client = value.get("client", 0)
        generation = value.get("rebaseGeneration")
        if not isinstance(client, int) or not (generation is None or isinstance(generation, int)):
            raise SourceError(f"{where}: malformed seqNum {json.dumps(value)[:80]}")
        seq = (value["global"], client, generation)
    else:
        raise SourceError(f"{where}: missing or malformed seqNum")
    if not all(-(2**63) <= n < 2**63 for n in (seq[0], seq[1], seq[2] or 0)):
        raise SourceError(f"{where}: seqNum beyond 64-bit integers")
    return seq


def _json_text(value: Any) -> str:
    """argsJson for a parsed args object: what JSON.stringify printed when LiveStore stored it
    (a NaN or Infinity the line spelled, which is not JSON, stays spelled so, and is refused)."""
    try:
        return js_json(value, finite=True)
    except (ValueError, RecursionError):
        return json.dumps(value, ensure_ascii=False, default=repr)


class _StreamedJson(Source):
    """Shared by both JSON forms: turn event objects into envelopes, checking their order."""

    def _envelopes(self, objects: Iterator[tuple[str, Any]]) -> Iterator[Event]:
        position = 0
        last: tuple[int, int] | None = None
        for where, obj in objects:
            if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                raise SourceError(f"{self.path}: {where} is not a LiveStore event (no name)")
            g, c, r = _seq(obj.get("seqNum"), f"{self.path}: {where}")
            pg, pc, _ = _seq(obj.get("parentSeqNum", 0), f"{self.path}: {where}")
            if last is not None and (g, c) <= last:
                kind = "duplicate" if (g, c) == last else "out-of-order"
                raise SourceError(
                    f"{self.path}: {where}: {kind} position {format_event_id(g, c, r)} "
                    f"after {format_event_id(*last, None)}"
                )
            last = (g, c)
            if "argsJson" in obj:
                args_json = obj["argsJson"]
            else:
                try:
                    args_json = _json_text(obj.get("args", {}))
                except RecursionError:
                    raise SourceError(f"{self.path}: {where}: args nested too deeply") from None
            position += 1
            schema_hash = obj.get("schemaHash")
            yield Event(
                position,
                g,
                c,
                r,
                pg,
                pc,
                obj["name"],
                args_json,
                obj.get("clientId"),
                obj.get("sessionId"),
                schema_hash if isinstance(schema_hash, int) else None,
            )


class JsonExport(_StreamedJson):
    """`livestore sync export`: ``{version: 1, storeId, exportedAt, eventCount, events}``."""

    def __init__(self, path: Path):
        super().__init__(path=path, kind=KIND_EXPORT, format_version=None, store_id=None)
        header: dict[str, Any] = {}
        has_events = False
        try:
            with path.open("rb") as fh:
                for prefix, event, value in ijson.parse(fh):
                    if prefix == "" and event not in ("start_map", "end_map", "map_key"):
                        raise SourceError(f"{path}: JSON of another shape (not an object)")
                    if prefix in ("version", "storeId", "exportedAt", "eventCount"):
                        header[prefix] = value
                    elif prefix == "events" and event == "start_array":
                        has_events = True
        except ijson.JSONError as exc:
            raise SourceError(f"{path}: invalid JSON ({_json_error(exc)})") from None
        except UnicodeDecodeError:
            raise SourceError(f"{path}: invalid JSON (not UTF-8 text)") from None
        if not has_events:
            raise SourceError(
                f"{path}: JSON of another shape (no 'events' array; "
                "expected a `livestore sync export` file or NDJSON events)"
            )
        version = header.get("version")
        self.format_version = int(version) if isinstance(version, (int, float)) else None
        store_id = header.get("storeId")
        self.store_id = store_id if isinstance(store_id, str) else None
        self.details = {k: header[k] for k in ("exportedAt", "eventCount") if k in header}
        count = self.details.pop("eventCount", None)
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            self.details["eventCount"] = count  # anything else is ignored: the events count

    def count(self) -> int | None:
        return self.details.get("eventCount")  # only a valid count is kept (see __init__)

    def events(self) -> Iterator[Event]:
        def objects() -> Iterator[tuple[str, Any]]:
            with self.path.open("rb") as fh:
                try:
                    for index, obj in enumerate(ijson.items(fh, "events.item", use_float=True)):
                        yield f"event #{index + 1}", obj
                except ijson.JSONError as exc:
                    raise SourceError(f"{self.path}: invalid JSON ({_json_error(exc)})") from None

        return self._envelopes(objects())


class NdjsonSource(_StreamedJson):
    """One event object per line: the export's event shape, seqNum as int or client form."""

    def __init__(self, path: Path):
        super().__init__(path=path, kind=KIND_NDJSON, format_version=None, store_id=None)

    def events(self) -> Iterator[Event]:
        def objects() -> Iterator[tuple[str, Any]]:
            with self.path.open("rb") as fh:
                for number, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except (ValueError, UnicodeDecodeError):
                        raise SourceError(f"{self.path}: line {number} is not JSON") from None
                    except RecursionError:
                        raise SourceError(
                            f"{self.path}: line {number} is not JSON (nested too deeply)"
                        ) from None
                    yield f"line {number}", obj

        return self._envelopes(objects())
