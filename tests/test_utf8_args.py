"""A replay reads a STRICT eventlog's argsJson as the bytes of its UTF-8 text
(`SqliteEventlog.events(utf8_args=True)`): parsed and hashed as they are, never decoded to
``str`` and encoded back. These tests hold it to what reading the text gave: the same
events and digest, a BLOB still told apart from text, and bytes that are not UTF-8 still
refusing the source, wherever the event goes (fast path, explaining path, parked).

The fast path's verdicts on bytes are checked against the explaining path's on the text
by every agreement test of tests/test_fastpath.py (the ``fastpath-on-utf8-bytes`` pair).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from events.sources import open_source
from events.sqlite_source import Blob
from projector.checkpoint import PrefixDigest
from projector.cli import cli
from projector.digest import digest
from tests.conftest import SMALL

EVENTLOG = "eventlog@6.db"


def _events(path: Path, **kwargs: bool) -> list:
    source = open_source(path)
    try:
        return list(source.events(**kwargs))
    finally:
        source.close()


def test_a_strict_eventlog_yields_args_as_the_utf8_of_their_text():
    """Every field as read without utf8_args; argsJson the UTF-8 of the same text (the
    small log holds emoji, Arabic and CJK text: not only ASCII)."""
    as_text, as_read = _events(SMALL), _events(SMALL, utf8_args=True)
    assert len(as_read) == len(as_text) > 0
    assert any(not e.args_json.isascii() for e in as_text)
    for text, read in zip(as_text, as_read, strict=True):
        assert type(read.args_json) is bytes
        assert read.args_json == text.args_json.encode("utf-8")
        assert read._replace(args_json=text.args_json) == text


def test_the_digest_of_args_read_as_utf8_is_the_digest_of_their_text():
    """The checkpoint's prefix digest (`PrefixDigest`) is the same either way."""
    by_text, by_bytes = PrefixDigest(), PrefixDigest()
    by_text.update_many(_events(SMALL))
    by_bytes.update_many(_events(SMALL, utf8_args=True))
    assert by_bytes.hexdigest() == by_text.hexdigest()


def _loose_copy(tmp_path: Path) -> Path:
    """The small log copied into a non-STRICT eventlog (a hand-made table), whose first
    v1.ConfigSet holds its argsJson as a BLOB."""
    store = tmp_path / "loose" / "ai-desk"
    store.mkdir(parents=True)
    src = sqlite3.connect(SMALL / EVENTLOG)
    dst = sqlite3.connect(store / EVENTLOG)
    with dst:
        for (sql,) in src.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        ):
            dst.execute(sql.replace(") strict", ")").replace(") STRICT", ")"))
        for (table,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            rows = src.execute(f'SELECT * FROM "{table}"').fetchall()
            if rows:
                marks = ",".join("?" * len(rows[0]))
                dst.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
        dst.execute(
            "UPDATE eventlog SET argsJson = CAST(argsJson AS BLOB) WHERE seqNumGlobal = "
            "(SELECT MIN(seqNumGlobal) FROM eventlog WHERE name = 'v1.ConfigSet')"
        )
    assert not any(r[5] for r in dst.execute("PRAGMA table_list") if r[1] == "eventlog")
    src.close()
    dst.close()
    return store


def test_a_blob_where_text_belongs_stays_a_blob(tmp_path: Path, runner: CliRunner):
    """In a non-STRICT eventlog, text comes as text and a BLOB as a `Blob`, which the
    replay parks as not text (it is not parsed as the UTF-8 it might hold)."""
    store = _loose_copy(tmp_path)
    read = _events(store, utf8_args=True)
    blobs = [e for e in read if isinstance(e.args_json, bytes)]
    assert [type(e.args_json) for e in blobs] == [Blob]
    assert all(type(e.args_json) is str for e in read if e not in blobs)
    assert [e.args_json for e in _events(store) if isinstance(e.args_json, bytes)] == [
        bytes(blobs[0].args_json)
    ]
    target = tmp_path / "target.db"
    result = runner.invoke(cli, ["replay", str(store), str(target), "--on-invalid", "park"])
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(target)
    parked = conn.execute("SELECT position, reason, typeof(argsJson) FROM _projector_parked")
    (position, reason, kind), *others = parked.fetchall()
    conn.close()
    assert position == blobs[0].position
    assert "argsJson is not text (bytes)" in reason
    assert kind == "blob"
    # The later events on the same config key wait behind it, as text.
    assert others and all(r.startswith("held back") and k == "text" for _, r, k in others)


def _damage(store: Path, name: str, text: bytes) -> int:
    """Give the first event named NAME argsJson TEXT holding TEXT's bytes; its position."""
    conn = sqlite3.connect(store / EVENTLOG)
    with conn:
        g, c = conn.execute(
            "SELECT seqNumGlobal, seqNumClient FROM eventlog WHERE name = ? "
            "ORDER BY seqNumGlobal, seqNumClient LIMIT 1",
            (name,),
        ).fetchone()
        conn.execute(
            "UPDATE eventlog SET argsJson = CAST(? AS TEXT) "
            "WHERE seqNumGlobal = ? AND seqNumClient = ?",
            (text, g, c),
        )
        (position,) = conn.execute(
            "SELECT COUNT(*) FROM eventlog WHERE (seqNumGlobal, seqNumClient) <= (?, ?)", (g, c)
        ).fetchone()
    conn.close()
    return position


@pytest.mark.parametrize(
    ("name", "text"),
    [
        # parsed by the fast path, which declines it (msgspec refuses it)
        ("v1.MemoryAdded", b'{"id":"m\xff"}'),
        # declined unparsed (a \\u escape): the explaining path decodes it
        ("v1.MemoryAdded", b'{"id":"\\u0041\xc3("}'),
        # not UTF-8 outside a string
        ("v1.ConfigSet", b'{"key":"k","value":1}\xed\xa0\x80'),
    ],
    ids=["in-a-string", "declined-unparsed", "after-the-json"],
)
def test_text_that_is_not_utf8_refuses_the_replay(
    small_copy: Path, target: Path, runner: CliRunner, name: str, text: bytes
):
    """SQLite holds it as TEXT: the file is damaged, as Python's sqlite3 says when it
    decodes it. One line naming the file and the event, exit 1, nothing written."""
    position = _damage(small_copy, name, text)
    event = _events(small_copy, utf8_args=True)[position - 1]
    assert event.args_json == text
    result = runner.invoke(cli, ["replay", str(small_copy), str(target)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: {small_copy / EVENTLOG}: corrupt or unreadable SQLite file")
    assert (
        f"the argsJson of event #{position} ({event.event_id}, {name}) is TEXT that is not UTF-8"
        in line
    )
    assert not target.exists()


def test_an_unknown_event_with_text_that_is_not_utf8_refuses_the_replay_too(
    small_copy: Path, target: Path, runner: CliRunner
):
    """An event no schema names is parked with its argsJson as text: it is decoded all
    the same, so bytes that are not UTF-8 refuse the source there too, not parked."""
    conn = sqlite3.connect(small_copy / EVENTLOG)
    with conn:
        conn.execute(
            "UPDATE eventlog SET name = 'v9.Unknown', argsJson = CAST(X'7B22FF227D' AS TEXT) "
            "WHERE seqNumGlobal = (SELECT MAX(seqNumGlobal) FROM eventlog)"
        )
    conn.close()
    result = runner.invoke(cli, ["replay", str(small_copy), str(target), "--on-invalid", "park"])
    assert result.exit_code == 1
    assert "is TEXT that is not UTF-8 (invalid start byte at byte 2)" in result.output
    assert "Traceback" not in result.output


def _damage_column(store: Path, position: int, column: str, text: bytes) -> str:
    """Give COLUMN of the event at POSITION (replay order) TEXT holding TEXT's bytes; the
    event's id."""
    conn = sqlite3.connect(store / EVENTLOG)
    with conn:
        g, c = conn.execute(
            "SELECT seqNumGlobal, seqNumClient FROM eventlog "
            "ORDER BY seqNumGlobal, seqNumClient LIMIT 1 OFFSET ?",
            (position - 1,),
        ).fetchone()
        conn.execute(
            f"UPDATE eventlog SET {column} = CAST(? AS TEXT) "
            "WHERE seqNumGlobal = ? AND seqNumClient = ?",
            (text, g, c),
        )
    conn.close()
    return f"e{g}" if not c else f"e{g}.{c}"


def _refusal(runner: CliRunner, args: list[str]) -> str:
    result = runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output.strip().splitlines()[-1]


@pytest.mark.parametrize("command", ["validate", "inspect", "export", "replay"])
def test_every_command_names_the_event_whose_args_are_not_utf8(
    small_copy: Path, tmp_path: Path, runner: CliRunner, command: str
):
    """The commands that read the text as text (sqlite3 cannot decode it) refuse the log
    with the replay's sentence, naming the event, not with sqlite3's, which quoted the
    whole argsJson and named no event."""
    position = _damage(small_copy, "v1.MemoryAdded", b'{"id":"m\xff"}')
    event = _events(small_copy, utf8_args=True)[position - 1]
    args = [command, str(small_copy)]
    if command in ("export", "replay"):
        args.append(str(tmp_path / ("out.ndjson" if command == "export" else "t.db")))
    line = _refusal(runner, args)
    assert line == (
        f"Error: {small_copy / EVENTLOG}: corrupt or unreadable SQLite file: the argsJson of "
        f"event #{position} ({event.event_id}, v1.MemoryAdded) is TEXT that is not UTF-8 "
        "(invalid start byte at byte 8)"
    )
    assert "Could not decode" not in line


@pytest.mark.parametrize("command", ["validate", "replay"])
@pytest.mark.parametrize(
    ("column", "position", "text", "named"),
    [
        # on a page after the first (each page but the first starts with its anchor)
        ("clientId", 123, b"client-\xfe", True),
        ("sessionId", 50, b"\xed\xa0\x80", True),  # an encoded surrogate
        # the names are read first (the catalog's choice, validate's names)
        ("name", 77, b"v1.Memory\xc0", False),
    ],
    ids=["clientId-later-page", "sessionId", "name"],
)
def test_text_that_is_not_utf8_is_named_in_any_column(
    small_copy: Path,
    tmp_path: Path,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    column: str,
    position: int,
    text: bytes,
    named: bool,
):
    """Any text column of the events, on any page: the position is counted across pages
    (40 rows a page here), the event's name is given unless it is the text at fault."""
    monkeypatch.setattr("events.sqlite_source.PAGE_ROWS", 40)
    name = _events(small_copy)[position - 1].name
    event_id = _damage_column(small_copy, position, column, text)
    args = [command, str(small_copy)] + ([str(tmp_path / "t.db")] if command == "replay" else [])
    line = _refusal(runner, args)
    shown = f"{event_id}, {name}" if named else event_id
    with pytest.raises(UnicodeDecodeError) as bad:
        text.decode("utf-8")
    assert line == (
        f"Error: {small_copy / EVENTLOG}: corrupt or unreadable SQLite file: the {column} of "
        f"event #{position} ({shown}) is TEXT that is not UTF-8 ({bad.value.reason} at byte "
        f"{bad.value.start})"
    )
    assert not (tmp_path / "t.db").exists()


def test_a_blob_is_not_taken_for_text_that_is_not_utf8(tmp_path: Path, runner: CliRunner):
    """In a non-STRICT eventlog a BLOB comes as bytes and is never decoded: bytes in it
    that are not UTF-8 are not the text at fault, a later event's damaged text is."""
    store = _loose_copy(tmp_path)
    conn = sqlite3.connect(store / EVENTLOG)
    with conn:
        conn.execute("UPDATE eventlog SET argsJson = X'FF00FF' WHERE typeof(argsJson) = 'blob'")
    conn.close()
    blob = next(e for e in _events(store) if isinstance(e.args_json, bytes))
    later = blob.position + 5
    name = _events(store)[later - 1].name
    event_id = _damage_column(store, later, "sessionId", b"s\xff")
    line = _refusal(runner, ["validate", str(store)])
    assert f"the sessionId of event #{later} ({event_id}, {name}) is TEXT that is not UTF-8" in (
        line
    )


def test_a_replay_migrates_the_text_it_read(tmp_path: Path, runner: CliRunner):
    """The tables of a replay that read the args as bytes hold what they held when they
    were read as text: the digest of a replay of the log and of its NDJSON export agree
    (an NDJSON source yields text)."""
    export = tmp_path / "small.ndjson"
    shutil.copy(SMALL.parent / "events.ndjson", export)
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert runner.invoke(cli, ["replay", str(SMALL), str(a)]).exit_code == 0
    assert runner.invoke(cli, ["replay", str(export), str(b)]).exit_code == 0
    assert digest(a)["overall"] == digest(b)["overall"]


def test_a_catch_up_over_text_that_is_not_utf8_says_so(
    small_copy: Path, target: Path, runner: CliRunner
):
    """Text damaged after a migration changes the prefix digest: a catch-up says which
    event is not UTF-8, not that the history was rewritten, and the target is unchanged."""
    assert runner.invoke(cli, ["replay", str(small_copy), str(target)]).exit_code == 0
    before = digest(target)["overall"]
    position = _damage(small_copy, "v1.MemoryAdded", b'{"id":"m\xff"}')
    result = runner.invoke(cli, ["replay", str(small_copy), str(target)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"the argsJson of event #{position} (" in result.output
    assert "is TEXT that is not UTF-8" in result.output
    assert "differ from those migrated" not in result.output
    assert digest(target)["overall"] == before


def test_a_utf16_eventlog_is_read_as_text(tmp_path: Path, runner: CliRunner):
    """SQLite can store a file's text as UTF-16 (the encoding pragma): its argsJson read
    as a BLOB would be UTF-16, so it is read as text, and the replay migrates what the
    UTF-8 log migrates."""
    store = tmp_path / "utf16" / "ai-desk"
    store.mkdir(parents=True)
    src = sqlite3.connect(SMALL / EVENTLOG)
    dst = sqlite3.connect(store / EVENTLOG)
    dst.execute("PRAGMA encoding = 'UTF-16le'")
    with dst:
        for (sql,) in src.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        ):
            dst.execute(sql)
        for (table,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            rows = src.execute(f'SELECT * FROM "{table}"').fetchall()
            if rows:
                marks = ",".join("?" * len(rows[0]))
                dst.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
    assert dst.execute("PRAGMA encoding").fetchone()[0] == "UTF-16le"
    src.close()
    dst.close()
    assert all(type(e.args_json) is str for e in _events(store, utf8_args=True))
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert runner.invoke(cli, ["replay", str(SMALL), str(a)]).exit_code == 0
    result = runner.invoke(cli, ["replay", str(store), str(b)])
    assert result.exit_code == 0, result.output
    assert digest(a)["overall"] == digest(b)["overall"]
