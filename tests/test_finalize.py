"""`projector finalize`: the hand-off of a verified migration to the new app, for any catalog."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from projector.cli import cli
from projector.drizzle import MIGRATIONS_TABLE
from projector.errors import HandoffError, Interrupted, TargetError
from projector.finalize import (
    FinalizeOptions,
    content_digest,
    finalize,
    last_handoff,
    migration_identity,
    sidecar_path,
)
from projector.replay import ReplayOptions, replay, resume
from tests.conftest import FIXTURES, REBASE, REBASE_STATE, SMALL, SMALL_STATE
from tests.test_careful_cli import read_only_mount

TODOMVC = FIXTURES / "todomvc-small" / "todomvc"
TODOMVC_STATE = TODOMVC / "state-96296379336@6.db"


def _names(db: Path, kind: str) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = ?", (kind,))
        }
    finally:
        conn.close()


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    target = tmp_path / "target.db"
    replay(SMALL, target, ReplayOptions())
    return target


def test_the_app_database_holds_the_apps_tables_only(migrated, tmp_path):
    """APP_DB has the catalog's tables, indexes, derived-table triggers and views, every
    row of the target, and none of the migration's bookkeeping."""
    app_db = tmp_path / "app.db"
    result = finalize(migrated, FinalizeOptions(out=app_db, against=SMALL_STATE))
    assert _names(app_db, "table") == {
        "personas",
        "memories",
        "memory_tags",
        "plugins",
        "config",
        "drafts",
        "userPreferences",
        "uiState",
    }
    assert _names(app_db, "view") == {"active_personas", "persona_memories"}
    assert _names(app_db, "trigger") == {
        "memory_tags_from_memories_insert",
        "memory_tags_from_memories_update",
        "memory_tags_from_memories_delete",
    }
    assert result.rows["memories"] == 47 and result.rows["memory_tags"] == 96
    assert _names(sidecar_path(app_db), "table") >= {
        "_projector_parked",
        "_projector_migration",
        "_projector_runs",
        "_projector_handoff",
        "tracking",
        "_sqlite_migrations",
    }


def test_the_app_database_is_one_rollback_journal_file_with_the_catalogs_header(migrated, tmp_path):
    """Journal mode delete in the file header, user_version and application_id as the
    catalog's [target] says, integrity ok, and no -wal, -shm or -journal beside it."""
    app_db = tmp_path / "app.db"
    finalize(migrated, FinalizeOptions(out=app_db))
    header = app_db.read_bytes()[:100]
    assert header[18:20] == b"\x01\x01"  # https://www.sqlite.org/fileformat.html: legacy (rollback)
    assert int.from_bytes(header[60:64], "big") == 1  # user_version
    assert int.from_bytes(header[68:72], "big") == 0x4149444B  # application_id
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("app.db")) == [
        "app.db",
        "app.db.projector.db",
    ]
    conn = sqlite3.connect(f"{app_db.resolve().as_uri()}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_wal_mode_when_asked(migrated, tmp_path):
    """--journal-mode wal stores WAL in the header; the file is still complete on its own."""
    app_db = tmp_path / "app.db"
    finalize(migrated, FinalizeOptions(out=app_db, journal_mode="wal"))
    assert app_db.read_bytes()[18:20] == b"\x02\x02"
    assert not (tmp_path / "app.db-wal").exists() and not (tmp_path / "app.db-shm").exists()


def test_a_catch_up_keeps_the_journal_mode_the_app_was_given(tmp_path, runner):
    """finalize again into the APP_DB this migration handed over (a catch-up) keeps its
    last hand-off's journal mode unless --journal-mode is given; another migration's
    APP_DB replaced with --force gets the default, delete."""
    target, app_db = tmp_path / "t.db", tmp_path / "app.db"
    replay(SMALL, target, ReplayOptions())
    assert finalize(target, FinalizeOptions(out=app_db, journal_mode="wal")).journal_mode == "wal"
    result = runner.invoke(cli, ["finalize", str(target), "--out", str(app_db), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["journalMode"] == "wal"
    assert app_db.read_bytes()[18:20] == b"\x02\x02"
    assert finalize(target, FinalizeOptions(out=app_db, journal_mode="delete")).journal_mode == (
        "delete"
    )
    assert app_db.read_bytes()[18:20] == b"\x01\x01"
    assert finalize(target, FinalizeOptions(out=app_db)).journal_mode == "delete"
    finalize(target, FinalizeOptions(out=app_db, journal_mode="wal"))
    other = tmp_path / "other.db"
    replay(SMALL, other, ReplayOptions())
    assert finalize(other, FinalizeOptions(out=app_db, force=True)).journal_mode == "delete"


def test_digest_and_status_still_work_from_the_app_database(migrated, tmp_path, runner):
    """`projector digest APP_DB` equals the target's digest (nothing lost in the hand-off);
    `projector status APP_DB` reads the migration from the sidecar."""
    app_db = tmp_path / "app.db"
    assert runner.invoke(cli, ["finalize", str(migrated), "--out", str(app_db)]).exit_code == 0
    ours = json.loads(runner.invoke(cli, ["digest", str(app_db), "--json"]).stdout)
    theirs = json.loads(runner.invoke(cli, ["digest", str(migrated), "--json"]).stdout)
    assert ours == theirs
    status = runner.invoke(cli, ["status", str(app_db)])
    assert status.exit_code == 0
    assert "checkpoint: #200 of 200" in status.stdout and "hand-off:" in status.stdout
    info = json.loads(runner.invoke(cli, ["status", str(app_db), "--json"]).stdout)
    assert info["handoff"]["position"] == 200 and info["appChangedSinceHandoff"] is False


def test_an_app_database_named_through_a_symbolic_link_is_the_file_it_links_to(
    migrated, tmp_path, runner
):
    """The app opens APP_DB through a link: finalize replaces the file linked to (with the
    sidecar beside it) and keeps the link; status, digest and parked read it through the
    link; a dangling link's file is written where it points."""
    real, links = tmp_path / "real", tmp_path / "links"
    real.mkdir()
    links.mkdir()
    finalize(migrated, FinalizeOptions(out=real / "app.db"))
    (links / "app.db").symlink_to(real / "app.db")
    again = runner.invoke(cli, ["finalize", str(migrated), "--out", str(links / "app.db")])
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"replaced {real / 'app.db'} ")
    assert (links / "app.db").is_symlink() and sorted(p.name for p in links.iterdir()) == ["app.db"]
    assert sorted(p.name for p in real.iterdir()) == ["app.db", "app.db.projector.db"]
    for command in (["status"], ["digest"], ["parked"]):
        shown = runner.invoke(cli, [*command, str(links / "app.db"), "--json"])
        assert shown.exit_code == 0, (command, shown.output)
    theirs = json.loads(runner.invoke(cli, ["digest", str(migrated), "--json"]).stdout)
    ours = json.loads(runner.invoke(cli, ["digest", str(links / "app.db"), "--json"]).stdout)
    assert ours == theirs
    (links / "dangling.db").symlink_to(real / "new.db")
    finalize(migrated, FinalizeOptions(out=links / "dangling.db"))
    assert (links / "dangling.db").is_symlink() and (real / "new.db.projector.db").is_file()


def test_parked_reads_the_parked_events_of_an_app_database_from_its_sidecar(tmp_path, runner):
    """`projector parked APP_DB` lists what `parked TARGET` listed: the events that stayed
    parked are in the sidecar, not in the app's tables."""
    target, app_db = tmp_path / "t.db", tmp_path / "app.db"
    replay(REBASE, target, ReplayOptions())
    finalize(target, FinalizeOptions(out=app_db))
    ours = json.loads(runner.invoke(cli, ["parked", str(app_db), "--json"]).stdout)
    theirs = json.loads(runner.invoke(cli, ["parked", str(target), "--json"]).stdout)
    assert ours["parked"] == theirs["parked"] == 29 and ours["events"] == theirs["events"]
    assert (ours["target"], ours["sidecar"]) == (str(app_db), str(sidecar_path(app_db)))
    listed = runner.invoke(cli, ["parked", str(app_db), "--kind", "integrity"])
    assert listed.exit_code == 0 and listed.stdout.startswith("29 parked (16 held, 13 integrity)")
    for command in ("replay-parked", "resume", "rollback"):  # writers point at the target
        refused = runner.invoke(cli, [command, str(app_db)])
        assert refused.exit_code == 1 and refused.stderr == (
            f"Error: {app_db}: is an app database handed over by finalize, not a projector "
            f"target; {command} the target it came from ({target.resolve()})\n"
        ), command
    for args, doing in (  # they said "not a projector target" and no more
        (["replay", str(REBASE), str(app_db)], "replay into"),
        (["backups", str(app_db)], "list the backups of"),
    ):
        refused = runner.invoke(cli, args)
        assert refused.exit_code == 1 and refused.stderr == (
            f"Error: {app_db}: is an app database handed over by finalize, not a projector "
            f"target; {doing} the target it came from ({target.resolve()})\n"
        ), args


def test_finalize_says_what_it_verified_and_verify_points_from_the_app_db_to_the_target(
    migrated, tmp_path, runner
):
    """finalize's checks begin with the verification it ran first (with --against, the
    LiveStore rows compared); `verify APP_DB` and `finalize APP_DB` name the target to
    verify or finalize instead."""
    app_db = tmp_path / "app.db"
    done = finalize(migrated, FinalizeOptions(out=app_db, against=SMALL_STATE))
    assert done.checks[0].startswith(f"verified {migrated.name} (integrity_check, ")
    assert "75 LiveStore rows compared" in done.checks[0] and "0 unexplained" in done.checks[0]
    again = finalize(migrated, FinalizeOptions(out=app_db))
    assert "no --against: not compared with LiveStore's state" in again.checks[0]
    result = runner.invoke(cli, ["verify", str(app_db)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {app_db}: is an app database handed over by finalize, not a projector "
        f"target; verify the target it came from ({migrated})\n"
    )
    result = runner.invoke(cli, ["finalize", str(app_db), "--out", str(tmp_path / "b.db")])
    assert result.exit_code == 1 and not (tmp_path / "b.db").exists()
    assert result.stderr == (
        f"Error: {app_db}: is an app database handed over by finalize, not a projector "
        f"target; finalize the target it came from ({migrated})\n"
    )


def test_the_sidecar_is_never_written_to_as_a_target(migrated, tmp_path):
    """resume, replay and rollback refuse the sidecar with one line: catch up into TARGET."""
    app_db = tmp_path / "app.db"
    finalize(migrated, FinalizeOptions(out=app_db))
    sidecar = sidecar_path(app_db)
    before = hashlib.sha256(sidecar.read_bytes()).hexdigest()
    with pytest.raises(TargetError, match="sidecar"):
        resume(sidecar, ReplayOptions(on_invalid=None))
    with pytest.raises(TargetError, match="sidecar"):
        replay(SMALL, sidecar, ReplayOptions())
    from projector.runs import rollback

    with pytest.raises(TargetError, match="sidecar"):
        rollback(sidecar)
    assert hashlib.sha256(sidecar.read_bytes()).hexdigest() == before


def test_a_target_that_does_not_verify_is_not_handed_over(migrated, tmp_path):
    """A target whose derived table drifted (or any failed verify check) is refused with one
    line naming the check; no APP_DB is written."""
    conn = sqlite3.connect(migrated)
    conn.execute(
        "DELETE FROM memory_tags WHERE (memoryId, tag) = (SELECT memoryId, tag FROM memory_tags)"
    )
    conn.commit()
    conn.close()
    with pytest.raises(HandoffError, match=r"does not verify \(memory_tags: 1 element"):
        finalize(migrated, FinalizeOptions(out=tmp_path / "app.db"))
    assert not (tmp_path / "app.db").exists()


def test_a_target_whose_source_is_retired_is_handed_over_with_no_source(
    small_copy, tmp_path, runner
):
    """The old store is gone: finalize refuses as verify does, pointing at --no-source,
    which finalize takes too; an interrupted migration is refused either way."""
    target, app_db = tmp_path / "target.db", tmp_path / "app.db"
    replay(small_copy, target, ReplayOptions())
    shutil.rmtree(small_copy)
    refused = runner.invoke(cli, ["finalize", str(target), "--out", str(app_db)])
    assert refused.exit_code == 1 and "`--no-source` skips this check" in refused.stderr
    assert not app_db.exists()
    done = runner.invoke(cli, ["finalize", str(target), "--out", str(app_db), "--no-source"])
    assert done.exit_code == 0, done.output
    assert "accounting, source skipped (--no-source); no --against" in done.stdout
    assert app_db.is_file()
    stopped = tmp_path / "stopped.db"
    with pytest.raises(Interrupted):
        replay(SMALL, stopped, ReplayOptions(batch_size=50, should_stop=lambda: True))
    with pytest.raises(HandoffError, match=r"its last run did not finish"):
        finalize(stopped, FinalizeOptions(out=tmp_path / "app2.db", source=False))
    with closing(sqlite3.connect(stopped)) as conn, conn:  # what kill -9 mid-run leaves
        conn.execute("UPDATE _projector_migration SET state = 'running'")
    # Under finalize's own lock, that run is not "another process writing": it was killed.
    with pytest.raises(HandoffError, match=r"state interrupted\): its last run did not"):
        finalize(stopped, FinalizeOptions(out=tmp_path / "app2.db", source=False))
    folder = tmp_path / "a folder"
    folder.mkdir()
    with pytest.raises(HandoffError, match=r"is a directory; APP_DB is a database file"):
        finalize(target, FinalizeOptions(out=folder, source=False))


def test_an_app_database_handed_over_from_another_migration_is_not_replaced(migrated, tmp_path):
    """A mistyped TARGET (another store's migration, or another app's, even one made at
    the same path) does not silently swap the app's data: finalize refuses an APP_DB
    another migration handed over, unless --force. The same migration, moved or renamed,
    still replaces it; the app's own writes are named too."""
    app_db = tmp_path / "app.db"
    finalize(migrated, FinalizeOptions(out=app_db))
    moved = tmp_path / "moved.db"
    shutil.move(migrated, moved)
    assert finalize(moved, FinalizeOptions(out=app_db)).replaced  # the same migration
    before = app_db.read_bytes()
    ours = migration_identity(moved)
    moved.unlink()  # a new migration at the same path: another app's
    replay(TODOMVC, moved, ReplayOptions())
    theirs = migration_identity(moved)
    with pytest.raises(HandoffError) as refused:
        finalize(moved, FinalizeOptions(out=app_db))
    was = f"catalog ai-desk, store {ours[3]}, begun {ours[1]}, id {ours[0][:8]}"
    now = f"catalog todomvc, store {theirs[3]}, begun {theirs[1]}, id {theirs[0][:8]}"
    assert str(refused.value) == (
        f"{app_db}: was handed over from another migration ({was}; {moved.resolve()}), not "
        f"{moved}'s ({now}): replacing it would swap the app's data for another "
        "migration's; refusing (--force replaces it)"
    )
    assert app_db.read_bytes() == before
    with closing(sqlite3.connect(app_db)) as conn, conn:  # the app writes
        conn.execute("UPDATE personas SET name = 'mine' WHERE rowid = 1")
    with pytest.raises(HandoffError, match=r"another migration's; and it has changed since"):
        finalize(moved, FinalizeOptions(out=app_db))
    forced = finalize(moved, FinalizeOptions(out=app_db, force=True))
    assert forced.catalog == "todomvc" and forced.discarded == [
        f"another migration's hand-off ({was})",
        f"the app's writes since {forced_since(app_db, forced)}",
    ]


def forced_since(app_db: Path, result: Any) -> str:
    """When the hand-off before RESULT's was made (the sidecar's second-to-last record)."""
    with closing(sqlite3.connect(sidecar_path(app_db))) as conn:
        rows = conn.execute("SELECT finalizedAt FROM _projector_handoff ORDER BY id").fetchall()
    return str(rows[-2][0])


def test_a_catch_up_from_a_source_at_another_path_is_the_same_migration(tmp_path):
    """Each day's sync export has its own name, and a store may move (resume --source):
    the target caught up from there is the same migration, whose hand-off finalize
    replaces without --force, keeping its Drizzle record; two stores' migrations, begun
    at once, are not one."""
    store = tmp_path / "store"
    shutil.copytree(SMALL, store)
    restore = _cut_to_e120(store, tmp_path)
    (tmp_path / "exports").mkdir()
    day1, day2 = tmp_path / "exports" / "day1.json", tmp_path / "exports" / "day2.json"
    runner = CliRunner()
    assert runner.invoke(cli, ["export", str(store), str(day1)]).exit_code == 0
    target, app_db = tmp_path / "t.db", tmp_path / "app.db"
    replay(day1, target, ReplayOptions())
    finalize(target, FinalizeOptions(out=app_db, drizzle=tmp_path / "drizzle"))
    restore()
    assert runner.invoke(cli, ["export", str(store), str(day2)]).exit_code == 0
    replay(day2, target, ReplayOptions())
    again = finalize(target, FinalizeOptions(out=app_db))
    assert again.replaced and not again.discarded and again.drizzle is not None
    assert again.drizzle["migration"] == "(kept from the last hand-off)"
    other = tmp_path / "other.db"
    replay(day2, other, ReplayOptions())  # the same store, another migration
    with pytest.raises(HandoffError, match="was handed over from another migration"):
        finalize(other, FinalizeOptions(out=app_db))


def test_copies_of_a_target_made_before_the_migration_id_stay_one_migration(small_copy, tmp_path):
    """A target from before the migration id, and a copy of it (a backup a rollback
    restores, or the user's own): once upgraded by a catch-up each, neither holds a
    random id of its own, so they are still one migration and replace each other's
    hand-off without --force."""
    restore = _cut_to_e120(small_copy, tmp_path)
    target, app_db = tmp_path / "t.db", tmp_path / "app.db"
    replay(small_copy, target, ReplayOptions())
    with closing(sqlite3.connect(target)) as conn, conn:  # as a target made before m008
        conn.execute("ALTER TABLE _projector_migration DROP COLUMN migrationId")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm008_migration_id'")
    copy = tmp_path / "copy.db"
    shutil.copy(target, copy)
    restore()
    replay(small_copy, target, ReplayOptions())  # each is upgraded as it is caught up
    replay(small_copy, copy, ReplayOptions())
    assert migration_identity(target) == migration_identity(copy)
    assert migration_identity(target)[0] is None
    finalize(target, FinalizeOptions(out=app_db))
    assert finalize(copy, FinalizeOptions(out=app_db)).replaced


def test_force_over_another_migrations_hand_off_does_not_keep_its_drizzle_record(
    migrated, tmp_path, runner
):
    """--force over another app's hand-off: the Drizzle migration recorded as applied is
    not carried over (the new app's migrate() would skip its own, or run on a wrong one),
    and the output says what was discarded."""
    todo = tmp_path / "todo.db"
    replay(TODOMVC, todo, ReplayOptions())
    app_db = tmp_path / "app.db"
    finalize(todo, FinalizeOptions(out=app_db, drizzle=tmp_path / "drizzle-todo"))
    forced = runner.invoke(cli, ["finalize", str(migrated), "--out", str(app_db), "--force"])
    assert forced.exit_code == 0, forced.output
    assert "  discarded (--force): another migration's hand-off (catalog todomvc," in forced.stdout
    assert (
        f"  discarded (--force): the Drizzle migration it recorded as applied "
        f"({tmp_path / 'drizzle-todo' / 'migrations'}): --drizzle DIR records this app's"
    ) in forced.stdout
    assert "drizzle:" not in forced.stdout
    with closing(sqlite3.connect(app_db)) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "__drizzle_migrations" not in names and "memories" in names


def _cut_to_e120(store: Path, tmp_path: Path):
    """STORE's eventlog cut after e120, as the old app had it; returns what puts the
    whole log back (the app wrote on)."""
    eventlog = store / "eventlog@6.db"
    full = tmp_path / "full.db"
    shutil.copy(eventlog, full)
    with closing(sqlite3.connect(eventlog)) as conn, conn:
        conn.execute("DELETE FROM eventlog WHERE seqNumGlobal > 120")
    return lambda: shutil.copy(full, eventlog)


def test_catch_up_then_finalize_again(small_copy, tmp_path):
    """The old app keeps writing: catch up into TARGET and finalize again; APP_DB is
    replaced as long as the app has not written to it."""
    restore = _cut_to_e120(small_copy, tmp_path)
    target, app_db = tmp_path / "target.db", tmp_path / "app.db"
    replay(small_copy, target, ReplayOptions())
    first = finalize(target, FinalizeOptions(out=app_db))
    restore()
    replay(small_copy, target, ReplayOptions())
    second = finalize(target, FinalizeOptions(out=app_db))
    assert (first.position, second.position) == (first.position, 200) and first.position < 200
    assert second.replaced and second.target_digest != first.target_digest
    conn = sqlite3.connect(sidecar_path(app_db))
    assert [r[0] for r in conn.execute("SELECT position FROM _projector_handoff ORDER BY id")] == [
        first.position,
        200,
    ]
    conn.close()


def test_status_of_the_app_database_says_where_the_target_went_since(small_copy, tmp_path, runner):
    """`status APP_DB` shows the migration as handed over; when the target has moved
    since, it says where it is now, and a backup that a rollback used up is said to be
    so, not "deleted by backups --prune"."""
    restore = _cut_to_e120(small_copy, tmp_path)
    target, app_db = tmp_path / "target.db", tmp_path / "app.db"
    replay(small_copy, target, ReplayOptions())
    restore()
    replay(small_copy, target, ReplayOptions())
    finalize(target, FinalizeOptions(out=app_db))

    def status() -> tuple[str, dict[str, Any]]:
        shown = runner.invoke(cli, ["status", str(app_db)])
        assert shown.exit_code == 0, shown.output
        return shown.stdout, json.loads(
            runner.invoke(cli, ["status", str(app_db), "--json"]).stdout
        )

    text, info = status()
    assert info["targetSince"] is None and "now" not in text and "missing" not in text
    assert runner.invoke(cli, ["rollback", str(target)]).exit_code == 0
    text, info = status()
    below = info["targetSince"]["position"]
    assert info["targetSince"] == {"position": below, "state": "rolled back", "rolledBack": True}
    assert below < 200
    # Named where it was, as the target's status names it (it showed a bare name here).
    (used,) = [line for line in text.splitlines() if line.startswith("backup:")]
    assert used.startswith(f"backup:     {tmp_path}/target.db.run2-")
    assert "(missing: `projector rollback` of the target used it since the hand-off)" in text
    assert f"rolled back since the hand-off: the target is at #{below} now (rolled back)" in text
    replay(small_copy, target, ReplayOptions())  # caught up again: a new run 2
    text, info = status()
    assert info["targetSince"] == {"position": 200, "state": "complete", "rolledBack": True}
    target.unlink()
    assert status()[1]["targetSince"] is None  # the target is gone: nothing to say of it


def test_an_older_copy_of_the_target_does_not_take_the_app_back(small_copy, tmp_path):
    """The same migration at an earlier position (a copy kept from before a catch-up, or a
    target rolled back since) does not replace a later hand-off unless --force, which says
    which events it took back."""
    restore = _cut_to_e120(small_copy, tmp_path)
    target, app_db = tmp_path / "target.db", tmp_path / "app.db"
    replay(small_copy, target, ReplayOptions())
    older = tmp_path / "older.db"
    shutil.copy(target, older)
    restore()
    replay(small_copy, target, ReplayOptions())
    finalize(target, FinalizeOptions(out=app_db))
    position = json.loads(CliRunner().invoke(cli, ["status", str(older), "--json"]).stdout)[
        "position"
    ]
    with pytest.raises(HandoffError) as refused:  # (the source re-read says it is behind)
        finalize(older, FinalizeOptions(out=app_db, source=False))
    assert str(refused.value) == (
        f"{app_db}: holds the migration up to #200 and {older} is at #{position:,} (an older "
        "copy, or rolled back since): replacing it would take the app's data back; refusing "
        "(--force replaces it)"
    )
    forced = finalize(older, FinalizeOptions(out=app_db, force=True, source=False))
    assert forced.position == position
    assert forced.discarded == [f"events #{position + 1:,} to #200"]


def test_a_catch_up_finalize_keeps_the_drizzle_migration_recorded(small_copy, tmp_path):
    """Finalized with --drizzle, then caught up and finalized again without it: the new
    app database still records the 0000 migration as applied (else the app's migrate()
    would run it again over the existing tables)."""
    restore = _cut_to_e120(small_copy, tmp_path)
    target, app_db, drizzle_dir = tmp_path / "target.db", tmp_path / "app.db", tmp_path / "db"
    replay(small_copy, target, ReplayOptions())
    finalize(target, FinalizeOptions(out=app_db, drizzle=drizzle_dir))
    with closing(sqlite3.connect(app_db)) as conn:
        recorded = conn.execute("SELECT hash, created_at FROM __drizzle_migrations").fetchall()
    restore()
    replay(small_copy, target, ReplayOptions())
    second = finalize(target, FinalizeOptions(out=app_db))
    assert second.replaced and second.drizzle is not None
    with closing(sqlite3.connect(app_db)) as conn:
        assert conn.execute("SELECT hash, created_at FROM __drizzle_migrations").fetchall() == (
            recorded
        )
    assert len(recorded) == 1


def test_an_app_database_the_app_has_written_to_is_not_replaced(migrated, tmp_path, runner):
    """Once the app has changed APP_DB, finalize refuses to overwrite it (its data would be
    lost) unless --force; a file finalize did not write is refused the same way."""
    app_db = tmp_path / "app.db"
    finalize(migrated, FinalizeOptions(out=app_db))
    recorded = content_digest(app_db)
    conn = sqlite3.connect(app_db)
    conn.execute("UPDATE personas SET name = 'renamed in the app' WHERE rowid = 1")
    conn.commit()
    conn.close()
    assert content_digest(app_db) != recorded
    result = runner.invoke(cli, ["finalize", str(migrated), "--out", str(app_db)])
    assert result.exit_code == 1
    assert "has changed since it was handed over" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert runner.invoke(cli, ["status", str(app_db), "--json"]).exit_code == 0
    forced = runner.invoke(cli, ["finalize", str(migrated), "--out", str(app_db), "--force"])
    assert forced.exit_code == 0, forced.stderr
    assert content_digest(app_db) == recorded
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(HandoffError, match="not handed over by `projector finalize`"):
        finalize(migrated, FinalizeOptions(out=other))
    with pytest.raises(HandoffError, match="is the target itself"):
        finalize(migrated, FinalizeOptions(out=migrated))


def test_derived_tables_follow_the_apps_writes(tmp_path):
    """The triggers keep memory_tags equal to memories.tags under inserts, updates of the
    tags or of the key, and deletes, as the projector keeps it while replaying."""
    target = tmp_path / "target.db"
    replay(REBASE, target, ReplayOptions())
    app_db = tmp_path / "app.db"
    result = finalize(target, FinalizeOptions(out=app_db, against=REBASE_STATE))
    assert result.parked == 29  # 13 rows LiveStore kept that would break integrity, 16 held
    conn = sqlite3.connect(app_db)
    conn.execute("PRAGMA foreign_keys = ON")
    persona = conn.execute("SELECT id FROM personas LIMIT 1").fetchone()[0]
    conn.execute(
        "INSERT INTO memories (id, personaId, kind, tags, createdAt, updatedAt) "
        "VALUES ('m', ?, 'fact', '[\"a\",\"b\",\"a\"]', 'x', 'x')",
        (persona,),
    )

    def tags(key: str) -> list[str]:
        rows = conn.execute("SELECT tag FROM memory_tags WHERE memoryId = ? ORDER BY tag", (key,))
        return [r[0] for r in rows]

    assert tags("m") == ["a", "b"]
    conn.execute("UPDATE memories SET tags = '[\"b\",\"c\"]' WHERE id = 'm'")
    assert tags("m") == ["b", "c"]
    conn.execute("UPDATE memories SET id = 'm2' WHERE id = 'm'")
    assert (tags("m"), tags("m2")) == ([], ["b", "c"])
    conn.execute("UPDATE memories SET content = 'no tag change' WHERE id = 'm2'")
    assert tags("m2") == ["b", "c"]
    conn.execute("DELETE FROM memories WHERE id = 'm2'")
    assert tags("m2") == []
    # Elements as the projector stores them: true, 1 and '1' are one TEXT row; a null
    # fails the write (the projector parks such an event), where it was dropped silently.
    conn.execute(
        "INSERT INTO memories (id, personaId, kind, tags, createdAt, updatedAt) "
        "VALUES ('k', ?, 'fact', '[true, 1, \"1\", 2.5]', 'x', 'x')",
        (persona,),
    )
    assert tags("k") == ["1", "2.5"]
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL constraint failed: memory_tags.tag"):
        conn.execute(
            "INSERT INTO memories (id, personaId, kind, tags, createdAt, updatedAt) "
            "VALUES ('n', ?, 'fact', '[\"a\", null]', 'x', 'x')",
            (persona,),
        )
    conn.commit()
    conn.close()
    stale = sqlite3.connect(app_db).execute(
        "SELECT COUNT(*) FROM (SELECT m.id, CAST(j.value AS TEXT) FROM memories m, "
        "json_each(m.tags) j "
        "EXCEPT SELECT memoryId, tag FROM memory_tags)"
    )
    assert stale.fetchone()[0] == 0


def test_the_sidecar_records_the_drizzle_folder_from_anywhere(migrated, tmp_path, monkeypatch):
    """--drizzle given relative to the working folder is recorded absolute, as TARGET and
    APP_DB are: status read from another folder, or a catch-up that keeps the record,
    names the folder that holds the migration."""
    (tmp_path / "app").mkdir()
    monkeypatch.chdir(tmp_path / "app")
    finalize(migrated, FinalizeOptions(out=Path("app.db"), drizzle=Path("db")))
    record = last_handoff(sidecar_path(tmp_path / "app" / "app.db"))
    assert record is not None
    assert record["drizzleMigrations"] == str(tmp_path / "app" / "db" / "migrations")
    assert Path(record["appDb"]).is_absolute() and Path(record["target"]).is_absolute()


def test_drizzle_migration_is_recorded_as_applied(migrated, tmp_path):
    """--drizzle writes the Drizzle files when the folder has none and records its 0000
    migration in __drizzle_migrations as drizzle-orm's migrator does (sha256 of the file,
    created_at = the journal's when); a folder of another catalog is refused."""
    app_db = tmp_path / "app.db"
    result = finalize(migrated, FinalizeOptions(out=app_db, drizzle=tmp_path / "db"))
    migration = tmp_path / "db" / "migrations" / "0000_ai_desk_from_livestore.sql"
    journal = json.loads((tmp_path / "db" / "migrations" / "meta" / "_journal.json").read_text())
    conn = sqlite3.connect(app_db)
    rows = conn.execute(f'SELECT id, hash, created_at FROM "{MIGRATIONS_TABLE}"').fetchall()
    conn.close()
    assert rows == [
        (None, hashlib.sha256(migration.read_bytes()).hexdigest(), journal["entries"][0]["when"])
    ]
    assert result.drizzle is not None and result.drizzle["hash"] == rows[0][1]
    from events.catalog import Catalog
    from projector.drizzle import write_drizzle

    (tmp_path / "app-owned").mkdir()
    (tmp_path / "app-owned" / "schema.ts").write_text("// the app's own\n")
    with pytest.raises(HandoffError, match="no Drizzle migration journal"):
        finalize(
            migrated, FinalizeOptions(out=tmp_path / "app3.db", drizzle=tmp_path / "app-owned")
        )
    assert (tmp_path / "app-owned" / "schema.ts").read_text() == "// the app's own\n"
    write_drizzle(Catalog.bundled("todomvc"), tmp_path / "todos")
    with pytest.raises(HandoffError, match="is not the ai-desk catalog's first migration"):
        finalize(migrated, FinalizeOptions(out=tmp_path / "app2.db", drizzle=tmp_path / "todos"))


def test_finalize_works_for_any_catalog(tmp_path, runner):
    """TodoMVC (declarations only) hands over the same way: its tables, its view, its
    user_version; `projector drizzle TARGET` writes its Drizzle files."""
    target = tmp_path / "todos.db"
    replay(TODOMVC, target, ReplayOptions())
    result = runner.invoke(
        cli,
        [
            "finalize",
            str(target),
            "--against",
            str(TODOMVC_STATE),
            "--drizzle",
            str(tmp_path / "db"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    app_db = tmp_path / "todos.app.db"
    assert "todomvc; journal mode delete, user_version 1" in result.stdout
    assert _names(app_db, "table") == {"todos", "uiState", MIGRATIONS_TABLE}
    conn = sqlite3.connect(app_db)
    visible = conn.execute("SELECT COUNT(*) FROM visible_todos").fetchone()[0]
    assert (
        visible == conn.execute("SELECT COUNT(*) FROM todos WHERE deletedAt IS NULL").fetchone()[0]
    )
    conn.close()
    schema_ts = (tmp_path / "db" / "schema.ts").read_text()
    assert "integer(\"deletedAt\", { mode: 'timestamp_ms' })" in schema_ts
    assert runner.invoke(cli, ["drizzle", str(target), str(tmp_path / "db2")]).exit_code == 0
    assert (tmp_path / "db2" / "schema.ts").read_text() == schema_ts


def test_finalize_errors_are_one_line(tmp_path, runner):
    """Not a target, or a journal mode SQLite cannot store in the file: one line, exit 1/2."""
    missing = runner.invoke(cli, ["finalize", str(tmp_path / "nope.db")])
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: ")
    assert len(missing.stderr.strip().splitlines()) == 1
    bad_mode = runner.invoke(cli, ["finalize", str(tmp_path / "x.db"), "--journal-mode", "off"])
    assert bad_mode.exit_code == 2


def test_what_is_not_an_app_database_is_never_overwritten_even_with_force(tmp_path):
    """--out naming the migration's source or anything in its store folder, a file named as
    LiveStore names its own, a sidecar or a projector target: refused with --force too,
    and nothing is written."""
    store = tmp_path / "store" / "ai-desk"
    shutil.copytree(SMALL, store)
    target = tmp_path / "t.db"
    replay(store, target, ReplayOptions())
    other = tmp_path / "other.db"
    replay(store, other, ReplayOptions())
    before = {p: p.read_bytes() for p in [*store.iterdir(), other]}
    for out, why in [
        (store / "eventlog@6.db", "LiveStore's own files"),
        (store / "app.db", "folder of the migration's source"),
        (tmp_path / "elsewhere" / "state-11367593325@6.db", "LiveStore's own files"),
        (tmp_path / "x.db.projector.db", "sidecar"),
        (other, "is a projector target"),
    ]:
        with pytest.raises(HandoffError, match=why):
            finalize(target, FinalizeOptions(out=out, force=True))
    assert {p: p.read_bytes() for p in [*store.iterdir(), other]} == before
    assert not (tmp_path / "elsewhere").exists()


def test_finalize_creates_the_app_databases_folder_and_leaves_nothing_beside_target(
    migrated, tmp_path
):
    """--out in a folder that does not exist yet: created, as replay creates its target's;
    TARGET is only read, and no -wal/-shm is left beside it."""
    before = sorted(p.name for p in migrated.parent.iterdir())
    out = tmp_path / "new" / "deeper" / "app.db"
    finalize(migrated, FinalizeOptions(out=out))
    assert sorted(p.name for p in out.parent.iterdir()) == ["app.db", "app.db.projector.db"]
    assert sorted(p.name for p in migrated.parent.iterdir()) == sorted([*before, "new"])


def test_a_hand_off_that_fails_leaves_no_folder_it_made(migrated, tmp_path):
    """A first hand-off refused after APP_DB's folders were made (a --drizzle folder with
    a schema.ts but no migration journal) removes them again: nothing was handed over."""
    drizzle = tmp_path / "drizzle"
    drizzle.mkdir()
    (drizzle / "schema.ts").write_text("// hand-written\n", "utf-8")
    out = tmp_path / "new" / "deeper" / "app.db"
    with pytest.raises(HandoffError, match="no Drizzle migration journal"):
        finalize(migrated, FinalizeOptions(out=out, drizzle=drizzle))
    assert not (tmp_path / "new").exists()
    finalize(migrated, FinalizeOptions(out=out))
    assert out.exists()


def test_a_target_on_a_read_only_file_system_is_handed_over(tmp_path):
    """TARGET is only read: finalize works when it sits on a read-only mount (no lock
    file can be created there, and no projector can write it)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "t.db"
    replay(SMALL, target, ReplayOptions())
    with read_only_mount(folder):
        result = finalize(target, FinalizeOptions(out=tmp_path / "app" / "app.db"))
    assert result.rows and (tmp_path / "app" / "app.db").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["t.db"]


def test_an_app_database_that_cannot_be_written_is_one_line_before_anything(tmp_path):
    """--out on a read-only mount: one line naming the folder, and no Drizzle file or
    temporary file is written first."""
    target = tmp_path / "t.db"
    replay(SMALL, target, ReplayOptions())
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only_mount(folder):
        with pytest.raises(HandoffError, match="cannot write in .*read-only file system"):
            finalize(target, FinalizeOptions(out=folder / "app.db", drizzle=tmp_path / "dz"))
    assert not (tmp_path / "dz").exists() and list(folder.iterdir()) == []


def test_an_app_database_under_a_file_is_one_line_naming_the_file(migrated, tmp_path):
    """--out inside a path whose folder is a file: said so (as replay says it of a
    target), not "permission denied", and nothing is written."""
    note = tmp_path / "notes.txt"
    note.write_text("mine")
    with pytest.raises(HandoffError, match=f"^{note}/app.db: {note} is not a directory$"):
        finalize(migrated, FinalizeOptions(out=note / "app.db", drizzle=tmp_path / "dz"))
    assert note.read_text() == "mine" and not (tmp_path / "dz").exists()
