"""What `projector inspect` reports about a source, computed in one streaming pass."""

from __future__ import annotations

from collections import Counter
from typing import Any

from events.history import HistoryCheck
from events.sources import Source

#: Warnings shown with their position (the rest are counted).
MAX_WARNING_EXAMPLES = 10


def summarize(source: Source) -> dict[str, Any]:
    """Counts, seq range and names of SOURCE's events, and the holes in its history
    (``warnings``, ``warningsByKind``, ``warningExamples``: see `events.history`)."""
    by_name: Counter[str] = Counter()
    count = client_only = 0
    first = last = None
    generations: Counter[int] = Counter()
    history = HistoryCheck()
    examples: list[dict[str, Any]] = []
    for event in source.events():
        count += 1
        if first is None:
            first = event.event_id
        last = event.event_id
        by_name[event.name if isinstance(event.name, str) else repr(event.name)] += 1
        if event.client_only:
            client_only += 1
        if event.rebase_generation is not None:
            generations[event.rebase_generation] += 1
        for kind, detail, position, event_id in history.check((event,)):
            if len(examples) < MAX_WARNING_EXAMPLES:
                examples.append(
                    {"kind": kind, "position": position, "eventId": event_id, "detail": detail}
                )
    return {
        "source": str(source.path),
        "format": source.kind,
        "formatVersion": source.format_version,
        "storeId": source.store_id,
        "events": count,
        "firstEventId": first,
        "lastEventId": last,
        "clientOnly": client_only,
        "byName": dict(sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0]))),
        "rebaseGenerations": {str(k): v for k, v in sorted(generations.items())},
        "warnings": sum(history.counts.values()),
        "warningsByKind": dict(sorted(history.counts.items())),
        "warningExamples": examples,
        **source.details,
    }
