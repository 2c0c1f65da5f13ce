"""Deliberate deviations from LiveStore: where the target differs from LiveStore's state on purpose.

LiveStore is the definition of what the app showed its user, and the differential test
(tests/test_differential.py) compares the projector with LiveStore's own rebuild on
hundreds of mutated real logs. Every difference it finds is either fixed or listed here,
with what LiveStore does (and where, in @livestore/* 0.4.0), what the projector does
instead and why. These are behaviours of LiveStore and SQLite, not of any one app.
docs/deviations.md is the same table for users; a test keeps the two in step.

`verify --against` names them: a row an applied event changed unlike LiveStore is
recorded by the replay in ``_projector_deviations`` (`record`), and a difference on such
a row, or one whose values show the deviation itself (`explain_values`), is reported as
"explained by deviation <name>". Deviations that park events (`for_parked`) are
explained, as before, by the parked events on the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.encoding import MAX_NESTING
from events.validation import DATE_TEXT_REASON, NESTING_REASON

NUL = "\x00"


@dataclass(frozen=True)
class Deviation:
    """One place where the target differs from LiveStore's state on purpose."""

    name: str
    #: What LiveStore 0.4.0 does, and the source that says so.
    livestore: str
    #: What the projector does instead, and why.
    projector: str
    #: How it shows: a warning kind, a parked kind, or how verify explains it.
    shows_as: str


NUL_TRUNCATION = Deviation(
    "nul-truncation",
    livestore="Its SQLite binding (wa-sqlite) passes text to SQLite as a C string, so a text "
    "column (or key, or WHERE value) holding U+0000 is stored cut at the first U+0000; JSON "
    "columns keep the escape \\u0000.",
    projector="Keeps the whole text: it is the event's data, and a migration must not lose it. "
    "A key holding U+0000 is a row of its own in the target (LiveStore merges it into the "
    "row named by the text before U+0000).",
    shows_as="warning nul-in-text; verify: 'explained by deviation nul-truncation' for the rows "
    "the event changed (recorded in _projector_deviations) and for any value whose text cut "
    "at U+0000 is LiveStore's",
)
UNKNOWN_EVENT = Deviation(
    "unknown-event",
    livestore="Skips an event its schema does not define, with a log warning, and keeps it in "
    "the eventlog for a newer app version (common/rematerialize-from-eventlog.ts, "
    "schema/unknown-events.ts).",
    projector="Stops (--on-invalid fail) or parks it as 'unknown', so that no event of the "
    "history is dropped unseen; `replay-parked` applies it once the catalog knows it.",
    shows_as="parked unknown (it names no row, so no row differs and it explains none)",
)
DATE_TEXT = Deviation(
    "date-text",
    livestore="Decodes a Schema.Date from any text V8's Date parser reads (no milliseconds, "
    "an offset, lowercase t/z, '2024-02-30' rolled over to March 1st, 'Tue Jan 16 2024') and "
    "stores its toISOString(); refuses the log for text V8 cannot read.",
    projector="Accepts only toISOString()'s own text, the only text LiveStore writes "
    "(format livestore-date), and rejects the rest as invalid: reimplementing V8's legacy "
    "date parser is not worth the risk of storing a different instant.",
    shows_as=f"parked invalid ('... {DATE_TEXT_REASON}')",
)
RELATIONAL_INTEGRITY = Deviation(
    "relational-integrity",
    livestore="Its tables have no foreign keys: a memory or draft for a persona that does not "
    "exist is inserted. A second creation of an existing id makes its INSERT fail, and "
    "LiveStore refuses to boot the store.",
    projector="Parks such an event as 'integrity' (and holds back later events on its row) "
    "rather than write a row that breaks a reference or overwrite one.",
    shows_as="parked integrity / held; verify: 'explained by parked ...'",
)

DEEP_NESTING = Deviation(
    "deep-nesting",
    livestore="JSON.parse (V8) reads args nested thousands of levels deep.",
    projector=f"Parks args nested more than {MAX_NESTING} levels deep as unparseable: Python's "
    "json parser counts nesting against the interpreter's recursion limit, so a deeper limit "
    "would depend on the caller's stack (and differ between the compiled and the pure "
    "build); no app's args come near it. `export` keeps such args as their argsJson text, "
    "and `scaffold` counts them unparseable, alike.",
    shows_as=f"parked unparseable ('argsJson is not JSON ({NESTING_REASON})')",
)

DEVIATIONS: dict[str, Deviation] = {
    d.name: d
    for d in (NUL_TRUNCATION, UNKNOWN_EVENT, DATE_TEXT, RELATIONAL_INTEGRITY, DEEP_NESTING)
}


def nul_entities(entity: str | None) -> list[str]:
    """The rows (``table:key``) an event whose text holds U+0000 changes unlike LiveStore:
    its own, and, when the key itself holds U+0000, the row LiveStore changed instead."""
    if entity is None:
        return []
    table, _, key = entity.partition(":")
    if NUL in key:
        return [entity, f"{table}:{key.split(NUL, 1)[0]}"]
    return [entity]


def explain_values(theirs: Any, ours: Any) -> str | None:
    """The deviation that explains why a value differs, judged from the values alone."""
    if isinstance(ours, str) and isinstance(theirs, str) and NUL in ours:
        if ours.split(NUL, 1)[0] == theirs:
            return NUL_TRUNCATION.name
    return None


def for_parked(kind: str, reason: str) -> str | None:
    """The deviation a parked event of KIND (with REASON) stands for, if it is one: what
    the differential test requires of every event parked from a log LiveStore accepts
    (a 'held' event is the consequence of an earlier one parked on its row)."""
    if kind == "unknown":
        return UNKNOWN_EVENT.name
    if kind == "integrity":
        return RELATIONAL_INTEGRITY.name
    if kind == "invalid" and DATE_TEXT_REASON in reason:
        return DATE_TEXT.name
    if kind == "unparseable" and NESTING_REASON in reason:
        return DEEP_NESTING.name
    return None


__all__ = ["DEVIATIONS", "Deviation", "explain_values", "for_parked", "nul_entities"]
