"""`projector export`: what each form writes, and that each replays as the log it came from.

The JSON form is what `livestore sync export` writes (JSON.stringify of the args JSON.parse
read, global events only); the NDJSON form keeps every event and its argsJson as stored.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from projector.cli import cli
from projector.digest import digest
from projector.replay import ReplayOptions, replay
from tests.conftest import FIXTURES, SMALL

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
