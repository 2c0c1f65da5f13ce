"""Write a LiveStore eventlog@6.db of any size by repeating a real log's events.

The output is what LiveStore 0.4.0's Node adapter writes (FORMAT.md section 2): the
exact DDL (STRICT table, primary key, both indexes), page size 8192, a rollback journal,
and the one ``__livestore_sync_status`` row. Events are the template's, in its order,
repeated as often as needed ("epochs"):

* epoch 0 is the template verbatim (the same rows, argsJson byte for byte);
* every later epoch gives each persona, memory and plugin a fresh id (a new nanoid for
  nanoids, ``<id>-<epoch>`` for plugin names), used consistently within the epoch, so ids
  stay unique per entity and every persona reference points at a persona that epoch
  created; its timestamps are moved on by whole multiples of the template's time span;
  its argsJson is re-serialized as JSON.stringify prints it (events.encoding.js_json,
  which reproduces every argsJson of the real fixtures exactly);
* sequence numbers are assigned as LiveStore assigns them: an event that is synced gets
  ``(prev.global + 1, 0)`` with parent ``(prev.global, 0)``; a client-only event (the
  template row had seqNumClient > 0) gets ``(prev.global, prev.client + 1)`` with the
  previous event as parent. Rebase generations (the row's and its parent's), clientId,
  sessionId, schemaHash and syncMetadataJson are copied from the template row.

Usage: python bench/make_log.py TEMPLATE OUT_STORE_DIR --events N [--seed S]
(TEMPLATE is a store directory or an eventlog@6.db). `cache_path` names the directory
under /tmp that bench/bench.py builds a log in once per (template, size, seed) and reuses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from events.encoding import iso_to_epoch_ms, js_json
from events.sources import connect_readonly

#: Bump when the output for the same inputs changes (invalidates cached logs).
GENERATOR_VERSION = 1
EVENTLOG_NAME = "eventlog@6.db"
CACHE_ROOT = Path(tempfile.gettempdir()) / "livestore-projector-bench"

#: FORMAT.md section 2, verbatim: what LiveStore 0.4.0 runs to create the eventlog DB.
DDL = (
    'CREATE TABLE IF NOT EXISTS "eventlog" ("seqNumGlobal" integer   not null , "seqNumClient" '
    'integer   not null , "seqNumRebaseGeneration" integer   not null , "parentSeqNumGlobal" '
    'integer   not null , "parentSeqNumClient" integer   not null , '
    '"parentSeqNumRebaseGeneration" integer   not null , "name" text   not null , "argsJson" '
    'text   not null , "clientId" text   not null , "sessionId" text   not null , "schemaHash" '
    'integer   not null , "syncMetadataJson" text   not null , PRIMARY KEY ("seqNumGlobal", '
    '"seqNumClient", "seqNumRebaseGeneration")) strict',
    'CREATE INDEX "idx_eventlog_seqNumGlobal" on "eventlog" ("seqNumGlobal")',
    'CREATE INDEX "idx_eventlog_seqNum" on "eventlog" ("seqNumGlobal", "seqNumClient", '
    '"seqNumRebaseGeneration")',
    'CREATE TABLE IF NOT EXISTS "__livestore_sync_status" ("head" integer primary key   , '
    '"backendId" text    ) strict',
)
PAGE_SIZE = 8192  # LiveStore's connections run PRAGMA page_size=8192

NANOID_ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"
PERSONA, MEMORY, PLUGIN = "persona", "memory", "plugin"
_PERSONA_ID = {"id": PERSONA}
#: Which args fields hold which kind of id, per event name (the ai-desk app).
ID_FIELDS: dict[str, dict[str, str]] = {
    "v1.PersonaCreated": _PERSONA_ID,
    "v2.PersonaCreated": _PERSONA_ID,
    "v1.PersonaUpdated": _PERSONA_ID,
    "v1.PersonaDeleted": _PERSONA_ID,
    "v1.MemoryAdded": {"id": MEMORY, "personaId": PERSONA},
    "v1.MemoryUpdated": {"id": MEMORY},
    "v1.MemoryDeleted": {"id": MEMORY},
    "v1.DraftSaved": {"personaId": PERSONA},
    "v1.PluginInstalled": {"id": PLUGIN},
    "v1.PluginEnabled": {"id": PLUGIN},
    "v1.PluginDisabled": {"id": PLUGIN},
    "v1.PluginUninstalled": {"id": PLUGIN},
}
#: Client documents whose value may name a persona (their own id is the document's).
VALUE_ID_FIELDS: dict[str, dict[str, str]] = {
    "userPreferencesSet": {"activePersonaId": PERSONA},
    "uiStateSet": {"selectedPersonaId": PERSONA},
}
TIME_FIELDS = ("createdAt", "updatedAt", "savedAt", "deletedAt", "installedAt")
DAY_MS = 86_400_000
_EPOCH = dt.datetime(1970, 1, 1)


def _iso(ms: int) -> str:
    """Date.prototype.toISOString() of epoch milliseconds (years 0..9999)."""
    d = _EPOCH + dt.timedelta(milliseconds=ms)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        f".{d.microsecond // 1000:03d}Z"
    )


def eventlog_path(template: Path) -> Path:
    """The eventlog of TEMPLATE (a store directory or the eventlog file itself)."""
    return template / EVENTLOG_NAME if template.is_dir() else template


def read_template(template: Path) -> list[tuple[Any, ...]]:
    """The template's rows in replay order: (client_only, r, pr, name, argsJson, rest...)."""
    conn = connect_readonly(eventlog_path(template))
    try:
        return conn.execute(
            "SELECT seqNumClient > 0, seqNumRebaseGeneration, parentSeqNumRebaseGeneration, "
            "name, argsJson, clientId, sessionId, schemaHash, syncMetadataJson "
            "FROM eventlog ORDER BY seqNumGlobal, seqNumClient"
        ).fetchall()
    finally:
        conn.close()


class _Ids:
    """Fresh ids per epoch: unique across the whole log, consistent within an epoch."""

    def __init__(self, template_rows: list[tuple[Any, ...]], seed: int):
        self.rng = random.Random(seed)
        self.taken: set[str] = set()
        for row in template_rows:
            args = json.loads(row[4])
            for field, kind in ID_FIELDS.get(row[3], {}).items():
                if isinstance(args.get(field), str):
                    self.taken.add(f"{kind}:{args[field]}")
        self.epoch = 0
        self.maps: dict[str, dict[str, str]] = {}

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.maps = {PERSONA: {}, MEMORY: {}, PLUGIN: {}}

    def fresh(self, kind: str, old: str) -> str:
        mapping = self.maps[kind]
        new = mapping.get(old)
        if new is not None:
            return new
        while True:
            if kind == PLUGIN or len(old) != 21:
                new = f"{old}-{self.epoch}" if new is None else f"{new}x"
            else:
                new = "".join(self.rng.choices(NANOID_ALPHABET, k=21))
            key = f"{kind}:{new}"
            if key not in self.taken:
                self.taken.add(key)
                mapping[old] = new
                return new


def _time_span_ms(template_rows: list[tuple[Any, ...]]) -> int:
    """Whole days covering every timestamp of the template (epochs are moved on by this)."""
    low = high = None
    for row in template_rows:
        args = json.loads(row[4])
        for field in TIME_FIELDS:
            value = args.get(field) if isinstance(args, dict) else None
            if isinstance(value, str):
                ms = iso_to_epoch_ms(value)
                low = ms if low is None or ms < low else low
                high = ms if high is None or ms > high else high
    if low is None or high is None:
        return DAY_MS
    return ((high - low) // DAY_MS + 1) * DAY_MS


def _transform(name: str, args_json: str, ids: _Ids, shift_ms: int) -> str:
    args = json.loads(args_json)
    for field, kind in ID_FIELDS.get(name, {}).items():
        if isinstance(args.get(field), str):
            args[field] = ids.fresh(kind, args[field])
    value_fields = VALUE_ID_FIELDS.get(name)
    if value_fields and isinstance(args.get("value"), dict):
        value = args["value"]
        for field, kind in value_fields.items():
            if isinstance(value.get(field), str):
                value[field] = ids.fresh(kind, value[field])
    for field in TIME_FIELDS:
        if isinstance(args.get(field), str):
            args[field] = _iso(iso_to_epoch_ms(args[field]) + shift_ms)
    return js_json(args)


def generate_rows(
    template_rows: list[tuple[Any, ...]], events: int, seed: int = 0
) -> Iterator[tuple[Any, ...]]:
    """EVENTS eventlog rows (all 12 columns) in replay order."""
    if not template_rows:
        raise ValueError("the template log has no events")
    ids = _Ids(template_rows, seed) if events > len(template_rows) else None
    span = _time_span_ms(template_rows) if ids is not None else 0
    prev_g = prev_c = 0
    per_epoch = len(template_rows)
    for index in range(events):
        epoch, offset = divmod(index, per_epoch)
        if offset == 0 and ids is not None:
            ids.start_epoch(epoch)
        client_only, r, pr, name, args_json, client_id, session_id, schema_hash, sync = (
            template_rows[offset]
        )
        if epoch and ids is not None:
            args_json = _transform(name, args_json, ids, epoch * span)
        if client_only:
            g, c, pg, pc = prev_g, prev_c + 1, prev_g, prev_c
        else:
            g, c, pg, pc = prev_g + 1, 0, prev_g, 0
        yield (g, c, r, pg, pc, pr, name, args_json, client_id, session_id, schema_hash, sync)
        prev_g, prev_c = g, c


def write_eventlog(path: Path, rows: Iterator[tuple[Any, ...]], chunk: int = 50_000) -> int:
    """Create PATH (must not exist) as LiveStore creates an eventlog DB, and fill it."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        for statement in DDL:
            conn.execute(statement)
        conn.execute('INSERT INTO "__livestore_sync_status" (head, backendId) VALUES (0, NULL)')
        insert = f'INSERT INTO "eventlog" VALUES ({", ".join("?" * 12)})'
        count = 0
        batch: list[tuple[Any, ...]] = []
        conn.execute("BEGIN")
        for row in rows:
            batch.append(row)
            if len(batch) >= chunk:
                conn.executemany(insert, batch)
                count += len(batch)
                batch.clear()
        conn.executemany(insert, batch)
        count += len(batch)
        conn.execute("COMMIT")
        return count
    finally:
        conn.close()


def make_log(template: Path, out_dir: Path, events: int, seed: int = 0) -> Path:
    """Write OUT_DIR/eventlog@6.db with EVENTS events; return OUT_DIR (a store directory)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / EVENTLOG_NAME
    partial = out_dir / f".{EVENTLOG_NAME}.{os.getpid()}.partial"
    partial.unlink(missing_ok=True)
    rows = read_template(template)
    written = write_eventlog(partial, generate_rows(rows, events, seed))
    assert written == events, (written, events)
    os.replace(partial, final)
    return out_dir


def cache_path(template: Path, events: int, seed: int = 0, cache_root: Path = CACHE_ROOT) -> Path:
    """The store directory a generated log is cached in, keyed by its inputs."""
    source = eventlog_path(template).resolve()
    stat = source.stat()
    key = hashlib.sha256(
        f"{GENERATOR_VERSION}|{source}|{stat.st_size}|{stat.st_mtime_ns}|{events}|{seed}".encode()
    ).hexdigest()[:16]
    store_name = template.resolve().name if template.is_dir() else "store"
    return cache_root / f"{events}-{key}" / store_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", type=Path, help="store directory or eventlog@6.db to repeat")
    parser.add_argument("out", type=Path, help="store directory to write eventlog@6.db into")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    store = make_log(args.template, args.out, args.events, args.seed)
    seconds = time.monotonic() - started
    print(f"wrote {args.events:,} events to {store / EVENTLOG_NAME} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
