"""LiveStore's SQLite eventlog, read consistently in whatever state a machine left it.

LiveStore's Node adapter writes ``eventlog@N.db`` through wa-sqlite's NodeFS VFS, whose
locks are no-ops (``FacadeVFS.jLock``/``jCheckReservedLock``), in rollback-journal mode
with ``fsync`` off (FORMAT.md §1). So SQLite's own locking cannot keep a reader from
tearing while the app writes, and to SQLite the journal of a commit still in progress
looks "hot" (left by a crash). How this module reads, never creating or changing a file
beside the source:

* **In place**, read-only (``mode=ro``), when the database is in rollback mode and no
  ``-wal`` file is beside it. Every read (one page of rows) is bracketed by a
  fingerprint of the files (inode, size, mtime, the header's change counter and page
  count, the ``-journal``): a read during which anything changed, or that SQLite refused
  because of a journal or a lock, is retried on a fresh connection, so every page comes
  from one committed state. Each page after the first starts by re-reading the last
  event of the page before (its anchor): an append is the same history grown, and a
  history rewritten under the reader (a rebase) is an error, never a silent mix.
* **From a private snapshot** (a copy in a temporary directory, taken when the files'
  fingerprints are the same before and after copying) when reading in place cannot be
  safe: the database is in WAL mode or has a ``-wal`` file beside it (a read-only
  connection would create ``-shm``/``-wal`` there), or a hot journal stays (a commit that
  never finished: the copy is rolled back, as LiveStore itself does when it next opens the
  file). A log line says so; the source is still named by its own path.
* A native SQLite process (the sqlite3 CLI, a DB browser) holding a lock is waited for,
  up to the lock timeout; then `SourceBusy` says the file is locked by another process.

Formats: the eventlog table's columns are checked against the DDL of each storage format
this projector knows (FORMAT.md §2 for 6 = LiveStore 0.4.x, §5 for 4 = 0.3.x).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sqlite3
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import structlog

from events.envelope import Event, format_event_id, text_not_utf8
from events.errors import SourceBusy, SourceError, TextNotUtf8
from events.sources import KIND_SQLITE, SQLITE_MAGIC, Source

log = structlog.get_logger("projector")
T = TypeVar("T")

EVENTLOG_FILE = re.compile(r"^eventlog@(\d+)\.db$")
#: LiveStore's state DB: ``state<schemaHashSuffix>@<format>.db``, the suffix a (often
#: negative) hash or ``fixed`` (FORMAT.md section 1).
STATE_FILE = re.compile(r"^state(-?\d+|fixed)@(\d+)\.db$")


def state_files(folder: Path) -> list[Path]:
    """The LiveStore state DBs in FOLDER (`STATE_FILE`), by name."""
    try:
        return sorted(p for p in folder.iterdir() if STATE_FILE.match(p.name) and p.is_file())
    except OSError:
        return []


#: Rows fetched per read: short reads are likely to fall between two of the app's
#: commits, and memory stays bounded.
PAGE_ROWS = 2000
#: How long a source may stay locked, or keep changing under every read, before a
#: command gives up (seconds; --lock-timeout, PROJECTOR_LOCK_TIMEOUT).
DEFAULT_LOCK_TIMEOUT = 10.0
#: A journal that SQLite calls hot and that has not changed for this long is taken for
#: a crash's leftover (a commit in progress rewrites it within milliseconds).
HOT_JOURNAL_SETTLE = 0.25

#: The eventlog table of each storage format: column -> (declared type, primary-key index).
#: 6: ``common/schema/state/sqlite/system-tables/eventlog-tables.ts:16-64`` (0.4.0);
#: 4: the same file of 0.3.1, without the rebase generations (FORMAT.md §5).
_V4 = {
    "seqNumGlobal": ("integer", 1),
    "seqNumClient": ("integer", 2),
    "parentSeqNumGlobal": ("integer", 0),
    "parentSeqNumClient": ("integer", 0),
    "name": ("text", 0),
    "argsJson": ("text", 0),
    "clientId": ("text", 0),
    "sessionId": ("text", 0),
    "schemaHash": ("integer", 0),
    "syncMetadataJson": ("text", 0),
}
FORMATS: dict[int, dict[str, tuple[str, int]]] = {
    6: {
        **_V4,
        "seqNumRebaseGeneration": ("integer", 3),
        "parentSeqNumRebaseGeneration": ("integer", 0),
    },
    4: _V4,
}
RELEASES = {4: "LiveStore 0.3.x", 6: "LiveStore 0.4.x"}
_SELECT = (
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
#: The columns of `_SELECT` that hold text, with their index there.
_TEXT_COLUMNS = (("name", 5), ("argsJson", 6), ("clientId", 7), ("sessionId", 8))
#: The text columns whose values repeat (all but argsJson), as bits of their index: the
#: compiled page reader reads each short value of theirs as one str object.
_SHARED_TEXT = sum(1 << index for column, index in _TEXT_COLUMNS if column != "argsJson")

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
#: Builds an `Event` from a tuple of its fields without the NamedTuple's Python __new__.
_new_tuple = tuple.__new__
_SQLITE_READONLY_ROLLBACK = 776  # a hot journal that a read-only connection cannot roll back


class Blob(bytes):
    """A BLOB where LiveStore stores text: the argsJson of a hand-made, non-STRICT eventlog,
    as `SqliteEventlog.events` yields it, apart from the plain ``bytes`` that stand for text
    read as its UTF-8 (``events(utf8_args=True)``). It compares, hashes and prints
    (``b'...'``) as the bytes it holds."""

    __slots__ = ()


def known_formats() -> str:
    """``4 (LiveStore 0.3.x), 6 (LiveStore 0.4.x)``."""
    return ", ".join(f"{v} ({RELEASES[v]})" for v in sorted(FORMATS))


def _ro_uri(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


def _connect_ro(path: Path) -> sqlite3.Connection:
    # timeout=0: a lock is waited for by `_Reader.read`, which can say so while it waits.
    uri = _ro_uri(path)
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=0)
    return conn


@functools.cache
def _pages_module() -> Any:
    """`events._pages` (events/_pages.c), the compiled page reader, when the compiled build
    runs (`events._native`) and it runs the very SQLite library the sqlite3 module does
    (both link the system's libsqlite3: one copy of SQLite in the process, whose POSIX
    locks on a file its connections share); else None."""
    from events import _native

    pages = _native.extension("events._pages")
    if pages is None or pages.sqlite_version() != sqlite3.sqlite_version:
        return None
    return pages


def _open_pages(path: Path) -> Any:
    """A compiled page reader (`events._pages.Reader`) on PATH, read-only; None when
    there is none (`_pages_module`) or it cannot open PATH (the sqlite3 module's
    connection then reads every page, and says why it cannot)."""
    pages = _pages_module()
    if pages is None:
        return None
    try:
        return pages.Reader(_ro_uri(path))
    except (OSError, ValueError):
        return None


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _header(path: Path) -> bytes:
    """Bytes 18-19 (WAL or rollback) and 24-39 (change counter, page count, freelist)."""
    with open(path, "rb") as fh:
        head = fh.read(40)
    return head[18:20] + head[24:40]


class _Reader:
    """Runs read-only queries on an eventlog so that each one sees one committed state."""

    def __init__(self, path: Path, lock_timeout: float):
        self.path = path
        self.lock_timeout = lock_timeout
        self.journal = path.with_name(path.name + "-journal")
        self.wal = path.with_name(path.name + "-wal")
        self.snapshot_reason: str | None = None
        self._fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        #: The compiled page reader on the same file as _conn (`_open_pages`), or None.
        self._pages: Any = None
        self._cleanup: weakref.finalize[Any, Any] | None = None
        if _header(path)[:2] == b"\x02\x02":
            self._snapshot("the database is in WAL mode")
        elif self.wal.exists():
            self._snapshot("a -wal file is beside it")
        else:
            # Our own descriptor, for the header: closed only after SQLite's connection,
            # as closing any descriptor of a file drops the process's POSIX locks on it.
            self._fd = os.open(path, os.O_RDONLY)
            self._conn = _connect_ro(path)
            self._pages = _open_pages(path)

    def _fingerprint(self) -> tuple[Any, ...]:
        assert self._fd is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise SourceError(f"{self.path}: disappeared while it was read") from None
        return (
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            os.pread(self._fd, 16, 24),
            _stat(self.journal),
            _stat(self.wal),
        )

    def read(self, query: Callable[[sqlite3.Connection], T], where: str = "") -> T:
        """QUERY's result, read from one committed state of the eventlog.

        Raises `SourceBusy` when the file stays locked by another process, or changes
        under every read, for `lock_timeout` seconds, and `SourceError` when it is corrupt.
        """
        if self._fd is None:  # a private snapshot: nothing else writes to it
            assert self._conn is not None
            try:
                return query(self._conn)
            except (sqlite3.DatabaseError, UnicodeDecodeError, TextNotUtf8) as exc:
                raise self._corrupt(exc, where) from None
        started = time.monotonic()
        delay = 0.001
        told = ""
        hot: tuple[Any, ...] | None = None
        hot_since = started
        while True:
            before = self._fingerprint()
            if before[5] is not None:
                self._snapshot("a -wal file appeared beside it")
                return self.read(query, where)
            assert self._conn is not None
            try:
                result = query(self._conn)
            except (sqlite3.DatabaseError, UnicodeDecodeError, TextNotUtf8) as exc:
                # UnicodeDecodeError: a damaged schema (sqlite_master) holds bytes that are
                # not UTF-8; TextNotUtf8: so does an event (`_fetch_events`). Either may
                # also be a page read while it was written: then retried.
                code = getattr(exc, "sqlite_errorcode", 0) or 0
                after = self._fingerprint()
                if code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
                    why = "locked"
                elif code == _SQLITE_READONLY_ROLLBACK:
                    why = "hot journal"
                elif after != before:
                    why = "changed"
                else:
                    raise self._corrupt(exc, where) from None
            else:
                after = self._fingerprint()
                if after == before:
                    return result
                why = "changed"
            now = time.monotonic()
            limit = self.lock_timeout
            if why == "hot journal":
                limit = max(limit, 4 * HOT_JOURNAL_SETTLE)
                if after != hot:
                    hot, hot_since = after, now
                elif now - hot_since >= HOT_JOURNAL_SETTLE:
                    self._snapshot(
                        "a hot journal (a commit that never finished) is beside it: "
                        "read from a private copy with that journal rolled back"
                    )
                    return self.read(query, where)
            if why == "locked" and told != why:
                log.warning(
                    "source.locked",
                    source=str(self.path),
                    detail="locked by another process; waiting for it",
                    lock_timeout=self.lock_timeout,
                )
            told = why
            if now - started >= limit:
                raise self._busy(why, now - started)
            log.debug("source.reread", source=str(self.path), why=why)
            self._reconnect()
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def events(self, sql: str, params: tuple[Any, ...], first: int, where: str = "") -> Any:
        """The rows of SQL (a page of `SqliteEventlog.events`, PARAMS integers) as events,
        the first at position FIRST, read by the compiled page reader (`events._pages`)
        from one committed state (as `read` reads); None when there is no such reader or
        it declined the page (any SQLite error, a TEXT value that is not UTF-8): the
        caller then reads the page with the sqlite3 module, which raises or explains."""
        return self._compiled(
            lambda pages: pages.events(sql, params, first, Event, _SHARED_TEXT), where
        )

    def name_counts(self, sql: str) -> Any:
        """``{name: (rows, rows flagged)}`` of SQL's rows (name, flag), counted by the
        compiled page reader in one pass, as `events` reads; None as `events`."""
        return self._compiled(lambda pages: pages.name_counts(sql), "")

    def _compiled(self, call: Callable[[Any], Any], where: str) -> Any:
        """CALL's result on the compiled page reader, read as `read` reads; None when
        there is none."""
        if self._pages is None:
            return None
        # The reader of the moment: `read` may reconnect, or switch to a snapshot.
        return self.read(lambda conn: None if self._pages is None else call(self._pages), where)

    def _busy(self, why: str, waited: float) -> SourceBusy:
        if why == "locked":
            return SourceBusy(
                f"{self.path}: locked by another process: is the app still running? "
                f"(waited {waited:.1f} s; --lock-timeout SECONDS waits longer)"
            )
        return SourceBusy(
            f"{self.path}: kept changing under every read for {waited:.1f} s "
            "(is the app writing to it?); run again, or raise --lock-timeout"
        )

    def _corrupt(self, exc: Exception, where: str) -> SourceError:
        if isinstance(exc, TextNotUtf8):  # it names the event and says why
            return SourceError(f"{self.path}: {exc}")
        return SourceError(f"{self.path}: corrupt or unreadable SQLite file{where} ({exc})")

    def _reconnect(self) -> None:
        # A fresh connection: the old one's page cache may hold a page read mid-write.
        assert self._conn is not None
        if self._pages is not None:
            self._pages.close()
        self._conn.close()
        self._conn = _connect_ro(self.path)
        self._pages = _open_pages(self.path)

    def _files(self) -> tuple[Any, ...]:
        return (_stat(self.path), _header(self.path), _stat(self.journal), _stat(self.wal))

    def _snapshot(self, reason: str) -> None:
        """Read from now on from a private copy of the files, made when they were still."""
        self.close()
        tmp = Path(tempfile.mkdtemp(prefix="projector-snapshot-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, tmp, True)
        copy = tmp / self.path.name
        started = time.monotonic()
        delay = 0.001
        while True:
            before = self._files()
            try:
                shutil.copyfile(self.path, copy)
                for side, present in ((self.journal, before[2]), (self.wal, before[3])):
                    dest = tmp / (copy.name + side.name[len(self.path.name) :])
                    dest.unlink(missing_ok=True)
                    if present:
                        shutil.copyfile(side, dest)
            except FileNotFoundError:  # a journal went away while it was copied
                pass
            except OSError as exc:  # the temporary folder is full, or cannot be written
                raise SourceError(
                    f"{self.path}: cannot copy it to read it ({reason}) into {tmp.parent}: "
                    f"{exc.strerror or exc}; set TMPDIR to a folder with room"
                ) from None
            else:
                if self._files() == before:
                    break
            if time.monotonic() - started >= max(self.lock_timeout, 1.0):
                raise self._busy("changed", time.monotonic() - started)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        # A read-write connection to the copy rolls its journal back (or replays its WAL)
        # there, on the first read; the source's own files are never opened for writing.
        conn = sqlite3.connect(copy, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            conn.execute("PRAGMA query_only = 1")
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            conn.close()
            raise self._corrupt(exc, "") from None
        self._conn = conn
        # Opened once the connection above has rolled the copy's journal back (or its
        # WAL into its -shm): a read-only one could do neither.
        self._pages = _open_pages(copy)
        self.snapshot_reason = reason
        log.warning(
            "source.snapshot",
            source=str(self.path),
            detail=f"{reason}; reading a private copy",
            copy=str(copy),
        )

    def close(self) -> None:
        if self._pages is not None:
            self._pages.close()
            self._pages = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None


def _fetch_events(
    sql: str,
    params: tuple[Any, ...],
    explain: str | None,
    base: int,
    columns: tuple[tuple[str, int], ...],
    conn: sqlite3.Connection,
) -> list[Any]:
    """The rows of SQL (`SqliteEventlog._page`), e.g. a page of `SqliteEventlog.events`
    whose first row is the event at position BASE + 1. When they cannot be read and a
    TEXT value of theirs is not UTF-8 (SQLite stores text without checking it,
    sqlite.org/invalidutf.html; Python's sqlite3 then raises OperationalError "Could not
    decode to UTF-8 column ..."), raises `TextNotUtf8` naming the first such value's event
    and column among COLUMNS (`_TEXT_COLUMNS`), as the replay does for argsJson read as
    bytes (`events.envelope.args_text`). EXPLAIN reads the same events (with PARAMS) with
    each text column as its bytes (None for any other value); without it (a UTF-16 file),
    or when it finds no such value or cannot run, the error is raised as it is."""
    try:
        return conn.execute(sql, params).fetchall()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as failure:
        if explain is None:
            raise
        try:
            found = _first_not_utf8(conn.execute(explain, params), base, columns)
        except sqlite3.Error:
            raise failure from None
        if found is None:
            raise
        raise found from None


def _first_not_utf8(
    rows: Iterable[Any], base: int, columns: tuple[tuple[str, int], ...]
) -> TextNotUtf8 | None:
    """`TextNotUtf8` for the first value of ROWS (`_fetch_events`'s EXPLAIN) in one of
    COLUMNS (`_TEXT_COLUMNS`) that is not UTF-8, the first row being the event at
    position BASE + 1; None when all are."""
    for index, row in enumerate(rows):
        name = None
        for column, at in columns:
            if row[at] is None:
                continue
            try:
                text = row[at].decode("utf-8")
            except UnicodeDecodeError as exc:
                event_id = format_event_id(row[0], row[1], row[2])
                return text_not_utf8(column, base + 1 + index, event_id, name, exc)
            if column == "name":
                name = text
    return None


def _probe(conn: sqlite3.Connection) -> dict[str, Any]:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    found: dict[str, Any] = {"tables": tables}
    if "eventlog" not in tables:
        return found
    found["columns"] = {
        row[1]: (row[2].lower(), row[5]) for row in conn.execute("PRAGMA table_info(eventlog)")
    }
    # A STRICT table (LiveStore's) holds only integers in its integer columns.
    found["strict"] = any(
        row[5] for row in conn.execute("PRAGMA table_list") if row[1] == "eventlog"
    )
    # How the file stores text: UTF-8 (LiveStore's) or UTF-16 (the encoding pragma,
    # sqlite.org/pragma.html#pragma_encoding).
    found["encoding"] = conn.execute("PRAGMA encoding").fetchone()[0]
    if not {"seqNumGlobal", "seqNumClient"} <= found["columns"].keys():
        return found
    found["duplicate"] = conn.execute(
        "SELECT seqNumGlobal, seqNumClient, COUNT(*) FROM eventlog "
        "GROUP BY seqNumGlobal, seqNumClient HAVING COUNT(*) > 1 LIMIT 1"
    ).fetchone()
    found["head"] = conn.execute(
        "SELECT seqNumGlobal, seqNumClient FROM eventlog "
        "ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1"
    ).fetchone()
    if "__livestore_sync_status" in tables:
        found["sync"] = conn.execute("SELECT * FROM __livestore_sync_status LIMIT 1").fetchone()
    return found


def _column_differences(columns: dict[str, tuple[str, int]], version: int) -> str:
    """How COLUMNS differ from format VERSION's eventlog table ('' when they match)."""
    expected = FORMATS[version]
    parts = []
    extra = [c for c in columns if c not in expected]
    missing = [c for c in expected if c not in columns]
    changed = [c for c in expected if c in columns and columns[c] != expected[c]]
    if extra:
        parts.append(f"unknown column(s) {', '.join(extra)}")
    if missing:
        parts.append(f"lacks column(s) {', '.join(missing)}")
    for c in changed:
        (t, pk), (want_t, want_pk) = columns[c], expected[c]
        parts.append(
            f"{c} is {t or 'untyped'}{' (primary key)' if pk else ''}, "
            f"not {want_t}{' (primary key)' if want_pk else ''}"
        )
    return "; ".join(parts)


class SqliteEventlog(Source):
    """LiveStore's ``eventlog@N.db``: format 6 (0.4.x) or 4 (0.3.x, no rebase generation)."""

    def __init__(
        self,
        path: Path,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        format_version: int | None = None,
    ):
        match = EVENTLOG_FILE.match(path.name)
        store_id = path.resolve().parent.name if match else None
        super().__init__(path=path, kind=KIND_SQLITE, format_version=None, store_id=store_id)
        named = int(match.group(1)) if match else None
        if named is not None and named not in FORMATS:
            raise SourceError(
                f"{path}: LiveStore storage format {named} is unknown to this projector "
                f"(it reads {known_formats()})"
            )
        try:
            with open(path, "rb") as fh:
                if fh.read(16) != SQLITE_MAGIC:
                    raise SourceError(f"{path}: not a SQLite database")
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
        self._reader = _Reader(path, lock_timeout)
        try:
            self._check(self._reader.read(_probe), named, format_version)
        except BaseException:
            self._reader.close()
            raise

    def _check(self, found: dict[str, Any], named: int | None, wanted: int | None) -> None:
        if "eventlog" not in found["tables"]:
            raise SourceError(f"{self.path}: SQLite database without an eventlog table")
        columns = found["columns"]
        version = named or (6 if "seqNumRebaseGeneration" in columns else 4)
        differences = _column_differences(columns, version)
        if differences:
            raise SourceError(
                f"{self.path}: the eventlog table is not LiveStore format {version}'s "
                f"({differences}); this projector reads {known_formats()}"
            )
        if wanted is not None and wanted != version:
            raise SourceError(f"{self.path}: is storage format {version}, not {wanted}")
        self.format_version = version
        self._select = ", ".join(c if c in columns else "NULL" for c in _SELECT)
        self._strict = bool(found.get("strict"))
        # Text read as a BLOB gives the bytes the file stores: its UTF-8 in a UTF-8 file
        # (LiveStore's), UTF-16 in a UTF-16 one, whose text is read as text.
        utf8_file = self._utf8 = found.get("encoding") == "UTF-8"
        # Finds the value sqlite3 could not decode (`_fetch_events`).
        texts = {c for c, _ in _TEXT_COLUMNS}
        self._select_explain = (
            ", ".join(
                "NULL"
                if c not in columns
                else f"CASE WHEN typeof({c}) = 'text' THEN CAST({c} AS BLOB) END"
                if c in texts
                else c
                for c in _SELECT
            )
            if utf8_file
            else None
        )
        # A STRICT table's argsJson is TEXT: read as a BLOB, its bytes are the text's UTF-8
        # as stored, without the decoding to str that parsing would only undo.
        self._select_utf8 = (
            self._select.replace("argsJson", "CAST(argsJson AS BLOB)", 1)
            if self._strict and utf8_file
            else self._select
        )
        dup = found["duplicate"]
        if dup:
            raise SourceError(
                f"{self.path}: duplicate event position {format_event_id(dup[0], dup[1], None)} "
                f"({dup[2]} rows); LiveStore identifies events by (global, client)"
            )
        self._head = tuple(found["head"]) if found["head"] else None
        if found.get("sync"):
            self.details["syncHead"] = found["sync"][0]
        if self._reader.snapshot_reason:
            self.details["readFrom"] = f"a private copy ({self._reader.snapshot_reason})"

    def _page(
        self,
        sql: str,
        params: tuple[Any, ...],
        where: str = "",
        *,
        explain: str | None = None,
        base: int = 0,
        columns: tuple[tuple[str, int], ...] = _TEXT_COLUMNS,
    ) -> list[Any]:
        """The rows of SQL, read by `_Reader.read` (WHERE ends its errors' first clause);
        EXPLAIN, BASE and COLUMNS name a value that is not UTF-8 (`_fetch_events`)."""
        fetch = functools.partial(_fetch_events, sql, params, explain, base, columns)
        return self._reader.read(fetch, where)

    def events(self, *, utf8_args: bool = False) -> Iterator[Event]:
        """Stream the rows that existed when the source was opened, in replay order.

        With UTF8_ARGS, the argsJson of a STRICT eventlog in a UTF-8 file (LiveStore's)
        comes as the bytes of its UTF-8 text, not decoded nor checked
        (`events.envelope.args_text` does both; msgspec checks them as it parses): a
        replay parses and hashes them as they are, where decoding them to ``str`` cost a
        tenth of reading them and msgspec encoded the text back. Otherwise (a UTF-16
        file, a non-STRICT table) argsJson comes as it is, with or without UTF8_ARGS:
        text as ``str``, a BLOB as a `Blob` (plain ``bytes`` stand for text only).

        Raises `SourceError` when the events already streamed were rewritten meanwhile
        (a LiveStore rebase while the log was read), and whatever `_Reader.read` raises.
        """
        if self._head is None:
            return
        head_g, head_c = self._head
        position = 0
        anchor: tuple[Any, ...] | None = None
        select = self._select_utf8 if utf8_args else self._select
        first = (
            "WHERE (seqNumGlobal, seqNumClient) <= (?, ?) "
            "ORDER BY seqNumGlobal, seqNumClient LIMIT ?"
        )
        after = (
            "WHERE (seqNumGlobal, seqNumClient) >= (?, ?) "
            "AND (seqNumGlobal, seqNumClient) <= (?, ?) "
            "ORDER BY seqNumGlobal, seqNumClient LIMIT ?"
        )
        bytes_select = self._select_explain
        sql_first, sql_after = (f"SELECT {select} FROM eventlog {w}" for w in (first, after))
        explain_first, explain_after = (
            f"SELECT {bytes_select} FROM eventlog {w}" if bytes_select else None
            for w in (first, after)
        )
        while True:
            params: tuple[Any, ...]
            if anchor is None:
                sql, params, where = sql_first, (head_g, head_c, PAGE_ROWS), ""
                start, last_id, explain = 0, "", explain_first
            else:
                last_id = format_event_id(anchor[0], anchor[1], None)
                sql, where, explain = sql_after, f" after {last_id}", explain_after
                params = (anchor[0], anchor[1], head_g, head_c, PAGE_ROWS + 1)
                start = 1  # the page starts with the anchor, the event at POSITION
            if self._strict:
                # Positions are integers: no row needs looking at. The page's events (the
                # anchor's first) from the compiled page reader, else from the rows.
                page = self._reader.events(sql, params, position + 1 - start, where)
                if page is None:
                    rows = self._page(sql, params, where, explain=explain, base=position - start)
                    page = [
                        _new_tuple(Event, (n, *row))
                        for n, row in enumerate(rows, position + 1 - start)
                    ]
                if start and (not page or tuple(page[0])[1:] != anchor):
                    raise self._rewritten(last_id)
                read = len(page) - start
                del page[:start]
                position += read
                if read:
                    anchor = tuple(page[-1])[1:]
                yield from page
                del page
                if read < PAGE_ROWS:
                    return
                continue
            rows = self._page(sql, params, where, explain=explain, base=position - start)
            if start and (not rows or tuple(rows[0]) != anchor):
                raise self._rewritten(last_id)
            for index in range(start, len(rows)):
                g, c, r, pg, pc, name, args_json, client_id, session_id, schema_hash = rows[index]
                position += 1
                if type(g) is not int or type(c) is not int or not (r is None or type(r) is int):
                    # Only a hand-made (non-STRICT) or damaged table can hold these; an
                    # event without an integer position can be neither checkpointed nor
                    # parked.
                    raise SourceError(
                        f"{self.path}: event #{position} has a position that is not an "
                        f"integer (seqNum {repr(g)[:40]}, {repr(c)[:40]}, {repr(r)[:40]})"
                    )
                if type(args_json) is bytes:
                    args_json = Blob(args_json)
                yield Event(
                    position,
                    g,
                    c,
                    r,
                    pg,
                    pc,
                    name,
                    args_json,
                    client_id,
                    session_id,
                    schema_hash,
                )
            if len(rows) - start < PAGE_ROWS:
                return
            anchor = tuple(rows[-1])

    def _rewritten(self, last_id: str) -> SourceError:
        return SourceError(
            f"{self.path}: the log was rewritten while it was read: {last_id} "
            "is gone or changed (a LiveStore rebase?); run the command again"
        )

    def event_names(self) -> set[str]:
        rows = self._names("SELECT DISTINCT name FROM eventlog")
        return {row[0] for row in rows if isinstance(row[0], str)}

    def _names(self, sql: str) -> list[Any]:
        """The rows of SQL, a query over the events' names; a name that is not UTF-8 is
        named by its event (`_fetch_events`, reading the whole log in replay order)."""
        explain = self._select_explain
        every = f"SELECT {explain} FROM eventlog ORDER BY seqNumGlobal, seqNumClient"
        return self._page(sql, (), explain=every if explain else None, columns=_TEXT_COLUMNS[:1])

    def name_counts(self) -> dict[str, tuple[int, int]]:
        """``{name: (events, events stored with schemaHash -1)}`` in one query (see
        `Source.name_counts`); both known formats have the schemaHash column."""
        if self._strict and self._utf8:
            # Counted in one pass, in C, rather than sorted by SQLite (GROUP BY): 0.08 s of
            # large's 100,000 events. A STRICT table's names are TEXT; in the order
            # GROUP BY gives in a UTF-8 file (BINARY: the UTF-8 bytes', which is the code
            # points' order; a UTF-16 file's bytes order them otherwise: GROUP BY does).
            counts = self._reader.name_counts("SELECT name, schemaHash = -1 FROM eventlog")
            if counts is not None:
                return dict(sorted(counts.items()))
        rows = self._names(
            "SELECT name, COUNT(*), SUM(schemaHash = -1) FROM eventlog GROUP BY name"
        )
        return {name: (n, u or 0) for name, n, u in rows if isinstance(name, str)}

    def count(self) -> int | None:
        if self._head is None:
            return 0
        rows = self._page(
            "SELECT COUNT(*) FROM eventlog WHERE (seqNumGlobal, seqNumClient) <= (?, ?)",
            self._head,
        )
        return int(rows[0][0])

    def close(self) -> None:
        self._reader.close()


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


def pick_eventlog(directory: Path, format_version: int | None = None) -> tuple[Path, list[Path]]:
    """The store directory's history: its ``eventlog@N.db`` of the highest known format
    (or of FORMAT_VERSION), and the older known ones beside it.

    A bump of LiveStore's storage format is a soft reset: new file names, the old files
    stay (FORMAT.md §1, ``common/version.ts:22-38``). Raises `SourceError` when there is
    none, when FORMAT_VERSION's is missing, or when the newest is of a format this
    projector does not know (reading an older one silently could lose the newest events).
    """
    found: dict[int, Path] = {}
    for child in directory.iterdir():
        match = EVENTLOG_FILE.match(child.name)
        if match and child.is_file():
            found[int(match.group(1))] = child
    if not found:
        stores = _store_folders(directory)
        hint = (
            f"; it holds the store folder {stores[0]}: try that"
            if len(stores) == 1
            else f"; it holds store folders: {', '.join(str(s) for s in stores[:5])}"
            if stores
            else " (state files are not the history)"
            if state_files(directory)
            else ""
        )
        raise SourceError(f"{directory}: no eventlog@N.db in this directory{hint}")
    known = sorted(v for v in found if v in FORMATS)
    if format_version is not None:
        if format_version not in FORMATS:
            raise SourceError(
                f"--format-version {format_version}: unknown; this projector reads "
                f"{known_formats()}"
            )
        if format_version not in found:
            names = ", ".join(found[v].name for v in sorted(found))
            raise SourceError(f"{directory}: no eventlog@{format_version}.db (it has {names})")
        return found[format_version], []
    newest = max(found)
    if newest not in FORMATS:
        older = (
            f"; the older eventlog@{known[-1]}.db beside it may lack the newest events: "
            f"to read it anyway, pass --format-version {known[-1]}"
            if known
            else ""
        )
        raise SourceError(
            f"{found[newest]}: LiveStore storage format {newest} is unknown to this projector "
            f"(it reads {known_formats()}){older}"
        )
    return found[newest], [found[v] for v in known if v < newest]


def lacking(older: Source, newer: Source) -> int:
    """How many of OLDER's events NEWER does not hold (same position, name and args)."""
    missing = 0
    stream = newer.events()
    current = next(stream, None)
    for event in older.events():
        key = (event.seq_global, event.seq_client)
        while current is not None and (current.seq_global, current.seq_client) < key:
            current = next(stream, None)
        if (
            current is None
            or (current.seq_global, current.seq_client) != key
            or (current.name, current.args_json) != (event.name, event.args_json)
        ):
            missing += 1
    return missing
