"""Sources: real LiveStore logs read as they are on disk, detected by content, never modified."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from events import sources, sqlite_source
from events.errors import SourceError
from events.sources import open_source
from projector.cli import cli
from tests.conftest import FIXTURES, MICRO, REBASE, SMALL, tree_sha256


def test_store_directory_reads_the_highest_eventlog_not_state_files(tmp_path: Path):
    """A store directory is read from its eventlog@N.db, never from its state file; with
    eventlog@4.db beside eventlog@6.db, --format-version says which one."""
    store = tmp_path / "ai-desk"
    shutil.copytree(SMALL, store)
    src = open_source(store)
    assert src.path.name == "eventlog@6.db"
    assert (src.kind, src.format_version, src.store_id) == ("sqlite-eventlog", 6, "ai-desk")
    shutil.copy(MICRO / "eventlog@4.db", store / "eventlog@4.db")
    assert open_source(store, format_version=6).path.name == "eventlog@6.db"
    assert open_source(store, format_version=4).path.name == "eventlog@4.db"


def test_format_4_eventlog_has_no_rebase_generation():
    """LiveStore 0.3.x logs (eventlog@4.db) are read, without a rebase generation."""
    src = open_source(MICRO)
    events = list(src.events())
    assert src.format_version == 4
    assert [e.event_id for e in events] == ["e1", "e1.1", "e1.2", "e2", "e3"]
    assert all(e.rebase_generation is None for e in events)


def test_replay_order_is_global_then_client_with_client_only_events_included():
    """Events come in LiveStore's order (seqNumGlobal, seqNumClient), client-only ones too."""
    events = list(open_source(SMALL).events())
    assert len(events) == 200
    keys = [(e.seq_global, e.seq_client) for e in events]
    assert keys == sorted(keys)
    assert [e.position for e in events] == list(range(1, 201))
    assert sum(e.client_only for e in events) == 27
    assert events[2].name == "uiStateSet" and events[2].event_id == "e2.1"


def test_rebase_generation_is_kept_in_the_event_id():
    """Rows rebased by LiveStore keep their generation: e80r1."""
    ids = {e.event_id for e in open_source(REBASE).events()}
    assert "e80r1" in ids and "e90" in ids


def test_events_are_streamed_in_pages(monkeypatch: pytest.MonkeyPatch):
    """The SQLite reader pages through the log instead of loading it whole."""
    monkeypatch.setattr(sqlite_source, "PAGE_ROWS", 7)
    src = open_source(SMALL)
    stream = src.events()
    assert next(stream).position == 1
    assert [e.position for e in stream][-1] == 200


def test_json_export_and_ndjson_are_detected_by_content(tmp_path: Path):
    """Renamed files are still detected: the extension plays no part."""
    export = tmp_path / "a.db"
    shutil.copy(FIXTURES / "small" / "export.json", export)
    ndjson = tmp_path / "b.json"
    shutil.copy(FIXTURES / "small" / "events.ndjson", ndjson)
    sqlite_txt = tmp_path / "c.txt"
    shutil.copy(SMALL / "eventlog@6.db", sqlite_txt)
    assert open_source(export).kind == "json-export"
    assert open_source(export).store_id == "ai-desk"
    assert open_source(ndjson).kind == "ndjson"
    assert open_source(sqlite_txt).kind == "sqlite-eventlog"


def test_json_export_holds_only_global_events_with_the_same_args():
    """The sync export has no client-only events; its args equal the eventlog's."""
    from_db = {e.seq_global: e for e in open_source(SMALL).events() if not e.client_only}
    exported = list(open_source(FIXTURES / "small" / "export.json").events())
    assert len(exported) == len(from_db) == 173
    for e in exported:
        assert e.args_json == from_db[e.seq_global].args_json
        assert e.name == from_db[e.seq_global].name


def test_ndjson_round_trips_every_event_exactly():
    """The NDJSON form keeps every event, ids and argsJson text byte for byte."""
    a = list(open_source(SMALL).events())
    b = list(open_source(FIXTURES / "small" / "events.ndjson").events())
    assert [(e.event_id, e.name, e.args_json) for e in a] == [
        (e.event_id, e.name, e.args_json) for e in b
    ]


def _sqlite_without_eventlog(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE todos (id TEXT)")
    conn.commit()
    conn.close()


def _truncated(path: Path) -> None:
    data = (SMALL / "eventlog@6.db").read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _header_only(path: Path) -> None:
    path.write_bytes((SMALL / "eventlog@6.db").read_bytes()[:50])


BAD_INPUTS = {
    "empty file": (lambda p: p.write_bytes(b""), "empty file"),
    "random bytes": (lambda p: p.write_bytes(bytes(range(256)) * 4), "not a LiveStore event log"),
    "truncated sqlite": (_truncated, "corrupt"),
    "sqlite header only": (_header_only, "corrupt"),
    "sqlite without eventlog": (_sqlite_without_eventlog, "without an eventlog table"),
    "json of another shape": (
        lambda p: p.write_text('{"todos": [1, 2]}'),
        "JSON but not a LiveStore export (an object without an 'events' array)",
    ),
    "json array": (lambda p: p.write_text("[1, 2]"), "JSON but not a LiveStore export (an array)"),
    "not json": (lambda p: p.write_text("[1, 2"), "not a LiveStore event log"),
    "broken json": (lambda p: p.write_text('{"version": 1, "events": [{"name"'), "invalid JSON"),
    "ndjson with a broken line": (
        lambda p: p.write_text('{"name": "v1.X", "args": {}, "seqNum": 1}\n{oops\n'),
        "line 2 is not JSON",
    ),
    "ndjson out of order": (
        lambda p: p.write_text(
            '{"name": "a", "args": {}, "seqNum": 2}\n{"name": "b", "args": {}, "seqNum": 1}\n'
        ),
        "out-of-order position e1",
    ),
    "ndjson duplicate": (
        lambda p: p.write_text(
            '{"name": "a", "args": {}, "seqNum": 2}\n{"name": "b", "args": {}, "seqNum": 2}\n'
        ),
        "duplicate position e2",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_a_one_line_source_error(case: str, tmp_path: Path):
    """Anything that is not an event log is refused with a one-line message naming it."""
    make, expected = BAD_INPUTS[case]
    path = tmp_path / "input"
    make(path)
    with pytest.raises(SourceError) as info:
        src = open_source(path)
        list(src.events())
    message = str(info.value)
    assert expected in message and "\n" not in message and str(path) in message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("[]", "an array"),
        ('\ufeff [{"name": "v1.ConfigSet", "args": {}, "seqNum": 1}]\n', "an array"),
        ("42", "a number"),
        ('"events"', "a string"),
        ("null", "null"),
        ("false", "a boolean"),
    ],
)
def test_json_that_is_not_an_export_says_so_and_what_an_export_is(
    tmp_path: Path, runner, text: str, value: str
):
    """Valid JSON other than an object is named as JSON, with the shapes that are read."""
    path = tmp_path / "log.json"
    path.write_text(text, "utf-8")
    result = runner.invoke(cli, ["inspect", str(path)])
    assert (result.exit_code, result.stderr.count("\n")) == (1, 1)
    assert result.stderr == (
        f"Error: {path}: JSON but not a LiveStore export ({value}): a `livestore sync export` "
        'is one object {"version": 1, "storeId", "exportedAt", "eventCount", "events": [...]}; '
        'NDJSON is one event object {"name", "seqNum", "args", ...} per line\n'
    )


def test_directory_without_eventlog_is_refused(tmp_path: Path):
    """A directory with only a state file is not a history (and is told so); an empty one
    is refused without a word about state files."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError) as empty:
        open_source(tmp_path / "empty")
    assert str(empty.value) == f"{tmp_path / 'empty'}: no eventlog@N.db in this directory"
    shutil.copy(SMALL / "state-11367593325@6.db", tmp_path / "state-11367593325@6.db")
    with pytest.raises(SourceError) as state:
        open_source(tmp_path)
    assert str(state.value) == (
        f"{tmp_path}: no eventlog@N.db in this directory (state files are not the history)"
    )


def test_missing_path_is_refused(tmp_path: Path):
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "nope")


def test_duplicate_positions_in_sqlite_are_refused(small_copy: Path):
    """Two rows at the same (global, client) with different generations are not silently merged."""
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    conn.execute(
        "INSERT INTO eventlog SELECT seqNumGlobal, seqNumClient, 7, parentSeqNumGlobal, "
        "parentSeqNumClient, parentSeqNumRebaseGeneration, name, argsJson, clientId, sessionId, "
        "schemaHash, syncMetadataJson FROM eventlog WHERE seqNumGlobal = 5"
    )
    conn.commit()
    conn.close()
    with pytest.raises(SourceError, match="duplicate event position e5"):
        open_source(small_copy)


def test_duplicate_positions_that_are_not_integers_are_named_as_stored(small_copy: Path):
    """A hand-made (non-STRICT) table with two rows at the real-valued position 4.5: the
    one-line refusal names it (the compiled build, with integers declared, raised
    TypeError writing the message)."""
    conn = sqlite3.connect(small_copy / "eventlog@6.db")
    (strict,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'eventlog'").fetchone()
    conn.execute("ALTER TABLE eventlog RENAME TO strict_eventlog")
    conn.execute(strict.removesuffix(" strict"))
    conn.execute("INSERT INTO eventlog SELECT * FROM strict_eventlog")
    conn.execute("DROP TABLE strict_eventlog")
    for generation in (1, 2):
        conn.execute(
            "INSERT INTO eventlog SELECT 4.5, 0, ?, parentSeqNumGlobal, parentSeqNumClient, "
            "parentSeqNumRebaseGeneration, name, argsJson, clientId, sessionId, schemaHash, "
            "syncMetadataJson FROM eventlog WHERE seqNumGlobal = 5",
            (generation,),
        )
    conn.commit()
    conn.close()
    with pytest.raises(SourceError, match=r"duplicate event position e4\.5 \(2 rows\)"):
        open_source(small_copy)


def test_reading_never_changes_the_source(tmp_path: Path):
    """Every byte of the store directory is the same after it was read in full."""
    store = tmp_path / "ai-desk"
    shutil.copytree(SMALL, store)
    before = tree_sha256(store)
    src = open_source(store)
    list(src.events())
    src.event_names()
    src.count()
    src.close()
    assert tree_sha256(store) == before
    assert sorted(p.name for p in store.iterdir()) == sorted(before)


def test_export_shape_is_livestores(tmp_path: Path):
    """`projector export --format json` writes the `livestore sync export` document."""
    doc = json.loads((FIXTURES / "small" / "export.json").read_text("utf-8"))
    assert set(doc) == {"version", "storeId", "exportedAt", "eventCount", "events"}
    assert doc["eventCount"] == len(doc["events"])
    assert set(doc["events"][0]) == {
        "name",
        "args",
        "seqNum",
        "parentSeqNum",
        "clientId",
        "sessionId",
    }


# ---------------------------------------------------------------- exports and NDJSON


def _export(tmp_path: Path, name: str, **changes: object) -> Path:
    doc = json.loads((FIXTURES / "small" / "export.json").read_text("utf-8"))
    doc.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del doc[key]
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False), "utf-8")
    return path


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"version": 2}, "unsupported export version 2 (this tool reads version 1)"),
        ({"version": "1"}, 'unsupported export version "1"'),
        ({"version": None}, "an export without a version"),
        (
            {"eventCount": 174},
            "declares eventCount 174 but holds 173 events: the export is incomplete",
        ),
        (
            {"eventCount": 100},
            "declares eventCount 100 but holds 173 events: more than it declares",
        ),
        ({"eventCount": -1}, "eventCount -1 is not a count"),
        ({"eventCount": "173"}, 'eventCount "173" is not a count'),
    ],
    ids=["version 2", "version as text", "no version", "cut short", "longer", "negative", "text"],
)
def test_an_export_whose_header_contradicts_it_is_refused_at_open(
    tmp_path: Path, changes: dict[str, object], expected: str
):
    """Unknown versions and wrong eventCounts are refused before any event is used."""
    path = _export(tmp_path, "export.json", **changes)
    with pytest.raises(SourceError) as info:
        open_source(path)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_an_export_cut_short_is_refused_by_every_command(tmp_path: Path, runner):
    """The export-truncated case: 100 of 173 events; nothing is replayed or written."""
    doc = json.loads((FIXTURES / "small" / "export.json").read_text("utf-8"))
    doc["events"] = doc["events"][:100]
    path = tmp_path / "short.json"
    path.write_text(json.dumps(doc), "utf-8")
    target = tmp_path / "t.db"
    for args in (["inspect", str(path)], ["replay", str(path), str(target)]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 1 and "holds 100 events: the export is incomplete" in (
            result.stderr
        )
    assert not target.exists()


def test_an_export_without_event_count_counts_its_events(tmp_path: Path):
    path = _export(tmp_path, "export.json", eventCount=None)
    assert open_source(path).count() == 173 == len(list(open_source(path).events()))


#: Args whose text a window can cut anywhere: a surrogate pair and a lone surrogate as
#: escapes, two-byte and four-byte UTF-8, a number beyond 64 bits, an exponent, a long
#: integer, as JSON text (a Python str holding a lone surrogate cannot be encoded to UTF-8).
TRICKY_ARGS = (
    '{"key":"tricky","value":["\\ud83d\\ude00 \u00e9\U0001f600","\\ud83d",'
    "100000000000000000000,1.5e-7," + "9" * 99 + "]}"
)
#: TRICKY_ARGS as read: JSON.stringify of what JSON.parse reads (the pair is one character).
TRICKY_ARGS_READ = TRICKY_ARGS.replace("\\ud83d\\ude00", "\U0001f600")


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_an_export_is_read_the_same_whatever_window_it_is_read_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
):
    """An export is read a window at a time: values, multi-byte characters, escapes and
    numbers cut by the window's edge are read whole; a BOM, a compact layout and the
    events array before the header give the same header and events."""
    reference = list(open_source(FIXTURES / "small" / "export.json").events())
    doc = json.loads((FIXTURES / "small" / "export.json").read_text("utf-8"))
    events = [json.dumps(e, ensure_ascii=False) for e in doc.pop("events")]
    first_args = json.dumps(json.loads(events[0])["args"], ensure_ascii=False)
    events[0] = events[0].replace(first_args, TRICKY_ARGS)
    header = json.dumps(doc)[1:-1]
    path = tmp_path / "export.json"
    path.write_text("\ufeff{" + '"events":[' + ",".join(events) + "]," + header + "}", "utf-8")
    monkeypatch.setattr(sources._JsonStream, "CHUNK", chunk)
    source = open_source(path)
    assert (source.store_id, source.count()) == ("ai-desk", 173)
    read = [(e.event_id, e.args_json) for e in source.events()]
    assert read[0] == ("e1", TRICKY_ARGS_READ)
    assert read[1:] == [(e.event_id, e.args_json) for e in reference[1:]]


#: Where a real export's 3rd event starts (fixtures/small/export.json).
THIRD = '},\n    {\n      "name": "v1.PersonaCreated"'

EXPORT_FAULTS = {
    "a missing comma": (
        lambda text: text.replace('"name": "v1.PersonaCreated",', '"name": "v1.PersonaCreated"', 1),
        "invalid JSON at line 31, column 7 (event #3): expecting ',' delimiter",
    ),
    "cut short": (
        lambda text: text[: text.index('"v1.PersonaCreated"') + 40],
        "invalid JSON: the file ends inside event #3, begun at line 29, column 5 (cut short?)",
    ),
    "cut in a literal": (
        lambda text: text[: text.index('"v1.PersonaCreated"')] + "tr",
        "invalid JSON: the file ends inside event #3, begun at line 29, column 5 (cut short?)",
    ),
    "cut after an event": (
        lambda text: text[: text.index(THIRD) + 1],
        "invalid JSON: the file ends after event #2 (cut short?)",
    ),
    "cut after a comma": (
        lambda text: text[: text.index(THIRD) + 3],
        "invalid JSON: the file ends before event #3 (cut short?)",
    ),
    "not UTF-8": (
        lambda text: text.replace('"v1.PersonaCreated"', '"v1.Persona\udcffCreated"', 1),
        "invalid JSON: not UTF-8 text (byte 610)",
    ),
    "a trailing comma": (
        lambda text: text.replace("\n  ]\n}", ",\n  ]\n}"),
        "invalid JSON at line 2842, column 3 (event #174): expecting value",
    ),
    "more after it": (lambda text: text + "{}", "(the export): more after the export's object"),
    "two events arrays": (
        lambda text: text.replace('"events": [', '"events": [],\n  "events": [', 1),
        "not a LiveStore export at line 7, column 13 (the export): a second 'events' array",
    ),
}


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
@pytest.mark.parametrize("case", EXPORT_FAULTS, ids=list(EXPORT_FAULTS))
def test_a_broken_export_names_the_line_column_and_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, chunk: int
):
    """A fault in an export is one line naming where it is, whatever the window."""
    spoil, expected = EXPORT_FAULTS[case]
    path = tmp_path / "export.json"
    text = spoil((FIXTURES / "small" / "export.json").read_text("utf-8"))
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    monkeypatch.setattr(sources._JsonStream, "CHUNK", chunk)
    with pytest.raises(SourceError) as info:
        list(open_source(path).events())
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert expected in str(info.value)


def test_ndjson_tolerates_bom_crlf_blank_lines_and_no_final_newline(tmp_path: Path):
    """The same events, whatever editor or OS last saved the file."""
    lines = (FIXTURES / "small" / "events.ndjson").read_text("utf-8").splitlines()
    text = "\r\n\r\n" + "\r\n\r\n".join(lines[:5]) + "\r\n  \t\r\n" + "\n".join(lines[5:])
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    reference = list(open_source(FIXTURES / "small" / "events.ndjson").events())
    source = open_source(path)
    assert source.kind == "ndjson"
    assert [(e.event_id, e.args_json) for e in source.events()] == [
        (e.event_id, e.args_json) for e in reference
    ]


NDJSON_BAD_LINES = {
    "a BOM on a later line": (
        b"\xef\xbb\xbf",
        "line 3 is not JSON: a UTF-8 BOM at column 1 (one is read only at the start of the file)",
    ),
    "an array": (b"[1, 2]", "line 3 is not a LiveStore event"),
    "two objects": (b'{"name": "a"} {"name": "b"}', "line 3 is not JSON: extra data at column 15"),
    "cut short in a string": (
        b'{"name": "v1.ConfigSet", "args": {"key": "a", "val',
        "line 3 is not JSON: it ends at column 50 inside a string (cut short?)",
    ),
    "cut short in a number": (
        b'{"name": "v1.ConfigSet", "seqNum": 3, "args": {"key": "a", "value": 0.',
        "line 3 is not JSON: it ends at column 70 before its JSON value is complete (cut short?)",
    ),
    "cut short between keys": (
        b'{"name": "v1.ConfigSet", "seqNum": 3\r',
        "line 3 is not JSON: it ends at column 36 before its JSON value is complete (cut short?)",
    ),
    "a raw tab in a string": (
        b'{"name": "v1.Config\tSet", "seqNum": 3, "args": {}}',
        "line 3 is not JSON: raw control character U+0009 inside a string at column 20 "
        "(JSON text must escape it)",
    ),
    "a missing colon": (
        b'{"name" "v1.ConfigSet"}',
        "line 3 is not JSON: expecting ':' delimiter at column 9",
    ),
    "not UTF-8": (b'{"name": "\xff"}', "line 3 is not UTF-8 text"),
    "a number": (b"42", "line 3 is not a LiveStore event"),
    "an event without seqNum": (b'{"name": "v1.ConfigSet", "args": {}}', "line 3: missing"),
    # true is no position (Python's bool is an int; compiled code read it as 1, pure as True)
    "a boolean global position": (
        b'{"name": "v1.ConfigSet", "seqNum": {"global": true, "client": 0}, "args": {}}',
        "line 3: missing or malformed seqNum",
    ),
    "a boolean client position": (
        b'{"name": "v1.ConfigSet", "seqNum": {"global": 3, "client": true}, "args": {}}',
        "line 3: malformed seqNum",
    ),
    "a boolean rebase generation": (
        b'{"name": "v1.ConfigSet", "seqNum": {"global": 3, "rebaseGeneration": false}, "args": {}}',
        "line 3: malformed seqNum",
    ),
}


def test_an_ndjson_line_cut_anywhere_is_said_to_end_there(tmp_path: Path):
    """A line cut at any character (in a key, a string, an escape, a number, a literal,
    between tokens) is said to end there, at its last column, not blamed on a parser
    detail such as the line end inside an open string."""
    first, line = (
        '{"name":"v1.X","seqNum":1}',
        '{"name":"v1.X","seqNum":{"global":2,"client":0},"args":{"s":"\u00e9\\u00e9'
        '\\ud83d\\udca1\\n","n":-1.5e+3,"i":10,"b":[true,false,null]}}',
    )
    path = tmp_path / "events.ndjson"
    for cut in range(1, len(line)):
        path.write_text(f"{first}\n{line[:cut]}\n{first}\n", "utf-8")
        with pytest.raises(SourceError) as info:
            list(open_source(path).events())
        assert f"line 2 is not JSON: it ends at column {cut} " in str(info.value), line[:cut]


@pytest.mark.parametrize("case", NDJSON_BAD_LINES, ids=list(NDJSON_BAD_LINES))
def test_ndjson_is_strict_on_everything_else_naming_the_line(tmp_path: Path, case: str):
    """Anything but one event object per line is an error with its line number."""
    lines = (FIXTURES / "small" / "events.ndjson").read_bytes().splitlines()
    bad, expected = NDJSON_BAD_LINES[case]
    if case == "a BOM on a later line":
        bad += lines[2]
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join([lines[0], lines[1], bad, *lines[3:]]) + b"\n")
    with pytest.raises(SourceError) as info:
        list(open_source(path).events())
    assert expected in str(info.value) and str(path) in str(info.value)
