"""Bulk load's derived tables: a first run into an empty target leaves the derived tables
`deferrable_derived` accepts empty and fills them at its end from their parents' final
rows (`projector.store.build_derived`), with the same rows as a replay that writes them
row by row, interrupted or not."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from events.catalog import Catalog
from events.encoding import js_json
from events.sources import connect_readonly
from projector.cli import cli
from projector.digest import digest
from projector.errors import Interrupted
from projector.handlers import compile_catalog
from projector.replay import ReplayOptions, replay, resume
from projector.runs import status
from projector.store import build_derived, derived_element
from projector.target import Derived, Table, deferrable_derived, open_target
from projector.verify import verify
from tests.conftest import catalog_tables, write_ndjson
from tests.test_replay import stop_after

#: The derived table of the test catalog as `deferrable_derived` accepts it.
SET_OF_TEXT = """CREATE TABLE item_labels (
    itemId TEXT NOT NULL REFERENCES items(id),
    label TEXT NOT NULL,
    PRIMARY KEY (itemId, label)
) STRICT, WITHOUT ROWID;"""


def tagged_catalog(folder: Path, labels_sql: str = SET_OF_TEXT) -> Catalog:
    """A catalog of items with a JSON array of labels and their derived table, written
    to FOLDER: v1.ItemPut puts an item (replacing it, unread), v1.ItemRelabeled updates
    an item's labels (read first: the arrays are compared), v1.ItemRemoved deletes one."""
    (folder / "migrations").mkdir(parents=True)
    (folder / "catalog.toml").write_text(
        'name = "tagged"\n'
        'description = "Test catalog: a derived table filled by a bulk load."\n'
        "[tables.items]\n"
        'noun = "item"\n'
        'codecs = { labels = "json" }\n'
        "[tables.item_labels]\n"
        'derived = { from = "items", column = "labels", key = "itemId", element = "label" }\n'
        '[events."v1.ItemPut"]\n'
        'insert = "items"\n'
        'values = { id = "$.id", labels = "$.labels" }\n'
        'on_conflict = "replace"\n'
        '[events."v1.ItemRelabeled"]\n'
        'update = "items"\n'
        'set = { labels = "$.labels" }\n'
        'where = { id = "$.id" }\n'
        '[events."v1.ItemRemoved"]\n'
        'delete = "items"\n'
        'where = { id = "$.id" }\n',
        "utf-8",
    )
    (folder / "migrations" / "0001_tables.sql").write_text(
        "CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, "
        "labels TEXT NOT NULL DEFAULT '[]') STRICT;\n" + labels_sql + "\n",
        "utf-8",
    )
    for name in ("v1.ItemPut", "v1.ItemRelabeled", "v1.ItemRemoved"):
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
        (folder / f"{name}.json").write_text(json.dumps({**schema, "title": name}), "utf-8")
    return Catalog.load(folder)


def put(item: str, labels: Any) -> tuple[str, dict[str, Any]]:
    return ("v1.ItemPut", {"id": item, "labels": labels})


def relabel(item: str, labels: Any) -> tuple[str, dict[str, Any]]:
    return ("v1.ItemRelabeled", {"id": item, "labels": labels})


#: Arrays a derived table's two ways could tell apart: escapes (a lone surrogate's among
#: them), duplicates, numbers and booleans stored as text, elements gained, lost and kept,
#: parents deleted and put again, and arrays refused (null, an object): parked both ways.
EVENTS = [
    put("a", ["x", "y", "x"]),
    put("b", ['say "hi"', "back\\slash", "line\nbreak", "é", "\U0001f600"]),
    put("c", [1, "1", True, 1.5, -0.0, 10**20, "2"]),
    put("d", ["a\ud800", "a\udc00", "plain"]),
    put("e", [None]),
    put("f", [{"k": 1}]),
    relabel("a", ["y", "z"]),
    relabel("d", ["a\ud800"]),
    put("g", ["g1"]),
    ("v1.ItemRemoved", {"id": "g"}),
    put("h", ["h1", "h2"]),
    ("v1.ItemRemoved", {"id": "h"}),
    put("h", ["h3"]),
    relabel("c", ["2", 3]),
    relabel("b", ["é", "\U0001f600", "new"]),
    put("i", ["k,1", "k", 2, "2", "[x", False]),  # read by json_each and in Python: one row each
    *(put(f"n{n:03}", [f"t{n % 7}", f"t{n % 5}", f"t{n % 3}"]) for n in range(60)),
    *(relabel(f"n{n:03}", [f"t{n % 4}", "t1"]) for n in range(0, 60, 3)),
]


def labels(path: Path) -> list[tuple[Any, ...]]:
    conn = connect_readonly(path)
    try:
        return conn.execute(
            "SELECT itemId, label, typeof(label) FROM item_labels ORDER BY itemId, label"
        ).fetchall()
    finally:
        conn.close()


def parked(path: Path) -> list[tuple[Any, ...]]:
    conn = connect_readonly(path)
    try:
        return conn.execute(
            "SELECT position, kind, reason FROM _projector_parked ORDER BY position"
        ).fetchall()
    finally:
        conn.close()


@pytest.fixture
def tagged(tmp_path: Path) -> tuple[Catalog, Path, Path]:
    """The catalog, the log of EVENTS, and that log replayed row by row, a batch per event
    (each array compared with the one stored: `_element_changes`)."""
    catalog = tagged_catalog(tmp_path / "catalog")
    log = write_ndjson(tmp_path / "log.ndjson", EVENTS)
    row_by_row = tmp_path / "row-by-row.db"
    options = ReplayOptions(on_invalid="park", catalog=catalog, bulk_load=False, batch_size=1)
    replay(log, row_by_row, options)
    return catalog, log, row_by_row


def stopped_after(batches: int, tagged: tuple[Catalog, Path, Path], folder: Path) -> Path:
    """A target in FOLDER whose first run of TAGGED's log stopped after BATCHES batches
    of 10 events."""
    catalog, log, _ = tagged
    target = folder / "bulk.db"
    options = ReplayOptions(
        on_invalid="park", catalog=catalog, batch_size=10, should_stop=stop_after(batches)
    )
    with pytest.raises(Interrupted):
        replay(log, target, options)
    return target


def edit(target: Path, sql: str) -> None:
    """Run SQL on TARGET as a hand edit would."""
    conn = sqlite3.connect(target)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_the_test_catalog_defers_its_derived_table(tmp_path: Path):
    catalog = tagged_catalog(tmp_path / "catalog")
    tables, handlers = compile_catalog(catalog)
    db = open_target(tmp_path / "t.db", create=True, catalog=catalog)
    try:
        assert deferrable_derived(db.conn, tables, handlers.queried()) == ["item_labels"]
    finally:
        db.conn.close()


@pytest.mark.parametrize(("batch_size", "writer"), [(1, False), (5, True), (1000, False)])
def test_derived_rows_filled_at_the_end_are_those_written_row_by_row(
    tmp_path: Path, tagged: tuple[Catalog, Path, Path], batch_size: int, writer: bool
):
    catalog, log, row_by_row = tagged
    target = tmp_path / "bulk.db"
    options = ReplayOptions(on_invalid="park", catalog=catalog, batch_size=batch_size)
    options.writer = writer
    result = replay(log, target, options)
    assert result.state == "complete" and status(target)["deferredTables"] == []
    assert labels(target) == labels(row_by_row)
    assert parked(target) == parked(row_by_row)
    assert [p[0] for p in parked(target)] == [5, 6]  # the null, the object
    assert digest(target) == digest(row_by_row)


def test_the_rows_hold_one_row_per_stored_element(tagged: tuple[Catalog, Path, Path]):
    """What both ways hold, spelled out: text as it is, numbers and booleans as the
    TEXT column stores them, one row for elements stored alike (two lone surrogates:
    U+FFFD, which one of them leaving does not take away while the other stays)."""
    _, _, row_by_row = tagged
    found = {(i, label) for i, label, _ in labels(row_by_row) if not i.startswith("n")}
    assert found == {
        ("a", "y"),
        ("a", "z"),
        *(("b", t) for t in ("é", "\U0001f600", "new")),
        ("c", "2"),
        ("c", "3"),
        ("d", "a\ufffd"),
        ("h", "h3"),
        *(("i", t) for t in ("k,1", "k", "2", "[x", "0")),
    }


def test_an_interrupted_bulk_load_resumes_to_the_same_derived_rows(
    tmp_path: Path, tagged: tuple[Catalog, Path, Path], runner: CliRunner
):
    """Stopped between batches, the target holds its parents' rows and no derived row
    (status says the table is not filled yet); resume applies the rest, still deferring,
    and fills it."""
    catalog, _, row_by_row = tagged
    target = stopped_after(2, tagged, tmp_path)
    assert status(target)["position"] == 20 and labels(target) == []
    assert status(target)["deferredTables"] == ["item_labels"]
    shown = runner.invoke(cli, ["status", str(target)])
    assert "derived:    item_labels not filled yet" in shown.output
    assert "(resume it)" in shown.output
    resume(target, ReplayOptions(catalog=catalog, batch_size=10))
    assert status(target)["deferredTables"] == []
    assert labels(target) == labels(row_by_row) and digest(target) == digest(row_by_row)
    assert "derived:" not in runner.invoke(cli, ["status", str(target)]).output


def test_derived_rows_rebuilt_from_what_the_parents_hold_when_the_load_ends(
    tmp_path: Path, tagged: tuple[Catalog, Path, Path]
):
    """The fill starts from an empty table: rows a run wrote into the derived table while
    its bulk load was unfinished (`replay-parked` on an interrupted first run defers as
    well; here, rows written by hand) do not outlive their parent's array."""
    catalog, _, row_by_row = tagged
    target = stopped_after(1, tagged, tmp_path)
    edit(target, "INSERT INTO item_labels VALUES ('a', 'stale')")
    resume(target, ReplayOptions(catalog=catalog))
    assert labels(target) == labels(row_by_row)


@pytest.mark.parametrize(
    ("labels_sql", "why"),
    [
        (SET_OF_TEXT.replace("label TEXT", "label TEXT COLLATE NOCASE"), "a collation"),
        (SET_OF_TEXT.replace("label TEXT NOT NULL", "label INTEGER"), "not text"),
        (SET_OF_TEXT.replace("label TEXT NOT NULL", "label ANY"), "any type"),
        (SET_OF_TEXT.replace("NOT NULL,\n", "NOT NULL CHECK (label <> ''),\n", 1), "a check"),
        (SET_OF_TEXT.replace("label TEXT NOT NULL,", "label TEXT, n TEXT,"), "a column more"),
        (
            SET_OF_TEXT.replace(",\n    PRIMARY KEY (itemId, label)", "").replace(
                ", WITHOUT ROWID", ""
            ),
            "no unique key",
        ),
        (
            SET_OF_TEXT.replace(", label)", ", label COLLATE NOCASE)"),
            "a unique key under another collation",
        ),
        (
            SET_OF_TEXT + "\nCREATE TRIGGER t AFTER INSERT ON item_labels BEGIN SELECT 1; END;",
            "a trigger",
        ),
        (  # trial 36: a trigger may change a parent's array (on any table: here, its own)
            SET_OF_TEXT + "\nCREATE TRIGGER t AFTER INSERT ON items "
            "BEGIN UPDATE items SET labels = '[]' WHERE id = 'x'; END;",
            "a trigger on another table",
        ),
        (  # trial 36: which of "x" and "X" stays would depend on the order of the writes
            SET_OF_TEXT + "\nCREATE UNIQUE INDEX u ON item_labels (itemId, label COLLATE NOCASE);",
            "another unique index",
        ),
        (
            SET_OF_TEXT + "\nCREATE UNIQUE INDEX u ON item_labels (itemId, lower(label));",
            "a unique index on an expression",
        ),
        (SET_OF_TEXT + "\nCREATE UNIQUE INDEX u ON item_labels (label);", "a unique element"),
        (  # trial 36: `digest` reads a table without a primary key in rowid order
            SET_OF_TEXT.replace("PRIMARY KEY (itemId, label)", "UNIQUE (itemId, label)").replace(
                ", WITHOUT ROWID", ""
            ),
            "a unique constraint, no primary key",
        ),
    ],
)
def test_a_derived_table_that_could_end_otherwise_is_written_row_by_row(
    tmp_path: Path, labels_sql: str, why: str
):
    """Only a set of text is filled at the end: anything that could refuse a row, or keep
    another of two equal elements, keeps the table written row by row."""
    catalog = tagged_catalog(tmp_path / "catalog", labels_sql)
    tables, handlers = compile_catalog(catalog)
    db = open_target(tmp_path / "t.db", create=True, catalog=catalog)
    try:
        assert deferrable_derived(db.conn, tables, handlers.queried()) == [], why
    finally:
        db.conn.close()


def test_no_derived_table_is_deferred_when_a_handler_may_read_it():
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        "CREATE TABLE p (id TEXT PRIMARY KEY, tags TEXT);"
        "CREATE TABLE d (pid TEXT, tag TEXT, PRIMARY KEY (pid, tag)) WITHOUT ROWID;"
    )
    tables = {
        "p": Table("p", ("id",), ("id", "tags"), {}),
        "d": Table(
            "d", ("pid", "tag"), ("pid", "tag"), {}, derived=Derived("p", "tags", "pid", "tag")
        ),
    }
    assert deferrable_derived(conn, tables, set()) == ["d"]
    assert deferrable_derived(conn, tables, {("d", "tag")}) == []  # a handler reads it
    assert deferrable_derived(conn, tables, None) == []  # a Python handler may read anything


@pytest.mark.parametrize(("catalog", "deferred"), [("ai-desk", ["memory_tags"]), ("todomvc", [])])
def test_which_derived_tables_a_bundled_catalog_defers(
    tmp_path: Path, catalog: str, deferred: list[str]
):
    tables, handlers = catalog_tables(catalog)
    db = open_target(tmp_path / "t.db", create=True, catalog=Catalog.bundled(catalog))
    try:
        assert deferrable_derived(db.conn, tables, handlers.queried()) == deferred
    finally:
        db.conn.close()


def test_verify_names_a_derived_table_not_filled_yet(
    tmp_path: Path, tagged: tuple[Catalog, Path, Path]
):
    """An unfinished bulk load does not verify: the accounting says the run did not
    finish, and the derived table says it is not filled yet, also after a run that failed
    (whose accounting alone would pass)."""
    catalog = tagged[0]
    target = stopped_after(2, tagged, tmp_path)
    edit(target, "UPDATE _projector_migration SET state = 'failed'")
    report = verify(target, source=False, catalog=catalog)
    failed = {c.name: c.detail for c in report.checks if not c.ok}
    assert list(failed) == ["item_labels"]
    assert failed["item_labels"].startswith("not filled yet: the migration's first run fills")
    assert "projector resume" in failed["item_labels"]
    resume(target, ReplayOptions(catalog=catalog))
    assert verify(target, source=False, catalog=catalog).ok


ELEMENTS = st.one_of(
    st.text(alphabet=st.sampled_from('ab,["]\\\n é\ud800\udc00\U0001f600'), max_size=4),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(arrays=st.lists(st.lists(ELEMENTS, max_size=6), min_size=1, max_size=8))
def test_build_derived_stores_each_array_as_a_replay_writing_it_anew_does(
    arrays: list[list[Any]],
):
    """build_derived against the row-by-row path's "written anew" (`_element_changes`:
    each element of the stored array, in order, `derived_element`, ON CONFLICT DO NOTHING), over
    arrays of text with escapes, commas, brackets and lone surrogates, integers beyond 64
    bits, floats and booleans, as a replay stores them (`js_json`)."""
    conn = sqlite3.connect(":memory:")
    labels_sql = SET_OF_TEXT.replace("REFERENCES items(id)", "")
    conn.executescript(
        "CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, labels TEXT NOT NULL) STRICT;"
        + labels_sql
        + labels_sql.replace("item_labels", "expected")
    )
    for n, array in enumerate(arrays):
        key, text = f"i{n}", js_json(array)
        conn.execute("INSERT INTO items VALUES (?, ?)", (key, text))
        conn.executemany(  # the put row's text parsed, as `_check_arrays` parses it
            "INSERT INTO expected VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(key, derived_element(e)) for e in json.loads(text)],
        )
    items = Table("items", ("id",), ("id", "labels"), {})
    item_labels = Table(
        "item_labels",
        ("itemId", "label"),
        ("itemId", "label"),
        {},
        derived=Derived("items", "labels", "itemId", "label"),
    )
    written = build_derived(conn, item_labels, items)
    found = conn.execute("SELECT * FROM item_labels ORDER BY 1, 2").fetchall()
    assert found == conn.execute("SELECT * FROM expected ORDER BY 1, 2").fetchall()
    assert written == len(found)


def test_an_element_no_row_can_hold_written_by_hand_is_left_to_verify(
    tmp_path: Path, tagged: tuple[Catalog, Path, Path]
):
    """A parent's array edited by hand while the bulk load was unfinished, to hold a null
    (the element column is NOT NULL) or an object: the fill leaves them out and the run
    completes (trial 36: the null stopped every resume with SQLite's NOT NULL failure,
    naming no row); verify then names the table, whose rows are not the array's."""
    catalog = tagged[0]
    target = stopped_after(2, tagged, tmp_path)
    edit(target, """UPDATE items SET labels = '["a", null, {"k": 1}]' WHERE id = 'b'""")
    assert resume(target, ReplayOptions(catalog=catalog)).state == "complete"
    assert [r[1] for r in labels(target) if r[0] == "b"] == ["a"]
    failed = {c.name for c in verify(target, source=False, catalog=catalog).checks if not c.ok}
    assert failed == {"item_labels"}
