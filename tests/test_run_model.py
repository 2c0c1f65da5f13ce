"""A model of the target's life: random sequences of replay, refused replay, interrupted
replay, resume, rollback and replay-parked, with the old app appending events meanwhile.

After every step `status`, `digest` and `verify` must agree with a model that knows only
what should have happened: the checkpoint is the number of events migrated, the digest is
that of a one-go replay of that many events, a refused run changes not a byte, and each
rollback undoes exactly one run (a run that applied nothing included).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from projector.digest import digest
from projector.errors import CheckpointMismatch, Interrupted, ReplayError, TargetError
from projector.replay import ReplayOptions, replay, replay_parked, resume
from projector.runs import rollback, status
from projector.verify import verify
from tests.conftest import FIXTURES, REBASE, SMALL, committed_tables, sha256

#: A real LiveStore log of an app no bundled catalog knows (its catalog is a user's).
ANOTHER_APP = FIXTURES / "readinglist-small" / "readinglist"

#: Where the old app's log stands when the model starts, and the later appends (by global
#: sequence number: a client-only event e150.1 comes with e150).
CHUNKS = (60, 100, 140, 173)


def _base_rows() -> list[tuple[Any, ...]]:
    """The small fixture's events without one persona's creation: its memories park as
    integrity breaks and their later events are held, so runs have parked events."""
    with closing(sqlite3.connect(f"{(SMALL / 'eventlog@6.db').as_uri()}?mode=ro", uri=True)) as c:
        rows = c.execute("SELECT * FROM eventlog ORDER BY seqNumGlobal, seqNumClient").fetchall()
    created = [json.loads(r[7])["id"] for r in rows if r[6].endswith("PersonaCreated")]
    used = {json.loads(r[7])["personaId"] for r in rows if r[6] == "v1.MemoryAdded"}
    persona = next(p for p in created if p in used)
    return [
        r
        for r in rows
        if not (r[6].endswith("PersonaCreated") and json.loads(r[7])["id"] == persona)
    ]


ROWS = _base_rows()
with closing(sqlite3.connect(f"{(SMALL / 'eventlog@6.db').as_uri()}?mode=ro", uri=True)) as _c:
    DDL = [s for (s,) in _c.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]


def write_store(folder: Path, count: int) -> Path:
    """A store folder whose eventlog holds the first COUNT events of ROWS."""
    folder.mkdir(parents=True, exist_ok=True)
    new = not (folder / "eventlog@6.db").exists()
    with closing(sqlite3.connect(folder / "eventlog@6.db")) as conn, conn:
        for sql in DDL if new else ():
            conn.execute(sql)
        conn.execute("DELETE FROM eventlog")
        conn.executemany(f"INSERT INTO eventlog VALUES ({','.join('?' * 12)})", ROWS[:count])
    return folder


def upto(global_seq: int) -> int:
    """How many events of ROWS have a global sequence number up to GLOBAL_SEQ."""
    return sum(1 for r in ROWS if r[0] <= global_seq)


_REFERENCE: dict[int, tuple[dict[str, Any], int]] = {}


def reference(count: int) -> tuple[dict[str, Any], int]:
    """(`digest`'s tables, parked events) of the first COUNT events replayed in one go."""
    if count not in _REFERENCE:
        with tempfile.TemporaryDirectory() as d:
            store = write_store(Path(d) / "ref" / "ai-desk", count)
            target = Path(d) / "ref.db"
            replay(store, target, ReplayOptions(on_invalid="park"))
            parked = status(target)["parked"]
            _REFERENCE[count] = (digest(target)["tables"], parked)
    return _REFERENCE[count]


class TargetLife(RuleBasedStateMachine):
    """The target as a user drives it; the model is (position, state, undo stack)."""

    @initialize()
    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="projector-model-"))
        self.chunk = 0
        self.store = write_store(self.dir / "store" / "ai-desk", upto(CHUNKS[0]))
        self.target = self.dir / "out" / "app.db"
        self.available = upto(CHUNKS[0])  # events in the store now
        self.position = 0
        self.state: str | None = None  # None: no target
        self.undo: list[tuple[str, int, str | None]] = []  # (kind, position, state) before

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ what the user does

    @precondition(lambda self: self.chunk + 1 < len(CHUNKS))
    @rule()
    def the_old_app_appends_events(self) -> None:
        self.chunk += 1
        self.available = upto(CHUNKS[self.chunk])
        write_store(self.store, self.available)

    def _ran(self, applied_to: int, state: str) -> None:
        """Model a run that got to APPLIED_TO with STATE."""
        if self.state is None:
            self.undo.append(("created", 0, None))
        elif applied_to == self.position:
            self.undo.append(("nothing", self.position, self.state))
        else:
            self.undo.append(("restore", self.position, self.state))
        self.position, self.state = applied_to, state

    @rule(batch=st.sampled_from([7, 50, 20000]))
    def replay(self, batch: int) -> None:
        replay(self.store, self.target, ReplayOptions(on_invalid="park", batch_size=batch))
        self._ran(self.available, "complete")

    @rule(batch=st.sampled_from([10, 40]))
    def replay_stopped_by_a_signal(self, batch: int) -> None:
        left = self.available - self.position
        options = ReplayOptions(on_invalid="park", batch_size=batch, should_stop=lambda: True)
        if left < batch:  # one short batch: the run completes before the stop is asked
            replay(self.store, self.target, options)
            self._ran(self.available, "complete")
            return
        with pytest.raises(Interrupted):
            replay(self.store, self.target, options)
        self._ran(self.position + batch, "interrupted")

    @rule(other=st.sampled_from(["another-app", "another-store"]))
    def replay_refused(self, other: str) -> None:
        if other == "another-store" and self.position == 0:
            other = "another-app"  # REBASE into no target would just be a first run
        before = sha256(self.target) if self.target.exists() else None
        source = ANOTHER_APP if other == "another-app" else REBASE
        with pytest.raises((ReplayError, CheckpointMismatch)):
            replay(source, self.target, ReplayOptions(on_invalid="park"))
        assert (sha256(self.target) if self.target.exists() else None) == before

    @rule()
    def resume(self) -> None:
        if self.state is None:
            with pytest.raises(TargetError):
                resume(self.target)
            return
        resume(self.target)
        self._ran(self.available, "complete")

    @rule()
    def replay_parked(self) -> None:
        if self.state is None:
            with pytest.raises(TargetError):
                replay_parked(self.target)
            return
        parked = reference(self.position)[1]
        result = replay_parked(self.target)  # nothing repaired: every parked event parks again
        assert result.reapplied == 0 and result.parked_total == parked
        if result.changed:  # a reason changed (a held event's): a run to roll back
            self.undo.append(("restore", self.position, self.state))
        else:  # rolled back: no run recorded, nothing to undo
            assert result.backup is None

    @rule()
    def rollback(self) -> None:
        if self.state is None:
            with pytest.raises(TargetError):
                rollback(self.target)
            return
        kind, position, state = self.undo.pop()
        info = rollback(self.target)
        if kind == "created":
            assert info["action"] == "removed" and not self.target.exists()
            self.position, self.state = 0, None
        elif kind == "nothing":
            assert info["action"] == "forgotten"
        else:
            assert info["action"] == "restored"
            self.position, self.state = position, "rolled back"

    # ------------------------------------------------------------ what must hold

    @invariant()
    def agrees_with_the_model(self) -> None:
        if self.state is None:
            assert not self.target.exists()
            if self.target.parent.exists():  # no -wal, -shm, lock or backup left behind
                assert list(self.target.parent.iterdir()) == []
            return
        info = status(self.target)
        assert (info["position"], info["state"]) == (self.position, self.state), info
        assert info["runs"] == len(self.undo)
        expected, parked = reference(self.position)
        # Every table as the events so far leave it; an unfinished first run (bulk load),
        # or a rollback to one, fills its derived tables at its end: empty until then, and
        # verify says so.
        unfilled = info["deferredTables"]
        assert not unfilled or self.state in ("interrupted", "rolled back"), unfilled
        ours, theirs = committed_tables(self.target, expected)
        assert ours == theirs
        assert info["parked"] == parked
        checks = {c.name: c for c in verify(self.target).checks}
        told = ("source", "accounting", *unfilled)
        assert all(c.ok for name, c in checks.items() if name not in told)
        assert all(not checks[table].ok for table in unfilled)
        # The counters always agree; a migration whose last run did not finish fails it.
        assert checks["accounting"].ok == (self.state != "interrupted"), checks["accounting"]
        assert checks["source"].ok == (self.position == self.available), checks["source"]
        backups = sorted(self.target.parent.glob("*.bak"))
        assert len(backups) == sum(1 for kind, _, _ in self.undo if kind == "restore")
        assert not list(self.target.parent.glob("*.lock"))


TargetLife.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_the_target_always_agrees_with_the_model = TargetLife.TestCase
