"""The shape of a history: holes that LiveStore itself would replay over without a word.

LiveStore numbers synced events ``e1, e2, ...`` without gaps; a client-only event
``e{g}.{c}`` hangs off the global event ``e{g}`` (or off the root before the first one)
and names the event before it as its parent (FORMAT.md §2, "Ordering and parents":
``common/schema/EventSequenceNumber/client.ts:228-257``). Parents are joined on
``(global, client)`` only: the parent's rebase generation often differs from the stored
row's. A log whose rows were lost or deleted breaks these rules; LiveStore's
rematerialization (``rematerialize-from-eventlog.ts``) does not check them, so neither
does replay: these are warnings, with the position of the event where the hole shows.

`HistoryCheck` reads the events once, in replay order, with memory that grows by 8 bytes
per client-only event (their positions, for parent look-ups); global events cost nothing
while their numbers have no gaps.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable
from typing import Any

from events.envelope import Event, format_event_id

GAP = "history-gap"
MISSING_PARENT = "missing-parent"
MISSING_GLOBAL = "missing-global-parent"
KINDS = (GAP, MISSING_PARENT, MISSING_GLOBAL)

#: A warning: (kind, detail, position, eventId).
Warning = tuple[str, str, int, str]


def _packable(g: int, c: int) -> bool:
    return 0 <= g < 2**31 and 0 <= c < 2**32


class HistoryCheck:
    """Feed it every event in replay order; it returns the holes each one reveals."""

    def __init__(self) -> None:
        self.last_global = 0
        #: Ranges [start, end] of global seq nums missing below `last_global`.
        self._gap_starts: list[int] = []
        self._gap_ends: list[int] = []
        #: Client-only positions seen, packed as (global << 32 | client), ascending.
        self._clients = array("q")
        self._odd_clients: set[tuple[int, int]] = set()
        self.counts: dict[str, int] = {}

    def check(self, events: Iterable[Event]) -> list[Warning]:
        """The holes EVENTS reveal, in order (most logs: none)."""
        found: list[Warning] = []
        for event in events:
            g, c, pg, pc = (
                event.seq_global,
                event.seq_client,
                event.parent_global,
                event.parent_client,
            )
            if c == 0:
                if g > self.last_global + 1:
                    self._gap(g, event, found)
                if g > self.last_global:
                    self.last_global = g
            else:
                if g > 0 and g != self.last_global:
                    self._add(
                        found,
                        MISSING_GLOBAL,
                        f"{event.event_id} hangs off {format_event_id(g, 0, None)}, "
                        "which is not in the log",
                        event,
                    )
                if _packable(g, c):
                    self._clients.append(g << 32 | c)
                else:
                    self._odd_clients.add((g, c))
            if (
                pc == 0
                and type(pg) is int
                and type(pc) is int
                and 1 <= pg <= self.last_global
                and (pg < g or (pg == g and c > 0))
                and not self._gap_starts
            ):
                continue  # `_seen`'s answer for most events: a global parent, no gap below
            if (pg or pc) and not self._seen(pg, pc, g, c):
                self._add(
                    found,
                    MISSING_PARENT,
                    f"{event.event_id}'s parent {_label(pg, pc)} is not in the log"
                    + (" before it" if _at_or_after(pg, pc, g, c) else ""),
                    event,
                )
        return found

    def _gap(self, g: int, event: Event, found: list[Warning]) -> None:
        start, end = self.last_global + 1, g - 1
        self._gap_starts.append(start)
        self._gap_ends.append(end)
        missing = (
            format_event_id(start, 0, None)
            if start == end
            else f"{format_event_id(start, 0, None)}..{format_event_id(end, 0, None)}"
            f" ({end - start + 1:,} events)"
        )
        after = (
            f"jump from {format_event_id(self.last_global, 0, None)} to {event.event_id}"
            if self.last_global
            else f"start at {event.event_id}"
        )
        self._add(found, GAP, f"{missing} missing: the global seq nums {after}", event)

    def _seen(self, pg: Any, pc: Any, g: int, c: int) -> bool:
        """Whether the event at (PG, PC) came before the event at (G, C)."""
        if type(pg) is not int or type(pc) is not int or (pg, pc) >= (g, c):
            return False
        if pc == 0:
            if pg > self.last_global or pg < 1:
                return False
            index = bisect.bisect_right(self._gap_starts, pg) - 1
            return index < 0 or pg > self._gap_ends[index]
        if _packable(pg, pc):
            key = pg << 32 | pc
            index = bisect.bisect_left(self._clients, key)
            return index < len(self._clients) and self._clients[index] == key
        return (pg, pc) in self._odd_clients

    def _add(self, found: list[Warning], kind: str, detail: str, event: Event) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        found.append((kind, detail, event.position, event.event_id))

    def summary(self) -> str:
        """``1 gap, 1 missing parent`` (empty when the history has no hole)."""
        words = {
            GAP: "gap",
            MISSING_PARENT: "missing parent",
            MISSING_GLOBAL: "orphan client event",
        }
        return ", ".join(
            f"{n:,} {words[kind]}{'s' if n != 1 else ''}"
            for kind, n in sorted(self.counts.items(), key=lambda kv: KINDS.index(kv[0]))
        )


def _at_or_after(pg: Any, pc: Any, g: int, c: int) -> bool:
    """Whether the parent (PG, PC) is at or after the event (G, C); False for a parent
    that is no position (a hand-made table's NULL or text)."""
    return type(pg) is int and type(pc) is int and (pg, pc) >= (g, c)


def _label(g: Any, c: Any) -> str:
    if type(g) is int and type(c) is int:
        return format_event_id(g, c, None)
    return f"({g!r}, {c!r})"
