"""A batch's loops over its events, compiled with mypyc (events/_native.py).

`projector.replay.Projection` runs three loops an event at a time: finding each
validated event's handler (`prepare_events`), collecting the keys of the rows a slice's
handlers read (`collect_keys`), and applying the events (`apply_events`). Here they run
as compiled code; every uncommon case (an invalid event, a validator's note, an upcast,
an event without a handler, anything held back, a handler's failure) goes back to the
projection's own methods, which decide as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from events.envelope import Event
from events.validation import Note, Problem
from projector.errors import HookError, IntegrityBreak
from projector.handlers import Handler
from projector.store import RowStore

#: An event made ready to apply: its handler, its args (upcast when valid), its problem,
#: and the validator's notes (warnings) about it.
Prepared = tuple[Handler | None, Any, Problem | None, tuple[Note, ...]]
#: What `events.validation.Validator.check_many` says of an event: (args, problem, notes).
Checked = tuple[Any, Problem | None, tuple[Note, ...]]


def prepare_events(
    events: list[Event],
    checked: list[Checked],
    handlers: dict[str, Handler | None],
    find: Callable[[str], Handler | None],
    steps: dict[str, Any],
    explain: Callable[[Event, Any, Problem | None, tuple[Note, ...]], Prepared],
) -> list[Prepared]:
    """Each of EVENTS as CHECKED says, with its handler: a valid event without notes whose
    name has no upcast step and whose handler is known (HANDLERS, else FIND) is
    (handler, args, None, notes); any other goes to EXPLAIN (`Projection._prepared`).
    Raises ValueError when the two lists differ in length."""
    if len(checked) != len(events):
        raise ValueError(f"{len(events)} events, {len(checked)} checked")
    prepared: list[Prepared] = []
    for index in range(len(events)):
        event = events[index]
        args, problem, notes = checked[index]
        name = event.name
        handler: Handler | None = None
        if problem is None:
            handler = handlers[name] if name in handlers else find(name)
        if handler is None or notes or name in steps:
            prepared.append(explain(event, args, problem, notes))
        else:
            prepared.append((handler, args, None, notes))
    return prepared


def collect_keys(prepared: list[Prepared], tables: list[str]) -> dict[str, set[Any]]:
    """{table: keys of its rows the handlers of PREPARED read} for each of TABLES
    (`Handler.collect`), from the events that are valid and have a handler."""
    keys: dict[str, set[Any]] = {table: set() for table in tables}
    for handler, args, problem, _ in prepared:
        if problem is None and handler is not None:
            handler.collect(args, keys)
    return keys


def apply_events(
    store: RowStore,
    events: list[Event],
    prepared: list[Prepared],
    outcomes: list[str | None],
    projection: Any,
) -> None:
    """Apply each of EVENTS (PREPARED for it) to STORE's rows, appending its outcome to
    OUTCOMES: None when applied. The common case (valid, no notes, a handler, nothing
    held back: the PROJECTION's ``held_entities``, which applying an event may add to) is
    applied here (`run_handler`); every other case is the projection's to decide
    (`Projection.apply`). Raises ValueError when the two lists differ in length."""
    if len(prepared) != len(events):
        raise ValueError(f"{len(events)} events, {len(prepared)} prepared")
    for index in range(len(events)):
        event = events[index]
        ready = prepared[index]
        handler, current, problem, notes = ready
        if problem is not None or notes or projection.held_entities or handler is None:
            outcomes.append(projection.apply(event, ready))
            continue
        outcomes.append(run_handler(projection, store, event, handler, current))


def run_handler(
    projection: Any, store: RowStore, event: Event, handler: Handler, current: Any
) -> str | None:
    """Apply HANDLER to EVENT's args CURRENT on STORE's rows: None when applied, else the
    PROJECTION's outcome for its failure (`projector.replay.Projection`): ``_broken`` for
    rows that would break the target's integrity; ``_refused`` for values JSON allows but
    the handler cannot encode (rows SQLite refuses surface later, when the batch is
    written: `projector.store.RowError`) and for a hooks.py handler's HookError."""
    try:
        handler.apply(store, current)
    except IntegrityBreak as exc:
        return projection._broken(event, handler, current, exc)  # type: ignore[no-any-return]
    except (OverflowError, ValueError, TypeError, KeyError, RecursionError) as exc:
        reason = f"cannot be stored: {exc}"
        return projection._refused(event, reason, handler.entities(current))  # type: ignore[no-any-return]
    except HookError as exc:
        entities = handler.entities(current)
        return projection._refused(event, str(exc), entities, hook=True)  # type: ignore[no-any-return]
    return None


__all__ = [
    "Checked",
    "Prepared",
    "apply_events",
    "collect_keys",
    "prepare_events",
    "run_handler",
]
