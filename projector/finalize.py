"""`finalize`: hand the migrated data over to the new app, as the app expects to open it.

From a verified TARGET, `finalize` writes APP_DB: the catalog's tables and indexes with
every row (`projector.appschema`: the same statements as the Drizzle 0000 migration),
then the derived tables' triggers and the declared views, the ``[target]`` PRAGMAs
(``user_version``, ``application_id``) and, when asked, Drizzle's migrations table with
the 0000 migration recorded as applied. It is written beside APP_DB under another name,
checked (integrity_check, foreign_key_check, every table's content digest equal to
TARGET's), closed in rollback-journal mode (``delete``, the default: the file is
complete by itself, so it opens read-only from a read-only folder without creating a
``-wal``/``-shm`` or failing with SQLITE_READONLY_DIRECTORY; https://www.sqlite.org/wal.html#readonly)
or in WAL mode if asked, and renamed over APP_DB.

The migration's bookkeeping (tracking, runs, parked events, counters, applied
migrations) goes to the sidecar ``APP_DB.projector.db``, with a ``_projector_handoff``
record of each hand-off (TARGET's checkpoint and digest, APP_DB's content digest), so
``status``, ``digest`` and the parked events stay auditable from APP_DB and its sidecar
after TARGET is gone, and APP_DB's namespace holds the app's tables only.

TARGET is only read: catch-up keeps working. The old app may keep writing events;
``projector replay SOURCE TARGET`` catches up and ``finalize`` again replaces APP_DB,
unless the app has written to APP_DB since it was handed over (its content digest
differs from the recorded one), which is refused: that data would be lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events.catalog import Catalog
from events.scratch import folders_for, remove_dead
from events.sources import connect_readonly, read_only_fs, readonly_uri
from events.sqlite_source import EVENTLOG_FILE, STATE_FILE
from projector import backup as backups
from projector import drizzle as drizzle_files
from projector.appschema import AppSchema, app_schema
from projector.digest import digest as target_digest
from projector.digest import key_columns, table_digest
from projector.errors import HandoffError, TargetError, command_line
from projector.handoff import (
    SIDECAR_SUFFIX,
    is_handed_over,
    last_handoff,
    refuse_handed_over,
    sidecar_path,
)
from projector.lock import writer_lock
from projector.replay import load_recorded_catalog
from projector.runs import status as target_status
from projector.target import (
    BOOKKEEPING_TABLES,
    HANDOFF_TABLE,
    PARKED_TABLE,
    RUNS_TABLE,
    STATE_TABLE,
    folder_problem,
    in_source_folder,
    is_target,
    real_target,
    refuse_legacy,
    refuse_sidecar,
    require_target,
    state_columns,
)
from projector.verify import SOURCE_SKIPPED, VerifyReport, verify

#: Journal modes a handed-over file can carry: only WAL is stored in the database header
#: (https://www.sqlite.org/pragma.html#pragma_journal_mode); every rollback-journal mode
#: (truncate, persist) is a connection's choice, so `delete` stands for all of them.
JOURNAL_MODES = ("delete", "wal")

_HANDOFF_DDL = f"""CREATE TABLE {HANDOFF_TABLE} (
    id INTEGER PRIMARY KEY,
    finalizedAt TEXT NOT NULL,
    target TEXT NOT NULL,
    appDb TEXT NOT NULL,
    position INTEGER NOT NULL,
    lastEventId TEXT,
    targetDigest TEXT NOT NULL,
    appDigest TEXT NOT NULL,
    journalMode TEXT NOT NULL,
    userVersion INTEGER,
    applicationId INTEGER,
    drizzleMigrations TEXT,
    drizzleHash TEXT,
    drizzleCreatedAt INTEGER
) STRICT"""


def default_app_db(target: Path) -> Path:
    """APP_DB when ``--out`` is not given: ``out/app.db`` -> ``out/app.app.db``."""
    return target.with_name(f"{target.stem}.app{target.suffix or '.db'}")


@dataclass
class FinalizeOptions:
    out: Path | None = None
    against: Path | None = None
    catalog: Catalog | None = None
    #: "delete" or "wal"; None: the mode of the last hand-off into APP_DB when this
    #: migration made it (a catch-up keeps the mode the app was given), else "delete".
    journal_mode: str | None = None
    #: A Drizzle folder: generated there when it holds no migration journal, then its
    #: 0000 migration is recorded as applied in APP_DB.
    drizzle: Path | None = None
    force: bool = False
    #: Seconds the target's source may stay locked while verify re-reads it (None: the
    #: default of `events.sqlite_source`).
    lock_timeout: float | None = None
    #: Whether verify re-reads the recorded source (False: it was retired; the check
    #: says it was skipped, as `verify --no-source`).
    source: bool = True


@dataclass
class FinalizeResult:
    target: str
    app_db: str
    sidecar: str
    catalog: str
    position: int
    last_event_id: str | None
    #: Events parked in the migration: their rows are not in APP_DB (see the sidecar).
    parked: int
    rows: dict[str, int]
    target_digest: str
    app_digest: str
    journal_mode: str
    user_version: int | None
    application_id: int | None
    replaced: bool
    checks: list[str] = field(default_factory=list)
    drizzle: dict[str, Any] | None = None
    seconds: float = 0.0
    #: What --force replaced that finalize would not have: another migration's hand-off,
    #: the app's writes, a file finalize did not hand over.
    discarded: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "appDb": self.app_db,
            "sidecar": self.sidecar,
            "catalog": self.catalog,
            "position": self.position,
            "lastEventId": self.last_event_id,
            "parked": self.parked,
            "rows": self.rows,
            "targetDigest": self.target_digest,
            "appDigest": self.app_digest,
            "journalMode": self.journal_mode,
            "userVersion": self.user_version,
            "applicationId": self.application_id,
            "replaced": self.replaced,
            "checks": self.checks,
            "drizzle": self.drizzle,
            "discarded": self.discarded,
            "seconds": round(self.seconds, 3),
        }


def finalize(target: Path, options: FinalizeOptions | None = None) -> FinalizeResult:
    """Verify TARGET and hand its data over as APP_DB plus sidecar (module docstring).

    Raises TargetError when TARGET is not a projector target (or is a sidecar), and
    HandoffError when TARGET does not verify, its tables are not its catalog's, APP_DB is
    TARGET, or APP_DB exists and was not handed over by finalize, was handed over by
    another migration or by this one at a later position, or has changed since (each
    overridden by ``force``; the result's ``discarded`` says what it replaced), or a
    check of the written file fails. Nothing is replaced unless every check passed.
    APP_DB named through a symbolic link is the file it links to.
    """
    options = options or FinalizeOptions()
    started = time.monotonic()
    if options.journal_mode is not None and options.journal_mode not in JOURNAL_MODES:
        raise HandoffError(f"journal mode {options.journal_mode!r}: one of {JOURNAL_MODES}")
    target = real_target(target)
    refuse_handed_over(target, "finalize")
    require_target(target)
    refuse_sidecar(target)
    refuse_legacy(target, "to hand it over")
    # Through a symbolic link, the database it links to is replaced, not the link: the
    # app keeps opening the path it knows (as a target named through a link).
    app_db = real_target(options.out or default_app_db(target))
    if app_db.is_dir():  # `.` or `/` too, which have no name for a sidecar to extend
        raise HandoffError(f"{app_db}: is a directory; APP_DB is a database file")
    sidecar = sidecar_path(app_db)
    if {app_db.resolve(), sidecar.resolve()} & {target.resolve()}:
        raise HandoffError(f"{app_db}: is the target itself; hand over into another file")
    _refuse_out(app_db, target)
    # On a read-only file system no projector can write TARGET, and its lock file cannot
    # be created: finalize only reads it there.
    lock = contextlib.nullcontext() if read_only_fs(target) else writer_lock(target)
    # APP_DB's folders, made below: removed again (when empty) if nothing is handed over.
    folders = contextlib.ExitStack()
    with lock, _last_reader(target), folders:
        catalog = options.catalog or recorded_catalog(target)
        report = verify(
            target,
            options.against,
            source=options.source,
            catalog=catalog,
            lock_timeout=options.lock_timeout,
        )
        if not report.ok:
            failed = [c for c in report.checks if not c.ok]
            why = f"{failed[0].name}: {failed[0].detail}" if failed else "unexplained differences"
            raise HandoffError(
                f"{target}: does not verify ({why}); see {command_line('verify', target)}; "
                "not handed over"
            )
        # The last hand-off into APP_DB, read once for the checks and the Drizzle record.
        previous = last_handoff(sidecar) if app_db.exists() and sidecar.exists() else None
        replaced, discarded, same = _check_replaceable(
            app_db, previous, sidecar, options.force, target
        )
        journal_mode = options.journal_mode or (
            previous["journalMode"]
            if same and previous is not None and previous["journalMode"] in JOURNAL_MODES
            else "delete"
        )
        drizzle_before = previous is not None and previous.get("drizzleHash")
        if replaced and not same and options.drizzle is None and drizzle_before:
            assert previous is not None  # not carried over (below): say so
            discarded.append(
                f"the Drizzle migration it recorded as applied ({previous['drizzleMigrations']}):"
                " --drizzle DIR records this app's"
            )
        schema = app_schema(catalog)
        _check_same_tables(target, schema)
        try:  # as replay creates its target's folder
            folders.enter_context(folders_for(app_db))
        except OSError as exc:
            raise HandoffError(
                f"{app_db.parent}: cannot create the folder ({exc.strerror})"
            ) from None
        drizzle_row = None
        drizzle_info = None
        if options.drizzle is not None:
            if drizzle_files.find_migrations(options.drizzle) is None:
                if (options.drizzle / "schema.ts").exists():
                    raise HandoffError(
                        f"{options.drizzle}: holds a schema.ts but no Drizzle migration "
                        "journal; pass the folder `projector drizzle` wrote"
                    )
                drizzle_info = drizzle_files.write_drizzle(
                    catalog, options.drizzle, schema=schema
                ).as_dict()
            drizzle_row = drizzle_files.applied_migration(catalog, options.drizzle, schema)
            drizzle_info = (drizzle_info or {}) | {
                "migrations": str(drizzle_row[2].parent),
                "migration": drizzle_row[2].name,
                "hash": drizzle_row[0],
                "when": drizzle_row[1],
            }
        elif replaced and same:
            # Catching up an app database handed over with its Drizzle migration recorded
            # as applied: the new one keeps that record, or the app's migrate() would run
            # the 0000 migration again over existing tables (not another migration's,
            # perhaps another app's, which --force replaced).
            if previous is not None and previous.get("drizzleHash"):
                kept = Path(previous["drizzleMigrations"])
                drizzle_row = (previous["drizzleHash"], previous["drizzleCreatedAt"], kept)
                drizzle_info = {
                    "migrations": str(kept),
                    "migration": "(kept from the last hand-off)",
                    "hash": previous["drizzleHash"],
                    "when": previous["drizzleCreatedAt"],
                }
        state = _state(target)
        tmp_app = app_db.with_name(f".{app_db.name}.tmp{os.getpid()}")
        tmp_side = app_db.with_name(f".{sidecar.name}.tmp{os.getpid()}")
        # What a finalize into the same APP_DB killed outright left (events.scratch).
        names = "|".join(re.escape(n) for n in (app_db.name, sidecar.name))
        remove_dead(
            app_db.parent,
            re.compile(rf"\.(?:{names})\.tmp(?P<pid>\d+)(?:-journal|-wal|-shm)?"),
        )
        try:
            rows, checks = _write_app(tmp_app, target, schema, drizzle_row, journal_mode)
            checks.insert(0, _verified(target, report))
            app_digest, digests = app_digests(tmp_app)
            digest_of_target = target_digest(target)["overall"]
            record = {
                "finalizedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "target": str(target.resolve()),
                "appDb": str(app_db.resolve()),
                "position": state["position"],
                "lastEventId": state["lastEventId"],
                "targetDigest": digest_of_target,
                "appDigest": app_digest,
                "journalMode": journal_mode,
                "userVersion": schema.user_version,
                "applicationId": schema.application_id,
                # Absolute, as target and appDb are: read later from any folder.
                "drizzleMigrations": (
                    str(Path(drizzle_info["migrations"]).resolve()) if drizzle_info else None
                ),
                "drizzleHash": drizzle_row[0] if drizzle_row else None,
                "drizzleCreatedAt": drizzle_row[1] if drizzle_row else None,
            }
            _write_sidecar(tmp_side, target, sidecar, record)
            handed = handoff_digest(tmp_app, tmp_side, digests)["overall"]
            if handed != digest_of_target:
                raise HandoffError(
                    f"{app_db}: its tables and parked events digest to {handed[:12]}, "
                    f"not to TARGET's {digest_of_target[:12]}; not handed over"
                )
            checks.append(
                f"every table row for row: digest of {app_db.name} + sidecar = "
                f"digest of {target.name}"
            )
            for suffix in ("-wal", "-shm", "-journal"):
                for base in (app_db, sidecar):
                    base.with_name(base.name + suffix).unlink(missing_ok=True)
            os.replace(tmp_side, sidecar)
            os.replace(tmp_app, app_db)
            _fsync_dir(app_db.parent)
        except (sqlite3.OperationalError, OSError) as exc:  # a full disk, an I/O error
            was = "as it was" if app_db.exists() else "not created"
            raise HandoffError(
                f"{app_db}: cannot write the hand-off ({exc}); not handed over, {app_db.name} "
                f"is {was}"
            ) from None
        finally:
            for tmp in (tmp_app, tmp_side):
                for suffix in ("", "-journal", "-wal", "-shm"):
                    tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
    left = [
        p.name for p in (app_db.with_name(app_db.name + s) for s in ("-wal", "-shm", "-journal"))
    ]
    left = [name for name in left if (app_db.parent / name).exists()]
    if left:  # pragma: no cover - SQLite removes them when the last connection closes
        raise HandoffError(f"{app_db}: {', '.join(left)} left beside it")
    return FinalizeResult(
        target=str(target),
        app_db=str(app_db),
        sidecar=str(sidecar),
        catalog=catalog.name,
        position=state["position"],
        last_event_id=state["lastEventId"],
        parked=state["parked"],
        rows=rows,
        target_digest=digest_of_target,
        app_digest=app_digest,
        journal_mode=journal_mode,
        user_version=schema.user_version,
        application_id=schema.application_id,
        replaced=replaced,
        checks=checks,
        drizzle=drizzle_info,
        seconds=time.monotonic() - started,
        discarded=discarded,
    )


def _verified(target: Path, report: VerifyReport) -> str:
    """What the verification finalize ran first found (every check passed)."""
    against = next((c.detail for c in report.checks if c.name == "against"), None)
    names = ", ".join(
        # A source check skipped (--no-source) passed without reading anything: say so.
        f"{c.name} {SOURCE_SKIPPED}" if c.skipped else c.name
        for c in report.checks
        if c.name != "against"
    )
    if against is None:
        return (
            f"verified {target.name} ({names}; no --against: not compared with LiveStore's state)"
        )
    return f"verified {target.name} ({names}); {against}"


def recorded_catalog(target: Path) -> Catalog:
    """The catalog TARGET's migration recorded. Raises TargetError for a path that is not
    a target, HandoffError for a target with no migration yet, and CatalogError when the
    catalog is gone or its files changed since the migration began."""
    require_target(target)
    conn = connect_readonly(target)
    try:
        catalog = load_recorded_catalog(target, conn)
    finally:
        conn.close()
    if catalog is None:
        raise HandoffError(f"{target}: no migration recorded yet; nothing to hand over")
    return catalog


def _state(target: Path) -> dict[str, Any]:
    conn = connect_readonly(target)
    try:
        position, last, parked, state = conn.execute(
            f"SELECT position, lastEventId, parked, state FROM {STATE_TABLE} WHERE id = 1"
        ).fetchone()
    finally:
        conn.close()
    if state in ("running", "failed"):
        raise HandoffError(
            f"{target}: its last run is {state}; finish it (`projector resume`) first"
        )
    return {"position": position, "lastEventId": last, "parked": parked}


@contextlib.contextmanager
def _last_reader(target: Path) -> Iterator[None]:
    """Hold a reader of TARGET open while finalize reads it: `connect_readonly` opens a
    WAL target with no -wal/-shm read-write (query_only), so that, closing last, it
    removes the -wal/-shm the read-only ATTACHes create and cannot remove."""
    conn = connect_readonly(target)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        yield
    finally:
        conn.close()


def _refuse_out(app_db: Path, target: Path) -> None:
    """Refuse, even with --force, an APP_DB that would overwrite what is not an app
    database: the migration's source, any file in the source's store folder (LiveStore's
    eventlog or state DB: no command writes there), a file named as LiveStore names its
    own, a sidecar, or a projector target. Raises HandoffError."""
    if app_db.name.endswith(SIDECAR_SUFFIX):
        raise HandoffError(
            f"{app_db}: is named as a hand-off sidecar ({SIDECAR_SUFFIX}); hand over into "
            "another file"
        )
    if EVENTLOG_FILE.match(app_db.name) or STATE_FILE.match(app_db.name):
        raise HandoffError(
            f"{app_db}: is named as LiveStore's own files (eventlog@N.db, state<hash>@N.db); "
            "hand over into another file"
        )
    with contextlib.closing(connect_readonly(target)) as conn:
        found = conn.execute(f"SELECT source FROM {STATE_TABLE} WHERE id = 1").fetchone()
    source = found[0] if found else None
    if source and in_source_folder(app_db, Path(source)):  # its sidecar is beside it
        raise HandoffError(
            f"{app_db}: is in the folder of the migration's source "
            f"({Path(source).resolve().parent}); no command writes there: hand over into "
            "another folder"
        )
    if app_db.is_dir():  # before it is opened as a database (SQLite: "disk I/O error")
        raise HandoffError(f"{app_db}: is a directory; APP_DB is a database file")
    if app_db.exists() and app_db.stat().st_size and is_target(app_db):
        raise HandoffError(f"{app_db}: is a projector target; hand over into another file")
    problem = folder_problem(app_db)
    if problem:
        raise HandoffError(f"{app_db}: {problem}")


def _check_replaceable(
    app_db: Path, handoff: dict[str, Any] | None, sidecar: Path, force: bool, target: Path
) -> tuple[bool, list[str], bool]:
    """(whether APP_DB exists and is replaced by TARGET's hand-off, what replacing it
    discards that only FORCE allows, whether its hand-off is TARGET's migration's).
    HANDOFF is the last hand-off SIDECAR records (None: APP_DB has no sidecar).
    Raises HandoffError, unless FORCE, when APP_DB was not handed over by finalize,
    was handed over by another migration (a mistyped TARGET would swap the app's data
    for another store's or another app's), by this one at a later position than TARGET's
    (an older copy: the app would go back), or was changed by the app since."""
    if not app_db.exists():
        return False, [], False
    if handoff is None:
        if force:
            return True, [f"{app_db}, which finalize did not hand over"], False
        raise HandoffError(
            f"{app_db}: exists and was not handed over by `projector finalize` (no "
            f"{sidecar.name}); refusing to overwrite it (--force replaces it)"
        )
    try:
        now = content_digest(app_db)
    except sqlite3.DatabaseError as exc:
        if force:
            return True, [f"{app_db}, which could not be read ({exc})"], False
        raise HandoffError(f"{app_db}: cannot be read ({exc}); --force replaces it") from None
    why: list[str] = []
    lost: list[str] = []
    theirs, ours = migration_identity(sidecar), migration_identity(target)
    same = _same_migration(theirs, ours)  # not the file's path: a target may move
    if not same:
        why.append(
            f"was handed over from another migration ({_described(theirs)}; "
            f"{handoff['target']}), not {target}'s ({_described(ours)}): replacing it would "
            "swap the app's data for another migration's"
        )
        lost.append(f"another migration's hand-off ({_described(theirs)})")
    elif (position := _position(target)) < handoff["position"]:
        # An older copy of the target, or one rolled back since: the app would go back.
        why.append(
            f"holds the migration up to #{handoff['position']:,} and {target} is at "
            f"#{position:,} (an older copy, or rolled back since): replacing it would take "
            "the app's data back"
        )
        lost.append(f"events #{position + 1:,} to #{handoff['position']:,}")
    if now != handoff["appDigest"]:
        why.append(
            f"has changed since it was handed over at {handoff['finalizedAt']} (the app has "
            "written to it): replacing it would lose that data"
        )
        lost.append(f"the app's writes since {handoff['finalizedAt']}")
    if why and not force:
        raise HandoffError(f"{app_db}: {'; and it '.join(why)}; refusing (--force replaces it)")
    return True, lost, same


def migration_identity(path: Path) -> tuple[Any, ...]:
    """What tells one migration from another in PATH's bookkeeping (a target, or an app
    database's sidecar, which holds a copy): its migration id (random, made with its
    first run; `projector.target.m008_migration_id`), so that a target moved, renamed,
    copied or caught up from a source at another path (a moved store, each day's sync
    export) is the same migration, and a new one made at the same path, or another
    store's begun in the same second, is not. Bookkeeping from before the id (a sidecar
    an older finalize wrote, a target made before it and upgraded) is told by when its
    first run began, its catalog and its store: ``(None, begun, catalog, store)``."""
    with contextlib.closing(connect_readonly(path)) as conn:
        migration_id = state_columns(conn, migrationId="NULL")["migrationId"]
        found = conn.execute(f"SELECT {migration_id} FROM {STATE_TABLE} WHERE id = 1").fetchone()
        begun = conn.execute(f"SELECT startedAt FROM {RUNS_TABLE} ORDER BY run LIMIT 1").fetchone()
        state = conn.execute(f"SELECT catalog, storeId FROM {STATE_TABLE} WHERE id = 1").fetchone()
    return (
        found[0] if found else None,
        begun[0] if begun else None,
        *(state or (None, None)),
    )


def _same_migration(theirs: tuple[Any, ...], ours: tuple[Any, ...]) -> bool:
    """Whether two `migration_identity` values are one migration's: by their ids when
    both have one, else by the rest."""
    if theirs[0] is not None and ours[0] is not None:
        return bool(theirs[0] == ours[0])
    return theirs[1:] == ours[1:]


def _position(target: Path) -> int:
    """TARGET's checkpoint (its migration record's position)."""
    with contextlib.closing(connect_readonly(target)) as conn:
        found = conn.execute(f"SELECT position FROM {STATE_TABLE} WHERE id = 1").fetchone()
    return int(found[0]) if found else 0


def _described(identity: tuple[Any, ...]) -> str:
    migration, begun, catalog, store = identity
    parts = [f"catalog {catalog}", *([f"store {store}"] if store else []), f"begun {begun}"]
    return ", ".join([*parts, *([f"id {migration[:8]}"] if migration else [])])


def _check_same_tables(target: Path, schema: AppSchema) -> None:
    """TARGET's tables and indexes are the catalog's, statement for statement."""
    conn = connect_readonly(target)
    try:
        stored = dict(
            conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') "
                "AND sql IS NOT NULL"
            ).fetchall()
        )
    finally:
        conn.close()
    for s in schema.statements:
        if s.kind in ("table", "index") and stored.get(s.name) != s.sql:
            has = (
                f"has no {s.kind} {s.name}, which"
                if s.name not in stored
                else f"has its {s.kind} {s.name} otherwise than"
            )
            raise HandoffError(
                f"{target}: {has} the {schema.catalog.name} catalog declares (migrate into a "
                "new target with this catalog)"
            )


def _write_app(
    path: Path,
    target: Path,
    schema: AppSchema,
    drizzle_row: tuple[str, int, Path] | None,
    journal_mode: str,
) -> tuple[dict[str, int], list[str]]:
    """Create the app database at PATH from TARGET's rows; returns rows per table and the
    checks passed. Raises HandoffError when a check fails."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA foreign_keys = OFF")  # rows are copied parents-after-children
        conn.execute("ATTACH DATABASE ? AS src", (readonly_uri(target),))
        rows: dict[str, int] = {}
        conn.execute("BEGIN")
        before = [s for s in schema.statements if s.kind in ("table", "index")]
        after = [s for s in schema.statements if s.kind not in ("table", "index")]
        for statement in before:
            conn.execute(statement.sql)
        for name, table in schema.tables.items():
            cols = ", ".join(f'"{c}"' for c in table.columns)
            order = ", ".join(f'"{k}"' for k in table.key) or "rowid"
            conn.execute(
                f'INSERT INTO main."{name}" ({cols}) '
                f'SELECT {cols} FROM src."{name}" ORDER BY {order}'
            )
            rows[name] = conn.execute(f'SELECT COUNT(*) FROM main."{name}"').fetchone()[0]
        for statement in after:  # triggers after the copy: they would redo the derived rows
            conn.execute(statement.sql)
        for pragma in schema.pragmas():
            conn.execute(pragma)
        if drizzle_row is not None:
            conn.execute(drizzle_files.MIGRATIONS_TABLE_SQL)
            conn.execute(
                f'INSERT INTO "{drizzle_files.MIGRATIONS_TABLE}" ("hash", "created_at") '
                "VALUES (?, ?)",
                drizzle_row[:2],
            )
        conn.execute("COMMIT")
        checks: list[str] = []
        conn.execute("DETACH DATABASE src")
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        if integrity != [("ok",)]:
            raise HandoffError(f"{path}: integrity_check: {integrity[0][0]}")
        checks.append("integrity_check ok")
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise HandoffError(f"{path}: foreign_key_check: {len(broken)} broken, e.g. {broken[0]}")
        checks.append("foreign_key_check ok")
        if journal_mode == "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        checks.append(f"journal_mode {mode}")
    finally:
        conn.close()  # the last connection: a WAL is checkpointed and removed
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    return rows, checks


def _write_sidecar(path: Path, target: Path, old_sidecar: Path, record: dict[str, Any]) -> None:
    """The sidecar at PATH: TARGET's bookkeeping tables (schema and rows), the hand-off
    history of OLD_SIDECAR (when it is one) and RECORD appended to it."""
    history: list[tuple[Any, ...]] = []
    if old_sidecar.exists():
        try:
            old = connect_readonly(old_sidecar)
            try:
                history = old.execute(f"SELECT * FROM {HANDOFF_TABLE} ORDER BY id").fetchall()
            finally:
                old.close()
        except sqlite3.DatabaseError:
            history = []
    for suffix in ("", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS src", (readonly_uri(target),))
        conn.execute("BEGIN")
        entries = conn.execute(
            "SELECT type, name, tbl_name, sql FROM src.sqlite_master "
            "WHERE sql IS NOT NULL ORDER BY rowid"
        ).fetchall()
        for kind, name, table, sql in entries:
            if table in BOOKKEEPING_TABLES and kind == "table":
                conn.execute(sql)
                conn.execute(f'INSERT INTO main."{name}" SELECT * FROM src."{name}"')
        for kind, _name, table, sql in entries:
            if table in BOOKKEEPING_TABLES and kind == "index":
                conn.execute(sql)
        conn.execute(_HANDOFF_DDL)
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({HANDOFF_TABLE})")]
        marks = ", ".join("?" for _ in columns)
        for row in history:
            if len(row) == len(columns):
                conn.execute(f"INSERT INTO {HANDOFF_TABLE} VALUES ({marks})", row)
        names = list(record)
        conn.execute(
            f"INSERT INTO {HANDOFF_TABLE} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' for _ in names)})",
            [record[n] for n in names],
        )
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE src")
    finally:
        conn.close()
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- audit after hand-off


def content_digest(app_db: Path) -> str:
    """sha256 of everything an app can change in APP_DB: its header PRAGMAs, its schema
    (sqlite_master) and every table's rows (see `app_digests`)."""
    return app_digests(app_db)[0]


def app_digests(app_db: Path) -> tuple[str, dict[str, tuple[str, int]]]:
    """(content digest, {table: (sha256, rows)}) of APP_DB in one read: each table's
    digest is `projector.digest.table_digest`'s, rows in key order (then rowid, as a key
    may be NULL), so the app's tables digest as in the target they came from."""
    conn = connect_readonly(app_db)
    try:
        h = hashlib.sha256()
        for pragma in ("user_version", "application_id"):
            h.update(f"{pragma}={conn.execute(f'PRAGMA {pragma}').fetchone()[0]}\n".encode())
        schema = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        h.update(json.dumps(schema).encode())
        tables: dict[str, tuple[str, int]] = {}
        for kind, name, _table, _sql in schema:
            if kind != "table" or name.startswith("sqlite_"):
                continue
            tables[name] = table_digest(conn, name, _full_order(conn, name))
            h.update(f"\n{name}:{tables[name][0]}".encode())
        return h.hexdigest(), tables
    finally:
        conn.close()


def _full_order(conn: sqlite3.Connection, table: str) -> list[str]:
    """Key columns that put TABLE's rows in one order whatever the page layout: its key
    (read along its index, no sort), then its rowid when it has one (a key may be NULL)."""
    key = [k for k in key_columns(conn, table) if k != "rowid"]
    try:
        conn.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
        key.append("rowid")
    except sqlite3.OperationalError:  # WITHOUT ROWID: its key is unique and NOT NULL
        pass
    return key


def handoff_status(app_db: Path) -> dict[str, Any]:
    """`status` of a handed-over APP_DB: the migration's status read from its sidecar,
    the last hand-off, and whether the app has changed APP_DB since."""
    sidecar = sidecar_path(app_db)
    info = target_status(sidecar)
    handoff = last_handoff(sidecar)
    if handoff and info["lastRun"]:  # the backup is beside the target handed over
        info["backup"] = backups.shown(Path(handoff["target"]), info["lastRun"]["backup"])
    info["appDb"] = str(app_db)
    info["handoff"] = handoff
    info["appChangedSinceHandoff"] = (
        content_digest(app_db) != handoff["appDigest"] if handoff else None
    )
    info["targetSince"] = _target_since(handoff, info["lastRun"])
    return info


def _target_since(
    handoff: dict[str, Any] | None, last_run: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Where the target handed over stands now, when it moved since the hand-off:
    ``{"position", "state", "rolledBack"}`` (rolledBack: the hand-off's last run is no
    longer in it, which only `projector rollback` does, using up that run's backup), or
    None (not moved, gone, or unreadable)."""
    if handoff is None:
        return None
    target = Path(handoff["target"])
    try:
        now = target_status(target)
        conn = connect_readonly(target)
        try:
            kept = (
                last_run is None
                or conn.execute(
                    # The backup's name has the run's start to the millisecond.
                    f"SELECT 1 FROM {RUNS_TABLE} WHERE run = ? AND startedAt = ? AND backup IS ?",
                    (last_run["run"], last_run["startedAt"], last_run["backup"]),
                ).fetchone()
            )
        finally:
            conn.close()
    except (TargetError, sqlite3.Error, OSError):
        return None
    rolled_back = not kept
    if now["position"] == handoff["position"] and not rolled_back:
        return None
    return {"position": now["position"], "state": now["state"], "rolledBack": rolled_back}


def handoff_digest(
    app_db: Path,
    sidecar: Path | None = None,
    digests: dict[str, tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """`projector digest` of a handed-over APP_DB: its tables (in the migration's order)
    and the parked events of its sidecar, the same digest as the target it came from.
    DIGESTS are APP_DB's table digests when already read (`app_digests`)."""
    sidecar = sidecar or sidecar_path(app_db)
    side = connect_readonly(sidecar)
    try:
        recorded = side.execute(f"SELECT tables FROM {STATE_TABLE} WHERE id = 1").fetchone()
        order = json.loads(recorded[0]) if recorded and recorded[0] else []
        parked = table_digest(side, PARKED_TABLE, key_columns(side, PARKED_TABLE))
    finally:
        side.close()
    if digests is None:
        digests = app_digests(app_db)[1]
    tables: dict[str, dict[str, Any]] = {
        t: {"sha256": digests[t][0], "rows": digests[t][1]} for t in order if t in digests
    }
    tables[PARKED_TABLE] = {"sha256": parked[0], "rows": parked[1]}
    overall = hashlib.sha256(
        "".join(f"{t}:{v['sha256']}\n" for t, v in tables.items()).encode()
    ).hexdigest()
    return {"tables": tables, "overall": overall}


__all__ = [
    "JOURNAL_MODES",
    "FinalizeOptions",
    "FinalizeResult",
    "content_digest",
    "default_app_db",
    "finalize",
    "handoff_digest",
    "handoff_status",
    "is_handed_over",
    "last_handoff",
    "recorded_catalog",
    "sidecar_path",
]
