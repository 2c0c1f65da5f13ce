"""The filter of keys a first replay has written (`projector.store.KeyFilter`).

A key the run never wrote into a table that was empty when it began is not looked up in
the target. That is only sound where SQLite finds a text key exactly as Python compares
it, and only while every key written is known: these tests break the filter when either
is not so.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from projector.store import RowStore, filterable
from projector.target import Table


def _target(tmp_path: Path, ddl: str) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.executescript(ddl)
    return conn


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        ("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT) STRICT", True),
        ("CREATE TABLE t (id VARCHAR(20) PRIMARY KEY NOT NULL, v TEXT)", True),
        ("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID", True),
        ("CREATE TABLE t (id TEXT COLLATE NOCASE PRIMARY KEY, v TEXT)", False),
        ("CREATE TABLE t (id TEXT, v TEXT, PRIMARY KEY (id COLLATE RTRIM))", False),
        ("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", False),
        ("CREATE TABLE t (id CHARINT PRIMARY KEY, v TEXT)", False),  # INTEGER affinity
        ("CREATE TABLE t (id BLOB PRIMARY KEY, v TEXT)", False),
        ("CREATE TABLE t (id PRIMARY KEY, v TEXT)", False),
        ("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT); INSERT INTO t VALUES ('a', '')", False),
    ],
)
def test_only_an_empty_table_comparing_text_keys_as_python_does_is_filtered(
    tmp_path: Path, ddl: str, expected: bool
):
    """TEXT affinity and the BINARY collation: SQLite then finds exactly the str equal to
    the key. A NOCASE key would find 'A' for 'a'; an INTEGER one 1 for '01'."""
    assert filterable(_target(tmp_path, ddl), "t", "id") is expected


def _store(conn: sqlite3.Connection) -> RowStore:
    return RowStore(conn, {"t": Table("t", ("id",), ("id", "v"), {})})


def test_keys_written_by_the_run_are_read_again_and_others_are_not_looked_up(tmp_path: Path):
    conn = _target(tmp_path, "CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT) STRICT")
    store = _store(conn)
    assert store.filter.tables == {"t"}
    store.prefetch("t", {"a", "b"})
    store.put("t", "a", {"id": "a", "v": "1"})
    store.flush()  # written: the next batch must read it
    conn.execute("INSERT INTO t VALUES ('c', 'behind the run')")  # no run writes like this
    store.prefetch("t", {"a", "b", "c"})
    assert store.get("t", "a") == {"id": "a", "v": "1"}
    assert store.get("t", "b") is None
    assert store.get("t", "c") is None  # never written by the run: not looked up
    store.clear()
    assert store.get("t", "a") == {"id": "a", "v": "1"}  # one at a time too


def test_a_key_of_another_type_ends_the_filter_of_its_table(tmp_path: Path):
    """An integer key is stored as text in a TEXT column: the table is read as before."""
    conn = _target(tmp_path, "CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT) STRICT")
    store = _store(conn)
    store.put("t", 5, {"id": 5, "v": "int"})
    store.flush()
    assert conn.execute("SELECT id, typeof(id) FROM t").fetchall() == [("5", "text")]
    assert "t" not in store.filter.tables
    store.prefetch("t", {"5"})
    assert store.get("t", "5") == {"id": "5", "v": "int"}


def test_a_table_not_empty_at_the_start_is_read_as_before(tmp_path: Path):
    conn = _target(
        tmp_path,
        "CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT) STRICT; INSERT INTO t VALUES ('a', 'x')",
    )
    store = _store(conn)
    assert store.filter.tables == set()
    store.prefetch("t", {"a"})
    assert store.get("t", "a") == {"id": "a", "v": "x"}
