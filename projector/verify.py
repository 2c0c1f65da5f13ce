"""`verify`: prove a target sound, accounted for, and equal to LiveStore's own state.

Checks: SQLite integrity and foreign keys, each derived table in step with its parent's
column (e.g. ai-desk's `memory_tags` with `memories.tags`), the event accounting (applied
+ parked = position, against the source when it is still there), and, given LiveStore's
state DB, a row-for-row comparison of every table the catalog says mirrors a LiveStore
state table (under the catalog's table and column names), in which every difference is
either explained by a parked event on the same row (or on a row it references), or by
a deliberate deviation from LiveStore (projector/deviations.py, by name), or reported.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events.catalog import Catalog
from events.envelope import format_event_id, parse_event_id
from events.errors import CatalogError, SourceBusy, SourceError
from events.history import HistoryCheck
from events.sources import KIND_EXPORT, SQLITE_MAGIC, connect_readonly, open_source
from events.sqlite_source import state_files
from projector import deviations
from projector.checkpoint import PrefixDigest, TrackingView
from projector.errors import TargetError, command_line
from projector.handlers import any_row, entity_list
from projector.lock import held_lock_fd, refuse_if_busy
from projector.replay import client_only_tables, is_other_catalog, load_recorded_catalog
from projector.runs import shown_state
from projector.store import derived_element
from projector.target import (
    DEVIATIONS_TABLE,
    PARKED_TABLE,
    STATE_TABLE,
    Table,
    deferred_tables,
    read_tables,
    require_target,
    state_columns,
)

SAMPLE = 60
#: Characters of two long texts shown before the first one where they differ.
CONTEXT = 20
SHOWN_WARNINGS = 10


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    #: Passed without looking (the source check under --no-source): DETAIL says why.
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Difference:
    table: str
    key: str
    what: str  # missing | extra | differs
    detail: str
    #: The parked events on the row (event ids).
    explained_by: list[str] = field(default_factory=list)
    #: The deliberate deviations from LiveStore that explain it, by name, with the event
    #: ids that caused them where the replay recorded them.
    deviations: dict[str, list[str]] = field(default_factory=dict)
    #: Why the difference is expected when no parked event explains it (e.g. the source
    #: is a sync export, which holds no client-only events).
    explanation: str | None = None
    #: The LiveStore columns whose values differ (for "differs" of one row).
    columns: list[str] = field(default_factory=list)

    @property
    def explained(self) -> bool:
        return bool(self.explained_by) or bool(self.deviations) or self.explanation is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": self.key,
            "what": self.what,
            "detail": self.detail,
            "explained": self.explained,
            "explainedBy": self.explained_by,
            "deviations": sorted(self.deviations),
            "explanation": self.explanation,
        }

    def line(self) -> str:
        why = []
        for name, events in sorted(self.deviations.items()):
            why.append(f"explained by deviation {name}" + (f" ({_ids(events)})" if events else ""))
        if self.explained_by:
            why.append(f"explained by parked {_ids(self.explained_by)}")
        if self.explanation:
            why.append(f"explained: {self.explanation}")
        reason = "; ".join(why) or "UNEXPLAINED"
        key = self.key if self.key.isprintable() else repr(self.key)[1:-1]  # U+0000 in a key
        return f"{self.table}[{key}] {self.what}: {self.detail} -- {reason}"


def _ids(events: list[str]) -> str:
    more = len(events) - 3
    return ", ".join(events[:3]) + (f" (+{more:,})" if more > 0 else "")


#: How the source check starts its detail when it was skipped (`--no-source`): passed,
#: having read nothing.
SOURCE_SKIPPED = "skipped (--no-source)"


@dataclass
class VerifyReport:
    target: str
    against: str | None = None
    checks: list[Check] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    compared_rows: int = 0
    #: Holes in the source's history (`events.history`): said, not failed, as LiveStore
    #: replays such a log too. The first few, with their positions.
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if not d.explained]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.unexplained

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "against": self.against,
            "ok": self.ok,
            "checks": [c.as_dict() for c in self.checks],
            "comparedRows": self.compared_rows,
            "differences": len(self.differences),
            "unexplained": len(self.unexplained),
            "differenceList": [d.as_dict() for d in self.differences],
            "warnings": self.warnings,
        }


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SAMPLE else text[: SAMPLE - 1] + "…"


def excerpts(theirs: Any, ours: Any) -> str:
    """How a column's two differing values read in a `differs` detail: `LiveStore A,
    target B`, each value in its Python repr.

    Values whose reprs both fit SAMPLE characters are shown whole; a longer value that is
    not one of two texts (a number against a text, a blob) is cut after SAMPLE. Two texts
    of which either is longer are both shown from the same character on, about CONTEXT
    characters before the first one where they differ (SAMPLE - 2 characters of each),
    with `…` at an end that cuts the text and its quote at an end that does not, then
    `(first difference at offset N)`, N counted in characters (code points) from 0:
    cutting both at the end would show the same head twice (a client document's JSON) and
    hide the difference."""
    if not (isinstance(theirs, str) and isinstance(ours, str)) or (
        len(repr(theirs)) <= SAMPLE and len(repr(ours)) <= SAMPLE
    ):
        return f"LiveStore {_short(theirs)}, target {_short(ours)}"
    offset = next(
        (i for i, (a, b) in enumerate(zip(theirs, ours, strict=False)) if a != b),
        min(len(theirs), len(ours)),
    )
    width = SAMPLE - 2
    start = max(0, min(offset - CONTEXT, max(len(theirs), len(ours)) - width))
    return (
        f"LiveStore {_window(theirs, start, width)}, target {_window(ours, start, width)} "
        f"(first difference at offset {offset:,})"
    )


def _window(text: str, start: int, width: int) -> str:
    """TEXT[start:start + width] in TEXT's repr quoting: its quote at an end of TEXT,
    `…` at an end that cuts it."""
    quote = repr(text)[0]
    part = repr(text[start : start + width])
    body = part[1:-1]
    if part[0] != quote:  # repr chose the other quote for the part: escape TEXT's own
        body = body.replace(quote, "\\" + quote)
    head = quote if start == 0 else "…"
    tail = quote if start + width >= len(text) else "…"
    return head + body + tail


def verify(
    target: Path,
    against: Path | None = None,
    *,
    source: bool = True,
    catalog: Catalog | None = None,
    lock_timeout: float | None = None,
) -> VerifyReport:
    """Check TARGET; with AGAINST (LiveStore's state DB, or the store folder that holds it)
    compare every row of the tables the catalog mirrors from LiveStore. SOURCE=False skips
    re-reading the recorded source (it was retired); the "source" check then says so;
    LOCK_TIMEOUT is how long that source may stay locked or keep changing (seconds;
    `open_source`). CATALOG defaults to the one the migration recorded. Raises
    TargetError for a target or an AGAINST that cannot be used (see `find_state_db`),
    CatalogError when AGAINST is given and the catalog cannot be loaded; Busy while
    another process's run writes TARGET (its checks would read different moments of it).
    """
    require_target(target)
    if held_lock_fd(target) is None:  # finalize verifies under its own lock
        refuse_if_busy(target)
    conn = connect_readonly(target)
    reads = _Reads(lock_timeout, accounting=source)
    try:
        record = _record(conn)
        report = VerifyReport(target=str(target))
        catalog, tables = _tables(conn, catalog, record, report, required=against is not None)
        state_db, picked = (
            find_state_db(against, target, record, catalog, tables, reads)
            if against and catalog and tables
            else (None, None)
        )
        report.against = str(state_db) if state_db else None
        _structural_checks(conn, report)
        unfilled = deferred_tables(conn)
        if tables is not None:
            _derived_checks(conn, tables, report, unfilled)
        _accounting_checks(conn, report, record, source, reads, target)
        for name in unfilled:  # after accounting, which says why first: a run unfinished
            report.checks.append(
                Check(
                    name,
                    False,
                    "not filled yet: the migration's first run fills it from its parent's "
                    f"rows at its end (bulk load), which no run has reached "
                    f"({command_line('resume', target)} goes on)",
                )
            )
        if state_db is not None and catalog is not None and tables is not None:
            _compare(conn, state_db, report, record, picked, catalog, tables)
    finally:
        conn.close()
    return report


def _tables(
    conn: sqlite3.Connection,
    catalog: Catalog | None,
    record: dict[str, Any] | None,
    report: VerifyReport,
    *,
    required: bool,
) -> tuple[Catalog | None, dict[str, Table] | None]:
    """The catalog and the target's tables as it describes them. When the catalog cannot
    be loaded: a failed check, or (REQUIRED: a comparison needs it) CatalogError."""
    try:
        if catalog is None:
            if record is None:
                return None, None
            catalog = load_recorded_catalog(report.target, conn)
            if catalog is None:
                return None, None
        elif record is not None and record["catalog"] is not None:
            column = state_columns(conn, catalogDigest="NULL")["catalogDigest"]
            found = conn.execute(f"SELECT {column} FROM {STATE_TABLE} WHERE id = 1").fetchone()
            # A target made before catalogs recorded a digest has none to tell them by.
            digest = catalog.digest if column == "NULL" else found[0] if found else None
            if is_other_catalog(record["catalog"], digest, catalog):
                # As replay says it, before the tables are read with the wrong catalog.
                raise CatalogError(
                    f"{report.target}: was migrated with catalog {record['catalog']!r}, not "
                    f"{catalog.reference!r}"
                )
        return catalog, read_tables(conn, catalog)
    except CatalogError as exc:
        if required:
            raise
        report.checks.append(Check("catalog", False, str(exc)))
        return None, None


def _mirrored(tables: dict[str, Table]) -> dict[str, Table]:
    """The target's tables by the LiveStore state table each mirrors."""
    return {t.livestore: t for t in tables.values() if t.livestore is not None}


def _record(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT source, sourceKind, catalog, position, lastEventId, prefixDigest "
        f"FROM {STATE_TABLE} WHERE id = 1"
    ).fetchone()
    keys = ("source", "sourceKind", "catalog", "position", "lastEventId", "prefixDigest")
    return dict(zip(keys, row, strict=True)) if row else None


def find_state_db(
    against: Path,
    target: Path,
    record: dict[str, Any] | None,
    catalog: Catalog,
    tables: dict[str, Table],
    reads: _Reads | None = None,
) -> tuple[Path, str | None]:
    """LiveStore's state DB to compare TARGET with: AGAINST itself, or the one in the store
    folder AGAINST. Returns (path, how it was picked, or None when given).

    A folder with several ``state<hash>@N.db`` (LiveStore leaves the old ones after a
    table-schema change: FORMAT.md section 1) gives the one whose tables and columns match
    the target's; if not exactly one does, the user is asked to name one. Refused with a
    one-line TargetError: a missing path, a folder without a state DB, an eventlog, a
    projector target, a file that is not LiveStore's state DB, and the state DB of another
    app (its event names are not the target's catalog's) or of another store (the eventlog
    beside it holds another history than the one migrated). READS: the reads of sources
    the caller shares (the recorded source is then read once).
    """
    if not against.exists():
        raise TargetError(f"{against}: no such file or directory")
    picked = None
    if against.is_dir():
        candidates = state_files(against)
        if not candidates:
            stores = sorted(d for d in against.iterdir() if d.is_dir() and state_files(d))
            hint = (
                f" (the store folder is {stores[0]})"
                if len(stores) == 1
                else " (is it the store folder? it holds eventlog, state<hash>@N.db files)"
            )
            raise TargetError(f"{against}: no LiveStore state DB (state<hash>@N.db) here{hint}")
        if len(candidates) == 1:
            path = candidates[0]
            picked = f"{path.name}, the state DB in {against}"
        else:
            matching = [c for c in candidates if _tables_match(c, tables)]
            if len(matching) != 1:
                names = ", ".join(c.name for c in candidates)
                raise TargetError(
                    f"{against}: holds {len(candidates):,} state DBs ({names}) and "
                    f"{len(matching):,} match the target's tables; name one with --against"
                )
            path = matching[0]
            picked = (
                f"{path.name}, the one of {len(candidates):,} state DBs in {against} "
                "whose tables match the target's"
            )
    else:
        path = against
    _refuse_not_state(path, target)
    _refuse_other_app(path, catalog)
    if record is not None:
        _refuse_other_store(path, record, target, tables, reads or _Reads(None, accounting=False))
    return path, picked


def _tables_of(conn: sqlite3.Connection) -> dict[str, list[str]]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {n: [c[1] for c in conn.execute(f'PRAGMA table_info("{n}")')] for n in names}


def _tables_match(state_db: Path, tables: dict[str, Table]) -> bool:
    """STATE_DB has every table the catalog mirrors, with the mirrored columns."""
    try:
        theirs = connect_readonly(state_db)
        try:
            found = _tables_of(theirs)
        finally:
            theirs.close()
    except sqlite3.DatabaseError:
        return False
    return all(
        sorted(found.get(name, [])) == sorted(t.livestore_columns.get(c, c) for c in t.columns)
        for name, t in _mirrored(tables).items()
    )


def _refuse_not_state(path: Path, target: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise TargetError(f"{path}: cannot read it ({exc.strerror})") from None
    if head != SQLITE_MAGIC:
        raise TargetError(f"{path}: not a SQLite database, so not LiveStore's state DB")
    try:
        conn = connect_readonly(path)
        try:
            tables = set(_tables_of(conn))
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise TargetError(f"{path}: not a readable SQLite state database ({exc})") from None
    problem = not_a_state_db(tables)
    if problem:
        raise TargetError(f"{path}: {problem}")


def not_a_state_db(tables: set[str]) -> str | None:
    """Why a SQLite database with TABLES is not LiveStore's state DB (FORMAT.md section 1:
    the state DB holds ``__livestore_schema``), or None when it is one."""
    if "eventlog" in tables:
        return (
            "is an eventlog (the history), not LiveStore's state DB; pass the "
            "state<hash>@N.db beside it, or the store folder"
        )
    if STATE_TABLE in tables:
        return "is a projector target, not LiveStore's state DB"
    if "__livestore_schema" not in tables:
        return "not LiveStore's state DB (it has no __livestore_schema table)"
    return None


def _refuse_other_app(path: Path, catalog: Catalog | None) -> None:
    """LiveStore records the app's event names in ``__livestore_schema_event_defs``."""
    if catalog is None:
        return
    conn = connect_readonly(path)
    try:
        names = {r[0] for r in conn.execute("SELECT eventName FROM __livestore_schema_event_defs")}
    except sqlite3.DatabaseError:
        return  # an older state DB without the table: the comparison will tell
    finally:
        conn.close()
    unknown = sorted(names - catalog.schemas.keys())
    if names and len(unknown) * 2 > len(names):
        raise TargetError(
            f"{path}: is the state of another app: {len(unknown):,} of its {len(names):,} "
            f"events ({', '.join(unknown[:4])}"
            + (f" and {len(unknown) - 4:,} more" if len(unknown) > 4 else "")
            + f") are not in the target's catalog {catalog.name!r}"
        )


def _refuse_other_store(
    path: Path, record: dict[str, Any], target: Path, tables: dict[str, Table], reads: _Reads
) -> None:
    """Refuse the state DB of another store: the eventlog beside it (a store folder holds
    both: FORMAT.md section 1) does not begin with the history migrated into the target,
    and fewer than half of its rows have a key in the target. (A damaged copy of the same
    store, or a target that has not caught up yet, keeps most keys; another store keeps
    almost none, its ids being random.)"""
    if _history_matches(path.parent, record, reads) is not False:
        return
    matched, total = _key_overlap(path, target, tables)
    if total and matched * 2 < total:
        raise TargetError(
            f"{path}: is the state of another store: the eventlog beside it does not begin "
            f"with the {record['position']:,} events migrated into the target, and only "
            f"{matched:,} of its {total:,} rows {'has' if matched == 1 else 'have'} a key in "
            "the target"
        )


def _history_matches(folder: Path, record: dict[str, Any], reads: _Reads) -> bool | None:
    """Whether FOLDER's eventlog begins with the target's migrated events (None: no
    eventlog there). An export's history is the eventlog's global events (FORMAT.md
    section 2: client-only events are never pushed, so never exported). When FOLDER
    holds the recorded eventlog, that is the read the accounting check makes too."""
    recorded = Path(record["source"])
    export = record["sourceKind"] == KIND_EXPORT
    same = not export and recorded.parent.resolve() == folder.resolve() and recorded.exists()
    try:
        read = reads.read(
            recorded if same else folder,
            record,
            global_only=export,
            whole=same and reads.accounting,  # read to the end once, for both checks
        )
    except SourceError:
        return None
    return (
        read.reached
        and read.digest == record["prefixDigest"]
        and (not record["position"] or read.last_id == record["lastEventId"])
    )


@dataclass
class _Read:
    """What one read of a source says against a migration record (`_Reads.read`)."""

    #: Events read (all of them, or up to the record's position when not whole).
    count: int = 0
    #: The prefix digest and last event id of its first `position` events, once reached.
    reached: bool = False
    digest: str | None = None
    last_id: str | None = None
    #: The holes in its history (`events.history`), and the first of them as warnings.
    history: HistoryCheck = field(default_factory=HistoryCheck)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    #: Read to its end.
    whole: bool = False


class _Reads:
    """The sources one verify reads, each read once: the recorded source for the
    accounting check, and the eventlog beside an --against state DB, which is most often
    the same file (a large log is then read once, not twice). A failed read is kept as
    its SourceError (raised again to each caller)."""

    def __init__(self, lock_timeout: float | None, *, accounting: bool = True):
        self.lock_timeout = lock_timeout
        #: Whether the accounting check reads the recorded source (not under --no-source).
        self.accounting = accounting
        self._done: dict[tuple[Path, bool], _Read | SourceError] = {}

    def read(self, path: Path, record: dict[str, Any], *, global_only: bool, whole: bool) -> _Read:
        """PATH (a source file or store folder) read against RECORD: only its global
        events when GLOBAL_ONLY, to its end when WHOLE (else up to the record's position).
        Raises SourceError (SourceBusy: locked or changing past the lock timeout)."""
        key = (path.resolve(), global_only)
        done = self._done.get(key)
        if isinstance(done, _Read) and (done.whole or not whole):
            return done
        if isinstance(done, SourceError):
            raise done
        try:
            result = _read_source(path, record, self.lock_timeout, global_only, whole)
        except SourceError as exc:
            self._done[key] = exc
            raise
        self._done[key] = result
        return result


def _read_source(
    path: Path, record: dict[str, Any], lock_timeout: float | None, global_only: bool, whole: bool
) -> _Read:
    position = record["position"]
    read = _Read()
    digest = PrefixDigest()
    src = open_source(path, lock_timeout=lock_timeout)
    try:
        if not position:
            read.reached, read.digest = True, digest.hexdigest()
        for event in src.events():
            if global_only and event.client_only:
                continue
            if read.count == position and not whole:
                break
            read.count += 1
            for kind, detail, at, event_id in read.history.check((event,)):
                if len(read.warnings) < SHOWN_WARNINGS:
                    read.warnings.append(
                        {"kind": kind, "position": at, "eventId": event_id, "detail": detail}
                    )
            if read.count <= position:
                digest.update(event)
                if read.count == position:
                    read.reached, read.digest = True, digest.hexdigest()
                    read.last_id = event.event_id
    finally:
        src.close()
    read.whole = whole
    return read


def _key_overlap(state_db: Path, target: Path, tables: dict[str, Table]) -> tuple[int, int]:
    """(rows of LiveStore's tables in STATE_DB whose key is in TARGET, rows in all)."""
    matched = total = 0
    theirs, ours = connect_readonly(state_db), connect_readonly(target)
    try:
        present = set(_tables_of(theirs))
        for name, table in _mirrored(tables).items():
            if name not in present:
                continue
            ours_key = list(table.key)
            theirs_key = [table.livestore_columns.get(c, c) for c in ours_key]
            ours_cols = ", ".join(f'"{k}"' for k in ours_key)
            mine = set(ours.execute(f'SELECT {ours_cols} FROM "{table.name}"'))
            cols = ", ".join(f'"{k}"' for k in theirs_key)
            for row in theirs.execute(f'SELECT {cols} FROM "{name}"'):
                total += 1
                matched += row in mine
    except sqlite3.DatabaseError:
        return 0, 0
    finally:
        theirs.close()
        ours.close()
    return matched, total


def _structural_checks(conn: sqlite3.Connection, report: VerifyReport) -> None:
    result = conn.execute("PRAGMA integrity_check").fetchall()
    ok = result == [("ok",)]
    report.checks.append(
        Check("integrity_check", ok, "ok" if ok else "; ".join(r[0] for r in result[:5]))
    )
    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
    report.checks.append(
        Check(
            "foreign_key_check",
            not broken,
            "no broken references"
            if not broken
            else f"{len(broken):,} broken: "
            + ", ".join(f"{t} rowid {r}" for t, r, *_ in broken[:5]),
        )
    )


def _derived_checks(
    conn: sqlite3.Connection,
    tables: dict[str, Table],
    report: VerifyReport,
    unfilled: Collection[str] = (),
) -> None:
    """Each derived table holds exactly the elements of its parent's JSON-array column,
    each as its column stores it (a number or a boolean in a TEXT column as text: true as
    ``'1'``, as SQLite's affinity converts the value the sqlite3 module binds; `_stored`).
    The UNFILLED ones (`deferred_tables`: a bulk load fills them at its end) are not
    compared.

    Compared in Python: SQLite's json_each cuts text at U+0000 and returns a lone
    surrogate's escape as bytes that are not UTF-8, where the derived table holds the
    element whole (with U+FFFD for a lone surrogate, as every text column)."""
    for table in tables.values():
        d = table.derived
        if d is None or table.name in unfilled:
            continue
        parent_key = tables[d.parent].row_key
        elements: list[tuple[Any, Any]] = []
        broken: list[Any] = []  # parents whose column is no JSON array (edited by hand)
        for key, array in conn.execute(f'SELECT "{parent_key}", "{d.column}" FROM "{d.parent}"'):
            try:
                parsed = json.loads(array) if isinstance(array, str) else None
            except (ValueError, RecursionError):
                parsed = None
            if type(parsed) is not list:
                broken.append(key)
                continue
            elements.extend((key, derived_element(element)) for element in parsed)
        if broken:
            report.checks.append(
                Check(
                    table.name,
                    False,
                    f"{d.parent}.{d.column} is no JSON array in {len(broken):,} row(s) "
                    f"(first: {d.parent}[{broken[0]}])",
                )
            )
            continue
        declared = {r[1]: r[2] for r in conn.execute(f'PRAGMA table_info("{table.name}")')}
        expected, unstorable = _stored(
            elements, declared.get(d.key, ""), declared.get(d.element, "")
        )
        actual = set(conn.execute(f'SELECT "{d.key}", "{d.element}" FROM "{table.name}"'))
        stale, extra = len(expected - actual) + unstorable, len(actual - expected)
        ok = stale == 0 and extra == 0
        report.checks.append(
            Check(
                table.name,
                ok,
                f"in step with {d.parent}.{d.column}"
                if ok
                else f"{stale:,} element(s) missing from {table.name}, {extra:,} extra",
            )
        )


def _stored(rows: list[tuple[Any, Any]], key_type: str, element_type: str) -> tuple[set[Any], int]:
    """ROWS (key, element) as columns declared KEY_TYPE and ELEMENT_TYPE store them, and
    how many no column can hold (an object or an array: the writer parks their events).

    SQLite converts each in a scratch table in memory with those declared types, so the
    affinity rules are SQLite's own (https://sqlite.org/datatype3.html, section 3)."""
    scratch = sqlite3.connect(":memory:")
    try:
        scratch.execute(f"CREATE TABLE t (k {key_type}, e {element_type})")
        holdable = [
            r for r in rows if type(r[1]) not in (dict, list) and type(r[0]) not in (dict, list)
        ]
        scratch.executemany("INSERT INTO t VALUES (?, ?)", holdable)
        return set(scratch.execute("SELECT k, e FROM t")), len(rows) - len(holdable)
    finally:
        scratch.close()


def _accounting_checks(
    conn: sqlite3.Connection,
    report: VerifyReport,
    record: dict[str, Any] | None,
    reread: bool,
    reads: _Reads,
    target: Path,
) -> None:
    """The counters against the parked table and the tracking record, and (REREAD) the
    recorded source read again against RECORD (`_record`)."""
    if record is None:
        report.checks.append(Check("accounting", False, "no migration recorded"))
        return
    source, position = record["source"], record["position"]
    last_id, prefix = record["lastEventId"], record["prefixDigest"]
    applied, parked, state = conn.execute(
        f"SELECT applied, parked, state FROM {STATE_TABLE} WHERE id = 1"
    ).fetchone()
    in_table = conn.execute(f"SELECT COUNT(*) FROM {PARKED_TABLE}").fetchone()[0]
    tracked = TrackingView(str(target)).position(conn)
    shown = shown_state(state, target)
    # A run that did not finish (killed, stopped, failed; or one still writing) leaves a
    # part of the history, and a first run's deferred indexes unbuilt: not a migration
    # to verify, whatever the source says (or with --no-source, does not say).
    unfinished = shown == "interrupted" or state == "running"
    ok = (
        position == applied + parked
        and parked == in_table
        and tracked == position
        and not unfinished
    )
    report.checks.append(
        Check(
            "accounting",
            ok,
            f"position #{position:,} = {applied:,} applied + {parked:,} parked "
            f"({in_table:,} in {PARKED_TABLE}; tracking at #{tracked:,}; state {shown})"
            + (
                f": its last run did not finish ({command_line('resume', target)} goes on)"
                if unfinished
                else ""
            ),
        )
    )
    if not reread:
        report.checks.append(
            Check(
                "source",
                True,
                f"{SOURCE_SKIPPED}: {source} was not re-read, so the events up to "
                "the checkpoint are not proven unchanged",
                skipped=True,
            )
        )
        return
    try:
        read = reads.read(Path(source), record, global_only=False, whole=True)
    except SourceBusy:
        raise  # locked or changing past the timeout: try again later (CLI exit 75)
    except SourceError as exc:
        report.checks.append(
            Check(
                "source",
                False,
                f"cannot re-read the recorded source: {exc}"
                + ("" if Path(source).exists() else " (retired? `--no-source` skips this check)"),
            )
        )
        return
    report.warnings.extend(read.warnings[: SHOWN_WARNINGS - len(report.warnings)])
    history, count = read.history, read.count
    matched = not position or (read.digest == prefix and read.last_id == last_id)
    holes = (
        f"; its history has holes ({history.summary()}), replayed as LiveStore would"
        if history.counts
        else ""
    )
    if not matched:
        detail = (
            f"the source's first {min(count, position):,} events differ from those migrated "
            "(another store, or a history rewritten since, e.g. by a LiveStore rebase)"
        )
        report.checks.append(Check("source", False, detail))
    elif count != position:
        report.checks.append(
            Check(
                "source",
                False,
                f"source holds {count:,} events, {count - position:,} not migrated yet "
                f"({_catch_up(state, target)}){holes}",
            )
        )
    else:
        report.checks.append(
            Check("source", True, f"all {count:,} source events accounted for ({source}){holes}")
        )


def _catch_up(state: str, target: Path) -> str:
    """How to migrate the events a target lacks, by its recorded STATE: a run that was
    stopped goes on once what stopped it is fixed (`replay` says what that was)."""
    resume = command_line("resume", target)
    if shown_state(state, target) == "interrupted":
        return f"its last run stopped: {resume} goes on once what stopped it is fixed"
    return f"{resume} catches up"


def _deviations_by_entity(conn: sqlite3.Connection) -> dict[str, dict[str, list[str]]]:
    """{entity: {deviation: [event ids]}} recorded by the replay (none in an older target)."""
    found: dict[str, dict[str, list[str]]] = {}
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (DEVIATIONS_TABLE,)
    ).fetchone():
        return found
    for entity, deviation, event_id in conn.execute(
        f"SELECT entity, deviation, eventId FROM {DEVIATIONS_TABLE} ORDER BY position"
    ):
        if deviation in deviations.DEVIATIONS:  # a name no replay writes explains nothing
            found.setdefault(entity, {}).setdefault(deviation, []).append(event_id)
    return found


def _parked_by_entity(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """{entity: [event ids]} of the parked events that explain a difference on a row: each
    names the rows it would have changed. An unknown event names none (no entity), so it
    explains none: LiveStore skips an event its schema does not define, so no row differs
    because of it; a difference it could have made (a newer app's event) stays
    unexplained, and the catalog that knows it is the cure."""
    found: dict[str, list[str]] = {}
    for text, event_id in conn.execute(
        f"SELECT entity, eventId FROM {PARKED_TABLE} WHERE entity IS NOT NULL ORDER BY position"
    ):
        for entity in entity_list(text):
            # A key holding U+0000 names, in LiveStore's state, the row cut there.
            for row in deviations.nul_entities(entity):
                found.setdefault(row, []).append(event_id)
    return found


def _key_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    keys = sorted((r[5], r[1]) for r in info if r[5])
    return [name for _, name in keys]


def _compare(
    conn: sqlite3.Connection,
    against: Path,
    report: VerifyReport,
    record: dict[str, Any] | None,
    picked: str | None,
    catalog: Catalog,
    tables: dict[str, Table],
) -> None:
    try:
        state = connect_readonly(against)
        state_tables = {
            r[0]
            for r in state.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if not r[0].startswith("__livestore") and not r[0].startswith("sqlite_")
        }
    except sqlite3.DatabaseError as exc:
        raise TargetError(f"{against}: not a readable SQLite state database ({exc})") from None
    parked = _parked_by_entity(conn)
    mirrored = _mirrored(tables)
    recorded = _deviations_by_entity(conn)
    try:
        unknown = state_tables - set(mirrored)
        for name in sorted(unknown):
            report.differences.append(
                Difference(name, "*", "missing", "table exists in LiveStore's state only")
            )
        for name, table in mirrored.items():
            if name not in state_tables:
                report.differences.append(
                    Difference(table.name, "*", "extra", f"LiveStore's state has no table {name}")
                )
                continue
            _compare_table(conn, state, name, table, parked, recorded, report)
        head = _materialized_head(state)
    finally:
        state.close()
    _explain_export(report, record, catalog)
    where = f" (from {picked})" if picked else ""
    # Whether the source was re-read and holds every event migrated, and none after.
    caught_up = any(c.name == "source" and c.ok and not c.skipped for c in report.checks)
    lag = _state_lag(head, record, report.target, caught_up) if report.unexplained else ""
    report.checks.append(
        Check(
            "against",
            not report.unexplained,
            f"{report.compared_rows:,} LiveStore rows compared{where}; "
            f"{len(report.differences):,} difference(s), {len(report.unexplained):,} unexplained"
            + lag,
        )
    )


def _materialized_head(state: sqlite3.Connection) -> tuple[int, int, int] | None:
    """The last event LiveStore materialized into STATE, (global, client, rebase
    generation): the newest row of ``__livestore_session_changeset``, which holds one per
    materialized event (FORMAT.md section 2; trimmed only below a backend's head). None
    when it holds none (or is not there)."""
    try:
        row = state.execute(
            "SELECT seqNumGlobal, seqNumClient, seqNumRebaseGeneration "
            "FROM __livestore_session_changeset "
            "ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1"
        ).fetchone()
    except sqlite3.DatabaseError:  # LiveStore 0.3: no rebase generation column
        return None
    return (int(row[0]), int(row[1]), int(row[2] or 0)) if row else None


def _state_lag(
    head: tuple[int, int, int] | None,
    record: dict[str, Any] | None,
    target: str,
    caught_up: bool = False,
) -> str:
    """Why LiveStore's state may differ from the target: it was materialized up to another
    event than the target's last (a store whose app stopped between writing an event and
    materializing it, or a target not caught up yet); "" when they are the same or
    either is unknown."""
    last = (record or {}).get("lastEventId") or ""
    parsed = parse_event_id(last)
    if head is None or parsed is None:
        return ""
    ours = parsed[:2]
    theirs = format_event_id(*head)
    if head[:2] == ours:
        return ""
    if head[:2] < ours:
        return (
            f"; LiveStore's state was last materialized at {theirs}, before the target's last "
            f"event {last}: what the later events change differs there "
            "(let the app open the store once, then verify again)"
        )
    if caught_up:  # CAUGHT_UP: the source holds no event past the target's last
        return (
            f"; LiveStore's state holds events up to {theirs}, past the target's last event "
            f"{last}, and the source holds none after it: the state of another store, or of "
            "a longer log than the source"
        )
    return (
        f"; LiveStore's state holds events up to {theirs}, past the target's last event "
        f"{last}: catch the target up ({command_line('resume', target)}), then verify again"
    )


def _explain_export(report: VerifyReport, record: dict[str, Any] | None, catalog: Catalog) -> None:
    """A target migrated from a sync export lacks the rows only client-only events write:
    the export never had those events (FORMAT.md section 2, client-only events)."""
    if record is None or record["sourceKind"] != KIND_EXPORT:
        return
    tables = set(client_only_tables(catalog))
    for difference in report.differences:
        if difference.table in tables and difference.what == "missing" and not difference.explained:
            difference.explanation = "source is a sync export (no client-only events)"


def _compare_table(
    conn: sqlite3.Connection,
    state: sqlite3.Connection,
    livestore: str,
    table: Table,
    parked: dict[str, list[str]],
    recorded: dict[str, dict[str, list[str]]],
    report: VerifyReport,
) -> None:
    """Compare LiveStore's state table LIVESTORE with the target's TABLE, row by row,
    under LiveStore's column names (the catalog's livestore_columns map ours to theirs)."""
    theirs_cols = [r[1] for r in state.execute(f'PRAGMA table_info("{livestore}")')]
    to_theirs = {c: table.livestore_columns.get(c, c) for c in table.columns}
    to_ours = {v: k for k, v in to_theirs.items()}
    name = table.name
    if sorted(theirs_cols) != sorted(to_ours):
        ours_cols = [to_theirs[c] for c in table.columns]
        report.differences.append(
            Difference(name, "*", "differs", f"columns {theirs_cols} vs ours {ours_cols}")
        )
        return
    key = _key_columns(state, livestore) or [to_theirs[c] for c in table.key]
    theirs_sql = ", ".join(f'"{c}"' for c in theirs_cols)
    ours_sql = ", ".join(f'"{to_ours[c]}"' for c in theirs_cols)
    index = [theirs_cols.index(k) for k in key]
    theirs = {
        tuple(row[i] for i in index): row
        for row in state.execute(f'SELECT {theirs_sql} FROM "{livestore}"')
    }
    ours = {
        tuple(row[i] for i in index): row
        for row in conn.execute(f'SELECT {ours_sql} FROM "{name}"')
    }
    report.compared_rows += len(theirs)
    references = [(theirs_cols.index(to_theirs[ref.column]), ref.table) for ref in table.references]

    def explain(pk: tuple[Any, ...], child: tuple[Any, ...] | None = None) -> list[str]:
        """The parked events on the row PK (or its whole table), and for a CHILD row that
        is in the target only, those on a row it refers to: a parked deletion of its
        parent (LiveStore deleted the child with it) is the only way a parked event on
        another row leaves a row behind."""
        why = parked.get(f"{name}:{pk[0]}", []) + parked.get(any_row(name), [])
        if child is not None:
            for column, ref_table in references:
                why += parked.get(f"{ref_table}:{child[column]}", [])
        return why

    def deviated(pk: tuple[Any, ...]) -> dict[str, list[str]]:
        return {d: list(ids) for d, ids in recorded.get(f"{name}:{pk[0]}", {}).items()}

    for pk in sorted(theirs.keys() | ours.keys(), key=repr):
        a, b = theirs.get(pk), ours.get(pk)
        label = "/".join(str(k) for k in pk)
        if b is None:
            report.differences.append(
                Difference(
                    name,
                    label,
                    "missing",
                    "row is in LiveStore's state only",
                    explain(pk),
                    deviated(pk),
                )
            )
        elif a is None:
            report.differences.append(
                Difference(
                    name, label, "extra", "row is in the target only", explain(pk, b), deviated(pk)
                )
            )
        else:
            changed = [
                (c, x, y)
                for c, x, y in zip(theirs_cols, a, b, strict=True)
                if x != y or type(x) is not type(y)
            ]
            if changed:
                # A deviation recorded on the row explains its changed values only when
                # every one of them shows it (text cut at U+0000), not any change at all.
                by_value = {deviations.explain_values(x, y) for _, x, y in changed}
                why = {}
                if len(by_value) == 1 and None not in by_value:
                    shown = by_value.pop() or ""
                    why = {shown: deviated(pk).get(shown, [])}
                detail = "; ".join(f"{c}: {excerpts(x, y)}" for c, x, y in changed)
                report.differences.append(
                    Difference(
                        name,
                        label,
                        "differs",
                        detail,
                        explain(pk),
                        why,
                        columns=[c for c, _, _ in changed],
                    )
                )


__all__ = ["VerifyReport", "verify"]
