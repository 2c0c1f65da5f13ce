"""The replay loop: source -> validate -> upcast -> handlers -> tables + checkpoint.

Events are applied in batches; each batch is one transaction that holds the rows the
batch produced, the parked events, the tracking record of its last position and the
migration's counters. Whatever the moment of interruption, the target holds either all
of a batch or none of it, and a later run starts after the last committed position.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from events.envelope import Event
from events.sources import Source, open_source
from events.upcast import upcast
from events.validation import (
    INVALID,
    UNKNOWN,
    Catalog,
    Problem,
    Validator,
    detect_catalog,
    label,
    sample,
)
from projector import backup as backups
from projector.checkpoint import PrefixDigest, TrackingConflict, TrackingView
from projector.errors import (
    CheckpointMismatch,
    EventsError,
    IntegrityBreak,
    Interrupted,
    ReplayError,
    TargetError,
)
from projector.handlers import Handler, handler_for
from projector.lock import writer_lock
from projector.target import (
    PARKED_TABLE,
    RUNS_TABLE,
    STATE_TABLE,
    is_target,
    open_target,
    refuse_foreign,
)

log = structlog.get_logger("projector")

ON_INVALID = ("fail", "park")
#: Events per transaction. Fewer, larger transactions write each hot index page to the
#: WAL once per batch instead of once per small batch; the digest is the same at any size.
DEFAULT_BATCH = 20000
HELD = "held"
INTEGRITY = "integrity"


@dataclass
class ReplayOptions:
    """How a run treats bad events, how big its batches are, and how it reports."""

    #: "fail" or "park"; None means the policy the target recorded (or "fail").
    on_invalid: str | None = "fail"
    batch_size: int = DEFAULT_BATCH
    catalog: Catalog | None = None
    should_stop: Callable[[], bool] = lambda: False
    progress: Callable[[int, int | None], None] | None = None
    max_examples: int = 10
    #: Cap the target's size in pages (SQLite max_page_count): simulates a full disk.
    max_page_count: int | None = None


@dataclass
class ReplayResult:
    """What one run did; `read == applied + parked` always holds for a finished run."""

    source: str
    target: str
    command: str
    catalog: str
    from_position: int
    position: int = 0
    total: int | None = None
    read: int = 0
    applied: int = 0
    reapplied: int = 0
    parked: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    state: str = "running"
    backup: str | None = None
    created: bool = False
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def parked_total(self) -> int:
        return sum(self.parked.values())

    @property
    def accounted(self) -> bool:
        return self.read == self.applied + self.parked_total

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "source": self.source,
            "target": self.target,
            "catalog": self.catalog,
            "dryRun": self.dry_run,
            "state": self.state,
            "fromPosition": self.from_position,
            "position": self.position,
            "total": self.total,
            "read": self.read,
            "applied": self.applied,
            "reapplied": self.reapplied,
            "parked": self.parked_total,
            "parkedByKind": dict(sorted(self.parked.items())),
            "accounted": self.accounted,
            "examples": self.examples,
            "backup": self.backup,
            "createdTarget": self.created,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class MigrationState:
    """The target's record of its migration (the `_projector_migration` row)."""

    source: str
    source_kind: str
    format_version: int | None
    store_id: str | None
    catalog: str
    on_invalid: str
    position: int
    last_event_id: str | None
    prefix_digest: str
    source_total: int | None
    applied: int
    parked: int
    reapplied: int
    state: str

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> MigrationState | None:
        row = conn.execute(
            f"SELECT source, sourceKind, formatVersion, storeId, catalog, onInvalid, position, "
            f"lastEventId, prefixDigest, sourceTotal, applied, parked, reapplied, state "
            f"FROM {STATE_TABLE} WHERE id = 1"
        ).fetchone()
        return cls(*row) if row else None


class Projection:
    """Applies events to an open target: validation, upcasting, handlers and parking."""

    def __init__(self, conn: sqlite3.Connection, validator: Validator, on_invalid: str):
        if on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be one of {ON_INVALID}")
        self.conn = conn
        # The handlers check every reference themselves (a persona before a memory or a
        # draft; tags right after their memory), which costs less than SQLite's
        # foreign-key machinery on every write; `verify` runs foreign_key_check.
        conn.execute("PRAGMA foreign_keys = OFF")
        self.validator = validator
        self.on_invalid = on_invalid
        self.where = ""
        self.held_entities = {
            row[0]
            for row in conn.execute(
                f"SELECT DISTINCT entity FROM {PARKED_TABLE} WHERE entity IS NOT NULL"
            )
        }
        self._handlers: dict[str, Handler | None] = {}

    def _handler(self, name: str) -> Handler | None:
        try:
            return self._handlers[name]
        except KeyError:
            found = self._handlers[name] = handler_for(name)
            return found

    def apply(self, event: Event) -> str | None:
        """Apply EVENT; return None when applied, or the kind under which it was parked."""
        args, problem = self.validator.check(event)
        if problem is None:
            handler = self._handler(event.name)
            if handler is None:
                problem = Problem(
                    UNKNOWN, event.position, event.event_id, event.name, "no handler for this event"
                )
        if problem is not None:
            if self.on_invalid == "fail":
                raise ReplayError(problem.message(self.where))
            entity = None
            handler = self._handler(event.name) if isinstance(event.name, str) else None
            if handler is not None:
                # Args too broken to name their row hold back the handler's whole table:
                # re-applying the event later must not overtake events it preceded.
                entity = handler.entity(args) or handler.any_row
            self.park(event, problem.kind, problem.message(), entity)
            return problem.kind
        assert handler is not None
        name, current = upcast(event.name, args)
        held = self.held_entities
        if held:  # the entity is only worked out when something is parked (or parks below)
            entity = handler.entity(current)
            if entity in held or handler.any_row in held:
                row = label(entity) if entity else handler.any_row
                reason = f"held back: an earlier event on {row} is parked"
                self.park(event, HELD, reason, entity)
                return HELD
        try:
            handler.apply(self.conn, current)
        except IntegrityBreak as exc:
            entity = handler.entity(current)
            self.park(event, INTEGRITY, f"{event.event_id} ({event.name}): {exc}", entity)
            return INTEGRITY
        except (OverflowError, ValueError, TypeError, KeyError, RecursionError) as exc:
            # Values JSON allows but SQLite cannot store (e.g. an integer beyond 64 bits).
            message = f"{event.event_id} ({event.name}): cannot be stored: {exc}"
            if self.on_invalid == "fail":
                raise ReplayError(message) from None
            self.park(event, INVALID, message, handler.entity(current))
            return INVALID
        return None

    def park(self, event: Event, kind: str, reason: str, entity: str | None) -> None:
        self.conn.execute(
            f"INSERT INTO {PARKED_TABLE} (position, eventId, name, argsJson, kind, reason, "
            "entity, seqNumGlobal, seqNumClient, seqNumRebaseGeneration, clientId, sessionId) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.position,
                event.event_id,
                _storable(event.name),
                _storable(event.args_json),
                kind,
                _storable(reason),
                _storable(entity),
                event.seq_global,
                event.seq_client,
                event.rebase_generation,
                _storable(event.client_id),
                _storable(event.session_id),
            ),
        )
        if entity is not None:
            self.held_entities.add(entity)


def _storable(value: Any) -> Any:
    """VALUE as SQLite can store it. A hostile source's values may not bind as they are:
    text with a lone surrogate, an integer beyond 64 bits, a JSON object or array."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Kept as its JSON escape (\ud800), which is how argsJson spelled it.
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if value is None or isinstance(value, (float, bytes)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    try:
        return _storable(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError, RecursionError):
        return _storable(repr(value))


def _resolve_catalog(source: Source, options: ReplayOptions) -> Catalog:
    return options.catalog or detect_catalog(source.event_names())


def replay(
    source_path: str | Path,
    target_path: str | Path,
    options: ReplayOptions | None = None,
    *,
    dry_run: bool = False,
) -> ReplayResult:
    """Migrate SOURCE into TARGET, continuing from TARGET's checkpoint if it has one."""
    options = options or ReplayOptions()
    source = open_source(source_path)
    target = Path(target_path)
    if target.exists():
        if target.resolve() == source.path.resolve():
            raise TargetError(f"{target}: is the source; refusing to write to it")
        refuse_foreign(target)  # before the lock file is created beside it
    if dry_run:
        return _dry_run(source, target, options)
    with writer_lock(target):
        return _run(source, target, options, command="replay")


def resume(target_path: str | Path, options: ReplayOptions | None = None) -> ReplayResult:
    """Continue TARGET's migration from its checkpoint, reading the source it recorded."""
    options = options or ReplayOptions()
    target = Path(target_path)
    if not target.exists() or not is_target(target):
        raise TargetError(f"{target}: not a projector target; nothing to resume")
    with writer_lock(target):
        db = open_target(target, create=False)
        state = MigrationState.read(db.conn)
        db.conn.close()
        if state is None:
            raise TargetError(f"{target}: no migration recorded; run `projector replay` first")
        source = open_source(state.source)
        return _run(source, target, options, command="resume")


def _dry_run(source: Source, target: Path, options: ReplayOptions) -> ReplayResult:
    scratch_dir = Path(tempfile.mkdtemp(prefix="projector-dry-run-"))
    try:
        scratch = scratch_dir / "target.db"
        if target.exists():
            if not is_target(target):
                raise TargetError(f"{target}: not a projector target")
            backups.take_backup(target, scratch)
        result = _run(source, scratch, options, command="replay", take_backup=False)
        result.target = str(target)
        result.dry_run = True
        result.backup = None
        result.created = not target.exists()
        return result
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _run(
    source: Source,
    target: Path,
    options: ReplayOptions,
    *,
    command: str,
    take_backup: bool = True,
) -> ReplayResult:
    started = time.monotonic()
    # A file left by a run killed before its first commit is not a target yet:
    # open_target still refuses one that holds anything but the projector's tables.
    existed = target.exists() and is_target(target)
    catalog = _resolve_catalog(source, options)
    validator = Validator(catalog)
    db = open_target(target, create=True)
    conn = db.conn
    try:
        if options.max_page_count:
            conn.execute(f"PRAGMA max_page_count = {int(options.max_page_count)}")
        state = MigrationState.read(conn)
        _check_same_store(state, source, catalog, target)
        tracking = TrackingView(str(target))
        checkpoint = tracking.position(conn)
        if state is not None and state.position != checkpoint:
            raise TargetError(
                f"{target}: migration record (#{state.position}) and tracking record "
                f"(#{checkpoint}) disagree; the target was edited by hand"
            )
        run = (conn.execute(f"SELECT COALESCE(MAX(run), 0) + 1 FROM {RUNS_TABLE}").fetchone())[0]
        backup = None
        if existed and take_backup:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            backup = str(backups.take_backup(target, backups.backup_path(target, run)))
        total = source.count()
        result = ReplayResult(
            source=str(source.path),
            target=str(target),
            command=command,
            catalog=catalog.name,
            from_position=checkpoint,
            position=checkpoint,
            total=total,
            backup=backup,
            created=not existed,
        )
        on_invalid = options.on_invalid or (state.on_invalid if state else "fail")
        with db.atomic():
            _begin(conn, state, source, catalog, on_invalid, run, result)
        log.info(
            "replay.start",
            source=str(source.path),
            format=source.describe(),
            target=str(target),
            catalog=catalog.name,
            checkpoint=checkpoint,
            total=total,
            backup=backup,
        )
        if options.progress:
            options.progress(checkpoint, total)
        projection = Projection(conn, validator, on_invalid)
        projection.where = source.path.name
        events = _after_checkpoint(source, state, checkpoint)
        try:
            _apply_batches(db, projection, tracking, events, options, run, result)
        except (ReplayError, Interrupted, CheckpointMismatch, EventsError) as exc:
            # EventsError: the source broke mid-read (a corrupt page, a bad NDJSON line).
            result.state = "interrupted" if isinstance(exc, Interrupted) else "failed"
            _finish(db, run, result)
            raise
        except sqlite3.Error as exc:
            result.state = "failed"
            _finish(db, run, result, quiet=True)
            raise ReplayError(
                f"{target}: write failed after #{result.position} ({exc}); the target holds "
                f"every batch up to #{result.position}; fix the cause, then run "
                f"`projector resume {target}`"
            ) from None
        result.state = "complete"
        _finish(db, run, result)
        result.seconds = time.monotonic() - started
        log.info("replay.done", **{k: v for k, v in result.as_dict().items() if k != "examples"})
        return result
    finally:
        conn.close()
        source.close()


def _check_same_store(
    state: MigrationState | None, source: Source, catalog: Catalog, target: Path
) -> None:
    if state is None:
        return
    if state.store_id and source.store_id and state.store_id != source.store_id:
        raise CheckpointMismatch(
            f"{target}: holds a migration of store {state.store_id!r}; "
            f"{source.path} is store {source.store_id!r}"
        )
    if state.catalog != catalog.name:
        raise CheckpointMismatch(
            f"{target}: was migrated with catalog {state.catalog!r}, "
            f"{source.path} needs {catalog.name!r}"
        )


def _begin(
    conn: sqlite3.Connection,
    state: MigrationState | None,
    source: Source,
    catalog: Catalog,
    on_invalid: str,
    run: int,
    result: ReplayResult,
) -> None:
    if state is None:
        conn.execute(
            f"INSERT INTO {STATE_TABLE} (id, source, sourceKind, formatVersion, storeId, catalog, "
            "onInvalid, position, prefixDigest, sourceTotal, state) "
            "VALUES (1, ?, ?, ?, ?, ?, ?, 0, ?, ?, 'running')",
            (
                str(source.path.resolve()),
                source.kind,
                source.format_version,
                source.store_id,
                catalog.name,
                on_invalid,
                PrefixDigest().hexdigest(),
                result.total,
            ),
        )
    else:
        conn.execute(
            f"UPDATE {STATE_TABLE} SET source = ?, sourceKind = ?, formatVersion = ?, "
            "storeId = COALESCE(storeId, ?), onInvalid = ?, sourceTotal = ?, state = 'running' "
            "WHERE id = 1",
            (
                str(source.path.resolve()),
                source.kind,
                source.format_version,
                source.store_id,
                on_invalid,
                result.total,
            ),
        )
    conn.execute(
        f"INSERT INTO {RUNS_TABLE} (run, command, startedAt, fromPosition, state, backup, "
        "createdTarget) VALUES (?, ?, ?, ?, 'running', ?, ?)",
        (run, result.command, _now(), result.from_position, result.backup, int(result.created)),
    )


def _after_checkpoint(
    source: Source, state: MigrationState | None, checkpoint: int
) -> Iterator[tuple[Event, PrefixDigest]]:
    """The source's events past CHECKPOINT, after proving the ones before it unchanged."""
    digest = PrefixDigest()
    events = source.events()
    if checkpoint:
        assert state is not None
        last = None
        for event in events:
            digest.update(event)
            last = event
            if event.position == checkpoint:
                break
        if last is None or last.position < checkpoint:
            seen = last.position if last else 0
            raise CheckpointMismatch(
                f"{source.path} has {seen} events but the target's checkpoint is at "
                f"#{checkpoint} ({state.last_event_id}): not the source that was migrated"
            )
        if digest.hexdigest() != state.prefix_digest or last.event_id != state.last_event_id:
            raise CheckpointMismatch(
                f"{source.path}: the events up to the checkpoint #{checkpoint} "
                f"({state.last_event_id}) differ from those migrated into the target"
            )
    for event in events:
        yield event, digest


def _apply_batches(
    db: Any,
    projection: Projection,
    tracking: TrackingView,
    events: Iterator[tuple[Event, PrefixDigest]],
    options: ReplayOptions,
    run: int,
    result: ReplayResult,
) -> None:
    conn = projection.conn
    apply = projection.apply
    parked = result.parked
    examples = result.examples
    digest: PrefixDigest | None = None
    last_event: Event | None = None
    saved = (0, 0)  # applied and parked counts already added to the migration record
    while True:
        count = 0
        with db.atomic():
            for event, digest in itertools.islice(events, options.batch_size):
                count += 1
                digest.update(event)
                outcome = apply(event)
                if outcome is None:
                    result.applied += 1
                else:
                    parked[outcome] += 1
                    if len(examples) < options.max_examples:
                        examples.append(_example(conn, event, outcome))
                last_event = event
            if count:
                assert digest is not None and last_event is not None
                result.read += count
                result.position = last_event.position
                try:
                    tracking.record(conn, result.position)
                except TrackingConflict as exc:
                    raise ReplayError(
                        f"position #{result.position} is already recorded in the target's "
                        f"tracking ({exc}); refusing to apply it twice"
                    ) from None
                _save_progress(conn, run, result, last_event, digest, saved)
                saved = (result.applied, result.parked_total)
        if count:
            log.debug("replay.batch", position=result.position, read=result.read)
            if options.progress:
                options.progress(result.position, result.total)
        if count < options.batch_size:
            return
        if options.should_stop():
            raise Interrupted(
                f"stopped at #{result.position} after a signal; continue with "
                f"`projector resume {result.target}`"
            )


def _example(conn: sqlite3.Connection, event: Event, kind: str) -> dict[str, Any]:
    row = conn.execute(
        f"SELECT reason FROM {PARKED_TABLE} WHERE position = ?", (event.position,)
    ).fetchone()
    return {
        "position": event.position,
        "eventId": event.event_id,
        "name": event.name if isinstance(event.name, str) else sample(event.name),
        "kind": kind,
        "reason": row[0] if row else "",
    }


def _save_progress(
    conn: sqlite3.Connection,
    run: int,
    result: ReplayResult,
    event: Event,
    digest: PrefixDigest,
    saved: tuple[int, int],
) -> None:
    parked = result.parked_total
    conn.execute(
        f"UPDATE {STATE_TABLE} SET position = ?, lastEventId = ?, prefixDigest = ?, "
        "applied = applied + ?, parked = parked + ? WHERE id = 1",
        (
            result.position,
            event.event_id,
            digest.hexdigest(),
            result.applied - saved[0],
            parked - saved[1],
        ),
    )
    conn.execute(
        f"UPDATE {RUNS_TABLE} SET toPosition = ?, read = ?, applied = ?, parked = ? WHERE run = ?",
        (result.position, result.read, result.applied, parked, run),
    )


def _finish(db: Any, run: int, result: ReplayResult, *, quiet: bool = False) -> None:
    try:
        with db.atomic():
            db.conn.execute(
                f"UPDATE {STATE_TABLE} SET state = ? WHERE id = 1",
                (result.state if result.state != "failed" else "interrupted",),
            )
            db.conn.execute(
                f"UPDATE {RUNS_TABLE} SET state = ?, endedAt = ? WHERE run = ?",
                (result.state, _now(), run),
            )
    except sqlite3.Error:
        if not quiet:
            raise


def replay_parked(target_path: str | Path, options: ReplayOptions | None = None) -> ReplayResult:
    """Re-apply TARGET's parked events in their original order, each exactly once.

    Run it after the cause is fixed: a schema or handler added, or a parked event's
    argsJson repaired in place. An event that fails again stays parked with its new
    reason, and so does every later event on the same row.
    """
    options = options or ReplayOptions()
    target = Path(target_path)
    if not target.exists() or not is_target(target):
        raise TargetError(f"{target}: not a projector target")
    started = time.monotonic()
    with writer_lock(target):
        db = open_target(target, create=False)
        conn = db.conn
        try:
            state = MigrationState.read(conn)
            if state is None:
                raise TargetError(f"{target}: no migration recorded")
            catalog = options.catalog or Catalog.bundled(state.catalog)
            run = conn.execute(f"SELECT COALESCE(MAX(run), 0) + 1 FROM {RUNS_TABLE}").fetchone()[0]
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            backup = str(backups.take_backup(target, backups.backup_path(target, run)))
            result = ReplayResult(
                source=state.source,
                target=str(target),
                command="replay-parked",
                catalog=catalog.name,
                from_position=state.position,
                position=state.position,
                backup=backup,
            )
            projection = Projection(conn, Validator(catalog), "park")
            projection.held_entities = set()
            with db.atomic():
                conn.execute(
                    f"INSERT INTO {RUNS_TABLE} (run, command, startedAt, fromPosition, state, "
                    "backup) VALUES (?, 'replay-parked', ?, ?, 'running', ?)",
                    (run, _now(), state.position, backup),
                )
                rows = conn.execute(
                    f"SELECT position, name, argsJson, seqNumGlobal, seqNumClient, "
                    f"seqNumRebaseGeneration, clientId, sessionId FROM {PARKED_TABLE} "
                    "ORDER BY position"
                ).fetchall()
                for position, name, args_json, g, c, r, client_id, session_id in rows:
                    event = Event(position, g, c, r, 0, 0, name, args_json, client_id, session_id)
                    conn.execute(f"DELETE FROM {PARKED_TABLE} WHERE position = ?", (position,))
                    result.read += 1
                    outcome = projection.apply(event)
                    if outcome is None:
                        result.reapplied += 1
                        result.applied += 1
                    else:
                        result.parked[outcome] += 1
                        if len(result.examples) < options.max_examples:
                            result.examples.append(_example(conn, event, outcome))
                conn.execute(
                    f"UPDATE {STATE_TABLE} SET applied = applied + ?, parked = parked - ?, "
                    "reapplied = reapplied + ? WHERE id = 1",
                    (result.reapplied, result.reapplied, result.reapplied),
                )
                conn.execute(
                    f"UPDATE {RUNS_TABLE} SET state = 'complete', endedAt = ?, read = ?, "
                    "applied = ?, parked = ?, toPosition = ? WHERE run = ?",
                    (_now(), result.read, result.applied, result.parked_total, state.position, run),
                )
            result.state = "complete"
            result.seconds = time.monotonic() - started
            log.info("replay_parked.done", read=result.read, reapplied=result.reapplied)
            return result
        finally:
            conn.close()


__all__ = [
    "INVALID",
    "ON_INVALID",
    "MigrationState",
    "Projection",
    "ReplayOptions",
    "ReplayResult",
    "replay",
    "replay_parked",
    "resume",
]
