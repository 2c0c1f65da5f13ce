"""A stand-in for the LiveStore app writing its eventlog while the projector reads it.

Run as ``python -m tests.app_writer EVENTLOG --seconds N [--seed S]``. It writes the way
LiveStore's Node adapter does (FORMAT.md §1): through a VFS whose locks are no-ops
(SQLite's ``unix-none``, like wa-sqlite's NodeFS), in rollback-journal mode, in
transactions of 1-8 events with the right seq nums and parents: synced events and
client-only ones, some with text long enough to span overflow pages. Between commits it
rewrites pages in the middle of the file, as LiveStore does when the sync backend
confirms events (``syncMetadataJson``), and now and then VACUUMs, which moves every page.
It prints how many events it appended.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
from pathlib import Path

PERSONA = "UQdo8r88Jnpy2xvSSwJNX"  # alive in the small fixture


def _event(rng: random.Random, n: int) -> tuple[str, dict[str, object], bool]:
    """(name, args, client-only) of the N-th appended event."""
    roll = rng.random()
    if roll < 0.2:
        return "uiStateSet", {"id": "static", "value": {"scrollTop": n}}, True
    if roll < 0.5:
        return "v1.ConfigSet", {"key": f"soak.{n % 50}", "value": n}, False
    content = f"soak memory {n} " + "lorem ipsum " * rng.choice((1, 10, 2000))
    return (
        "v1.MemoryAdded",
        {
            "id": f"soak-{n}",
            "personaId": PERSONA,
            "content": content,
            "kind": "fact",
            "importance": 0.5,
            "tags": ["soak"],
            "createdAt": "2024-02-01T00:00:00.000Z",
        },
        False,
    )


def write(eventlog: Path, seconds: float, seed: int) -> int:
    rng = random.Random(seed)
    uri = eventlog.resolve().as_uri() + "?vfs=unix-none"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.execute("PRAGMA cache_size = 20")  # small: pages are written while a commit runs
    g, c, r = conn.execute(
        "SELECT seqNumGlobal, seqNumClient, seqNumRebaseGeneration FROM eventlog "
        "ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1"
    ).fetchone()
    appended = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.execute("BEGIN")
        for _ in range(rng.randint(1, 8)):
            name, args, client_only = _event(rng, appended)
            # A client-only event's parent is the event before it; a synced one's is the
            # last synced event (EventSequenceNumber/client.ts:228-257).
            parent = (g, c, r) if client_only else (g, 0, r)
            g, c = (g, c + 1) if client_only else (g + 1, 0)
            conn.execute(
                "INSERT INTO eventlog VALUES (?, ?, 0, ?, ?, ?, ?, ?, 'desktop-A', 'static', 0, "
                '\'{"_tag":"None"}\')',
                (g, c, *parent, name, json.dumps(args, separators=(",", ":"))),
            )
            r = 0
            appended += 1
        conn.execute("COMMIT")
        roll = rng.random()
        if roll < 0.3:
            low = rng.randint(1, g)
            conn.execute(
                "UPDATE eventlog SET syncMetadataJson = ? "
                "WHERE seqNumGlobal BETWEEN ? AND ? AND seqNumClient = 0",
                (json.dumps({"_tag": "Some", "value": {"n": appended}}), low, low + 40),
            )
        elif roll < 0.32:
            conn.execute("VACUUM")
        time.sleep(rng.uniform(0, 0.004))
    conn.close()
    return appended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eventlog", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(write(args.eventlog, args.seconds, args.seed), flush=True)


if __name__ == "__main__":
    main()
