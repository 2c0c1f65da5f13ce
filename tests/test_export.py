"""`projector export`: what each form writes, and that each replays as the log it came from.

The JSON form is what `livestore sync export` writes (JSON.stringify of the args JSON.parse
read, global events only); the NDJSON form keeps every event and its argsJson as stored.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from events.encoding import is_iso_date
from events.export import export as export_source
from events.sources import open_source
from events.validation import NESTING_REASON
from projector.cli import cli
from projector.digest import digest
from projector.replay import ReplayOptions, replay
from tests.conftest import FIXTURES, SMALL, at_stack_depth, write_ndjson

#: The tables only client-only events write: a JSON export (global events only) has none.
CLIENT_ONLY_TABLES = {"drafts", "uiState", "userPreferences"}


def set_args(store: Path, name: str, args_json: str) -> None:
    """Give the first NAME event of STORE's eventlog the argsJson ARGS_JSON."""
    with sqlite3.connect(store / "eventlog@6.db") as conn:
        conn.execute(
            "UPDATE eventlog SET argsJson = ? WHERE rowid = "
            "(SELECT rowid FROM eventlog WHERE name = ? ORDER BY seqNumGlobal LIMIT 1)",
            (args_json, name),
        )
    conn.close()


def export(source: Path, out: Path, *args: str) -> None:
    result = CliRunner().invoke(cli, ["-q", "export", str(source), str(out), *args])
    assert result.exit_code == 0, result.output


def tables(source: Path, target: Path) -> dict[str, Any]:
    """Replay SOURCE into TARGET (parking what cannot be applied); its tables' digests."""
    replay(source, target, ReplayOptions(on_invalid="park"))
    return digest(target)["tables"]


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def test_the_json_export_of_small_is_the_committed_one_numbers_as_livestore_wrote_them(
    tmp_path: Path,
):
    """Byte for byte fixtures/small/export.json: a number is printed as JavaScript prints it
    (``1e-7``, as the eventlog holds it; Python would print ``1e-07``)."""
    committed = FIXTURES / "small" / "export.json"
    stamp = json.loads(committed.read_text("utf-8"))["exportedAt"]
    export(SMALL, tmp_path / "small.json", "--exported-at", stamp)
    assert (tmp_path / "small.json").read_bytes() == committed.read_bytes()
    assert '"importance": 1e-7,' in committed.read_text("utf-8")


def test_args_json_parse_reads_as_infinity_are_exported_as_json_stringify_writes_them(
    small_copy: Path, tmp_path: Path
):
    """``1e999`` (JSON.parse: Infinity) is exported as ``null`` and 2^53 + 1 as the double
    JSON.parse reads, as LiveStore's export (JSON.stringify) writes them: the file is JSON
    any reader takes, and its replay stores what the eventlog's does."""
    set_args(small_copy, "v1.ConfigSet", '{"key":"privacy.telemetry","value":1e999}')
    set_args(small_copy, "v1.PluginInstalled", "x")  # not JSON: kept as text, as before
    with sqlite3.connect(small_copy / "eventlog@6.db") as conn:
        conn.execute(
            "UPDATE eventlog SET argsJson = replace(argsJson, '\"importance\":1e-7', "
            "'\"importance\":9007199254740993') WHERE name = 'v1.MemoryAdded'"
        )
    conn.close()
    out = tmp_path / "store.json"
    export(small_copy, out)
    doc = json.loads(out.read_text("utf-8"), parse_constant=_refuse)
    args = [e.get("args") for e in doc["events"]]
    assert {"key": "privacy.telemetry", "value": None} in args
    assert any(a and a.get("importance") == 9007199254740992 for a in args)
    assert "9007199254740993" not in out.read_text("utf-8")
    from_log = tables(small_copy, tmp_path / "log.db")
    from_export = tables(out, tmp_path / "export.db")
    for name in set(from_log) - CLIENT_ONLY_TABLES - {"_projector_parked"}:
        assert from_export[name] == from_log[name], name


def test_an_ndjson_export_replays_to_the_eventlogs_digest_with_numbers_json_parse_reads(
    small_copy: Path, tmp_path: Path
):
    """argsJson that JSON.parse reads as Infinity (``1e999``, ``-1E400``, an integer of 5,000
    digits) is kept as written in the NDJSON export and read back as the eventlog reader
    reads it: the same events (argsJson byte for byte), the same digest, one history."""
    set_args(small_copy, "v1.ConfigSet", '{"key":"privacy.telemetry","value":1e999}')
    set_args(small_copy, "userPreferencesSet", '{"id":"static","value":{"fontSize":-1E400}}')
    set_args(small_copy, "uiStateSet", '{"id":"static","value":{"scrollTop":' + "9" * 5000 + "}}")
    out = tmp_path / "store.ndjson"
    export(small_copy, out)
    assert '"value":1e999}' in out.read_text("utf-8")
    from_log = [(e.event_id, e.args_json) for e in open_source(small_copy).events()]
    assert [(e.event_id, e.args_json) for e in open_source(out).events()] == from_log
    log_target, ndjson_target = tmp_path / "log.db", tmp_path / "ndjson.db"
    assert replay(small_copy, log_target, ReplayOptions()).parked_total == 0
    assert replay(out, ndjson_target, ReplayOptions()).parked_total == 0
    assert digest(ndjson_target) == digest(log_target)
    # The same history: a target made from one catches up from the other (nothing new).
    assert replay(out, log_target, ReplayOptions()).read == 0
    assert replay(small_copy, ndjson_target, ReplayOptions()).read == 0


def test_nan_and_infinity_literals_in_ndjson_are_refused_by_name_as_in_an_eventlog(
    tmp_path: Path,
):
    """``NaN`` and ``Infinity`` are not JSON: the event is unparseable, with that reason."""
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [("v1.ConfigSet", {"key": "a", "value": 1}), ("v1.ConfigSet", {"key": "b", "value": 2})],
    )
    text = log.read_text("utf-8").replace('"value": 2', '"value": -Infinity')
    log.write_text(text, "utf-8")
    result = replay(log, tmp_path / "t.db", ReplayOptions(on_invalid="park"))
    assert result.parked_total == 1
    assert "argsJson is not JSON (-Infinity is not valid JSON)" in str(result.examples)


def test_a_json_export_keeps_lone_surrogates_as_json_parse_does(small_copy: Path, tmp_path: Path):
    """Text cut mid-emoji (``\\ud83d``, ``\\udc00``) in a JSON export is read as JSON.parse
    reads it and stored as the eventlog's replay stores it: U+FFFD in a text column, the
    escape in a JSON column, with a ``lone-surrogate`` warning (it was ``?``, unwarned)."""
    set_args(small_copy, "v1.ConfigSet", r'{"key":"A\ud83dB","value":{"note":"x\udc00"}}')
    out = tmp_path / "store.json"
    export(small_copy, out)
    assert r'"key": "A\ud83dB"' in out.read_text("utf-8")
    from_export = replay(out, tmp_path / "export.db", ReplayOptions())
    from_log = replay(small_copy, tmp_path / "log.db", ReplayOptions())
    assert from_export.warnings["lone-surrogate"] == from_log.warnings["lone-surrogate"] == 2
    with sqlite3.connect(tmp_path / "export.db") as conn:
        row = conn.execute("SELECT hex(key), value FROM config WHERE key LIKE 'A%B'").fetchone()
    conn.close()
    assert row == ("41EFBFBD42", r'{"note":"x\udc00"}')
    log_tables = digest(tmp_path / "log.db")["tables"]
    export_tables = digest(tmp_path / "export.db")["tables"]
    for name in set(log_tables) - CLIENT_ONLY_TABLES:
        assert export_tables[name] == log_tables[name], name


def test_a_json_export_reads_every_number_json_stringify_writes(tmp_path: Path):
    """An integer JSON.stringify prints whole beyond 64 bits (1e20 is
    ``100000000000000000000``) and a ``1e999`` written by hand are read as JSON.parse reads
    them, as the eventlog's argsJson would be, not refused as an overflow."""
    doc = json.loads((FIXTURES / "small" / "export.json").read_text("utf-8"))
    path = tmp_path / "export.json"
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    first = json.dumps(doc["events"][0]["args"], indent=2).replace("\n", "\n      ")
    assert doc["events"][0]["name"] == "v1.ConfigSet" and first in text
    args = '{\n        "key": "big",\n        "value": [100000000000000000000, -1e999]\n      }'
    path.write_text(text.replace(first, args, 1), "utf-8")
    events = list(open_source(path).events())
    assert events[0].args_json == '{"key":"big","value":[100000000000000000000,-1e999]}'
    assert replay(path, tmp_path / "t.db", ReplayOptions()).parked_total == 0
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("SELECT value FROM config WHERE key = 'big'").fetchone() == (
            "[100000000000000000000,null]",
        )
    conn.close()


def test_exported_at_is_written_as_to_iso_string_writes_it(tmp_path: Path):
    """--exported-at is normalised to LiveStore's form, toISOString() (UTC, milliseconds,
    Z), whatever offset or precision it is given in; a time without an offset, which could
    be local time or UTC, is refused (exit 2, one line, no file); the default is now."""
    out = tmp_path / "x.json"
    for given, written in [
        ("2024-01-01T00:00:00+02:00", "2023-12-31T22:00:00.000Z"),
        ("2024-01-01 05:30:00.1239+05:30", "2024-01-01T00:00:00.123Z"),
        ("20240101T000000Z", "2024-01-01T00:00:00.000Z"),
    ]:
        export(SMALL, out, "--exported-at", given, "--force")
        assert json.loads(out.read_text("utf-8"))["exportedAt"] == written, given
    out.unlink()
    refused = CliRunner().invoke(
        cli, ["export", str(SMALL), str(out), "--exported-at", "2024-01-01T00:00:00"]
    )
    assert refused.exit_code == 2 and not out.exists()
    assert "'2024-01-01T00:00:00' has no UTC offset" in refused.stderr
    export(SMALL, out)
    assert is_iso_date(json.loads(out.read_text("utf-8"))["exportedAt"])


def test_nan_outside_the_args_is_a_one_line_refusal_in_either_format(tmp_path: Path):
    """A clientId NaN (Python's json reads the token; JSON has no such number) cannot be
    exported: one line naming the event, no traceback, no file (NDJSON wrote NaN)."""
    log = write_ndjson(
        tmp_path / "log.ndjson",
        [("v1.ConfigSet", {"key": "a", "value": 1}), ("v1.ConfigSet", {"key": "b", "value": 2})],
    )
    lines = log.read_text("utf-8").splitlines()
    lines[1] = lines[1][:-1] + ', "clientId": NaN}'
    log.write_text("\n".join(lines) + "\n", "utf-8")
    for out in (tmp_path / "out.json", tmp_path / "out.ndjson"):
        result = CliRunner().invoke(cli, ["export", str(log), str(out)])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
        assert "e2 (#2): holds NaN or Infinity outside its args" in result.stderr
        assert not out.exists()


def test_args_nested_past_the_limit_export_as_text_at_any_stack_depth(
    small_copy: Path, tmp_path: Path
):
    """Args nested more than MAX_NESTING levels are not JSON to the replay (deviation
    deep-nesting), so the export keeps them as their argsJson text, however deep the
    caller's stack (json's own limit moves with it); the export replays as the log does."""

    def export_ndjson(source: Path, out: Path) -> None:
        export_source(open_source(source), out, "ndjson")

    deep = '{"key": "k", "value": ' + "[" * 200 + "]" * 200 + "}"
    set_args(small_copy, "v1.ConfigSet", deep)
    written = []
    for frames in (0, 700):
        out = tmp_path / f"at-{frames}.ndjson"
        at_stack_depth(frames, functools.partial(export_ndjson, small_copy, out))
        written.append(out.read_text("utf-8"))
    assert written[0] == written[1]
    (line,) = [json.loads(x) for x in written[0].splitlines() if "[[[" in x]
    assert line["argsJson"] == deep and "args" not in line
    log_target, ndjson_target = tmp_path / "log.db", tmp_path / "ndjson.db"
    replay(small_copy, log_target, ReplayOptions(on_invalid="park"))
    replay(tmp_path / "at-0.ndjson", ndjson_target, ReplayOptions(on_invalid="park"))
    assert digest(ndjson_target) == digest(log_target)  # parked alike, with the same reason
    reasons = sqlite3.connect(log_target).execute("SELECT reason FROM _projector_parked")
    assert any(r.endswith(f"argsJson is not JSON ({NESTING_REASON})") for (r,) in reasons)


def test_export_makes_outs_folders_and_a_failed_one_leaves_none(tmp_path: Path):
    """OUT's missing folders are made, as replay makes its target's; an export that fails
    (an event it cannot write) removes the ones it made, and no file is left."""
    out = tmp_path / "exports" / "2026" / "small.json"
    export(SMALL, out)
    assert json.loads(out.read_text("utf-8"))["eventCount"] == 173
    log = write_ndjson(tmp_path / "log.ndjson", [("v1.ConfigSet", {"key": "a", "value": 1})])
    log.write_text(log.read_text("utf-8").rstrip("\n")[:-1] + ', "clientId": NaN}\n', "utf-8")
    failed = tmp_path / "made" / "deeper" / "out.ndjson"
    result = CliRunner().invoke(cli, ["export", str(log), str(failed)])
    assert result.exit_code == 1, result.output
    assert "holds NaN or Infinity outside its args" in result.stderr
    assert not (tmp_path / "made").exists()


def test_an_out_another_export_created_meanwhile_is_kept_without_force(
    tmp_path: Path, monkeypatch: Any
):
    """Two exports to one new OUT: the one that finishes second refuses, in one line,
    where it replaced the other's file; with --force it replaces it."""
    import events.export as exporting

    out = tmp_path / "small.ndjson"
    write = exporting._write

    def racing(source: Any, stream: Any, fmt: str, **kw: Any) -> tuple[int, int]:
        out.write_text("the other export's\n", "utf-8")  # finished first
        return write(source, stream, fmt, **kw)

    monkeypatch.setattr(exporting, "_write", racing)
    result = CliRunner().invoke(cli, ["export", str(SMALL), str(out)])
    assert result.exit_code == 1, result.output
    assert "was created while the export ran (another export to it?)" in result.stderr
    assert out.read_text("utf-8") == "the other export's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.ndjson"]
    forced = CliRunner().invoke(cli, ["export", str(SMALL), str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(out.read_text("utf-8").splitlines()) == 200
