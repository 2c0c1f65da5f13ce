"""The target database: the app's relational tables, created and versioned with Migrations.

Table names, column names and value encodings are LiveStore's own (so the app's queries
carry over and rows compare exactly with LiveStore's state DB). What the target adds is
integrity: NOT NULL, CHECKs for enums, booleans and JSON, foreign keys, indexes, and the
``memory_tags`` child table. The ``_projector_*`` tables and eventsourcing's ``tracking``
table hold the migration's own bookkeeping.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from events.sources import connect_readonly
from projector.errors import TargetError

MIGRATION_SET = "livestore-projector"
migrations = Migrations(MIGRATION_SET)

#: The app's tables, in the order a digest or a comparison walks them, with primary keys.
APP_TABLES: dict[str, tuple[str, ...]] = {
    "personas": ("id",),
    "memories": ("id",),
    "memory_tags": ("memoryId", "tag"),
    "plugins": ("id",),
    "config": ("key",),
    "drafts": ("personaId",),
    "userPreferences": ("id",),
    "uiState": ("id",),
}
#: Tables LiveStore itself has (memory_tags is the target's own index of memories.tags).
LIVESTORE_TABLES = tuple(t for t in APP_TABLES if t != "memory_tags")
PARKED_TABLE = "_projector_parked"
DEVIATIONS_TABLE = "_projector_deviations"
STATE_TABLE = "_projector_migration"
RUNS_TABLE = "_projector_runs"
#: The target connection's page cache, in KiB.
CACHE_KIB = 16 * 1024


def _run_script(db: Database, script: str) -> None:
    """Run DDL statement by statement: executescript() would COMMIT the migration's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


@migrations()
def m001_app_tables(db: Database) -> None:
    _run_script(
        db,
        """
        CREATE TABLE personas (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            personality TEXT NOT NULL DEFAULT '',
            avatar TEXT,
            voice TEXT,
            createdAt TEXT NOT NULL,
            deletedAt TEXT
        ) STRICT;
        CREATE TABLE memories (
            id TEXT PRIMARY KEY NOT NULL,
            personaId TEXT NOT NULL REFERENCES personas(id),
            content TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL
                CHECK (kind IN ('fact', 'preference', 'episode', 'instruction', 'relationship')),
            importance REAL NOT NULL DEFAULT 0.5,
            tags TEXT NOT NULL DEFAULT '[]' CHECK (json_type(tags) = 'array'),
            createdAt TEXT NOT NULL,
            updatedAt TEXT NOT NULL
        ) STRICT;
        CREATE INDEX idx_memories_personaId ON memories (personaId);
        CREATE TABLE memory_tags (
            memoryId TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (memoryId, tag)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX idx_memory_tags_tag ON memory_tags (tag, memoryId);
        CREATE TABLE plugins (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            manifest TEXT NOT NULL CHECK (json_type(manifest) = 'object'),
            enabled INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
            installedAt INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE config (
            key TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL CHECK (json_valid(value))
        ) STRICT;
        CREATE TABLE drafts (
            personaId TEXT PRIMARY KEY NOT NULL REFERENCES personas(id),
            text TEXT NOT NULL DEFAULT '',
            savedAt TEXT NOT NULL
        ) STRICT;
        CREATE TABLE userPreferences (
            id TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL CHECK (json_type(value) = 'object')
        ) STRICT;
        CREATE TABLE uiState (
            id TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL CHECK (json_type(value) = 'object')
        ) STRICT;
        """,
    )


@migrations()
def m002_projector_tables(db: Database) -> None:
    _run_script(
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
    conn.execute("PRAGMA busy_timeout = 5000")
    # 16 MiB of page cache (SQLite's default is 2 MiB): a batch's index pages stay cached
    # instead of being re-read and spilled to the WAL mid-transaction, which cut the
    # large fixture's pread/pwrite calls from ~460,000 to ~70,000. Memory stays bounded.
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    return conn


def _nearest_folder(path: Path) -> Path:
    """The closest existing ancestor of PATH (the folder a new target would be made in)."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


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
        raise TargetError(f"{path}: is a directory; TARGET is a database file (e.g. {path}/app.db)")
    if path.exists() and not path.is_file():
        raise TargetError(f"{path}: not a regular file; TARGET is a database file")
    folder = _nearest_folder(path)
    if not folder.is_dir():
        raise TargetError(f"{path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only_fs(folder) else "permission denied"
        raise TargetError(f"{path}: cannot write in {folder} ({why})")
    lock = path.with_name(path.name + ".lock")
    if lock.exists() and not lock.is_file():
        raise TargetError(f"{path}: cannot create the lock file {lock} (something else is there)")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            why = "read-only file system" if _read_only_fs(path) else "permission denied"
            raise TargetError(f"{path}: cannot write to it ({why})")
        refuse_foreign(path)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


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


def open_target(path: Path, *, create: bool) -> Database:
    """Open TARGET (created when CREATE) as a sqlite-utils Database, its schema migrated to
    the current version: a target an older version made gains the newer tables (m005)."""
    if not create and not path.exists():
        raise TargetError(f"{path}: no such target database")
    try:
        if path.exists():
            refuse_foreign(path)
        conn = connect(path)
        db = Database(conn)
        if not create and STATE_TABLE not in db.table_names():
            conn.close()
            raise TargetError(f"{path}: not a projector target (no migration record)")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if create or migrations.pending(db):
            # Foreign keys off while migrating: a table rebuild must not cascade (m004).
            conn.execute("PRAGMA foreign_keys = OFF")
            with db.atomic():  # all migrations or none: a killed first run leaves no half schema
                migrations.apply(db)
                problems = conn.execute("PRAGMA foreign_key_check").fetchone()
                if problems:
                    raise TargetError(f"{path}: migrating would break a reference ({problems})")
            conn.execute("PRAGMA foreign_keys = ON")
        return db
    except sqlite3.DatabaseError as exc:
        raise TargetError(f"{path}: cannot open target database ({exc})") from None


def is_target(path: Path) -> bool:
    try:
        conn = connect_readonly(path)
        try:
            row = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (STATE_TABLE,)
            ).fetchone()
        finally:
            conn.close()
        return row is not None
    except sqlite3.DatabaseError:
        return False


@migrations()
def m003_tracking(db: Database) -> None:
    # eventsourcing's own tracking table, created by its recorder in this transaction.
    from projector.checkpoint import TrackingView

    TrackingView().create_on(db.conn)


@migrations()
def m004_memories_kind_check_as_ors(db: Database) -> None:
    # The same CHECK on memories.kind, spelled with ORs: SQLite evaluates `kind IN (...)`
    # by building a lookup table for every row written, which made each memory insert
    # cost about 5 us more. Rebuilt the documented way (create, copy, drop, rename) with
    # foreign keys off, so dropping the old table cascades nothing (see open_target).
    _run_script(
        db,
        """
        CREATE TABLE memories_m004 (
            id TEXT PRIMARY KEY NOT NULL,
            personaId TEXT NOT NULL REFERENCES personas(id),
            content TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL CHECK (
                kind = 'fact' OR kind = 'preference' OR kind = 'episode'
                OR kind = 'instruction' OR kind = 'relationship'
            ),
            importance REAL NOT NULL DEFAULT 0.5,
            tags TEXT NOT NULL DEFAULT '[]' CHECK (json_type(tags) = 'array'),
            createdAt TEXT NOT NULL,
            updatedAt TEXT NOT NULL
        ) STRICT;
        INSERT INTO memories_m004 (id, personaId, content, kind, importance, tags, createdAt,
            updatedAt)
        SELECT id, personaId, content, kind, importance, tags, createdAt, updatedAt
        FROM memories;
        DROP TABLE memories;
        ALTER TABLE memories_m004 RENAME TO memories;
        CREATE INDEX idx_memories_personaId ON memories (personaId);
        """,
    )


@migrations()
def m005_deviations_and_strict_keys(db: Database) -> None:
    # Rows an applied event changed unlike LiveStore, on purpose (projector/deviations.py),
    # so that `verify --against` can name the deviation that explains a difference; and
    # the run's key policy (--strict-keys), which `resume` reuses like onInvalid.
    _run_script(
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
