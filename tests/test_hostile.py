"""Hostile input: no traceback, no corrupted target, no event lost.

Hypothesis builds hostile logs from the real small fixture: rows inserted into a copy of
``eventlog@6.db`` (LiveStore's own STRICT DDL), into a hand-made non-STRICT eventlog table
(where names and argsJson can be numbers, BLOBs or NULL), or lines mixed into its NDJSON.
Each hostile event ends applied, parked with a reason, or the run stops with a one-line
library error (`EventsError` / `ProjectorError`; exit 1 and ``Error: ...`` from the CLI).
Under ``park`` the accounting identity holds and the target stays sound; under ``fail`` the
run names the event and the target holds only the batches before it.

Sizing: the three mixed-log properties alone run at least 45 x 12 + 25 x 10 + 30 x 10 = 1,090
hostile events (their minimum sizes); with the CI profile the file runs about 1,500 in
under a minute.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import sources, sqlite_source
from events.encoding import js_json, utf8_text
from events.envelope import format_event_id
from events.errors import EventsError, SourceError
from events.sources import connect_readonly
from events.validation import Catalog, parse_args
from projector.cli import cli
from projector.digest import digest
from projector.errors import CheckpointMismatch, ProjectorError, ReplayError
from projector.handlers import entity_list
from projector.replay import ReplayOptions, ReplayResult, replay, replay_parked
from projector.target import PARKED_TABLE, STATE_TABLE
from projector.verify import verify
from tests.conftest import FIXTURES, SMALL, catalog_tables, committed_tables

TABLES, HANDLERS = catalog_tables("ai-desk")
#: ai-desk's tables with their primary keys, in the catalog's order.
APP_TABLES = {name: table.key for name, table in TABLES.items()}

HOSTILE = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)

EVENTLOG = SMALL / "eventlog@6.db"
EVENTLOG_BYTES = EVENTLOG.read_bytes()
NDJSON_LINES = (FIXTURES / "small" / "events.ndjson").read_text("utf-8").splitlines()
EXPORT = json.loads((FIXTURES / "small" / "export.json").read_text("utf-8"))
KNOWN = sorted(Catalog.bundled("ai-desk").schemas)
T = "2024-01-16T08:56:04.715Z"
REJECT_KINDS = {"unknown", "invalid", "unparseable"}
LIBRARY_ERRORS = (EventsError, ProjectorError)


def _real() -> tuple[list[tuple[Any, ...]], list[str]]:
    with closing(connect_readonly(EVENTLOG)) as conn:
        rows = conn.execute("SELECT * FROM eventlog ORDER BY seqNumGlobal, seqNumClient").fetchall()
        ddl = [s for (s,) in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
    return rows, ddl


REAL_ROWS, REAL_DDL = _real()
REAL_GLOBALS = sorted({row[0] for row in REAL_ROWS})
NEXT_GLOBAL = REAL_GLOBALS[-1] + 1


def _loose_ddl() -> list[str]:
    """The real DDL without STRICT and without NOT NULL on name and argsJson."""
    table = REAL_DDL[0]
    loose = (
        table.replace('"name" text   not null', '"name" text')
        .replace('"argsJson" text   not null', '"argsJson" text')
        .removesuffix(" strict")
    )
    assert loose.count("not null") == table.count("not null") - 2 and "strict" not in loose
    return [loose, *(s.removesuffix(" strict") for s in REAL_DDL[1:])]


LOOSE_DDL = _loose_ddl()


# ---------------------------------------------------------------- what a target must hold


def read_only(path: Path) -> closing[sqlite3.Connection]:
    return closing(connect_readonly(path))


def app_rows(path: Path) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Every app table's rows as dicts, keyed by primary key."""
    out: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    with read_only(path) as conn:
        for table, key in APP_TABLES.items():
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor]
            out[table] = {tuple(r[k] for k in key): r for r in rows}
    return out


@functools.cache
def baseline() -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """The real fixture's rows, replayed alone."""
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "baseline.db"
        result = replay(SMALL, target, ReplayOptions(on_invalid="park"))
        assert (result.read, result.applied) == (200, 200)
        return app_rows(target)


def assert_sound(target: Path) -> None:
    with read_only(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message
    assert "Traceback" not in message
    assert len(message) < 2000, message[:200]


def run_guarded(source: Path, target: Path, **options: Any) -> ReplayResult | Exception:
    """Replay; a library error is an acceptable outcome when it is one clear line."""
    try:
        return replay(source, target, ReplayOptions(**options))
    except LIBRARY_ERRORS as exc:
        assert_one_line(str(exc))
        if target.exists():
            assert_sound(target)
        return exc


Parked = dict[str, tuple[str, str, Any, tuple[int, int]]]


def parked_events(target: Path) -> Parked:
    """The target's parked events by id: kind, reason, entity and (global, client)."""
    with read_only(target) as conn:
        rows = conn.execute(
            f"SELECT eventId, kind, reason, entity, seqNumGlobal, seqNumClient FROM {PARKED_TABLE}"
        ).fetchall()
    parked = {row[0]: (row[1], row[2], row[3], (row[4], row[5])) for row in rows}
    assert len(parked) == len(rows)
    return parked


def assert_accounted(target: Path, result: ReplayResult, total: int) -> Parked:
    """The park run's identity, the target's soundness; returns the parked events by id."""
    assert result.state == "complete"
    assert result.read == total
    assert result.read == result.applied + result.parked_total
    assert_sound(target)
    with read_only(target) as conn:
        parked_rows = conn.execute(f"SELECT eventId, kind, reason FROM {PARKED_TABLE}").fetchall()
        state = conn.execute(
            f"SELECT position, applied, parked, state FROM {STATE_TABLE} WHERE id = 1"
        ).fetchone()
    assert len(parked_rows) == result.parked_total
    assert state == (total, result.applied, result.parked_total, "complete")
    for _, kind, reason in parked_rows:
        assert kind in REJECT_KINDS | {"integrity", "held"}
        assert_one_line(reason)
    return parked_events(target)


def assert_real_rows_intact(target: Path) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """The real events' effects are all there, unchanged by the hostile ones."""
    rows = app_rows(target)
    for table, expected in baseline().items():
        for key, row in expected.items():
            assert rows[table].get(key) == row, (table, key)
    return rows


# ---------------------------------------------------------------- hostile events


Check = Callable[[dict[str, Any] | None], bool]


@dataclass
class Hostile:
    """One generated event, what must become of it, and the row it must leave when applied."""

    name: Any
    args: Any  # the stored argsJson: text, or any other value where the source allows it
    expect: str | None  # apply | reject | integrity | held | None (either)
    effect: tuple[str, tuple[Any, ...], Check] | None = None
    raw_ok: bool = True  # may be embedded as parsed JSON in an NDJSON line
    g: int = 0
    c: int = 0
    r: int = 0
    client_id: Any = "hostile"
    session_id: Any = "static"

    @property
    def event_id(self) -> str:
        return format_event_id(self.g, self.c, self.r)

    @property
    def row(self) -> tuple[Any, ...]:
        parent = (self.g, self.c - 1) if self.c else (self.g - 1, 0)
        return (
            self.g, self.c, self.r, *parent, 0, self.name, self.args,
            self.client_id, self.session_id, 0, '{"_tag":"None"}',
        )  # fmt: skip


def jtext(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def obj(**fields: str) -> str:
    """A JSON object from raw JSON texts, so hostile tokens go in verbatim."""
    return "{" + ",".join(f"{jtext(k)}:{v}" for k, v in fields.items()) + "}"


def is_json(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def config(key: str, value_text: str, expect: str | None, value: Any = None) -> Hostile:
    effect = None
    if expect == "apply":
        stored = jtext(value)
        effect = ("config", (key,), lambda row: row is not None and row["value"] == stored)
    return Hostile("v1.ConfigSet", obj(key=jtext(key), value=value_text), expect, effect)


def config_text(key: str, value_text: str, stored: str | None = None) -> Hostile:
    """A config value applied and stored as the JSON text STORED (default: as given)."""
    want = value_text if stored is None else stored
    h = Hostile("v1.ConfigSet", obj(key=jtext(key), value=value_text), "apply")
    h.effect = ("config", (key,), lambda row: row is not None and row["value"] == want)
    return h


def persona(
    pid: str, expect: str = "apply", expect_fields: dict[str, Any] | None = None, **fields: str
) -> Hostile:
    args = {"id": jtext(pid), "name": jtext("n"), "personality": jtext("p"), "createdAt": jtext(T)}
    args.update(fields)
    effect = None
    if expect == "apply":
        wanted = expect_fields or {k: json.loads(v) for k, v in fields.items()}
        effect = (
            "personas",
            (pid,),
            lambda row: row is not None and all(row[k] == v for k, v in wanted.items()),
        )
    return Hostile("v1.PersonaCreated", obj(**args), expect, effect)


def memory(mid: str, pid: str, expect: str | None, **fields: str) -> Hostile:
    args = {
        "id": jtext(mid), "personaId": jtext(pid), "content": jtext("c"), "kind": jtext("fact"),
        "importance": "0.5", "tags": "[]", "createdAt": jtext(T),
    }  # fmt: skip
    args.update(fields)
    return Hostile("v1.MemoryAdded", obj(**args), expect)


def doc_set(name: str, did: str, value_text: str, expect: str | None, value: Any = None) -> Hostile:
    """uiStateSet / userPreferencesSet of a fresh document: the defaults merged with VALUE."""
    effect = None
    if expect == "apply":
        table, default = (
            ("uiState", TABLES["uiState"].client_document)
            if name == "uiStateSet"
            else ("userPreferences", TABLES["userPreferences"].client_document)
        )
        merged = {**default, **value}
        # Read back as JavaScript reads it: LiveStore's numbers are doubles.
        effect = (
            table,
            (did,),
            lambda row: row is not None and parse_args(row["value"], js_numbers=True) == merged,
        )
    return Hostile(name, obj(id=jtext(did), value=value_text), expect, effect)


SQLISH = [
    "'; DROP TABLE personas; --",
    'Robert"); DROP TABLE memories;--',
    "x' OR '1'='1",
    "1; DELETE FROM config",
    "$.a[0]",
    "$",
    "\"; ATTACH DATABASE '/tmp/x' AS x; --",
    "%s%n%x",
    "${jndi:ldap://x}",
    "\u202edesrever",
    "名前 🙂",
    "\\",
    "",
]
GARBAGE = [
    "", " ", "{", "}", "[1,2", '"unterminated', '{"key":', '{"key":"a","value":1',
    "{'key': 'a', 'value': 1}", '{"key":"a","value":1,}', '{"key":"a" "value":1}', "undefined",
    "\ufeff{}", "{}{}", "{\x00}", '{"key":"a\x00b","value":1}', "nul\x00byte", "0x10",
    '{"key":"a","value":01}', '{"key":"a","value":.5}', '{"key":"a","value":+1}',
    '{"key":"a","value":True}', '{"key":"a","value":"\\x41"}', '{"key":"a","value":"\\u12"}',
    '{"key":"a","value":nan}', '{"key":"a","value":inf}', "null", "[]", "1", '"text"', "{}",
]  # fmt: skip
LONE = ["\\ud800", "\\udfff", "\\udbff", "x\\ud83d", "\\ude00y", "\\ud83d\\ud83d"]
NONFINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "[1e400]", '{"a":NaN}']
BIG = [2**63, 2**64, -(2**63) - 1, 10**40, -(10**100), 2**63 - 1]
DATES = ["+275760-09-13T00:00:00.000Z", "-271821-04-20T00:00:00.000Z", "0000-01-01T00:00:00.000Z"]


def not_json(draw: Any, tag: str, mode: str) -> list[Hostile]:
    name = draw(st.sampled_from(KNOWN))
    form = draw(st.integers(0, 2))
    if form == 0:
        text = draw(st.sampled_from(GARBAGE))
    elif form == 1:
        real = draw(st.sampled_from(REAL_ROWS))[7]
        text = real[: draw(st.integers(0, len(real) - 1))]
    else:
        text = draw(st.text(max_size=40))
    return [Hostile(name, text, "reject")]


def deep(draw: Any, tag: str, mode: str) -> list[Hostile]:
    form = draw(st.integers(0, 3))
    depth = draw(st.sampled_from([1_000, 10_000, 20_000]) | st.integers(1_000, 12_000))
    if form == 0:
        return [config(tag, "[" * depth + "]" * depth, "reject")]
    if form == 1:
        name = draw(st.sampled_from(KNOWN))
        return [Hostile(name, '{"a":' * depth + "1" + "}" * depth, "reject", raw_ok=False)]
    if form == 2:
        value = obj(searchQuery="[" * depth + '""' + "]" * depth)
        return [doc_set("uiStateSet", tag, value, "reject")]
    # Moderately deep: whether Python's stack allows it is an implementation detail.
    depth = draw(st.integers(2, 990))
    inner = draw(st.sampled_from(["1", '"x"', "{}", '"\\ud800"', "NaN", "1e999"]))
    h = config(tag, "[" * depth + inner + "]" * depth, None)
    h.raw_ok = depth < 100
    return [h]


def huge(draw: Any, tag: str, mode: str) -> list[Hostile]:
    size = draw(st.sampled_from([1 << 16, 1 << 20, 3 << 20]))
    unit = draw(st.sampled_from(["x", "é", "🙂", "ab\n", "\\", '"', "\x00"]))
    text = unit * (size // len(unit.encode()) + 1)
    form = draw(st.integers(0, 3))
    if form == 0:
        return [config(tag, jtext(text), "apply", text)]
    if form == 1:
        return [config(tag + text, jtext(1), "apply", 1)]
    if form == 2:
        return [persona(tag, personality=jtext(text))]
    return [Hostile("v9.Huge" + text, "{}", "reject")]


def nul(draw: Any, tag: str, mode: str) -> list[Hostile]:
    form = draw(st.integers(0, 3))
    if form == 0:
        return [config(tag + "\x00k", jtext("a\x00b"), "apply", "a\x00b")]
    if form == 1:
        return [Hostile("v1.ConfigSet", '{"key":"' + tag + '\x00","value":1}', "reject")]
    if form == 2:
        return [Hostile("v1.ConfigSet\x00", obj(key=jtext(tag), value="1"), "reject")]
    return [persona(tag, name=jtext("\x00"), personality=jtext("a\x00\x00b"))]


def surrogate(draw: Any, tag: str, mode: str) -> list[Hostile]:
    """Lone surrogates are applied as LiveStore stores them: U+FFFD in text and keys, the
    escape itself in JSON text (what JSON.stringify writes back)."""
    lone = draw(st.sampled_from(LONE))
    form = draw(st.integers(0, 6))
    if form == 0:
        return [config_text(tag, '"' + lone + '"')]
    if form == 1:
        key = utf8_text(json.loads('"' + tag + lone + '"'))
        stored = Hostile("v1.ConfigSet", '{"key":"' + tag + lone + '","value":1}', "apply")
        stored.effect = ("config", (key,), lambda row: row is not None and row["value"] == "1")
        return [stored]
    if form == 2:
        return [config_text(tag, '{"a":["ok","' + lone + '"]}')]
    if form == 3:
        return [config_text(tag, '{"' + lone + '":1}')]
    if form == 4:
        name = utf8_text(json.loads('"' + lone + '"'))
        return [persona(tag, name='"' + lone + '"', expect_fields={"name": name})]
    if form == 5:
        return [doc_set("uiStateSet", tag, '{"scrollTop":"' + lone + '"}', "reject")]
    return [config(tag, '"\\ud83d\\ude00"', "apply", "\U0001f600")]


def nonfinite(draw: Any, tag: str, mode: str) -> list[Hostile]:
    """NaN and Infinity are not JSON; 1e999 is, and JSON.parse reads it as Infinity, which
    JSON.stringify writes as null (so LiveStore stores null)."""
    token = draw(st.sampled_from(NONFINITE))
    form = draw(st.integers(0, 3))
    if form == 0:
        if "e" in token:
            # Embedded as parsed JSON in NDJSON too: its reader keeps 1e999 as written.
            return [config_text(tag, token, re.sub(r"-?1e\d+", "null", token))]
        return [config(tag, token, "reject")]
    if form == 1:
        number = draw(st.sampled_from(["NaN", "Infinity", "1e999", "-1e999"]))
        if "e" in number:
            return [doc_set("uiStateSet", tag, obj(scrollTop=number), "apply", {"scrollTop": None})]
        return [doc_set("uiStateSet", tag, obj(scrollTop=number), "reject")]
    if form == 2:
        return [persona(tag), memory(tag + "m", tag, "reject", importance="NaN")]
    # An infinite importance is a REAL SQLite can hold; either outcome is fine.
    return [persona(tag), memory(tag + "m", tag, None, importance="1e999")]


def bigint(draw: Any, tag: str, mode: str) -> list[Hostile]:
    """Integers beyond 2^53 are read as JSON.parse reads them: the nearest double."""
    n = draw(st.sampled_from(BIG))
    double = float(n)
    form = draw(st.integers(0, 4))
    if form == 0:
        return [config_text(tag, str(n), js_json(double))]
    if form == 1:
        return [config_text(tag, "9" * 5000, "null")]  # Infinity
    if form == 2:
        return [doc_set("uiStateSet", tag, obj(scrollTop=str(n)), "apply", {"scrollTop": double})]
    if form == 3:
        value = {"fontSize": double}
        return [doc_set("userPreferencesSet", tag, obj(fontSize=str(n)), "apply", value)]
    big = draw(st.sampled_from([2**63, 2**64, -(2**70)]))
    return [persona(tag), memory(tag + "m", tag, "apply", importance=str(big))]


def sqlish(draw: Any, tag: str, mode: str) -> list[Hostile]:
    s = draw(st.sampled_from(SQLISH))
    form = draw(st.integers(0, 5))
    if form == 0:
        return [Hostile(tag + s, "{}", "reject")]
    if form == 1:
        return [config(tag + s, jtext(s), "apply", s)]
    if form == 2:
        return [persona(tag + s, name=jtext(s), personality=jtext(s))]
    if form == 3:
        # A key the document does not declare is dropped, as LiveStore does: defaults only.
        return [doc_set("userPreferencesSet", tag, obj(**{s or "x": "1"}), "apply", {})]
    if form == 4:
        value = {"searchQuery": s}
        return [doc_set("uiStateSet", tag + s, jtext(value), "apply", value)]
    tags = [s, s, "x"]
    m = memory(tag + "m", tag, "apply", content=jtext(s), tags=jtext(tags))
    stored = jtext(tags)
    m.effect = ("memories", (tag + "m",), lambda row: row is not None and row["tags"] == stored)
    return [persona(tag), m]


def integrity(draw: Any, tag: str, mode: str) -> list[Hostile]:
    form = draw(st.integers(0, 3))
    if form == 0:
        update = obj(id=jtext(tag), content=jtext("x"), updatedAt=jtext(T))
        return [
            memory(tag, "missing-" + tag, "integrity"),
            Hostile("v1.MemoryUpdated", update, "held"),
        ]
    if form == 1:
        draft = obj(personaId=jtext("missing-" + tag), text=jtext("t"), savedAt=jtext(T))
        return [Hostile("v1.DraftSaved", draft, "integrity")]
    if form == 2:
        rename = obj(id=jtext(tag), name=jtext("renamed"))
        return [
            persona(tag),
            persona(tag, "integrity"),
            Hostile("v1.PersonaUpdated", rename, "held"),
        ]
    gone = Hostile("v1.MemoryDeleted", obj(id=jtext(tag + "m")), "apply")
    gone.effect = ("memories", (tag + "m",), lambda row: row is None)
    return [persona(tag), memory(tag + "m", tag, "apply"), gone]


def unknown(draw: Any, tag: str, mode: str) -> list[Hostile]:
    name = draw(
        st.sampled_from(["v1.Config\nSet", "v1.ConfigSet ", "V1.CONFIGSET", "v1.ConfigSet\u200b"])
        | st.text(max_size=30).filter(lambda n: n not in KNOWN)
    )
    return [Hostile(name, obj(key=jtext(tag), value="1"), "reject")]


def plugin(draw: Any, tag: str, mode: str) -> list[Hostile]:
    date = draw(st.sampled_from(DATES))
    settings_text = draw(st.sampled_from(["{}", '{"k":[1,{"x":null}],"\'; --":"\\u0000"}']))
    manifest = obj(
        name=jtext(tag), version='"1"', description=jtext(draw(st.sampled_from(SQLISH))),
        author='{"name":"a"}', entry='"x.js"', permissions='["fs"]', minAppVersion='"0"',
        settings=settings_text,
    )  # fmt: skip
    args = obj(
        id=jtext(tag), name=jtext(tag), version='"0"', manifest=manifest, installedAt=jtext(date)
    )
    installed = Hostile("v1.PluginInstalled", args, "apply")
    enabled = Hostile("v1.PluginEnabled", obj(id=jtext(tag)), "apply")
    enabled.effect = ("plugins", (tag,), lambda row: row is not None and row["enabled"] == 1)
    bad = obj(id=jtext(tag + "x"), name='"n"', version='"0"', manifest="{}", installedAt=jtext(T))
    return [installed, enabled, Hostile("v1.PluginInstalled", bad, "reject")]


def wrong_types(draw: Any, tag: str, mode: str) -> list[Hostile]:
    """Values LiveStore's STRICT table could never hold (a hand-made table or NDJSON can)."""
    if mode == "strict":
        return [Hostile("", obj(key=jtext(tag), value="1"), "reject")]
    if mode == "loose":
        form = draw(st.integers(0, 2))
        if form == 0:
            name = draw(st.sampled_from([42, -1, 3.5, b"v1.ConfigSet", b"\xff\xfe\x00", None]))
            return [Hostile(name, obj(key=jtext(tag), value="1"), "reject")]
        if form == 1:
            args = draw(st.sampled_from([None, b'{"key":"k","value":1}', b"\x00\xff", 42, 2.5]))
            return [Hostile("v1.ConfigSet", args, "reject")]
        h = Hostile(tag, "{}", "reject")
        h.client_id = draw(st.sampled_from([b"\x00", 7, 2.5]))
        h.session_id = draw(st.sampled_from([b"\xff", -3]))
        return [h]
    form = draw(st.integers(0, 1))
    if form == 0:
        args = draw(st.sampled_from([None, 42, 2.5, True, [1, 2], {"key": tag, "value": 1}, 2**70]))
        return [Hostile("v1.ConfigSet", args, "reject")]
    h = Hostile(tag, "{}", "reject")
    odd = st.sampled_from([{"a": 1}, [1], 2**70, None, True, 1.5, "\ud800"])
    h.client_id, h.session_id = draw(odd), draw(odd)
    return [h]


def names_no_row(h: Hostile) -> bool:
    """Args that do not name their row: the library holds back the handler's whole table."""
    handler = HANDLERS.for_name(h.name) if isinstance(h.name, str) else None
    if handler is None:
        return False
    try:
        args = json.loads(h.args) if isinstance(h.args, str) else None
    except (ValueError, RecursionError):
        args = None
    return not handler.entities(args)


SCENARIOS = [
    not_json, deep, huge, nul, surrogate, nonfinite, bigint, sqlish, integrity, unknown, plugin,
    wrong_types,
]  # fmt: skip
CERTAIN = [s for s in SCENARIOS if s not in (deep, nonfinite)]


@st.composite
def hostile_events(
    draw: Any,
    mode: str,
    min_size: int,
    max_size: int,
    scenarios: list[Any] = SCENARIOS,
    prefix: str = "h",
) -> list[Hostile]:
    """Hostile scenarios placed, in order, among the real events (and after the last)."""
    events: list[Hostile] = []
    while len(events) < min_size or (len(events) < max_size and draw(st.booleans())):
        builder = draw(st.sampled_from(scenarios))
        events.extend(builder(draw, f"{prefix}{len(events)}-", mode))
    # Half the logs put the events that hold back a whole table last, so that every real
    # event must apply; the other half mix them in anywhere.
    late = draw(st.booleans())
    if late:
        events.sort(key=names_no_row)
    anchors = draw(
        st.lists(
            st.sampled_from(REAL_GLOBALS) | st.none(), min_size=len(events), max_size=len(events)
        )
    )
    anchors.sort(key=lambda a: (a is None, a or 0))
    if late:
        for index, h in enumerate(events):
            if names_no_row(h):
                anchors[index] = None
    for index, (h, anchor) in enumerate(zip(events, anchors, strict=True)):
        if anchor is None:
            h.g, h.c = NEXT_GLOBAL + index, 0
        else:
            h.g, h.c = anchor, 1000 + index
        h.r = draw(st.sampled_from([0, 0, 1, 2]))
    return events


# ---------------------------------------------------------------- building hostile sources


def strict_log(directory: Path, events: list[Hostile]) -> Path:
    """A copy of the real eventlog@6.db with the hostile rows inserted."""
    path = directory / "ai-desk" / "eventlog@6.db"
    path.parent.mkdir(parents=True)
    shutil.copy(EVENTLOG, path)
    path.chmod(0o644)
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            f"INSERT INTO eventlog VALUES ({','.join('?' * 12)})", [h.row for h in events]
        )
    conn.close()
    return path


def loose_log(directory: Path, events: list[Hostile], shuffle: Any) -> Path:
    """A hand-made non-STRICT eventlog: real and hostile rows, in a random physical order,
    in a store folder of its own (no target may be written there)."""
    (directory / "store").mkdir(exist_ok=True)
    path = directory / "store" / "eventlog@6.db"
    rows = [*REAL_ROWS, *(h.row for h in events)]
    shuffle(rows)
    conn = sqlite3.connect(path)
    with conn:
        for statement in LOOSE_DDL:
            conn.execute(statement)
        conn.execute("INSERT INTO __livestore_sync_status VALUES (0, NULL)")
        conn.executemany(f"INSERT INTO eventlog VALUES ({','.join('?' * 12)})", rows)
    conn.close()
    return path


def ndjson_line(h: Hostile, raw: bool) -> str:
    line: dict[str, Any] = {
        "name": h.name,
        "seqNum": {"global": h.g, "client": h.c, "rebaseGeneration": h.r},
        "parentSeqNum": {"global": h.g - 1, "client": 0, "rebaseGeneration": 0},
        "clientId": h.client_id,
        "sessionId": h.session_id,
    }
    if raw:
        return json.dumps(line)[:-1] + ',"args":' + h.args + "}"
    line["argsJson"] = h.args
    return json.dumps(line)


def ndjson_lines(events: list[Hostile], raw: list[bool]) -> list[str]:
    keyed = []
    for text in NDJSON_LINES:
        seq = json.loads(text)["seqNum"]
        keyed.append(((seq["global"], seq["client"]), text))
    for h, embed in zip(events, raw, strict=True):
        keyed.append(((h.g, h.c), ndjson_line(h, embed and h.raw_ok and is_json(h.args))))
    keyed.sort(key=lambda kv: kv[0])
    return [text for _, text in keyed]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
    return path


def merged_ids(events: list[Hostile]) -> list[tuple[tuple[int, int], str, Hostile | None]]:
    """Every event of a hostile log in replay order: ((global, client), id, hostile or None)."""
    real = [((r[0], r[1]), format_event_id(r[0], r[1], r[2]), None) for r in REAL_ROWS]
    hostile = [((h.g, h.c), h.event_id, h) for h in events]
    return sorted([*real, *hostile], key=lambda x: x[0])


def check_hostile_outcomes(target: Path, events: list[Hostile], parked: Parked) -> None:
    """Each event's fate is the expected one; real events are applied unless held back.

    Args too broken to name their row hold back the handler's whole table (entity
    ``table:*``), so later events on that table are parked as held, real ones included,
    and so may be events that depend on a held row.
    """
    order = merged_ids(events)
    position = {event_id: index for index, (_, event_id, _) in enumerate(order, 1)}
    holds = [
        position[i]
        for i, p in parked.items()
        if isinstance(p[2], str) and any(e.endswith(":*") for e in entity_list(p[2]))
    ]
    first_hold = min(holds, default=len(order) + 1)
    last_real = max(i for i, (_, _, h) in enumerate(order, 1) if h is None)
    for _, event_id, h in order:
        if h is None and event_id in parked:
            # Held back, or (a memory of a held persona) an integrity break that follows.
            assert parked[event_id][0] in ("held", "integrity"), event_id
            assert position[event_id] > first_hold, event_id
    if first_hold > last_real:
        rows = assert_real_rows_intact(target)
    else:
        rows = app_rows(target)
    for h in events:
        outcome = parked.get(h.event_id)
        where = (h.event_id, h.expect, str(h.name)[:40], str(h.args)[:80], outcome)
        held = (
            outcome is not None
            and outcome[0] in ("held", "integrity")
            and position[h.event_id] > first_hold
        )
        if h.expect == "apply":
            assert outcome is None or held, where
            if h.effect and outcome is None:
                table, key, check = h.effect
                assert check(rows[table].get(key)), where
        elif h.expect == "reject":
            assert outcome is not None and (outcome[0] in REJECT_KINDS or held), where
        elif h.expect == "integrity":
            assert outcome is not None and (outcome[0] == "integrity" or held), where
        elif h.expect == "held":
            assert outcome is not None and outcome[0] == "held", where


def assert_verified_and_parked_replayable(target: Path) -> None:
    """`verify` passes; `replay-parked` re-reads every parked event without losing one."""
    report = verify(target)
    assert report.ok, [c.as_dict() for c in report.checks if not c.ok]
    before = len(parked_events(target))
    again = replay_parked(target)
    assert again.read == before == again.reapplied + again.parked_total
    assert len(parked_events(target)) == again.parked_total
    report = verify(target)
    assert report.ok, [c.as_dict() for c in report.checks if not c.ok]


def assert_same_as_applied_only(source: Path, target: Path, parked: Parked) -> None:
    """Parked events left nothing behind: the applied events alone give the same tables."""
    skip = {p[3] for p in parked.values()}
    reference_source = source.with_name("applied-only" + source.suffix)
    if source.suffix == ".ndjson":
        kept = []
        for line in source.read_bytes().splitlines():
            seq = json.loads(line)["seqNum"]
            if (seq["global"], seq["client"]) not in skip:
                kept.append(line)
        reference_source.write_bytes(b"\n".join(kept) + b"\n")
    else:
        shutil.copy(source, reference_source)
        with sqlite3.connect(reference_source) as conn:
            conn.executemany(
                "DELETE FROM eventlog WHERE seqNumGlobal = ? AND seqNumClient = ?", sorted(skip)
            )
        conn.close()
    reference = target.with_name("applied-only-target.db")
    result = replay(reference_source, reference, ReplayOptions(on_invalid="park"))
    assert result.parked_total == 0, result.examples
    ours, theirs = digest(target)["tables"], digest(reference)["tables"]
    assert {t: ours[t] for t in APP_TABLES} == {t: theirs[t] for t in APP_TABLES}


# ---------------------------------------------------------------- mixed hostile logs, park


@settings(HOSTILE, max_examples=45)
@given(
    events=hostile_events("strict", 12, 40),
    batch_size=st.sampled_from([1, 7, 64, 5000]),
)
def test_hostile_rows_in_a_real_eventlog_are_applied_or_parked(
    events: list[Hostile], batch_size: int
):
    """Hostile rows among real ones in LiveStore's own table: each applied or parked."""
    with tempfile.TemporaryDirectory() as d:
        source = strict_log(Path(d), events)
        target = Path(d) / "target.db"
        result = replay(source, target, ReplayOptions(on_invalid="park", batch_size=batch_size))
        parked = assert_accounted(target, result, len(REAL_ROWS) + len(events))
        check_hostile_outcomes(target, events, parked)
        assert_same_as_applied_only(source, target, parked)
        assert_verified_and_parked_replayable(target)


@settings(HOSTILE, max_examples=25)
@given(
    events=hostile_events("loose", 10, 30, [*SCENARIOS, wrong_types, wrong_types]),
    random=st.randoms(use_true_random=False),
)
def test_hostile_values_in_a_non_strict_eventlog_are_parked(events: list[Hostile], random: Any):
    """Names and argsJson that are numbers, BLOBs or NULL, rows in random physical order."""
    with tempfile.TemporaryDirectory() as d:
        source = loose_log(Path(d), events, random.shuffle)
        target = Path(d) / "target.db"
        result = replay(source, target, ReplayOptions(on_invalid="park"))
        parked = assert_accounted(target, result, len(REAL_ROWS) + len(events))
        check_hostile_outcomes(target, events, parked)
        assert_same_as_applied_only(source, target, parked)
        assert_verified_and_parked_replayable(target)


@settings(HOSTILE, max_examples=30)
@given(data=st.data(), events=hostile_events("ndjson", 10, 30))
def test_hostile_ndjson_events_are_applied_or_parked(data: Any, events: list[Hostile]):
    """The same hostility in NDJSON, args given as text (argsJson) or as parsed JSON (args)."""
    raw = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    with tempfile.TemporaryDirectory() as d:
        source = write_lines(Path(d) / "events.ndjson", ndjson_lines(events, raw))
        target = Path(d) / "target.db"
        result = replay(source, target, ReplayOptions(on_invalid="park", batch_size=50))
        parked = assert_accounted(target, result, len(REAL_ROWS) + len(events))
        check_hostile_outcomes(target, events, parked)
        assert_same_as_applied_only(source, target, parked)
        assert_verified_and_parked_replayable(target)


# ---------------------------------------------------------------- fail policy


@settings(HOSTILE, max_examples=20)
@given(events=hostile_events("strict", 1, 8, CERTAIN), batch_size=st.integers(1, 80))
def test_fail_names_the_event_and_keeps_only_the_batches_before_it(
    events: list[Hostile], batch_size: int
):
    """Under `fail` the first rejected event stops the run; its batch is not in the target."""
    order = merged_ids(events)
    failing = next(
        (i for i, (_, _, h) in enumerate(order, 1) if h is not None and h.expect == "reject"), None
    )
    with tempfile.TemporaryDirectory() as d:
        source = strict_log(Path(d) / "src", events)
        target = Path(d) / "target.db"
        options = ReplayOptions(on_invalid="fail", batch_size=batch_size)
        if failing is None:
            result = replay(source, target, options)
            assert result.read == len(order) and result.accounted
            return
        with pytest.raises(ReplayError) as info:
            replay(source, target, options)
        message = str(info.value)
        assert_one_line(message)
        assert re.search(rf"(^|\s){re.escape(order[failing - 1][1])} \(", message), message
        kept = (failing - 1) // batch_size * batch_size
        if kept == 0:  # nothing committed: the run is undone, the target never created
            assert not target.exists()
            return
        assert_sound(target)
        with read_only(target) as conn:
            assert conn.execute(f"SELECT position FROM {STATE_TABLE}").fetchone() == (kept,)
        # The reference: the same log cut after the last committed batch, replayed whole.
        reference_source = strict_log(Path(d) / "ref", [h for (_, _, h) in order[:kept] if h])
        with sqlite3.connect(reference_source) as conn:
            if kept < len(order):
                g, c = order[kept][0]
                conn.execute(
                    "DELETE FROM eventlog WHERE (seqNumGlobal, seqNumClient) >= (?, ?)", (g, c)
                )
        conn.close()
        reference = Path(d) / "reference.db"
        assert replay(reference_source, reference, options).read == kept
        ours, theirs = committed_tables(target, digest(reference)["tables"])
        assert ours == theirs


# ---------------------------------------------------------------- broken sources


@settings(HOSTILE, max_examples=60)
@given(offset=st.integers(0, len(EVENTLOG_BYTES) - 1))
def test_truncated_eventlog_fails_cleanly_or_loses_nothing(offset: int):
    """A truncated copy of the real log is refused with one line, or replays all 200 events:
    each applied as in the whole log, or (a record SQLite reads back from a missing page,
    e.g. a name NULL) parked as what it reads as."""
    with tempfile.TemporaryDirectory() as d:
        source = Path(d) / "ai-desk" / "eventlog@6.db"
        source.parent.mkdir()
        source.write_bytes(EVENTLOG_BYTES[:offset])
        target = Path(d) / "target.db"
        outcome = run_guarded(source, target, on_invalid="park")
        if isinstance(outcome, ReplayResult):
            assert_accounted(target, outcome, 200)
            if outcome.parked_total == 0:
                assert app_rows(target) == baseline()
            else:
                assert set(outcome.parked) <= {*REJECT_KINDS, "held", "integrity"}


page_header = st.builds(lambda page, at: page * 8192 + at, st.integers(0, 15), st.integers(0, 11))


@settings(HOSTILE, max_examples=60)
@given(
    flips=st.lists(
        st.tuples(
            st.integers(0, 99) | page_header | st.integers(0, len(EVENTLOG_BYTES) - 1),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_eventlog_with_flipped_bytes_never_crashes(flips: list[tuple[int, int]]):
    """Random bytes overwritten in the real log: a one-line error, or a sound, accounted run."""
    data = bytearray(EVENTLOG_BYTES)
    for at, value in flips:
        data[at] = value
    with tempfile.TemporaryDirectory() as d:
        source = Path(d) / "ai-desk" / "eventlog@6.db"
        source.parent.mkdir()
        source.write_bytes(bytes(data))
        target = Path(d) / "target.db"
        outcome = run_guarded(source, target, on_invalid="park")
        if isinstance(outcome, ReplayResult):
            assert outcome.state == "complete" and outcome.accounted
            assert_sound(target)
            with read_only(target) as conn:
                (parked,) = conn.execute(f"SELECT COUNT(*) FROM {PARKED_TABLE}").fetchone()
            assert parked == outcome.parked_total


PREFIXES = [
    b"", sources.SQLITE_MAGIC, b"SQLite", b"{", b"\xef\xbb\xbf{", b"[", b"\n\n",
    b'{"name":"v1.ConfigSet","seqNum":1,"args":{"key":"k","value":1}}\n',
    b'{"version":1,"storeId":"s","eventCount":3,"events":[',
]  # fmt: skip


@settings(HOSTILE, max_examples=60)
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=3000))
def test_random_bytes_are_refused_with_one_line(prefix: bytes, body: bytes):
    """Random bytes (behind a plausible header or not) never crash a replay."""
    with tempfile.TemporaryDirectory() as d:
        source = Path(d) / "source"
        source.write_bytes(prefix + body)
        target = Path(d) / "target.db"
        outcome = run_guarded(source, target, on_invalid="park")
        if isinstance(outcome, ReplayResult):
            assert outcome.accounted
            assert_sound(target)


def test_empty_file_and_empty_directory_are_refused(tmp_path: Path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "store").mkdir()
    for source in (tmp_path / "empty", tmp_path / "store"):
        with pytest.raises(SourceError) as info:
            replay(source, tmp_path / "target.db")
        assert_one_line(str(info.value))
    assert not (tmp_path / "target.db").exists()


@settings(HOSTILE, max_examples=15)
@given(row=st.sampled_from(REAL_ROWS), generation=st.integers(1, 5))
def test_duplicate_position_in_sqlite_is_refused_before_writing(
    row: tuple[Any, ...], generation: int
):
    """Two rows at one (global, client) position: LiveStore could not tell them apart."""
    with tempfile.TemporaryDirectory() as d:
        dup = Hostile("v1.ConfigSet", obj(key='"k"', value="1"), None, g=row[0], c=row[1])
        dup.r = row[2] + generation
        source = strict_log(Path(d), [dup])
        target = Path(d) / "target.db"
        with pytest.raises(SourceError) as info:
            replay(source, target, ReplayOptions(on_invalid="park"))
        assert_one_line(str(info.value))
        assert f"duplicate event position {format_event_id(row[0], row[1], None)} " in str(
            info.value
        )
        assert not target.exists()


@pytest.mark.parametrize(
    "position", [("abc", 0, 0), (150.5, 0, 0), (150, "x", 0), (150, 1, "z"), (150, 1, b"\x01")]
)
def test_positions_that_are_not_integers_are_refused_with_one_line(
    tmp_path: Path, position: tuple[Any, Any, Any]
):
    """A hand-made table can hold a text or real seqNum: refused, not parked half-written."""
    odd = Hostile("v1.ConfigSet", obj(key='"k"', value="1"), None)
    loose = loose_log(tmp_path, [odd], lambda rows: None)
    with sqlite3.connect(loose) as conn:
        conn.execute(
            "UPDATE eventlog SET seqNumGlobal = ?, seqNumClient = ?, seqNumRebaseGeneration = ? "
            "WHERE seqNumGlobal = 0",
            position,
        )
    conn.close()
    with pytest.raises(SourceError, match="not an integer") as info:
        replay(loose, tmp_path / "t.db", ReplayOptions(on_invalid="park"))
    assert_one_line(str(info.value))
    # Refused within the first batch: nothing was committed, so no target was left behind.
    assert not (tmp_path / "t.db").exists()


LINE_FAULTS = {
    "duplicate": lambda lines, i: lines[i - 1],
    "out-of-order": lambda lines, i: lines[max(i - 2, 0)],
    "not JSON": lambda lines, i: lines[i][: len(lines[i]) // 2],
    "no name": lambda lines, i: '{"seqNum":1}',
    "name not text": lambda lines, i: '{"name":["v1.ConfigSet"],"seqNum":999999}',
    "not an object": lambda lines, i: "[1,2,3]",
    "huge seqNum": lambda lines, i: '{"name":"x","seqNum":' + str(2**70) + "}",
    "float seqNum": lambda lines, i: '{"name":"x","seqNum":1e400}',
    "deep": lambda lines, i: '{"name":"x","seqNum":9999,"args":' + "[" * 10**4 + "]" * 10**4 + "}",
}  # fmt: skip


@settings(HOSTILE, max_examples=30)
@given(
    events=hostile_events("ndjson", 1, 6),
    fault=st.sampled_from(sorted(LINE_FAULTS)),
    at=st.integers(1, 220),
    batch_size=st.sampled_from([1, 10, 5000]),
    catalog=st.sampled_from([None, Catalog.bundled("ai-desk")]),
)
def test_broken_ndjson_lines_stop_the_run_with_one_line(
    events: list[Hostile], fault: str, at: int, batch_size: int, catalog: Catalog | None
):
    """Duplicate, out-of-order and broken lines: a one-line error naming the line, whole batches."""
    lines = ndjson_lines(events, [False] * len(events))
    at = min(at, len(lines) - 1)
    lines.insert(at, LINE_FAULTS[fault](lines, at))
    with tempfile.TemporaryDirectory() as d:
        source = write_lines(Path(d) / "events.ndjson", lines)
        target = Path(d) / "target.db"
        with pytest.raises(SourceError) as info:
            replay(
                source,
                target,
                ReplayOptions(on_invalid="park", batch_size=batch_size, catalog=catalog),
            )
        message = str(info.value)
        assert_one_line(message)
        assert f"line {at + 1}" in message, message
        # A first run reads every name before writing (to check the catalog fits the log):
        # the broken line is found before the target exists, whichever catalog.
        assert not target.exists()


EVENT_COUNTS = ['"173"', "[1]", "{}", "null", "-5", "1.5", "true", str(2**62), '"abc"']


@settings(HOSTILE, max_examples=20)
@given(count=st.sampled_from(EVENT_COUNTS), events=hostile_events("ndjson", 1, 6))
def test_hostile_json_export_never_crashes(count: str, events: list[Hostile]):
    """A `livestore sync export` with a hostile header and hostile events."""
    header = {k: v for k, v in EXPORT.items() if k != "events"}
    body = [json.dumps(e, ensure_ascii=False) for e in EXPORT["events"]]
    next_seq = max(e["seqNum"] for e in EXPORT["events"]) + 1
    for index, h in enumerate(events):
        line: dict[str, Any] = {"name": h.name, "seqNum": next_seq + index, "parentSeqNum": 0}
        if is_json(h.args) and h.raw_ok:
            body.append(json.dumps(line, ensure_ascii=False)[:-1] + ',"args":' + h.args + "}")
        else:
            body.append(json.dumps({**line, "argsJson": h.args}, ensure_ascii=False))
    text = json.dumps(header)[:-1].replace(str(EXPORT["eventCount"]), count)
    text += ',"events":[' + ",\n".join(body) + "]}"
    with tempfile.TemporaryDirectory() as d:
        source = Path(d) / "export.json"
        source.write_bytes(text.encode("utf-8", "surrogatepass"))
        target = Path(d) / "target.db"
        outcome = run_guarded(source, target, on_invalid="park")
        if isinstance(outcome, ReplayResult):
            assert_accounted(target, outcome, len(EXPORT["events"]) + len(events))


@settings(HOSTILE, max_examples=12)
@given(
    mode=st.sampled_from(["strict", "loose", "ndjson"]),
    data=st.data(),
    fmt=st.sampled_from(["ndjson", "json"]),
)
def test_export_of_a_hostile_log_fails_cleanly_or_replays(mode: str, data: Any, fmt: str):
    """`projector export` of a hostile log: one error line, or a file that replays accounted."""
    events = data.draw(hostile_events(mode, 3, 10))
    with tempfile.TemporaryDirectory() as d:
        if mode == "strict":
            source = strict_log(Path(d), events)
        elif mode == "loose":
            source = loose_log(Path(d), events, data.draw(st.randoms()).shuffle)
        else:
            lines = ndjson_lines(
                events,
                data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events))),
            )
            source = write_lines(Path(d) / "events.ndjson", lines)
        out = Path(d) / f"export.{fmt}"
        result = CliRunner().invoke(cli, ["-q", "export", str(source), str(out), "--format", fmt])
        if result.exit_code:
            _one_error_line(result)
            return
        _no_traceback(result)
        exported = int(result.stdout.split()[1].replace(",", ""))
        target = Path(d) / "target.db"
        replayed = run_guarded(out, target, on_invalid="park")
        if isinstance(replayed, ReplayResult):
            assert_accounted(target, replayed, exported)


# ---------------------------------------------------------------- a source that grows


def assert_migration_counts(target: Path, total: int) -> None:
    """The migration record has read TOTAL events, each applied or parked."""
    with read_only(target) as conn:
        position, applied, parked = conn.execute(
            f"SELECT position, applied, parked FROM {STATE_TABLE}"
        ).fetchone()
    assert position == total == applied + parked


@settings(HOSTILE, max_examples=12)
@given(
    events=hostile_events("strict", 2, 8),
    appended=hostile_events("strict", 2, 8, prefix="a"),
    batch_size=st.sampled_from([3, 25]),
    behind=st.booleans(),
)
def test_eventlog_appended_while_read_loses_nothing(
    events: list[Hostile], appended: list[Hostile], batch_size: int, behind: bool
):
    """Rows written while a replay reads: left for the next run, or refused; never lost."""
    for index, h in enumerate(appended):
        h.g, h.c = NEXT_GLOBAL + 10_000 + index, 0
    with tempfile.TemporaryDirectory() as d:
        source = strict_log(Path(d), events)
        target = Path(d) / "target.db"
        written: list[Hostile] = []
        sneaked: list[Hostile] = []

        def append(position: int, total: int | None) -> None:
            with sqlite3.connect(source) as conn:
                if len(written) < len(appended):
                    h = appended[len(written)]
                    conn.execute(f"INSERT INTO eventlog VALUES ({','.join('?' * 12)})", h.row)
                    written.append(h)
                if behind and position > 20 and not sneaked:
                    # A row written behind the reader (as a rebase would): before the checkpoint.
                    ghost = config(f"ghost{position}", "1", "apply", 1)
                    ghost.g, ghost.c = 2, 500
                    conn.execute(f"INSERT INTO eventlog VALUES ({','.join('?' * 12)})", ghost.row)
                    sneaked.append(ghost)
            conn.close()

        at_open = len(REAL_ROWS) + len(events)
        with mock.patch.object(sqlite_source, "PAGE_ROWS", 7):
            first = replay(
                source,
                target,
                ReplayOptions(on_invalid="park", batch_size=batch_size, progress=append),
            )
        assert first.read == at_open and first.accounted
        assert_sound(target)
        total = at_open + len(written) + len(sneaked)
        outcome = run_guarded(source, target, on_invalid="park")
        if sneaked:
            # The prefix changed behind the checkpoint: refused, never silently skipped.
            assert isinstance(outcome, CheckpointMismatch), outcome
            return
        assert isinstance(outcome, ReplayResult), outcome
        assert first.read + outcome.read == total
        assert_migration_counts(target, total)
        check_hostile_outcomes(target, [*events, *written], parked_events(target))


@settings(HOSTILE, max_examples=12)
@given(
    events=hostile_events("ndjson", 2, 8),
    appended=hostile_events("strict", 2, 8, prefix="a"),
    split=st.booleans(),
)
def test_ndjson_appended_while_read_loses_nothing(
    events: list[Hostile], appended: list[Hostile], split: bool
):
    """Lines appended (or half-written) while a replay reads: a later run accounts for them."""
    for index, h in enumerate(appended):
        h.g, h.c = NEXT_GLOBAL + 10_000 + index, 0
    pending = [ndjson_line(h, False) + "\n" for h in appended]
    with tempfile.TemporaryDirectory() as d:
        source = write_lines(Path(d) / "events.ndjson", ndjson_lines(events, [False] * len(events)))
        target = Path(d) / "target.db"
        todo = list(pending)

        def append(position: int, total: int | None) -> None:
            if not todo:
                return
            text = todo.pop(0)
            with source.open("ab") as fh:
                if split and len(todo) % 2:
                    fh.write(text[: len(text) // 2].encode())
                    fh.flush()
                    todo.insert(0, text[len(text) // 2 :])
                else:
                    fh.write(text.encode())

        first = run_guarded(source, target, on_invalid="park", batch_size=5, progress=append)
        assert isinstance(first, (ReplayResult, SourceError)), first
        with source.open("ab") as fh:
            fh.write("".join(todo).encode())
        final = run_guarded(source, target, on_invalid="park")
        assert isinstance(final, ReplayResult), final
        total = len(REAL_ROWS) + len(events) + len(appended)
        assert_migration_counts(target, total)
        check_hostile_outcomes(target, [*events, *appended], parked_events(target))


# ---------------------------------------------------------------- the CLI


def _cli_log(directory: Path) -> tuple[Path, str]:
    """A fixed hostile log; returns it with the id of its first rejected event."""
    events = [
        config("cli-a", jtext("x" * (1 << 20)), "apply", "x" * (1 << 20)),
        Hostile("'; DROP TABLE personas; --\nsecond line", "{}", "reject"),
        config("cli-b", "[" * 10_000 + "]" * 10_000, "reject"),
        config("cli-c", "NaN", "reject"),
        config_text("cli-d", '"\\ud800"'),  # applied as LiveStore does: the escape stays
        persona("cli-p"),
        memory("cli-m", "cli-p", "apply", importance=str(2**64)),  # the nearest double
        Hostile("v1.ConfigSet", '{"key":"cli-e\x00","value":1}', "reject"),
    ]
    for index, h in enumerate(events):
        h.g, h.c = NEXT_GLOBAL + index, 0
    return strict_log(directory, events), events[1].event_id


def _no_traceback(result: Any) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output


def _one_error_line(result: Any) -> str:
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_cli_parks_a_hostile_log_and_verifies_it(tmp_path: Path):
    source, _ = _cli_log(tmp_path / "src")
    target = tmp_path / "t.db"
    runner = CliRunner()
    result = runner.invoke(cli, ["-q", "replay", "--on-invalid", "park", str(source), str(target)])
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    # cli-d is held back: the NaN before it names no row, so it holds every config row.
    assert "read 208 = applied 203 + parked 5" in result.stdout
    verified = runner.invoke(cli, ["-q", "verify", str(target)])
    _no_traceback(verified)
    assert verified.exit_code == 0, verified.output


def test_cli_fail_policy_names_the_event_on_one_line(tmp_path: Path):
    source, first_bad = _cli_log(tmp_path / "src")
    result = CliRunner().invoke(cli, ["-q", "replay", str(source), str(tmp_path / "t.db")])
    line = _one_error_line(result)
    assert f"{first_bad} (" in line


def test_cli_validate_and_inspect_report_hostile_events(tmp_path: Path):
    source, _ = _cli_log(tmp_path / "src")
    runner = CliRunner()
    validated = runner.invoke(cli, ["-q", "validate", str(source)])
    _no_traceback(validated)
    assert validated.exit_code == 1 and "204 of 208 events valid" in validated.stdout
    inspected = runner.invoke(cli, ["-q", "inspect", str(source), "--json"])
    _no_traceback(inspected)
    assert inspected.exit_code == 0 and json.loads(inspected.stdout)["events"] == 208


@pytest.mark.parametrize(
    "kind",
    ["empty", "random", "truncated", "flipped-header", "ndjson-deep", "ndjson-duplicate"],
)
def test_cli_broken_sources_give_one_error_line(tmp_path: Path, kind: str):
    source = tmp_path / "source"
    if kind == "empty":
        source.write_bytes(b"")
    elif kind == "random":
        source.write_bytes(bytes(range(256)) * 8)
    elif kind == "truncated":
        source.write_bytes(EVENTLOG_BYTES[: 8192 * 3 + 100])
    elif kind == "flipped-header":
        source.write_bytes(EVENTLOG_BYTES[:16] + b"\xff" * 84 + EVENTLOG_BYTES[100:])
    elif kind == "ndjson-deep":
        write_lines(source, [*NDJSON_LINES[:3], LINE_FAULTS["deep"](NDJSON_LINES, 3)])
    else:
        write_lines(source, [*NDJSON_LINES[:3], NDJSON_LINES[2]])
    runner = CliRunner()
    for args in (
        ["replay", "--on-invalid", "park", str(source), str(tmp_path / "t.db")],
        ["inspect", str(source)],
        ["validate", str(source)],
    ):
        _one_error_line(runner.invoke(cli, ["-q", *args]))


def test_cli_prints_names_that_are_not_unicode(tmp_path: Path):
    """Lone surrogates and line breaks in names and keys are printed escaped, never a crash."""
    hostile = (
        '{"name":"bad\\ud800name\\nx","seqNum":{"global":99,"client":0},'
        '"args":{"key":"k\\ud800","value":"\\ud800"},"clientId":"\\ud800"}'
    )
    source = write_lines(tmp_path / "s.ndjson", [*NDJSON_LINES[:3], hostile])
    target = tmp_path / "t.db"
    runner = CliRunner()
    for args, code in (
        (["inspect", str(source)], 0),
        (["inspect", str(source), "--json"], 0),
        (["validate", str(source)], 1),
        (["validate", str(source), "--json"], 1),
        (["replay", "--on-invalid", "park", str(source), str(target), "--json"], 0),
    ):
        result = runner.invoke(cli, ["-q", *args])
        _no_traceback(result)
        assert result.exit_code == code, (args, result.output)
        if args[:2] == ["inspect", str(source)] and "--json" in args:
            assert json.loads(result.stdout)["byName"]["bad\ud800name\nx"] == 1
        elif "--json" in args:
            json.loads(result.stdout)
    assert parked_events(target)["e99"][0] == "unknown"
