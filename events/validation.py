"""Validation of every event against the JSON Schema kept in ``schemas/`` for its name.

Schemas are Draft 2020-12 documents, one per event name, kept in the app's catalog
(``schemas/<catalog>/``, see `events.catalog`). The hot path runs validators compiled by
fastjsonschema; when one rejects an event, jsonschema (the reference implementation)
explains why, so every error message comes from jsonschema and names the JSON path at fault.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema.exceptions import best_match

from events.catalog import (
    SCHEMAS_DIR,
    Catalog,
    bundled_catalog_names,
    detect_catalog,
)
from events.envelope import Event
from events.fastpath import DECLINED, FastPath
from events.history import HistoryCheck

__all__ = [
    "SCHEMAS_DIR",
    "Catalog",
    "Problem",
    "ValidationReport",
    "Validator",
    "bundled_catalog_names",
    "detect_catalog",
    "validate_events",
]

SAMPLE_CHARS = 80

UNKNOWN = "unknown"
INVALID = "invalid"
UNPARSEABLE = "unparseable"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: Built once: json.loads(..., parse_constant=...) builds a decoder and its scanner per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_args(args_json: str) -> Any:
    """Parse argsJson as JavaScript's JSON.parse would: NaN and Infinity are not JSON."""
    if type(args_json) is str and not args_json.startswith("\ufeff"):
        return _DECODER.decode(args_json)
    # bytes, or a BOM: json.loads' own checks and messages.
    return json.loads(args_json, parse_constant=_reject_constant)


def sample(value: Any, limit: int = SAMPLE_CHARS) -> str:
    """A short, single-line rendering of a value for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape_surrogates(text: str) -> str:
    """TEXT as valid Unicode: a lone surrogate is kept as its escape (\\ud800), which is how
    JSON spelled it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _one_line(text: str) -> str:
    """TEXT as one line of valid Unicode: a hostile event's name or keys may hold a line
    break or a lone surrogate, which would split the message or fail to be stored."""
    return escape_surrogates(text.replace("\n", "\\n").replace("\r", "\\r"))


def label(text: str) -> str:
    """A name in a message: verbatim when short and printable, else a sample."""
    return text if len(text) <= SAMPLE_CHARS and text.isprintable() else sample(text)


@dataclass(frozen=True)
class Problem:
    """Why one event cannot be applied as it stands."""

    kind: str  # unknown | invalid | unparseable
    position: int
    event_id: str
    name: str
    reason: str
    path: str = "$"
    value: str = ""

    def message(self, where: str = "") -> str:
        place = f" in {where}" if where else ""
        text = f"{self.event_id} (#{self.position}, {label(self.name)}){place}: {self.reason}"
        if self.kind == INVALID:
            path = self.path if len(self.path) <= 160 else self.path[:159] + "…"
            text += f" at {path}"
            if self.value:
                text += f" (value: {self.value})"
        return _one_line(text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "position": self.position,
            "eventId": self.event_id,
            "name": self.name,
            "path": self.path,
            "reason": self.reason,
            "value": self.value,
        }


@functools.lru_cache(maxsize=256)
def _compile(schema_text: str) -> Callable[[Any], Any]:
    return fastjsonschema.compile(json.loads(schema_text))  # type: ignore[no-any-return]


def _fast_validator(schema: dict[str, Any]) -> Callable[[Any], Any]:
    # The catalog's schemas use only keywords whose meaning is the same in Draft 7 and
    # 2020-12 (type, properties, required, additionalProperties, items, enum, pattern);
    # fastjsonschema compiles Draft 7. tests/test_validation.py proves the two agree.
    draft7 = {k: v for k, v in schema.items() if k != "$id"}  # only top-level keys change
    draft7["$schema"] = "http://json-schema.org/draft-07/schema#"
    return _compile(json.dumps(draft7, sort_keys=True))


def _lone_surrogate_path(value: Any, path: str = "$") -> str | None:
    """JSON can escape a lone UTF-16 surrogate; SQLite text cannot hold one."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate_path(key, path) or _lone_surrogate_path(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _lone_surrogate_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


class Validator:
    """Checks events against a catalog: returns the parsed args, or the problem.

    With FAST (the default) `events.fastpath` answers first for the events it accepts;
    the result is the same either way (tests/test_fastpath.py), only cheaper.
    """

    def __init__(self, catalog: Catalog, *, fast: bool = True):
        self.catalog = catalog
        self.fastpath = FastPath(catalog.schemas) if fast else None
        self._fast = {name: _fast_validator(doc) for name, doc in catalog.schemas.items()}
        self._reference = {
            name: jsonschema.Draft202012Validator(doc) for name, doc in catalog.schemas.items()
        }

    def check(self, event: Event) -> tuple[Any, Problem | None]:
        """(args parsed, None) for a valid event; (args or None, the problem) otherwise."""
        name = event.name
        if self.fastpath is not None:
            args = self.fastpath.accept(name, event.args_json)
            if args is not DECLINED:
                return args, None
        fast = self._fast.get(name) if isinstance(name, str) else None
        if fast is None:
            return None, Problem(
                UNKNOWN, event.position, event.event_id, str(name), "unknown event name"
            )
        if not isinstance(event.args_json, str):
            kind = type(event.args_json).__name__
            return None, Problem(
                UNPARSEABLE, event.position, event.event_id, name, f"argsJson is not text ({kind})"
            )
        try:
            args = parse_args(event.args_json)
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            return None, Problem(
                UNPARSEABLE,
                event.position,
                event.event_id,
                name,
                f"argsJson is not JSON ({reason[:120]})",
                value=sample(event.args_json),
            )
        try:
            fast(args)
        except (fastjsonschema.JsonSchemaException, RecursionError):
            return args, self.explain(event, args)
        if "\\u" in event.args_json:
            path = _lone_surrogate_path(args)
            if path:
                return args, Problem(
                    INVALID,
                    event.position,
                    event.event_id,
                    name,
                    "string holds a lone UTF-16 surrogate (not valid Unicode text)",
                    path,
                )
        return args, None

    def check_many(
        self, events: Sequence[Event], lap: Callable[[str], None] | None = None
    ) -> list[tuple[Any, Problem | None]]:
        """``[check(e) for e in events]``, with the fast path's parsing and validation each
        run over the whole list; LAP, when given, is called with "parse" and "validate"
        as each ends (`projector.profile`)."""
        if self.fastpath is None:
            checked = [self.check(e) for e in events]
            if lap is not None:
                lap("validate")
            return checked
        accepted = self.fastpath.accept_many(events, lap)
        check = self.check
        checked = [
            (args, None) if args is not DECLINED else check(event)
            for event, args in zip(events, accepted, strict=True)
        ]
        if lap is not None:
            lap("validate")
        return checked

    def explain(self, event: Event, args: Any) -> Problem:
        """jsonschema's account of why ARGS break the schema of the event's name."""
        try:
            error = best_match(self._reference[event.name].iter_errors(args))
        except RecursionError:
            error = None
        if error is None:
            return Problem(
                INVALID, event.position, event.event_id, event.name, "nested too deeply", "$"
            )
        reason = error.message
        if len(reason) > 160:
            reason = reason[:159] + "…"
        return Problem(
            INVALID,
            event.position,
            event.event_id,
            event.name,
            reason,
            error.json_path,
            sample(error.instance),
        )


@dataclass
class ValidationReport:
    """What `projector validate` found: counts by outcome and the first examples."""

    total: int = 0
    valid: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    examples: list[Problem] = field(default_factory=list)
    max_examples: int = 10
    #: What LiveStore would accept but deserves a word (e.g. a history gap), by kind.
    warnings: Counter[str] = field(default_factory=Counter)
    warning_examples: list[dict[str, Any]] = field(default_factory=list)

    def warn(self, kind: str, detail: str, **where: Any) -> None:
        """Count a warning of KIND; keep the first `max_examples` with DETAIL and WHERE."""
        self.warnings[kind] += 1
        if len(self.warning_examples) < self.max_examples:
            self.warning_examples.append({"kind": kind, **where, "detail": detail})

    def add(self, problem: Problem) -> None:
        self.by_kind[problem.kind] += 1
        key = f"{problem.kind}: {problem.name}: {problem.reason}"
        if problem.kind == INVALID:
            key = f"{problem.kind}: {problem.name}: {problem.path}: {_generic(problem.reason)}"
        self.by_reason[key] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(problem)

    @property
    def ok(self) -> bool:
        return self.valid == self.total


def _generic(reason: str) -> str:
    """Group messages that differ only by the offending value ('x' is not of type ...)."""
    for marker in (" is not of type ", " is not one of ", " does not match "):
        index = reason.find(marker)
        if index > 0:
            return "<value>" + reason[index:]
    return reason


def validate_events(events: Iterable[Event], validator: Validator, **kw: Any) -> ValidationReport:
    """Check every event against its schema; holes in the history's shape (a missing
    global seq num, a parent that is not in the log: `events.history`) are warnings."""
    report = ValidationReport(**kw)
    history = HistoryCheck()
    for event in events:
        report.total += 1
        for kind, detail, position, event_id in history.check((event,)):
            report.warn(kind, detail, position=position, eventId=event_id)
        _, problem = validator.check(event)
        if problem is None:
            report.valid += 1
        else:
            report.add(problem)
    return report
