"""The replay loop: source -> validate -> upcast -> handlers -> tables + checkpoint.

Events are applied in batches. A batch is validated and applied to its rows in memory
(`projector.store.RowStore`), then written as one transaction that holds the rows the
batch changed, its parked events, the tracking record of its last position and the
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
    LONE_SURROGATE,
    NUL_IN_TEXT,
    UNKNOWN,
    Catalog,
    Note,
    Problem,
    Validator,
    detect_catalog,
    escape_surrogates,
    label,
    note_detail,
    note_where,
    sample,
)
from projector import backup as backups
from projector import deviations
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
from projector.store import RowError, RowStore
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
#: An event made ready to apply: its handler, its args (upcast when valid), its problem,
#: and the validator's notes (warnings) about it.
Prepared = tuple[Handler | None, Any, Problem | None, tuple[Note, ...]]
#: Events per transaction. Fewer, larger transactions write each hot index page to the
#: WAL once per batch instead of once per small batch; the digest is the same at any size.
DEFAULT_BATCH = 20000
#: Events validated (and their rows read) at a time within a batch: parsed args are
#: held only for a slice, so memory does not grow with the batch size.
PREPARE_SLICE = 1000
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
    #: Treat anything a run had to tolerate (a parked event, a warning) as a failure:
    #: the CLI exits 1 (see `ReplayResult.strict_failure`).
    strict: bool = False
    #: Reject args holding a key their schema does not declare, instead of dropping it
    #: as LiveStore does; None means the policy the target recorded (or False).
    strict_keys: bool | None = False


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
    #: What the run tolerated without parking anything, by kind (e.g. a history gap).
    warnings: Counter[str] = field(default_factory=Counter)
    warning_examples: list[dict[str, Any]] = field(default_factory=list)
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

    def warn(self, kind: str, detail: str, max_examples: int = 10, **where: Any) -> None:
        """Count a warning of KIND; keep the first MAX_EXAMPLES with their DETAIL and WHERE
        (e.g. ``position=12, eventId="e12"``)."""
        self.warnings[kind] += 1
        if len(self.warning_examples) < max_examples:
            self.warning_examples.append({"kind": kind, **where, "detail": detail})

    def strict_failure(self) -> str | None:
        """Why a ``--strict`` run fails (events parked, warnings), or None."""
        why = []
        if self.parked_total:
            why.append(f"{self.parked_total:,} event(s) parked")
        if self.warnings:
            why.append(f"{sum(self.warnings.values()):,} warning(s)")
        return " and ".join(why) or None

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
            "warnings": sum(self.warnings.values()),
            "warningsByKind": dict(sorted(self.warnings.items())),
            "warningExamples": self.warning_examples,
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
    strict_keys: bool = False

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> MigrationState | None:
        row = conn.execute(
            f"SELECT source, sourceKind, formatVersion, storeId, catalog, onInvalid, position, "
            f"lastEventId, prefixDigest, sourceTotal, applied, parked, reapplied, state, "
            f"strictKeys FROM {STATE_TABLE} WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        state = cls(*row[:-1])
        state.strict_keys = bool(row[-1])
        return state


class Projection:
    """Applies events to an open target: validation, upcasting, handlers and parking."""

    def __init__(self, conn: sqlite3.Connection, validator: Validator, on_invalid: str):
        if on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be one of {ON_INVALID}")
        self.conn = conn
        # The handlers check every reference themselves (a persona before a memory or a
        # draft; tags are written with their memory), which costs less than SQLite's
        # foreign-key machinery on every write; `verify` runs foreign_key_check.
        conn.execute("PRAGMA foreign_keys = OFF")
        self.store = RowStore(conn)
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
        #: Why each event of the batch was parked, by position (for a run's examples).
        self.reasons: dict[int, str] = {}
        #: The validator's notes on the batch's events, by position (the run's warnings).
        self.notes: dict[int, tuple[Event, tuple[Note, ...]]] = {}

    def apply_batch(self, events: list[Event]) -> list[str | None]:
        """Apply EVENTS to the batch's rows in memory; return each one's outcome (see `apply`).

        Events are validated and their rows read a slice at a time (`PREPARE_SLICE`), so
        parsed args never pile up for a whole batch. Nothing is written: `write` does
        that, in the batch's transaction; should the target refuse a row there, `clear`
        and redo the batch with `apply_one_by_one`.
        """
        apply, prepare = self.apply, self.prepare
        outcomes: list[str | None] = []
        try:
            for start in range(0, len(events), PREPARE_SLICE):
                part = events[start : start + PREPARE_SLICE]
                prepared = [prepare(event) for event in part]
                self._prefetch(prepared)
                outcomes.extend([apply(e, p) for e, p in zip(part, prepared, strict=True)])
        except BaseException:
            self.clear()
            raise
        return outcomes

    def write(self) -> None:
        """Write the batch's parked events and rows (raises `RowError` if a row is refused)."""
        self.store.flush()

    def clear(self) -> None:
        """Forget the batch's unwritten rows, parked events and notes."""
        self.store.clear()
        self.reasons.clear()
        self.notes.clear()

    def _prefetch(self, prepared: list[Prepared]) -> None:
        """Read every row the batch's handlers will look at, a table at a time."""
        keys: dict[str, set[str]] = {}
        for handler, args, problem, _ in prepared:
            if problem is None and handler is not None:
                for table, field in handler.reads:
                    value = args.get(field)
                    if type(value) is str:
                        keys.setdefault(table, set()).add(value)
        for table, wanted in keys.items():
            self.store.prefetch(table, wanted)

    def apply_one_by_one(self, events: list[Event]) -> list[str | None]:
        """Apply and write EVENTS one at a time, each in a savepoint, in the caller's
        transaction: an event whose rows the target refuses is parked, the others apply."""
        conn = self.conn
        outcomes: list[str | None] = []
        for event in events:
            conn.execute("SAVEPOINT projector_event")
            outcome = self.apply(event)
            try:
                self.store.flush()
            except RowError as exc:
                conn.execute("ROLLBACK TO projector_event")
                self.store.clear()
                outcome = self._refused(event, str(exc), self._entity(event))
                self.store.flush()
            conn.execute("RELEASE projector_event")
            outcomes.append(outcome)
        return outcomes

    def _refused(self, event: Event, error: str, entity: str | None) -> str:
        """Park (or fail on) an event whose rows the target refused to store."""
        message = f"{event.event_id} ({event.name}): cannot be stored: {error}"
        if self.on_invalid == "fail":
            raise ReplayError(message)
        self.park(event, INVALID, message, entity)
        return INVALID

    def _entity(self, event: Event) -> str | None:
        """The row a valid event touches (worked out again only when its rows are refused)."""
        handler, args, _, _ = self.prepare(event)
        return handler.entity(args) if handler else None

    def _handler(self, name: str) -> Handler | None:
        try:
            return self._handlers[name]
        except KeyError:
            found = self._handlers[name] = handler_for(name)
            return found

    def prepare(self, event: Event) -> Prepared:
        """Validate EVENT and find its handler: (handler, args as current, problem or None,
        the validator's notes)."""
        args, problem, notes = self.validator.check(event)
        handler = self._handler(event.name) if isinstance(event.name, str) else None
        if problem is None:
            if handler is None:
                problem = Problem(
                    UNKNOWN, event.position, event.event_id, event.name, "no handler for this event"
                )
            else:
                args = upcast(event.name, args)[1]
        return handler, args, problem, notes

    def apply(self, event: Event, prepared: Prepared | None = None) -> str | None:
        """Apply EVENT; return None when applied, or the kind under which it was parked."""
        handler, current, problem, notes = prepared or self.prepare(event)
        if notes:
            self.notes[event.position] = (event, notes)
        if problem is not None:
            if self.on_invalid == "fail":
                raise ReplayError(problem.message(self.where))
            entity = None
            if handler is not None:
                # Args too broken to name their row hold back the handler's whole table:
                # re-applying the event later must not overtake events it preceded.
                entity = handler.entity(current) or handler.any_row
            self.park(event, problem.kind, problem.message(), entity)
            return problem.kind
        assert handler is not None
        held = self.held_entities
        if held:  # the entity is only worked out when something is parked (or parks below)
            entity = handler.entity(current)
            if entity in held or handler.any_row in held:
                row = label(entity) if entity else handler.any_row
                reason = f"held back: an earlier event on {row} is parked"
                self.park(event, HELD, reason, entity)
                return HELD
        if notes and any(n.kind == LONE_SURROGATE for n in notes):
            self.store.lossy = True  # this batch's rows are written as LiveStore writes them
        try:
            handler.apply(self.store, current)
        except IntegrityBreak as exc:
            entity = handler.entity(current)
            self.park(event, INTEGRITY, f"{event.event_id} ({event.name}): {exc}", entity)
            return INTEGRITY
        except (OverflowError, ValueError, TypeError, KeyError, RecursionError) as exc:
            # Values JSON allows but a handler cannot encode (rows SQLite refuses surface
            # later, when the batch is written: see RowError).
            return self._refused(event, str(exc), handler.entity(current))
        if notes:
            self._record_deviations(event, handler, current, notes)
        return None

    def _record_deviations(
        self, event: Event, handler: Handler, args: Any, notes: tuple[Note, ...]
    ) -> None:
        """Record the rows an applied event changed unlike LiveStore (for `verify`)."""
        nul = [n for n in notes if n.kind == NUL_IN_TEXT]
        if not nul:
            return
        entity = handler.entity(args)
        if entity is None:  # args naming no row were parked before getting here
            return
        detail = _storable(f"U+0000 at {', '.join(dict.fromkeys(n.path for n in nul))}")
        for row in deviations.nul_entities(entity):
            name = deviations.NUL_TRUNCATION.name
            self.store.deviate((event.position, event.event_id, name, _storable(row), detail))

    def park(self, event: Event, kind: str, reason: str, entity: str | None) -> None:
        """Park EVENT (written with the batch's rows) and hold back its entity."""
        self.store.park(
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
            )
        )
        self.reasons[event.position] = reason
        if entity is not None:
            self.held_entities.add(entity)


def _storable(value: Any) -> Any:
    """VALUE as SQLite can store it. A hostile source's values may not bind as they are:
    text with a lone surrogate, an integer beyond 64 bits, a JSON object or array."""
    if isinstance(value, str):
        if value.isascii():
            return value
        return escape_surrogates(value)
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
    """Continue TARGET's migration from its checkpoint, reading the source it recorded, with
    the policies it recorded (unless OPTIONS name others)."""
    options = options or ReplayOptions(on_invalid=None, strict_keys=None)
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
        strict_keys = options.strict_keys
        if strict_keys is None:
            strict_keys = state.strict_keys if state else False
        validator = Validator(catalog, strict_keys=strict_keys)
        with db.atomic():
            _begin(conn, state, source, catalog, on_invalid, run, result)
            conn.execute(
                f"UPDATE {STATE_TABLE} SET strictKeys = ? WHERE id = 1", (int(strict_keys),)
            )
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
        digest, events = _after_checkpoint(source, state, checkpoint)
        try:
            _apply_batches(_Replay(db, projection, tracking, digest, options, run, result), events)
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
) -> tuple[PrefixDigest, Iterator[Event]]:
    """The digest so far and the source's events past CHECKPOINT, after proving the ones
    before it unchanged."""
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
    return digest, events


@dataclass
class _Replay:
    """What every batch of one run works with."""

    db: Any
    projection: Projection
    tracking: TrackingView
    digest: PrefixDigest
    options: ReplayOptions
    run: int
    result: ReplayResult


def _apply_batches(ctx: _Replay, events: Iterator[Event]) -> None:
    """Apply EVENTS batch by batch, stopping at a batch boundary when asked to."""
    while True:
        # One batch per call, so nothing of it is still referenced while the next is read.
        count = _apply_batch(ctx, events)
        if count < ctx.options.batch_size:
            return
        if ctx.options.should_stop():
            raise Interrupted(
                f"stopped at #{ctx.result.position} after a signal; continue with "
                f"`projector resume {ctx.result.target}`"
            )


def _apply_batch(ctx: _Replay, events: Iterator[Event]) -> int:
    """Read, validate and apply one batch to its rows in memory, then write it with its
    checkpoint in one transaction; return how many events it had."""
    projection, db = ctx.projection, ctx.db
    chunk = list(itertools.islice(events, ctx.options.batch_size))
    if not chunk:
        return 0
    ctx.digest.update_many(chunk)
    digest = ctx.digest.hexdigest()
    held = set(projection.held_entities)
    try:
        outcomes = projection.apply_batch(chunk)
        with db.atomic():
            projection.write()
            _checkpoint(ctx, chunk, outcomes, digest)
    except (RowError, ReplayError):
        # The target refused a row on write, or (under "fail") an event is at fault: an
        # earlier event's row may be refused only on write. Redo the batch an event at a
        # time, each written in a savepoint, so that exactly the event at fault is parked,
        # or under "fail" named, with nothing of the batch committed.
        projection.clear()
        projection.held_entities = held
        with db.atomic():
            outcomes = projection.apply_one_by_one(chunk)
            _checkpoint(ctx, chunk, outcomes, digest)
    except BaseException:
        projection.clear()
        raise
    result = ctx.result
    _add_outcomes(result, chunk, outcomes, projection, ctx.options.max_examples)
    result.position = chunk[-1].position
    log.debug("replay.batch", position=result.position, read=result.read)
    if ctx.options.progress:
        ctx.options.progress(result.position, result.total)
    return len(chunk)


def _checkpoint(ctx: _Replay, events: list[Event], outcomes: list[str | None], digest: str) -> None:
    """Record the batch's last position, digest and counts, in the batch's transaction."""
    conn, result = ctx.db.conn, ctx.result
    position = events[-1].position
    try:
        ctx.tracking.record(conn, position)
    except TrackingConflict as exc:
        raise ReplayError(
            f"position #{position} is already recorded in the target's "
            f"tracking ({exc}); refusing to apply it twice"
        ) from None
    parked = sum(1 for outcome in outcomes if outcome is not None)
    applied = len(events) - parked
    conn.execute(
        f"UPDATE {STATE_TABLE} SET position = ?, lastEventId = ?, prefixDigest = ?, "
        "applied = applied + ?, parked = parked + ? WHERE id = 1",
        (position, events[-1].event_id, digest, applied, parked),
    )
    conn.execute(
        f"UPDATE {RUNS_TABLE} SET toPosition = ?, read = ?, applied = ?, parked = ? WHERE run = ?",
        (
            position,
            result.read + len(events),
            result.applied + applied,
            result.parked_total + parked,
            ctx.run,
        ),
    )


def _add_outcomes(
    result: ReplayResult,
    events: list[Event],
    outcomes: list[str | None],
    projection: Projection,
    max_examples: int,
) -> None:
    """Count committed EVENTS into RESULT by outcome, keeping the first parked as examples,
    and the notes on the applied ones as warnings."""
    reasons = projection.reasons
    parked_positions = set()
    for event, outcome in zip(events, outcomes, strict=True):
        if outcome is None:
            result.applied += 1
        else:
            parked_positions.add(event.position)
            result.parked[outcome] += 1
            if len(result.examples) < max_examples:
                result.examples.append(_example(event, outcome, reasons))
    for event, notes in projection.notes.values():
        if event.position in parked_positions:
            continue  # a note on a parked event speaks of a row it did not write
        for note in notes:
            where = note_where(event, note)
            result.warn(note.kind, note_detail(event, note), max_examples, **where)
    reasons.clear()
    projection.notes.clear()
    result.read += len(events)


def _example(event: Event, kind: str, reasons: dict[int, str]) -> dict[str, Any]:
    return {
        "position": event.position,
        "eventId": event.event_id,
        "name": event.name if isinstance(event.name, str) else sample(event.name),
        "kind": kind,
        "reason": reasons.get(event.position, ""),
    }


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
            validator = Validator(catalog, strict_keys=state.strict_keys)
            projection = Projection(conn, validator, "park")
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
                events = [
                    Event(position, g, c, r, 0, 0, name, args_json, client_id, session_id)
                    for position, name, args_json, g, c, r, client_id, session_id in rows
                ]
                # Each is taken out of the parked table and applied (or parked again).
                conn.execute(f"DELETE FROM {PARKED_TABLE}")
                outcomes = projection.apply_one_by_one(events)
                _add_outcomes(result, events, outcomes, projection, options.max_examples)
                result.reapplied = result.applied  # every event applied here is a re-applied one
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
