"""The replay loop: source -> validate -> upcast -> handlers -> tables + checkpoint.

Events are applied in batches. A batch is validated and applied to its rows in memory
(`projector.store.RowStore`), then written as one transaction that holds the rows the
batch changed, its parked events, the tracking record of its last position and the
migration's counters. Whatever the moment of interruption, the target holds either all
of a batch or none of it, and a later run starts after the last committed position.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from events.catalog import bundled_catalog_names, load_recorded
from events.envelope import Event, args_text
from events.errors import CatalogError, SourceError, TextNotUtf8
from events.history import HistoryCheck
from events.scratch import remove_dead
from events.sources import KIND_EXPORT, KIND_SQLITE, Source, connect_readonly, open_source
from events.sqlite_source import Blob
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
from projector.batch import (
    Prepared,
    apply_events,
    collect_keys,
    prepare_events,
    run_handler,
)
from projector.checkpoint import PrefixDigest, TrackingConflict, TrackingView
from projector.errors import (
    CatalogFault,
    CheckpointMismatch,
    EventsError,
    IntegrityBreak,
    Interrupted,
    ReplayError,
    TargetError,
    command_line,
)
from projector.handlers import Handler, compile_catalog, entity_list, entity_text
from projector.handoff import refuse_handed_over
from projector.lock import held_lock_fd, refuse_hard_links, refuse_if_busy, writer_lock
from projector.prepare import EventChecks
from projector.profile import Lap, Phases, no_lap
from projector.store import RowError, RowStore, build_derived
from projector.target import (
    CACHE_KIB,
    CONNECTION_PRAGMAS,
    PARKED_TABLE,
    RUNS_TABLE,
    STATE_TABLE,
    check_writable,
    deferrable_derived,
    deferrable_indexes,
    is_target,
    open_target,
    read_tables,
    real_target,
    refuse_source_folder,
    require_target,
    state_columns,
)
from projector.writer import (
    BatchWriter,
    Op,
    RowRefused,
    TrackingRefused,
    WriterError,
    execute_ops,
)

log = structlog.get_logger("projector")

ON_INVALID = ("fail", "park")
#: Events per transaction. Fewer, larger transactions write each hot index page to the
#: WAL once per batch instead of once per small batch; the digest is the same at any size.
#: 10,000 keeps a replay and its writer process within 150 MB together (about 95 + 40 MB
#: on large); 20,000 was no faster and needed 140 + 40 MB.
DEFAULT_BATCH = 10000
#: Events validated (and their rows read) at a time within a batch: parsed args are
#: held only for a slice, so memory does not grow with the batch size.
PREPARE_SLICE = 1000
#: Container objects allocated and not yet freed since the last cyclic collection above
#: which a batch's end collects (`_apply_batches`): what reference counting cannot free
#: (a cycle) piles up there, while a batch that left none stays at a few hundred.
COLLECT_AFTER = 10_000
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
    #: the CLI exits 1 (see `ReplayResult.strict_failure`). A source whose history has
    #: holes (`events.history`) is refused before anything is written.
    strict: bool = False
    #: Seconds a source may stay locked by another process, or keep changing, before the
    #: run gives up (None: `events.sqlite_source.DEFAULT_LOCK_TIMEOUT`).
    lock_timeout: float | None = None
    #: Which ``eventlog@N.db`` of a store directory to read (None: the newest known).
    format_version: int | None = None
    #: Reject args holding a key their schema does not declare, instead of dropping it
    #: as LiveStore does; None means the policy the target recorded (or False).
    strict_keys: bool | None = False
    #: Where the batch loop's time goes, filled when given (`make bench`'s profile).
    phases: Phases | None = None
    #: Bulk load: a first run into an empty target builds the secondary indexes it does
    #: not query, and the derived tables it may, at its end, once, instead of row by row
    #: (`projector.target.deferrable_indexes`, `projector.target.deferrable_derived`).
    bulk_load: bool = True
    #: Write batches from a second process (`projector.writer`) while this one reads the
    #: next; None: when the machine has a second core and the run more than one batch.
    writer: bool | None = None


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
    #: The target was created in a file that was there, empty (a rollback empties it again).
    in_empty_file: bool = False
    dry_run: bool = False
    seconds: float = 0.0
    #: The writer process's peak RSS in MiB, when batches were written by one (Linux).
    writer_peak_mb: float | None = None
    #: False for a dry run (its scratch copy is thrown away), and for a replay-parked
    #: that re-applied nothing and re-parked every event as it was: its transaction was
    #: rolled back (no run recorded, no backup kept).
    changed: bool = True

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
            "changed": self.changed,
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
    catalog_digest: str | None = None
    strict_keys: bool = False
    #: JSON list of the DDL of the indexes a first run defers to its end (`bulk_load`).
    deferred_indexes: str | None = None
    #: JSON list of the derived tables a first run fills at its end (`bulk_load`).
    deferred_tables: str | None = None

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> MigrationState | None:
        # A target made before catalogs has no catalogDigest (open_target refuses it, with
        # the reason, once its record has been read); one made before strictKeys and
        # deferredIndexes ran all its runs without --strict-keys and deferred nothing.
        picked = state_columns(
            conn,
            catalogDigest="NULL",
            strictKeys="0",
            deferredIndexes="NULL",
            deferredTables="NULL",
        )
        row = conn.execute(
            f"SELECT source, sourceKind, formatVersion, storeId, catalog, onInvalid, position, "
            f"lastEventId, prefixDigest, sourceTotal, applied, parked, reapplied, state, "
            f"{', '.join(picked.values())} FROM {STATE_TABLE} WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        state = cls(*row)
        state.strict_keys = bool(state.strict_keys)
        return state

    @property
    def deferred(self) -> list[str]:
        """The derived tables an unfinished bulk load fills at its end (names)."""
        return json.loads(self.deferred_tables) if self.deferred_tables else []


class Projection:
    """Applies events to an open target: validation, upcasting, handlers and parking."""

    def __init__(self, conn: sqlite3.Connection, validator: Validator, on_invalid: str):
        if on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be one of {ON_INVALID}")
        self.conn = conn
        catalog = validator.catalog
        tables, self.handlers = compile_catalog(catalog)
        self.upcasters = catalog.upcasters
        # The handlers check every reference themselves (a foreign key's row before the
        # row pointing at it; derived rows are written with their parent), which costs
        # less than SQLite's foreign-key machinery on every write; `verify` runs
        # foreign_key_check.
        conn.execute("PRAGMA foreign_keys = OFF")
        self.store = RowStore(conn, tables)
        self.validator = validator
        self.on_invalid = on_invalid
        self.where = ""
        self.held_entities: set[str] = set()
        #: Tables with a held entity: a bulk change to one waits too.
        self.held_tables: set[str] = set()
        for (text,) in conn.execute(
            f"SELECT DISTINCT entity FROM {PARKED_TABLE} WHERE entity IS NOT NULL"
        ):
            for entity in entity_list(text):
                self.hold(entity)
        #: Handlers and upcasters of schema-valid events (as validate asks them).
        self.checks = EventChecks(validator, self.handlers)
        self._handlers = self.checks.found
        #: Every table some handler reads rows of (`Handler.collect`'s keys).
        self._read_tables = sorted(
            {table for h in self.handlers.by_name.values() for table, _ in h.reads}
        )
        #: Why each event of the batch was parked, by position (for a run's examples).
        self.reasons: dict[int, str] = {}
        #: The validator's notes on the batch's events, by position (the run's warnings).
        self.notes: dict[int, tuple[Event, tuple[Note, ...]]] = {}
        #: Positions of events an upcaster (hooks.py) failed on, under "fail" (the run
        #: stops at the first: `CatalogFault`).
        self.hook_faults: set[int] = set()

    def apply_batch(
        self,
        events: list[Event],
        on_slice: Callable[[int], None] | None = None,
        lap: Lap = no_lap,
        prepared_batch: list[Prepared] | None = None,
    ) -> list[str | None]:
        """Apply EVENTS to the batch's rows in memory; return each one's outcome (see `apply`).

        Events are validated and their rows read a slice at a time (`PREPARE_SLICE`), so
        parsed args never pile up for a whole batch, unless PREPARED_BATCH already holds
        them all (`prepare_many`: validated while the writer process wrote the batch
        before); ON_SLICE gets the position of each slice's last event (a progress bar
        moves within a batch); LAP the end of each phase (`projector.profile`). Nothing
        is written: `write` does that, in the batch's transaction; should the target
        refuse a row there, `clear` and redo the batch with `apply_one_by_one`.
        """
        outcomes: list[str | None] = []
        try:
            if prepared_batch is not None:  # the rows of the whole batch in one read a table
                self._prefetch(prepared_batch)
                lap("prefetch")
            for start in range(0, len(events), PREPARE_SLICE):
                part = events[start : start + PREPARE_SLICE]
                if prepared_batch is None:
                    prepared = self.prepare_many(part, lap)
                    self._prefetch(prepared)
                    lap("prefetch")
                else:
                    prepared = prepared_batch[start : start + PREPARE_SLICE]
                self._apply_slice(part, prepared, outcomes)
                lap("handlers")
                if on_slice is not None and start + PREPARE_SLICE < len(events):
                    on_slice(part[-1].position)
        except BaseException:
            self.clear()
            raise
        return outcomes

    def _apply_slice(
        self, events: list[Event], prepared: list[Prepared], outcomes: list[str | None]
    ) -> None:
        """`apply` each event, appending its outcome: the common case (valid, nothing held)
        applied by compiled code (`projector.batch`), everything else through `apply`."""
        apply_events(self.store, events, prepared, outcomes, self)

    def write(self, into: list[Op] | None = None) -> None:
        """Write the batch's parked events and rows (raises `RowError` if a row is refused);
        with INTO, append their statements to it instead (`projector.writer`)."""
        self.store.flush(into)

    def clear(self) -> None:
        """Forget the batch's unwritten rows, parked events and notes."""
        self.store.clear()
        self.reasons.clear()
        self.notes.clear()

    def _prefetch(self, prepared: list[Prepared]) -> None:
        """Read every row the batch's handlers will look at, a table at a time."""
        for table, wanted in collect_keys(prepared, self._read_tables).items():
            if wanted:
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
                outcome = self._refused(event, f"cannot be stored: {exc}", self._entities(event))
                self.store.flush()
            conn.execute("RELEASE projector_event")
            outcomes.append(outcome)
        return outcomes

    def _refused(self, event: Event, reason: str, entities: list[str], hook: bool = False) -> str:
        """Park (or fail on) an event whose rows the target refused to store, or whose
        hooks.py handler failed (HOOK; REASON says which)."""
        message = f"{event.event_id} ({event.name}): {reason}"
        if self.on_invalid == "fail":
            raise (CatalogFault if hook else ReplayError)(message)
        self.park(event, INVALID, message, entities)
        return INVALID

    def _entities(self, event: Event) -> list[str]:
        """The rows a valid event touches (worked out again only when its rows are refused)."""
        handler, args, _, _ = self.prepare(event)
        return handler.entities(args) if handler else []

    def handler_for(self, name: str) -> Handler | None:
        """The handler of events named NAME, or None."""
        return self._handler(name)

    def _handler(self, name: str) -> Handler | None:
        return self.checks.handler(name)

    def prepare(self, event: Event) -> Prepared:
        """Validate EVENT and find its handler: (handler, args as current, problem or None,
        the validator's notes)."""
        return self._prepared(event, *self.validator.check(event))

    def prepare_many(self, events: list[Event], lap: Lap = no_lap) -> list[Prepared]:
        """``[prepare(e) for e in events]``, validated as a list (`Validator.check_many`)."""
        prepared = prepare_events(
            events,
            self.validator.check_many(events, lap),
            self._handlers,
            self._handler,
            self.upcasters.steps,
            self._prepared,
        )
        lap("validate")
        return prepared

    def _prepared(
        self, event: Event, args: Any, problem: Problem | None, notes: tuple[Note, ...]
    ) -> Prepared:
        """(handler, args as current, problem or None, notes) of EVENT checked as ARGS,
        PROBLEM, NOTES: a schema-valid event is then asked for its handler and upcast
        (`projector.prepare.EventChecks`, which validate asks too)."""
        handler = self._handler(event.name) if isinstance(event.name, str) else None
        if problem is None:
            args, problem, hook_failed = self.checks.after_schema(event, args)
            if hook_failed and self.on_invalid == "fail":
                self.hook_faults.add(event.position)
        elif problem.kind == UNKNOWN and event.schema_hash == -1:
            problem = replace(
                problem,
                reason=f"{problem.reason}; the app that wrote it did not know it either "
                "(schemaHash -1) and LiveStore skips it on replay",
            )
        return handler, args, problem, notes

    def apply(self, event: Event, prepared: Prepared | None = None) -> str | None:
        """Apply EVENT; return None when applied, or the kind under which it was parked."""
        handler, current, problem, notes = prepared or self.prepare(event)
        if notes:
            self.notes[event.position] = (event, notes)
        if problem is not None:
            if self.on_invalid == "fail":
                fault = CatalogFault if event.position in self.hook_faults else ReplayError
                raise fault(problem.message(self.where))
            entities: list[str] = []
            if handler is not None:
                # Args too broken to name their rows (a key its schema refuses, e.g. a
                # number for a text id) hold back the handler's whole tables: re-applying
                # the event later must not overtake events it preceded.
                name = event.name
                entities = (
                    handler.entities_trusted(
                        current, lambda path, value: self.validator.fits(name, path, value)
                    )
                    if isinstance(current, dict)
                    else []
                ) or list(handler.any_rows)
            self.park(event, problem.kind, problem.message(), entities)
            return problem.kind
        assert handler is not None
        if self.held_entities:  # entities are only worked out when something is parked
            row = self._held(handler, current)
            if row is not None:
                reason = f"held back: an earlier event on {label(row)} is parked"
                self.park(event, HELD, reason, handler.entities(current))
                return HELD
        if notes and any(n.kind == LONE_SURROGATE for n in notes):
            self.store.lossy = True  # this batch's rows are written as LiveStore writes them
        outcome = run_handler(self, self.store, event, handler, current)
        if outcome is None and notes:
            self._record_deviations(event, handler, current, notes)
        return outcome

    def _record_deviations(
        self, event: Event, handler: Handler, args: Any, notes: tuple[Note, ...]
    ) -> None:
        """Record the rows an applied event changed unlike LiveStore (for `verify`)."""
        nul = [n for n in notes if n.kind == NUL_IN_TEXT]
        if not nul:
            return
        detail = _storable(f"U+0000 at {', '.join(dict.fromkeys(n.path for n in nul))}")
        name = deviations.NUL_TRUNCATION.name
        for entity in handler.entities(args):
            for row in deviations.nul_entities(entity):
                self.store.deviate((event.position, event.event_id, name, _storable(row), detail))

    def _broken(self, event: Event, handler: Handler, args: Any, exc: IntegrityBreak) -> str:
        """Park an event whose rows would break the target's integrity."""
        entities = handler.entities(args)
        self.park(event, INTEGRITY, f"{event.event_id} ({event.name}): {exc}", entities)
        return INTEGRITY

    def _held(self, handler: Handler, args: Any) -> str | None:
        """The parked entity the event must wait behind, or None."""
        held = self.held_entities
        for entity in handler.entities(args):
            if entity in held:
                return entity
        for entity in handler.any_rows:
            if entity in held:
                return entity
        for table in handler.bulk:  # a change to every row waits behind any held row
            if table in self.held_tables:
                return next(e for e in sorted(held) if e.startswith(f"{table}:"))
        return None

    def set_held(self, entities: set[str]) -> None:
        """Hold back exactly ENTITIES (a batch redone, or parked events re-applied)."""
        self.held_entities = set()
        self.held_tables = set()
        for entity in entities:
            self.hold(entity)

    def hold(self, entity: str) -> None:
        """Hold back later events on ENTITY (``table:key`` or ``table:*``)."""
        self.held_entities.add(entity)
        self.held_tables.add(entity.partition(":")[0])

    def park(self, event: Event, kind: str, reason: str, entities: list[str]) -> None:
        """Park EVENT (written with the batch's rows) and hold back its entities."""
        self.store.park(
            (
                event.position,
                event.event_id,
                _storable(event.name),
                _storable(args_text(event)),
                kind,
                _storable(reason),
                _storable(entity_text(entities)),
                event.seq_global,
                event.seq_client,
                event.rebase_generation,
                _storable(event.client_id),
                _storable(event.session_id),
            )
        )
        self.reasons[event.position] = reason
        for entity in entities:
            self.hold(entity)


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


def _uncovered(counts: dict[str, tuple[int, int]], catalog: Catalog) -> tuple[list[str], int]:
    """The log's event names (COUNTS: `Source.name_counts`) CATALOG does not project, and
    how many names count.

    Names whose every event LiveStore stored with ``schemaHash = -1`` do not count: the
    app that wrote them did not know them either, and LiveStore skips them on replay.
    """
    named = {name for name, (n, unknown) in counts.items() if unknown < n}
    handlers = compile_catalog(catalog)[1] if catalog.has_projection else None
    handled = {
        name
        for name in named
        if handlers is not None and name in catalog.schemas and handlers.for_name(name)
    }
    return sorted(named - handled, key=lambda n: (-counts[n][0], n)), len(named)


def _refuse_another_app(
    source: Source, counts: dict[str, tuple[int, int]], catalog: Catalog, *, named: bool
) -> None:
    """Refuse a log that is not the catalog's app (the one NAMED with --catalog, or the one
    picked): fewer than half of its event names (not counting those LiveStore marked
    unknown) have a handler there.

    A log of this app with a few names its handlers do not know (a newer event version, a
    corrupt name) is still replayed: those events fail the run or are parked (see README,
    "Another app's log").
    """
    missing, counted = _uncovered(counts, catalog)
    if counted and len(missing) * 2 > counted:
        shown = ", ".join(label(n) for n in missing[:6])
        more = f" and {len(missing) - 6:,} more" if len(missing) > 6 else ""
        hint = (
            f"is --catalog {catalog.name} this app's catalog?"
            if named
            else "pass --catalog NAME|DIR with this app's catalog"
        )
        raise ReplayError(
            f"{source.path}: not a log of the {catalog.name!r} catalog: {len(missing):,} of "
            f"its {counted:,} event names have no handler there ({shown}{more}); {hint} "
            "(`projector scaffold` drafts one)"
        )


def _catalog_for(
    source: Source, state: MigrationState | None, options: ReplayOptions, label: Path
) -> Catalog:
    """The catalog of this run: the one given, else the one TARGET recorded, else the
    bundled one that knows the log's names best. A first run refuses a catalog whose
    handlers cover fewer than half of the log's names (another app's log), and picks none
    for a log with no event to tell its app by (an app just installed): its catalog would
    be a guess that the app's first events, caught up later, refuse.

    The catalog is compiled whole here (`compile_catalog`), so a broken one is refused
    before the target is touched. Raises CheckpointMismatch when TARGET was migrated with
    another catalog, or with this one before its files changed; CatalogError when the
    catalog has no projection.
    """
    if state is None:
        counts = source.name_counts()  # one pass gives the names and LiveStore's unknowns
        if options.catalog is None and not any(u < n for n, u in counts.values()):
            total = sum(n for n, _ in counts.values())
            holds = (
                "it holds no events"
                if not total
                else "its only event is one the app that wrote it did not know (schemaHash -1)"
                if total == 1
                else f"its {total:,} events are all ones the app that wrote them did not know "
                "(schemaHash -1)"
            )
            raise ReplayError(
                f"{source.path}: {holds}, so nothing tells which app's log it is; pass "
                f"--catalog NAME|DIR (bundled: {', '.join(bundled_catalog_names())})"
            )
        catalog = options.catalog or detect_catalog(counts)
        _require_projection(catalog)
        _refuse_another_app(source, counts, catalog, named=options.catalog is not None)
    elif options.catalog is not None:
        catalog = options.catalog
    else:
        try:
            catalog = load_recorded(state.catalog)
        except CatalogError as exc:
            raise CheckpointMismatch(f"{label}: {exc}") from None
    same_files = state is not None and state.catalog_digest == catalog.digest
    if state is not None and is_other_catalog(state.catalog, state.catalog_digest, catalog):
        # Named alike (a copy of the catalog, edited), the two differ in their files.
        files = (
            f": --catalog takes a catalog holding the files this migration began with "
            f"(digest {state.catalog_digest[:12]}; {catalog.reference}'s: {catalog.digest[:12]})"
            if state.catalog_digest
            else ""
        )
        raise CheckpointMismatch(
            f"{label}: was migrated with catalog {state.catalog!r}, not {catalog.reference!r}"
            + files
        )
    if state is not None and state.catalog_digest and not same_files:
        raise CheckpointMismatch(catalog_changed(label, catalog, str(state.catalog_digest)))
    _require_projection(catalog)
    return catalog


def is_other_catalog(recorded: str | None, recorded_digest: str | None, catalog: Catalog) -> bool:
    """Whether CATALOG is not the one a migration recorded (RECORDED, its reference, and
    RECORDED_DIGEST, its files' digest): named otherwise and holding other files. The
    same files named another way (a folder for a bundled name, a folder that moved) are
    the same catalog. Replay, resume and verify refuse another catalog."""
    return recorded != catalog.reference and recorded_digest != catalog.digest


def catalog_changed(label: Path | str, catalog: Catalog, digest: str) -> str:
    """Why a migration cannot go on with CATALOG, whose files changed since it began (an
    upgrade of the projector changes a bundled catalog's files; DIGEST: the one it
    recorded), and what to do."""
    return (
        f"{label}: catalog {catalog.name!r} changed since this migration began "
        f"({catalog.directory}); migrate into a new target with the new catalog, or go on with "
        f"--catalog DIR holding the files it began with (digest {digest[:12]})"
    )


def load_recorded_catalog(label: Path | str, conn: sqlite3.Connection) -> Catalog | None:
    """The catalog LABEL's migration recorded (CONN: the target, read), or None before its
    first batch. Raises CatalogError when it is not found, or when its files changed
    since the migration began (the digest it recorded; a target made before digests were
    recorded has none to compare): verify, finalize and drizzle would otherwise describe
    the target with files it was not made with."""
    digest = state_columns(conn, catalogDigest="NULL")["catalogDigest"]
    row = conn.execute(f"SELECT catalog, {digest} FROM {STATE_TABLE} WHERE id = 1").fetchone()
    if row is None:
        return None
    catalog = load_recorded(row[0])
    if row[1] and catalog.digest != row[1]:
        raise CatalogError(catalog_changed(label, catalog, row[1]))
    return catalog


def _require_projection(catalog: Catalog) -> None:
    """Refuse a catalog that cannot replay, and compile it whole (`compile_catalog`)."""
    if not catalog.has_projection:
        raise CatalogError(
            f"catalog {catalog.name} ({catalog.directory}) has no projection (no [tables] in "
            "catalog.toml): it can validate a log but not replay one"
        )
    compile_catalog(catalog)


def replay(
    source_path: str | Path,
    target_path: str | Path,
    options: ReplayOptions | None = None,
    *,
    dry_run: bool = False,
) -> ReplayResult:
    """Migrate SOURCE into TARGET, continuing from TARGET's checkpoint if it has one.

    Every check that can refuse the run comes before the first write: TARGET's path
    (`check_writable`), another app's log, the catalog TARGET recorded, and the history
    up to TARGET's checkpoint (the prefix digest: another store, a history rewritten by
    a rebase, a shorter source, an export of a store migrated from its eventlog). A
    refused run leaves TARGET byte-identical: no backup, no run recorded. A run that
    fails before its first batch is committed is undone too (a target it created is
    removed); one that fails later keeps its committed batches and can be resumed.
    With DRY_RUN the run goes into a scratch copy and TARGET is not touched.

    Raises TargetError, CheckpointMismatch, ReplayError, Busy, Interrupted, EventsError.
    """
    options = options or ReplayOptions()
    target = real_target(Path(target_path))
    source = _open(source_path, options)
    try:
        if target.exists() and target.resolve() == source.path.resolve():
            raise TargetError(f"{target}: is the source; refusing to write to it")
        refuse_source_folder(target, source)
        refuse_handed_over(target, "replay into")
        check_writable(target)
        if dry_run:  # refused where the real run would be
            refuse_if_busy(target)
            refuse_hard_links(target)
            return _dry_run(source, target, options)
        with writer_lock(target):
            return _run(source, target, options, command="replay")
    finally:
        source.close()


def _open(path: str | Path, options: ReplayOptions) -> Source:
    """Open the source; under ``--strict``, refuse one whose history has holes before
    anything is written (LiveStore would replay it: without --strict they are warnings)."""
    source = open_source(
        path, lock_timeout=options.lock_timeout, format_version=options.format_version
    )
    if options.strict:
        try:
            history = HistoryCheck()
            first = None
            for event in source.events():
                found = history.check((event,))
                if found and first is None:
                    first = found[0]
        except BaseException:
            source.close()
            raise
        if first is not None:
            source.close()
            kind, detail, position, _ = first
            raise ReplayError(
                f"--strict: {source.path}: the history has holes ({history.summary()}); "
                f"first, {kind} at #{position:,}: {detail}; nothing was written"
            )
    return source


def resume(
    target_path: str | Path,
    options: ReplayOptions | None = None,
    *,
    source_path: str | Path | None = None,
) -> ReplayResult:
    """Continue TARGET's migration from its checkpoint, reading the source it recorded
    (or SOURCE_PATH: a source that moved, accepted only if its history up to the
    checkpoint is the one migrated; its path is then recorded), with the policies it
    recorded unless OPTIONS name others. Raises as `replay`."""
    options = options or ReplayOptions(on_invalid=None, strict_keys=None)
    target = real_target(Path(target_path))
    if not os.path.lexists(target):  # e.g. a first run killed before its first commit
        raise TargetError(
            f"{target}: no such target database; nothing to resume: a migration starts "
            f"with `projector replay SOURCE {target}`"
        )
    refuse_handed_over(target, "resume")
    require_target(target, "; nothing to resume")
    check_writable(target)
    state, _, _ = _read_record(target, target)
    if state is None:
        raise TargetError(f"{target}: no migration recorded; run `projector replay` first")
    try:
        source = _open(source_path or state.source, options)
    except EventsError as exc:
        # Only a source that is no longer where it was may have moved: a locked one
        # (SourceBusy, exit 75) or a damaged one is reported as it is.
        if source_path is not None or Path(state.source).exists():
            raise
        raise SourceError(
            f"{exc}; if the source moved, pass its new path: "
            f"{command_line('resume', target, '--source', 'PATH')}"
        ) from None
    try:
        with writer_lock(target):
            return _run(source, target, options, command="resume")
    finally:
        source.close()


#: The scratch folders of dry runs, in the temporary folder: ``<prefix><pid>-<random>``.
DRY_RUN_PREFIX = "projector-dry-run-"


def _dry_run(source: Source, target: Path, options: ReplayOptions) -> ReplayResult:
    _remove_dead_scratch()
    scratch_dir = Path(tempfile.mkdtemp(prefix=f"{DRY_RUN_PREFIX}{os.getpid()}-"))
    try:
        scratch = scratch_dir / "target.db"
        if target.exists() and is_target(target):
            backups.take_backup(
                target, scratch, f"cannot copy it for the dry run into {scratch_dir.parent}"
            )
        result = _run(source, scratch, options, command="replay", label=target)
        result.backup = None
        return result
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)


def _remove_dead_scratch() -> None:
    """Remove the scratch folders of dry runs whose process is gone (killed before it
    could remove its own: a copy of the target, as big as it). A folder whose pid names
    a live process (its own run, or a reused pid) is left alone."""
    remove_dead(
        Path(tempfile.gettempdir()), re.compile(rf"{re.escape(DRY_RUN_PREFIX)}(?P<pid>\d+)-.+")
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _read_record(target: Path, label: Path) -> tuple[MigrationState | None, int, int]:
    """TARGET's migration record, tracking position and next run number, read through a
    read-only connection: (None, 0, 1) for a target that holds no migration yet."""
    if not target.exists() or target.stat().st_size == 0 or not is_target(target):
        return None, 0, 1
    try:
        conn = connect_readonly(target)
        try:
            state = MigrationState.read(conn)
            tracked = TrackingView(str(target)).position(conn)
            run = conn.execute(f"SELECT COALESCE(MAX(run), 0) + 1 FROM {RUNS_TABLE}").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise TargetError(f"{label}: cannot read its migration record ({exc})") from None
    checkpoint = tracked or 0
    if state is not None and state.position != checkpoint:
        raise TargetError(
            f"{label}: migration record (#{state.position:,}) and tracking record "
            f"(#{checkpoint:,}) disagree; the target was edited by hand"
        )
    return state, checkpoint, run


def _refuse_export_after_eventlog(
    state: MigrationState | None, source: Source, label: Path
) -> None:
    """An export cannot continue a migration made from the store's eventlog: LiveStore's
    `sync export` holds global events only (FORMAT.md section 2, client-only events)."""
    if state is not None and state.source_kind == KIND_SQLITE and source.kind == KIND_EXPORT:
        raise CheckpointMismatch(
            f"{label}: was migrated from a SQLite eventlog; {source.path} is a `livestore sync "
            "export`, which holds no client-only events, so its history differs from the "
            "eventlog's at the first client-only event; continue from the store's eventlog, "
            "or migrate the export into a new target"
        )


def _run(
    source: Source,
    target: Path,
    options: ReplayOptions,
    *,
    command: str,
    label: Path | None = None,
) -> ReplayResult:
    """One run into TARGET (LABEL names it in messages and logs: the real target of a dry
    run, whose TARGET is a scratch copy). Checks first, writes after (see `replay`)."""
    started = time.monotonic()
    dry_run = label is not None
    label = label or target
    state, checkpoint, run = _read_record(target, label)
    catalog = _catalog_for(source, state, options, label)
    _refuse_export_after_eventlog(state, source, label)
    history = HistoryCheck()
    digest, events = _after_checkpoint(source, state, checkpoint, label, history, catalog)
    first = next(events, None)
    created = state is None
    result = ReplayResult(
        source=str(source.path),
        target=str(label),
        command=command,
        catalog=catalog.name,
        from_position=checkpoint,
        position=checkpoint,
        total=source.count(),
        created=created,
        dry_run=dry_run,
        changed=not dry_run,
    )
    on_invalid = options.on_invalid or (state.on_invalid if state else "fail")
    strict_keys = options.strict_keys
    if strict_keys is None:
        strict_keys = state.strict_keys if state else False
    _warn_export(result, source, catalog, options.max_examples)
    if first is None and state is not None:  # not created
        _record_noop(target, source, catalog, state, run, result, (on_invalid, strict_keys))
        result.seconds = time.monotonic() - started
        _log_done(result)
        return result
    events = itertools.chain([first], events) if first is not None else events
    file_existed = target.exists()
    # An empty file is a database SQLite creates in place: a run undone leaves it empty.
    was_empty = file_existed and target.is_file() and target.stat().st_size == 0
    result.in_empty_file = created and was_empty
    if not created and not dry_run:
        result.backup = str(backups.back_up_before(target, run))
    try:
        db = open_target(target, create=True, catalog=catalog)
    except BaseException:
        _undo(target, result, file_existed, was_empty)
        raise
    conn = db.conn
    try:
        if options.max_page_count:
            conn.execute(f"PRAGMA max_page_count = {int(options.max_page_count)}")
        log.info(
            "replay.start",
            dry_run=dry_run,
            source=str(source.path),
            format=source.describe(),
            target=str(label),
            catalog=catalog.name,
            checkpoint=checkpoint,
            total=result.total,
            backup=result.backup,
        )
        if options.progress:
            options.progress(checkpoint, result.total)
        projection = Projection(conn, Validator(catalog, strict_keys=strict_keys), on_invalid)
        projection.where = source.path.name
        ctx = _Replay(
            db, projection, TrackingView(str(target)), digest, options, run, result, history=history
        )
        if created and options.bulk_load:
            deferred = _deferrable(conn, catalog)
        else:  # a resumed bulk load goes on deferring what its first run did
            deferred = ([], state.deferred if state else [])
        projection.store.defer(deferred[1])
        ctx.begin = lambda c: _begin(
            c, state, source, catalog, on_invalid, strict_keys, run, result, deferred
        )
        if _use_writer(options, result):
            ctx.writer = _start_writer(target, options)
            if ctx.writer is not None:
                conn.execute("PRAGMA cache_size = -2048")  # the writer's connection writes
        if options.phases:
            options.phases.start()
        # The loop allocates hundreds of thousands of short-lived containers (parsed args,
        # rows, statements) that reference counting frees; the cyclic collector would
        # re-scan every live one (a whole batch) again and again. It is paused for the
        # loop; what batches leave in cycles is collected at a batch's end once it piles
        # up (`_apply_batches`, `COLLECT_AFTER`).
        collecting = gc.isenabled()
        gc.disable()
        try:
            try:
                _apply_batches(ctx, events)
            except TextNotUtf8 as exc:  # found as the batch was validated
                raise SourceError(f"{source.path}: {exc}") from None
            # The writer ends (checkpoints its last batch, exits) while the bulk load ends.
            _stop_writer(ctx, wait=False)
            if options.phases:
                options.phases.lap("wait")
            if not ctx.begun:  # a new target and a source without events
                with db.atomic():
                    ctx.begin(conn)
                ctx.begun = True
            with db.atomic():
                _build_deferred(conn, catalog)
            if options.phases:
                options.phases.lap("indexes")
            _stop_writer(ctx)
            if options.phases:
                options.phases.lap("wait")
        except BaseException as exc:
            if collecting:
                gc.enable()
            _stop_writer(ctx, failing=True)
            stopped = isinstance(exc, Interrupted | KeyboardInterrupt)
            # An event at fault under "fail" (not the target's or the source's doing).
            # The catalog named when one was given: a target this run made records none
            # once undone, and the pasted command would detect one again.
            named = catalog.reference if options.catalog is not None else None
            parking = _replay_command(source, label, named, "park", strict_keys, dry_run)
            park = (
                f" (or park such events: {parking})"
                if isinstance(exc, ReplayError) and ctx.projection.on_invalid == "fail"
                else ""
            )
            catalog_fault = (
                isinstance(exc, CatalogFault)
                and _says(exc)
                and (ctx.begun or not created)
                and not dry_run
            )
            if catalog_fault:
                # Fixing hooks.py changes the catalog this target recorded, which it then
                # refuses: the way on is to park such events and apply them with the fix.
                fixed = command_line("replay-parked", label, "--catalog", "DIR")
                park = (
                    ": a fix to hooks.py changes the catalog, which it then refuses; park such "
                    f"events ({parking}), then apply them with the fixed catalog ({fixed})"
                )
            if not ctx.begun:
                conn.close()
                _undo(target, result, file_existed, was_empty)
                unchanged = "nothing was written" + (
                    "" if created else f": {label} stays at #{checkpoint:,}"
                )
                if isinstance(exc, WriterError):
                    raise ReplayError(f"{label}: {exc}; {unchanged}") from None
                if isinstance(exc, sqlite3.Error):
                    raise ReplayError(
                        f"{label}: write failed before the first batch was committed ({exc}); "
                        f"{unchanged}"
                    ) from None
                if isinstance(exc, ReplayError) and _says(exc):  # an event at fault
                    exc.args = (f"{exc.args[0]}; {unchanged}{park}", *exc.args[1:])
                # Anything else (the source refused as it was read, a signal) reads as
                # the refusals made before a run: the target is as it was.
                raise
            if isinstance(exc, sqlite3.Error):
                result.state = "failed"
                _finish(db, run, result, quiet=True)
                raise ReplayError(
                    f"{label}: write failed after #{result.position:,} ({exc}); "
                    + _holds(label, result.position, dry_run)
                ) from None
            if isinstance(exc, WriterError):
                result.state = "failed"
                _finish(db, run, result, quiet=True)
                # The writer may have committed the batch it was killed after: ask the target.
                position = _committed_position(conn)
                raise ReplayError(f"{label}: {exc}; {_holds(label, position, dry_run)}") from None
            # ReplayError (an event under "fail"), Interrupted, EventsError (the source
            # broke mid-read), KeyboardInterrupt: the committed batches stay, resumable.
            result.state = "interrupted" if stopped else "failed"
            _finish(db, run, result, quiet=True)
            if not stopped and _says(exc):
                # Say what stays: the message is otherwise the event's or the source's.
                try:
                    position = _committed_position(conn)
                except sqlite3.Error:  # the target's own failure is not the one to report
                    raise exc from None
                # A catalog fault's way on is in PARK: resuming would refuse the fix.
                holds = _holds(label, position, dry_run, resume=not catalog_fault)
                exc.args = (f"{exc.args[0]}; {holds}{park}", *exc.args[1:])
            raise
        if collecting:
            gc.enable()
        result.state = "complete"
        _finish(db, run, result)
        if options.phases:
            options.phases.lap("other")
        result.seconds = time.monotonic() - started
        _log_done(result)
        return result
    finally:
        conn.close()


def _says(exc: BaseException) -> bool:
    """Whether EXC's message is its first argument (a sentence can be added to it)."""
    return bool(exc.args) and isinstance(exc.args[0], str)


def _holds(label: Path, position: int, dry_run: bool = False, resume: bool = True) -> str:
    """What a target a run failed in after committing holds, and (RESUME) how to go on (a
    dry run committed into a scratch copy: LABEL, the real target, is as it was)."""
    if dry_run:
        return f"a dry run: {label} is as it was"
    holds = f"{label} holds every batch up to #{position:,} ({command_line('status', label)})"
    if not resume:
        return holds
    return f"{holds}: once the cause is fixed, {command_line('resume', label)} goes on from there"


def _committed_position(conn: sqlite3.Connection) -> int:
    """The position of the last batch committed to the target (the migration record)."""
    return int(conn.execute(f"SELECT position FROM {STATE_TABLE} WHERE id = 1").fetchone()[0])


def _undo(target: Path, result: ReplayResult, file_existed: bool, was_empty: bool) -> None:
    """Take back what a run wrote before it failed with nothing committed: its backup, and
    the target itself when the run created it (a file that was empty is emptied again,
    its side files removed)."""
    if result.backup:
        backups.delete(Path(result.backup))
        result.backup = None
    if result.created and not file_existed:
        backups.remove_database(target)
    elif result.created and was_empty:
        backups.empty_database(target)


def _warn_export(result: ReplayResult, source: Source, catalog: Catalog, limit: int) -> None:
    """Say that a sync export cannot fill what only client-only events write."""
    if source.kind != KIND_EXPORT or not catalog.client_only:
        return
    tables = client_only_tables(catalog)
    empty = (
        f": {', '.join(tables)} {'stays' if len(tables) == 1 else 'stay'} empty" if tables else ""
    )
    result.warn(
        "no-client-only",
        "a `livestore sync export` holds no client-only events "
        f"({', '.join(sorted(catalog.client_only))}){empty}; migrate the store's eventlog "
        "to keep them",
        limit,
    )


def client_only_tables(catalog: Catalog) -> list[str]:
    """The tables only CATALOG's client-only events write (empty when migrated from an export)."""
    if not catalog.has_projection:
        return []
    handlers = compile_catalog(catalog)[1]

    def tables(names: Any) -> set[str]:
        found: set[str] = set()
        for name in names:
            handler = handlers.for_name(name)
            if handler is not None:
                found.update(handler.tables)
        return found

    shared = tables(n for n in catalog.schemas if n not in catalog.client_only)
    return sorted(tables(catalog.client_only) - shared)


def _log_done(result: ReplayResult) -> None:
    log.info("replay.done", **{k: v for k, v in result.as_dict().items() if k != "examples"})
    _log_attention(result)


def _log_attention(result: ReplayResult) -> None:
    """One warning line when the run parked events or warned (shown even under -q)."""
    parts = []
    if result.parked_total:
        kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(result.parked.items()))
        verb = "would park" if result.dry_run else "parked"
        parts.append(f"{verb} {result.parked_total:,} event(s) ({kinds})")
    if result.warnings:
        kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(result.warnings.items()))
        parts.append(f"{sum(result.warnings.values()):,} warning(s) ({kinds})")
    if not parts:
        return
    message = " and ".join(parts)
    if result.dry_run:
        message = f"dry run: {message}"
    elif result.parked_total:
        message += f"; list them with {command_line('parked', result.target)}"
    log.warning("replay.attention", message=message)


def _record_noop(
    target: Path,
    source: Source,
    catalog: Catalog,
    state: MigrationState,
    run: int,
    result: ReplayResult,
    policies: tuple[str, bool],
) -> None:
    """A run with nothing to apply: a run record (so that `rollback` undoes this run, and
    not the one before), the source's path and count, POLICIES (on_invalid, strict_keys):
    one given replaces the recorded one here too, and CATALOG's reference, as a run that
    applies events records it (a --catalog DIR holding the files the migration began
    with, after an upgrade changed the bundled ones). It takes no backup, as it changes
    no row, unless it ends a bulk load its first run did not (STATE records what that
    deferred: `_build_deferred`): then `rollback` restores the target as it was, the
    derived tables not filled yet (trial 36)."""
    result.state = "complete"
    if (state.deferred_indexes or state.deferred_tables) and not result.dry_run:
        result.backup = str(backups.back_up_before(target, run))
    try:
        db = open_target(target, create=True, catalog=catalog)
    except BaseException:
        if result.backup:
            backups.delete(Path(result.backup))
        raise
    try:
        with db.atomic():
            _build_deferred(db.conn, catalog)  # a bulk load killed at its very end
            db.conn.execute(
                f"UPDATE {STATE_TABLE} SET source = ?, sourceKind = ?, formatVersion = ?, "
                "sourceTotal = ?, state = 'complete', onInvalid = ?, strictKeys = ?, "
                "catalog = ? WHERE id = 1",
                (
                    str(source.path.resolve()),
                    source.kind,
                    source.format_version,
                    result.total,
                    *policies,
                    catalog.reference,
                ),
            )
            db.conn.execute(
                f"INSERT INTO {RUNS_TABLE} (run, command, startedAt, endedAt, fromPosition, "
                "toPosition, state, backup) VALUES (?, ?, ?, ?, ?, ?, 'complete', ?)",
                (
                    run,
                    result.command,
                    _now(),
                    _now(),
                    result.position,
                    result.position,
                    result.backup,
                ),
            )
    except BaseException:
        if result.backup:  # rolled back: the target is as it was
            db.conn.close()
            backups.delete(Path(result.backup))
            result.backup = None
        raise
    finally:
        db.conn.close()


def _begin(
    conn: sqlite3.Connection,
    state: MigrationState | None,
    source: Source,
    catalog: Catalog,
    on_invalid: str,
    strict_keys: bool,
    run: int,
    result: ReplayResult,
    deferred: tuple[list[tuple[str, str]], list[str]] = ([], []),
) -> None:
    """Record the run (and, for a new target, the migration, with its policies): written in
    the transaction of the run's first batch, so a run that commits nothing leaves no
    trace. CONN may be a `_Recorder`. A new migration (an empty target) drops the
    DEFERRED indexes ((name, DDL)) and records them and the deferred derived tables
    (names: `_deferrable`), which the run builds at its end."""
    indexes, tables = deferred
    if state is None:
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute(
            f"INSERT INTO {STATE_TABLE} (id, source, sourceKind, formatVersion, storeId, catalog, "
            "catalogDigest, tables, onInvalid, strictKeys, position, prefixDigest, sourceTotal, "
            "state, deferredIndexes, deferredTables, migrationId) "
            "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 'running', ?, ?, ?)",
            (
                str(source.path.resolve()),
                source.kind,
                source.format_version,
                source.store_id,
                catalog.reference,
                catalog.digest,
                json.dumps(list(catalog.spec["tables"]), ensure_ascii=False),
                on_invalid,
                int(strict_keys),
                PrefixDigest().hexdigest(),
                result.total,
                json.dumps([sql for _, sql in indexes]) if indexes else None,
                json.dumps(tables) if tables else None,
                uuid.uuid4().hex,  # `projector.finalize.migration_identity`
            ),
        )
    else:
        conn.execute(
            f"UPDATE {STATE_TABLE} SET source = ?, sourceKind = ?, formatVersion = ?, "
            "storeId = COALESCE(storeId, ?), onInvalid = ?, strictKeys = ?, sourceTotal = ?, "
            "state = 'running', catalog = ? WHERE id = 1",
            (
                str(source.path.resolve()),
                source.kind,
                source.format_version,
                source.store_id,
                on_invalid,
                int(strict_keys),
                result.total,
                catalog.reference,  # the same files (`_catalog_for`), perhaps from a folder
            ),
        )
    conn.execute(
        f"INSERT INTO {RUNS_TABLE} (run, command, startedAt, fromPosition, state, backup, "
        "createdTarget) VALUES (?, ?, ?, ?, 'running', ?, ?)",
        # createdTarget: 1, or 2 when made in a file that was there, empty (`rollback`).
        (
            run,
            result.command,
            _now(),
            result.from_position,
            result.backup,
            2 if result.in_empty_file else int(result.created),
        ),
    )


def _deferrable(
    conn: sqlite3.Connection, catalog: Catalog
) -> tuple[list[tuple[str, str]], list[str]]:
    """What a first run into the empty target builds at its end: its indexes ((name,
    DDL): `deferrable_indexes`) and derived tables (names: `deferrable_derived`)."""
    tables, handlers = compile_catalog(catalog)
    queried = handlers.queried()
    return deferrable_indexes(conn, tables, queried), deferrable_derived(conn, tables, queried)


def _build_deferred(conn: sqlite3.Connection, catalog: Catalog) -> None:
    """End a bulk load, whichever run reaches it: fill the derived tables a first run
    deferred from their parents' final rows (`build_derived`), then build the deferred
    indexes (over full tables), in the caller's transaction, with the record that they
    are built. Raises sqlite3.Error (a full disk: the transaction rolls back, and the
    next run, `resume`, builds them)."""
    found = conn.execute(
        f"SELECT deferredIndexes, deferredTables FROM {STATE_TABLE} WHERE id = 1"
    ).fetchone()
    if not found or not (found[0] or found[1]):
        return
    started = time.monotonic()
    ddl, names = json.loads(found[0] or "[]"), json.loads(found[1] or "[]")
    tables = compile_catalog(catalog)[0]
    rows = 0
    for name in names:
        derived = tables[name]
        parent = derived.derived.parent if derived.derived else name
        rows += build_derived(conn, derived, tables[parent])
    filled = time.monotonic()
    for sql in ddl:
        conn.execute(sql)
    conn.execute(
        f"UPDATE {STATE_TABLE} SET deferredIndexes = NULL, deferredTables = NULL WHERE id = 1"
    )
    log.info(
        "replay.bulk_load_built",
        tables=len(names),
        rows=rows,
        indexes=len(ddl),
        seconds=round(time.monotonic() - started, 3),
        table_seconds=round(filled - started, 3),
    )


def _after_checkpoint(
    source: Source,
    state: MigrationState | None,
    checkpoint: int,
    label: Path,
    history: HistoryCheck,
    catalog: Catalog,
) -> tuple[PrefixDigest, Iterator[Event]]:
    """The digest so far and the source's events past CHECKPOINT, after proving the ones
    before it are the history migrated into the target (same store, not rewritten), and
    showing them to HISTORY, whose warnings they do not raise again (an earlier run
    tolerated them)."""
    digest = PrefixDigest()
    events = source.events(utf8_args=True)
    if checkpoint:
        assert state is not None
        last = None
        for event in events:
            digest.update(event)
            history.check((event,))
            last = event
            if event.position == checkpoint:
                break
        where = f"#{checkpoint:,} ({state.last_event_id})"
        if last is None or last.position < checkpoint:
            seen = last.position if last else 0
            raise CheckpointMismatch(
                f"{source.path} has {seen:,} events but {label}'s checkpoint is at {where}: "
                "not the history that was migrated (another store, or events removed since); "
                f"migrate it into a new target: {_into_new_target(source, label, state, catalog)}"
            )
        if digest.hexdigest() != state.prefix_digest or last.event_id != state.last_event_id:
            _refuse_text_not_utf8(source, checkpoint)  # it changes the digest too: say it
            why = (
                "it was migrated from a `livestore sync export` (global events only), and "
                "this source also holds client-only events"
                if state.source_kind == KIND_EXPORT and source.kind != KIND_EXPORT
                else "another store, or a history rewritten since (e.g. by a LiveStore rebase)"
            )
            raise CheckpointMismatch(
                f"{source.path}: the events up to the checkpoint {where} differ from those "
                f"migrated into {label}: {why}; migrate it into a new target: "
                f"{_into_new_target(source, label, state, catalog)}"
            )
    return digest, events


def _into_new_target(source: Source, label: Path, state: MigrationState, catalog: Catalog) -> str:
    """The command migrating SOURCE into a new target beside LABEL (``app-2.db``, the first
    such name not taken) as LABEL's migration was made: with this run's CATALOG (the one
    recorded, or the files --catalog named) and the recorded policies (a new target
    records none: without them the catalog would be detected again, perhaps a bundled one
    instead of the app's folder), for a refusal to go on in LABEL."""
    number = 2
    while True:
        fresh = label.with_name(f"{label.stem}-{number}{label.suffix}")
        if not os.path.lexists(fresh):
            break
        number += 1
    return _replay_command(source, fresh, catalog.reference, state.on_invalid, state.strict_keys)


def _replay_command(
    source: Source,
    target: Path,
    catalog: str | None,
    on_invalid: str,
    strict_keys: bool,
    dry_run: bool = False,
) -> str:
    """``projector replay SOURCE TARGET`` with the options a run needs to be this one: the
    catalog (a bundled name or a folder; None: TARGET records it), ``--on-invalid park``,
    ``--strict-keys`` and ``--dry-run`` when they are the run's."""
    return command_line(
        "replay",
        source.path,
        target,
        *(["--catalog", catalog] if catalog else []),
        *(["--on-invalid", "park"] if on_invalid == "park" else []),
        *(["--strict-keys"] if strict_keys else []),
        *(["--dry-run"] if dry_run else []),
    )


def _refuse_text_not_utf8(source: Source, last: int) -> None:
    """Raise `SourceError` naming the first event up to position LAST whose argsJson,
    read as UTF-8 bytes, is not UTF-8 (`events.envelope.args_text`); return if none is.
    Reads the events again: called only where their digest has already disagreed."""
    for event in source.events(utf8_args=True):
        if event.position > last:
            return
        try:
            args_text(event)
        except TextNotUtf8 as exc:
            raise SourceError(f"{source.path}: {exc}") from None


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
    #: Records the run; called in the transaction of its first batch.
    begin: Callable[[sqlite3.Connection], None] = lambda conn: None
    begun: bool = False
    #: Holes in the history (`events.history`), warned about as the batches read them.
    history: HistoryCheck = field(default_factory=HistoryCheck)
    #: The writer process, when batches are written by one, and its batch in flight.
    writer: BatchWriter | None = None
    pending: _Pending | None = None
    #: The writer process told to end after the last batch (`_stop_writer`), until gone.
    ending: BatchWriter | None = None


@dataclass
class _Pending:
    """A batch sent to the writer process, kept until it is committed (or redone here)."""

    events: list[Event]
    outcomes: list[str | None]
    digest: str
    #: The held entities before the batch: a redo starts from them.
    held: set[str]
    holes: list[Any]


class _Recorder:
    """Stands in for the target connection in a batch's bookkeeping when a writer process
    writes it: each statement is appended to OPS (`projector.writer.Op`)."""

    def __init__(self, ops: list[Op]):
        self.ops = ops

    def execute(self, sql: str, params: Any = ()) -> None:
        self.ops.append(("one", sql, params, False))

    def track(self, tracking: TrackingView, position: int) -> None:
        sql, params = tracking.insert_statement(position)
        self.ops.append(("track", sql, params, False))


def _apply_batches(ctx: _Replay, events: Iterator[Event]) -> None:
    """Apply EVENTS batch by batch, stopping at a batch boundary when asked to."""
    while True:
        # One batch per call, so nothing of it is still referenced while the next is read.
        count = _apply_batch(ctx, events)
        # What batches left in reference cycles (see `_run`), once it is worth a pass: a
        # pass re-scans every object allocated since the last one and still alive (10-30 ms
        # a batch on large, in memory traffic more than in instructions).
        if gc.get_count()[0] > COLLECT_AFTER:
            gc.collect(1)
        if count < ctx.options.batch_size:
            _settle(ctx)
            return
        if ctx.options.should_stop():
            _settle(ctx)
            if ctx.result.dry_run:  # its scratch copy goes: nothing to continue
                raise Interrupted(
                    f"stopped at #{ctx.result.position:,} after a signal (a dry run: "
                    f"{ctx.result.target} is as it was)"
                )
            raise Interrupted(
                f"stopped at #{ctx.result.position:,} after a signal; continue with "
                f"{command_line('resume', ctx.result.target)}"
            )


def _apply_batch(ctx: _Replay, events: Iterator[Event]) -> int:
    """Read, validate and apply one batch to its rows in memory, then write it with its
    checkpoint in one transaction; return how many events it had."""
    projection, db, result, progress = ctx.projection, ctx.db, ctx.result, ctx.options.progress
    lap = ctx.options.phases.lap if ctx.options.phases else no_lap
    lap("other")
    chunk = list(itertools.islice(events, ctx.options.batch_size))
    lap("read")
    if not chunk:
        return 0
    # With a writer process, the batch is validated while the writer still writes the one
    # before; its rows are read only once that one is committed.
    prepared = projection.prepare_many(chunk, lap) if ctx.writer is not None else None
    # Hashed after parsing (when a writer process runs, the batch is parsed above): the
    # args' UTF-8 that parsing cached is then copied, not encoded again.
    ctx.digest.update_many(chunk)
    digest = ctx.digest.hexdigest()
    holes = ctx.history.check(chunk)
    lap("digest")
    _settle(ctx)
    _writer_ready(ctx)
    lap("wait")
    held = set(projection.held_entities)
    on_slice = (lambda position: progress(position, result.total)) if progress else None
    try:
        outcomes = projection.apply_batch(chunk, on_slice, lap, prepared)
        del prepared  # the parsed args: not held while the batch is written
        ops: list[Op] = []
        if ctx.writer is not None:
            projection.write(ops)
            lap("write")
            _checkpoint(ctx, chunk, outcomes, digest, _Recorder(ops))
            if ctx.writer.submit(ops):
                ctx.pending = _Pending(chunk, outcomes, digest, held, holes)
                lap("commit")
                return len(chunk)
        with db.atomic():
            if ops:  # a batch the writer process could not be sent: written here
                execute_ops(db.conn, ops)
            else:
                projection.write()
                lap("write")
                _checkpoint(ctx, chunk, outcomes, digest)
        lap("commit")
    except (RowError, ReplayError, RowRefused, TrackingRefused):
        # The target refused a row on write, or (under "fail") an event is at fault: an
        # earlier event's row may be refused only on write. Redo the batch an event at a
        # time, each written in a savepoint, so that exactly the event at fault is parked,
        # or under "fail" named, with nothing of the batch committed.
        projection.clear()
        projection.set_held(held)
        with db.atomic():
            outcomes = projection.apply_one_by_one(chunk)
            _checkpoint(ctx, chunk, outcomes, digest)
    except BaseException:
        projection.clear()
        raise
    _committed(ctx, chunk, outcomes, holes)
    return len(chunk)


def _committed(ctx: _Replay, chunk: list[Event], outcomes: list[str | None], holes: Any) -> None:
    """Account for a batch once it is committed: outcomes, warnings, position, progress."""
    result, progress = ctx.result, ctx.options.progress
    ctx.begun = True
    _add_outcomes(result, chunk, outcomes, ctx.projection, ctx.options.max_examples)
    for kind, detail, position, event_id in holes:
        result.warn(kind, detail, ctx.options.max_examples, position=position, eventId=event_id)
    result.position = chunk[-1].position
    log.debug("replay.batch", position=result.position, read=result.read)
    if progress:
        progress(result.position, result.total)


def _settle(ctx: _Replay) -> None:
    """Wait for the writer's batch in flight and account for it; a batch it could not
    commit because of a row the target refused (or a tracking conflict) is redone here,
    one event at a time, exactly as a batch written in this process would be."""
    pending, writer = ctx.pending, ctx.writer
    if pending is None or writer is None:
        return
    ctx.pending = None
    try:
        writer.wait()
        outcomes = pending.outcomes
    except (RowRefused, TrackingRefused):
        projection = ctx.projection
        projection.clear()
        projection.set_held(pending.held)
        with ctx.db.atomic():
            outcomes = projection.apply_one_by_one(pending.events)
            _checkpoint(ctx, pending.events, outcomes, pending.digest)
    _committed(ctx, pending.events, outcomes, pending.holes)


def _writer_ready(ctx: _Replay) -> None:
    """Wait for the writer process to have opened the target (it starts while the first
    batch is read); if it could not, the run writes its batches itself, as on one core."""
    writer = ctx.writer
    if writer is None:
        return
    try:
        writer.ready()
    except (OSError, WriterError, sqlite3.Error) as exc:
        log.debug("replay.writer_unavailable", target=str(ctx.result.target), detail=str(exc))
        ctx.writer = None
        writer.close()
        ctx.db.conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")


def _use_writer(options: ReplayOptions, result: ReplayResult) -> bool:
    """Whether to write from a second process: asked for, or (None) worth it: a second
    core, and more than one batch to apply (the next batch is read while one is written)."""
    if options.writer is not None:
        return options.writer
    remaining = None if result.total is None else result.total - result.position
    many = remaining is None or remaining > options.batch_size
    return many and (os.cpu_count() or 1) > 1 and bool(sys.executable)


def _start_writer(target: Path, options: ReplayOptions) -> BatchWriter | None:
    """A writer process on TARGET, its connection set up as `open_target`'s and the
    projection's (foreign keys checked by the handlers; see `Projection`); None when it
    cannot be started (the run then writes its batches itself, as on one core). Whether
    it opened the target is known at the first batch (`_writer_ready`)."""
    pragmas = ["PRAGMA foreign_keys = OFF", *CONNECTION_PRAGMAS, "PRAGMA synchronous = NORMAL"]
    if options.max_page_count:
        pragmas.append(f"PRAGMA max_page_count = {int(options.max_page_count)}")
    fd = held_lock_fd(target)
    try:
        return BatchWriter(target, pragmas, keep_fds=(fd,) if fd is not None else ())
    except (OSError, WriterError, sqlite3.Error) as exc:
        log.debug("replay.writer_unavailable", target=str(target), detail=str(exc))
        return None


def _stop_writer(ctx: _Replay, *, failing: bool = False, wait: bool = True) -> None:
    """Settle the batch in flight and end the writer process. FAILING: the run is failing
    for another reason, which wins; what the writer committed is still accounted for
    (and a target whose first batch it committed is not taken for an untouched one).
    Without WAIT, the process is only told to end (`ctx.ending`): a later call waits until
    it is gone, which must come before the target's connection and lock are let go."""
    writer = ctx.writer
    if writer is not None:
        try:
            _settle(ctx)
        except BaseException:
            if not failing:
                raise
            if not ctx.begun:  # did the writer commit the first batch before it failed?
                found = ctx.db.conn.execute(
                    f"SELECT 1 FROM {RUNS_TABLE} WHERE run = ?", (ctx.run,)
                ).fetchone()
                ctx.begun = found is not None
        finally:
            ctx.writer = None
            ctx.ending = writer
            writer.request_close()
    writer = ctx.ending
    if wait and writer is not None:
        ctx.ending = None
        writer.close()
        if writer.peak_rss_kib is not None:
            ctx.result.writer_peak_mb = round(writer.peak_rss_kib / 1024, 1)


def _checkpoint(
    ctx: _Replay,
    events: list[Event],
    outcomes: list[str | None],
    digest: str,
    conn: Any = None,
) -> None:
    """Record the batch's last position, digest and counts, in the batch's transaction
    (on CONN: the target's connection, or a `_Recorder` of the writer's statements)."""
    conn, result = conn or ctx.db.conn, ctx.result
    if not ctx.begun:
        ctx.begin(conn)
    position = events[-1].position
    if isinstance(conn, _Recorder):
        conn.track(ctx.tracking, position)
    else:
        _record_tracking(ctx, conn, position)
    applied = outcomes.count(None)
    parked = len(events) - applied
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


def _record_tracking(ctx: _Replay, conn: sqlite3.Connection, position: int) -> None:
    try:
        ctx.tracking.record(conn, position)
    except TrackingConflict as exc:
        raise ReplayError(
            f"position #{position:,} is already recorded in the target's "
            f"tracking ({exc}); refusing to apply it twice"
        ) from None


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
    applied = outcomes.count(None)
    result.applied += applied
    parked_positions = set()
    if applied < len(outcomes):  # only a batch with parked events is walked
        for event, outcome in zip(events, outcomes, strict=True):
            if outcome is not None:
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
    reason, and so does every later event on the same row. With nothing parked the run
    takes no backup; when nothing could be re-applied and every parked event is parked
    again as it was, the transaction is rolled back and its backup deleted: the result
    says ``changed`` False and no run is recorded. Raises TargetError, Busy, CatalogError.
    """
    options = options or ReplayOptions()
    target = real_target(Path(target_path))
    refuse_handed_over(target, "replay-parked")
    require_target(target)
    check_writable(target)
    started = time.monotonic()
    with writer_lock(target):
        state, _, run = _read_record(target, target)
        if state is None:
            raise TargetError(f"{target}: no migration recorded")
        catalog = options.catalog or load_recorded(state.catalog)
        switch = catalog.reference != state.catalog or (
            bool(state.catalog_digest) and catalog.digest != state.catalog_digest
        )
        if switch and options.catalog is None:  # the bundled catalog changed with an upgrade
            raise CheckpointMismatch(catalog_changed(target, catalog, str(state.catalog_digest)))
        if switch:
            _require_same_tables(target, catalog)
        result = ReplayResult(
            source=state.source,
            target=str(target),
            command="replay-parked",
            catalog=catalog.name,
            from_position=state.position,
            position=state.position,
            state="complete",
        )
        if state.parked:
            result.backup = str(backups.back_up_before(target, run))
        db = open_target(target, create=False)
        conn = db.conn
        try:
            validator = Validator(catalog, strict_keys=state.strict_keys)
            projection = Projection(conn, validator, "park")
            projection.store.defer(state.deferred)  # a bulk load not finished yet fills them
            projection.set_held(set())
            parked_rows = f"SELECT * FROM {PARKED_TABLE} ORDER BY position"
            try:
                with db.atomic():
                    before = conn.execute(parked_rows).fetchall()
                    _replay_parked(conn, result, projection, state, run, options)
                    if switch:  # later runs go on with the catalog that re-applied these
                        conn.execute(
                            f"UPDATE {STATE_TABLE} SET catalog = ?, catalogDigest = ? WHERE id = 1",
                            (catalog.reference, catalog.digest),
                        )
                    if not result.reapplied and conn.execute(parked_rows).fetchall() == before:
                        raise _Unchanged  # rolls the run's record back: nothing to keep
            except _Unchanged:
                result.changed = False
                if result.backup:
                    backups.delete(Path(result.backup))
                    result.backup = None
            except sqlite3.OperationalError as exc:  # a full disk, an I/O error: rolled back
                raise TargetError(
                    f"{target}: replay-parked could not be written ({exc}); the target is as it was"
                ) from None
        except BaseException:
            if result.backup:  # the transaction rolled back: the target is as it was
                conn.close()
                backups.delete(Path(result.backup))
            raise
        finally:
            conn.close()
    result.seconds = time.monotonic() - started
    log.info("replay_parked.done", read=result.read, reapplied=result.reapplied)
    _log_attention(result)
    return result


def _require_same_tables(target: Path, catalog: Catalog) -> None:
    """Raise CheckpointMismatch unless CATALOG declares the tables TARGET holds, with the
    same columns (replay-parked with a catalog other than the one recorded)."""
    declared = {name: t.columns for name, t in compile_catalog(catalog)[0].items()}
    conn = connect_readonly(target)
    try:
        present = {name: t.columns for name, t in read_tables(conn, catalog).items()}
    except CatalogError as exc:
        present = {"": (str(exc),)}
    finally:
        conn.close()
    if declared != present:
        raise CheckpointMismatch(
            f"{target}: catalog {catalog.name!r} ({catalog.directory}) declares other tables "
            "or columns than the target holds; re-apply parked events with a catalog of the "
            "same tables"
        )


def _overtaken(
    projection: Projection,
    state: MigrationState,
    known: dict[int, Event],
    parked: set[int],
    options: ReplayOptions,
) -> dict[int, str]:
    """{position: why} of the events parked as unknown that a handler now knows (KNOWN, by
    position) and that an event applied after them overtook: one that changed a row they
    change (or any row of a table either changes by a condition). The applied events are
    those up to the checkpoint not in PARKED, read again from the recorded source; should
    it not be readable (retired, changed), every one of KNOWN is overtaken."""
    # Its rows as it names them now (args too broken to name one: its whole tables). An
    # event whose args are broken too is checked all the same: should a later one have
    # overtaken it, mending its args would not let it in either.
    mine: dict[int, set[str]] = {}
    for position, event in known.items():
        handler, args, _, _ = projection.prepare(event)
        if handler is not None:
            named = handler.entities(args) if isinstance(args, dict) else []
            mine[position] = set(named) or set(handler.any_rows)
    if not mine:
        return {}
    found: dict[int, str] = {}
    first = min(mine)
    digest = PrefixDigest()  # the events read must be those migrated
    try:
        source = _open(state.source, options)  # the eventlog file itself, as resume reads it
        try:
            for event in source.events():
                if event.position > state.position:
                    break
                digest.update(event)
                if event.position <= first or event.position in parked:
                    continue
                handler, args, problem, _ = projection.prepare(event)
                if handler is None or problem is not None:
                    # Applied all the same (repaired in the parked table and re-applied,
                    # or under a catalog that knew it): in a form this one cannot read,
                    # so it may have changed any row.
                    theirs = {"*:*"}
                    how = "applied after it in a form this catalog cannot read, may have"
                else:
                    theirs = set(handler.entities(args)) or set(handler.any_rows)
                    how = "applied after it,"
                for position, entities in mine.items():
                    if position < event.position and position not in found:
                        if _overlap(entities, theirs):
                            found[position] = (
                                f"{event.event_id} (#{event.position:,}), {how} changed its rows"
                            )
        finally:
            source.close()
    except (SourceError, OSError) as exc:
        why = f"its source could not be read again to check the events after it ({exc})"
        return {position: why for position in known}
    if digest.hexdigest() != state.prefix_digest:
        why = "its source's events differ from those migrated, so the events after it"
        return {position: f"{why} cannot be checked" for position in known}
    return found


def _overlap(ours: set[str], theirs: set[str]) -> bool:
    """Whether two sets of entities (``table:key``, ``table:*``, ``*:*`` for any row of
    any table) share a row."""
    for a in ours:
        table_a, _, key_a = a.partition(":")
        for b in theirs:
            table_b, _, key_b = b.partition(":")
            same_table = table_a == table_b or "*" in (table_a, table_b)
            if same_table and (key_a == key_b or "*" in (key_a, key_b)):
                return True
    return False


class _Unchanged(Exception):
    """A replay-parked that changed nothing: its transaction is rolled back."""


def _replay_parked(
    conn: sqlite3.Connection,
    result: ReplayResult,
    projection: Projection,
    state: MigrationState,
    run: int,
    options: ReplayOptions,
) -> None:
    """The writes of `replay_parked`, in the caller's transaction."""
    conn.execute(
        f"INSERT INTO {RUNS_TABLE} (run, command, startedAt, fromPosition, state, "
        "backup) VALUES (?, 'replay-parked', ?, ?, 'running', ?)",
        (run, _now(), state.position, result.backup),
    )
    rows = conn.execute(
        f"SELECT position, name, argsJson, seqNumGlobal, seqNumClient, "
        f"seqNumRebaseGeneration, clientId, sessionId, kind, reason, entity FROM {PARKED_TABLE} "
        "ORDER BY position"
    ).fetchall()
    events = [
        # A BLOB parked as it was read (a non-STRICT eventlog's) is a Blob again: plain
        # bytes would stand for text (`Event`).
        Event(p, g, c, r, 0, 0, name, Blob(args) if type(args) is bytes else args, cid, sid)
        for p, name, args, g, c, r, cid, sid, *_ in rows
    ]
    # Each is taken out of the parked table and applied (or parked again).
    conn.execute(f"DELETE FROM {PARKED_TABLE}")
    outcomes: list[str | None] = []
    known = {
        event.position: event
        for event, row in zip(events, rows, strict=True)
        if row[8] == UNKNOWN and isinstance(event.name, str) and projection.handler_for(event.name)
    }
    overtaken = _overtaken(projection, state, known, {e.position for e in events}, options)
    for event, (*_, kind, reason, _entity) in zip(events, rows, strict=True):
        if kind == UNKNOWN and (event.position not in known or event.position in overtaken):
            if event.position in overtaken:
                # It held nothing back (LiveStore skips an event its schema does not
                # define, and so did the replay): a later event applied without it changed
                # one of its rows, and applying it now would undo that change.
                reason = (
                    f"{event.event_id} (#{event.position:,}, {event.name}): a handler knows it "
                    f"now, but {overtaken[event.position]}; to apply it in its place, migrate "
                    "the log into a new target with a catalog that knows it as the log names it"
                )
            projection.park(event, UNKNOWN, reason, [])  # still unknown: as it was
            projection.store.flush()
            outcomes.append(UNKNOWN)
        else:
            outcomes.extend(projection.apply_one_by_one([event]))
    _add_outcomes(result, events, outcomes, projection, options.max_examples)
    result.reapplied = result.applied  # every event applied here is a re-applied one
    conn.execute(
        f"UPDATE {STATE_TABLE} SET applied = applied + ?, parked = parked - ?, "
        "reapplied = reapplied + ? WHERE id = 1",
        (result.reapplied, result.reapplied, result.reapplied),
    )
    conn.execute(
        f"UPDATE {RUNS_TABLE} SET state = 'complete', endedAt = ?, read = ?, "
        "applied = ?, reapplied = ?, parked = ?, toPosition = ? WHERE run = ?",
        (
            _now(),
            result.read,
            result.applied,
            result.reapplied,
            result.parked_total,
            state.position,
            run,
        ),
    )


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
