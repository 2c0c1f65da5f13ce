"""A canonical content digest of the target: per table and overall.

Rows are read in primary-key order and serialized with their SQLite types, so the digest
depends on content only, not on page layout, batch size or the wall clock. The app's
tables are walked in their catalog's order (recorded in the target by its first run);
the migration's bookkeeping tables (run times, tracking) are left out; parked events are
in.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from events.sources import connect_readonly
from projector.target import BOOKKEEPING_TABLES, PARKED_TABLE, STATE_TABLE


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return {"real": repr(value)}
    if isinstance(value, bytes):
        return {"blob": value.hex()}
    return value


def key_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """TABLE's primary-key columns in key order (its rowid when it declares none)."""
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    keys = [name for _, name in sorted((r[5], r[1]) for r in info if r[5])]
    return keys or ["rowid"]


def table_digest(conn: sqlite3.Connection, table: str, key: list[str]) -> tuple[str, int]:
    columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
    order = ", ".join(f'"{k}"' if k != "rowid" else k for k in key)
    h = hashlib.sha256(json.dumps(columns).encode())
    count = 0
    for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}'):
        h.update(b"\n")
        h.update(json.dumps([_cell(v) for v in row], ensure_ascii=False).encode())
        count += 1
    return h.hexdigest(), count


def digest_tables(conn: sqlite3.Connection) -> list[str]:
    """The tables a digest covers: the app's, in the order the migration recorded (or,
    before a first commit, SQLite's), then the parked events."""
    present = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY rowid")
        if not r[0].startswith("sqlite_") and r[0] not in BOOKKEEPING_TABLES
    ]
    order = present
    if STATE_TABLE in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}:
        try:
            row = conn.execute(f"SELECT tables FROM {STATE_TABLE} WHERE id = 1").fetchone()
        except sqlite3.OperationalError:  # made by projector 0.1: no recorded order
            row = None
        if row and row[0]:
            recorded = json.loads(row[0])
            order = [t for t in recorded if t in present] + [
                t for t in present if t not in recorded
            ]
    has_parked = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (PARKED_TABLE,)
    ).fetchone()
    return order + ([PARKED_TABLE] if has_parked else [])


def digest(path: Path) -> dict[str, Any]:
    """{"tables": {name: {"sha256", "rows"}}, "overall": sha256} of a target database,
    read in one read transaction: one moment of it while a run commits batches."""
    conn = connect_readonly(path)
    try:
        conn.execute("BEGIN")
        tables: dict[str, dict[str, Any]] = {}
        for table in digest_tables(conn):
            sha, rows = table_digest(conn, table, key_columns(conn, table))
            tables[table] = {"sha256": sha, "rows": rows}
    finally:
        conn.close()
    overall = hashlib.sha256(
        "".join(f"{t}:{v['sha256']}\n" for t, v in tables.items()).encode()
    ).hexdigest()
    return {"tables": tables, "overall": overall}
