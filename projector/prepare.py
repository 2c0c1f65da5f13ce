"""What a schema-valid event still needs before replay can apply it: a handler, and upcasters
that run.

`validate` and `replay` both ask `EventChecks.after_schema`, so an event validate passes
is one replay applies: before, validate checked the schemas only, and said "300 of 300
events valid" of a log whose events replay then parked as having no handler, or as
refused by their upcaster (hooks.py) at run time.
"""

from __future__ import annotations

import os
from typing import Any

from events.catalog import HOOKS_FILE
from events.envelope import Event
from events.validation import INVALID, UNKNOWN, Problem, Validator, sample
from projector.handlers import Handler, Handlers, raised_at

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
            except Exception as exc:  # a bug of the upcaster's: this event is invalid
                reason = f"{where} raised {raised_at(exc, hooks)}"
                return (
                    given,
                    Problem(INVALID, event.position, event.event_id, event.name, reason, path=""),
                    True,
                )
            refused = (
                self.validator.refusal(to_name, args)
                if isinstance(args, dict)
                else (f"{sample(args)} is not an object (args are a JSON object)", "$", "")
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


__all__ = ["NO_HANDLER", "EventChecks"]
