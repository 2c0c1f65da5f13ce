"""The target's schema migrations: a target made by an earlier version is upgraded in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database, hookimpl, plugins

from events.catalog import Catalog
from projector.errors import TargetError
from projector.target import catalog_migrations, migrations, open_target

KIND_AS_ORS = "0002_memories_kind_check_as_ors"


def test_a_catalog_migration_rebuilds_memories_keeping_every_row_and_tag(tmp_path: Path):
    """ai-desk's 0002 rebuilds memories (create, copy, drop, rename) on a target made at
    0001: every row and tag survives, nothing cascades, the CHECK is the new one."""
    catalog = Catalog.bundled("ai-desk")
    path = tmp_path / "old.db"
    old = Database(path)
    with old.atomic():
        migrations.apply(old)
        catalog_migrations(catalog).apply(old, stop_before=KIND_AS_ORS)
    old.execute(
        "INSERT INTO personas (id, name, personality, createdAt) VALUES ('p', 'Ada', '', 'T')"
    )
    memory = ("m", "p", "likes tea", "preference", 0.25, '["a","b"]', "T0", "T1")
    old.execute("INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?, ?, ?)", memory)
    old.execute("INSERT INTO memory_tags VALUES ('m', 'a'), ('m', 'b')")
    old.conn.commit()
    old.close()

    db = open_target(path, create=True, catalog=catalog)
    conn = db.conn
    assert KIND_AS_ORS in {m.name for m in catalog_migrations(catalog).applied(db)}
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


def test_a_target_made_before_catalogs_is_refused_with_a_reason(tmp_path: Path):
    """A projector 0.1 target (its app tables in the projector's own migration set) is
    refused, not half-migrated."""
    path = tmp_path / "v01.db"
    old = Database(path)
    old.execute(
        "CREATE TABLE _sqlite_migrations (id INTEGER PRIMARY KEY, migration_set TEXT, "
        "name TEXT, applied_at TEXT)"
    )
    old.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES "
        "('livestore-projector', 'm001_app_tables', 'T')"
    )
    old.execute("CREATE TABLE _projector_migration (id INTEGER PRIMARY KEY)")
    old.conn.commit()
    old.close()
    with pytest.raises(TargetError, match="before catalogs"):
        open_target(path, create=True, catalog=Catalog.bundled("ai-desk"))
    # It stays readable, as the refusal says (its state table has no recorded order),
    # and finalize refuses it first thing, not once it has verified it.
    from projector.digest import digest
    from projector.finalize import finalize

    assert len(digest(path)["overall"]) == 64
    with pytest.raises(TargetError, match="before catalogs; migrate into a new target to hand"):
        finalize(path)


def test_a_digest_is_one_moment_of_a_target_a_run_is_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """digest reads every table in one read transaction: a batch committed while it
    reads (here, between its first table and the next) is not half in it."""
    import projector.digest as digest_module
    from projector.replay import replay
    from tests.conftest import SMALL

    target = tmp_path / "t.db"
    replay(SMALL, target)
    before = digest_module.digest(target)["overall"]
    real_table_digest = digest_module.table_digest
    written: list[bool] = []

    def committing_meanwhile(conn: sqlite3.Connection, table: str, key: list[str]) -> object:
        if not written:  # another connection commits a row of a later table
            writer = sqlite3.connect(target)
            writer.execute("DELETE FROM memories WHERE rowid = (SELECT MIN(rowid) FROM memories)")
            writer.commit()
            writer.close()
            written.append(True)
        return real_table_digest(conn, table, key)

    monkeypatch.setattr(digest_module, "table_digest", committing_meanwhile)
    assert digest_module.digest(target)["overall"] == before
    monkeypatch.undo()
    assert digest_module.digest(target)["overall"] != before


class _ProbePlugin:
    """A sqlite-utils plugin, as an installed package would register one."""

    @hookimpl
    def prepare_connection(self, conn: sqlite3.Connection) -> None:
        conn.create_function("plugin_probe", 0, lambda: 1)


def test_installed_sqlite_utils_plugins_do_not_run_on_a_target(tmp_path: Path):
    """What a replay writes must not depend on what else is installed: a plugin's
    prepare_connection hook is not run on the target's connection."""
    plugin = _ProbePlugin()
    plugins.pm.register(plugin)
    try:
        assert Database(memory=True).execute("SELECT plugin_probe()").fetchone() == (1,)
        db = open_target(tmp_path / "t.db", create=True, catalog=Catalog.bundled("ai-desk"))
        with pytest.raises(sqlite3.OperationalError, match="no such function: plugin_probe"):
            db.execute("SELECT plugin_probe()")
        db.close()
    finally:
        plugins.pm.unregister(plugin)
