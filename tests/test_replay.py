"""Replay end to end: equal to LiveStore's state, deterministic, resumable, reversible."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from events.catalog import Catalog
from projector.cli import cli
from projector.digest import digest
from projector.errors import Busy, CheckpointMismatch, Interrupted, ReplayError, TargetError
from projector.handlers import entity_list
from projector.lock import writer_lock
from projector.replay import ReplayOptions, replay, replay_parked, resume
from projector.runs import parked, rollback, status
from projector.verify import verify
from tests.conftest import (
    FIXTURES,
    REBASE,
    REBASE_STATE,
    ROOT,
    SHARED,
    SMALL,
    SMALL_STATE,
    tree_sha256,
)


def overall(path: Path) -> str:
    return digest(path)["overall"]


def stop_after(batches: int):
    """A should_stop that asks the run to stop after BATCHES batches."""
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= batches

    return should_stop


def hold_back_tail(store: Path, after_global: int):
    """Remove the log's events past AFTER_GLOBAL; return a function that appends them again,
    as the old app would have written them since."""
    conn = sqlite3.connect(store / "eventlog@6.db")
    tail = conn.execute("SELECT * FROM eventlog WHERE seqNumGlobal > ?", (after_global,)).fetchall()
    conn.execute("DELETE FROM eventlog WHERE seqNumGlobal > ?", (after_global,))
    conn.commit()

    def append() -> int:
        conn.executemany(f"INSERT INTO eventlog VALUES ({','.join('?' * 12)})", tail)
        conn.commit()
        conn.close()
        return len(tail)

    return append


@pytest.fixture(scope="module")
def small_digest(tmp_path_factory) -> str:
    target = tmp_path_factory.mktemp("baseline") / "small.db"
    replay(SMALL, target)
    return overall(target)


def test_small_equals_livestores_state_db(target: Path):
    """Every LiveStore table row is reproduced exactly; nothing is parked."""
    result = replay(SMALL, target)
    assert (result.read, result.applied, result.parked_total) == (200, 200, 0)
    report = verify(target, SMALL_STATE)
    assert report.ok and report.differences == []


def test_synced_rebase_differences_are_all_explained_by_parked_events(target: Path):
    """Orphans of LiveStore's lost events are parked, and explain every difference."""
    result = replay(REBASE, target)
    assert result.accounted and result.parked["integrity"] > 0
    report = verify(target, REBASE_STATE)
    assert report.ok and report.differences and not report.unexplained
    assert {d.table for d in report.differences} <= {"memories", "drafts"}


@pytest.mark.parametrize("batch_size", [1, 7, 5000])
def test_same_log_gives_the_same_digest_whatever_the_batch_size(
    tmp_path: Path, batch_size: int, small_digest: str
):
    target = tmp_path / "t.db"
    replay(SMALL, target, ReplayOptions(batch_size=batch_size))
    assert overall(target) == small_digest


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "large").exists(), reason="shared fixtures not present")
def test_two_replays_of_large_give_the_same_digest(tmp_path: Path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    replay(SHARED / "large" / "ai-desk", a)
    replay(SHARED / "large" / "ai-desk", b, ReplayOptions(batch_size=3333))
    assert overall(a) == overall(b)
    assert verify(a, SHARED / "large" / "ai-desk" / "state-11367593325@6.db").ok


def test_interrupted_run_resumes_to_the_same_digest(target: Path, small_digest: str):
    with pytest.raises(Interrupted):
        replay(SMALL, target, ReplayOptions(batch_size=30, should_stop=stop_after(2)))
    info = status(target)
    assert (info["state"], info["position"]) == ("interrupted", 60)
    result = resume(target)
    assert (result.from_position, result.read, result.position) == (60, 140, 200)
    assert overall(target) == small_digest
    assert verify(target, SMALL_STATE).ok


def test_catch_up_applies_only_events_appended_since(small_copy: Path, target: Path):
    """The old app kept running: a second replay applies just the new events."""
    append = hold_back_tail(small_copy, 150)
    first = replay(small_copy, target)
    appended = append()
    second = replay(small_copy, target)
    assert second.from_position == first.position and second.read == appended
    assert first.read + second.read == 200
    assert verify(target, SMALL_STATE).ok
    third = replay(small_copy, target)
    assert third.read == 0


def test_a_changed_history_is_refused(small_copy: Path, target: Path):
    replay(small_copy, target)
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    conn.execute(
        "UPDATE eventlog SET argsJson = '{}' WHERE seqNumGlobal = 100 AND seqNumClient = 0"
    )
    conn.commit()
    conn.close()
    with pytest.raises(CheckpointMismatch, match="differ from those migrated") as refused:
        replay(small_copy, target)
    # The way on, as a command to paste: a new target beside it, under a free name.
    (target.parent / f"{target.stem}-2{target.suffix}").touch()
    with pytest.raises(CheckpointMismatch) as again:
        replay(small_copy, target)
    fresh = target.parent / f"{target.stem}-3{target.suffix}"
    # With the migration's catalog and policies: a new target records none yet.
    assert str(again.value).endswith(
        f"migrate it into a new target: `projector replay {small_copy / 'eventlog@6.db'} {fresh} "
        "--catalog ai-desk`"
    )
    assert f"-2{target.suffix} --catalog ai-desk`" in str(refused.value)


def test_another_store_is_refused(target: Path):
    """Another store's log (another history up to the checkpoint) is refused."""
    replay(SMALL, target)
    with pytest.raises(CheckpointMismatch, match="another store"):
        replay(REBASE, target)


def test_a_shorter_source_is_refused(small_copy: Path, target: Path):
    replay(small_copy, target)
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    conn.execute("DELETE FROM eventlog WHERE seqNumGlobal > 100")
    conn.commit()
    conn.close()
    with pytest.raises(CheckpointMismatch, match="checkpoint is at"):
        resume(target)


def test_rollback_after_a_completed_catch_up_restores_the_previous_digest(
    small_copy: Path, target: Path
):
    append = hold_back_tail(small_copy, 120)
    replay(small_copy, target)
    before = overall(target)
    append()
    result = replay(small_copy, target)
    assert result.backup and Path(result.backup).exists()
    assert overall(target) != before
    info = rollback(target)
    assert info["action"] == "restored"
    assert overall(target) == before
    assert status(target)["state"] == "rolled back"
    again = rollback(target)
    assert again["action"] == "removed" and not target.exists()


def test_rolling_back_the_run_that_made_a_target_in_an_empty_file_empties_it(tmp_path: Path):
    """An empty file named as TARGET (SQLite takes it for an empty database): rolling back
    the run that made the target there leaves the file empty, in place, as it was (it
    removed the file)."""
    target = tmp_path / "empty.db"
    target.touch()
    inode = target.stat().st_ino
    replay(SMALL, target)
    info = rollback(target)
    assert info["action"] == "emptied" and info["message"] == (
        f"run 1 created the target in {target}, an empty file; rolled back by emptying it"
    )
    assert target.stat().st_size == 0 and target.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_rolling_back_a_killed_run_calls_it_interrupted_as_status_does(
    small_copy: Path, target: Path
):
    """A run killed outright stays recorded as running; status shows it interrupted, and
    so does rollback's message (it said "running")."""
    append = hold_back_tail(small_copy, 120)
    replay(small_copy, target)
    append()
    replay(small_copy, target)
    with closing(sqlite3.connect(target)) as conn, conn:  # what kill -9 mid-run leaves
        conn.execute("UPDATE _projector_runs SET state = 'running' WHERE run = 2")
        conn.execute("UPDATE _projector_migration SET state = 'running'")
    assert status(target)["state"] == "interrupted"
    assert rollback(target)["message"].startswith("run 2 (interrupted) rolled back from ")


def test_a_catch_up_replay_keeps_the_policies_the_migration_recorded(
    small_copy: Path, target: Path
):
    """`replay` without --on-invalid / --strict-keys catches up under the policies the
    migration recorded, as `resume` does (the same new events give the same tables
    whichever command catches up); a policy given on the command line replaces it."""
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    conn.execute(  # an excess key: refused under --strict-keys, dropped without it
        "UPDATE eventlog SET argsJson = json_insert(argsJson, '$.pinned', json('true')) "
        "WHERE seqNumGlobal = 122 AND seqNumClient = 0"
    )
    conn.commit()
    conn.close()
    append = hold_back_tail(small_copy, 120)
    runner = CliRunner()
    args = ["replay", str(small_copy), str(target)]
    assert runner.invoke(cli, [*args, "--strict-keys", "--on-invalid", "park"]).exit_code == 0
    twin = target.with_name("twin.db")
    shutil.copy(target, twin)
    append()
    assert runner.invoke(cli, args).exit_code == 0
    assert runner.invoke(cli, ["resume", str(twin)]).exit_code == 0
    assert overall(target) == overall(twin)
    parked = status(target)
    assert (parked["onInvalid"], parked["parkedByKind"].get("invalid")) == ("park", 1)
    with closing(sqlite3.connect(target)) as db:
        assert db.execute("SELECT strictKeys FROM _projector_migration").fetchone() == (1,)
    rollback(target)
    assert runner.invoke(cli, [*args, "--no-strict-keys", "--on-invalid", "fail"]).exit_code == 0
    assert status(target)["onInvalid"] == "fail" and status(target)["parked"] == 0
    # A run with nothing new to apply records the policies it is given too.
    assert runner.invoke(cli, [*args, "--strict-keys", "--on-invalid", "park"]).exit_code == 0
    assert (status(target)["onInvalid"], status(target)["strictKeys"]) == ("park", True)


def test_rollback_after_an_interrupted_run(small_copy: Path, target: Path):
    append = hold_back_tail(small_copy, 50)
    replay(small_copy, target)
    before = overall(target)
    append()
    with pytest.raises(Interrupted):
        replay(small_copy, target, ReplayOptions(batch_size=10, should_stop=stop_after(3)))
    assert overall(target) != before
    rollback(target)
    assert overall(target) == before


def test_a_second_writer_is_refused(target: Path):
    replay(SMALL, target)
    with writer_lock(target):
        with pytest.raises(Busy, match="another projector"):
            replay(SMALL, target)
        with pytest.raises(Busy):
            rollback(target)


def test_a_target_named_through_a_symbolic_link_is_the_target_itself(
    small_copy: Path, target: Path, tmp_path: Path
):
    """One writer lock whichever name is used, and a catch-up's backup and its rollback
    act on the database, not on the link (which stays a link in its own folder)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = elsewhere / "link.db"
    link.symlink_to(target)
    append = hold_back_tail(small_copy, 120)
    replay(small_copy, link)
    assert target.is_file() and link.is_symlink()
    before = overall(target)
    with writer_lock(target):
        with pytest.raises(Busy, match="another projector"):
            replay(small_copy, link)
        with pytest.raises(Busy):
            rollback(link)
    with writer_lock(link):
        with pytest.raises(Busy):
            resume(target)
    append()
    result = replay(small_copy, link)
    assert result.backup and Path(result.backup).parent == target.parent
    assert list(elsewhere.iterdir()) == [link]
    assert rollback(link)["action"] == "restored"
    assert link.is_symlink() and overall(target) == before
    assert status(link)["state"] == "rolled back"
    assert rollback(link)["action"] == "removed"
    assert not target.exists() and link.is_symlink()


def test_a_target_with_a_second_hard_link_is_refused_by_every_writer(
    small_copy: Path, target: Path, tmp_path: Path
):
    """Two names of one database would take two locks and keep two journals: every
    writing command refuses it, naming why, and leaves it as it was."""
    append = hold_back_tail(small_copy, 120)
    replay(small_copy, target)
    append()
    before = overall(target)
    other = tmp_path / "other-name.db"
    os.link(target, other)
    for write in (
        lambda: replay(small_copy, other),
        lambda: replay(small_copy, other, dry_run=True),  # refused where the run would be
        lambda: resume(target),
        lambda: rollback(other),
    ):
        with pytest.raises(TargetError, match="has 2 names \\(hard links\\)"):
            write()
    assert overall(target) == before and not list(tmp_path.glob("*.lock"))
    other.unlink()
    assert replay(small_copy, target).state == "complete"


def _pages_needed(tmp_path: Path, bulk_load: bool = False) -> int:
    full = tmp_path / "full.db"
    replay(SMALL, full, ReplayOptions(bulk_load=bulk_load))
    conn = sqlite3.connect(full)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    return int(pages)


def test_full_disk_fails_cleanly_and_resume_completes(
    tmp_path: Path, target: Path, small_digest: str
):
    """SQLITE_FULL mid-run: a one-line error, a consistent target, and resume finishes.
    (Indexes kept row by row, so the disk fills up between batches; tests/test_speed.py
    fills it while a first run builds its deferred indexes.)"""
    room = _pages_needed(tmp_path) - 1  # one page short of what the whole log needs
    with pytest.raises(ReplayError) as info:
        replay(SMALL, target, ReplayOptions(batch_size=20, max_page_count=room, bulk_load=False))
    message = str(info.value)
    assert "full" in message and "projector resume" in message and "\n" not in message
    report = verify(target)
    assert all(c.ok for c in report.checks if c.name not in ("source", "accounting"))
    position = status(target)["position"]
    assert 0 < position < 200 and position % 20 == 0
    # Consistent, but not finished: verify says so even without the source.
    (accounting,) = [c for c in report.checks if c.name == "accounting"]
    assert not accounting.ok and accounting.detail == (
        f"position #{position} = {position} applied + 0 parked (0 in _projector_parked; "
        f"tracking at #{position}; state interrupted): its last run did not finish "
        f"(`projector resume {target}` goes on)"
    )
    assert not verify(target, source=False).ok
    resume(target)
    assert overall(target) == small_digest


def test_fail_policy_commits_nothing_of_the_failing_batch(small_copy: Path, target: Path):
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    conn.execute("UPDATE eventlog SET name = 'v1.Teleported' WHERE seqNumGlobal = 45")
    conn.commit()
    conn.close()
    with pytest.raises(ReplayError, match=r"e45 \(#\d+, v1.Teleported\).*unknown event name"):
        replay(small_copy, target, ReplayOptions(batch_size=20))
    info = status(target)
    assert info["position"] % 20 == 0 and info["position"] < 52
    assert info["applied"] == info["position"]


def _corrupt(log: Path) -> dict[tuple[int, int], tuple[str, str]]:
    """Corrupt a handful of real events; return their originals by (global, client)."""
    conn = sqlite3.connect(log)
    picks = {(9, 0): "type", (17, 0): "unparseable", (33, 0): "unknown", (8, 1): "missing"}
    originals = {}
    for (g, c), how in picks.items():
        name, args = conn.execute(
            "SELECT name, argsJson FROM eventlog WHERE seqNumGlobal = ? AND seqNumClient = ?",
            (g, c),
        ).fetchone()
        originals[(g, c)] = (name, args)
        if how == "type":
            conn.execute(
                "UPDATE eventlog SET argsJson = json_set(argsJson, '$.importance', 'high') "
                "WHERE seqNumGlobal = ? AND seqNumClient = ?",
                (g, c),
            )
        elif how == "unparseable":
            conn.execute(
                "UPDATE eventlog SET argsJson = substr(argsJson, 1, 20) "
                "WHERE seqNumGlobal = ? AND seqNumClient = ?",
                (g, c),
            )
        elif how == "unknown":
            conn.execute(
                "UPDATE eventlog SET name = 'v3.PersonaCreated' "
                "WHERE seqNumGlobal = ? AND seqNumClient = ?",
                (g, c),
            )
        else:
            conn.execute(
                "UPDATE eventlog SET argsJson = json_remove(argsJson, '$.value') "
                "WHERE seqNumGlobal = ? AND seqNumClient = ?",
                (g, c),
            )
    conn.commit()
    conn.close()
    return originals


def test_park_reports_exactly_the_corrupted_events_and_repair_restores_livestores_state(
    small_copy: Path, target: Path, runner
):
    """Corrupt 4 real events, park them, repair them in place, replay-parked: equal to LiveStore."""
    originals = _corrupt(small_copy / "eventlog@6.db")
    result = replay(small_copy, target, ReplayOptions(on_invalid="park"))
    assert result.accounted
    conn = sqlite3.connect(target)
    problems = conn.execute(
        "SELECT seqNumGlobal, seqNumClient FROM _projector_parked WHERE kind != 'held'"
    ).fetchall()
    assert sorted(problems) == sorted(originals)
    assert verify(target).ok
    conn.close()
    # Nothing repaired yet: every event parks again as it was, and the run leaves nothing.
    before = tree_sha256(target)
    again = runner.invoke(cli, ["replay-parked", str(target)])
    assert again.exit_code == 0, again.output
    assert "the target is unchanged (no run recorded, no backup kept)" in again.stdout
    assert "backup:" not in again.stdout and tree_sha256(target) == before
    assert not list(target.parent.glob("*.bak"))
    conn = sqlite3.connect(target)
    for (g, c), (name, args) in originals.items():
        conn.execute(
            "UPDATE _projector_parked SET name = ?, argsJson = ? "
            "WHERE seqNumGlobal = ? AND seqNumClient = ?",
            (name, args, g, c),
        )
    conn.commit()
    conn.close()
    out = runner.invoke(cli, ["replay-parked", str(target), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["parked"] == 0 and data["reapplied"] == result.parked_total
    assert data["changed"] is True and Path(data["backup"]).is_file()
    with closing(sqlite3.connect(target)) as db:
        last = db.execute("SELECT command, applied, reapplied FROM _projector_runs ORDER BY run")
        assert last.fetchall()[-1] == ("replay-parked", data["reapplied"], data["reapplied"])
    report = verify(target, SMALL_STATE)
    assert report.ok and report.differences == [], [d.line() for d in report.differences]


def test_a_repaired_unknown_event_goes_in_only_where_no_later_event_was_applied(
    small_copy: Path, target: Path
):
    """An event no handler knows holds nothing back (LiveStore skips it, and the target
    equals LiveStore's state of that log). Once its name is repaired, replay-parked does
    not apply it after a later event that was applied without it and changed its row (a
    persona created after its own update): it stays parked, naming that event. Where no
    later applied event touched its rows (here: the log's last event), it goes in, and the
    target equals LiveStore's."""
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    where = "WHERE seqNumGlobal = 3 AND seqNumClient = 0"
    (name,) = conn.execute(f"SELECT name FROM eventlog {where}").fetchone()
    assert name == "v1.PersonaCreated"
    conn.execute(f"UPDATE eventlog SET name = 'v1.PersonaCreatedX' {where}")
    conn.commit()
    conn.close()
    result = replay(small_copy, target, ReplayOptions(on_invalid="park"))
    assert result.parked["unknown"] == 1
    conn = sqlite3.connect(target)
    conn.execute(f"UPDATE _projector_parked SET name = 'v1.PersonaCreated' {where}")
    conn.commit()
    conn.close()

    def app_tables() -> dict[str, object]:
        return {k: v for k, v in digest(target)["tables"].items() if k != "_projector_parked"}

    before = app_tables()
    again = replay_parked(target)
    assert again.reapplied == 0 and again.parked_total == result.parked_total and again.changed
    (reason,) = (
        sqlite3.connect(target).execute(f"SELECT reason FROM _projector_parked {where}").fetchone()
    )
    assert re.fullmatch(
        r"e3 \(#4, v1\.PersonaCreated\): a handler knows it now, but e\d+ \(#\d+\), applied after "
        r"it, changed its rows; to apply it in its place, migrate the log into a new target "
        r"with a catalog that knows it as the log names it",
        reason,
    ), reason
    assert app_tables() == before

    tail = small_copy.parent / "tail" / "ai-desk"  # the same, as the log's last event
    shutil.copytree(SMALL, tail)
    last = "WHERE seqNumGlobal = 173 AND seqNumClient = 0"
    with closing(sqlite3.connect(tail / "eventlog@6.db")) as db, db:
        db.execute(f"UPDATE eventlog SET name = 'v1.MemoryAddedX' {last}")
    at_end = target.with_name("tail.db")
    assert replay(tail, at_end, ReplayOptions(on_invalid="park")).parked["unknown"] == 1
    with closing(sqlite3.connect(at_end)) as db, db:
        db.execute(f"UPDATE _projector_parked SET name = 'v1.MemoryAdded' {last}")
    assert replay_parked(at_end).reapplied == 1
    report = verify(at_end, SMALL_STATE)
    assert report.ok and report.differences == [], [d.line() for d in report.differences]


def test_a_repaired_unknown_event_stays_parked_when_its_source_cannot_be_read_again(
    small_copy: Path, target: Path, tmp_path: Path
):
    """Whether a later event overtook it is read from the recorded source: retired (or
    rewritten), it cannot be told, and the event stays parked, saying so."""
    originals = _corrupt(small_copy / "eventlog@6.db")
    replay(small_copy, target, ReplayOptions(on_invalid="park"))
    with closing(sqlite3.connect(target)) as db, db:
        for (g, c), (name, args) in originals.items():
            db.execute(
                "UPDATE _projector_parked SET name = ?, argsJson = ? "
                "WHERE seqNumGlobal = ? AND seqNumClient = ?",
                (name, args, g, c),
            )
    shutil.move(small_copy, tmp_path / "retired")
    again = replay_parked(target)
    assert again.parked_total == again.parked["unknown"] == 1
    (reason,) = (
        sqlite3.connect(target)
        .execute("SELECT reason FROM _projector_parked WHERE kind = 'unknown'")
        .fetchone()
    )
    assert reason.startswith("e33 (#41, v1.MemoryAdded): a handler knows it now, but its source ")
    assert "could not be read again to check the events after it" in reason


@pytest.mark.parametrize(
    ("g", "path", "value", "table"),
    [(24, "$.key", 42, "config"), (72, "$.id", 42, "memories"), (4, "$.id", 7, "personas")],
)
def test_an_invalid_event_whose_key_breaks_its_schema_holds_its_whole_table(
    small_copy: Path, target: Path, g: int, path: str, value: int, table: str
):
    """A number where the schema wants a text key names no row of the event's: the
    event holds its whole table back (not row 42), so once repaired replay-parked applies
    it before the later events on the row it meant, and the target equals LiveStore's."""
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    where = f"WHERE seqNumGlobal = {g} AND seqNumClient = 0"
    (original,) = conn.execute(f"SELECT argsJson FROM eventlog {where}").fetchone()
    conn.execute(f"UPDATE eventlog SET argsJson = json_set(argsJson, '{path}', {value}) {where}")
    conn.commit()
    conn.close()
    result = replay(small_copy, target, ReplayOptions(on_invalid="park"))
    assert result.parked["invalid"] == 1 and result.parked["held"] > 0
    conn = sqlite3.connect(target)
    (entity,) = conn.execute(f"SELECT entity FROM _projector_parked {where}").fetchone()
    assert table + ":*" in entity_list(entity) and f"{table}:{value}" not in entity_list(entity)
    conn.execute(f"UPDATE _projector_parked SET argsJson = ? {where}", (original,))
    conn.commit()
    conn.close()
    assert replay_parked(target).parked_total == 0
    report = verify(target, SMALL_STATE)
    assert report.ok and report.differences == [], [d.line() for d in report.differences]


def test_dry_run_reports_and_leaves_the_target_untouched(small_copy: Path, target: Path):
    _corrupt(small_copy / "eventlog@6.db")
    result = replay(small_copy, target, ReplayOptions(on_invalid="park"), dry_run=True)
    assert result.dry_run and result.parked_total >= 4 and result.accounted
    assert not target.exists()
    replay(SMALL, target)
    before = tree_sha256(target)
    again = replay(SMALL, target, dry_run=True)
    assert again.read == 0 and tree_sha256(target) == before


def test_a_dry_run_says_it_records_nothing_and_is_not_resumed(
    small_copy: Path, target: Path, runner: CliRunner
):
    """A dry run on an up-to-date target does not claim a run was recorded, says it changed
    nothing, and one stopped by a signal does not advise `resume` (there is nothing to go
    on with: the run would be the real one)."""
    replay(SMALL, target)
    before = tree_sha256(target)
    result = runner.invoke(cli, ["replay", str(SMALL), str(target), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "up to date: the source holds no event after #200 (a dry run: nothing is " in (
        result.stdout
    )
    data = json.loads(
        runner.invoke(cli, ["replay", str(SMALL), str(target), "--dry-run", "--json"]).stdout
    )
    assert data["dryRun"] and data["changed"] is False
    assert tree_sha256(target) == before
    fresh = target.with_name("fresh.db")
    with pytest.raises(Interrupted) as stopped:
        replay(SMALL, fresh, ReplayOptions(batch_size=50, should_stop=stop_after(1)), dry_run=True)
    assert str(stopped.value) == f"stopped at #50 after a signal (a dry run: {fresh} is as it was)"
    assert not fresh.exists()


def test_sources_are_byte_identical_after_every_command(small_copy: Path, target: Path, runner):
    before = tree_sha256(small_copy)
    for args in (
        ["inspect", str(small_copy)],
        ["validate", str(small_copy)],
        ["replay", str(small_copy), str(target)],
        ["verify", str(target), "--against", str(small_copy / "state-11367593325@6.db")],
        ["status", str(target)],
        ["digest", str(target)],
        ["export", str(small_copy), str(target.with_suffix(".ndjson")), "--format", "ndjson"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
    assert tree_sha256(small_copy) == before


@pytest.mark.parametrize("victim", ["eventlog@6.db", "state-11367593325@6.db"])
def test_replay_never_writes_into_a_livestore_file(small_copy: Path, victim: str, runner):
    """Pointing TARGET at the eventlog or the state DB is refused before a byte is written."""
    before = tree_sha256(small_copy)
    result = runner.invoke(cli, ["-q", "replay", str(small_copy), str(small_copy / victim)])
    assert result.exit_code == 1
    assert "refusing to write" in result.stderr or "no command writes there" in result.stderr
    assert tree_sha256(small_copy) == before


def test_a_dry_run_removes_the_scratch_copies_of_killed_dry_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A dry run killed before it removed its scratch copy of the target (as big as the
    target) leaves it in the temporary folder; the next dry run removes it, and leaves
    any folder whose process still lives."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead = tmp_path / f"projector-dry-run-{int(gone.stdout)}-abc"
    alive = tmp_path / f"projector-dry-run-{os.getpid()}-abc"
    other = tmp_path / "projector-dry-run-notapid"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "target.db").write_bytes(b"x" * 1000)
    replay(SMALL, tmp_path / "t.db", dry_run=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])


def test_held_events_wait_on_the_parked_event_at_the_root_of_their_hold(tmp_path: Path):
    """A bulk "clear completed" waits on the parked todo that holds a row of its table,
    and every event held behind the held bulk event waits on that todo too (not on the
    held event in between): `parked` names what to repair."""
    store = tmp_path / "todomvc"
    shutil.copytree(FIXTURES / "todomvc-synced" / "todomvc", store)
    with closing(sqlite3.connect(store / "eventlog@6.db")) as conn, conn:
        conn.execute(  # a valid id, an invalid text: it holds its own row only
            "UPDATE eventlog SET argsJson = json_set(argsJson, '$.text', 5) "
            "WHERE seqNumGlobal = 117 AND seqNumClient = 0"
        )
    target = tmp_path / "t.db"
    result = replay(store, target, ReplayOptions(on_invalid="park"))
    assert result.parked["invalid"] == 1 and result.parked["held"] > 1
    listed = parked(target)["events"]
    (bad,) = [e for e in listed if e["kind"] == "invalid"]
    assert bad["eventId"] == "e117" and bad["row"].startswith("todos:643aa8ad")
    clear = next(e for e in listed if e["name"] == "v1.TodoClearedCompleted")
    assert clear["kind"] == "held" and clear["row"] == "todos:*"
    assert {e["waitsOn"] for e in listed if e["kind"] == "held"} == {f"e117 (#{bad['position']})"}


def _ai_desk_copy(where: Path, drop_plugin_uninstalled: bool = False) -> Path:
    """A copy of the bundled ai-desk catalog folder (without v1.PluginUninstalled)."""
    folder = where / ("ai-desk-old" if drop_plugin_uninstalled else "ai-desk-copy")
    shutil.copytree(ROOT / "schemas" / "ai-desk", folder)
    if drop_plugin_uninstalled:
        (folder / "v1.PluginUninstalled.json").unlink()
        spec = folder / "catalog.toml"
        text = spec.read_text("utf-8")
        declared = '[events."v1.PluginUninstalled"]\ndelete = "plugins"\nwhere = { id = "$.id" }\n'
        assert declared in text
        spec.write_text(text.replace(declared, ""), "utf-8")
    return folder


def test_replay_parked_with_another_catalog_records_it_for_the_catch_ups_after(
    small_copy: Path, target: Path, tmp_path: Path
):
    """The repair route for unknown events: replay-parked --catalog with the catalog that
    knows them (the same tables) re-applies them and is recorded, so a later catch-up
    goes on with it instead of parking the same events as unknown again."""
    old = Catalog.load(_ai_desk_copy(tmp_path, drop_plugin_uninstalled=True))
    append = hold_back_tail(small_copy, 99)  # e99 is small's one v1.PluginUninstalled
    first = replay(small_copy, target, ReplayOptions(on_invalid="park", catalog=old))
    assert first.parked_total == first.parked["unknown"] == 1
    bundled = Catalog.bundled("ai-desk")
    again = replay_parked(target, ReplayOptions(catalog=bundled))
    assert again.parked_total == 0 and status(target)["catalog"] == "ai-desk"
    append()
    later = replay(small_copy, target)
    assert later.parked_total == 0 and later.catalog == "ai-desk"
    assert verify(target, SMALL_STATE).ok


def test_a_catalog_changed_by_an_upgrade_can_go_on_with_the_files_the_migration_began_with(
    small_copy: Path, target: Path, tmp_path: Path
):
    """A target begun with a bundled catalog whose files have changed since (an upgrade of
    the projector) is refused by replay and replay-parked, saying how to go on: with a
    folder holding the files it began with, which later runs then use."""
    began = _ai_desk_copy(tmp_path)
    with open(began / "catalog.toml", "a", encoding="utf-8") as spec:
        spec.write("\n# as an earlier version shipped it\n")
    append = hold_back_tail(small_copy, 120)
    replay(small_copy, target)
    with closing(sqlite3.connect(target)) as db, db:  # begun with the earlier files
        db.execute(
            "UPDATE _projector_migration SET catalogDigest = ?", (Catalog.load(began).digest,)
        )
    appended = append()
    for refused in (lambda: replay(small_copy, target), lambda: replay_parked(target)):
        with pytest.raises(CheckpointMismatch, match="changed since this migration began") as e:
            refused()
        assert str(e.value).endswith(
            f"or go on with --catalog DIR holding the files it began with "
            f"(digest {Catalog.load(began).digest[:12]})"
        )
    with pytest.raises(CheckpointMismatch, match="was migrated with catalog 'ai-desk'"):
        replay(
            small_copy, target, ReplayOptions(catalog=Catalog.load(_ai_desk_copy(tmp_path, True)))
        )
    went_on = replay(small_copy, target, ReplayOptions(catalog=Catalog.load(began)))
    assert went_on.read == appended and went_on.parked_total == 0
    assert status(target)["catalog"] == str(began.resolve())
    assert verify(target, SMALL_STATE).ok


def test_a_repaired_unknown_event_stays_parked_behind_a_later_one_applied_in_repaired_form(
    tmp_path: Path,
):
    """Two events on one todo, both unknown, repaired later one first: the later one goes
    in (nothing after it touched the row); the earlier one then must not, though the
    source still spells the later one unknown (it was applied in its repaired form)."""
    store = tmp_path / "todomvc"
    shutil.copytree(FIXTURES / "todomvc-synced" / "todomvc", store)
    with closing(sqlite3.connect(store / "eventlog@6.db")) as conn, conn:
        rows = conn.execute(
            "SELECT seqNumGlobal, name FROM eventlog WHERE seqNumGlobal IN (643, 647) "
            "AND seqNumClient = 0 ORDER BY seqNumGlobal"
        ).fetchall()
        assert rows == [(643, "v1.TodoUncompleted"), (647, "v1.TodoCompleted")]
        conn.execute(
            "UPDATE eventlog SET name = name || 'X' "
            "WHERE seqNumGlobal IN (643, 647) AND seqNumClient = 0"
        )
    target = tmp_path / "t.db"
    assert replay(store, target, ReplayOptions(on_invalid="park")).parked["unknown"] == 2

    def repair(g: int, name: str) -> None:
        with closing(sqlite3.connect(target)) as db, db:
            db.execute(
                "UPDATE _projector_parked SET name = ? WHERE seqNumGlobal = ? AND seqNumClient = 0",
                (name, g),
            )

    repair(647, "v1.TodoCompleted")
    assert replay_parked(target).reapplied == 1
    repair(643, "v1.TodoUncompleted")
    with closing(sqlite3.connect(target)) as db, db:  # args broken too: overtaken all the same
        (args,) = db.execute("SELECT argsJson FROM _projector_parked").fetchone()
        db.execute("UPDATE _projector_parked SET argsJson = 'not json'")
    broken = replay_parked(target)
    assert broken.parked_total == broken.parked["unknown"] == 1 and broken.reapplied == 0
    with closing(sqlite3.connect(target)) as db, db:
        db.execute("UPDATE _projector_parked SET argsJson = ?", (args,))
    again = replay_parked(target)
    assert again.reapplied == 0 and again.parked_total == 1
    (reason,) = sqlite3.connect(target).execute("SELECT reason FROM _projector_parked").fetchone()
    assert reason.startswith("e643 (#") and (
        "e647 (#1,471), applied after it in a form this catalog cannot read, may have changed "
        "its rows" in reason
    )
