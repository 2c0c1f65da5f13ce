"""Decoding like LiveStore: what it accepts is applied as it applies it, and said so.

Excess keys are dropped with a warning (or rejected with --strict-keys), text cut
mid-emoji is stored with U+FFFD, text holding U+0000 is kept whole with a warning and
`verify --against` names the deviation that explains the difference. The cases of
../shared/cases come with the state real LiveStore rebuilt from them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from events.encoding import is_iso_date, iso_to_epoch_ms
from projector.cli import cli
from projector.errors import Interrupted, ReplayError
from projector.replay import ReplayOptions, replay, replay_parked, resume
from projector.verify import verify
from tests import differential
from tests.conftest import ROOT, SMALL, SMALL_STATE

CASES = ROOT.parent / "shared" / "cases"


def _set_args(store: Path, event_id: str, args_json: str) -> None:
    g, c = differential._seq(event_id)
    with closing(sqlite3.connect(store / "eventlog@6.db")) as conn:
        conn.execute(
            "UPDATE eventlog SET argsJson = ? WHERE seqNumGlobal = ? AND seqNumClient = ?",
            (args_json, g, c),
        )
        conn.commit()


def _args(store: Path, event_id: str) -> str:
    g, c = differential._seq(event_id)
    with closing(sqlite3.connect(store / "eventlog@6.db")) as conn:
        return conn.execute(
            "SELECT argsJson FROM eventlog WHERE seqNumGlobal = ? AND seqNumClient = ?", (g, c)
        ).fetchone()[0]


def _row(target: Path, sql: str, *params: object) -> tuple:
    with closing(sqlite3.connect(target)) as conn:
        return conn.execute(sql, params).fetchone()


# ---------------------------------------------------------------- excess keys


def test_an_excess_key_is_dropped_and_warned_with_its_place(small_copy: Path, target: Path):
    """The event applies as LiveStore applies it; the run names the event and the key."""
    _set_args(small_copy, "e13", _args(small_copy, "e13")[:-1] + ',"pinned":true}')
    result = replay(small_copy, target)
    assert (result.applied, result.parked_total) == (200, 0)
    assert result.warnings == {"excess-key": 1}
    example = result.warning_examples[0]
    assert (example["eventId"], example["position"], example["path"]) == ("e13", 16, "$.pinned")
    assert example["detail"].startswith("e13 (#16, v1.MemoryUpdated) at $.pinned: key pinned")
    assert verify(target, SMALL_STATE).ok  # the unmutated log's state: the key changed nothing
    assert result.strict_failure() == "1 warning(s)"


def test_strict_keys_rejects_and_resume_keeps_the_policy(small_copy: Path, target: Path):
    """--strict-keys restores rejection; the target records it, so resume does too."""
    _set_args(small_copy, "e150", _args(small_copy, "e150")[:-1] + ',"pinned":true}')
    with pytest.raises(ReplayError, match="'pinned' was unexpected"):
        replay(small_copy, target, ReplayOptions(strict_keys=True, batch_size=50))
    with pytest.raises(ReplayError, match="'pinned' was unexpected"):
        resume(target)
    result = replay(small_copy, target, ReplayOptions(strict_keys=False))
    assert result.state == "complete" and result.warnings == {"excess-key": 1}


def test_cli_validate_lists_excess_keys_and_strict_keys_fails(runner, small_copy: Path):
    """`validate` passes with the warning listed; with --strict-keys it exits 1."""
    doc = '{"id":"default","value":{"fontSize":18,"compactMode":true}}'
    _set_args(small_copy, "e55.1", doc)
    lenient = runner.invoke(cli, ["validate", str(small_copy), "--json"])
    assert lenient.exit_code == 0, lenient.output
    report = json.loads(lenient.stdout)
    assert report["warningsByKind"] == {"excess-key": 1}
    assert report["warningExamples"][0]["path"] == "$.value.compactMode"
    strict = runner.invoke(cli, ["validate", "--strict-keys", str(small_copy)])
    assert strict.exit_code == 1 and "'compactMode' was unexpected" in strict.stdout


# ---------------------------------------------------------------- lone surrogates and U+0000


def test_lone_surrogates_are_stored_as_livestore_stores_them(small_copy: Path, target: Path):
    """U+FFFD in text columns and keys, the escape itself in JSON columns; warned."""
    memory = json.loads(_args(small_copy, "e55"))
    memory["tags"] = ["cut"]
    text = json.dumps(memory, ensure_ascii=False)
    text = text.replace('"content": "', '"content": "cut emoji \\ud83d', 1)
    text = text.replace('"cut"', '"tag \\ud83d"').replace(memory["id"], memory["id"] + "\\udc00")
    _set_args(small_copy, "e55", text)
    result = replay(small_copy, target)
    assert result.parked_total == 0 and result.warnings == {"lone-surrogate": 3}
    key = memory["id"] + "\ufffd"
    content, tags = _row(target, "SELECT content, tags FROM memories WHERE id = ?", key)
    assert content.startswith("cut emoji \ufffd")
    assert tags == '["tag \\ud83d"]'
    assert _row(target, "SELECT tag FROM memory_tags WHERE memoryId = ?", key) == ("tag \ufffd",)
    assert verify(target).ok


def test_nul_in_text_is_kept_and_verify_names_the_deviation(small_copy: Path, target: Path):
    """The target keeps the whole text; verify explains LiveStore's cut text by name."""
    text = _args(small_copy, "e43").replace('"content":"', '"content":"before\\u0000after ', 1)
    _set_args(small_copy, "e43", text)
    result = replay(small_copy, target)
    assert result.warnings == {"nul-in-text": 1}
    livestore = target.parent / "livestore.db"
    delta = {"memories": {"WJxIry3LsFBPreJ1ljWxf": None}}
    differential.build_state(SMALL_STATE, delta, livestore)
    with closing(sqlite3.connect(SMALL_STATE)) as conn:
        row = conn.execute("SELECT * FROM memories WHERE id = 'WJxIry3LsFBPreJ1ljWxf'").fetchone()
    with closing(sqlite3.connect(livestore)) as conn:
        conn.execute(
            "INSERT INTO memories VALUES (?, ?, 'before', ?, ?, ?, ?, ?)", (*row[:2], *row[3:])
        )
        conn.commit()
    report = verify(target, livestore)
    assert report.ok and len(report.differences) == 1
    line = report.differences[0].line()
    assert line.endswith("-- explained by deviation nul-truncation (e43)"), line
    assert report.as_dict()["differenceList"][0]["deviations"] == ["nul-truncation"]


def test_a_key_holding_nul_explains_the_row_livestore_changed_instead(
    small_copy: Path, target: Path
):
    """MemoryDeleted of 'id\\0': LiveStore deleted 'id'; the target keeps it, explained."""
    _set_args(small_copy, "e88", _args(small_copy, "e88").replace('"}', '\\u0000"}'))
    deleted = json.loads(_args(small_copy, "e88"))["id"].split("\x00")[0]
    replay(small_copy, target)
    livestore = differential.build_state(
        SMALL_STATE, {"memories": {deleted: None}}, target.parent / "livestore.db"
    )
    with closing(sqlite3.connect(SMALL_STATE)) as conn:
        assert conn.execute("SELECT 1 FROM memories WHERE id = ?", (deleted,)).fetchone() is None
    report = verify(target, livestore)
    assert report.ok, [d.line() for d in report.unexplained]


# ---------------------------------------------------------------- the cases, against LiveStore

CASE_STORES = [
    ("excess-keys/memory-updated", "excess-keys/memory-updated/livestore-rebuilt-state.db"),
    ("excess-keys/client-document", "excess-keys/client-document/livestore-rebuilt-state.db"),
    ("lone-surrogate", "lone-surrogate/livestore-rebuilt-state.db"),
    ("nul-in-text", "nul-in-text/livestore-rebuilt-state.db"),
]


@pytest.mark.skipif(not CASES.exists(), reason="../shared/cases not present")
@pytest.mark.parametrize(("store", "state"), CASE_STORES, ids=[s for s, _ in CASE_STORES])
def test_the_cases_give_livestores_state_with_nothing_unexplained(
    store: str, state: str, target: Path
):
    """Each case's log, replayed under the default policy, verifies against the state real
    LiveStore rebuilt from it: no event parked, no difference unexplained."""
    result = replay(CASES / store / "ai-desk", target)
    assert result.parked_total == 0 and sum(result.warnings.values()) == 1
    report = verify(target, CASES / state)
    assert report.ok and not report.unexplained, [d.line() for d in report.differences]


# ---------------------------------------------------------------- JavaScript's own answers


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node (JavaScript's Date)")
def test_dates_are_read_as_javascript_reads_them():
    """toISOString()'s own text, and the epoch ms of it, are exactly JavaScript's."""
    texts = [
        "2024-01-16T08:56:04.715Z", "-271821-04-20T00:00:00.000Z", "+275760-09-13T00:00:00.000Z",
        "+275760-09-13T00:00:00.001Z", "-000001-12-31T23:59:59.999Z", "0000-01-01T00:00:00.000Z",
        "2024-02-29T12:00:00.000Z", "2023-02-29T12:00:00.000Z", "2024-02-30T00:00:00.000Z",
        "2100-02-29T00:00:00.000Z", "2000-02-29T00:00:00.000Z", "+002024-01-01T00:00:00.000Z",
        "-000000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "+010000-01-01T00:00:00.000Z",
        "-100000-06-15T07:08:09.010Z", "1969-12-31T23:59:59.999Z", "2024-04-31T00:00:00.000Z",
    ]  # fmt: skip
    script = (
        "const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(texts.map((t) => { const d = new Date(t);"
        " const ok = !isNaN(d) && d.toISOString() === t; return [ok, ok ? d.getTime() : null] })))"
    )
    out = subprocess.run(
        ["node", "-e", script], input=json.dumps(texts), capture_output=True, text=True, check=True
    )
    for text, (valid, ms) in zip(texts, json.loads(out.stdout), strict=True):
        assert is_iso_date(text) is valid, text
        if valid:
            assert iso_to_epoch_ms(text) == ms, text


@pytest.mark.skipif(not differential.oracle_available(), reason="needs `make oracle-install`")
def test_the_oracle_rebuilds_livestores_own_state(tmp_path: Path):
    """`make oracle`'s script gives the rows LiveStore wrote when it made the fixture."""
    out = tmp_path / "state.db"
    subprocess.run(
        ["node", str(ROOT / "oracle" / "rebuild.mjs"), str(SMALL), str(out)],
        check=True,
        capture_output=True,
    )
    assert differential.state_delta(SMALL_STATE, out) == {}


def test_a_target_an_older_version_made_is_migrated_by_every_writer(small_copy: Path, target: Path):
    """A target from before _projector_deviations and strictKeys (m006) resumes, re-applies
    parked events and verifies: every writer brings its schema up to date first."""
    _set_args(
        small_copy, "e43", _args(small_copy, "e43").replace('"content":"', '"content":"\\u0000', 1)
    )
    with pytest.raises(Interrupted):
        replay(
            small_copy,
            target,
            ReplayOptions(on_invalid="park", should_stop=lambda: True, batch_size=50),
        )
    with closing(sqlite3.connect(target)) as conn:  # undo m006, as an older version left it
        conn.execute("DROP TABLE _projector_deviations")
        conn.execute("ALTER TABLE _projector_migration DROP COLUMN strictKeys")
        conn.execute(
            "DELETE FROM _sqlite_migrations WHERE name = 'm006_deviations_and_strict_keys'"
        )
        conn.commit()
    result = resume(target)
    assert result.state == "complete" and result.warnings == {"nul-in-text": 1}
    assert replay_parked(target).read == 0
    assert verify(target).ok
