"""`verify`: prove a target sound, accounted for, and equal to LiveStore's own state.

Checks: SQLite integrity and foreign keys, each derived table in step with its parent's
column (e.g. ai-desk's `memory_tags` with `memories.tags`), the event accounting (applied
+ parked = position, against the source when it is still there), and, given LiveStore's
state DB, a row-for-row comparison of every table the catalog says mirrors a LiveStore
state table (under the catalog's table and column names), in which every difference is
either explained by a parked event on the same row (or on a row it references) or
reported.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events.catalog import Catalog, load_recorded
from events.errors import CatalogError, SourceError
from events.sources import connect_readonly, open_source
from projector.checkpoint import PrefixDigest
from projector.errors import TargetError
from projector.handlers import any_row, entity_list
from projector.target import PARKED_TABLE, STATE_TABLE, Table, is_target, read_tables

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
    explained_by: list[str] = field(default_factory=list)

    @property
    def explained(self) -> bool:
        return bool(self.explained_by)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": self.key,
            "what": self.what,
            "detail": self.detail,
            "explained": self.explained,
            "explainedBy": self.explained_by,
        }

    def line(self) -> str:
        why = (
            f"explained by parked {', '.join(self.explained_by[:3])}"
            + (f" (+{len(self.explained_by) - 3})" if len(self.explained_by) > 3 else "")
            if self.explained
            else "UNEXPLAINED"
        )
        return f"{self.table}[{self.key}] {self.what}: {self.detail} -- {why}"


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


def verify(
    target: Path, against: Path | None = None, catalog: Catalog | None = None
) -> VerifyReport:
    """Check TARGET (see the module docstring); compare with the state DB AGAINST if given.

    CATALOG defaults to the one the migration recorded. Raises TargetError when TARGET is
    not a projector target or AGAINST is not a readable state DB.
    """
    if not target.exists() or not is_target(target):
        raise TargetError(f"{target}: not a projector target")
    report = VerifyReport(target=str(target), against=str(against) if against else None)
    conn = connect_readonly(target)
    try:
        _structural_checks(conn, report)
        tables = _tables(conn, catalog, report)
        if tables is not None:
            _derived_checks(conn, tables, report)
        _accounting_checks(conn, report)
        if against is not None and tables is not None:
            _compare(conn, against, tables, report)
    finally:
        conn.close()
    return report


def _tables(
    conn: sqlite3.Connection, catalog: Catalog | None, report: VerifyReport
) -> dict[str, Table] | None:
    """The target's tables as its catalog describes them (None, with a failed check, when
    the catalog cannot be loaded)."""
    try:
        if catalog is None:
            row = conn.execute(f"SELECT catalog FROM {STATE_TABLE} WHERE id = 1").fetchone()
            if row is None:
                return None
            catalog = load_recorded(row[0])
        return read_tables(conn, catalog)
    except CatalogError as exc:
        report.checks.append(Check("catalog", False, str(exc)))
        return None


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


def _derived_checks(
    conn: sqlite3.Connection, tables: dict[str, Table], report: VerifyReport
) -> None:
    """Each derived table holds exactly the elements of its parent's JSON-array column."""
    for table in tables.values():
        d = table.derived
        if d is None:
            continue
        parent_key = tables[d.parent].row_key
        from_parent = (
            f'SELECT p."{parent_key}", j.value FROM "{d.parent}" p, json_each(p."{d.column}") j'
        )
        ours = f'SELECT "{d.key}", "{d.element}" FROM "{table.name}"'
        stale = conn.execute(f"SELECT COUNT(*) FROM ({from_parent} EXCEPT {ours})").fetchone()[0]
        extra = conn.execute(f"SELECT COUNT(*) FROM ({ours} EXCEPT {from_parent})").fetchone()[0]
        ok = stale == 0 and extra == 0
        report.checks.append(
            Check(
                table.name,
                ok,
                f"in step with {d.parent}.{d.column}"
                if ok
                else f"{stale} element(s) missing from {table.name}, {extra} extra",
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


def _parked_by_entity(conn: sqlite3.Connection) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for text, event_id in conn.execute(
        f"SELECT entity, eventId FROM {PARKED_TABLE} WHERE entity IS NOT NULL ORDER BY position"
    ):
        for entity in entity_list(text):
            found.setdefault(entity, []).append(event_id)
    return found


def _key_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    keys = sorted((r[5], r[1]) for r in info if r[5])
    return [name for _, name in keys]


def _compare(
    conn: sqlite3.Connection, against: Path, tables: dict[str, Table], report: VerifyReport
) -> None:
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
    mirrored = {t.livestore: t for t in tables.values() if t.livestore is not None}
    try:
        unknown = state_tables - set(mirrored)
        for name in sorted(unknown):
            report.differences.append(
                Difference(name, "*", "missing", "table exists in LiveStore's state only")
            )
        for name, table in mirrored.items():
            if name not in state_tables:
                continue
            _compare_table(conn, state, name, table, parked, report)
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
    livestore: str,
    table: Table,
    parked: dict[str, list[str]],
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

    def explain(pk: tuple[Any, ...], row: tuple[Any, ...] | None) -> list[str]:
        why = parked.get(f"{name}:{pk[0]}", []) + parked.get(any_row(name), [])
        if row is not None:
            for column, ref_table in references:
                why += parked.get(f"{ref_table}:{row[column]}", [])
        return why

    for pk in sorted(theirs.keys() | ours.keys(), key=repr):
        a, b = theirs.get(pk), ours.get(pk)
        label = "/".join(str(k) for k in pk)
        if b is None:
            report.differences.append(
                Difference(
                    name, label, "missing", "row is in LiveStore's state only", explain(pk, a)
                )
            )
        elif a is None:
            report.differences.append(
                Difference(name, label, "extra", "row is in the target only", explain(pk, b))
            )
        else:
            changed = [
                f"{c}: LiveStore {_short(x)}, target {_short(y)}"
                for c, x, y in zip(theirs_cols, a, b, strict=True)
                if x != y or type(x) is not type(y)
            ]
            if changed:
                report.differences.append(
                    Difference(name, label, "differs", "; ".join(changed), explain(pk, a))
                )


__all__ = ["VerifyReport", "verify"]
