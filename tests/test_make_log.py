"""bench/make_log.py writes logs in LiveStore's exact on-disk format, with valid events."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from events.sources import connect_readonly
from projector.cli import cli
from projector.replay import replay
from tests.conftest import ROOT, SMALL

EVENTS = 2000  # ten passes over the small fixture's 200 events


def _load_make_log() -> Any:
    path = ROOT / "bench" / "make_log.py"
    spec = importlib.util.spec_from_file_location("bench_make_log", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


make_log = _load_make_log()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_log.make_log(SMALL, tmp_path_factory.mktemp("made") / "ai-desk", EVENTS)


def _schema(path: Path) -> dict[str, Any]:
    conn = connect_readonly(path)
    try:
        return {
            "master": conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid"
            ).fetchall(),
            "columns": conn.execute("PRAGMA table_info(eventlog)").fetchall(),
            "pragmas": [
                conn.execute(f"PRAGMA {p}").fetchone()[0]
                for p in ("page_size", "journal_mode", "user_version", "application_id", "encoding")
            ],
            "sync_status": conn.execute("SELECT * FROM __livestore_sync_status").fetchall(),
        }
    finally:
        conn.close()


def _rows(path: Path) -> list[tuple[Any, ...]]:
    conn = connect_readonly(path)
    try:
        return conn.execute(
            "SELECT seqNumGlobal, seqNumClient, seqNumRebaseGeneration, parentSeqNumGlobal, "
            "parentSeqNumClient, parentSeqNumRebaseGeneration, name, argsJson, clientId, "
            "sessionId, schemaHash, syncMetadataJson FROM eventlog "
            "ORDER BY seqNumGlobal, seqNumClient"
        ).fetchall()
    finally:
        conn.close()


def test_schema_is_the_real_fixtures(store: Path):
    made = _schema(store / "eventlog@6.db")
    real = _schema(SMALL / "eventlog@6.db")
    assert made == real
    assert made["sync_status"] == [(0, None)]
    assert made["pragmas"][:2] == [8192, "delete"]


def test_every_event_is_valid(store: Path, runner):
    out = runner.invoke(cli, ["validate", str(store)])
    assert out.exit_code == 0, out.output
    assert f"{EVENTS:,} of {EVENTS:,} events valid" in out.output


def test_replay_applies_everything(store: Path, tmp_path: Path):
    result = replay(store, tmp_path / "t.db")
    assert (result.read, result.applied, result.parked_total) == (EVENTS, EVENTS, 0)
    assert result.state == "complete"


def test_first_pass_is_the_template_verbatim(store: Path):
    real = _rows(SMALL / "eventlog@6.db")
    assert _rows(store / "eventlog@6.db")[: len(real)] == real


def test_seq_numbers_follow_livestore(store: Path):
    rows = _rows(store / "eventlog@6.db")
    assert len(rows) == EVENTS
    client_only = {r[6] for r in _rows(SMALL / "eventlog@6.db") if r[1] > 0}
    assert client_only == {"v1.DraftSaved", "userPreferencesSet", "uiStateSet"}
    prev = (0, 0)
    for g, c, _r, pg, pc, _pr, name, *_ in rows:
        if c > 0:  # client-only: same global, next client number, parent = previous event
            assert name in client_only
            assert (g, c) == (prev[0], prev[1] + 1)
            assert (pg, pc) == prev
        else:  # synced: next global, parent = the previous global event
            assert name not in client_only
            assert (g, pg, pc) == (prev[0] + 1, prev[0], 0)
        prev = (g, c)


def _args(rows: list[tuple[Any, ...]], *names: str) -> Iterator[dict[str, Any]]:
    return (json.loads(r[7]) for r in rows if r[6] in names)


def test_ids_are_fresh_and_references_point_at_created_personas(store: Path):
    rows = _rows(store / "eventlog@6.db")
    personas = [a["id"] for a in _args(rows, "v1.PersonaCreated", "v2.PersonaCreated")]
    memories = [a["id"] for a in _args(rows, "v1.MemoryAdded")]
    assert len(set(personas)) == len(personas) > 0
    assert len(set(memories)) == len(memories) > 0
    created: set[str] = set()
    for g, c, *_, name, args_json, _cid, _sid, _hash, _sync in rows:
        args = json.loads(args_json)
        if name in ("v1.PersonaCreated", "v2.PersonaCreated"):
            created.add(args["id"])
        elif name in ("v1.MemoryAdded", "v1.DraftSaved"):
            assert args["personaId"] in created, (g, c, name)
