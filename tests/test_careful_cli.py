"""A careful user's CLI: a refusal changes nothing, every error is one line, parked events
in plain sight, backups that do not eat the disk, the usual command-line conventions.

Each test drives `projector` through click's CliRunner (stdout and stderr apart) or a
subprocess, the way a user would, and says what the user can rely on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from projector.cli import cli
from projector.lock import writer_lock
from tests.conftest import (
    FIXTURES,
    MICRO,
    REBASE,
    ROOT,
    SMALL,
    SMALL_STATE,
    sha256,
    tree_sha256,
    write_ndjson,
)

CMD = [sys.executable, "-m", "projector"]
PENDING = (
    "INSERT INTO eventlog VALUES (?, 0, ?, ?, 0, 0, 'v1.ConfigSet', "
    "'{\"key\":\"pending.key\",\"value\":1}', 'desktop-A', 'static', 1018277581, "
    '\'{"_tag":"None"}\')'
)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def one_error_line(result: Result, code: int = 1) -> str:
    """The single `Error: ...` line of a failed command (and no traceback anywhere)."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def snapshot(target: Path) -> dict[str, Any]:
    """Everything a user can observe of TARGET: its bytes, digest, status, verify report,
    and the files beside it (SQLite's -wal/-shm included: no reader leaves them)."""
    status = json.loads(ok("status", target, "--json").stdout)
    verify = invoke("verify", target, "--json")
    files = sorted(p.name for p in target.parent.iterdir())
    return {
        "sha256": sha256(target),
        "digest": json.loads(ok("digest", target, "--json").stdout),
        "status": status,
        "verify": (verify.exit_code, json.loads(verify.stdout)),
        "files": files,
    }


def store_copy(tmp_path: Path, name: str, source: Path = SMALL) -> Path:
    """A writable copy of a fixture's store folder, named NAME."""
    dest = tmp_path / name / "ai-desk"
    shutil.copytree(source, dest)
    for p in dest.iterdir():
        p.chmod(0o644)
    return dest


def edit(store: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    with contextlib.closing(sqlite3.connect(store / "eventlog@6.db")) as conn, conn:
        for sql, params in statements:
            conn.execute(sql, params)


def hold_back(store: Path, after_global: int) -> list[tuple[Any, ...]]:
    """Remove the events past AFTER_GLOBAL from STORE; return them (to append later)."""
    with contextlib.closing(sqlite3.connect(store / "eventlog@6.db")) as conn, conn:
        rows = conn.execute(
            "SELECT * FROM eventlog WHERE seqNumGlobal > ?", (after_global,)
        ).fetchall()
        conn.execute("DELETE FROM eventlog WHERE seqNumGlobal > ?", (after_global,))
    return rows


def append(store: Path, rows: list[tuple[Any, ...]]) -> None:
    with contextlib.closing(sqlite3.connect(store / "eventlog@6.db")) as conn, conn:
        conn.executemany(f"INSERT INTO eventlog VALUES ({','.join('?' * 12)})", rows)


# ---------------------------------------------------------------- 1. a refusal changes nothing


def _rebased(tmp_path: Path) -> tuple[Path, Path]:
    """The rebase-after-migration case: a store whose pending local event e171 was migrated,
    then rebased by LiveStore (remote e171..e173 arrive, the local event becomes e174r1)."""
    live = store_copy(tmp_path, "live")
    edit(
        live,
        ("DELETE FROM eventlog WHERE seqNumGlobal >= 171", ()),
        (PENDING, (171, 0, 170)),
    )
    after = store_copy(tmp_path, "after")
    edit(after, (PENDING, (174, 1, 173)))
    return live, after


REFUSALS = [
    "rebased",
    "another-store",
    "shorter",
    "export-after-eventlog",
    "eventlog-after-export",
    "failed-first-batch",
]


@pytest.mark.parametrize("kind", REFUSALS)
def test_a_refused_or_failed_run_leaves_the_target_exactly_as_it_was(tmp_path: Path, kind: str):
    """Whatever refuses the run (another history, another store, a shorter source, an
    export of a store migrated from its eventlog or the other way round) or fails it
    before its first commit, the target keeps its bytes, digest, status and verify report;
    no backup, no run left open."""
    target = tmp_path / "out" / "target.db"
    target.parent.mkdir()
    store = store_copy(tmp_path, "store")
    if kind == "failed-first-batch":
        tail = hold_back(store, 150)
    if kind == "rebased":
        store, after = _rebased(tmp_path)
    first = store
    if kind == "eventlog-after-export":
        first = tmp_path / "export.json"
        ok("export", store, first)
    ok("-q", "replay", first, target)
    if kind == "rebased":
        shutil.copy(after / "eventlog@6.db", store / "eventlog@6.db")  # the app rebased
        source, expect = store, "history rewritten since"
    elif kind == "another-store":
        source, expect = REBASE, "another store"
    elif kind == "shorter":
        edit(store, ("DELETE FROM eventlog WHERE seqNumGlobal > 100", ()))
        source, expect = store, "not the history that was migrated"
    elif kind == "export-after-eventlog":
        source = tmp_path / "export.json"
        ok("export", store, source)
        expect = "holds no client-only events"
    elif kind == "eventlog-after-export":
        source, expect = store, "migrated from a `livestore sync export`"
    else:
        bad = list(tail[0])
        bad[6] = "v1.Teleported"  # an unknown event, under the default --on-invalid fail
        append(store, [tuple(bad), *tail[1:]])
        source, expect = store, "unknown event name"
    before = snapshot(target)
    for args in (["replay", source, target], ["replay", source, target, "--dry-run"]):
        assert expect in one_error_line(invoke("-q", *args))
    if kind != "failed-first-batch":
        assert expect in one_error_line(invoke("-q", "resume", target, "--source", source))
    assert snapshot(target) == before
    assert before["status"]["state"] == "complete" and before["status"]["lastRun"]["endedAt"]
    assert not [p for p in target.parent.iterdir() if p.suffix in (".bak", ".lock")]


def test_a_failed_first_run_leaves_no_target_behind(tmp_path: Path):
    """A first run that fails before committing anything does not leave a half target."""
    store = store_copy(tmp_path, "store")
    edit(store, ("UPDATE eventlog SET name = 'v1.Teleported' WHERE seqNumGlobal = 3", ()))
    target = tmp_path / "t.db"
    line = one_error_line(invoke("-q", "replay", store, target))
    assert "v1.Teleported" in line
    assert list(tmp_path.iterdir()) == [tmp_path / "store"]


def test_a_refused_run_or_a_dry_run_leaves_no_folder_it_created(tmp_path: Path):
    """The folders a first run creates for its target go again when it leaves no target:
    refused, failed before its first commit, or a dry run. A folder that was there stays,
    and a run that migrates keeps the ones it made."""
    store = store_copy(tmp_path, "store")
    kept = tmp_path / "kept"
    kept.mkdir()
    target = kept / "new" / "deeper" / "t.db"
    ok("-q", "replay", store, target, "--dry-run")
    assert list(kept.iterdir()) == []
    conn = sqlite3.connect(store / "eventlog@6.db")
    (name,) = conn.execute("SELECT name FROM eventlog WHERE seqNumGlobal = 3").fetchone()
    conn.close()
    edit(store, ("UPDATE eventlog SET name = 'v1.Teleported' WHERE seqNumGlobal = 3", ()))
    one_error_line(invoke("-q", "replay", store, target))
    assert list(kept.iterdir()) == []
    one_error_line(invoke("-q", "replay", store, target, "--catalog", "no-such-catalog"), 1)
    assert list(kept.iterdir()) == []
    # Through a folder that does not exist and ``..``: SQLite takes it as the folder
    # before it (the system would not), and the database it made is taken back there.
    one_error_line(invoke("-q", "replay", store, kept / "missing" / ".." / "dots" / "t.db"))
    assert list(kept.iterdir()) == []
    edit(store, ("UPDATE eventlog SET name = ? WHERE seqNumGlobal = 3", (name,)))
    ok("-q", "replay", store, target)
    assert [p.name for p in target.parent.iterdir()] == ["t.db"]


def test_a_run_that_fails_after_committing_stays_resumable(tmp_path: Path):
    """A failure after some batches keeps them, says the run failed, and resume finishes."""
    store = store_copy(tmp_path, "store")
    edit(store, ("UPDATE eventlog SET name = 'v1.Teleported' WHERE seqNumGlobal = 45", ()))
    target = tmp_path / "t.db"
    line = one_error_line(invoke("-q", "replay", store, target, "--batch-size", "20"))
    # The line says what stays and how to go on, not only what the event is.
    assert "v1.Teleported" in line
    assert line.endswith(
        f"; {target} holds every batch up to #40 (`projector status {target}`): once the "
        f"cause is fixed, `projector resume {target}` goes on from there (or park such "
        f"events: `projector replay {store / 'eventlog@6.db'} {target} --on-invalid park`)"
    )
    info = json.loads(ok("status", target, "--json").stdout)
    assert info["state"] == "interrupted" and info["lastRun"]["state"] == "failed"
    assert info["position"] == 40 and info["applied"] == 40
    edit(store, ("UPDATE eventlog SET name = 'v1.MemoryAdded' WHERE seqNumGlobal = 45", ()))
    ok("-q", "resume", target)
    assert json.loads(ok("status", target, "--json").stdout)["state"] == "complete"
    assert ok("verify", target, "--against", SMALL_STATE).stdout.strip().endswith("verified")


def test_verify_names_the_command_that_catches_a_target_up(tmp_path: Path):
    """A source that holds events not migrated yet fails verify's source check with the
    command to run, for a complete target and an interrupted one alike; running it as
    said verifies."""
    store = store_copy(tmp_path, "store")
    rows = hold_back(store, 150)
    target = tmp_path / "t.db"
    ok("-q", "replay", store, target)
    append(store, rows)

    def source_check() -> str:
        report = json.loads(invoke("verify", target, "--json").stdout)
        (source,) = [c for c in report["checks"] if c["check"] == "source"]
        assert not source["ok"]
        return str(source["detail"])

    assert f"(`projector resume {target}` catches up)" in source_check()
    (name,) = {str(r[6]) for r in rows if r[0] == 170 and r[1] == 0}
    edit(store, ("UPDATE eventlog SET name = 'v1.Teleported' WHERE seqNumGlobal = 170", ()))
    one_error_line(invoke("-q", "resume", target, "--batch-size", "10"))
    assert json.loads(ok("status", target, "--json").stdout)["state"] == "interrupted"
    # Resuming as it stands would stop at the same event: the advice says so.
    assert (
        f"(its last run stopped: `projector resume {target}` goes on once what stopped it is fixed)"
    ) in source_check()
    edit(store, ("UPDATE eventlog SET name = ? WHERE seqNumGlobal = 170", (name,)))
    ok("-q", "resume", target)
    assert ok("verify", target, "--against", SMALL_STATE).stdout.strip().endswith("verified")


def test_a_run_that_fails_in_its_first_batch_says_nothing_was_written(tmp_path: Path):
    """An invalid event under "fail" in a run's first batch: the line says that nothing
    was written (a catch-up: where the target stays) and that parking is the other way;
    the target is as it was, and a replay that parks goes on from there."""
    store = store_copy(tmp_path, "store")
    edit(store, ("UPDATE eventlog SET name = 'v1.Teleported' WHERE seqNumGlobal = 45", ()))
    eventlog = store / "eventlog@6.db"

    def park(target: str, *more: str) -> str:
        flags = " ".join(["--on-invalid park", *more])
        return f" (or park such events: `projector replay {eventlog} {target} {flags}`)"

    new = tmp_path / "new.db"
    line = one_error_line(invoke("-q", "replay", store, new))
    assert "v1.Teleported" in line and line.endswith(f"; nothing was written{park(str(new))}")
    assert not new.exists()
    # The commands it names can be pasted as they are (a path with a space is quoted), and
    # keep what the run was asked for (--strict-keys).
    spaced = tmp_path / "my dir" / "t.db"
    line = one_error_line(invoke("-q", "replay", store, spaced, "--strict-keys"))
    assert line.endswith(f"; nothing was written{park(repr(str(spaced)), '--strict-keys')}")
    # An empty file (SQLite takes it for an empty database) is left empty, as it was.
    empty = tmp_path / "empty.db"
    empty.touch()
    one_error_line(invoke("-q", "replay", store, empty))
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("empty")) == ["empty.db"]
    # A catch-up whose own first batch holds the event: the target stays where it was.
    shorter = store_copy(tmp_path, "shorter")
    edit(shorter, ("DELETE FROM eventlog WHERE seqNumGlobal >= 40", ()))
    target = tmp_path / "t.db"
    ok("-q", "replay", shorter, target)
    before = json.loads(ok("status", target, "--json").stdout)
    digest_before = ok("digest", target).stdout
    line = one_error_line(invoke("-q", "replay", store, target))
    position = before["position"]
    assert line.endswith(
        f"; nothing was written: {target} stays at #{position:,}{park(str(target))}"
    )
    assert json.loads(ok("status", target, "--json").stdout) == before
    assert ok("digest", target).stdout == digest_before
    ok("-q", "replay", store, target, "--on-invalid", "park")
    assert json.loads(ok("status", target, "--json").stdout)["state"] == "complete"


def test_a_source_damaged_past_the_first_batch_says_what_the_target_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A source that breaks mid-run (text that is not UTF-8, on a page read after the
    first batch) keeps the batches before it: the line names the event, says what the
    target holds and that resume goes on once the source is repaired (no advice to park:
    it is no event's fault); repaired, resume finishes."""
    monkeypatch.setattr("events.sqlite_source.PAGE_ROWS", 20)
    store = store_copy(tmp_path, "store")
    edit(
        store, ("UPDATE eventlog SET clientId = CAST(X'63FF' AS TEXT) WHERE seqNumGlobal = 45", ())
    )
    target = tmp_path / "t.db"
    line = one_error_line(invoke("-q", "replay", store, target, "--batch-size", "20"))
    assert "the clientId of event #" in line and "is TEXT that is not UTF-8" in line
    assert line.endswith(
        f"; {target} holds every batch up to #40 (`projector status {target}`): once the "
        f"cause is fixed, `projector resume {target}` goes on from there"
    )
    assert json.loads(ok("status", target, "--json").stdout)["position"] == 40
    edit(store, ("UPDATE eventlog SET clientId = 'c' WHERE seqNumGlobal = 45", ()))
    ok("-q", "resume", target)
    assert json.loads(ok("status", target, "--json").stdout)["state"] == "complete"


# ---------------------------------------------------------------- 2. no traceback from a path


@contextlib.contextmanager
def read_only_mount(path: Path) -> Iterator[None]:
    """PATH (a directory) as a read-only file system; skips where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    bind = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot mount a read-only file system here ({bind.stderr.strip()!r})")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({remount.stderr.strip()!r})")
        yield
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_a_file_named_as_a_folder_is_refused_in_one_line(tmp_path: Path, monkeypatch):
    """A file to write named with a trailing slash (`out/`, `out/.`) is refused naming a
    file to give, where click dropped the slash and replay, export and finalize wrote a
    file of the folder's name; a target named `t.db/` is refused (rollback rolled t.db
    back), and `-` as a database (a file named '-' was written); `.` and `/` as a target
    or an app database are one line, where they raised a traceback (no file name to put
    a sidecar beside). Nothing is written."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    for args, example in [
        (("replay", SMALL, "out/"), "out/target.db"),
        (("export", SMALL, "m5/", "--format", "ndjson"), "m5/events.ndjson"),
        (("finalize", target, "--out", "app/"), "app/app.db"),
    ]:
        result = invoke(*args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert (
            f"'{args[2] if args[0] != 'finalize' else 'app/'}' names a folder; name the file "
            f"in it, e.g. {example}"
        ) in result.stderr
    for args, named in [
        (("replay", SMALL, "out/."), "'out/.' names a folder; name the file in it, e.g. out/."),
        (("status", f"{target}/"), f"'{target}/': {target} is a file; name it without the slash"),
        (("rollback", f"{target}//"), f"{target} is a file; name it without the slash"),
        (("replay", SMALL, "-"), "'-' is no file here: name the file, e.g. ./target.db"),
        (("finalize", target, "--out", "-"), "'-' is no file here: name the file, e.g. ./app.db"),
        (("status", ""), "an empty name: name the file, e.g. ./target.db"),
    ]:
        result = invoke(*args)
        assert result.exit_code == 2 and named in result.stderr, result.output
    for args in [
        ("replay", SMALL, "."),
        ("replay", SMALL, "/"),
        ("verify", "."),
        ("status", "/"),
        ("finalize", target, "--out", "."),
        ("finalize", target, "--out", "/"),
    ]:
        assert "is a directory" in one_error_line(invoke(*args)) or args[0] in ("verify", "status")
    assert not {"out", "m5", "app", "-"} & {p.name for p in tmp_path.iterdir()}
    # `./-` is the file named '-', where pathlib made it '-' and the export went to stdout.
    exported = ok("export", SMALL, "./-", "--format", "ndjson")
    assert exported.stdout == f"wrote 200 events to {tmp_path}/-\n"
    assert (tmp_path / "-").read_text().count("\n") == 200
    (tmp_path / "-").unlink()
    assert ok("status", target).stdout  # rollback did not run


def test_a_target_that_is_a_directory_is_one_line_and_dry_run_says_the_same(tmp_path: Path):
    """TARGET a directory, or a directory where its lock file goes: one line, exit 1, the
    same from --dry-run; nothing is created."""
    folder = tmp_path / "dir"
    folder.mkdir()
    real = one_error_line(invoke("replay", SMALL, folder))
    assert "is a directory" in real
    assert one_error_line(invoke("replay", SMALL, folder, "--dry-run")) == real
    (tmp_path / "t.db.lock").mkdir()
    line = one_error_line(invoke("replay", SMALL, tmp_path / "t.db"))
    assert "lock file" in line
    assert one_error_line(invoke("replay", SMALL, tmp_path / "t.db", "--dry-run")) == line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "t.db.lock"]


def test_a_read_only_file_system_is_one_line_for_every_command(tmp_path: Path):
    """On a read-only mount: writing commands fail with one line naming it (dry run too);
    the reading ones (status, parked, digest, verify, backups) still work."""
    folder = tmp_path / "ro"
    folder.mkdir()
    ok("-q", "replay", SMALL, folder / "t.db")
    with read_only_mount(folder):
        new = one_error_line(invoke("replay", SMALL, folder / "new.db"))
        assert "read-only file system" in new
        assert one_error_line(invoke("replay", SMALL, folder / "new.db", "--dry-run")) == new
        for args in (
            ["replay", SMALL, folder / "t.db"],
            ["replay", SMALL, folder / "t.db", "--dry-run"],
            ["resume", folder / "t.db"],
            ["rollback", folder / "t.db"],
            ["replay-parked", folder / "t.db"],
            ["backups", folder / "t.db", "--prune", "0"],
            ["export", SMALL, folder / "x.ndjson"],
        ):
            assert "read-only file system" in one_error_line(invoke(*args)).lower(), args
        for args in reading_commands(folder / "t.db"):
            ok(*args)


def reading_commands(target: Path) -> list[list[Any]]:
    """The commands that only read TARGET (README: they work where nothing can be written)."""
    return [
        ["status", target],
        ["parked", target],
        ["digest", target],
        ["verify", target, "--against", SMALL],
        ["backups", target],
    ]


def as_nobody() -> list[str]:
    """The projector's command line run as the nobody user (root ignores permissions);
    skips the test where that cannot be done."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run as another user")
    command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *CMD]
    probe = subprocess.run([*command, "--version"], capture_output=True, text=True, cwd=ROOT)
    if probe.returncode != 0:
        pytest.skip(f"the nobody user cannot run the projector here: {probe.stderr[-200:]}")
    return command


def test_a_folder_the_user_cannot_write_is_one_line(request: pytest.FixtureRequest):
    """As a user without write permission (root ignores chmod, so a real non-root user):
    one line, exit 1, for the run and for its dry run."""
    nobody = as_nobody()
    # Under /tmp itself: pytest's own folders are private to root, not even traversable.
    folder = Path(tempfile.mkdtemp(prefix="projector-theirs-", dir="/tmp"))
    folder.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    for extra in ([], ["--dry-run"]):
        done = subprocess.run(
            [*nobody, "-q", "replay", str(SMALL), str(folder / "t.db"), *extra],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
        assert "permission denied" in done.stderr
    assert list(folder.iterdir()) == []


def test_the_reading_commands_work_on_a_target_in_a_folder_the_user_cannot_write(
    request: pytest.FixtureRequest,
):
    """Another user's target (a WAL-mode database whose -shm cannot be created in its
    folder) reads as one on a read-only medium: status, parked, digest, verify and
    backups answer, and nothing is created beside it."""
    nobody = as_nobody()
    folder = Path(tempfile.mkdtemp(prefix="projector-theirs-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    ok("-q", "replay", SMALL, folder / "t.db")
    folder.chmod(0o755)
    before = sorted(folder.iterdir())
    for args in reading_commands(folder / "t.db"):
        done = subprocess.run([*nobody, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, (args, done.stderr)
    assert sorted(folder.iterdir()) == before


def test_verify_against_takes_a_store_folder_and_refuses_what_is_not_its_state(tmp_path: Path):
    """--against a store folder finds its state DB and says which; a folder without one,
    an eventlog, a projector target, another app's or another store's state: one line."""
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    found = ok("verify", target, "--against", SMALL)
    assert "state-11367593325@6.db" in found.stdout and "verified" in found.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no LiveStore state DB" in one_error_line(invoke("verify", target, "--against", empty))
    line = one_error_line(invoke("verify", target, "--against", SMALL / "eventlog@6.db"))
    assert "is an eventlog" in line
    assert "projector target" in one_error_line(invoke("verify", target, "--against", target))
    other = REBASE / "state-11367593325@6.db"
    assert "another store" in one_error_line(invoke("verify", target, "--against", other))
    todo_state = tmp_path / "todo" / "state-1@6.db"
    todo_state.parent.mkdir()
    shutil.copy(SMALL_STATE, todo_state)
    with contextlib.closing(sqlite3.connect(todo_state)) as conn, conn:
        conn.execute("DELETE FROM __livestore_schema_event_defs")
        conn.executemany(
            "INSERT INTO __livestore_schema_event_defs VALUES (?, 1, '')",
            [(n,) for n in ("v1.TodoCreated", "v1.TodoCompleted", "v1.TodoDeleted", "uiStateSet")],
        )
    assert "another app" in one_error_line(invoke("verify", target, "--against", todo_state))
    line = one_error_line(
        invoke("verify", target, "--against", FIXTURES / "todomvc-small" / "todomvc")
    )
    assert "5 of its 6 events (v1.TodoClearedCompleted, v1.TodoCompleted, v1.TodoCreated, " in line
    assert "v1.TodoDeleted and 1 more) are not in the target's catalog 'ai-desk'" in line
    second = tmp_path / "store"
    shutil.copytree(SMALL, second)
    shutil.copy(SMALL_STATE, second / "state-999@6.db")
    with contextlib.closing(sqlite3.connect(second / "state-999@6.db")) as conn, conn:
        conn.execute("ALTER TABLE config ADD COLUMN extra TEXT")
    picked = ok("verify", target, "--against", second)
    assert "state-11367593325@6.db, the one of 2 state DBs" in picked.stdout


# ---------------------------------------------------------------- 3. identity from the history


def test_a_copied_and_renamed_store_is_the_same_store(tmp_path: Path):
    """A store folder copied under another name continues the migration (catch-up)."""
    first = store_copy(tmp_path, "a")
    tail = hold_back(first, 150)
    target = tmp_path / "t.db"
    ok("-q", "replay", first, target)
    moved = tmp_path / "b" / "renamed-store"
    shutil.copytree(first, moved)
    append(moved, tail)
    result = ok("-q", "replay", moved, target, "--json")
    data = json.loads(result.stdout)
    assert (data["read"], data["position"], data["state"]) == (len(tail), 200, "complete")
    assert "renamed-store" in json.loads(ok("status", target, "--json").stdout)["source"]


def test_resume_with_a_moved_source_and_verify_without_one(tmp_path: Path):
    """resume --source takes a source that moved (same history only) and records it;
    verify --no-source skips the re-read of a retired source and says so."""
    store = store_copy(tmp_path, "old")
    target = tmp_path / "t.db"
    from projector.errors import Interrupted
    from projector.replay import ReplayOptions, replay

    with pytest.raises(Interrupted):
        replay(store, target, ReplayOptions(batch_size=50, should_stop=lambda: True))
    moved = tmp_path / "new" / "ai-desk"
    shutil.move(store, moved)
    assert "--source PATH" in one_error_line(invoke("-q", "resume", target))
    other = one_error_line(invoke("-q", "resume", target, "--source", REBASE))
    assert "another store" in other
    ok("-q", "resume", target, "--source", moved)
    info = json.loads(ok("status", target, "--json").stdout)
    assert info["state"] == "complete" and info["source"].startswith(str(moved))
    shutil.rmtree(moved)
    assert invoke("verify", target).exit_code == 1
    skipped = ok("verify", target, "--no-source", "--json")
    check = {c["check"]: c for c in json.loads(skipped.stdout)["checks"]}["source"]
    assert check["ok"] and "skipped (--no-source)" in check["detail"]


# ---------------------------------------------------------------- 4. parked events in sight


def test_parked_lists_every_parked_event_and_what_a_held_one_waits_on(tmp_path: Path):
    """`projector parked` lists position, event, name, kind, row and reason; --kind filters;
    each held event names the parked event it waits on."""
    target = tmp_path / "t.db"
    ok("-q", "replay", REBASE, target)
    data = json.loads(ok("parked", target, "--json").stdout)
    assert data["parked"] == 29 and data["byKind"] == {"held": 16, "integrity": 13}
    assert [e["position"] for e in data["events"]] == sorted(e["position"] for e in data["events"])
    held = json.loads(ok("parked", target, "--kind", "held", "--json").stdout)["events"]
    assert len(held) == 16 and all(e["kind"] == "held" and e["waitsOn"] for e in held)
    first = data["events"][0]
    assert set(first) == {"position", "eventId", "name", "kind", "reason", "row", "waitsOn"}
    text = ok("parked", target).stdout
    assert text.startswith("29 parked (16 held, 13 integrity)") and "waits on e80r1 (#92)" in text


def test_the_summary_says_how_many_more_and_quiet_still_warns_once(tmp_path: Path):
    """The summary lists 10 parked events (a held one by its event, as the others) and
    says +N more; under -q stderr has exactly one warning line for a run that parked
    events, and none for a clean one."""
    result = invoke("-q", "replay", REBASE, tmp_path / "a.db")
    assert result.exit_code == 0
    assert "  +19 more parked: `projector parked" in result.stdout
    held = [line for line in result.stdout.splitlines() if line.startswith("  parked held: ")]
    assert held and all(
        re.match(r"  parked held: e\d+(r\d+)? \(#[\d,]+, v1\.\w+\): held back: ", line)
        for line in held
    ), held
    # Every kind's line leads with its event as a held one's does: an integrity break too.
    broken = [line for line in result.stdout.splitlines() if "parked integrity: " in line]
    assert broken and all(
        re.match(r"  parked integrity: e[\d.]+(r\d+)? \(#[\d,]+, v1\.\w+\): \w+\.", line)
        for line in broken
    ), broken
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "parked 29 event(s)" in lines[0] and "warning" in lines[0]
    strict = invoke("replay", REBASE, tmp_path / "b.db", "-q", "--strict", "--json")
    assert strict.exit_code == 1
    assert json.loads(strict.stdout)["strictFailure"] == "29 event(s) parked"
    assert invoke("-q", "replay", SMALL, tmp_path / "c.db").stderr == ""


# ---------------------------------------------------------------- 5. backups


def test_a_run_that_applies_nothing_takes_no_backup_and_its_rollback_changes_nothing(
    tmp_path: Path,
):
    """A catch-up with nothing new says the target is up to date and takes no backup;
    rolling it back leaves a complete target complete (and the rollback after the last
    such run undoes the run before)."""
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    again = json.loads(ok("-q", "replay", SMALL, target, "--json").stdout)
    assert again["read"] == 0 and again["backup"] is None
    said = ok("replay", SMALL, target).stdout  # and once more, as a person reads it
    assert "up to date: the source holds no event after #200" in said
    assert not list(tmp_path.glob("*.bak"))
    before = digest_of(target)
    message = ok("rollback", target).stdout
    assert "applied nothing" in message
    info = json.loads(ok("status", target, "--json").stdout)
    assert info["state"] == "complete" and info["runs"] == 2
    assert digest_of(target) == before
    assert "applied nothing" in ok("rollback", target).stdout
    assert "removing it" in ok("rollback", target).stdout
    assert list(tmp_path.iterdir()) == []  # no target, -wal, -shm, lock or backup left


def digest_of(target: Path) -> str:
    return str(json.loads(ok("digest", target, "--json").stdout)["overall"])


def test_status_shows_where_the_last_backup_is_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A run started with a relative target records its backup relative to its working
    directory; `status`, of the target and of the app database it was handed over to,
    and `backups` show the backup's absolute path from anywhere, and say when it is gone."""
    store = store_copy(tmp_path, "store")
    tail = hold_back(store, 160)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    ok("-q", "replay", store, "t.db")
    append(store, tail)
    ok("-q", "replay", store, "t.db")
    ok("-q", "finalize", "t.db", "--out", "app/app.db")
    monkeypatch.chdir(tmp_path)
    (backup,) = work.glob("t.db.run2-*.bak")
    for db in (work / "t.db", work / "app" / "app.db"):
        assert json.loads(ok("status", db, "--json").stdout)["backup"] == str(backup)
        assert f"backup:     {backup}\n" in ok("status", db).stdout
    listed = json.loads(ok("backups", Path("work/t.db"), "--json").stdout)["backups"]
    assert [b["path"] for b in listed] == [str(backup)]
    assert str(backup) in ok("backups", Path("work/t.db")).stdout
    backup.unlink()
    gone = "(missing: deleted by `backups --prune`, or moved)"
    assert f"backup:     {backup} {gone}\n" in ok("status", work / "t.db").stdout
    line = one_error_line(invoke("rollback", work / "t.db"))
    assert line.endswith("is missing (deleted by `backups --prune`, or moved); cannot roll back")


def test_backups_are_listed_pruned_unique_and_removed_by_the_rollback_that_used_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`backups` lists one backup per run that applied events; a run first deletes what a
    killed attempt at the same run left (a whole or a partial copy); two made in the same
    millisecond never share a name; rollback deletes the one it restored from; --prune
    KEEP deletes all but the newest KEEP."""
    import projector.backup

    store = store_copy(tmp_path, "store")
    tails = [hold_back(store, 160), hold_back(store, 120)]
    out = tmp_path / "out"
    target = out / "t.db"
    ok("-q", "replay", store, target)
    frozen = 1_800_000_000.0
    monkeypatch.setattr(projector.backup.time, "time", lambda: frozen)
    stamp = "20270115T080000.000Z"
    killed = out / "t.db.run2-19990101T000000.000Z.bak"  # run 2 killed while backing up
    killed.write_bytes(b"partial")
    journal = out / f"{killed.name}-journal"
    journal.write_bytes(b"journal")
    digests = [digest_of(target)]
    for tail in reversed(tails):
        append(store, tail)
        ok("-q", "replay", store, target)
        digests.append(digest_of(target))
    assert not killed.exists() and not journal.exists()
    listed = json.loads(ok("backups", target, "--json").stdout)["backups"]
    assert [Path(b["path"]).name for b in listed] == [
        f"t.db.run2-{stamp}.bak",
        f"t.db.run3-{stamp}.bak",
    ]
    assert [b["usedBy"] for b in listed] == [2, 3]
    again = projector.backup.backup_path(target, 3)
    assert again.name == f"t.db.run3-{stamp}-2.bak"
    again.unlink()
    assert "run 2" in ok("backups", target).stdout
    ok("rollback", target)
    assert digest_of(target) == digests[1] and not (out / f"t.db.run3-{stamp}.bak").exists()
    pruned = json.loads(ok("backups", target, "--prune", "0", "--json").stdout)
    assert [Path(b["path"]).name for b in pruned["pruned"]] == [f"t.db.run2-{stamp}.bak"]
    assert pruned["backups"] == []


# ---------------------------------------------------------------- 6. conventions


def test_global_options_after_the_command(tmp_path: Path):
    """-q, -v and --log-format are accepted after the command as well as before it."""
    result = invoke("replay", SMALL, tmp_path / "t.db", "-q")
    assert result.exit_code == 0 and result.stderr == ""
    logged = invoke("status", tmp_path / "t.db", "--log-format", "json", "-v")
    assert logged.exit_code == 0


def test_errors_under_json_and_json_logs(tmp_path: Path):
    """Under --json an error is a JSON object on stdout (same exit code); under
    --log-format json every stderr line is JSON, the error line too."""
    missing = tmp_path / "none.db"
    result = invoke("status", missing, "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)
    assert error["exitCode"] == 1 and "no such target database" in error["error"]
    usage = invoke("replay", SMALL, "--json")
    assert usage.exit_code == 2 and json.loads(usage.stdout)["exitCode"] == 2
    logs = invoke("--log-format", "json", "replay", REBASE, tmp_path / "t.db")
    assert logs.exit_code == 0 and logs.stderr
    (tmp_path / "x").mkdir()
    failed = invoke("replay", REBASE, tmp_path / "x", "--log-format", "json")
    for output in (logs.stderr, failed.stderr):
        assert [json.loads(line) for line in output.splitlines()]
    error = json.loads(failed.stderr)
    assert failed.exit_code == 1 and error["level"] == "error" and "directory" in error["message"]


def test_a_closed_pipe_exits_quietly(tmp_path: Path):
    """`projector inspect ... | head`: the reader closes the pipe early; the projector
    exits with SIGPIPE's status (141) and says nothing, not 1 with nothing said."""
    log = write_ndjson(tmp_path / "log.ndjson", [(f"v9.Name{i}", {}) for i in range(5000)])
    for args in (
        ["inspect", str(log)],  # a line per event name
        ["export", str(REBASE), "-", "--format", "ndjson"],
    ):
        proc = subprocess.Popen(
            [*CMD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(100)
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 128 + signal.SIGPIPE, (args, err)
        assert err == b"", args


def test_export_to_stdout_overwrite_format_and_exported_at(tmp_path: Path):
    """export OUT: `-` is stdout, an existing OUT needs --force, the format comes from the
    extension, --exported-at must be ISO 8601, and a JSON export says what it left out."""
    stdout = invoke("export", SMALL, "-", "--format", "ndjson")
    assert stdout.exit_code == 0
    assert stdout.stdout == (FIXTURES / "small" / "events.ndjson").read_text("utf-8")
    out = tmp_path / "small.json"
    made = ok("export", SMALL, out, "--exported-at", "2026-01-01T00:00:00.000Z")
    assert "27 client-only events left out" in made.stdout
    assert json.loads(out.read_text())["eventCount"] == 173
    assert "--force" in one_error_line(invoke("export", SMALL, out))
    ok("export", SMALL, out, "--force")
    bad = invoke("export", SMALL, tmp_path / "x.json", "--exported-at", "yesterday")
    assert bad.exit_code == 2 and "ISO 8601" in bad.stderr
    assert not (tmp_path / "x.json").exists()
    ok("export", SMALL, tmp_path / "all.jsonl")
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 200
    unknown = invoke("export", SMALL, tmp_path / "x.txt")
    assert unknown.exit_code == 2 and "--format" in unknown.stderr


def test_a_replay_of_an_export_names_the_tables_it_leaves_empty(tmp_path: Path):
    """The no-client-only warning names the tables only client-only events fill, in
    English for one table and for several."""
    ai_desk = invoke("replay", FIXTURES / "small" / "export.json", tmp_path / "a.db")
    assert "drafts, uiState, userPreferences stay empty;" in ai_desk.stdout
    export = tmp_path / "todo.json"
    ok("export", FIXTURES / "todomvc-small" / "todomvc", export)
    todo = invoke("replay", export, tmp_path / "b.db")
    assert "(uiStateSet): uiState stays empty;" in todo.stdout


def test_dry_run_logs_say_dry_run_and_name_the_real_target(tmp_path: Path):
    """A dry run's log lines say it is one and name the target the user gave."""
    target = tmp_path / "t.db"
    result = invoke("--log-format", "json", "replay", SMALL, target, "--dry-run")
    assert result.exit_code == 0, result.stderr
    start = next(json.loads(s) for s in result.stderr.splitlines() if "replay.start" in s)
    assert start["dry_run"] is True and start["target"] == str(target)
    assert not target.exists()


def _thousand_events(path: Path, count: int) -> Path:
    return write_ndjson(
        path, [("v1.ConfigSet", {"key": f"k{i}", "value": i}) for i in range(count)]
    )


def test_numbers_have_thousands_separators_for_people_and_are_plain_in_json(tmp_path: Path):
    """Human output writes 2,500; JSON writes 2500."""
    log = _thousand_events(tmp_path / "log.ndjson", 2500)
    target = tmp_path / "t.db"
    text = ok("replay", log, target).stdout
    assert "read 2,500 = applied 2,500" in text
    checks = ok("verify", target).stdout
    assert "position #2,500 = 2,500 applied + 0 parked" in checks
    assert "all 2,500 source events" in checks
    data = json.loads(ok("status", target, "--json").stdout)
    assert data["position"] == 2500 and data["applied"] == 2500


def test_the_progress_moves_within_a_batch(tmp_path: Path):
    """Progress is reported between the slices of a batch, not only when it commits."""
    from projector.replay import ReplayOptions, replay

    seen: list[int] = []
    log = _thousand_events(tmp_path / "log.ndjson", 2500)
    replay(log, tmp_path / "t.db", ReplayOptions(progress=lambda p, _t: seen.append(p)))
    assert seen == [0, 1000, 2000, 2500]


def test_ctrl_c_ends_the_progress_bar_line(tmp_path: Path):
    """On a terminal, Ctrl-C stops at a batch boundary and the message starts on a line
    of its own, not glued to the progress bar."""
    import pty

    main, secondary = pty.openpty()
    target = tmp_path / "t.db"
    proc = subprocess.Popen(
        [*CMD, "replay", str(REBASE), str(target), "--batch-size", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        cwd=ROOT,
    )
    os.close(secondary)
    seen = b""

    def read(timeout: float) -> bytes:
        ready, _, _ = select.select([main], [], [], timeout)
        with contextlib.suppress(OSError):  # EIO: the process closed the terminal
            return os.read(main, 4096) if ready else b""
        return b""

    deadline = time.monotonic() + 60
    while b"ev/s" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += read(1.0)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    while chunk := read(0.5):
        seen += chunk
    os.close(main)
    text = seen.decode(errors="replace")
    if code == 0:
        pytest.skip("the replay finished before SIGINT arrived")
    assert code == 130, text
    assert "\r\nInterrupted: stopped at #" in text or "\nInterrupted: stopped at #" in text
    bar_line = text[text.rindex("\r[") :]
    assert bar_line.index("\n") < bar_line.index("Interrupted")


# ---------------------------------------------------------------- 7. another app's log


def test_another_apps_log_is_refused_before_anything_is_written(tmp_path: Path):
    """A log whose names the matched (or named) catalog has no handlers for is refused,
    naming the catalog and the names, and suggesting --catalog; no target is created."""
    target = tmp_path / "t.db"
    readinglist = FIXTURES / "readinglist-small" / "readinglist"  # no bundled catalog
    for policy in ("fail", "park"):
        line = one_error_line(invoke("replay", readinglist, target, "--on-invalid", policy))
        assert "catalog" in line and "v1.BookmarkSaved" in line and "--catalog" in line
        assert not target.exists()
    todomvc = FIXTURES / "todomvc-small" / "todomvc"
    line = one_error_line(
        invoke("replay", todomvc, target, "--catalog", "ai-desk", "--on-invalid", "park")
    )
    assert "'ai-desk'" in line and "v1.TodoCompleted" in line and not target.exists()


def test_another_apps_client_document_is_never_merged_into_this_apps_table(tmp_path: Path):
    """Each catalog's handlers apply its own events: todomvc's and the 0.3.1 app's
    uiStateSet land in their own uiState table with their own default, and the target
    holds none of ai-desk's tables."""
    for store, default in (
        (FIXTURES / "todomvc-small" / "todomvc", {"newTodoText", "filter"}),
        (MICRO, {"filter", "n"}),
    ):
        target = tmp_path / f"{store.name}.db"
        ok("-q", "replay", store, target)
        with contextlib.closing(sqlite3.connect(target)) as conn:
            (value,) = conn.execute("SELECT value FROM uiState").fetchone()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert set(json.loads(value)) == default
        assert "personas" not in tables and "userPreferences" not in tables


def test_an_event_livestore_marked_unknown_does_not_make_a_log_foreign(tmp_path: Path):
    """A real ai-desk log with events LiveStore itself stored as unknown (schemaHash -1)
    replays under --on-invalid park; they park as unknown, saying LiveStore skips them."""
    store = store_copy(tmp_path, "store")
    rows = [
        (174 + i, 0, 0, 173 + i, 0, 0, f"v9.Future{i}", "{}", "desktop-A", "static", -1, "{}")
        for i in range(20)  # more distinct unknown names than the log has known ones
    ]
    append(store, rows)
    target = tmp_path / "t.db"
    result = ok("-q", "replay", store, target, "--on-invalid", "park", "--json")
    data = json.loads(result.stdout)
    assert data["parkedByKind"] == {"unknown": 20} and data["applied"] == 200
    assert "LiveStore skips it on replay" in data["examples"][0]["reason"]
    # The same names written as known to their app (a real schemaHash) are another app's.
    edit(store, ("UPDATE eventlog SET schemaHash = 5 WHERE name LIKE 'v9.Future%'", ()))
    line = one_error_line(invoke("replay", store, tmp_path / "u.db", "--on-invalid", "park"))
    assert "20 of its" in line and "v9.Future" in line


def test_inspect_of_a_folder_that_holds_a_store_folder_suggests_it():
    """`projector inspect fixtures/small` names fixtures/small/ai-desk."""
    line = one_error_line(invoke("inspect", FIXTURES / "small"))
    assert str(FIXTURES / "small" / "ai-desk") in line


# ---------------------------------------------------------------- 8. help and README true


def test_inspect_shows_rebase_generations():
    """The human output of inspect shows the rebase generations the README promises."""
    assert "generations: r0: 261, r1: 630" in ok("inspect", REBASE).stdout


def test_inspect_of_an_eventlog_without_events_says_so(tmp_path: Path):
    """A format-6 eventlog with no rows has no seq range and makes no claim about rebase
    generations (its format has them); an NDJSON log without them does not blame its format."""
    empty = tmp_path / "eventlog@6.db"
    with contextlib.closing(
        sqlite3.connect(f"file:{SMALL / 'eventlog@6.db'}?mode=ro", uri=True)
    ) as src:
        ddl = [sql for (sql,) in src.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
    with contextlib.closing(sqlite3.connect(empty)) as conn, conn:
        for sql in ddl:
            conn.execute(sql)
    text = ok("inspect", empty).stdout
    assert "seq range:   (no events)" in text
    # validate checked it against no app's schemas, and says so instead of naming one.
    assert ok("validate", empty).stdout == (
        "0 events: nothing to validate (no event tells which app's log it is)\n"
    )
    assert json.loads(ok("validate", empty, "--json").stdout)["catalog"] is None
    named = ok("validate", empty, "--catalog", "todomvc").stdout
    assert named == "0 of 0 events valid (todomvc catalog)\n"
    assert "None" not in text and "generations" not in text and "by name" not in text
    assert "seq range:   e1 .. e173" in ok("inspect", SMALL).stdout
    assert "(none recorded: this format has no rebase generation)" in ok("inspect", MICRO).stdout
    log = write_ndjson(tmp_path / "log.ndjson", [("v1.ConfigSet", {"key": "a", "value": 1})])
    assert "generations: (none recorded in this file)" in ok("inspect", log).stdout


def test_created_target_is_a_boolean_in_every_json_output(tmp_path: Path):
    """createdTarget is true/false wherever it appears (replay, status' last run)."""
    target = tmp_path / "t.db"
    replayed = json.loads(ok("-q", "replay", SMALL, target, "--json").stdout)
    status = json.loads(ok("status", target, "--json").stdout)
    assert replayed["createdTarget"] is True and status["lastRun"]["createdTarget"] is True
    again = json.loads(ok("-q", "replay", SMALL, target, "--json").stdout)
    status = json.loads(ok("status", target, "--json").stdout)
    assert again["createdTarget"] is False and status["lastRun"]["createdTarget"] is False


def test_validate_of_another_apps_log_says_so(tmp_path: Path):
    """validate, like replay, points at --catalog and scaffold when most events are unknown."""
    result = invoke("validate", FIXTURES / "readinglist-small" / "readinglist")
    assert result.exit_code == 1
    assert "is this another app's log?" in result.stdout and "projector scaffold" in result.stdout


def test_parked_kind_and_validate_examples_are_checked():
    """A --kind that is no parked kind, or a negative --examples, is a usage error (2)."""
    assert invoke("parked", "x.db", "--kind", "bogus").exit_code == 2
    assert invoke("validate", SMALL, "--examples", "-1").exit_code == 2


def test_reading_a_target_leaves_no_wal_or_shm_beside_it(tmp_path: Path):
    """status, digest, verify, parked, backups and a dry run read a finished target (WAL
    mode) without leaving SQLite's -wal and -shm files beside it, or changing a byte."""
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.db"]
    before = sha256(target)
    for args in (
        ("status", target),
        ("digest", target),
        ("verify", target),
        ("parked", target),
        ("backups", target),
        ("replay", "--dry-run", SMALL, target),
    ):
        ok(*args)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["t.db"], args
    assert sha256(target) == before


def test_a_target_left_with_its_wal_is_read_whole_on_a_read_only_file_system(tmp_path: Path):
    """A writer killed before its checkpoint leaves committed batches in -wal: on a
    read-only mount, status and digest still see them (an immutable open would not); a
    -wal without its -shm, which cannot be read there, is one line naming both."""
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "t.db"
    ok("-q", "replay", SMALL, target)
    conn = sqlite3.connect(target)  # a committed change still in the -wal, as after kill -9
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("UPDATE personas SET name = name || '!'")
    conn.commit()
    expected = ok("digest", target, "--json").stdout
    assert (folder / "t.db-wal").stat().st_size > 0
    with read_only_mount(folder):
        assert ok("digest", target, "--json").stdout == expected
    conn.close()  # checkpoints and removes the -wal: make one again, without its -shm
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("UPDATE personas SET name = name || '!'")
    conn.commit()
    shutil.copy(folder / "t.db-wal", tmp_path / "wal")
    shutil.copy(target, tmp_path / "db")
    conn.close()
    shutil.copy(tmp_path / "db", target)
    shutil.copy(tmp_path / "wal", folder / "t.db-wal")
    assert not (folder / "t.db-shm").exists()
    with read_only_mount(folder):
        line = one_error_line(invoke("status", target))
    assert "t.db-wal" in line and "t.db-shm" in line


def test_a_dry_run_is_refused_while_another_projector_writes_the_target(tmp_path: Path):
    """As the real run is: one line naming the writer, and no file is created."""
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    before = sorted(p.name for p in tmp_path.iterdir())
    with writer_lock(target):
        real = one_error_line(invoke("replay", SMALL, target), 75)  # try again later
        assert "another projector" in real
        assert one_error_line(invoke("replay", SMALL, target, "--dry-run"), 75) == real
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_target_in_the_source_store_folder_is_refused(tmp_path: Path):
    """No command writes into LiveStore's store folder: a TARGET there is one line, and
    the folder is left as it was (--dry-run too)."""
    store = store_copy(tmp_path, "store")
    before = sorted(p.name for p in store.iterdir())
    for extra in ([], ["--dry-run"]):
        line = one_error_line(invoke("replay", store, store / "new.db", *extra))
        assert "store folder" in line
    assert sorted(p.name for p in store.iterdir()) == before


def test_verify_and_status_name_a_killed_run_alike(tmp_path: Path):
    """A run killed mid-way leaves its record "running": status and verify both call it
    interrupted when no process holds the target's lock."""
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    conn = sqlite3.connect(target)
    conn.execute("UPDATE _projector_migration SET state = 'running'")
    conn.commit()
    conn.close()
    assert json.loads(ok("status", target, "--json").stdout)["state"] == "interrupted"
    report = json.loads(invoke("verify", target, "--json").stdout)
    accounting = next(c for c in report["checks"] if c["check"] == "accounting")
    assert "state interrupted" in accounting["detail"]


@pytest.mark.parametrize(
    "command", ["status", "rollback", "digest", "verify", "parked", "backups", "resume", "finalize"]
)
def test_every_command_names_a_missing_target_alike(tmp_path: Path, command: str):
    """A path that is not there is "no such target database" to every command that takes
    a target; a file or folder that is not a target is "not a projector target"."""
    missing = invoke(command, tmp_path / "typo.db")
    assert missing.exit_code == 1
    assert missing.stderr.strip().startswith(
        f"Error: {tmp_path / 'typo.db'}: no such target database"
    )
    (tmp_path / "other.db").write_bytes(b"")
    other = invoke(command, tmp_path / "other.db")
    assert other.exit_code == 1 and "not a projector target" in other.stderr
    assert "Traceback" not in missing.stderr + other.stderr
    if command == "resume":  # e.g. a first run killed before its first commit
        assert missing.stderr.strip().endswith(
            f"nothing to resume: a migration starts with `projector replay SOURCE "
            f"{tmp_path / 'typo.db'}`"
        )
        assert "replay SOURCE" not in other.stderr


def test_a_log_with_no_event_to_tell_its_app_by_needs_its_catalog_named(tmp_path: Path):
    """An app just installed leaves an eventlog with no events (or only events its app
    did not know): a catalog picked for it would be a guess its first events refuse at
    the catch-up. The first replay asks for --catalog instead, and writes nothing."""
    store = tmp_path / "store" / "todomvc"
    store.mkdir(parents=True)
    conn = sqlite3.connect(store / "eventlog@6.db")
    source = f"{(SMALL / 'eventlog@6.db').as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(source, uri=True)) as c:
        for (sql,) in c.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"):
            conn.execute(sql)
    conn.commit()
    target = tmp_path / "t.db"
    line = one_error_line(invoke("replay", store, target))
    assert line == (
        f"Error: {store / 'eventlog@6.db'}: it holds no events, so nothing tells which app's "
        "log it is; pass --catalog NAME|DIR (bundled: ai-desk, todo-0.3.1, todomvc)"
    )
    assert not target.exists() and not list(tmp_path.glob("t.db*"))
    conn.execute(  # an event its app did not know: LiveStore stores it with schemaHash -1
        "INSERT INTO eventlog VALUES (1, 0, 0, 0, 0, 0, 'v1.New', '{}', 'c', 's', -1, '{}')"
    )
    conn.commit()
    conn.close()
    line = one_error_line(invoke("replay", store, target))
    assert "its only event is one the app that wrote it did not know" in line
    ok("-q", "replay", store, target, "--catalog", "todomvc", "--on-invalid", "park")
    assert "catalog: todomvc" in ok("status", target).stdout


def test_export_and_scaffold_write_nothing_in_the_source_store_folder(tmp_path: Path):
    """As replay and finalize: an export (with --force too: it would replace LiveStore's
    state DB) or a scaffold draft in the source's store folder is refused, one line."""
    store = tmp_path / "store" / "ai-desk"
    shutil.copytree(SMALL, store)
    before = sorted(p.name for p in store.iterdir())
    state = next(store.glob("state*.db")).read_bytes()
    for out in (store / "out.ndjson", store / "state-11367593325@6.db", store / "eventlog@7.db"):
        line = one_error_line(invoke("export", store, out, "--format", "ndjson", "--force"))
        assert line == (
            f"Error: {out}: is in the source's store folder ({store}); no command writes "
            "there: choose another folder"
        )
    line = one_error_line(invoke("scaffold", store, store / "catalog"))
    assert "is in the source's store folder" in line and "write the draft elsewhere" in line
    assert sorted(p.name for p in store.iterdir()) == before
    assert next(store.glob("state*.db")).read_bytes() == state
    ok("export", store, tmp_path / "out.ndjson")


def test_verify_against_a_state_materialized_up_to_another_event_says_so(tmp_path: Path):
    """LiveStore's state DB records the last event it materialized (its session changeset):
    when that is not the target's last event, the differences are unexplained, and the
    `against` line says which side is ahead and what to do."""
    behind = store_copy(tmp_path, "behind")
    edit(  # the app wrote e174 to its eventlog and stopped before materializing it
        behind,
        (
            "INSERT INTO eventlog VALUES (174, 0, 0, 173, 0, 0, 'v1.ConfigSet', ?, 'desktop-A', "
            "'static', 1018277581, '{\"_tag\":\"None\"}')",
            ('{"key":"llm.provider","value":"openai"}',),
        ),
    )
    ahead = store_copy(tmp_path, "ahead")
    later = hold_back(ahead, 170)  # the target is migrated while the log ended at e170
    cut = store_copy(tmp_path, "cut")
    hold_back(cut, 170)  # a log that lacks what its state DB materialized: not its state
    for store, said, grown in (
        (
            behind,
            "; LiveStore's state was last materialized at e173, before the target's last "
            "event e174: what the later events change differs there (let the app open the "
            "store once, then verify again)",
            [],
        ),
        (
            ahead,
            "; LiveStore's state holds events up to e173, past the target's last event e170: "
            f"catch the target up (`projector resume {ahead.parent / 't.db'}`), then verify "
            "again",
            later,
        ),
        (
            cut,
            "; LiveStore's state holds events up to e173, past the target's last event e170, "
            "and the source holds none after it: the state of another store, or of a longer "
            "log than the source",
            [],
        ),
    ):
        target = store.parent / "t.db"
        ok("-q", "replay", store, target)
        append(store, grown)  # the app wrote on
        report = json.loads(invoke("verify", target, "--against", store, "--json").stdout)
        (against,) = [c for c in report["checks"] if c["check"] == "against"]
        assert not against["ok"] and against["detail"].endswith(said)
    same = tmp_path / "same.db"
    ok("-q", "replay", SMALL, same)
    assert "materialized" not in ok("verify", same, "--against", SMALL).stdout


# ---------------------------------------------------------------- a full disk, an I/O error


def _full(*_: Any, **__: Any) -> None:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = 13  # type: ignore[attr-defined]  # SQLITE_FULL
    raise error


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_output_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path: Path):
    """stdout on a full disk (here /dev/full): one line on stderr, exit 1."""
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    generic = (
        "Error: cannot write the output (No space left on device); what the command did is "
        "not undone\n"
    )
    for args, expected in (
        (["status", target], generic),
        (["digest", target, "--json"], generic),
        (["inspect", SMALL, "--json"], generic),
        (
            ["export", SMALL, "-", "--format", "ndjson"],
            "Error: stdout: cannot write it (No space left on device)\n",
        ),
    ):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [sys.executable, "-m", "projector", *map(str, args)],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
        assert (done.returncode, done.stderr) == (1, expected), args
    # A run whose summary cannot be written has done its work all the same.
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "projector", "replay", str(SMALL), str(tmp_path / "u.db")],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
    assert done.returncode == 1 and done.stderr.endswith("what the command did is not undone\n")
    assert json.loads(ok("status", tmp_path / "u.db", "--json").stdout)["state"] == "complete"


def test_a_target_sqlite_cannot_read_now_is_not_called_no_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A full disk (no room for its -shm) or an I/O error is said as such: "not a
    projector target" would suggest the target is gone."""
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    monkeypatch.setattr("projector.target.connect_readonly", _full)
    for command in ("status", "digest", "parked", "backups", "verify", "rollback"):
        line = one_error_line(invoke(command, target))
        assert line == f"Error: {target}: cannot read it (database or disk is full)", command


def test_a_full_disk_during_replay_parked_or_finalize_is_one_line_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """replay-parked and finalize on a full disk: one line, the target (and the app
    database) as they were, no backup left behind."""
    store = tmp_path / "store"
    shutil.copytree(SMALL, store)
    with contextlib.closing(sqlite3.connect(store / "eventlog@6.db")) as conn, conn:
        conn.execute("UPDATE eventlog SET name = 'v1.Teleported' WHERE seqNumGlobal = 45")
    target = tmp_path / "t.db"
    ok("-q", "replay", store, target, "--on-invalid", "park")
    before = tree_sha256(tmp_path)
    monkeypatch.setattr("projector.replay._replay_parked", _full)
    line = one_error_line(invoke("replay-parked", target))
    assert line == (
        f"Error: {target}: replay-parked could not be written (database or disk is full); "
        "the target is as it was"
    )
    assert tree_sha256(tmp_path) == before
    monkeypatch.setattr("projector.finalize._write_app", _full)
    app = tmp_path / "app.db"
    line = one_error_line(invoke("finalize", target, "--out", app))
    assert line == (
        f"Error: {app}: cannot write the hand-off (database or disk is full); not handed "
        "over, app.db is not created"
    )
    assert tree_sha256(tmp_path) == before


def test_a_dry_run_that_cannot_copy_the_target_names_the_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The dry run's copy goes to the temporary folder: a full one is named, not the
    target's backup (a dry run takes none)."""
    store = tmp_path / "store"
    shutil.copytree(SMALL, store)
    target = tmp_path / "t.db"
    ok("-q", "replay", store, target)
    monkeypatch.setattr("projector.backup._copy", _full)
    line = one_error_line(invoke("replay", "--dry-run", store, target))
    assert line == (
        f"Error: {target}: cannot copy it for the dry run into {tempfile.gettempdir()} "
        "(database or disk is full)"
    )


# ---------------------------------------------------------------- SIGTERM and what kills leave


def _dead_pid() -> int:
    """The pid of a process that has ended (not reused this soon)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_sigterm_stops_export_and_finalize_as_ctrl_c_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """SIGTERM mid-export or mid-finalize: one line, exit 143, and the temporary file each
    writes through is gone (before, the process died on the spot and left it)."""
    import events.export
    import projector.finalize

    def terminated(*_args: Any, **_kw: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM did not stop the command")

    out = tmp_path / "out"
    out.mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(events.export, "write_ndjson", terminated)
        result = invoke("export", SMALL, out / "e.ndjson", "--format", "ndjson")
    assert result.exit_code == 143 and result.stderr == "Interrupted: stopped by SIGTERM\n"
    assert list(out.iterdir()) == []
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    with monkeypatch.context() as patch:
        patch.setattr(projector.finalize, "_write_app", terminated)
        result = invoke("finalize", target, "--out", out / "app.db")
    assert result.exit_code == 143 and result.stderr == "Interrupted: stopped by SIGTERM\n"
    assert list(out.iterdir()) == []


def test_what_a_killed_export_or_finalize_left_is_removed_by_the_next(tmp_path: Path):
    """kill -9 leaves the temporary file a command writes through; the next export to the
    same OUT, or finalize into the same APP_DB, removes those of processes that are gone,
    and leaves a live process's alone."""
    dead, live = _dead_pid(), os.getppid()  # not this one: its own files go at its end
    left = [
        tmp_path / f".e.json.{dead}.partial",
        tmp_path / f".app.db.tmp{dead}",
        tmp_path / f".app.db.projector.db.tmp{dead}-journal",
    ]
    kept = [tmp_path / f".e.json.{live}.partial", tmp_path / f".app.db.tmp{live}"]
    for path in left + kept:
        path.write_text("half")
    ok("export", SMALL, tmp_path / "e.json")
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    ok("-q", "finalize", target, "--out", tmp_path / "app.db")
    assert not any(p.exists() for p in left) and all(p.exists() for p in kept)


def test_verify_with_another_catalog_says_which_one_the_target_recorded(tmp_path: Path):
    """verify --catalog naming another app's catalog fails its catalog check as replay
    refuses the run (it blamed the other catalog's files); the recorded catalog's files
    under another name (a copied folder) verify."""
    target = tmp_path / "t.db"
    ok("-q", "replay", SMALL, target)
    report = json.loads(invoke("verify", target, "--catalog", "todomvc", "--json").stdout)
    (check,) = [c for c in report["checks"] if c["check"] == "catalog"]
    assert not check["ok"]
    assert check["detail"] == f"{target}: was migrated with catalog 'ai-desk', not 'todomvc'"
    line = one_error_line(invoke("verify", target, "--catalog", "todomvc", "--against", SMALL))
    assert line == f"Error: {target}: was migrated with catalog 'ai-desk', not 'todomvc'"
    copied = tmp_path / "ai-desk-copy"
    shutil.copytree(Path(__file__).resolve().parent.parent / "schemas" / "ai-desk", copied)
    assert ok("verify", target, "--catalog", copied).stdout.strip().endswith("verified")
