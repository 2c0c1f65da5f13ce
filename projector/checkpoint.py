"""Checkpoints: eventsourcing tracking records, written in the same transaction as the rows.

The tracking record holds the position (1-based, in replay order) of the last event
applied. eventsourcing's `SQLiteTrackingRecorder` supplies the table and the insert that
refuses a position not beyond the recorded one, so a re-delivered event fails loudly.
Its public `insert_tracking` commits on a connection of its own; the projector runs the
recorder's statements on the batch's connection instead, inside the batch transaction.
The prefix digest identifies the events up to the checkpoint, so a changed source is
refused rather than resumed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from typing import Any, Final

from eventsourcing.persistence import IntegrityError as TrackingConflict
from eventsourcing.persistence import Tracking
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore, SQLiteTrackingRecorder

from events import _native
from events.envelope import Event

APPLICATION_NAME = "livestore-projector"
#: The compiled helpers (events/_pages.c), or None in the pure-Python build.
_PAGES: Final[Any] = _native.extension("events._pages")


class TrackingView(SQLiteTrackingRecorder):
    """eventsourcing's SQLite tracking recorder, run on the projector's own connection."""

    def __init__(self, db_name: str = ":memory:"):
        super().__init__(SQLiteDatastore(db_name, single_row_tracking=True))

    def create_on(self, conn: sqlite3.Connection) -> None:
        """Create the tracking table in the caller's transaction (a target migration)."""
        self._create_table(SQLiteCursor(conn.cursor()))

    def record(self, conn: sqlite3.Connection, position: int) -> None:
        """Record POSITION as applied; raises `TrackingConflict` if it is not beyond the last."""
        self._insert_tracking(SQLiteCursor(conn.cursor()), Tracking(APPLICATION_NAME, position))

    def insert_statement(self, position: int) -> tuple[str, dict[str, object]]:
        """The SQL and parameters `record` runs for POSITION: an insert that returns no
        row when POSITION is not beyond the one recorded (for `projector.writer`)."""
        return self.insert_tracking_statement, {
            "application_name": APPLICATION_NAME,
            "notification_id": position,
        }

    def position(self, conn: sqlite3.Connection) -> int:
        return self._max_tracking_id(APPLICATION_NAME, SQLiteCursor(conn.cursor())) or 0


#: Pieces (three an event) `PrefixDigest.update_many` joins and hashes at a time.
_HASHED_PARTS: Final = 3 * 256


class PrefixDigest:
    """A running digest of the events' identities and args, in replay order."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=20)

    def update(self, event: Event) -> None:
        self.update_many((event,))

    def update_many(self, events: Iterable[Event]) -> None:
        """The same digest as `update` on each event in turn, hashed a few hundred events
        at a time (a batch's whole text, joined, would be megabytes more at the batch's
        peak of memory).

        Each event's ``{global}.{client}\\x1f{name}\\x1f{args}\\x1e`` is encoded to UTF-8 in
        pieces and the bytes joined (UTF-8 of a concatenation is the concatenation of the
        pieces' UTF-8, lone surrogates included under ``surrogatepass``). The args text,
        encoded on its own, is copied from the UTF-8 that parsing it has already cached
        (`events.fastpath`); joining the texts first would widen the whole batch to 4 bytes
        a character as soon as one event holds an emoji, and cost more to encode. Args
        read as their UTF-8 bytes (`events.envelope.Event`) are those bytes already; any
        other value (a BLOB's `events.sqlite_source.Blob` too) is hashed as its repr.
        """
        if _PAGES is not None and type(events) is list:
            # The same bytes, joined in C a few hundred events at a time; a slice
            # holding an event that is not plain (`events/_pages.c`) is joined below.
            size = _HASHED_PARTS // 3
            for start in range(0, len(events), size):
                text = _PAGES.digest_text(events, start, start + size)
                if text is None:
                    self._update_parts(events[start : start + size])
                else:
                    self._hash.update(text)
            return
        self._update_parts(events)

    def _update_parts(self, events: Iterable[Event]) -> None:
        update = self._hash.update
        parts: list[bytes] = []
        append = parts.append
        for event in events:
            args = event[7]
            append(f"{event[1]}.{event[2]}\x1f{event[6]}\x1f".encode("utf-8", "surrogatepass"))
            if type(args) is str:
                append(args.encode("utf-8", "surrogatepass"))
            elif type(args) is bytes:  # text's UTF-8, as read (`Event`): hashed as it is
                append(args)
            else:
                append(f"{args!r}".encode("utf-8", "surrogatepass"))
            append(b"\x1e")
            if len(parts) >= _HASHED_PARTS:
                update(b"".join(parts))
                parts.clear()
        if parts:
            update(b"".join(parts))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


__all__ = ["APPLICATION_NAME", "PrefixDigest", "TrackingConflict", "TrackingView"]
