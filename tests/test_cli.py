"""The CLI: data on stdout, logs on stderr, one-line errors, documented and exampled."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from structlog.testing import capture_logs

from projector.cli import cli
from projector.verify import excerpts
from tests.conftest import FIXTURES, REBASE_STATE, ROOT, SMALL, SMALL_STATE

COMMANDS = sorted(cli.commands)


def test_every_command_has_help_with_an_example(runner):
    assert runner.invoke(cli, ["-h"]).exit_code == 0
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example:" in result.output and f"projector {name}" in result.output, name


def test_every_option_is_documented_in_the_readme():
    """README cannot drift: each command and each of its options is mentioned there."""
    readme = (ROOT / "README.md").read_text("utf-8")
    for name, command in cli.commands.items():
        assert f"projector {name}" in readme, name
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    if opt.startswith("--") and opt != "--help":
                        assert opt in readme, f"{name} {opt}"
    for param in cli.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt != "--help":
                assert opt in readme, opt


def test_version_and_module_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "projector", "--version"], capture_output=True, text=True, check=True
    )
    assert re.match(r"projector, version \d+\.\d+\.\d+", out.stdout)


def test_inspect_json_describes_the_log(runner):
    result = runner.invoke(cli, ["inspect", str(SMALL), "--json"])
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["format"] == "sqlite-eventlog" and info["formatVersion"] == 6
    assert (info["storeId"], info["events"], info["clientOnly"]) == ("ai-desk", 200, 27)
    assert (info["firstEventId"], info["lastEventId"]) == ("e1", "e173")
    assert info["byName"]["v1.MemoryAdded"] == 69


def test_validate_exit_codes(runner, small_copy: Path):
    assert runner.invoke(cli, ["validate", str(SMALL)]).exit_code == 0
    import sqlite3

    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    conn.execute("UPDATE eventlog SET name = 'v1.Nope' WHERE seqNumGlobal = 4")
    conn.execute(
        "UPDATE eventlog SET argsJson = json_set(argsJson, '$.kind', 'gossip') "
        "WHERE seqNumGlobal = 9"
    )
    conn.commit()
    conn.close()
    result = runner.invoke(cli, ["validate", str(small_copy)])
    assert result.exit_code == 1
    assert "198 of 200 events valid" in result.stdout
    assert "e4 (#5, v1.Nope) in eventlog@6.db: unknown event name" in result.stdout
    assert "e9 (#" in result.stdout and "at $.kind" in result.stdout
    data = json.loads(runner.invoke(cli, ["validate", str(small_copy), "--json"]).stdout)
    assert data["byKind"] == {"unknown": 1, "invalid": 1} and not data["ok"]
    assert runner.invoke(cli, ["validate"]).exit_code == 2
    assert (
        runner.invoke(cli, ["replay", str(SMALL), "x.db", "--on-invalid", "ignore"]).exit_code == 2
    )


@pytest.mark.parametrize(
    "content", [b"", b"\x00\x01garbage", b"SQLite format 3\x00" + b"\x00" * 30]
)
def test_bad_input_is_one_line_and_exit_1(runner, tmp_path: Path, content: bytes):
    path = tmp_path / "bad.db"
    path.write_bytes(content)
    for command in (
        ["inspect", str(path)],
        ["validate", str(path)],
        ["replay", str(path), str(tmp_path / "t.db")],
    ):
        result = runner.invoke(cli, command)
        assert result.exit_code == 1, command
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.output


def test_replay_json_on_stdout_logs_on_stderr(runner, target: Path):
    result = runner.invoke(
        cli, ["--log-format", "json", "replay", str(SMALL), str(target), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["read"], data["applied"], data["parked"], data["accounted"]) == (200, 200, 0, True)
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {"replay.start", "replay.done"} <= {e["event"] for e in events}


def test_quiet_replay_writes_nothing_to_stderr(runner, target: Path):
    result = runner.invoke(cli, ["-q", "replay", str(SMALL), str(target)])
    assert result.exit_code == 0 and result.stderr == ""
    assert "read 200 = applied 200 + parked 0" in result.stdout


def test_replay_logs_start_and_done_events(target: Path):
    import structlog

    from projector.replay import replay

    structlog.reset_defaults()  # the suite's quiet level would filter info events out
    with capture_logs() as logs:
        replay(SMALL, target)
    names = [entry["event"] for entry in logs]
    assert names[0] == "replay.start" and names[-1] == "replay.done"
    assert logs[-1]["applied"] == 200


def test_status_digest_verify_and_rollback(runner, target: Path):
    assert runner.invoke(cli, ["replay", str(SMALL), str(target)]).exit_code == 0
    info = json.loads(runner.invoke(cli, ["status", str(target), "--json"]).stdout)
    assert (info["state"], info["position"], info["sourceTotal"], info["storeId"]) == (
        "complete",
        200,
        200,
        "ai-desk",
    )
    text = runner.invoke(cli, ["status", str(target)]).stdout
    assert "checkpoint: #200 of 200 (e173)" in text
    digest = runner.invoke(cli, ["digest", str(target)]).stdout
    assert digest.strip().endswith("overall") and len(digest.splitlines()) == 10
    ok = runner.invoke(cli, ["verify", str(target), "--against", str(SMALL_STATE)])
    assert ok.exit_code == 0 and ok.stdout.strip().endswith("verified")
    bad = runner.invoke(cli, ["verify", str(target), "--against", str(REBASE_STATE), "--json"])
    assert bad.exit_code == 1 and "another store" in json.loads(bad.stdout)["error"]
    gone = runner.invoke(cli, ["rollback", str(target)])
    assert gone.exit_code == 0 and "removing it" in gone.stdout and not target.exists()


@contextlib.contextmanager
def held_by_another_process(target: Path) -> Iterator[int]:
    """TARGET's writer lock held by another process (its pid) for the block."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from projector.lock import writer_lock\n"
            f"with writer_lock(Path({str(target)!r})):\n"
            "    print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder.pid
    finally:
        holder.communicate("")


def test_verify_waits_for_a_run_another_process_is_writing(runner, target: Path):
    """verify's checks read the target one after another: while another process's run
    commits batches they would mix moments of it (a position that is not the sum of its
    counts, advice to catch up a run already catching up). It is refused instead; status
    and digest (one read transaction) still answer."""
    assert runner.invoke(cli, ["replay", str(SMALL), str(target)]).exit_code == 0
    with held_by_another_process(target) as pid:
        busy = runner.invoke(cli, ["verify", str(target), "--against", str(SMALL_STATE)])
        assert busy.exit_code == 75 and "Traceback" not in busy.output  # try again later
        replaying = runner.invoke(cli, ["replay", str(SMALL), str(target)])
        assert replaying.exit_code == 75 and "is writing this target" in replaying.stderr
        assert busy.stderr.strip() == (
            f"Error: {target}: another projector (pid {pid}) is writing this target; "
            "wait for it to finish"
        )
        assert runner.invoke(cli, ["status", str(target)]).exit_code == 0
        assert runner.invoke(cli, ["digest", str(target)]).exit_code == 0
    ok = runner.invoke(cli, ["verify", str(target), "--against", str(SMALL_STATE)])
    assert ok.exit_code == 0 and ok.stdout.strip().endswith("verified")


def test_status_while_a_first_run_writes_its_first_batch_says_so(runner, target: Path):
    """A new target exists before its first batch commits its migration record: status
    then names the run writing it, and once written shows the policies a catch-up keeps
    and no advice to resume a run that is still going."""
    from projector.target import open_target

    open_target(target, create=True).conn.close()
    with held_by_another_process(target) as pid:
        early = runner.invoke(cli, ["status", str(target)])
        assert early.exit_code == 1 and early.stderr.strip() == (
            f"Error: {target}: no migration recorded yet: another projector (pid {pid}) is "
            "writing its first batch; ask again in a moment"
        )
    target.unlink()
    args = ["-q", "replay", str(SMALL), str(target), "--on-invalid", "park", "--strict-keys"]
    assert runner.invoke(cli, args).exit_code == 0
    text = runner.invoke(cli, ["status", str(target)]).stdout
    assert "policies:   --on-invalid park, --strict-keys (a catch-up without them keeps" in text
    info = json.loads(runner.invoke(cli, ["status", str(target), "--json"]).stdout)
    assert (info["onInvalid"], info["strictKeys"]) == ("park", True)


def test_verify_shows_where_two_long_texts_differ(runner, small_copy: Path, target: Path):
    """A client document changed after LiveStore's state was written: verify's line (and
    its --json detail) shows both values around the changed key, not their shared head."""
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    conn.execute(
        "INSERT INTO eventlog SELECT 173, 1, 0, 173, 0, 0, name, "
        '\'{"id":"static","value":{"sidebarOpen":true}}\', clientId, sessionId, '
        "schemaHash, syncMetadataJson FROM eventlog "
        "WHERE seqNumGlobal = 153 AND seqNumClient = 1"
    )
    conn.commit()
    conn.close()
    assert runner.invoke(cli, ["-q", "replay", str(small_copy), str(target)]).exit_code == 0
    detail = (
        'value: LiveStore …wYwd","sidebarOpen":false,"searchQuery":"Berlin","scrollTo…, '
        'target …wYwd","sidebarOpen":true,"searchQuery":"Berlin","scrollTop… '
        "(first difference at offset 59)"
    )
    human = runner.invoke(cli, ["verify", str(target), "--against", str(small_copy)])
    assert human.exit_code == 1
    assert f"uiState[static] differs: {detail} -- UNEXPLAINED" in human.stdout
    data = runner.invoke(cli, ["verify", str(target), "--against", str(small_copy), "--json"])
    assert [d["detail"] for d in json.loads(data.stdout)["differenceList"]] == [detail]


def test_excerpts_of_differing_values():
    """Short values are shown whole; long texts from the same character on, around their
    first difference, with its offset; other long values cut at the end."""
    assert excerpts("changed", "hi") == "LiveStore 'changed', target 'hi'"
    assert excerpts(1, None) == "LiveStore 1, target None"
    head = "x" * 100
    assert excerpts(head + "a" + "y" * 100, head + "b" + "y" * 100) == (
        f"LiveStore …{'x' * 20}a{'y' * 37}…, target …{'x' * 20}b{'y' * 37}… "
        "(first difference at offset 100)"
    )
    # A difference near the end: the excerpt reaches the end (its quote), as one extends the other.
    assert excerpts(head, head + "z") == (
        f"LiveStore …{'x' * 57}', target …{'x' * 57}z' (first difference at offset 100)"
    )
    # A difference near the start: cut at the end only, as before.
    assert excerpts("a" + head, "b" + head) == (
        f"LiveStore 'a{'x' * 57}…, target 'b{'x' * 57}… (first difference at offset 0)"
    )
    # The excerpt keeps the value's own quoting and escapes.
    assert excerpts("it's " + head + "\n", "it's " + head + "\t") == (
        f'LiveStore …{"x" * 57}\\n", target …{"x" * 57}\\t" (first difference at offset 105)'
    )
    assert excerpts('"' + head + "it's", '"' + head + "it is") == (
        f"LiveStore …{'x' * 53}it\\'s', target …{'x' * 53}it is' (first difference at offset 103)"
    )
    assert excerpts(7, head) == f"LiveStore 7, target '{'x' * 58}…"


def test_commands_on_a_missing_target_fail_cleanly(runner, tmp_path: Path):
    for command in ("status", "resume", "rollback", "digest", "verify", "replay-parked"):
        result = runner.invoke(cli, [command, str(tmp_path / "none.db")])
        assert result.exit_code == 1, command
        assert result.stderr.startswith("Error: ") and "Traceback" not in result.output


def test_export_then_replay_gives_the_same_tables(runner, tmp_path: Path):
    out = tmp_path / "e.ndjson"
    assert runner.invoke(cli, ["export", str(SMALL), str(out), "--format", "ndjson"]).exit_code == 0
    assert out.read_text() == (FIXTURES / "small" / "events.ndjson").read_text()


def test_cli_batch_default_is_the_librarys():
    """--help shows the library's default without importing it; the two must agree."""
    from projector import cli as cli_module
    from projector.replay import DEFAULT_BATCH

    assert cli_module.DEFAULT_BATCH == DEFAULT_BATCH


def test_strict_replay_exits_1_when_events_were_parked(runner, tmp_path: Path):
    """--strict (or PROJECTOR_STRICT=1) turns a run that parked events into exit 1, with
    the run still committed and accounted for; a clean run passes."""
    rebase = FIXTURES / "synced-rebase" / "ai-desk"
    loose = runner.invoke(cli, ["-q", "replay", str(rebase), str(tmp_path / "a.db")])
    assert loose.exit_code == 0
    strict = runner.invoke(cli, ["-q", "replay", "--strict", str(rebase), str(tmp_path / "b.db")])
    assert strict.exit_code == 1
    assert "--strict: 29 event(s) parked" in strict.stderr
    assert "read 891 = applied 862 + parked 29" in strict.stdout
    by_env = runner.invoke(
        cli, ["-q", "replay", str(rebase), str(tmp_path / "c.db")], env={"PROJECTOR_STRICT": "1"}
    )
    assert by_env.exit_code == 1
    clean = runner.invoke(cli, ["-q", "replay", "--strict", str(SMALL), str(tmp_path / "d.db")])
    assert clean.exit_code == 0, clean.stderr


def test_a_catch_up_loop_is_told_how_to_prune_its_backups(runner, small_copy: Path, tmp_path):
    """Each catch-up that applies events keeps a whole backup of the target (rollback
    needs it): a run that leaves 10 or more says how many, their size, and the command
    that prunes them (`backupsKept` under --json); fewer say nothing of it."""
    eventlog = small_copy / "eventlog@6.db"
    full = tmp_path / "full.db"
    full.write_bytes(eventlog.read_bytes())
    target = tmp_path / "t.db"
    outputs = []
    for last in range(100, 173, 7):  # a first run, then 10 catch-ups with new events
        eventlog.write_bytes(full.read_bytes())
        with contextlib.closing(sqlite3.connect(eventlog)) as conn, conn:
            conn.execute("DELETE FROM eventlog WHERE seqNumGlobal > ?", (last,))
        result = runner.invoke(cli, ["replay", str(small_copy), str(target)])
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
    assert all("backups of" not in out for out in outputs[:-1])
    hint = outputs[-1].splitlines()[-1]
    size = sum(p.stat().st_size for p in tmp_path.glob("t.db.run*.bak"))
    assert hint == (
        f"  10 backups of t.db kept ({size / 2**20:,.0f} MiB): `projector backups {target} "
        "--prune KEEP` deletes all but the newest KEEP"
    )
    eventlog.write_bytes(full.read_bytes())
    as_json = runner.invoke(cli, ["replay", str(small_copy), str(target), "--json"])
    assert json.loads(as_json.stdout)["backupsKept"] == {
        "count": 11,
        "bytes": sum(p.stat().st_size for p in tmp_path.glob("t.db.run*.bak")),
    }


def test_a_path_that_starts_with_a_dash_is_pasted_as_a_path(runner, tmp_path, monkeypatch):
    """A source named -s.ndjson, given relative: the command a message gives names it
    ./-s.ndjson, which click takes for a path where -s.ndjson was read as an option."""
    import shlex

    from tests.conftest import write_ndjson

    monkeypatch.chdir(tmp_path)
    config = [("v1.ConfigSet", {"key": k, "value": 1}) for k in "abc"]
    write_ndjson(tmp_path / "-s.ndjson", [*config, ("v1.Teleported", {"id": "x"})])
    failed = runner.invoke(cli, ["replay", "--catalog", "ai-desk", "--", "-s.ndjson", "t.db"])
    assert failed.exit_code == 1, failed.output
    hint = failed.stderr.rsplit("(or park such events: ", 1)[1].strip().rstrip(")").strip("`")
    assert hint.startswith("projector replay ./-s.ndjson t.db --catalog ai-desk")
    parked = runner.invoke(cli, ["-q", *shlex.split(hint)[1:]])
    assert parked.exit_code == 0, parked.output
