"""What a schema-valid event still needs before replay can apply it: a handler, and upcasters
that run.

`validate` and `replay` both ask `EventChecks.after_schema`, so validate finds the events
replay parks for want of a handler or for their upcaster (hooks.py): before, validate
checked the schemas only, and said "300 of 300 events valid" of a log whose events replay
then parked so. What only the target's tables refuse (a column's type, NOT NULL, a CHECK,
a codec, a reference) shows in a replay (`--dry-run`), not here.
"""

from __future__ import annotations

import math
import os
from typing import Any

from events.catalog import HOOKS_FILE
from events.envelope import Event
from events.validation import INVALID, UNKNOWN, Problem, Validator, sample
from projector.handlers import Handler, Handlers, hook_bug, raised_at

NO_HANDLER = "no handler for this event"


class EventChecks:
    """A catalog's handlers and upcasters, asked of events its schemas accept.

    VALIDATOR is the catalog's (`events.validation.Validator`), HANDLERS its compiled
    projection (`projector.handlers.compile_catalog`).
    """

    def __init__(self, validator: Validator, handlers: Handlers):
        self.validator = validator
        self.handlers = handlers
        self.upcasters = validator.catalog.upcasters
        #: Event name -> its handler or None, as found (`handler`).
        self.found: dict[str, Handler | None] = {}

    def handler(self, name: str) -> Handler | None:
        """The handler of events named NAME (the name their upcasters lead to), or None."""
        try:
            return self.found[name]
        except KeyError:
            found = self.found[name] = self.handlers.for_name(name)
            return found

    def after_schema(self, event: Event, args: Any) -> tuple[Any, Problem | None, bool]:
        """(args as current, problem or None, whether an upcaster failed) of EVENT, whose
        schema accepted ARGS: an UNKNOWN problem when no handler takes its name, an
        INVALID one when an upcaster raises or gives args the next version's schema
        refuses (the reason names hooks.py, the step, and the exception's line or the
        schema's complaint). A refused event keeps its own ARGS, which name its rows."""
        if not isinstance(event.name, str) or self.handler(event.name) is None:
            return (
                args,
                Problem(UNKNOWN, event.position, event.event_id, event.name, NO_HANDLER),
                False,
            )
        return self._upcast(event, args)

    def _upcast(self, event: Event, args: Any) -> tuple[Any, Problem | None, bool]:
        name = event.name
        steps = self.upcasters.steps
        if name not in steps:
            return args, None, False
        # Resolved, as the reasons of hooks.py handlers (`projector.handlers._python`).
        hooks = os.path.realpath(self.validator.catalog.directory / HOOKS_FILE)
        given = args
        while name in steps:
            to_name, step = steps[name]
            where = f"{hooks}: upcaster {getattr(step, '__name__', '?')} ({name} -> {to_name})"
            try:
                args = step(args)
            except BaseException as exc:
                if not hook_bug(exc):  # Ctrl-C, a SIGTERM: the run stops
                    raise
                reason = f"{where} raised {raised_at(exc, hooks)}"
                return (
                    given,
                    Problem(INVALID, event.position, event.event_id, event.name, reason, path=""),
                    True,
                )
            refused = (
                (f"{sample(args)} is not an object (args are a JSON object)", "$", "")
                if not isinstance(args, dict)
                else _json_refusal(args) or self.validator.refusal(to_name, args)
            )
            if refused is not None:
                why, path, value = refused
                reason = f"{where} gives args the schema of {to_name} refuses: {why}"
                problem = Problem(
                    INVALID, event.position, event.event_id, event.name, reason, path, value
                )
                return given, problem, True
            name = to_name
        return args, None, False


def _json_refusal(args: dict[str, Any]) -> tuple[str, str, str] | None:
    """`_not_json` of an upcaster's output ARGS, or why it cannot be looked at whole: it
    holds itself, or nests deeper than Python's recursion limit (no JSON text does)."""
    try:
        return _not_json(args, "$")
    except RecursionError:
        return ("it holds itself, or nests too deeply for JSON", "$", "")


def _not_json(value: Any, path: str) -> tuple[str, str, str] | None:
    """(reason, JSON path, sample) of the first part of VALUE, an upcaster's output, that
    no JSON text holds (NaN or an infinity, an integer beyond what JSON.parse reads as a
    number without loss, a set, bytes, any other object), or None. Args are JSON: an
    upcaster writes what a newer app would have written, which LiveStore stores as
    JSON (None may stand anywhere: `events.validation.Validator.refusal`)."""
    kind = type(value)
    if value is None or kind in (str, bool):
        return None
    if kind is int:
        if -(2**63) <= value < 2**63:
            return None
        return (f"{value} is beyond what a column or JSON.parse holds exactly", path, "")
    if kind is float:
        if math.isfinite(value):
            return None
        return (f"{value} is no JSON number", path, "")
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return (f"a key {sample(key)} is not text", path, "")
            found = _not_json(item, f"{path}.{key}")
            if found is not None:
                return found
        return None
    if kind is list:
        for index, item in enumerate(value):
            found = _not_json(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return (f"a {kind.__name__} is no JSON value", path, "")


__all__ = ["NO_HANDLER", "EventChecks"]
