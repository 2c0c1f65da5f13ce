"""Validation of every event against the JSON Schema kept in ``schemas/`` for its name.

Schemas are Draft 2020-12 documents, one per event name, kept in the app's catalog
(``schemas/<catalog>/``, see `events.catalog`). The hot path runs validators compiled by
fastjsonschema; when one rejects an event, jsonschema (the reference implementation)
explains why, so every error message comes from jsonschema and names the JSON path at
fault. Both run patterns as ECMA-262 (events/regex.py) and check the same formats, so
they never disagree.

The policy is LiveStore's, which decodes args with Effect Schema
(common/rematerialize-from-eventlog.ts): a `Struct` ignores keys it does not declare, at
every level, so an object schema with ``additionalProperties: false`` (a Struct) has
such keys dropped before its handler sees the args, and each is reported as an
`excess-key` warning (`Validator(strict_keys=True)` rejects them instead). A string
holding a lone UTF-16 surrogate is accepted with a `lone-surrogate` warning (the target
stores U+FFFD for it, as LiveStore's SQLite binding does), and text holding U+0000 with
a `nul-in-text` warning (LiveStore's binding cuts the text there; the target keeps it
whole: docs/deviations.md). Numbers are read as JSON.parse reads them: an integer
beyond 2^53 is the nearest double. The raw argsJson is never changed.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, NamedTuple

import fastjsonschema
import jsonschema
from jsonschema.exceptions import best_match

from events.catalog import (
    SCHEMAS_DIR,
    Catalog,
    bundled_catalog_names,
    detect_catalog,
)
from events.encoding import MAX_NESTING, is_iso_date
from events.envelope import Event, args_text
from events.errors import CatalogError
from events.fastpath import DECLINED, FastPath
from events.history import HistoryCheck
from events.regex import compile_pattern, ecma_schema

__all__ = [
    "SCHEMAS_DIR",
    "Catalog",
    "Note",
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

#: Warning kinds: what LiveStore accepts but a migration should say (docs/deviations.md).
EXCESS_KEY = "excess-key"
LONE_SURROGATE = "lone-surrogate"
NUL_IN_TEXT = "nul-in-text"


# Args nested deeper than MAX_NESTING (`events.encoding`) are unparseable (deviation
# deep-nesting). Python's json parser counts nesting against the interpreter's recursion
# limit, so how deep it reads would depend on the caller's stack, which differs between
# the compiled build and the pure one; below this limit neither build, nor anything the
# args go through after parsing (validation, encoding), comes near it.
NESTING_REASON = f"nested more than {MAX_NESTING} levels deep"
#: A JSON string (its brackets are text), and what is not a bracket.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: 10x faster
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


def nesting(text: str, limit: int = MAX_NESTING) -> int:
    """How deep TEXT's arrays and objects nest (brackets inside strings do not count),
    counted up to LIMIT + 1. Each round takes away every innermost pair at once (one
    regex pass over the brackets alone), so the cost is the brackets times the depth, at
    C speed. Brackets left without a pair (text cut short, not JSON) all count as levels:
    a parser goes that deep before it finds the text is not JSON."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = 0
    while brackets and depth <= limit:
        fewer = _INNERMOST.sub("", brackets)
        if len(fewer) == len(brackets):
            return depth + brackets.count("[") + brackets.count("{")
        brackets = fewer
        depth += 1
    return depth


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _js_int(text: str) -> int | float:
    """An integer as JSON.parse reads it: beyond 2^53 only the nearest double is kept
    (Infinity beyond the largest double)."""
    if len(text) < 16:
        return int(text)
    value = float(text)  # correctly rounded, as JavaScript's Number(text)
    return int(value) if -(2**53) <= value <= 2**53 else value


#: Built once: json.loads(..., parse_constant=...) builds a decoder and its scanner per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_JS_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_js_int)


def parse_args(args_json: str, *, js_numbers: bool = False) -> Any:
    """Parse argsJson as JavaScript's JSON.parse would: NaN and Infinity are not JSON.

    With JS_NUMBERS an integer beyond 2^53 is read as the double JavaScript reads (what
    LiveStore's materializers saw); without, exactly (for exports of the text). Raises
    ValueError for text that is not JSON, and (`NESTING_REASON`) for args nested more
    than `MAX_NESTING` levels, whatever the caller's stack (deviation deep-nesting): the
    replay, export and scaffold read the same args alike."""
    if type(args_json) is str:
        if (
            args_json.count("[") + args_json.count("{") > MAX_NESTING
            and nesting(args_json) > MAX_NESTING
        ):
            raise ValueError(NESTING_REASON)
        if not args_json.startswith("\ufeff"):
            return (_JS_DECODER if js_numbers else _DECODER).decode(args_json)
    # bytes, or a BOM: json.loads' own checks and messages.
    return json.loads(
        args_json, parse_constant=_reject_constant, parse_int=_js_int if js_numbers else None
    )


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
        if self.kind == INVALID and self.path:  # no path: not the args' fault (an upcaster's)
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


class Note(NamedTuple):
    """A warning about one event that is applied anyway: its kind, JSON path and detail."""

    kind: str
    path: str
    detail: str


NO_NOTES: Final[tuple[Note, ...]] = ()


#: Why a `livestore-date` string is refused (docs/deviations.md, date-text).
DATE_TEXT_REASON = "is not a date as Date.prototype.toISOString() writes it"
#: The formats the catalogs' schemas may assert, checked alike by both validators; any
#: other format is an annotation only (as jsonschema treats it by default).
FORMATS: dict[str, Callable[[Any], bool]] = {"livestore-date": is_iso_date}
#: fastjsonschema checks these itself unless overridden: each is overridden to pass.
_FAST_BUILTIN_FORMATS = ("regex", *fastjsonschema.draft07.CodeGeneratorDraft07.FORMAT_REGEXS)


def _always(_value: Any) -> bool:
    return True


@functools.lru_cache(maxsize=256)
def _compile(schema_text: str) -> Callable[[Any], Any]:
    formats = {**dict.fromkeys(_FAST_BUILTIN_FORMATS, _always), **FORMATS}
    return fastjsonschema.compile(json.loads(schema_text), formats=formats)  # type: ignore[no-any-return]


def _fast_validator(schema: dict[str, Any]) -> Callable[[Any], Any]:
    # The catalog's schemas use only keywords whose meaning is the same in Draft 7 and
    # 2020-12 (type, properties, required, additionalProperties, items, enum, pattern);
    # fastjsonschema compiles Draft 7. Its patterns run as Python regexes, so they are
    # rewritten to behave as ECMA-262 ones (events/regex.py). tests/test_validation.py
    # proves the two validators agree.
    draft7 = {k: v for k, v in ecma_schema(schema).items() if k != "$id"}
    draft7["$schema"] = "http://json-schema.org/draft-07/schema#"
    return _compile(json.dumps(draft7, sort_keys=True))


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """jsonschema's `pattern`, matched as ECMA-262 (the message shows the schema's pattern)."""
    if validator.is_type(instance, "string") and not compile_pattern(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _ecma_pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    """jsonschema's `patternProperties`, with keys matched as ECMA-262."""
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        regex = compile_pattern(pattern)
        for key, value in instance.items():
            if regex.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


#: Draft 2020-12 as jsonschema implements it, with ECMA-262 patterns (JSON Schema's own).
ReferenceValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {"pattern": _ecma_pattern, "patternProperties": _ecma_pattern_properties},
)
FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
for _name, _check in FORMATS.items():
    FORMAT_CHECKER.checks(_name)(_check)


def reference_validator(schema: dict[str, Any]) -> Any:
    """jsonschema's validator for SCHEMA as the project runs it: ECMA-262 patterns, FORMATS."""
    return ReferenceValidator(schema, format_checker=FORMAT_CHECKER)


def fast_validator(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """fastjsonschema's validator for SCHEMA as the hot path runs it (raises
    fastjsonschema.JsonSchemaException when ARGS break it)."""
    return _fast_validator(schema)


def _is_closed(schema: dict[str, Any]) -> bool:
    return schema.get("additionalProperties") is False


def strip_excess(schema: Any, value: Any, found: list[str], path: str = "$") -> Any:
    """VALUE without the keys an object schema with ``additionalProperties: false`` does
    not declare (in ``properties`` or ``patternProperties``), at every level: what
    Effect's Struct decode keeps. Each dropped key's JSON path is appended to FOUND.
    VALUE itself is not changed; a copy is returned where anything was dropped.
    """
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        patterns = schema.get("patternProperties") or {}
        closed = _is_closed(schema)
        extra = schema.get("additionalProperties")
        out: dict[str, Any] | None = None
        for index, (key, item) in enumerate(value.items()):
            sub = props.get(key)
            if sub is None and patterns:
                sub = next((s for p, s in patterns.items() if compile_pattern(p).search(key)), None)
            if sub is None and closed:
                found.append(f"{path}.{key}")
                if out is None:
                    out = dict(itertools.islice(value.items(), index))
                continue
            if sub is None and isinstance(extra, dict):
                sub = extra
            new = strip_excess(sub, item, found, f"{path}.{key}") if sub is not None else item
            if out is None and new is not item:
                out = dict(itertools.islice(value.items(), index))
            if out is not None:
                out[key] = new
        return value if out is None else out
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, dict):
        new_items = [strip_excess(items, v, found, f"{path}[{i}]") for i, v in enumerate(value)]
        if any(a is not b for a, b in zip(new_items, value, strict=True)):
            return new_items
    return value


def _text_notes(value: Any, path: str, notes: list[Note]) -> None:
    """Notes for strings holding a lone surrogate or U+0000 (keys included), in VALUE."""
    if isinstance(value, str):
        _text_note(value, path, notes)
    elif isinstance(value, dict):
        for key, item in value.items():
            _text_note(key, f"{path} (a key)", notes)
            _text_notes(item, f"{path}.{key}", notes)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _text_notes(item, f"{path}[{index}]", notes)


def _text_note(text: str, path: str, notes: list[Note]) -> None:
    if text.isascii():
        if "\x00" in text:
            notes.append(Note(NUL_IN_TEXT, path, _NUL_DETAIL))
        return
    if "\x00" in text:
        notes.append(Note(NUL_IN_TEXT, path, _NUL_DETAIL))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        notes.append(Note(LONE_SURROGATE, path, _LONE_DETAIL))


_NUL_DETAIL = (
    "text holds U+0000: kept whole (LiveStore's SQLite binding stores text columns cut there)"
)
_LONE_DETAIL = (
    "text holds a lone UTF-16 surrogate: stored as LiveStore stores it "
    "(U+FFFD in a text column, the escape in JSON)"
)


class Validator:
    """Checks events against a catalog: the args as decoded, the problem, and notes.

    With STRICT_KEYS a key a Struct does not declare is a problem (invalid), as the
    schemas' ``additionalProperties: false`` says; by default it is dropped with a note,
    as LiveStore does. With FAST (the default) `events.fastpath` answers first for the
    events it accepts unchanged and without notes; the result is the same either way
    (tests/test_fastpath.py), only cheaper.
    """

    def __init__(self, catalog: Catalog, *, strict_keys: bool = False, fast: bool = True):
        self.catalog = catalog
        self.strict_keys = strict_keys
        self.fastpath = FastPath(catalog.schemas, FORMATS) if fast else None
        # Compiled when an event first needs it: the fast path answers for most logs, and
        # compiling every schema up front took about 40 ms of each run.
        self._fast: dict[str, Callable[[Any], Any]] = {}
        self._reference = {name: reference_validator(doc) for name, doc in catalog.schemas.items()}

    def check(self, event: Event) -> tuple[Any, Problem | None, tuple[Note, ...]]:
        """(args, problem or None, notes). ARGS are what the handler gets: decoded as
        JSON.parse does, with excess keys dropped (unless strict_keys)."""
        if self.fastpath is not None:
            args = self.fastpath.accept(event.name, event.args_json)
            if args is not DECLINED:
                return args, None, NO_NOTES
        return self._explain_check(event)

    def _fast_for(self, name: str) -> Callable[[Any], Any] | None:
        """NAME's compiled validator (fastjsonschema), or None for a name without a schema."""
        fast = self._fast.get(name)
        if fast is None:
            schema = self.catalog.schemas.get(name)
            if schema is None:
                return None
            try:
                fast = self._fast[name] = _fast_validator(schema)
            except (SyntaxError, RecursionError) as exc:  # Python's limits on generated code
                raise CatalogError(
                    f"the schema of {name} is nested too deeply for its validator "
                    f"(fastjsonschema: {exc.msg if isinstance(exc, SyntaxError) else exc})"
                ) from None
        return fast

    def _explain_check(self, event: Event) -> tuple[Any, Problem | None, tuple[Note, ...]]:
        """`check` without the fast path: fastjsonschema decides, jsonschema explains.

        Raises `TextNotUtf8` for argsJson read as bytes that are not UTF-8
        (`events.envelope.args_text`): every event the fast path does not parse comes here.
        """
        text = args_text(event)
        name = event.name
        fast = self._fast_for(name) if isinstance(name, str) else None
        if fast is None:
            return (
                None,
                Problem(UNKNOWN, event.position, event.event_id, str(name), "unknown event name"),
                NO_NOTES,
            )
        if not isinstance(text, str):
            # A BLOB comes as a `Blob` (events.sqlite_source): named as the bytes it is.
            kind = "bytes" if isinstance(text, bytes) else type(text).__name__
            return (
                None,
                Problem(
                    UNPARSEABLE,
                    event.position,
                    event.event_id,
                    name,
                    f"argsJson is not text ({kind})",
                ),
                NO_NOTES,
            )
        try:
            args = parse_args(text, js_numbers=True)
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            problem = Problem(
                UNPARSEABLE,
                event.position,
                event.event_id,
                name,
                f"argsJson is not JSON ({reason[:120]})",
                value=sample(text),
            )
            return None, problem, NO_NOTES
        notes: list[Note] = []
        try:
            fast(args)
        except (fastjsonschema.JsonSchemaException, RecursionError) as exc:
            args, refused = self._retry_without_excess(event, args, exc, notes)
            if refused is not None:
                return args, refused, NO_NOTES
        if "\\u" in text:  # JSON can spell U+0000 and a lone surrogate only so
            _text_notes(args, "$", notes)
        return args, None, tuple(notes) if notes else NO_NOTES

    def check_many(
        self, events: Sequence[Event], lap: Callable[[str], None] | None = None
    ) -> list[tuple[Any, Problem | None, tuple[Note, ...]]]:
        """``[check(e) for e in events]``, with the fast path's parsing and validation each
        run over the whole list; LAP, when given, is called with "parse" and "validate"
        as each ends (`projector.profile`)."""
        if self.fastpath is None:
            checked = [self._explain_check(e) for e in events]
            if lap is not None:
                lap("validate")
            return checked
        accepted = self.fastpath.accept_many(events, lap)
        check = self._explain_check  # the fast path has declined these already
        checked = [
            (args, None, NO_NOTES) if args is not DECLINED else check(event)
            for event, args in zip(events, accepted, strict=True)
        ]
        if lap is not None:
            lap("validate")
        return checked

    def _retry_without_excess(
        self, event: Event, args: Any, error: Exception, notes: list[Note]
    ) -> tuple[Any, Problem | None]:
        """ARGS rejected by the fast validator: drop excess keys (unless strict) and try
        again; return the args to use and the problem, if one remains."""
        if not self.strict_keys and not isinstance(error, RecursionError):
            found: list[str] = []
            try:
                stripped = strip_excess(self.catalog.schemas[event.name], args, found)
            except RecursionError:
                found = []
            if found:
                try:
                    _fast_validator(self.catalog.schemas[event.name])(stripped)
                except (fastjsonschema.JsonSchemaException, RecursionError) as again:
                    # Decided as LiveStore decides (on the args without them), but said, or
                    # the value shown would not be the one stored.
                    problem = self.explain(event, stripped, again)
                    dropped = ", ".join(label(p) for p in found[:3]) + (
                        f" and {len(found) - 3} more" if len(found) > 3 else ""
                    )
                    return stripped, replace(
                        problem,
                        reason=f"{problem.reason} (in the args without {dropped}: not in the "
                        "schema, dropped as LiveStore drops them)",
                    )
                for path in found:
                    detail = f"key {label(path.rsplit('.', 1)[-1])} is not in the schema: dropped"
                    notes.append(Note(EXCESS_KEY, path, detail))
                return stripped, None
        return args, self.explain(event, args, error)

    def refusal(self, name: str, args: Any) -> tuple[str, str, str] | None:
        """Why ARGS, an upcaster's output (`projector.replay`), are not args of events named
        NAME, as (reason, JSON path, value sample); None when they are. They are checked
        as they stand (no excess key dropped), except that None may stand anywhere: an
        upcaster gives None for what the old version lacks and its row stores as NULL
        (ai-desk's v1.PersonaCreated has no voice, which v2 requires), so only the
        schema's complaints about other values (a wrong type, a missing key, a value out
        of an enum) refuse them. NAME must have a schema."""
        fast = self._fast_for(name)
        assert fast is not None, name
        try:
            fast(args)
            return None
        except (fastjsonschema.JsonSchemaException, RecursionError):
            pass
        try:
            errors = [e for e in self._reference[name].iter_errors(args) if e.instance is not None]
        except RecursionError:
            return "nested too deeply", "$", ""
        if not errors:
            return None
        error = best_match(errors)
        assert error is not None
        reason = error.message if len(error.message) <= 160 else error.message[:159] + "…"
        return reason, error.json_path, sample(error.instance)

    def fits(self, name: str, path: tuple[str, ...], value: Any) -> bool:
        """Whether VALUE is what the schema of events named NAME allows at PATH (names of
        nested properties), e.g. an invalid event's key, before its row is trusted. False
        where the schema does not say (no such property)."""
        reference = self._reference.get(name)
        if reference is None:
            return False
        schema: Any = reference.schema
        for step in path:
            properties = schema.get("properties") if isinstance(schema, dict) else None
            schema = properties.get(step) if isinstance(properties, dict) else None
        if not isinstance(schema, (dict, bool)) or not path:
            return False
        try:
            return bool(reference.evolve(schema=schema).is_valid(value))
        except Exception:  # a subschema that cannot stand alone (a $ref to its root)
            return False

    def explain(self, event: Event, args: Any, fast_error: Exception | None = None) -> Problem:
        """jsonschema's account of why ARGS break the schema of the event's name (or, should
        it find none, the fast validator's own: both reasons are true)."""
        try:
            error = best_match(self._reference[event.name].iter_errors(args))
        except RecursionError:
            error = None
            fast_error = RecursionError()
        if error is None:
            if isinstance(fast_error, fastjsonschema.JsonSchemaValueException):
                path = "$" + str(fast_error.name or "data")[len("data") :]
                reason = f"{fast_error.message} (fastjsonschema)"
                return Problem(
                    INVALID,
                    event.position,
                    event.event_id,
                    event.name,
                    reason[:160],
                    path,
                    sample(fast_error.value),
                )
            return Problem(
                INVALID, event.position, event.event_id, event.name, "nested too deeply", "$"
            )
        reason = error.message
        if error.validator in ("pattern", "format") and isinstance(error.schema, dict):
            if error.schema.get("format") == "livestore-date":
                reason = f"{sample(error.instance)} {DATE_TEXT_REASON}"
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
            where = f"{problem.path}: " if problem.path else ""  # an upcaster names none
            key = f"{problem.kind}: {problem.name}: {where}{_generic(problem.reason)}"
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


def note_where(event: Event, note: Note) -> dict[str, Any]:
    """Where a note was found, for a warning example: position, event id, name, JSON path."""
    name = event.name if isinstance(event.name, str) else str(event.name)
    return {"position": event.position, "eventId": event.event_id, "name": name, "path": note.path}


def note_detail(event: Event, note: Note) -> str:
    """A note as one line naming its event: `e13 (#16, v1.MemoryUpdated) at $.pinned: ...`."""
    return _one_line(
        f"{event.event_id} (#{event.position}, {label(event.name)}) at {note.path}: {note.detail}"
    )


def validate_events(
    events: Iterable[Event],
    validator: Validator,
    then: Callable[[Event, Any], Problem | None] | None = None,
    **kw: Any,
) -> ValidationReport:
    """Check every event against its schema; holes in the history's shape (a missing
    global seq num, a parent that is not in the log: `events.history`) and the
    validator's notes (excess keys dropped, lone surrogates, U+0000) are warnings.

    THEN, when given, is asked of every event its schema accepts, with its args: the
    problem a replay would still find with it (no handler, an upcaster that fails:
    `projector.prepare.EventChecks`), or None."""
    report = ValidationReport(**kw)
    history = HistoryCheck()
    for event in events:
        report.total += 1
        for kind, detail, position, event_id in history.check((event,)):
            report.warn(kind, detail, position=position, eventId=event_id)
        args, problem, notes = validator.check(event)
        if problem is None and then is not None:
            problem = then(event, args)
        if problem is None:
            report.valid += 1
        else:
            report.add(problem)
        for note in notes:
            report.warn(note.kind, note_detail(event, note), **note_where(event, note))
    return report
