"""`verify`: prove a target sound, accounted for, and equal to LiveStore's own state.

Checks: SQLite integrity and foreign keys, `memory_tags` in step with `memories.tags`,
the event accounting (applied + parked = position, against the source when it is
still there), and, given LiveStore's state DB, a row-for-row comparison in which every
difference is either explained by a parked event on the same row, or by a deliberate
deviation from LiveStore (projector/deviations.py, by name), or reported.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events.encoding import utf8_text
from events.errors import SourceError
from events.sources import connect_readonly, open_source
from projector import deviations
from projector.checkpoint import PrefixDigest
from projector.errors import TargetError
from projector.handlers import any_row
from projector.target import (
    DEVIATIONS_TABLE,
    LIVESTORE_TABLES,
    PARKED_TABLE,
    STATE_TABLE,
    is_target,
)

SAMPLE = 60


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

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

    @property
    def explained(self) -> bool:
        return bool(self.explained_by) or bool(self.deviations)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": self.key,
            "what": self.what,
            "detail": self.detail,
            "explained": self.explained,
            "explainedBy": self.explained_by,
            "deviations": sorted(self.deviations),
        }

    def line(self) -> str:
        why = []
        for name, events in sorted(self.deviations.items()):
            why.append(f"explained by deviation {name}" + (f" ({_ids(events)})" if events else ""))
        if self.explained_by:
            why.append(f"explained by parked {_ids(self.explained_by)}")
        reason = "; ".join(why) or "UNEXPLAINED"
        return f"{self.table}[{self.key}] {self.what}: {self.detail} -- {reason}"


def _ids(events: list[str]) -> str:
    return ", ".join(events[:3]) + (f" (+{len(events) - 3})" if len(events) > 3 else "")


@dataclass
class VerifyReport:
    target: str
    against: str | None = None
    checks: list[Check] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    compared_rows: int = 0

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
        }


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SAMPLE else text[: SAMPLE - 1] + "…"


def verify(target: Path, against: Path | None = None) -> VerifyReport:
    if not target.exists() or not is_target(target):
        raise TargetError(f"{target}: not a projector target")
    report = VerifyReport(target=str(target), against=str(against) if against else None)
    conn = connect_readonly(target)
    try:
        _structural_checks(conn, report)
        _accounting_checks(conn, report)
        if against is not None:
            _compare(conn, against, report)
    finally:
        conn.close()
    return report


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
            else f"{len(broken)} broken: " + ", ".join(f"{t} rowid {r}" for t, r, *_ in broken[:5]),
        )
    )
    # Compared in Python: SQLite's json_each cuts a tag at U+0000 and returns a lone
    # surrogate's escape as bytes that are not UTF-8, where memory_tags holds the tag whole
    # (with U+FFFD for a lone surrogate, as every text column).
    expected = {
        (memory, utf8_text(tag))
        for memory, tags in conn.execute("SELECT id, tags FROM memories")
        for tag in json.loads(tags)
        if isinstance(tag, str)
    }
    actual = set(conn.execute("SELECT memoryId, tag FROM memory_tags"))
    stale, extra = len(expected - actual), len(actual - expected)
    report.checks.append(
        Check(
            "memory_tags",
            stale == 0 and extra == 0,
            "in step with memories.tags"
            if stale == 0 and extra == 0
            else f"{stale} tag(s) missing from memory_tags, {extra} extra",
        )
    )


def _accounting_checks(conn: sqlite3.Connection, report: VerifyReport) -> None:
    row = conn.execute(
        f"SELECT source, position, lastEventId, prefixDigest, applied, parked, state "
        f"FROM {STATE_TABLE} WHERE id = 1"
    ).fetchone()
    if row is None:
        report.checks.append(Check("accounting", False, "no migration recorded"))
        return
    source, position, last_id, prefix, applied, parked, state = row
    in_table = conn.execute(f"SELECT COUNT(*) FROM {PARKED_TABLE}").fetchone()[0]
    tracked = (
        conn.execute(
            "SELECT MAX(notification_id) FROM tracking WHERE application_name = ?",
            ("livestore-projector",),
        ).fetchone()[0]
        or 0
    )
    ok = position == applied + parked and parked == in_table and tracked == position
    report.checks.append(
        Check(
            "accounting",
            ok,
            f"position #{position} = {applied} applied + {parked} parked "
            f"({in_table} in {PARKED_TABLE}; tracking at #{tracked}; state {state})",
        )
    )
    try:
        src = open_source(source)
    except SourceError as exc:
        report.checks.append(Check("source", False, f"cannot re-read the recorded source: {exc}"))
        return
    try:
        digest = PrefixDigest()
        count = 0
        matched = position == 0
        for event in src.events():
            count += 1
            if count <= position:
                digest.update(event)
                if count == position:
                    matched = digest.hexdigest() == prefix and event.event_id == last_id
    finally:
        src.close()
    if not matched:
        detail = f"the source's first {min(count, position)} events differ from those migrated"
        report.checks.append(Check("source", False, detail))
    elif count != position:
        report.checks.append(
            Check(
                "source",
                False,
                f"source holds {count} events, {count - position} not migrated yet "
                "(run `projector replay` to catch up)",
            )
        )
    else:
        report.checks.append(
            Check("source", True, f"all {count} source events accounted for ({source})")
        )


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
        found.setdefault(entity, {}).setdefault(deviation, []).append(event_id)
    return found


def _parked_by_entity(conn: sqlite3.Connection) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entity, event_id in conn.execute(
        f"SELECT entity, eventId FROM {PARKED_TABLE} WHERE entity IS NOT NULL ORDER BY position"
    ):
        # A key holding U+0000 names, in LiveStore's state, the row cut there.
        for row in deviations.nul_entities(entity):
            found.setdefault(row, []).append(event_id)
    return found


def _key_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    keys = sorted((r[5], r[1]) for r in info if r[5])
    return [name for _, name in keys]


def _compare(conn: sqlite3.Connection, against: Path, report: VerifyReport) -> None:
    if not against.exists():
        raise TargetError(f"{against}: no such state database")
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
    recorded = _deviations_by_entity(conn)
    try:
        unknown = state_tables - set(LIVESTORE_TABLES)
        for table in sorted(unknown):
            report.differences.append(
                Difference(table, "*", "missing", "table exists in LiveStore's state only")
            )
        for table in LIVESTORE_TABLES:
            if table not in state_tables:
                continue
            _compare_table(conn, state, table, parked, recorded, report)
    finally:
        state.close()
    report.checks.append(
        Check(
            "against",
            not report.unexplained,
            f"{report.compared_rows} LiveStore rows compared; {len(report.differences)} "
            f"difference(s), {len(report.unexplained)} unexplained",
        )
    )


def _compare_table(
    conn: sqlite3.Connection,
    state: sqlite3.Connection,
    table: str,
    parked: dict[str, list[str]],
    recorded: dict[str, dict[str, list[str]]],
    report: VerifyReport,
) -> None:
    theirs_cols = [r[1] for r in state.execute(f'PRAGMA table_info("{table}")')]
    ours_cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    if theirs_cols != ours_cols:
        report.differences.append(
            Difference(table, "*", "differs", f"columns {theirs_cols} vs ours {ours_cols}")
        )
        return
    key = _key_columns(state, table) or _key_columns(conn, table)
    cols = ", ".join(f'"{c}"' for c in theirs_cols)
    theirs = {
        tuple(row[theirs_cols.index(k)] for k in key): row
        for row in state.execute(f'SELECT {cols} FROM "{table}"')
    }
    ours = {
        tuple(row[ours_cols.index(k)] for k in key): row
        for row in conn.execute(f'SELECT {cols} FROM "{table}"')
    }
    report.compared_rows += len(theirs)

    def explain(pk: tuple[Any, ...], row: tuple[Any, ...] | None) -> list[str]:
        entity = f"{table}:{pk[0]}"
        why = parked.get(entity, []) + parked.get(any_row(table), [])
        if row is not None and table in ("memories", "drafts"):
            persona = row[theirs_cols.index("personaId")]
            why += parked.get(f"personas:{persona}", [])
        return why

    def deviated(pk: tuple[Any, ...]) -> dict[str, list[str]]:
        return {name: list(ids) for name, ids in recorded.get(f"{table}:{pk[0]}", {}).items()}

    for pk in sorted(theirs.keys() | ours.keys(), key=repr):
        a, b = theirs.get(pk), ours.get(pk)
        label = "/".join(str(k) for k in pk)
        if b is None:
            report.differences.append(
                Difference(
                    table,
                    label,
                    "missing",
                    "row is in LiveStore's state only",
                    explain(pk, a),
                    deviated(pk),
                )
            )
        elif a is None:
            report.differences.append(
                Difference(
                    table, label, "extra", "row is in the target only", explain(pk, b), deviated(pk)
                )
            )
        else:
            changed = [
                (c, x, y)
                for c, x, y in zip(theirs_cols, a, b, strict=True)
                if x != y or type(x) is not type(y)
            ]
            if changed:
                why = deviated(pk)
                by_value = {deviations.explain_values(x, y) for _, x, y in changed}
                if len(by_value) == 1 and None not in by_value:
                    why.setdefault(by_value.pop() or "", [])
                detail = "; ".join(f"{c}: {_short(x)} vs {_short(y)}" for c, x, y in changed)
                report.differences.append(
                    Difference(table, label, "differs", detail, explain(pk, a), why)
                )


__all__ = ["VerifyReport", "verify"]
