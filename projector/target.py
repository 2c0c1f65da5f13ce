"""The target database: the app's tables from its catalog, plus the projector's bookkeeping.

The app's tables are created by the catalog's migrations (``migrations/NNNN_name.sql``,
applied with sqlite-utils `Migrations` as the set named after the catalog) and described
by its catalog.toml (`Table`: key, columns, defaults, encodings, foreign keys, derived and
client-document tables, and the LiveStore state table each mirrors). The ``_projector_*``
tables and eventsourcing's ``tracking`` table hold the migration's own bookkeeping, in the
projector's own migration set. All of them are applied in one transaction, so a first run
killed while migrating leaves no half schema.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from events.catalog import MIGRATIONS_DIR, SPEC_FILE, Catalog
from events.errors import CatalogError
from events.sources import KIND_SQLITE, Source, connect_readonly, read_only_fs
from projector.errors import TargetError
from projector.lock import lock_path

MIGRATION_SET = "livestore-projector"
#: The projector's own bookkeeping tables; the app's tables come from its catalog.
migrations = Migrations(MIGRATION_SET)
#: Migrations of targets made before catalogs existed (projector 0.1), when the app's
#: tables were the projector's own: such a target is refused with a clear reason.
LEGACY_MIGRATIONS = {"m001_app_tables", "m004_memories_kind_check_as_ors"}

PARKED_TABLE = "_projector_parked"
DEVIATIONS_TABLE = "_projector_deviations"
STATE_TABLE = "_projector_migration"
RUNS_TABLE = "_projector_runs"
#: The hand-off record of a sidecar (`projector.finalize`): a sidecar is never a target.
HANDOFF_TABLE = "_projector_handoff"
#: Tables that are the projector's, not the app's (sqlite_* are SQLite's own).
BOOKKEEPING_TABLES = frozenset(
    {
        PARKED_TABLE,
        DEVIATIONS_TABLE,
        STATE_TABLE,
        RUNS_TABLE,
        HANDOFF_TABLE,
        "tracking",
        Migrations.migrations_table,
    }
)
#: How messages list the names `reserved` refuses for an app table.
RESERVED_NAMES = ", ".join(
    [*sorted(t for t in BOOKKEEPING_TABLES if not t.startswith("_projector_")), "_projector_*"]
)


def reserved(name: str) -> bool:
    """Whether an app table may not be called NAME: a bookkeeping table's name, or any
    name of the projector's prefix (a later version's bookkeeping). SQLite compares
    table names without regard to ASCII case, and so does this."""
    lower = name.lower()
    return lower.startswith("_projector_") or lower in {t.lower() for t in BOOKKEEPING_TABLES}


#: The target connection's page cache, in KiB.
CACHE_KIB = 16 * 1024
#: A commit checkpoints the target's WAL once it holds this many pages (40 MiB of 4 KiB
#: pages; SQLite's default is 1,000: https://www.sqlite.org/pragma.html#pragma_wal_autocheckpoint).
#: The writer process checkpoints after each batch instead, once the main process has
#: its answer (`projector.writer`); at the default, checkpoints (each syncs the WAL and
#: the database file) ran inside the commits of the 1,000,000-event bench log, and the
#: main process waited 12.5 s of a 50 s replay for the writer (0.5-0.7 s now). A commit is
#: as durable as before: only when pages move from the WAL into the database changes.
WAL_AUTOCHECKPOINT_PAGES = 10_000
#: How every connection that writes a target is tuned (`connect`, and the writer process
#: of `projector.replay`). 16 MiB of page cache (SQLite's default is 2 MiB): a batch's
#: index pages stay cached instead of being re-read and spilled to the WAL
#: mid-transaction, which cut the large fixture's pread/pwrite calls from ~460,000 to
#: ~70,000. Memory stays bounded.
CONNECTION_PRAGMAS = (
    "PRAGMA busy_timeout = 5000",
    f"PRAGMA cache_size = -{CACHE_KIB}",
    f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}",
)


def run_script(db: Database, script: str) -> None:
    """Run SCRIPT statement by statement in the caller's transaction.

    executescript() would COMMIT the migration's transaction. Statements end at a ``;``
    that `sqlite3.complete_statement` accepts, so a ``;`` in a string, a comment or a
    trigger body does not split one.
    """
    start = 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : index + 1]):
            statement = script[start : index + 1]
            if _has_sql(statement):
                db.execute(statement)
            start = index + 1
    if _has_sql(script[start:]):
        raise CatalogError(f"unterminated SQL statement: {script[start:].strip()[:80]!r}")


def _has_sql(text: str) -> bool:
    """TEXT holds more than whitespace and -- comments."""
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


@migrations()
def m002_projector_tables(db: Database) -> None:
    run_script(
        db,
        f"""
        CREATE TABLE {PARKED_TABLE} (
            position INTEGER PRIMARY KEY,
            eventId TEXT NOT NULL,
            name ANY,
            argsJson ANY,
            kind TEXT NOT NULL
                CHECK (kind IN ('unknown', 'invalid', 'unparseable', 'integrity', 'held')),
            reason TEXT NOT NULL,
            entity TEXT,
            seqNumGlobal INTEGER NOT NULL,
            seqNumClient INTEGER NOT NULL,
            seqNumRebaseGeneration INTEGER,
            clientId ANY,
            sessionId ANY
        ) STRICT;
        CREATE INDEX idx_projector_parked_entity ON {PARKED_TABLE} (entity);
        CREATE TABLE {STATE_TABLE} (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            source TEXT NOT NULL,
            sourceKind TEXT NOT NULL,
            formatVersion INTEGER,
            storeId TEXT,
            catalog TEXT NOT NULL,
            onInvalid TEXT NOT NULL,
            position INTEGER NOT NULL DEFAULT 0,
            lastEventId TEXT,
            prefixDigest TEXT NOT NULL,
            sourceTotal INTEGER,
            applied INTEGER NOT NULL DEFAULT 0,
            parked INTEGER NOT NULL DEFAULT 0,
            reapplied INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL
                CHECK (state IN ('running', 'interrupted', 'complete', 'failed', 'rolled back'))
        ) STRICT;
        CREATE TABLE {RUNS_TABLE} (
            run INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            startedAt TEXT NOT NULL,
            endedAt TEXT,
            fromPosition INTEGER NOT NULL,
            toPosition INTEGER,
            read INTEGER NOT NULL DEFAULT 0,
            applied INTEGER NOT NULL DEFAULT 0,
            parked INTEGER NOT NULL DEFAULT 0,
            reapplied INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL,
            backup TEXT,
            createdTarget INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        """,
    )


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the target tuned for batch writes; transactions are explicit."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    for pragma in CONNECTION_PRAGMAS:
        conn.execute(pragma)
    return conn


def nearest_folder(path: Path) -> Path:
    """The closest existing ancestor of PATH (the folder a new target would be made in)."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def in_source_folder(path: Path, source: Path) -> bool:
    """Whether a file at PATH would be in the folder of the eventlog SOURCE (a store
    folder, LiveStore's: no command writes there)."""
    return path.absolute().parent.resolve() == source.resolve().parent


def refuse_source_folder(path: Path, source: Source) -> None:
    """Raise TargetError when a file at PATH (a target, an export) would go into the store
    folder of SOURCE, an eventlog (`in_source_folder`)."""
    if source.kind == KIND_SQLITE and in_source_folder(path, source.path):
        raise TargetError(
            f"{path}: is in the source's store folder ({source.path.resolve().parent}); "
            "no command writes there: choose another folder"
        )


def folder_problem(path: Path) -> str | None:
    """Why no file can be made at PATH for its folder (the closest existing one: a file on
    the way, no permission, a read-only file system), or None."""
    folder = nearest_folder(path)
    if not folder.is_dir():
        return f"{folder} is not a directory"
    if not os.access(folder, os.W_OK | os.X_OK):
        why = "read-only file system" if read_only_fs(folder) else "permission denied"
        return f"cannot write in {folder} ({why})"
    return None


def check_writable(path: Path) -> None:
    """Refuse, with one line and before anything is written, a TARGET path that cannot be
    written: a directory, a folder the user may not write or on a read-only file system,
    a lock file that cannot be created, a read-only file, or a database that is not a
    projector target. `--dry-run` runs the same check, so it fails the way a run would.

    Raises TargetError. (os.access reports EROFS on a read-only mount even for root, who
    is otherwise allowed everything: see access(2).)
    """
    try:
        _check_writable(path)
    except OSError as exc:  # a folder on the way the user may not even look into
        raise TargetError(f"{path}: cannot use it ({exc.strerror or exc})") from None


def _check_writable(path: Path) -> None:
    if path.is_dir():
        raise TargetError(
            f"{path}: is a directory; TARGET is a database file (e.g. {path / 'target.db'})"
        )
    if path.exists() and not path.is_file():
        raise TargetError(f"{path}: not a regular file; TARGET is a database file")
    problem = folder_problem(path)
    if problem:
        raise TargetError(f"{path}: {problem}")
    lock = lock_path(path)
    if lock.exists() and not lock.is_file():
        raise TargetError(f"{path}: cannot create the lock file {lock} (something else is there)")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            why = "read-only file system" if read_only_fs(path) else "permission denied"
            raise TargetError(f"{path}: cannot write to it ({why})")
        refuse_foreign(path)


def refuse_foreign(path: Path) -> None:
    """Refuse, before writing a byte, a database that is not (or not yet) a projector target."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise TargetError(f"{path}: cannot read it ({exc.strerror})") from None
    if not head:
        return
    if head != b"SQLite format 3\x00":
        raise TargetError(f"{path}: not a SQLite database; refusing to write to it")
    try:
        conn = connect_readonly(path)
        try:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise TargetError(f"{path}: not a readable SQLite database ({exc})") from None
    if tables and STATE_TABLE not in tables:
        raise TargetError(
            f"{path}: holds tables ({', '.join(sorted(tables)[:3])}) but no migration record; "
            "not a projector target, refusing to write to it"
        )


def refuse_sidecar(path: Path) -> None:
    """Refuse to write to a hand-off sidecar (`projector finalize`): it is an audit copy of
    a target's bookkeeping, without the app's tables."""
    conn = connect_readonly(path)
    try:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (HANDOFF_TABLE,)
        ).fetchone()
    finally:
        conn.close()
    if row is not None:
        raise TargetError(
            f"{path}: is the bookkeeping sidecar of a handed-over app database, not a target; "
            "catch up into the migration's target and run `projector finalize` again"
        )


def refuse_legacy(path: Path, doing: str) -> None:
    """Raise TargetError when PATH was made by projector 0.1 (`LEGACY_MIGRATIONS`), read
    without writing: DOING says what cannot be done with it (e.g. "to hand it over")."""
    conn = connect_readonly(path)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")}
    except sqlite3.DatabaseError:  # no migrations table: not made by 0.1 either
        names = set()
    finally:
        conn.close()
    if names & LEGACY_MIGRATIONS:
        raise _legacy(path, f" {doing}")


def _legacy(path: Path, doing: str = "") -> TargetError:
    return TargetError(
        f"{path}: was made by projector 0.1, before catalogs; migrate into a new target"
        f"{doing} (this one stays readable: status, digest and verify still work)"
    )


def open_target(path: Path, *, create: bool, catalog: Catalog | None = None) -> Database:
    """Open TARGET as a sqlite-utils Database; when CREATE (or when the projector's own
    tables are behind this version), create or upgrade it: the projector's bookkeeping
    migrations, then CATALOG's, in one transaction.

    Raises TargetError when TARGET is missing (and not CREATE), is not a projector
    target, was made before catalogs, or cannot be opened or migrated.
    """
    if not create and not path.exists():
        raise TargetError(f"{path}: no such target database")
    try:
        if path.exists():
            refuse_foreign(path)
            if path.stat().st_size:
                refuse_sidecar(path)
        conn = connect(path)
        # Installed sqlite-utils plugins do not run on a target (their prepare_connection
        # hook): what a replay writes must not depend on what else is installed. Loading
        # them also scans every installed package's entry points (25 ms a command).
        db = Database(conn, execute_plugins=False)
        if not create and STATE_TABLE not in db.table_names():
            conn.close()
            raise TargetError(f"{path}: not a projector target (no migration record)")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if create or migrations.pending(db):
            _refuse_legacy(db, path)
            # Foreign keys off while migrating: a table rebuild must not cascade.
            conn.execute("PRAGMA foreign_keys = OFF")
            with db.atomic():  # all migrations or none: a killed first run leaves no half schema
                migrations.apply(db)
                if catalog is not None:
                    catalog_migrations(catalog).apply(db)
                problem = conn.execute("PRAGMA foreign_key_check").fetchone()
                if problem:
                    child, rowid, parent, _ = problem
                    raise TargetError(
                        f"{path}: a row of {child} (rowid {rowid}) points at a row of {parent} "
                        "that is not there; run `projector verify` to see every broken reference"
                    )
            conn.execute("PRAGMA foreign_keys = ON")
        return db
    except sqlite3.DatabaseError as exc:
        raise TargetError(f"{path}: cannot open target database ({exc})") from None


def real_target(path: Path) -> Path:
    """PATH, or the file it names (absolute then) when it is a symbolic link or goes
    through ``..``: a backup goes beside the database itself, a rollback restores or
    removes the database, not the link to it. SQLite resolves the link too, and keeps the
    -wal and -shm beside the database; it also takes ``..`` as the folder before it, even
    where that folder does not exist (``new/../t.db`` is ``t.db``), where the system
    refuses such a path (its unix VFS: os_unix.c, unixFullPathname)."""
    if path.is_symlink() or ".." in path.parts:
        return Path(os.path.realpath(path))
    return path


def require_target(path: Path, doing: str = "") -> None:
    """Raise TargetError unless PATH is a projector target: "no such target database" for
    a path that is not there, "not a projector target" for anything else (a folder, any
    other file); DOING ends either message (e.g. "; nothing to resume")."""
    if not os.path.lexists(path):
        raise TargetError(f"{path}: no such target database{doing}")
    if not path.is_file() or not is_target(path):
        raise TargetError(f"{path}: not a projector target{doing}")


#: SQLite result codes (primary, https://sqlite.org/rescode.html) that say a file could
#: not be read now, not that it is no projector target: SQLITE_BUSY, SQLITE_LOCKED,
#: SQLITE_NOMEM, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL.
_CANNOT_READ_NOW = frozenset({5, 6, 7, 10, 13, 14, 15})


def state_columns(conn: sqlite3.Connection, **fallbacks: str) -> dict[str, str]:
    """What to SELECT for each column of the migration record (`STATE_TABLE`) named in
    FALLBACKS: the column where the target has it, else its fallback SQL. Later migrations
    added columns (m005 catalogDigest, m006 strictKeys, m007 deferredIndexes, m008
    migrationId, m009 deferredTables); a target an older version made has none of them
    until a writer migrates it, and a reader must not."""
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({STATE_TABLE})")}
    return {name: name if name in have else fallback for name, fallback in fallbacks.items()}


def deferred_tables(conn: sqlite3.Connection) -> list[str]:
    """The derived tables an unfinished first run has yet to fill (m009 `deferredTables`:
    `deferrable_derived`); none in a target made before that column (`state_columns`)."""
    column = state_columns(conn, deferredTables="NULL")["deferredTables"]
    found = conn.execute(f"SELECT {column} FROM {STATE_TABLE} WHERE id = 1").fetchone()
    return json.loads(found[0]) if found and found[0] else []


def is_target(path: Path) -> bool:
    """Whether PATH is a SQLite database holding the projector's bookkeeping.

    Raises TargetError when SQLite cannot read it at all right now (a full disk where its
    -shm must be created, an I/O error, a lock): saying "not a projector target" then
    would suggest the target is gone."""
    try:
        conn = connect_readonly(path)
        try:
            row = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (STATE_TABLE,)
            ).fetchone()
        finally:
            conn.close()
        return row is not None
    except sqlite3.DatabaseError as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in _CANNOT_READ_NOW:
            raise TargetError(f"{path}: cannot read it ({exc})") from None
        return False


@migrations()
def m003_tracking(db: Database) -> None:
    # eventsourcing's own tracking table, created by its recorder in this transaction.
    from projector.checkpoint import TrackingView

    TrackingView().create_on(db.conn)


@migrations()
def m005_catalog_record(db: Database) -> None:
    # The digest of the catalog a migration was made with (a later run refuses a catalog
    # that changed, rather than mixing two projections in one target), and the app's
    # tables in the catalog's order (what `digest` walks, without needing the catalog).
    db.execute(f"ALTER TABLE {STATE_TABLE} ADD COLUMN catalogDigest TEXT")
    db.execute(f"ALTER TABLE {STATE_TABLE} ADD COLUMN tables TEXT")


@migrations()
def m006_deviations_and_strict_keys(db: Database) -> None:
    # Rows an applied event changed unlike LiveStore, on purpose (projector/deviations.py),
    # so that `verify --against` can name the deviation that explains a difference; and
    # the run's key policy (--strict-keys), which `resume` reuses like onInvalid.
    run_script(
        db,
        f"""
        CREATE TABLE {DEVIATIONS_TABLE} (
            position INTEGER NOT NULL,
            eventId TEXT NOT NULL,
            deviation TEXT NOT NULL,
            entity TEXT NOT NULL,
            detail TEXT NOT NULL,
            PRIMARY KEY (position, deviation, entity)
        ) STRICT;
        CREATE INDEX idx_projector_deviations_entity ON {DEVIATIONS_TABLE} (entity);
        ALTER TABLE {STATE_TABLE} ADD COLUMN strictKeys INTEGER NOT NULL DEFAULT 0
            CHECK (strictKeys IN (0, 1));
        """,
    )


@migrations()
def m007_deferred_indexes(db: Database) -> None:
    # A first run into an empty target drops the app's secondary indexes it does not
    # query and builds them once at its end (`deferrable_indexes`); until then their DDL
    # waits here, so an interrupted run's resume builds them too.
    db.execute(f"ALTER TABLE {STATE_TABLE} ADD COLUMN deferredIndexes TEXT")


@migrations()
def m008_migration_id(db: Database) -> None:
    # What tells this migration from any other (`projector.finalize.migration_identity`):
    # random, made once with a new target's migration record, kept when the target is
    # moved, copied or caught up from a source at another path. A target upgraded here
    # keeps none: each copy of it (a backup a rollback restores, one the user made) would
    # otherwise get its own, and it is told apart as before the id.
    db.execute(f"ALTER TABLE {STATE_TABLE} ADD COLUMN migrationId TEXT")


@migrations()
def m009_deferred_tables(db: Database) -> None:
    # A first run into an empty target leaves the derived tables it may build from their
    # parents' final rows (`deferrable_derived`) empty and fills them once at its end; until
    # then their names wait here, so an interrupted run's resume defers and builds them too.
    db.execute(f"ALTER TABLE {STATE_TABLE} ADD COLUMN deferredTables TEXT")


def deferrable_indexes(
    conn: sqlite3.Connection, tables: dict[str, Table], queried: set[tuple[str, str]] | None
) -> list[tuple[str, str]]:
    """The app's secondary indexes a first replay may build at its end: (name, DDL), in
    the order they were created.

    Building an index once over a full table costs less than keeping it up to date
    row by row (about 0.7x the write time of ai-desk's large log). Kept are the indexes
    that enforce something or whose building could fail (UNIQUE, partial, on an
    expression), and those whose first column the replay itself finds rows by (QUERIED:
    `projector.handlers.Handlers.queried`; None, when a Python handler may query
    anything, keeps them all).
    """
    if queried is None:
        return []
    found = []
    for name, table, sql in conn.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "ORDER BY rowid"
    ):
        if table not in tables:
            continue
        listed = {r[1]: r for r in conn.execute(f'PRAGMA index_list("{table}")')}
        unique, partial = listed[name][2], listed[name][4]
        columns = [r[2] for r in conn.execute(f'PRAGMA index_info("{name}")')]
        if unique or partial or not columns or None in columns or (table, columns[0]) in queried:
            continue
        found.append((name, sql))
    return found


def deferrable_derived(
    conn: sqlite3.Connection, tables: dict[str, Table], queried: set[tuple[str, str]] | None
) -> list[str]:
    """The derived tables (`Derived`) of an empty target that a first replay may leave
    empty and fill at its end from their parents' final rows (`projector.store.
    build_derived`), in the catalog's order.

    Kept up to date row by row, a derived table takes index writes at random keys in every
    batch: on ai-desk's 1,000,000 events, the writer's pages for memory_tags grow with
    the file, and the run falls behind linear. Built once, its rows come in key order. Both
    ways end with the same rows only where the table is a set of text, which is what is
    checked here against the created table (SQLite's rules:
    https://sqlite.org/datatype3.html, sections 3.1 and 7):

    - its columns are its key and element columns and nothing else;
    - both, and the parent's key column, have TEXT affinity (an element or key is stored
      as the text it is, or a number's text: the same value both ways);
    - its primary key is exactly those two columns, under the BINARY collation, and it
      has no other unique index (an element twice in an array is one row either way,
      which of two equal elements is kept cannot matter, and `digest` reads the rows in
      key order, not in the order they were written);
    - the table's SQL has no CHECK and no COLLATE, and the target has no trigger at all
      (nothing that could refuse a row, then an event, or change a parent's array, one
      way and not the other: trial 36 found a trigger on a third table that did);
    - no handler reads it (QUERIED: `projector.handlers.Handlers.queried`; None, when a
      Python handler may read anything, defers none).
    """
    if queried is None:
        return []
    read = {table for table, _ in queried}
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger'").fetchone():
        return []
    found = []
    for table in tables.values():
        d = table.derived
        parent = tables.get(d.parent) if d is not None else None
        if d is None or parent is None or parent.row_key is None:
            continue
        if table.name in read:
            continue
        sql = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table.name,)
        ).fetchone()
        if sql is None or re.search(r"\b(CHECK|COLLATE)\b", sql[0], re.IGNORECASE):
            continue
        declared = {r[1]: str(r[2]) for r in conn.execute(f'PRAGMA table_info("{table.name}")')}
        parent_key = {
            r[1]: str(r[2]) for r in conn.execute(f'PRAGMA table_info("{parent.name}")')
        }.get(parent.row_key)
        if set(declared) != {d.key, d.element} or parent_key is None:
            continue
        if not all(_text_affinity(t) for t in (declared[d.key], declared[d.element], parent_key)):
            continue
        if _only_key(conn, table.name, {d.key, d.element}):
            found.append(table.name)
    return found


def _text_affinity(declared: str) -> bool:
    """Whether a column declared DECLARED has TEXT affinity (https://sqlite.org/
    datatype3.html, section 3.1: no INT, and CHAR, CLOB or TEXT)."""
    declared = declared.upper()
    return "INT" not in declared and any(t in declared for t in ("CHAR", "CLOB", "TEXT"))


def _only_key(conn: sqlite3.Connection, table: str, columns: set[str]) -> bool:
    """Whether TABLE's primary key is exactly COLUMNS, each under the BINARY collation,
    and it has no other unique index (https://sqlite.org/pragma.html#pragma_index_list:
    origin "pk" for the primary key's)."""
    unique = [
        (name, origin)
        for _, name, u, origin, _ in conn.execute(f'PRAGMA index_list("{table}")')
        if u
    ]
    if len(unique) != 1 or unique[0][1] != "pk":
        return False
    keyed = [r for r in conn.execute(f'PRAGMA index_xinfo("{unique[0][0]}")') if r[5]]
    return (
        len(keyed) == len(columns)
        and {r[2] for r in keyed} == columns
        and all(r[4] == "BINARY" for r in keyed)
    )


# ---------------------------------------------------------------- the app's tables


@dataclass(frozen=True)
class Derived:
    """A table holding one row per distinct element of a parent's JSON-array column."""

    parent: str  # the parent table
    column: str  # the parent's JSON-array column
    key: str  # the column holding the parent's key
    element: str  # the column holding one element


@dataclass(frozen=True)
class Reference:
    """A foreign key of the target: COLUMN must name an existing row of TABLE."""

    column: str
    table: str
    noun: str


@dataclass
class Table:
    """One of the app's target tables, as its catalog declares it and SQLite created it."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    #: The DDL default of each column, evaluated (None where there is none).
    defaults: dict[str, Any]
    codecs: dict[str, str] = field(default_factory=dict)
    noun: str = ""
    references: tuple[Reference, ...] = ()
    derived: Derived | None = None
    #: The default document of a client document table (LiveStore's default.value).
    client_document: dict[str, Any] | None = None
    #: The LiveStore state table this table mirrors; None for the target's own tables.
    livestore: str | None = None
    #: target column -> LiveStore column, where the names differ.
    livestore_columns: dict[str, str] = field(default_factory=dict)

    @property
    def row_key(self) -> str | None:
        """The single key column handlers address rows by (None for a composite key)."""
        return self.key[0] if len(self.key) == 1 else None


def read_tables(conn: sqlite3.Connection, catalog: Catalog) -> dict[str, Table]:
    """The catalog's tables as the target holds them, in the catalog's order.

    Raises CatalogError when catalog.toml and the migrations disagree: a declared table
    the migrations did not create, an app table the catalog does not declare, a codec or
    a derived table naming a column that is not there.
    """
    declared: dict[str, Any] = catalog.spec.get("tables", {})
    present = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not r[0].startswith("sqlite_") and r[0] not in BOOKKEEPING_TABLES
    }
    where = f"{catalog.directory}/catalog.toml"
    undeclared = sorted(present - declared.keys())
    if undeclared:
        raise CatalogError(f"{where}: the migrations create {undeclared} but [tables] lacks them")
    tables: dict[str, Table] = {}
    for name, spec in declared.items():
        if name not in present:
            raise CatalogError(f"{where}: [tables.{name}] is not created by the migrations")
        info = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
        columns = tuple(r[1] for r in info)
        key = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
        defaults = {r[1]: _evaluate_default(conn, r[4]) for r in info}
        codecs = dict(spec.get("codecs", {}))
        document = None
        if "client_document" in spec:
            try:
                document = json.loads(spec["client_document"])
            except ValueError as exc:
                raise CatalogError(f"{where}: [tables.{name}] client_document: {exc}") from None
            if not isinstance(document, dict) or set(columns) != {"id", "value"}:
                raise CatalogError(
                    f"{where}: [tables.{name}] a client document is a JSON object default "
                    "in a table of columns (id, value)"
                )
            codecs["value"] = "json"
        unknown = sorted(set(codecs) - set(columns))
        if unknown:
            raise CatalogError(f"{where}: [tables.{name}] codecs name no column {unknown}")
        derived = None
        if "derived" in spec:
            d = spec["derived"]
            derived = Derived(d["from"], d["column"], d["key"], d["element"])
        livestore = spec.get("livestore", name)
        tables[name] = Table(
            name=name,
            key=key,
            columns=columns,
            defaults=defaults,
            codecs=codecs,
            noun=spec.get("noun", name),
            derived=derived,
            client_document=document,
            livestore=None if livestore is False or derived else livestore,
            livestore_columns=dict(spec.get("livestore_columns", {})),
        )
    for table in tables.values():
        refs = []
        for row in conn.execute(f'PRAGMA foreign_key_list("{table.name}")'):
            ref_table, column = row[2], row[3]
            if table.derived is None and ref_table in tables:
                refs.append(Reference(column, ref_table, tables[ref_table].noun))
        table.references = tuple(refs)
        if table.derived:
            d = table.derived
            parent = tables.get(d.parent)
            if parent is None or d.column not in parent.columns or parent.row_key is None:
                raise CatalogError(
                    f"{where}: [tables.{table.name}] derived from {d.parent}.{d.column}, "
                    "which is not a column of a table with a single-column key"
                )
            if {d.key, d.element} - set(table.columns):
                raise CatalogError(
                    f"{where}: [tables.{table.name}] has no columns {d.key!r}, {d.element!r}"
                )
    return tables


def _evaluate_default(conn: sqlite3.Connection, expression: str | None) -> Any:
    """The value of a column's DDL default (PRAGMA table_info's dflt_value), or None."""
    if expression is None:
        return None
    return conn.execute(f"SELECT {expression}").fetchone()[0]


@contextmanager
def scratch_database(
    catalog: Catalog, origins: dict[str, str] | None = None
) -> Iterator[sqlite3.Connection]:
    """An in-memory database holding what a new target holds before its first run: the
    projector's tables and CATALOG's, created by their migrations (ORIGINS, when given,
    gets the migration file that last created or changed each table: `catalog_migrations`).

    Raises CatalogError for a migration SQLite refuses.
    """
    for name in catalog.spec.get("tables", {}):
        if reserved(name):
            raise CatalogError(
                f"{catalog.directory}/{SPEC_FILE}: [tables.{name}]: {name!r} is reserved "
                f"for the projector's bookkeeping ({RESERVED_NAMES}); name the table otherwise"
            )
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        db = Database(conn, execute_plugins=False)
        with db.atomic():
            migrations.apply(db)
            try:
                catalog_migrations(catalog, origins).apply(db)
            except sqlite3.DatabaseError as exc:
                raise CatalogError(
                    f"{catalog.directory}/migrations: SQLite refuses a migration ({exc})"
                ) from None
        yield conn
    finally:
        conn.close()


def catalog_tables(catalog: Catalog) -> dict[str, Table]:
    """CATALOG's tables as its migrations create them, worked out in a scratch database
    (so a catalog is checked whole before any target is touched), with its views.

    Raises CatalogError for a migration SQLite refuses, a catalog.toml that does not
    match the tables (see `read_tables`) or a view SQLite refuses (`create_views`).
    """
    with checked_tables(catalog) as (conn, tables):
        create_views(conn, catalog, tables)
        return tables


@contextmanager
def checked_tables(catalog: Catalog) -> Iterator[tuple[sqlite3.Connection, dict[str, Table]]]:
    """A `scratch_database` of CATALOG and its tables, read (`read_tables`) and their
    foreign keys checked (`check_references`): (connection, tables by name). Raises as
    those do."""
    origins: dict[str, str] = {}
    with scratch_database(catalog, origins) as conn:
        tables = read_tables(conn, catalog)
        check_references(conn, catalog, tables, origins)
        yield conn, tables


def check_references(
    conn: sqlite3.Connection, catalog: Catalog, tables: dict[str, Table], origins: dict[str, str]
) -> None:
    """Refuse a foreign key of TABLES that SQLite could never satisfy: one naming a table
    or a column that is not there, or parent columns that are neither the parent's
    primary key nor a UNIQUE index (https://www.sqlite.org/foreignkeys.html#fk_indexes).
    SQLite itself accepts such a key when the table is created; the replay would write
    rows that `verify`'s foreign_key_check then fails.

    Raises CatalogError naming the migration that created the table (ORIGINS:
    `scratch_database`), the table and the key.
    """
    for table in tables:
        keys: dict[int, list[Any]] = {}
        for row in conn.execute(f'PRAGMA foreign_key_list("{table}")'):
            keys.setdefault(row[0], []).append(row)
        for rows in keys.values():
            parent = rows[0][2]
            children = [r[3] for r in rows]
            named = [r[4] for r in rows]
            shown = f"{table}({', '.join(children)}) REFERENCES {parent}" + (
                f"({', '.join(named)})" if None not in named else ""
            )
            problem = _reference_problem(conn, parent, named)
            if not problem and tables[table].derived is None:
                problem = _unchecked_reference(tables.get(parent), children, named)
            if problem:
                where = origins.get(table, f"{catalog.directory}/{MIGRATIONS_DIR}")
                raise CatalogError(f"{where}: {shown}: {problem}")


def _unchecked_reference(parent: Table | None, children: list[str], named: list[str | None]) -> str:
    """Why the replay could not check a valid foreign key of CHILDREN to PARENT's NAMED
    columns, or '': handlers look a parent row up by its key (`Table.row_key`), so a
    foreign key must name one column and the parent's single-column primary key (a
    UNIQUE column, or several columns, would let rows through or park valid events)."""
    if parent is None:  # a table the catalog does not declare: refused by read_tables
        return ""
    key = parent.row_key
    if len(children) == 1 and key is not None and named[0] in (None, key):
        return ""
    return (
        f"the projector checks a foreign key against its parent's single-column primary "
        f"key ({parent.name} has {', '.join(parent.key) or 'none'}); refer to that"
    )


def _reference_problem(conn: sqlite3.Connection, parent: str, named: list[str | None]) -> str:
    """Why the parent key NAMED (None: the parent's primary key) of table PARENT cannot
    be a foreign key's target, or ''."""
    info = conn.execute(f'PRAGMA table_info("{parent}")').fetchall()
    if not info or parent in BOOKKEEPING_TABLES:
        return f"{parent} is not a table the migrations create"
    columns = {r[1].lower(): r[1] for r in info}
    primary = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
    if None in named:
        if not primary:
            return f"{parent} has no primary key to refer to (name its column)"
        if len(primary) != len(named):
            return (
                f"the primary key of {parent} is ({', '.join(primary)}), not {len(named)} column(s)"
            )
        return ""
    missing = [c for c in named if c is not None and c.lower() not in columns]
    if missing:
        return f"{parent} has no column(s) {missing}"
    wanted = {str(c).lower() for c in named}
    if wanted == {c.lower() for c in primary}:
        return ""
    for index in conn.execute(f'PRAGMA index_list("{parent}")'):
        if index[2] and not index[4]:  # unique, not partial
            indexed = {str(r[2]).lower() for r in conn.execute(f'PRAGMA index_info("{index[1]}")')}
            if indexed == wanted:
                return ""
    return (
        f"{', '.join(str(c) for c in named)} of {parent} is neither its primary key nor "
        "UNIQUE (SQLite requires one of them of a foreign key's parent)"
    )


def create_views(
    conn: sqlite3.Connection, catalog: Catalog, tables: dict[str, Table]
) -> dict[str, str]:
    """Create CATALOG's ``[views.<name>]`` in CONN (a scratch database holding TABLES);
    return each view's CREATE VIEW statement, by name, in the catalog's order.

    SQLite parses a view when it is created but resolves its tables and columns only
    when it is used, so each one is also read (PRAGMA table_info) here.

    Raises CatalogError (one line, naming catalog.toml and the view) for a view with a
    table's name, SQL SQLite refuses, a table or column that is not there, or codecs
    naming a column the view lacks.
    """
    where = f"{catalog.directory}/{SPEC_FILE}"
    created: dict[str, str] = {}
    for name, spec in catalog.spec.get("views", {}).items():
        if name in tables:
            raise CatalogError(f"{where}: [views.{name}] has the name of a table")
        sql = f'CREATE VIEW "{name}" AS {spec["sql"].strip().rstrip(";")}'
        try:
            conn.execute(sql)
            columns = {r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')}
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"{where}: [views.{name}]: SQLite refuses it ({exc})") from None
        unknown = sorted(set(spec.get("codecs", {})) - columns)
        if unknown:
            raise CatalogError(f"{where}: [views.{name}] codecs name no column {unknown}")
        created[name] = sql
    return created


def catalog_migrations(catalog: Catalog, origins: dict[str, str] | None = None) -> Migrations:
    """The catalog's migrations/*.sql as a sqlite-utils migration set named after it.

    ORIGINS, when given, gets the path of the migration that last created or changed
    each table (for messages naming the file). Applying raises CatalogError naming the
    migration file SQLite refuses, or whose last statement is unterminated.
    """
    found = Migrations(catalog.name)
    for name, script in catalog.migrations:
        path = f"{catalog.directory}/{MIGRATIONS_DIR}/{name}.sql"

        def apply(db: Database, script: str = script, path: str = path) -> None:
            before = _table_sql(db.conn)
            try:
                run_script(db, script)
            except CatalogError as exc:  # an unterminated statement
                raise CatalogError(f"{path}: {exc}") from None
            except sqlite3.DatabaseError as exc:
                taken = re.fullmatch(r'(?:table|index) "?([^"]+)"? already exists', str(exc))
                if taken and reserved(taken.group(1)):
                    raise _creates_reserved(path, taken.group(1)) from None
                raise CatalogError(f"{path}: SQLite refuses it ({exc})") from None
            for table, sql in _table_sql(db.conn).items():
                if table not in before and reserved(table):
                    raise _creates_reserved(path, table)
                if origins is not None and before.get(table) != sql:
                    origins[table] = path

        found(name=name)(apply)
    return found


def _creates_reserved(path: str, name: str) -> CatalogError:
    return CatalogError(
        f"{path}: creates {name!r}, a name reserved for the projector's bookkeeping "
        f"({RESERVED_NAMES}); name it otherwise"
    )


def _table_sql(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))


def _refuse_legacy(db: Database, path: Path) -> None:
    applied = {m.name for m in migrations.applied(db)}
    if applied & LEGACY_MIGRATIONS:
        raise _legacy(path)
