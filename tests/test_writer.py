"""The writer process: the same tables, the same exactly-once, the same failures as one process.

`projector.writer` writes a batch on the second core while the main process reads the
next. Everything a user can rely on must hold either way: the digest, the parked
events and their reasons, a refused row redone one event at a time, a full disk, a
kill of either process, and the writer lock.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

import projector.writer as writer_module
from events import _native
from events.catalog import Catalog
from events.sources import connect_readonly
from projector.checkpoint import TrackingView
from projector.digest import digest
from projector.errors import ReplayError
from projector.replay import ReplayOptions, replay, resume
from projector.runs import status
from projector.verify import verify
from projector.writer import BatchWriter
from tests.conftest import REBASE, ROOT, SMALL, write_ndjson
from tests.test_policies import REFUSED_LOG

PARK = ReplayOptions(on_invalid="park", batch_size=50)

#: Every kind of value a batch's rows can hold (`projector.handlers._BINDABLE`, and what
#: the codecs make of JSON), at the edges of each MessagePack width.
VALUES: list[Any] = [
    "plain",
    "日本語 😬",
    "",
    "nul \x00 inside",
    "x" * 70_000,
    b"\x00\xffblob",
    b"",
    bytearray(b"ba"),
    0,
    1,
    -1,
    127,
    128,
    -33,
    255,
    256,
    65_535,
    65_536,
    2**31,
    2**32,
    -(2**31) - 1,
    2**63 - 1,
    -(2**63),
    0.1,
    -0.0,
    1e308,
    5e-324,
    float("inf"),
    float("-inf"),
    float("nan"),
    True,
    False,
    None,
]


def options(writer: bool, **kw: object) -> ReplayOptions:
    values = {"on_invalid": "park", "batch_size": 50, "writer": writer, **kw}
    return ReplayOptions(**values)  # type: ignore[arg-type]


def parked(path: Path) -> list[tuple[object, ...]]:
    conn = connect_readonly(path)
    try:
        return conn.execute(
            "SELECT position, kind, reason, entity FROM _projector_parked ORDER BY position"
        ).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synced-rebase (891 events, 29 parked) replayed by one process, 50 events a batch."""
    target = tmp_path_factory.mktemp("one") / "t.db"
    replay(REBASE, target, options(writer=False))
    return target


def test_a_writer_process_gives_the_same_tables_and_parked_events(
    tmp_path: Path, one_process: Path
):
    """18 batches written by the writer process: the same digest, parked events, reasons
    and counts as one process writing them."""
    target = tmp_path / "t.db"
    result = replay(REBASE, target, options(writer=True))
    assert digest(target) == digest(one_process)
    assert parked(target) == parked(one_process)
    assert (result.read, result.applied, result.parked_total) == (891, 862, 29)
    assert status(target)["state"] == "complete" and verify(target).ok


def test_the_writer_is_used_when_there_is_more_than_one_batch(monkeypatch: pytest.MonkeyPatch):
    """By default a run of one batch writes it itself; a longer run on a machine with a
    second core hands its batches to a writer process."""
    from projector import replay as replay_module
    from projector.replay import ReplayResult

    result = ReplayResult("s", "t", "replay", "ai-desk", 0, total=100)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert replay_module._use_writer(ReplayOptions(batch_size=50), result)
    assert not replay_module._use_writer(ReplayOptions(batch_size=100), result)
    assert not replay_module._use_writer(ReplayOptions(batch_size=50, writer=False), result)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not replay_module._use_writer(ReplayOptions(batch_size=50), result)


def test_the_writer_ends_while_indexes_are_built_and_is_gone_when_the_run_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """After the last batch the writer is only told to end: it checkpoints and exits
    while the main process builds the deferred indexes. The run waits for it before it
    returns (and lets go of the target and its lock): its peak memory is known, and the
    main process, the last to close the target, leaves no -wal behind."""
    from projector import replay as replay_module

    started: list[BatchWriter] = []
    original = BatchWriter.__init__

    def record(self: BatchWriter, *args: object, **kw: object) -> None:
        original(self, *args, **kw)  # type: ignore[arg-type]
        started.append(self)

    monkeypatch.setattr(BatchWriter, "__init__", record)
    told: list[bool] = []
    build = replay_module._build_deferred

    def during(conn: sqlite3.Connection, catalog: object) -> None:
        told.append(started[0].closing)  # told to end, not yet waited for
        build(conn, catalog)  # type: ignore[arg-type]

    monkeypatch.setattr(replay_module, "_build_deferred", during)
    target = tmp_path / "t.db"
    result = replay(REBASE, target, options(writer=True))
    assert told == [True]
    assert started[0].proc.poll() is not None and not started[0].closing
    if sys.platform == "linux":
        assert result.writer_peak_mb is not None
    assert not Path(f"{target}-wal").exists()
    assert status(target)["state"] == "complete" and verify(target).ok


def test_a_row_the_target_refuses_in_the_writer_is_redone_one_event_at_a_time(tmp_path: Path):
    """The writer rolls the batch back; the main process redoes it one event at a time:
    exactly the event at fault is parked, its row's follower held, the rest applied."""
    log = write_ndjson(tmp_path / "log.ndjson", REFUSED_LOG)
    by_writer, by_one = tmp_path / "w.db", tmp_path / "o.db"
    result = replay(log, by_writer, options(writer=True, batch_size=2))
    replay(log, by_one, options(writer=False, batch_size=2))
    assert (result.read, result.applied, dict(result.parked)) == (5, 3, {"invalid": 1, "held": 1})
    assert "cannot be stored" in result.examples[0]["reason"]
    assert digest(by_writer) == digest(by_one) and parked(by_writer) == parked(by_one)
    assert verify(by_writer).ok


def test_a_refused_row_under_fail_names_its_event_and_keeps_the_batches_before(tmp_path: Path):
    """Under --on-invalid fail the redo names the event; the batch before it, committed
    by the writer, stays, and the run is resumable."""
    log = write_ndjson(tmp_path / "log.ndjson", REFUSED_LOG)
    target = tmp_path / "t.db"
    with pytest.raises(ReplayError, match=r"e3 \(v1.MemoryAdded\): cannot be stored"):
        replay(log, target, options(writer=True, batch_size=2, on_invalid="fail"))
    info = status(target)
    assert (info["position"], info["state"]) == (2, "interrupted")


def test_a_batch_the_writer_cannot_be_sent_is_written_by_the_main_process(
    tmp_path: Path, one_process: Path, monkeypatch: pytest.MonkeyPatch
):
    """A value MessagePack cannot carry (a Python handler's own object) keeps that batch
    in the main process; the result is the same."""

    class Refusing:
        def encode(self, value: object) -> bytes:
            raise TypeError("Encoding objects of type Thing is unsupported")

    monkeypatch.setattr(msgspec.msgpack, "Encoder", Refusing)
    target = tmp_path / "t.db"
    replay(REBASE, target, options(writer=True))
    assert digest(target) == digest(one_process) and parked(target) == parked(one_process)


def test_a_writer_that_cannot_open_the_target_leaves_the_batches_to_the_main_process(
    tmp_path: Path, one_process: Path, monkeypatch: pytest.MonkeyPatch
):
    """The writer starts while the first batch is read; when it then answers that it
    could not open the target, the run writes every batch itself, with the same result."""
    started: list[BatchWriter] = []
    original = BatchWriter.__init__

    def broken_open(self: BatchWriter, target: Path, pragmas: list[str], **kw: object) -> None:
        original(self, target, [*pragmas, "PRAGMA no such pragma syntax"], **kw)  # type: ignore[arg-type]
        started.append(self)

    monkeypatch.setattr(BatchWriter, "__init__", broken_open)
    target = tmp_path / "t.db"
    result = replay(REBASE, target, options(writer=True))
    assert len(started) == 1 and started[0].proc.poll() is not None  # started, then closed
    assert result.writer_peak_mb is None  # no batch was written by it
    assert digest(target) == digest(one_process) and parked(target) == parked(one_process)


def test_submit_says_when_a_batch_holds_a_value_it_cannot_carry(tmp_path: Path):
    """An object of a Python handler's own, an integer beyond 64 bits, text with a lone
    surrogate: not sent (the main process writes that batch, and SQLite refuses them
    there as it would have in the writer)."""
    target = tmp_path / "t.db"
    sqlite3.connect(target).close()
    writer = BatchWriter(target, [])
    try:
        writer.ready()
        for value in (object(), 2**64, -(2**63) - 1, "a\ud800", 1j):
            assert writer.submit([("one", "SELECT ?", (value,), True)]) is False, value
        assert writer.submit([("one", "SELECT ?", (1,), True)]) is True
        writer.wait()
    finally:
        writer.close()


def test_the_writer_stores_every_kind_of_value_as_the_main_process_would(tmp_path: Path):
    """What a batch's rows can hold reaches the writer's SQLite as it would have been
    bound here: text (non-ASCII too), bytes, integers to 64 bits, floats (NaN, which
    SQLite stores as NULL, and the infinities), booleans, None; rows as tuples or lists."""
    values = VALUES
    sql = "INSERT INTO t (n, v) VALUES (?, ?)"
    rows: list[Any] = [(n, v) if n % 2 else [n, v] for n, v in enumerate(values)]
    expected = tmp_path / "main.db"
    target = tmp_path / "writer.db"
    for path in (expected, target):
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, v)")
        conn.commit()
        conn.close()
    conn = sqlite3.connect(expected)
    conn.executemany(sql, rows)
    conn.commit()
    want = conn.execute("SELECT n, v, typeof(v) FROM t ORDER BY n").fetchall()
    conn.close()
    writer = BatchWriter(target, [])
    try:
        writer.ready()
        assert writer.submit([("many", sql, rows, True)]) is True
        writer.wait()
    finally:
        writer.close()
    conn = sqlite3.connect(target)
    got = conn.execute("SELECT n, v, typeof(v) FROM t ORDER BY n").fetchall()
    conn.close()
    assert got == want and len(got) == len(values)


def test_a_full_disk_in_the_writer_fails_with_one_line_and_resume_completes(
    tmp_path: Path, one_process: Path
):
    """SQLITE_FULL in the writer's transaction: raised in the main process as the same
    one-line error, the batches before it kept; resume (space back) completes."""
    target = tmp_path / "t.db"
    replay(REBASE, tmp_path / "probe.db", options(writer=False, bulk_load=False))
    conn = sqlite3.connect(tmp_path / "probe.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with pytest.raises(ReplayError) as info:
        replay(REBASE, target, options(writer=True, max_page_count=pages // 2))
    message = str(info.value)
    assert "full" in message and "\n" not in message
    position = status(target)["position"]
    assert 0 < position < 891 and position % 50 == 0
    # The same sentence as every failure after a commit: what the target holds, what next.
    assert message.endswith(
        f"; {target} holds every batch up to #{position:,} (`projector status {target}`): "
        f"once the cause is fixed, `projector resume {target}` goes on from there"
    )
    resume(target)
    assert digest(target) == digest(one_process)


def test_a_writer_killed_mid_run_fails_with_one_line_and_resume_completes(
    tmp_path: Path, one_process: Path, monkeypatch: pytest.MonkeyPatch
):
    """The writer process dies (an OOM kill, say): the run stops with one line naming
    it, the target holds whole batches only, and resume completes."""
    sent = {"n": 0}
    original = BatchWriter.submit

    def submit_then_die(self: BatchWriter, ops: list) -> bool:  # type: ignore[type-arg]
        done = original(self, ops)
        sent["n"] += 1
        if sent["n"] == 5:
            os.kill(self.proc.pid, signal.SIGKILL)
        return done

    monkeypatch.setattr(BatchWriter, "submit", submit_then_die)
    target = tmp_path / "t.db"
    with pytest.raises(ReplayError) as info:
        replay(REBASE, target, options(writer=True))
    message = str(info.value)
    assert "writer process" in message and "\n" not in message
    position = status(target)["position"]
    assert position in (200, 250)  # 4 batches committed, the 5th maybe
    assert message.endswith(
        f"; {target} holds every batch up to #{position} (`projector status {target}`): "
        f"once the cause is fixed, `projector resume {target}` goes on from there"
    )
    monkeypatch.undo()
    resume(target)
    assert digest(target) == digest(one_process) and parked(target) == parked(one_process)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_the_writer_dies_with_a_killed_main_process_and_holds_no_lock_after(
    tmp_path: Path, one_process: Path
):
    """SIGKILL of `projector replay` takes its writer process with it (no orphan keeps
    writing, nothing half-committed); resume completes to the same digest."""
    target = tmp_path / "t.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "projector", "-q", "replay", str(REBASE), str(target)]
        + ["--batch-size", "7", "--on-invalid", "park"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    children: list[int] = []
    while not children and time.monotonic() < deadline and proc.poll() is None:
        children = _children(proc.pid)
        time.sleep(0.005)
    if not children:
        proc.wait()
        pytest.skip("the replay finished before its writer process was seen")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for child in children:
        for _ in range(200):
            if not Path(f"/proc/{child}").exists() or "Z" in _state(child):
                break
            time.sleep(0.01)
        assert not Path(f"/proc/{child}").exists() or "Z" in _state(child), child
    again = subprocess.run(
        [sys.executable, "-m", "projector", "-q", "resume", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if again.returncode != 0:  # killed before the run recorded itself: start again
        assert "no migration recorded" in again.stderr or "not a projector" in again.stderr
        replay(REBASE, target, options(writer=False))
    assert digest(target) == digest(one_process)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_batch_is_sent_in_parts_of_bounded_size():
    """The writer never holds a whole batch: an executemany of many rows is cut into
    parts of at most PART_ROWS rows, in order, each statement whole otherwise."""
    rows = [(i,) for i in range(5 * writer_module.PART_ROWS + 3)]
    ops = [("one", "A", (), False), ("many", "B", rows, True), ("many", "C", rows[:5], True)]
    parts = writer_module._parts(ops)  # type: ignore[arg-type]
    assert all(
        sum(len(p) for v, _, p, _ in part if v == "many") <= writer_module.PART_ROWS
        for part in parts
    )
    flat = [(v, s, tuple(p) if v == "many" else p) for part in parts for v, s, p, _ in part]
    assert [op for op in flat if op[1] == "A"] == [("one", "A", ())]
    assert [row for v, s, p in flat if s == "B" for row in p] == rows
    assert [row for v, s, p in flat if s == "C" for row in p] == rows[:5]
    assert [s for _, s, _ in flat] == sorted(s for _, s, _ in flat)  # order kept


def test_a_writer_that_cannot_start_leaves_the_run_to_write_its_batches_itself(
    tmp_path: Path, one_process: Path, monkeypatch: pytest.MonkeyPatch
):
    """No process to be had (a sandbox, a limit on processes): the run writes each batch
    itself, as on one core, with the same result."""

    def no_process(*args: object, **kw: object) -> None:
        raise OSError("fork: resource temporarily unavailable")

    monkeypatch.setattr(writer_module.subprocess, "Popen", no_process)
    target = tmp_path / "t.db"
    result = replay(REBASE, target, options(writer=True))
    assert result.writer_peak_mb is None and result.state == "complete"
    assert digest(target) == digest(one_process) and parked(target) == parked(one_process)


def _deviations(path: Path) -> list[tuple[object, ...]]:
    conn = connect_readonly(path)
    try:
        return conn.execute(
            "SELECT position, deviation, entity, detail FROM _projector_deviations "
            "ORDER BY position, entity"
        ).fetchall()
    finally:
        conn.close()


def test_a_writer_process_writes_noted_rows_as_one_process_does(tmp_path: Path):
    """Text holding U+0000 (a deviation recorded for verify) and a lone surrogate (a batch
    written as LiveStore writes it) in a log of several batches: the writer process gives
    the same rows, deviations and warnings as one process."""
    source = tmp_path / "ai-desk"
    source.mkdir()
    shutil.copy(SMALL / "eventlog@6.db", source / "eventlog@6.db")
    conn = sqlite3.connect(source / "eventlog@6.db")
    with conn:
        added = conn.execute(
            "SELECT seqNumGlobal, seqNumClient FROM eventlog WHERE name = 'v1.MemoryAdded' "
            "ORDER BY seqNumGlobal, seqNumClient"
        ).fetchall()
        for (g, c), text in zip(added[2::20], ["a\\u0000b", "cut \\ud83d here"], strict=False):
            conn.execute(
                'UPDATE eventlog SET argsJson = replace(argsJson, \'"content":"\', '
                '\'"content":"\' || ?) WHERE seqNumGlobal = ? AND seqNumClient = ?',
                (text, g, c),
            )
    conn.close()
    targets, results = {}, {}
    for writer in (False, True):
        targets[writer] = tmp_path / f"writer-{writer}.db"
        results[writer] = replay(source, targets[writer], options(writer=writer, batch_size=20))
    assert digest(targets[True]) == digest(targets[False])
    assert _deviations(targets[True]) == _deviations(targets[False]) != []
    kinds = {w: dict(r.warnings) for w, r in results.items()}
    assert kinds[True] == kinds[False]
    assert {"nul-in-text", "lone-surrogate"} <= set(kinds[True])


# ---------------------------------------------------------------- the compiled part runner

COMPILED_WRITER = _native.extension("projector._writer")
needs_compiled_writer = pytest.mark.skipif(
    COMPILED_WRITER is None, reason="the compiled build (make install) is not loaded"
)
_SCHEMA = (
    "CREATE TABLE t (n INTEGER PRIMARY KEY, v);"
    "CREATE TABLE c (n INTEGER PRIMARY KEY, v CHECK (v IS NULL OR v != 'bad'), w NOT NULL);"
    "CREATE TABLE tracking (application_name TEXT, notification_id INTEGER, "
    "PRIMARY KEY (application_name));"
)
_TRACK = TrackingView().insert_statement(7)


def _nested(value: Any, depth: int) -> Any:
    """VALUE inside DEPTH lists."""
    for _ in range(depth):
        value = [value]
    return value


#: Parts the writer may receive, each as both runners must take it: (name, ops).
PARTS: list[tuple[str, list[Any]]] = [
    (
        "every value, by position, in rows of both kinds",
        [
            (
                "many",
                "INSERT INTO t (n, v) VALUES (?, ?)",
                [[n, v] for n, v in enumerate(VALUES)],
                True,
            )
        ],
    ),
    (
        "one statement, named parameters, a statement without any",
        [
            ("one", "INSERT INTO t (n, v) VALUES (:n, :v)", {"v": "named", "n": 1, "x": 2}, False),
            ("one", "INSERT INTO t (n, v) VALUES (2, 'none')", [], False),
            ("one", "UPDATE t SET v = ? WHERE n = ?  -- a comment after it", ["changed", 1], False),
        ],
    ),
    ("the tracking insert", [("track", _TRACK[0], _TRACK[1], False)]),
    (
        "the tracking insert again at the same position",
        [("track", _TRACK[0], _TRACK[1], False), ("track", _TRACK[0], _TRACK[1], False)],
    ),
    (
        "a CHECK the rows break",
        [("many", "INSERT INTO c (n, v, w) VALUES (?, ?, ?)", [[1, "ok", 1], [2, "bad", 1]], True)],
    ),
    (
        "a NOT NULL broken by bookkeeping",
        [("one", "INSERT INTO c (n, v, w) VALUES (?, ?, ?)", [1, "ok", None], False)],
    ),
    (
        "an integer beyond SQLite's",
        [("many", "INSERT INTO t (n, v) VALUES (?, ?)", [[1, 2**63]], True)],
    ),
    (
        "an unsigned 64-bit integer in bookkeeping",
        [("one", "INSERT INTO t (n, v) VALUES (?, ?)", [1, 2**64 - 1], False)],
    ),
    ("a list as a value", [("many", "INSERT INTO t (n, v) VALUES (?, ?)", [[1, [1, 2]]], True)]),
    ("a map as a value", [("many", "INSERT INTO t (n, v) VALUES (?, ?)", [[1, {"a": 1}]], True)]),
    ("too few values", [("many", "INSERT INTO t (n, v) VALUES (?, ?)", [[1]], True)]),
    ("too many values", [("one", "INSERT INTO t (n, v) VALUES (?, ?)", [1, 2, 3], False)]),
    ("a missing name", [("one", "INSERT INTO t (n, v) VALUES (:n, :v)", {"n": 1}, False)]),
    ("names for positions", [("one", "INSERT INTO t (n, v) VALUES (?, ?)", {"n": 1}, False)]),
    ("no such table", [("many", "INSERT INTO nowhere VALUES (?)", [[1]], True)]),
    ("not SQL", [("one", "INSERT INTO", [], False)]),
    ("two statements", [("one", "DELETE FROM t; DELETE FROM c", [], False)]),
    ("executemany of a query", [("many", "SELECT ?", [[1]], True)]),
    (
        "values nested past any depth",
        [
            (
                "many",
                "INSERT INTO t (n, v) VALUES (?, ?)",
                [[1, "fine"], [2, _nested([1], 200)], [3, _nested({"k": 1}, 200)]],
                True,
            )
        ],
    ),
    (
        "statements of whitespace or comments only",
        [("one", "", [], False), ("one", " -- nothing\n/* nor this */", [], False)],
    ),
    ("a tracking statement of nothing", [("track", " ", {}, False)]),
    ("an executemany of nothing", [("many", "", [[1]], True)]),
    ("SQL holding a NUL", [("one", "INSERT INTO t (n, v) VALUES (1, 2)\x00", [], False)]),
    (
        "rows after a failure are not run",
        [
            (
                "many",
                "INSERT INTO t (n, v) VALUES (?, ?)",
                [[1, "a"], [1, "duplicate"], [2, "b"]],
                True,
            ),
            ("one", "INSERT INTO t (n, v) VALUES (3, 'after')", [], False),
        ],
    ),
]


#: How each of PARTS ends, by its name: every kind of end the writer answers with.
ENDS = {
    "every value, by position, in rows of both kinds": "ok",
    "one statement, named parameters, a statement without any": "ok",
    "the tracking insert": "ok",
    "the tracking insert again at the same position": "TrackingRefused",
    "a CHECK the rows break": "RowRefused",
    "a NOT NULL broken by bookkeeping": "IntegrityError",
    "an integer beyond SQLite's": "RowRefused",
    "an unsigned 64-bit integer in bookkeeping": "OverflowError",
    "a list as a value": "RowRefused",
    "a map as a value": "RowRefused",
    "too few values": "ProgrammingError",
    "too many values": "ProgrammingError",
    "a missing name": "ProgrammingError",
    "names for positions": "ProgrammingError",
    "no such table": "OperationalError",
    "not SQL": "OperationalError",
    "two statements": "ProgrammingError",
    "executemany of a query": "ProgrammingError",
    "rows after a failure are not run": "RowRefused",
    "values nested past any depth": "RowRefused",
    "statements of whitespace or comments only": "ok",
    "a tracking statement of nothing": "TrackingRefused",
    "an executemany of nothing": "ProgrammingError",
    "SQL holding a NUL": "ProgrammingError",
}


def _outcome(run: Any, conn: Any, part: bytes) -> tuple[Any, ...]:
    """What running PART did: ("ok",) or the exception's class, text and SQLite code."""
    try:
        run(conn, part)
    except Exception as exc:  # compared, whatever it is
        return (type(exc).__name__, str(exc), getattr(exc, "sqlite_errorcode", None))
    return ("ok",)


def _tables(path: Path) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return [
            conn.execute(
                f"SELECT *, {', '.join(f'typeof({c}), quote({c})' for c in cols)} FROM {t}"
            ).fetchall()
            for t, cols in (("t", "nv"), ("c", "nvw"), ("tracking", ("notification_id",)))
        ]
    finally:
        conn.close()


@needs_compiled_writer
@pytest.mark.parametrize(("name", "ops"), PARTS, ids=[name for name, _ in PARTS])
def test_the_compiled_writer_runs_a_part_as_the_sqlite3_module_does(
    tmp_path: Path, name: str, ops: list[Any]
):
    """projector/_writer.c runs a part from its MessagePack; the sqlite3 module runs the
    decoded part (`execute_ops`). Both leave the same rows (typeof and quote of every
    cell) and fail the same way: the same exception class, text and SQLite code, and the
    same verdict on whether the rows are at fault (`RowRefused`)."""
    part = msgspec.msgpack.encode(ops)
    decode = msgspec.msgpack.Decoder().decode
    results = []
    for runner in ("module", "compiled"):
        path = tmp_path / f"{runner}.db"
        setup = sqlite3.connect(path)
        setup.executescript(_SCHEMA)
        setup.close()
        if runner == "module":
            conn: Any = sqlite3.connect(path, isolation_level=None)
            run: Any = lambda c, p: writer_module.execute_ops(c, decode(p))  # noqa: E731
        else:
            conn = COMPILED_WRITER.Connection(str(path))
            run = writer_module.run_packed
        conn.execute("BEGIN")
        outcome = _outcome(run, conn, part)
        assert conn.in_transaction
        conn.execute("COMMIT" if outcome == ("ok",) else "ROLLBACK")
        assert not conn.in_transaction
        conn.close()
        results.append((outcome, _tables(path)))
    assert results[0] == results[1]
    assert results[0][0][0] == ENDS[name]


@needs_compiled_writer
def test_the_compiled_writer_says_a_part_is_not_its_own(tmp_path: Path):
    """Bytes that are no part the main process writes are a bug (ValueError), not a value
    the target refused: nothing of them is run."""
    conn = COMPILED_WRITER.Connection(str(tmp_path / "t.db"))
    conn.execute("CREATE TABLE t (v)")
    good = msgspec.msgpack.encode([("one", "INSERT INTO t VALUES (1)", [], False)])
    text = msgspec.msgpack.encode([("one", "INSERT INTO t VALUES (?)", ["x" * 40], False)])
    cut = text.index(b"\xd9") + 1  # inside the value's length
    never_used = text.replace(b"\xd9(" + b"x" * 40, b"\xc1")  # 0xc1: no MessagePack type
    for bad in (
        b"",
        b"\xc1",
        good[:-1],
        good + b"\x00",
        msgspec.msgpack.encode([("one",)]),
        text[:cut],
        text[: cut + 10],
        never_used,
    ):
        with pytest.raises(ValueError, match="not the writer's MessagePack"):
            conn.run(bad)
    datetime_value = msgspec.msgpack.encode(
        [("one", "INSERT INTO t VALUES (?)", [msgspec.msgpack.Ext(1, b"x")], False)]
    )
    with pytest.raises(ValueError, match="extension"):
        conn.run(datetime_value)
    assert conn.run(good) is None
    conn.close()
    with pytest.raises(ValueError, match="closed"):
        conn.run(good)


@needs_compiled_writer
def test_the_writer_process_runs_its_parts_in_c_when_built(tmp_path: Path):
    """With the compiled build, the writer process is told where projector._writer lies
    (its argv), and a batch through it leaves what the sqlite3 module would."""
    target = tmp_path / "t.db"
    sqlite3.connect(target).executescript(_SCHEMA)
    writer = BatchWriter(target, [])
    try:
        args: Any = writer.proc.args
        assert args[-1] == str(Path(COMPILED_WRITER.__file__).resolve())
        writer.ready()
        assert writer.submit(PARTS[0][1]) is True
        writer.wait()
    finally:
        writer.close()
    expected = tmp_path / "e.db"
    conn = sqlite3.connect(expected)
    conn.executescript(_SCHEMA)
    writer_module.execute_ops(conn, PARTS[0][1])
    conn.commit()
    conn.close()
    assert _tables(target) == _tables(expected)


def test_a_deeply_nested_value_is_parked_with_the_writer_process_as_without(tmp_path: Path):
    """An arg nested 63 levels deep in a column with no codec (trial 35): the target
    cannot bind it, and the event is parked for it, whichever process writes (the
    compiled runner once called such a part malformed, stopping every run and resume)."""
    deep: Any = "x"
    for _ in range(63):
        deep = {"k": deep}
    events: list[tuple[str, dict[str, Any] | str]] = [
        ("v1.ItemAdded", {"id": f"i{n}", "name": deep if n == 2 else f"n{n}"}) for n in (1, 2, 3)
    ]
    log = write_ndjson(tmp_path / "deep.ndjson", events)
    catalog = Catalog.load(ROOT / "tests" / "catalogs" / "features")
    by_writer, by_one = tmp_path / "w.db", tmp_path / "o.db"
    result = replay(log, by_writer, options(writer=True, catalog=catalog))
    replay(log, by_one, options(writer=False, catalog=catalog))
    assert (result.read, result.applied, dict(result.parked)) == (3, 2, {"invalid": 1})
    assert "items.name: type 'dict' is not supported" in result.examples[0]["reason"]
    assert digest(by_writer) == digest(by_one) and parked(by_writer) == parked(by_one)


@pytest.mark.skipif(sys.platform != "linux", reason="F_SETPIPE_SZ is Linux only")
def test_the_pipe_to_the_writer_holds_a_mebibyte(tmp_path: Path):
    """A batch's 2 MB go to the writer through a pipe widened to PIPE_BYTES (Linux's
    default is 64 KiB), so the two processes wake each other far less often."""
    import fcntl

    writer = BatchWriter(tmp_path / "t.db", [])
    try:
        assert writer.proc.stdin is not None
        size = fcntl.fcntl(writer.proc.stdin.fileno(), fcntl.F_GETPIPE_SZ)
        assert size == writer_module.PIPE_BYTES
        writer.ready()
    finally:
        writer.close()
