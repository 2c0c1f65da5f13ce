"""What making replay faster must not change: digests, checkpoints, exactly-once."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from pathlib import Path

import pytest

import projector.replay as replay_module
from events.catalog import Catalog
from events.envelope import Event
from events.sources import connect_readonly, open_source
from events.sqlite_source import Blob
from projector.checkpoint import PrefixDigest
from projector.digest import digest
from projector.errors import Interrupted, ReplayError
from projector.profile import PHASES, Phases
from projector.replay import ReplayOptions, replay, resume
from projector.runs import rollback, status
from projector.target import deferrable_indexes, open_target
from tests.conftest import FIXTURES, REBASE, SHARED, SMALL, catalog_tables
from tests.test_replay import stop_after

LARGE = SHARED / "large" / "ai-desk"
#: The large fixture's target digest since the first speed round (bench/results.json).
LARGE_DIGEST = "846887b516ba971c9fb9e1fbb9f9a8ef5ae1a310cf303d5f89cba22d01e27c38"
HOSTILE = [
    Event(1, 1, 0, 0, 0, 0, "v1.X", '{"a":"\ud800 😀 é"}'),
    Event(2, 2, 0, 0, 1, 0, 7, None),  # type: ignore[arg-type]
    Event(3, 2, 1, 0, 2, 0, "\udc00", Blob(b"\xff")),  # a BLOB, as sources yield one
    Event(4, 3, 0, 0, 2, 0, "n", 12),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (SMALL, "ece0d0294ee4a3b845a90cfa842621785e5294b3"),
        ((SMALL, "utf8"), "ece0d0294ee4a3b845a90cfa842621785e5294b3"),
        (FIXTURES / "synced-rebase" / "events.ndjson", "25a2d1bc6a2ecd0dcbc165efbd45025956e6a0ff"),
        (HOSTILE, "0a63c813f7f4776aaa7b65b383265afd63e71b86"),
    ],
    ids=["small", "small-args-read-as-utf8", "synced-rebase-ndjson", "hostile"],
)
def test_prefix_digests_are_the_ones_targets_already_recorded(events: object, expected: str):
    """A target made by an earlier version still resumes: the prefix digest of the same
    events is byte for byte the same, in one call or split anywhere, and whether a
    replay reads the args as text or as their UTF-8 (``events(utf8_args=True)``)."""
    if isinstance(events, tuple):
        listed = list(open_source(events[0]).events(utf8_args=True))
        assert all(type(e.args_json) is bytes for e in listed)
    elif isinstance(events, Path):
        listed = list(open_source(events).events())
    else:
        listed = list(events)
    whole, split = PrefixDigest(), PrefixDigest()
    whole.update_many(listed)
    split.update_many(listed[:3])
    for event in listed[3:]:
        split.update(event)
    assert whole.hexdigest() == split.hexdigest() == expected


def test_a_batch_hashed_in_pieces_has_the_digest_of_its_whole_text():
    """update_many hashes a few hundred events at a time: a batch of 2,000 (small's events
    over and over, hostile ones among them) has the digest of its whole text, each event
    spelled ``{global}.{client}\\x1f{name}\\x1f{args}\\x1e`` in UTF-8."""
    listed = (list(open_source(SMALL).events()) + HOSTILE) * 10
    assert len(listed) > 2 * 256
    text = "".join(
        f"{e.seq_global}.{e.seq_client}\x1f{e.name}\x1f"
        + (e.args_json if isinstance(e.args_json, str) else repr(e.args_json))
        + "\x1e"
        for e in listed
    )
    # Args read as their UTF-8 (every other event: both kinds in one piece) are hashed as
    # the text they spell. Text with a lone surrogate has no UTF-8: it stays text.
    for index, e in enumerate(listed):
        if index % 2 and type(e.args_json) is str and "\ud800" not in e.args_json:
            listed[index] = e._replace(args_json=e.args_json.encode("utf-8"))
    assert any(type(e.args_json) is bytes and not e.args_json.isascii() for e in listed)
    expected = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20)
    batch = PrefixDigest()
    batch.update_many(listed)
    assert batch.hexdigest() == expected.hexdigest()


@pytest.mark.slow
@pytest.mark.skipif(not LARGE.exists(), reason="shared fixtures not present")
def test_large_replays_to_the_digest_it_always_had(tmp_path: Path):
    """The 100,000 events of large give the same tables as before any speed work."""
    target = tmp_path / "large.db"
    replay(LARGE, target)
    assert digest(target)["overall"] == LARGE_DIGEST


# ---------------------------------------------------------------- bulk load: indexes at the end


def schema(path: Path) -> list[str]:
    """TARGET's DDL, every table and index (order-free)."""
    conn = connect_readonly(path)
    try:
        return sorted(s for (s,) in conn.execute("SELECT sql FROM sqlite_master") if s)
    finally:
        conn.close()


def index_names(path: Path) -> set[str]:
    conn = connect_readonly(path)
    try:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def row_by_row(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synced-rebase replayed with every index kept up to date row by row."""
    target = tmp_path_factory.mktemp("row-by-row") / "t.db"
    replay(REBASE, target, ReplayOptions(on_invalid="park", bulk_load=False))
    return target


def test_a_first_run_builds_its_secondary_indexes_at_the_end(tmp_path: Path, row_by_row: Path):
    """A bulk load ends with the same rows and the same schema, every index included."""
    target = tmp_path / "t.db"
    replay(REBASE, target, ReplayOptions(on_invalid="park", batch_size=100))
    assert digest(target) == digest(row_by_row)
    assert schema(target) == schema(row_by_row)
    assert status(target)["deferredIndexes"] == 0


def test_an_interrupted_first_run_resumes_to_the_same_rows_and_indexes(
    tmp_path: Path, row_by_row: Path
):
    """Stopped between batches, the target waits without its deferred indexes (status
    says so); resume applies the rest and builds them."""
    target = tmp_path / "t.db"
    with pytest.raises(Interrupted):
        replay(
            REBASE,
            target,
            ReplayOptions(on_invalid="park", batch_size=100, should_stop=stop_after(3)),
        )
    assert {"idx_memories_personaId", "idx_memory_tags_tag"}.isdisjoint(index_names(target))
    assert status(target)["deferredIndexes"] == 2
    assert status(target)["deferredTables"] == ["memory_tags"]
    conn = connect_readonly(target)
    tags = conn.execute("SELECT COUNT(*) FROM memory_tags").fetchone()[0]
    memories = conn.execute("SELECT COUNT(*) FROM memories WHERE tags <> '[]'").fetchone()[0]
    conn.close()
    assert (tags, memories > 0) == (0, True)  # filled at the end, from the memories
    resume(target)
    assert digest(target) == digest(row_by_row)
    assert schema(target) == schema(row_by_row)


def test_a_run_killed_while_building_its_indexes_builds_them_on_resume(
    tmp_path: Path, row_by_row: Path, monkeypatch: pytest.MonkeyPatch
):
    """Every event is committed but the indexes are not: resume has no event left to
    apply and still builds them (in the transaction that marks the migration complete)."""
    target = tmp_path / "t.db"
    with monkeypatch.context() as patch:
        patch.setattr(replay_module, "_build_deferred", _killed)
        with pytest.raises(KeyboardInterrupt):
            replay(REBASE, target, ReplayOptions(on_invalid="park"))
    assert status(target)["position"] == status(row_by_row)["position"]
    assert status(target)["deferredIndexes"] == 2
    result = resume(target)
    assert result.read == 0 and result.state == "complete"
    assert schema(target) == schema(row_by_row) and digest(target) == digest(row_by_row)
    assert status(target)["deferredIndexes"] == 0 and status(target)["deferredTables"] == []
    # That run filled memory_tags and built the indexes: rollback undoes it from its
    # backup, as any run that changed the target (trial 36: it was only "forgotten").
    assert result.backup is not None
    assert rollback(target)["action"] != "forgotten"
    assert (status(target)["state"], status(target)["deferredTables"]) == (
        "rolled back",
        ["memory_tags"],
    )
    assert resume(target).state == "complete" and digest(target) == digest(row_by_row)


def test_a_disk_full_while_building_the_indexes_fails_cleanly_and_resume_builds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Every event committed, then no room for the indexes: one line, the target as it
    was before the build, and resume (space back) builds them."""
    done = tmp_path / "done.db"
    replay(SMALL, done)
    unbuilt = tmp_path / "unbuilt.db"
    with monkeypatch.context() as patch:
        patch.setattr(replay_module, "_build_deferred", _killed)
        with pytest.raises(KeyboardInterrupt):
            replay(SMALL, unbuilt, ReplayOptions(batch_size=20))
    conn = sqlite3.connect(unbuilt)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]  # all the rows, no index
    conn.close()
    target = tmp_path / "t.db"
    with pytest.raises(ReplayError) as info:
        replay(SMALL, target, ReplayOptions(batch_size=20, max_page_count=pages))
    assert "full" in str(info.value) and "projector resume" in str(info.value)
    assert status(target)["position"] == 200 and status(target)["deferredIndexes"] == 2
    resume(target)
    assert digest(target) == digest(done) and schema(target) == schema(done)


def _killed(*_: object) -> None:
    raise KeyboardInterrupt


def test_a_catch_up_run_keeps_its_indexes(tmp_path: Path, small_copy: Path, row_by_row: Path):
    """Only the first run into an empty target defers indexes: a target that already
    holds rows keeps every index up to date row by row."""
    target = tmp_path / "t.db"
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    tail = conn.execute("SELECT * FROM eventlog WHERE seqNumGlobal > 50").fetchall()
    conn.execute("DELETE FROM eventlog WHERE seqNumGlobal > 50")
    conn.commit()
    replay(small_copy, target)
    conn.executemany(f"INSERT INTO eventlog VALUES ({','.join('?' * 12)})", tail)
    conn.commit()
    conn.close()
    seen: list[int] = []
    original = replay_module._deferrable

    def spy(conn: sqlite3.Connection, catalog: object) -> list[tuple[str, str]]:
        seen.append(1)
        return original(conn, catalog)  # type: ignore[arg-type]

    replay_module._deferrable = spy  # type: ignore[assignment]
    try:
        result = replay(small_copy, target)
    finally:
        replay_module._deferrable = original
    assert result.read > 0 and not seen
    assert index_names(target) >= {"idx_memories_personaId", "idx_memory_tags_tag"}


def test_indexes_that_enforce_something_or_serve_the_replay_are_never_deferred():
    """UNIQUE, partial and expression indexes, and those on a column the handlers find
    rows by, stay; plain indexes the replay never reads are deferred."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        """
        CREATE TABLE t (id TEXT PRIMARY KEY, a TEXT, b TEXT, c TEXT, d TEXT);
        CREATE INDEX t_a ON t (a);
        CREATE UNIQUE INDEX t_b ON t (b);
        CREATE INDEX t_c ON t (c) WHERE c IS NOT NULL;
        CREATE INDEX t_d ON t (lower(d));
        CREATE INDEX t_queried ON t (d, a);
        CREATE TABLE other (id TEXT PRIMARY KEY, x TEXT);
        CREATE INDEX other_x ON other (x);
        """
    )
    tables = {"t": object()}  # only the catalog's tables count
    found = deferrable_indexes(conn, tables, {("t", "d")})  # type: ignore[arg-type]
    assert [name for name, _ in found] == ["t_a"]
    assert deferrable_indexes(conn, tables, None) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("catalog", "deferred"),
    [
        ("ai-desk", {"idx_memories_personaId", "idx_memory_tags_tag"}),
        ("todomvc", set()),  # "clear completed" finds todos by completed: its index stays
    ],
)
def test_which_indexes_a_bundled_catalog_defers(catalog: str, deferred: set[str]):
    tables, handlers = catalog_tables(catalog)
    with tempfile.TemporaryDirectory() as folder:
        db = open_target(Path(folder) / "t.db", create=True, catalog=Catalog.bundled(catalog))
        try:
            found = deferrable_indexes(db.conn, tables, handlers.queried())
        finally:
            db.conn.close()
    assert {name for name, _ in found} == deferred


def test_a_profiled_replay_times_every_phase_and_changes_nothing(tmp_path: Path):
    """make bench's phase profile: each phase of the loop gets its seconds, together
    no more than the run took, and the tables are the same as without a profile."""
    phases = Phases()
    profiled, plain = tmp_path / "p.db", tmp_path / "q.db"
    options = ReplayOptions(on_invalid="park", batch_size=50, phases=phases)
    result = replay(REBASE, profiled, options)
    replay(REBASE, plain, ReplayOptions(on_invalid="park", batch_size=50))
    assert set(phases.seconds) == set(PHASES)
    for phase in ("read", "digest", "parse", "validate", "prefetch", "handlers", "write", "commit"):
        assert phases.seconds[phase] > 0, phase
    assert sum(phases.seconds.values()) <= result.seconds
    assert abs(sum(phases.shares().values()) - 1) < 1e-9
    assert digest(profiled) == digest(plain)


def test_a_batch_end_collects_reference_cycles_only_once_they_pile_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The cyclic collector is paused during the loop, and a pass costs 10-30 ms a batch
    on large even with nothing to free, so a batch's end runs one only when what batches
    left behind passes COLLECT_AFTER; then it frees it."""
    import gc
    import weakref

    collects: list[tuple[int, ...]] = []
    real_collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a: collects.append(a) or real_collect(*a))
    replay(REBASE, tmp_path / "plain.db", ReplayOptions(on_invalid="park", batch_size=20))
    assert len(collects) <= 1  # 45 batches that leave no cycle: at most the setup's

    class Node:
        pass

    left: list[weakref.ref[Node]] = []
    alive: list[int] = []
    apply_batch = replay_module.Projection.apply_batch

    def leaving_cycles(self: object, *args: object, **kwargs: object) -> object:
        alive.append(sum(ref() is not None for ref in left))
        for _ in range(1000):  # what a batch leaves in cycles
            node = Node()
            node.self = node  # type: ignore[attr-defined]
            left.append(weakref.ref(node))
        return apply_batch(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(replay_module.Projection, "apply_batch", leaving_cycles)
    collects.clear()
    replay(REBASE, tmp_path / "cycles.db", ReplayOptions(on_invalid="park", batch_size=20))
    assert collects  # 45,000 objects in cycles: collected along the way
    assert max(alive) < 20_000  # never more than about COLLECT_AFTER of them held
