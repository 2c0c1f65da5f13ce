"""An eventlog in every state a real machine leaves it: read, never changed, named right.

WAL with or without its -wal/-shm files, a hot rollback journal left by a crash, a file
locked by another process, a read-only medium, several storage formats in one store
folder. Every command here runs inside `untouched(...)`: the source folder is
byte-identical afterwards and no file appeared in it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

from events import sqlite_source
from events.errors import SourceBusy, SourceError
from events.sources import open_source
from projector.cli import cli
from projector.errors import Interrupted
from projector.replay import ReplayOptions, replay
from projector.verify import verify
from tests.conftest import MICRO, ROOT, SMALL, untouched

SMALL_KEYS = [(e.event_id, e.name, e.args_json) for e in open_source(SMALL).events()]


def _keys(path: Path, **kw: object) -> list[tuple[str, str, str]]:
    source = open_source(path, **kw)  # type: ignore[arg-type]
    try:
        return [(e.event_id, e.name, e.args_json) for e in source.events()]
    finally:
        source.close()


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )


#: Appends 30 events in WAL mode and dies before any checkpoint: -wal and -shm stay.
_WAL_CRASH = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("PRAGMA wal_autocheckpoint = 0")
conn.execute(
    "INSERT INTO eventlog SELECT seqNumGlobal + 1000, seqNumClient, seqNumRebaseGeneration, "
    "parentSeqNumGlobal + 1000, parentSeqNumClient, parentSeqNumRebaseGeneration, name, "
    "argsJson, clientId, sessionId, schemaHash, syncMetadataJson FROM eventlog "
    "WHERE seqNumGlobal <= 30 AND seqNumClient = 0"
)
os._exit(0)
"""

#: Rewrites every argsJson in one transaction and dies before the commit: the database
#: file holds half-written pages, the -journal the committed ones (a hot journal).
_COMMIT_CRASH = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size = 2")
conn.execute("BEGIN")
conn.execute("UPDATE eventlog SET argsJson = argsJson || '   '")
os._exit(0)
"""

#: Holds an EXCLUSIVE lock (as the sqlite3 CLI or a DB browser mid-transaction does).
_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE eventlog SET argsJson = argsJson WHERE seqNumGlobal = 1")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


@pytest.fixture
def store(small_copy: Path) -> Path:
    return small_copy


def _wal_mode(store: Path) -> None:
    conn = sqlite3.connect(store / "eventlog@6.db")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()  # the last connection checkpoints and removes -wal and -shm
    assert sorted(p.name for p in store.iterdir()) == ["eventlog@6.db", "state-11367593325@6.db"]


def test_a_wal_mode_eventlog_without_wal_or_shm_files_is_read_without_creating_them(store: Path):
    """A WAL-mode log alone (no -wal, no -shm) is read from a private copy, and says so."""
    _wal_mode(store)
    with untouched(store), capture_logs() as logs:
        assert _keys(store) == SMALL_KEYS
    assert any(e["event"] == "source.snapshot" and "WAL" in e["detail"] for e in logs)


def test_a_private_copy_that_cannot_be_made_names_the_temporary_folder(
    store: Path, monkeypatch: pytest.MonkeyPatch
):
    """A full temporary folder is named as the problem (and TMPDIR as the way out), not
    the source folder, which nothing writes to."""
    _wal_mode(store)

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("events.sqlite_source.shutil.copyfile", full)
    result = CliRunner().invoke(cli, ["inspect", str(store)])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith(f"Error: {store / 'eventlog@6.db'}: cannot copy it to read it (")
    assert f") into {tempfile.gettempdir()}: " in line
    assert line.endswith(": No space left on device; set TMPDIR to a folder with room")


@pytest.mark.parametrize("shm", [True, False], ids=["with -shm", "without -shm"])
def test_committed_events_still_in_the_wal_file_are_read(store: Path, shm: bool):
    """Events committed to the -wal file but not yet checkpointed are part of the history."""
    _run_python(_WAL_CRASH, str(store / "eventlog@6.db"))
    if not shm:
        (store / "eventlog@6.db-shm").unlink()
    assert (store / "eventlog@6.db-wal").exists()
    with untouched(store):
        keys = _keys(store)
        runner = CliRunner()
        result = runner.invoke(cli, ["inspect", str(store), "--json"])
    assert len(keys) == 230 and keys[:200] == SMALL_KEYS and keys[-1][0] == "e1030"
    assert result.exit_code == 0, result.output
    assert "private copy" in json.loads(result.stdout)["readFrom"]


def _hot_journal(store: Path) -> None:
    _run_python(_COMMIT_CRASH, str(store / "eventlog@6.db"))
    assert (store / "eventlog@6.db-journal").stat().st_size > 0


def test_a_hot_journal_is_rolled_back_in_a_private_copy_never_in_place(store: Path):
    """After a crash mid-commit, the committed log is read; the journal stays where it was."""
    _hot_journal(store)
    with untouched(store), capture_logs() as logs:
        assert _keys(store) == SMALL_KEYS
    assert any(e["event"] == "source.snapshot" and "hot journal" in e["detail"] for e in logs)


def test_replay_and_verify_of_a_store_with_a_hot_journal(store: Path, target: Path):
    """The whole flow works on such a store, and records the store's own path."""
    _hot_journal(store)
    runner = CliRunner()
    with untouched(store):
        done = runner.invoke(cli, ["replay", str(store), str(target), "--json"])
        checked = runner.invoke(cli, ["verify", str(target)])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["source"] == str(store / "eventlog@6.db")
    assert checked.exit_code == 0, checked.output
    assert f"({(store / 'eventlog@6.db').resolve()})" in checked.stdout


@contextmanager
def _locked(eventlog: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(eventlog), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        yield holder
    finally:
        holder.wait(timeout=60)


def test_a_locked_eventlog_is_waited_for_then_named_locked_not_corrupt(store: Path):
    """Past --lock-timeout: "locked by another process: is the app still running?", exit 75."""
    runner = CliRunner()
    with untouched(store), _locked(store / "eventlog@6.db", 2.0):
        started = time.monotonic()
        with pytest.raises(SourceBusy) as info:
            open_source(store, lock_timeout=0.3)
        waited = time.monotonic() - started
        result = runner.invoke(cli, ["inspect", str(store), "--lock-timeout", "0.3"])
    message = str(info.value)
    assert "locked by another process: is the app still running?" in message
    assert "corrupt" not in message and 0.3 <= waited < 1.5
    assert result.exit_code == 75 and "locked by another process" in result.stderr


def test_a_lock_released_within_the_timeout_is_waited_out(store: Path, target: Path):
    """The app closing the file while the projector waits: the run goes on and says it waited."""
    runner = CliRunner(env={"PROJECTOR_LOCK_TIMEOUT": "20"})
    with untouched(store), _locked(store / "eventlog@6.db", 1.0):
        result = runner.invoke(cli, ["replay", str(store), str(target)])
    assert result.exit_code == 0, result.output
    assert "source.locked" in result.stderr
    assert verify(target).ok


def test_a_file_that_is_really_damaged_is_still_called_corrupt(store: Path):
    """Garbage in the middle of the file, nobody writing: "corrupt", at once."""
    eventlog = store / "eventlog@6.db"
    data = bytearray(eventlog.read_bytes())
    data[8192 * 3 : 8192 * 6] = os.urandom(8192 * 3)
    eventlog.write_bytes(bytes(data))
    started = time.monotonic()
    with untouched(store), pytest.raises(SourceError, match="corrupt") as info:
        _keys(store)
    assert not isinstance(info.value, SourceBusy) and time.monotonic() - started < 2


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run as an unprivileged user (root ignores file modes), or as is when not root."""
    command = [sys.executable, "-m", "projector", *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop to a read-only user")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, check=False, timeout=120
    )


@pytest.mark.parametrize(
    "state", ["plain", "hot journal", "wal"], ids=["plain", "with a hot journal", "in WAL mode"]
)
def test_a_store_on_a_read_only_medium_is_read(state: str):
    """A folder the user cannot write (a read-only mount, another user's files) is read,
    even with a hot journal beside the eventlog, or in WAL mode with its -wal file."""
    top = Path(tempfile.mkdtemp(prefix="projector-ro-"))
    try:
        store = top / "ai-desk"
        shutil.copytree(SMALL, store)
        for p in store.iterdir():
            p.chmod(0o644)
        if state == "hot journal":
            _hot_journal(store)
        elif state == "wal":
            _run_python(_WAL_CRASH, str(store / "eventlog@6.db"))
        out = top / "out"
        out.mkdir()
        for p in store.iterdir():
            p.chmod(0o444)
        store.chmod(0o555)
        top.chmod(0o755)
        out.chmod(0o777)
        if os.geteuid() == 0:
            probe = _as_nobody("--version")
            if probe.returncode != 0:
                pytest.skip(f"cannot run the CLI as nobody here: {probe.stderr.strip()[:200]}")
        with untouched(store):
            inspected = _as_nobody("inspect", str(store), "--json")
            replayed = _as_nobody("-q", "replay", str(store), str(out / "t.db"))
        assert inspected.returncode == 0, inspected.stderr
        assert json.loads(inspected.stdout)["events"] == (230 if state == "wal" else 200)
        assert replayed.returncode == 0, replayed.stderr
    finally:
        for p in top.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(top)


# ---------------------------------------------------------------- formats


def _add_column(eventlog: Path) -> None:
    conn = sqlite3.connect(eventlog)
    conn.execute("ALTER TABLE eventlog ADD COLUMN causedBy TEXT")
    conn.commit()
    conn.close()


def test_an_unknown_newer_format_is_refused_naming_the_known_ones_and_the_older_file(
    store: Path, target: Path
):
    """eventlog@7.db beside eventlog@6.db: refused, not read as 6; --format-version 6 reads 6."""
    shutil.copy(store / "eventlog@6.db", store / "eventlog@7.db")
    _add_column(store / "eventlog@7.db")
    runner = CliRunner()
    with untouched(store):
        with pytest.raises(SourceError) as info:
            open_source(store)
        chosen = runner.invoke(cli, ["replay", str(store), str(target), "--format-version", "6"])
    message = str(info.value)
    assert "eventlog@7.db" in message and "format 7 is unknown" in message
    assert "4 (LiveStore 0.3.x), 6 (LiveStore 0.4.x)" in message
    assert "eventlog@6.db" in message and "--format-version 6" in message
    assert chosen.exit_code == 0, chosen.output


def test_an_unknown_format_named_directly_is_refused(store: Path):
    shutil.copy(store / "eventlog@6.db", store / "eventlog@7.db")
    with untouched(store), pytest.raises(SourceError, match="format 7 is unknown"):
        open_source(store / "eventlog@7.db")


@pytest.mark.parametrize(
    "change, expected",
    [
        ("ALTER TABLE eventlog ADD COLUMN causedBy TEXT", "unknown column(s) causedBy"),
        ("ALTER TABLE eventlog DROP COLUMN clientId", "lacks column(s) clientId"),
        (
            "ALTER TABLE eventlog RENAME COLUMN schemaHash TO schemaHashV2",
            "unknown column(s) schemaHashV2; lacks column(s) schemaHash",
        ),
    ],
    ids=["extra column", "missing column", "renamed column"],
)
def test_columns_are_checked_against_the_formats_ddl(store: Path, change: str, expected: str):
    """A table that is not exactly format 6's is refused, with what differs."""
    conn = sqlite3.connect(store / "eventlog@6.db")
    conn.execute(change)
    conn.commit()
    conn.close()
    with untouched(store), pytest.raises(SourceError) as info:
        open_source(store)
    assert expected in str(info.value) and "not LiveStore format 6's" in str(info.value)


def test_a_file_named_for_one_format_holding_another_is_refused(store: Path):
    """eventlog@6.db holding a 0.3.x (format 4) table is not guessed at."""
    shutil.copy(MICRO / "eventlog@4.db", store / "eventlog@6.db")
    with untouched(store), pytest.raises(SourceError, match="lacks column"):
        open_source(store)


def test_an_eventlog_file_under_another_name_gets_its_format_from_its_columns(tmp_path: Path):
    """A devtools download (livestore-eventlog-<ts>.db) is recognised by its columns."""
    for source, version in ((SMALL / "eventlog@6.db", 6), (MICRO / "eventlog@4.db", 4)):
        copy = tmp_path / f"livestore-eventlog-{version}.db"
        shutil.copy(source, copy)
        assert open_source(copy).format_version == version
        with pytest.raises(SourceError, match=f"is storage format {version}, not"):
            open_source(copy, format_version=10 - version)


def test_an_older_eventlog_with_history_the_newer_lacks_makes_the_user_choose(store: Path):
    """A 0.3 -> 0.4 upgrade leaves eventlog@4.db with events eventlog@6.db lacks: say so."""
    shutil.copy(MICRO / "eventlog@4.db", store / "eventlog@4.db")
    runner = CliRunner()
    with untouched(store):
        with pytest.raises(SourceError) as info:
            open_source(store)
        old = runner.invoke(cli, ["inspect", str(store), "--format-version", "4", "--json"])
        new = runner.invoke(cli, ["inspect", str(store), "--format-version", "6", "--json"])
    message = str(info.value)
    assert "eventlog@4.db (format 4) holds 5 event(s) that eventlog@6.db lacks" in message
    assert "--format-version 4 or --format-version 6" in message
    assert json.loads(old.stdout)["formatVersion"] == 4 and json.loads(old.stdout)["events"] == 5
    assert json.loads(new.stdout)["events"] == 200


def test_an_older_eventlog_whose_events_are_all_in_the_newer_is_passed_over(store: Path):
    """When eventlog@6.db holds every event of eventlog@4.db, the store reads eventlog@6.db."""
    old = store / "eventlog@4.db"
    conn = sqlite3.connect(old)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS 'eventlog' ('seqNumGlobal' integer not null , "
        "'seqNumClient' integer not null , 'parentSeqNumGlobal' integer not null , "
        "'parentSeqNumClient' integer not null , 'name' text not null , 'argsJson' text not null "
        ", 'clientId' text not null , 'sessionId' text not null , 'schemaHash' integer not null "
        ", 'syncMetadataJson' text not null , PRIMARY KEY ('seqNumGlobal', 'seqNumClient')) strict"
    )
    conn.execute(f"ATTACH '{store / 'eventlog@6.db'}' AS new")
    conn.execute(
        "INSERT INTO eventlog SELECT seqNumGlobal, seqNumClient, parentSeqNumGlobal, "
        "parentSeqNumClient, name, argsJson, clientId, sessionId, schemaHash, syncMetadataJson "
        "FROM new.eventlog WHERE seqNumGlobal <= 40"
    )
    conn.commit()
    conn.close()
    with untouched(store):
        source = open_source(store)
    assert source.path.name == "eventlog@6.db" and source.format_version == 6


def test_format_version_for_a_json_source_is_refused():
    with pytest.raises(SourceError, match="picks a store directory"):
        open_source(ROOT / "fixtures" / "small" / "events.ndjson", format_version=6)


def test_replay_options_reach_the_source(store: Path, target: Path):
    """ReplayOptions.format_version picks the eventlog; lock_timeout bounds the wait."""
    shutil.copy(MICRO / "eventlog@4.db", store / "eventlog@4.db")
    with untouched(store), _locked(store / "eventlog@6.db", 1.5):
        with pytest.raises(SourceBusy):
            replay(store, target, ReplayOptions(format_version=6, lock_timeout=0.2))
    assert not target.exists()
    assert sqlite_source.DEFAULT_LOCK_TIMEOUT == 10.0


def test_an_empty_journal_beside_the_eventlog_is_no_reason_to_copy(store: Path):
    """A zero-byte -journal (not hot) is read past in place."""
    (store / "eventlog@6.db-journal").write_bytes(b"")
    with untouched(store), capture_logs() as logs:
        assert _keys(store) == SMALL_KEYS
    assert not any(e["event"] == "source.snapshot" for e in logs)


def test_a_history_rewritten_while_it_is_read_is_an_error_not_a_mix(
    store: Path, monkeypatch: pytest.MonkeyPatch
):
    """Events already streamed that change meanwhile (a rebase) stop the read, saying so."""
    monkeypatch.setattr(sqlite_source, "PAGE_ROWS", 50)
    source = open_source(store)
    stream = source.events()
    first = [next(stream) for _ in range(50)]
    conn = sqlite3.connect(store / "eventlog@6.db")
    conn.execute(
        "UPDATE eventlog SET seqNumRebaseGeneration = 1 "
        "WHERE seqNumGlobal = ? AND seqNumClient = ?",
        (first[-1].seq_global, first[-1].seq_client),
    )
    conn.commit()
    conn.close()
    with pytest.raises(SourceError, match=f"{first[-1].event_id} is gone or changed"):
        list(stream)
    source.close()


def test_a_file_changing_under_every_read_is_busy_not_corrupt(
    store: Path, monkeypatch: pytest.MonkeyPatch
):
    """Past the lock timeout a file that never holds still is named as changing (exit 75)."""
    source = open_source(store, lock_timeout=0.2)
    ticks = iter(range(10**9))
    monkeypatch.setattr(
        sqlite_source._Reader, "_fingerprint", lambda self: (next(ticks), 0, 0, b"", None, None)
    )
    with pytest.raises(SourceBusy, match="kept changing under every read"):
        list(source.events())
    source.close()


def test_verify_of_a_target_whose_source_is_locked_exits_75(store: Path, target: Path):
    """verify re-reads the source: locked past the timeout, it says so with exit 75."""
    replay(store, target)
    runner = CliRunner()
    with untouched(store), _locked(store / "eventlog@6.db", 1.5):
        result = runner.invoke(cli, ["verify", str(target), "--lock-timeout", "0.2"])
    assert result.exit_code == 75 and "locked by another process" in result.stderr


def test_resume_of_a_target_whose_source_is_locked_exits_75(store: Path, target: Path):
    """resume reads the recorded source: locked past the timeout, exit 75 (try again
    later), not a hint that the source moved."""
    with pytest.raises(Interrupted):
        replay(store, target, ReplayOptions(batch_size=50, should_stop=lambda: True))
    runner = CliRunner()
    with untouched(store), _locked(store / "eventlog@6.db", 1.5):
        result = runner.invoke(cli, ["resume", str(target), "--lock-timeout", "0.2"])
    assert result.exit_code == 75 and "locked by another process" in result.stderr
    assert "moved" not in result.stderr
