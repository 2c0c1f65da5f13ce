"""The target's schema migrations: a target made by an earlier version is upgraded in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from projector.target import migrations, open_target

M004 = "m004_memories_kind_check_as_ors"


def test_m004_rebuilds_memories_keeping_every_row_and_tag(tmp_path: Path):
    path = tmp_path / "old.db"
    old = Database(path)
    with old.atomic():
        migrations.apply(old, stop_before=M004)
    old.execute(
        "INSERT INTO personas (id, name, personality, createdAt) VALUES ('p', 'Ada', '', 'T')"
    )
    memory = ("m", "p", "likes tea", "preference", 0.25, '["a","b"]', "T0", "T1")
    old.execute("INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?, ?, ?)", memory)
    old.execute("INSERT INTO memory_tags VALUES ('m', 'a'), ('m', 'b')")
    old.conn.commit()
    old.close()

    db = open_target(path, create=True)
    conn = db.conn
    assert M004 in {m.name for m in migrations.applied(db)}
    assert conn.execute("SELECT * FROM memories").fetchall() == [memory]
    # Dropping the old table cascaded nothing to memory_tags.
    assert conn.execute("SELECT * FROM memory_tags ORDER BY tag").fetchall() == [
        ("m", "a"),
        ("m", "b"),
    ]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'memories'").fetchone()[0]
    assert " IN (" not in sql and "kind = 'episode'" in sql
    assert conn.execute("PRAGMA index_list(memories)").fetchall()  # its index came back
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE memories SET kind = 'rumour'")
    # The connection is back to enforcing foreign keys.
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn.close()
