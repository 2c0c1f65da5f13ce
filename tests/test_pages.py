"""The compiled page reader and digest text (events/_pages.c) give what the sqlite3 module
and the Python code give: the same events, the same bytes hashed, and a decline (None),
never an answer of their own, for anything but a plain page or event.

Every other test of the suite runs with them wherever the compiled build runs
(`events._native`); tests/test_native.py replays every golden case with both builds."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from events import _native
from events.envelope import Event
from events.sources import open_source
from events.sqlite_source import PAGE_ROWS, _Reader
from projector.checkpoint import PrefixDigest
from tests.conftest import FIXTURES, SHARED, SMALL

PAGES = _native.extension("events._pages")
pytestmark = pytest.mark.skipif(PAGES is None, reason="the compiled build is not in use here")

#: Every SQLite eventlog bundled in fixtures/, and the big ones of ../shared when present.
STORES = sorted(
    {p.parent for p in FIXTURES.rglob("eventlog@*.db")}
    | {p.parent for p in SHARED.parent.rglob("fixtures/*/*/eventlog@*.db")}
    if SHARED.is_dir()
    else {p.parent for p in FIXTURES.rglob("eventlog@*.db")}
)


def _read(store: Path, compiled: bool, **kwargs: bool) -> list[Event]:
    source = open_source(store)
    try:
        reader = source._reader  # type: ignore[attr-defined]
        assert reader._pages is not None
        if not compiled:
            reader._pages.close()
            reader._pages = None
        return list(source.events(**kwargs))
    finally:
        source.close()


def _same(got: list[Event], expected: list[Event]) -> None:
    assert got == expected
    for a, b in zip(got, expected, strict=True):
        assert type(a) is Event
        assert [type(x) for x in a] == [type(x) for x in b]


@pytest.mark.parametrize("store", STORES, ids=lambda p: str(p.relative_to(p.parents[2])))
@pytest.mark.parametrize("utf8_args", [False, True])
def test_the_compiled_reader_reads_every_store_as_the_sqlite3_module_does(store, utf8_args):
    """Every event of every store (ai-desk's, todomvc's, readinglist's, format 4 and 6,
    pages of 2,000 events and their anchors), field by field and type by type."""
    expected = _read(store, compiled=False, utf8_args=utf8_args)
    got = _read(store, compiled=True, utf8_args=utf8_args)
    assert len(got) > 0
    _same(got, expected)


@pytest.mark.parametrize("store", STORES, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_names_are_counted_as_sqlite_groups_them(store):
    """`name_counts` counted in one pass by the compiled reader: the same names, counts,
    LiveStore's unknowns (schemaHash -1) and order as SQLite's GROUP BY name."""
    source = open_source(store)
    try:
        reader = source._reader  # type: ignore[attr-defined]
        compiled = source.name_counts()
        pages, reader._pages = reader._pages, None
        by_sqlite = source.name_counts()
        reader._pages = pages
    finally:
        source.close()
    assert list(compiled.items()) == list(by_sqlite.items())
    assert sum(n for n, _ in compiled.values()) > 0


def _log(tmp_path: Path, rows: list[tuple[Any, ...]], encoding: str = "UTF-8") -> Path:
    """A STRICT format-6 eventlog holding ROWS (seqNumGlobal, name, argsJson, clientId),
    its text stored in ENCODING."""
    folder = tmp_path / "store"
    folder.mkdir()
    path = folder / "eventlog@6.db"
    src = sqlite3.connect(SMALL / "eventlog@6.db")
    ddl = src.execute("SELECT sql FROM sqlite_master WHERE name = 'eventlog'").fetchone()[0]
    others = src.execute(
        "SELECT sql FROM sqlite_master WHERE name != 'eventlog' AND sql IS NOT NULL"
    ).fetchall()
    src.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA encoding = '{encoding}'")
    conn.execute(ddl)
    for (sql,) in others:
        conn.execute(sql)
    for g, name, args, client in rows:
        conn.execute(
            "INSERT INTO eventlog (seqNumGlobal, seqNumClient, seqNumRebaseGeneration, "
            "parentSeqNumGlobal, parentSeqNumClient, parentSeqNumRebaseGeneration, name, "
            "argsJson, clientId, sessionId, schemaHash, syncMetadataJson) "
            "VALUES (?, 0, 0, ?, 0, 0, ?, ?, ?, 's', -7, '{}')",
            (g, g - 1, name, args, client),
        )
    conn.commit()
    conn.close()
    return folder


def test_the_compiled_reader_shares_short_texts_and_reads_long_and_many_ones(tmp_path):
    """Names and ids repeat: equal short texts of a column come as one str; texts longer
    than the shared ones, more distinct texts than it keeps, and non-ASCII text read the
    same; a page boundary falls inside the log."""
    rng = random.Random(7)
    names = [f"v1.E{i}" for i in range(80)] + ["v1.Ünïcode", "v1.😀", "v1." + "x" * 200]
    rows = [
        (g, rng.choice(names), '{"a":"' + "é" * rng.randrange(0, 300) + '"}', f"c{g % 40}")
        for g in range(1, PAGE_ROWS * 2 + 7)
    ]
    store = _log(tmp_path, rows)
    expected = _read(store, compiled=False)
    got = _read(store, compiled=True)
    _same(got, expected)
    page = got[:PAGE_ROWS]
    assert len({id(e.session_id) for e in page}) == 1
    assert len({id(e.name) for e in page}) < len(page) / 10
    # More names than the counts' first allocation holds (64).
    source = open_source(store)
    try:
        counts = source.name_counts()
        pages, source._reader._pages = source._reader._pages, None  # type: ignore[attr-defined]
        assert list(source.name_counts().items()) == list(counts.items())
        source._reader._pages = pages  # type: ignore[attr-defined]
    finally:
        source.close()
    assert len(counts) == len(names) and sum(n for n, _ in counts.values()) == len(rows)


@pytest.mark.parametrize("encoding", ["UTF-8", "UTF-16le", "UTF-16be"])
def test_names_come_in_the_order_sqlite_groups_them_in_every_encoding(tmp_path, encoding):
    """Names past the Basic Multilingual Plane and names in its upper part order alike in
    UTF-8 and by code point, unlike in UTF-16 (a fresh user's trial): `name_counts` lists
    them in GROUP BY's order in every encoding, and the events read alike both ways."""
    names = ["v1.A", "v1.\uff21", "v1.\U0001f600", "v1.z", "v1.\u00e9"]
    store = _log(tmp_path, [(g, names[g % len(names)], "{}", "c") for g in range(1, 30)], encoding)
    source = open_source(store)
    try:
        conn = sqlite3.connect(store / "eventlog@6.db")
        grouped = [r[0] for r in conn.execute("SELECT name FROM eventlog GROUP BY name")]
        conn.close()
        assert list(source.name_counts()) == grouped
    finally:
        source.close()
    _same(_read(store, compiled=True), _read(store, compiled=False))


@pytest.mark.parametrize(
    "bad",
    [
        "name",
        "clientId",
    ],
)
def test_text_that_is_not_utf8_is_left_to_the_sqlite3_module(tmp_path, bad):
    """The compiled reader declines a page with TEXT that is not UTF-8 (it returns None):
    the sqlite3 module's path then refuses the source naming the event and column, as
    it always did."""
    store = _log(tmp_path, [(1, "v1.A", "{}", "c"), (2, "v1.B", "{}", "c")])
    conn = sqlite3.connect(store / "eventlog@6.db")
    conn.execute(f"UPDATE eventlog SET {bad} = CAST(X'61FF62' AS TEXT) WHERE seqNumGlobal = 2")
    conn.commit()
    conn.close()
    source = open_source(store)
    try:
        reader = source._reader  # type: ignore[attr-defined]
        sql = f"SELECT {source._select} FROM eventlog ORDER BY seqNumGlobal"  # type: ignore[attr-defined]
        assert reader._pages.events(sql, (), 1, Event) is None
        if bad == "name":
            names = "SELECT name, schemaHash = -1 FROM eventlog"
            assert reader._pages.name_counts(names) is None
            with pytest.raises(Exception, match="the name of event #2 .* is TEXT that is not"):
                source.name_counts()
        with pytest.raises(Exception, match=f"the {bad} of event #2 .* is TEXT that is not UTF-8"):
            list(source.events(utf8_args=True))
    finally:
        source.close()


def test_the_reader_converts_each_storage_class_as_the_sqlite3_module_does(tmp_path):
    """INTEGER, REAL, TEXT, BLOB (an empty one too) and NULL, as Python's sqlite3 gives
    them with no converters; the position comes first, from FIRST."""
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a, b, c, d, e, f, g, h, i, j)")
    values = (2**63 - 1, -(2**63), 1.5, "tëxt", b"\x00\xff", b"", None, "", 0, float("inf"))
    conn.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
    conn.commit()
    expected = conn.execute("SELECT * FROM t").fetchall()
    conn.close()
    reader = PAGES.Reader(path.resolve().as_uri() + "?mode=ro")
    got = reader.events("SELECT * FROM t", (), 41, Event)
    assert got == [Event(41, *expected[0])]
    assert [type(x) for x in got[0][1:]] == [type(x) for x in expected[0]]
    assert reader.events("SELECT * FROM t WHERE a = ?", (2**63 - 1,), 1, Event) == got[:0] + [
        Event(1, *expected[0])
    ]
    reader.close()


def test_the_reader_declines_what_is_not_a_plain_page(tmp_path):
    """SQL that fails, a parameter that is no integer (or beyond 64 bits), a database
    locked by another connection, a closed reader: None, nothing raised."""
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (a)")
    conn.execute("INSERT INTO t VALUES (1)")
    reader = PAGES.Reader(path.resolve().as_uri() + "?mode=ro")
    assert reader.events("SELECT nope FROM t", (), 1, Event) is None
    assert reader.events("SELECT a FROM t WHERE a = ?", ("1",), 1, Event) is None
    assert reader.events("SELECT a FROM t WHERE a = ?", (2**64,), 1, Event) is None
    assert reader.events("SELECT a FROM t WHERE a = ?", (1, 2), 1, Event) is None
    assert reader.name_counts("SELECT a FROM t") is None  # not (name, flag)
    assert reader.name_counts("SELECT 'x', 1.5 FROM t") is None  # a flag that is no integer
    assert reader.name_counts("SELECT 5, 1 FROM t") is None  # a name that is no text
    assert reader.name_counts("SELECT 'x', a FROM t WHERE a > 5") == {}
    conn.execute("BEGIN EXCLUSIVE")
    assert reader.events("SELECT a FROM t", (), 1, Event) is None
    assert reader.name_counts("SELECT 'x', a FROM t") is None
    conn.execute("ROLLBACK")
    assert reader.events("SELECT a FROM t", (), 1, Event) == [(1, 1)]
    reader.close()
    assert reader.events("SELECT a FROM t", (), 1, Event) is None
    with pytest.raises(TypeError):
        reader.events("SELECT a FROM t", (), 1, dict)
    conn.close()


def test_a_source_locked_while_it_is_read_is_waited_for_then_read(tmp_path):
    """A page the compiled reader cannot read for a lock goes to `_Reader.read`'s loop:
    waited for, then read (here the lock is gone by the sqlite3 module's try)."""
    store = _log(tmp_path, [(g, "v1.A", "{}", "c") for g in range(1, 6)])
    source = open_source(store)
    try:
        reader: _Reader = source._reader  # type: ignore[attr-defined]
        calls = []
        real = reader._pages

        class Declining:
            def events(self, *args: Any) -> None:
                calls.append(args[2])
                return None

            def close(self) -> None:
                real.close()

        reader._pages = Declining()
        got = list(source.events(utf8_args=True))
        assert [e.position for e in got] == [1, 2, 3, 4, 5] and calls == [1]
    finally:
        source.close()


def _digest_bytes(events: list[Any]) -> bytes:
    """What `PrefixDigest._update_parts` hashes of EVENTS, joined."""
    seen: list[bytes] = []

    class Spy:
        def update(self, data: bytes) -> None:
            seen.append(bytes(data))

    digest = PrefixDigest()
    digest._hash = Spy()  # type: ignore[assignment]
    digest._update_parts(events)
    return b"".join(seen)


def _event(g: Any, c: Any, name: Any, args: Any) -> Event:
    return Event(1, g, c, 0, 0, 0, name, args, "c", "s", 1)


def test_the_digest_text_is_what_the_python_digest_hashes():
    """Random plain events (non-ASCII names and args as str or as UTF-8 bytes, emoji,
    negative and 64-bit positions): the same bytes; any event that is not plain makes the
    slice None, and `update_many` then hashes it the Python way: the same digest."""
    from events.sqlite_source import Blob

    rng = random.Random(11)
    alphabet = 'aé😀\x00\x1f\x1e{}"\\ \u2028'
    plain = []
    for _ in range(600):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        args: Any = text.encode() if rng.random() < 0.5 else text
        g = rng.choice([0, 1, 2**31, 2**63 - 1, -(2**63), rng.randrange(10**6)])
        plain.append(_event(g, rng.randrange(0, 3), name, args))
    assert PAGES.digest_text(plain, 0, len(plain)) == _digest_bytes(plain)
    assert PAGES.digest_text(plain, 5, 9) == _digest_bytes(plain[5:9])
    assert PAGES.digest_text(plain, 590, 10**9) == _digest_bytes(plain[590:])
    assert PAGES.digest_text(plain, 9, 5) == b""
    odd = [
        _event(1, 0, "v1.A", None),
        _event(1, 0, "v1.A", Blob(b"{}")),
        _event(1, 0, "v1.A", 5),
        _event(1, 0, None, "{}"),
        _event(1, 0, "v1.\ud800", "{}"),
        _event(1, 0, "v1.A", '{"a":"\udfff"}'),
        _event(True, 0, "v1.A", "{}"),
        _event(2**64, 0, "v1.A", "{}"),
        (1, 2, 3),
    ]
    for event in odd:
        mixed = [*plain[:10], event, *plain[10:20]]
        assert PAGES.digest_text(mixed, 0, len(mixed)) is None
        assert PAGES.digest_text(mixed, 0, 10) == _digest_bytes(plain[:10])
        if isinstance(event, Event):
            fast, slow = PrefixDigest(), PrefixDigest()
            fast.update_many(mixed)
            slow._update_parts(mixed)
            assert fast.hexdigest() == slow.hexdigest()


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON-decoded-like value: text from an alphabet of every escape class, integers
    at and past 64 bits, booleans, null, sometimes a float, lists and dicts."""
    alphabet = 'a"\\/\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f\x80é\u2028\u2029😀\ufeff'
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 10)))
    if kind == 1:
        return rng.choice([0, -1, 7, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**30])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.choice([1.5, 1e21, 1.0, -0.0, float("inf")]) if rng.random() < 0.2 else "x"
    if kind in (4, 5):
        return rng.choice(["", "tag", "ünï", "😀", "\u2028"])
    if kind in (6, 7):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 4))): _random_value(
            rng, depth + 1
        )
        for _ in range(rng.randrange(0, 4))
    }


def test_plain_json_writes_what_js_json_writes():
    """`events.encoding.js_json` takes plain values from C (`plain_json`): on 20,000 random
    values (every escape class, 64-bit bounds, nested lists and dicts) it gives exactly
    what js_json's own path (msgspec, the json module) gives, or None for what is not
    plain, which js_json's own path then writes."""
    from events import encoding

    rng = random.Random(3)
    plain = 0
    for _ in range(20_000):
        value = _random_value(rng)
        expected = encoding._js_json(value, False)
        got = PAGES.plain_json(value)
        if got is not None:
            plain += 1
            assert got == expected, value
            assert type(got) is str
        assert encoding.js_json(value) == expected
    assert plain > 10_000


def test_plain_json_declines_what_is_not_plain():
    """A float, a lone surrogate (in text or a key), an integer past 64 bits, a key that
    is no text, a subclass, a tuple, a list or dict at depth 128 (129 levels): None
    (js_json's own path writes them); 128 levels: plain, as for js_json's own path."""
    from events import encoding

    class Text(str):
        pass

    class Items(list):  # type: ignore[type-arg]
        pass

    for value in (
        1.5,
        [1, 2.0],
        "\ud800",
        {"\udfff": 1},
        2**64,
        [-(2**63) - 1],
        {1: "a"},
        Text("a"),
        Items(),
        (1, 2),
        {"a": {1, 2}},
        b"x",
    ):
        assert PAGES.plain_json(value) is None, value
    deep: Any = "x"
    for _ in range(129):
        deep = [deep]
    assert PAGES.plain_json(deep) is None
    assert encoding._kind(deep) != encoding._PLAIN
    assert PAGES.plain_json(deep[0]) == encoding._js_json(deep[0], False)
    assert encoding._kind(deep[0]) == encoding._PLAIN
    assert PAGES.plain_json({"a": [True, None, "é", 2**63 - 1]}) == (
        '{"a":[true,null,"é",9223372036854775807]}'
    )
