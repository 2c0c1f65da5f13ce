"""Holes in a history's shape: said with positions by every command, failed only under --strict.

A gap in the global seq nums, a parent that is not in the log, a client-only event whose
global event is missing. LiveStore replays such a log without a word, so replay warns and
goes on; `--strict` refuses before anything is written.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from events.history import HistoryCheck
from events.sources import open_source
from projector.cli import cli
from projector.replay import ReplayOptions, replay
from projector.verify import verify
from tests.conftest import FIXTURES, MICRO, REBASE, SHARED, SMALL, untouched

GAP_CASE = SHARED.parent.parent / "cases" / "history-gap"


def _edit(store: Path, *statements: str) -> Path:
    conn = sqlite3.connect(store / "eventlog@6.db")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return store


def _warnings(path: Path) -> list[tuple[str, int, str]]:
    check = HistoryCheck()
    return [
        (kind, position, event_id)
        for kind, _, position, event_id in check.check(open_source(path).events())
    ]


@pytest.mark.parametrize("log", [SMALL, REBASE, MICRO, FIXTURES / "small" / "events.ndjson"])
def test_real_logs_have_no_holes(log: Path):
    """LiveStore's own logs, rebased ones included, raise no warning."""
    assert _warnings(log) == []


def test_the_large_real_log_has_no_holes():
    large = SHARED / "large" / "ai-desk"
    if not large.exists():
        pytest.skip("needs ../shared")
    assert _warnings(large) == []


def test_a_missing_global_event_is_a_gap_and_a_missing_parent(small_copy: Path):
    """e51 deleted: a gap at e52 (#62), whose parent e51 is not in the log."""
    _edit(small_copy, "DELETE FROM eventlog WHERE seqNumGlobal = 51 AND seqNumClient = 0")
    assert _warnings(small_copy) == [
        ("history-gap", 62, "e52"),
        ("missing-parent", 62, "e52"),
    ]


def test_a_client_event_whose_global_event_is_missing(small_copy: Path):
    """e2 deleted: e2.1 hangs off nothing, e3's parent is gone."""
    _edit(small_copy, "DELETE FROM eventlog WHERE seqNumGlobal = 2 AND seqNumClient = 0")
    found = _warnings(small_copy)
    assert ("missing-global-parent", 2, "e2.1") in found
    assert ("missing-parent", 2, "e2.1") in found
    assert ("history-gap", 3, "e3") in found and ("missing-parent", 3, "e3") in found


def test_a_parent_pointer_to_a_missing_client_event(small_copy: Path):
    """A client event naming e6.5 (never written) as its parent."""
    _edit(
        small_copy,
        "UPDATE eventlog SET parentSeqNumClient = 5 WHERE seqNumGlobal = 6 AND seqNumClient = 1",
    )
    assert _warnings(small_copy) == [("missing-parent", 8, "e6.1")]


@pytest.mark.parametrize(
    ("value", "warned"),
    [("'e5'", ["e6's parent ('e5', 0) is not in the log"]), ("NULL", [])],
)
def test_a_parent_that_is_no_position_does_not_stop_a_replay(small_copy: Path, value, warned):
    """A hand-made (non-STRICT) eventlog whose parent column holds text or NULL: text is
    a missing parent, named as it is; NULL reads as no parent, as 0 does (the root). The
    replay goes on. (Text raised TypeError comparing it with the event's position; NULL
    raised it in the compiled build, whose declared int was checked.)"""
    ddl = (
        'CREATE TABLE eventlog ("seqNumGlobal" integer not null, "seqNumClient" integer not '
        'null, "seqNumRebaseGeneration" integer not null, "parentSeqNumGlobal" integer, '
        '"parentSeqNumClient" integer not null, "parentSeqNumRebaseGeneration" integer not '
        'null, "name" text not null, "argsJson" text not null, "clientId" text not null, '
        '"sessionId" text not null, "schemaHash" integer not null, "syncMetadataJson" text '
        'not null, PRIMARY KEY ("seqNumGlobal", "seqNumClient", "seqNumRebaseGeneration"))'
    )
    _edit(
        small_copy,
        "ALTER TABLE eventlog RENAME TO strict_eventlog",
        ddl,
        "INSERT INTO eventlog SELECT * FROM strict_eventlog",
        "DROP TABLE strict_eventlog",
        f"UPDATE eventlog SET parentSeqNumGlobal = {value} WHERE seqNumGlobal = 6 "
        "AND seqNumClient = 0",
    )
    found = HistoryCheck().check(open_source(small_copy).events())
    assert [detail for _, detail, _, _ in found] == warned
    assert all((position, event_id) == (7, "e6") for _, _, position, event_id in found)
    result = replay(small_copy, small_copy.parent / "t.db", ReplayOptions())
    assert (result.state, result.parked_total) == ("complete", 0)


def test_parents_are_joined_on_global_and_client_only(small_copy: Path):
    """A parent's rebase generation that differs from the stored row's is no hole (FORMAT.md)."""
    _edit(small_copy, "UPDATE eventlog SET parentSeqNumRebaseGeneration = 3 WHERE seqNumGlobal = 9")
    assert _warnings(small_copy) == []


def test_a_log_that_starts_late_and_ndjson_and_exports_are_checked_too(tmp_path: Path):
    """The check runs on every source kind: here an NDJSON log without e1..e2."""
    lines = (FIXTURES / "small" / "events.ndjson").read_text("utf-8").splitlines()
    path = tmp_path / "late.ndjson"
    path.write_text("\n".join(lines[3:]) + "\n", "utf-8")
    found = _warnings(path)
    assert found[0] == ("history-gap", 1, "e3")
    assert "e1..e2 (2 events) missing" in HistoryCheck().check(open_source(path).events())[0][1]


def test_every_command_reports_the_hole_and_replay_goes_on(small_copy: Path, target: Path):
    """inspect, validate, replay and verify name the hole; none fails because of it."""
    _edit(small_copy, "DELETE FROM eventlog WHERE seqNumGlobal = 51 AND seqNumClient = 0")
    runner = CliRunner()
    with untouched(small_copy):
        inspected = runner.invoke(cli, ["inspect", str(small_copy), "--json"])
        validated = runner.invoke(cli, ["validate", str(small_copy)])
        replayed = runner.invoke(cli, ["replay", str(small_copy), str(target), "--json"])
        verified = runner.invoke(cli, ["verify", str(target), "--json"])
    info = json.loads(inspected.stdout)
    assert info["warningsByKind"] == {"history-gap": 1, "missing-parent": 1}
    assert info["warningExamples"][0]["position"] == 62
    assert "e51 missing" in info["warningExamples"][0]["detail"]
    assert validated.exit_code == 0 and "warning history-gap at #62: e51 missing" in (
        validated.stdout
    )
    run = json.loads(replayed.stdout)
    assert replayed.exit_code == 0 and run["state"] == "complete"
    assert run["warningsByKind"] == {"history-gap": 1, "missing-parent": 1}
    report = json.loads(verified.stdout)
    assert verified.exit_code == 0 and report["ok"]
    source_check = next(c for c in report["checks"] if c["check"] == "source")
    assert "1 gap, 1 missing parent" in source_check["detail"]
    assert [w["eventId"] for w in report["warnings"]] == ["e52", "e52"]


def test_strict_refuses_a_log_with_holes_before_writing_anything(small_copy: Path, target: Path):
    """--strict: exit 1 naming the hole, and no target file is created."""
    _edit(small_copy, "DELETE FROM eventlog WHERE seqNumGlobal = 51 AND seqNumClient = 0")
    runner = CliRunner()
    with untouched(small_copy):
        result = runner.invoke(cli, ["replay", str(small_copy), str(target), "--strict"])
    assert result.exit_code == 1
    assert "history-gap at #62: e51 missing" in result.stderr
    assert "nothing was written" in result.stderr
    assert not target.exists() and not target.with_name("target.db.lock").exists()


def test_strict_catch_up_of_a_target_is_refused_without_touching_it(small_copy: Path, target: Path):
    """A target migrated before the hole appeared is left exactly as it was."""
    replay(small_copy, target)
    before = target.read_bytes()
    _edit(small_copy, "DELETE FROM eventlog WHERE seqNumGlobal = 51 AND seqNumClient = 0")
    with pytest.raises(Exception, match="the history has holes"):
        replay(small_copy, target, ReplayOptions(strict=True))
    assert target.read_bytes() == before
    # No backup, no -wal/-shm, and the lock file of the first run is gone with it.
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith("target")) == [
        "target.db"
    ]


def test_a_catch_up_run_warns_only_about_its_own_events(small_copy: Path, target: Path):
    """A hole an earlier run already reported is not reported again by a catch-up run."""
    _edit(small_copy, "DELETE FROM eventlog WHERE seqNumGlobal > 150")
    _edit(small_copy, "DELETE FROM eventlog WHERE seqNumGlobal = 51 AND seqNumClient = 0")
    first = replay(small_copy, target)
    assert sum(first.warnings.values()) == 2
    shutil.copy(SMALL / "eventlog@6.db", small_copy / "eventlog@6.db")
    _edit(small_copy, "DELETE FROM eventlog WHERE seqNumGlobal = 51 AND seqNumClient = 0")
    second = replay(small_copy, target)
    assert second.read > 0 and not second.warnings


def test_the_gap_case_equals_livestores_own_rebuild(tmp_path: Path):
    """On ../shared/cases/history-gap LiveStore's rebuilt state equals the migration."""
    if not GAP_CASE.exists():
        pytest.skip("needs ../shared")
    store = tmp_path / "ai-desk"
    shutil.copytree(GAP_CASE / "ai-desk", store)
    target = tmp_path / "t.db"
    with untouched(GAP_CASE):
        result = replay(store, target)
        report = verify(target, GAP_CASE / "livestore-rebuilt-state.db")
    assert result.warnings == {"history-gap": 1, "missing-parent": 1}
    assert report.ok and not report.differences


def test_verify_reads_the_recorded_eventlog_once(small_copy: Path, tmp_path: Path, monkeypatch):
    """--against the store folder the target was migrated from: the accounting check and
    the other-store check share one read of the eventlog there (a large log is not read
    twice), and its holes are warned about once."""
    import projector.verify as verify_module

    _edit(small_copy, "DELETE FROM eventlog WHERE seqNumGlobal = 51 AND seqNumClient = 0")
    target = tmp_path / "t.db"
    replay(small_copy, target)
    opened: list[Path] = []
    real_open = verify_module.open_source

    def counting_open(path, **kwargs):
        opened.append(Path(path))
        return real_open(path, **kwargs)

    monkeypatch.setattr(verify_module, "open_source", counting_open)
    report = verify(target, small_copy)
    assert len(opened) == 1
    source = next(c for c in report.checks if c.name == "source")
    assert source.ok and "all 199 source events accounted for" in source.detail
    assert [(w["kind"], w["position"]) for w in report.warnings] == [
        ("history-gap", 62),
        ("missing-parent", 62),
    ]
