"""Policies and accounting through the CLI: fail, park, dry run, upcasting; counts add up."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from events.catalog import Catalog
from projector.cli import cli
from projector.errors import ReplayError
from projector.replay import ReplayOptions, replay
from projector.verify import verify
from tests.conftest import FIXTURES, MICRO, REBASE, SMALL, write_ndjson


def _break(log: Path) -> None:
    conn = sqlite3.connect(log)
    conn.execute(
        "UPDATE eventlog SET name = 'v7.Unheard' WHERE seqNumGlobal = 20 AND seqNumClient = 0"
    )
    conn.execute(
        "UPDATE eventlog SET argsJson = json_set(argsJson, '$.kind', 'gossip') "
        "WHERE seqNumGlobal = 10 AND seqNumClient = 0"
    )
    conn.commit()
    conn.close()


def test_fail_policy_through_the_cli_names_the_event(runner, small_copy: Path, target: Path):
    _break(small_copy / "eventlog@6.db")
    result = runner.invoke(cli, ["-q", "replay", str(small_copy), str(target)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: e10 (#") and "v1.MemoryAdded" in result.stderr
    assert "at $.kind" in result.stderr and result.stderr.count("\n") == 1


def test_park_policy_through_the_cli_parks_and_accounts(runner, small_copy: Path, target: Path):
    _break(small_copy / "eventlog@6.db")
    result = runner.invoke(
        cli, ["replay", str(small_copy), str(target), "--on-invalid", "park", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["read"] == data["applied"] + data["parked"] == 200
    assert data["parkedByKind"]["unknown"] == 1 and data["parkedByKind"]["invalid"] == 1
    kinds = {e["eventId"]: e["kind"] for e in data["examples"]}
    assert kinds["e10"] == "invalid" and kinds["e20"] == "unknown"
    verified = runner.invoke(cli, ["verify", str(target), "--json"])
    assert verified.exit_code == 0, verified.stdout


def test_dry_run_through_the_cli(runner, small_copy: Path, target: Path):
    _break(small_copy / "eventlog@6.db")
    result = runner.invoke(
        cli, ["replay", str(small_copy), str(target), "--dry-run", "--on-invalid", "park"]
    )
    assert result.exit_code == 0 and "would replay" in result.stdout
    assert "parked invalid: e10" in result.stdout and not target.exists()


@pytest.mark.parametrize(
    ("source", "policy"),
    [
        (SMALL, "fail"),
        (REBASE, "fail"),
        (MICRO, "park"),
        (FIXTURES / "small" / "export.json", "fail"),
        (FIXTURES / "small" / "events.ndjson", "fail"),
        (FIXTURES / "synced-rebase" / "events.ndjson", "fail"),
    ],
    ids=lambda v: v if isinstance(v, str) else f"{v.parent.name}/{v.name}",
)
def test_accounting_identity_holds_on_every_fixture(source: Path, policy: str, target: Path):
    """read = applied + parked, and verify checks it against the source."""
    # The micro log is another app's (a todo app): replayed only with its catalog named.
    catalog = Catalog.bundled("todo-0.3.1") if source == MICRO else None
    result = replay(source, target, ReplayOptions(on_invalid=policy, catalog=catalog))
    assert result.read > 0 and result.read == result.applied + result.parked_total
    report = verify(target)
    assert {c.name: c.ok for c in report.checks}["accounting"]
    assert {c.name: c.ok for c in report.checks}["source"]


def test_old_persona_events_are_upcast_to_the_current_shape():
    """ai-desk's hooks.py raises v1.PersonaCreated to v2 with NULL avatar and voice."""
    upcast = Catalog.bundled("ai-desk").upcasters.upcast
    name, args = upcast(
        "v1.PersonaCreated", {"id": "p", "name": "n", "personality": "x", "createdAt": "t"}
    )
    assert name == "v2.PersonaCreated" and args["avatar"] is None and args["voice"] is None
    assert upcast("v1.MemoryAdded", {"id": "m"}) == ("v1.MemoryAdded", {"id": "m"})


def test_an_upcaster_is_registered_once():
    upcasters = Catalog.bundled("ai-desk").upcasters
    with pytest.raises(ValueError, match="already registered"):
        upcasters.register("v1.PersonaCreated", "v2.PersonaCreated")(lambda a: a)
    assert upcasters.steps["v1.PersonaCreated"][0] == "v2.PersonaCreated"


def _memory(memory_id: str, importance: object) -> tuple[str, dict]:
    args = {
        "id": memory_id,
        "personaId": "p",
        "content": memory_id,
        "kind": "fact",
        "importance": importance,
        "tags": ["t"],
        "createdAt": "2024-01-16T08:56:04.715Z",
    }
    return "v1.MemoryAdded", args


REFUSED_LOG = [
    (
        "v2.PersonaCreated",
        {
            "id": "p",
            "name": "P",
            "personality": "",
            "avatar": None,
            "voice": "alloy",
            "createdAt": "2024-01-16T08:56:04.715Z",
        },
    ),
    _memory("a", 0.5),
    # Valid JSON and schema, but SQLite cannot store it: NDJSON's argsJson text holds a raw
    # lone surrogate (only a JSON source can: JSON.stringify and SQLite text escape it).
    (
        "v1.MemoryAdded",
        json.dumps(_memory("b", 0.5)[1]).replace('"content": "b"', '"content": "\ud800"'),
    ),
    ("v1.MemoryUpdated", {"id": "b", "importance": 0.1, "updatedAt": "2024-01-17T00:00:00.000Z"}),
    _memory("c", 0.75),
]


def test_a_row_the_target_refuses_parks_only_its_event_and_the_batch_still_applies(
    tmp_path: Path,
):
    """Rows are written once per batch; a refused one sends the batch through one event at
    a time, so exactly that event is parked (and its row's followers held)."""
    log = write_ndjson(tmp_path / "log.ndjson", REFUSED_LOG)
    target = tmp_path / "t.db"
    result = replay(log, target, ReplayOptions(on_invalid="park", batch_size=20000))
    assert (result.read, result.applied, dict(result.parked)) == (5, 3, {"invalid": 1, "held": 1})
    assert [e["position"] for e in result.examples] == [3, 4]
    assert "cannot be stored" in result.examples[0]["reason"]
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT id FROM memories ORDER BY id").fetchall() == [("a",), ("c",)]
    assert conn.execute("SELECT memoryId FROM memory_tags ORDER BY 1").fetchall() == [
        ("a",),
        ("c",),
    ]
    assert verify(target).ok


def test_a_refused_row_under_fail_names_its_event_and_keeps_the_batch_out(tmp_path: Path):
    log = write_ndjson(tmp_path / "log.ndjson", REFUSED_LOG)
    target = tmp_path / "t.db"
    with pytest.raises(ReplayError, match=r"e3 \(v1.MemoryAdded\): cannot be stored"):
        replay(log, target, ReplayOptions(on_invalid="fail", batch_size=20000))
    # Nothing was committed, so the run is undone: the target it would have created is not.
    assert not target.exists()
