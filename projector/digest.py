"""A canonical content digest of the target: per table and overall.

Rows are read in primary-key order and serialized with their SQLite types, so the digest
depends on content only, not on page layout, batch size or the wall clock. The
migration's bookkeeping tables (run times, tracking) are left out; parked events are in.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from events.sources import connect_readonly
from projector.target import APP_TABLES, PARKED_TABLE

DIGEST_TABLES: dict[str, tuple[str, ...]] = {**APP_TABLES, PARKED_TABLE: ("position",)}


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return {"real": repr(value)}
    if isinstance(value, bytes):
        return {"blob": value.hex()}
    return value


def table_digest(conn: sqlite3.Connection, table: str, key: tuple[str, ...]) -> tuple[str, int]:
    columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
    order = ", ".join(f'"{k}"' for k in key)
    h = hashlib.sha256(json.dumps(columns).encode())
    count = 0
    for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}'):
        h.update(b"\n")
        h.update(json.dumps([_cell(v) for v in row], ensure_ascii=False).encode())
        count += 1
    return h.hexdigest(), count


def digest(path: Path) -> dict[str, Any]:
    """{"tables": {name: {"sha256", "rows"}}, "overall": sha256} of a target database."""
    conn = connect_readonly(path)
    try:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        tables: dict[str, dict[str, Any]] = {}
        for table, key in DIGEST_TABLES.items():
            if table in present:
                sha, rows = table_digest(conn, table, key)
                tables[table] = {"sha256": sha, "rows": rows}
    finally:
        conn.close()
    overall = hashlib.sha256(
        "".join(f"{t}:{v['sha256']}\n" for t, v in tables.items()).encode()
    ).hexdigest()
    return {"tables": tables, "overall": overall}
