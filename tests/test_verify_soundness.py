"""`verify --against` must not call a wrong target verified: a difference is explained only
by what could have caused it (a tester's attempts to get a false "verified")."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from projector.replay import ReplayOptions, replay
from projector.verify import Difference, VerifyReport, verify
from tests.conftest import SMALL, SMALL_STATE

PERSONA = "KJWT4G3y6Td7-W3HPwO1h"


@pytest.fixture
def store(small_copy: Path) -> Path:
    """A writable copy of the small store (conftest's small_copy)."""
    return small_copy


def _parked_replay(store: Path, tmp_path: Path, mutation: str) -> Path:
    """STORE's eventlog changed by the SQL MUTATION, replayed with --on-invalid park."""
    _sql(store / "eventlog@6.db", mutation)
    target = tmp_path / "t.db"
    replay(store, target, ReplayOptions(on_invalid="park"))
    return target


def _sql(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


def _unexplained(report: VerifyReport) -> list[tuple[str, str, str]]:
    return [(d.table, d.key, d.what) for d in report.unexplained]


def test_an_unknown_event_explains_no_difference(store: Path, tmp_path: Path):
    """An event no handler knows is parked, and LiveStore skips it: a row changed in the
    target is not "explained" by it (it names no row), even as the log's last event."""
    target = _parked_replay(
        store,
        tmp_path,
        "INSERT INTO eventlog VALUES (174, 0, 0, 173, 0, 0, 'v2.MemoryArchived', "
        "'{\"id\":\"x\"}', 'desktop-A', 'static', 12345, '{\"_tag\":\"None\"}')",
    )
    assert verify(target, SMALL_STATE).ok
    _sql(target, f"UPDATE personas SET name = 'Evil' WHERE id = '{PERSONA}'")
    report = verify(target, SMALL_STATE)
    assert not report.ok and _unexplained(report) == [("personas", PERSONA, "differs")]


def test_a_parked_event_on_a_parent_does_not_explain_changes_to_its_children(
    store: Path, tmp_path: Path
):
    """A persona's deletion parked (its date without milliseconds) explains that persona's
    difference, not a changed or missing memory of it."""
    persona = "olEjScJj4aOVbBJV1TETo"
    target = _parked_replay(
        store,
        tmp_path,
        "UPDATE eventlog SET argsJson = json_set(argsJson, '$.deletedAt', "
        "'2024-01-21T11:39:28Z') WHERE seqNumGlobal = 171 AND seqNumClient = 0",
    )
    clean = verify(target, SMALL_STATE)
    assert clean.ok and [(d.table, d.key) for d in clean.differences] == [("personas", persona)]
    with closing(sqlite3.connect(target)) as conn:
        (memory,) = conn.execute(
            "SELECT id FROM memories WHERE personaId = ? ORDER BY id LIMIT 1", (persona,)
        ).fetchone()
    _sql(
        target,
        f"UPDATE memories SET content = 'TAMPERED' WHERE personaId = '{persona}' "
        f"AND id != '{memory}'",
        f"DELETE FROM memory_tags WHERE memoryId = '{memory}'",
        f"DELETE FROM memories WHERE id = '{memory}'",
    )
    report = verify(target, SMALL_STATE)
    kinds = {(table, what) for table, _, what in _unexplained(report)}
    assert not report.ok and kinds == {("memories", "differs"), ("memories", "missing")}


def test_text_cut_at_u0000_explains_that_text_only(store: Path, tmp_path: Path):
    """The nul-truncation deviation explains a text LiveStore cut at U+0000, not the other
    columns of its row."""
    memory = "OEOxIZlT_r_GJq5QrGr0-"
    _sql(
        store / "eventlog@6.db",
        'UPDATE eventlog SET argsJson = replace(argsJson, \'"content":"On 2020\', '
        '\'"content":"On\\u0000 2020\') WHERE seqNumGlobal = 173 AND seqNumClient = 0',
    )
    state = tmp_path / "state.db"  # LiveStore's state of that log: its text cut at U+0000
    shutil.copy(SMALL_STATE, state)
    _sql(state, f"UPDATE memories SET content = 'On' WHERE id = '{memory}'")
    target = tmp_path / "t.db"
    replay(store, target)
    assert verify(target, state).ok
    _sql(target, f"UPDATE memories SET importance = 0.99 WHERE id = '{memory}'")
    report = verify(target, state)
    assert not report.ok and _unexplained(report) == [("memories", memory, "differs")]


def test_a_deviation_no_replay_records_explains_nothing(store: Path, tmp_path: Path):
    """A row in _projector_deviations under a name the projector does not know (written
    by hand) does not explain a missing row."""
    target = tmp_path / "t.db"
    replay(store, target)
    memory = "3d1I2CXlj7S1DZ0A3YxNk"
    _sql(
        target,
        f"DELETE FROM memory_tags WHERE memoryId = '{memory}'",
        f"DELETE FROM memories WHERE id = '{memory}'",
        f"INSERT INTO _projector_deviations VALUES (5, 'e5', 'anything', 'memories:{memory}', 'x')",
    )
    report = verify(target, SMALL_STATE)
    assert not report.ok and _unexplained(report) == [("memories", memory, "missing")]


def test_a_table_missing_from_livestores_state_is_a_difference(tmp_path: Path):
    """A state DB lacking tables the catalog mirrors compares nothing for them: that is
    said, and unexplained, not passed over."""
    target = tmp_path / "t.db"
    replay(SMALL, target)
    state = tmp_path / "state.db"
    shutil.copy(SMALL_STATE, state)
    _sql(state, "DROP TABLE memories", "DROP TABLE personas")
    report = verify(target, state)
    assert not report.ok
    assert sorted(_unexplained(report)) == [("memories", "*", "extra"), ("personas", "*", "extra")]


def test_a_key_holding_u0000_is_shown_escaped():
    """A difference line stays text (grep reads it): a control character in a key is
    shown as its escape."""
    line = Difference("config", "llm.model\x00y", "extra", "row is in the target only").line()
    assert line == "config[llm.model\\x00y] extra: row is in the target only -- UNEXPLAINED"
