"""Parsing and validation of argsJson in compiled code: a filter in front of `events.validation`.

`FastPath.accept` parses an event's argsJson with msgspec and validates it with the Rust
validator jsonschema_rs, about four times cheaper than ``json`` + fastjsonschema. It
answers only "valid, and these are its args" or `DECLINED`; on DECLINED the caller runs
the explaining path (`events.validation.Validator.check`), which decides and explains.
So verdicts are the explaining path's by construction, provided an accepted event is one
the explaining path accepts with equal args. What makes that hold:

* **Parsing.** msgspec's decoder refuses whatever ``json`` refuses (invalid JSON, NaN,
  Infinity, a BOM, raw control characters, trailing data) and builds the same objects
  for the rest (dicts in key order, the last of duplicate keys, Python ints of any size,
  correctly rounded floats). Where the two differ, msgspec refuses and the event is
  declined: numbers beyond the float range (``json`` reads infinity) and lone UTF-16
  surrogates (``json`` keeps them; the explaining path reports them). msgspec's nesting
  limit is a few levels deeper than ``json``'s, which also depends on the caller's
  stack, so where an event's schema admits args nested more than `MAX_BRACKETS` levels
  deep (`max_depth`), text with more than `MAX_BRACKETS` opening brackets is declined
  unparsed. Where it does not, deeper text fails validation if msgspec parses it, and is
  declined either way.
  Text with a ``\\u0000`` escape is declined too: JSON spells U+0000 only so, and the
  explaining path notes it (`events.validation`). A lone surrogate, which JSON also
  spells only as an escape and the explaining path notes too, msgspec refuses. Other
  escapes (JSON.stringify writes control characters as ``\\u0007``, ``\\u001b``...)
  parse to the same text either way.
* **Text as bytes.** A replay reads a STRICT eventlog's argsJson as the bytes of its
  UTF-8 (`events.sqlite_source.SqliteEventlog.events`). msgspec parses bytes to the
  objects it parses their text to, and refuses bytes that are not UTF-8 (in strings or
  out of them), so those are declined; the explaining path decodes them first
  (`events.envelope.args_text`), as Python's sqlite3 decodes TEXT.
* **Numbers.** JSON.parse reads an integer beyond 2^53 as the nearest double
  (`events.validation.parse_args`), msgspec exactly; so the schema copy bounds every
  number to [-2^53, 2^53] (where the two read alike), and events whose schema lets a
  number through unchecked (a value of any type) are accepted only when their text holds
  no integer of 16 digits or more.
* **Validation.** jsonschema_rs gets a copy of each schema that accepts no more than
  fastjsonschema does with the original (`strict_copy`): only the keywords listed in
  `KEYWORDS` are allowed (a schema with any other gets no fast path: its events always
  take the explaining path), ``enum`` values must be text, booleans or null (JSON and
  Python equality agree on those), and each ``pattern`` must be in a plain subset of
  regular expressions, rewritten so it matches no more than Python's ``re`` (and
  ECMA-262) would: ``\\d`` becomes ``[0-9]`` (Rust's ``\\d`` knows newer Unicode digits
  than Python's) and ``.`` excludes every line terminator.

tests/test_fastpath.py checks the agreement on every real event of every fixture, on
mutated and generated events, for every bundled catalog.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import jsonschema_rs
import msgspec

from events.envelope import Event

#: Called with a phase's name when it ends (`projector.profile.Phases.lap`).
Lap = Callable[[str], None]

#: What `FastPath.accept` returns for an event the explaining path must decide.
DECLINED: Final[Any] = object()
#: Text with more opening brackets than this is declined before parsing: ``json`` counts
#: nesting against Python's recursion limit (what is left of it at the caller's depth),
#: msgspec against a fixed limit of its own.
MAX_BRACKETS: Final = 64
#: The schema keywords whose meaning jsonschema_rs and fastjsonschema share on parsed
#: JSON (with the restrictions of `strict_copy`).
KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "title",
        "description",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "pattern",
        "format",
    }
)
_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
#: ``.`` as ECMA-262 means it: anything but a line terminator (Python's and Rust's ``.``
#: exclude only ``\n``).
_ANY = "[^\\n\\r\\u2028\\u2029]"
#: Escapes of one punctuation character: the character itself in every dialect.
_PUNCTUATION = set("\\.-+*?()[]{}|^$/")


class Unsupported(ValueError):
    """A schema (or a pattern in it) outside what the fast path can decide."""


def _pattern(pattern: str) -> str:
    """PATTERN rewritten to match no more than Python's ``re.search`` or ECMA-262 would.

    The subset: ASCII literals, ``\\d``, escaped punctuation, ``.``, bracket classes of
    those (with ranges, maybe negated), groups ``(...)`` and ``(?:...)``, ``|``, the
    anchors ``^`` and ``$``, and the quantifiers ``? * + {n} {n,} {n,m}`` (maybe lazy).
    Raises Unsupported for anything else (lookaround, backreferences, flags, ``\\w``,
    ``\\s``, ``\\b``, ``\\p{..}``, non-ASCII).
    """
    if not pattern.isascii():
        raise Unsupported(f"pattern {pattern!r}: not ASCII")
    out: list[str] = []
    index = 0
    in_class = False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            escaped = pattern[index + 1 : index + 2]
            if escaped == "d":
                out.append("0-9" if in_class else "[0-9]")
            elif escaped in _PUNCTUATION:
                out.append("\\" + escaped)
            else:
                raise Unsupported(f"pattern {pattern!r}: escape \\{escaped}")
            index += 2
            continue
        if in_class:
            if char == "[":
                raise Unsupported(f"pattern {pattern!r}: '[' inside a class")
            if char == "]":
                in_class = False
            out.append(char)
        elif char == "[":
            in_class = True
            out.append(char)
            if pattern.startswith("^", index + 1):
                out.append("^")
                index += 1
            if pattern.startswith("]", index + 1):
                raise Unsupported(f"pattern {pattern!r}: ']' first in a class")
        elif char == "(":
            if pattern.startswith("?", index + 1) and not pattern.startswith("?:", index + 1):
                raise Unsupported(f"pattern {pattern!r}: group (?{pattern[index + 2]}")
            out.append(char)
        elif char == ".":
            out.append(_ANY)
        elif char.isprintable():
            out.append(char)
        else:
            raise Unsupported(f"pattern {pattern!r}: character {char!r}")
        index += 1
    if in_class:
        raise Unsupported(f"pattern {pattern!r}: unclosed class")
    rewritten = "".join(out)
    try:
        re.compile(rewritten)
    except re.error as exc:
        raise Unsupported(f"pattern {pattern!r}: {exc}") from None
    return rewritten


def strict_copy(
    schema: Any,
    where: str = "$",
    formats: frozenset[str] = frozenset(),
) -> Any:
    """SCHEMA for jsonschema_rs, accepting no more than fastjsonschema accepts SCHEMA.

    A ``format`` named in FORMATS is kept (the caller gives jsonschema_rs the same check the
    explaining path runs); any other is dropped, as it is an annotation only to the
    explaining path (`events.validation.FORMATS`). Raises Unsupported (naming the place)
    for a keyword outside `KEYWORDS`, an ``enum`` with numbers, arrays or objects, or a
    pattern outside `_pattern`'s subset.
    """
    if type(schema) is bool:
        return schema
    if type(schema) is not dict:
        raise Unsupported(f"{where}: a schema is an object or a boolean")
    unknown = set(schema) - KEYWORDS
    if unknown:
        raise Unsupported(f"{where}: keyword(s) {sorted(unknown)}")
    copy: dict[str, Any] = {}
    for keyword, value in schema.items():
        if keyword == "properties":
            if type(value) is not dict:
                raise Unsupported(f"{where}.properties: not an object")
            copy[keyword] = {k: strict_copy(v, f"{where}.{k}", formats) for k, v in value.items()}
        elif keyword in ("items", "additionalProperties"):
            copy[keyword] = strict_copy(value, f"{where}.{keyword}", formats)
        elif keyword == "format":
            if value in formats:
                copy[keyword] = value
        elif keyword == "enum":
            if type(value) is not list or not all(
                v is None or type(v) in (str, bool) for v in value
            ):
                raise Unsupported(f"{where}.enum: only text, booleans and null")
            copy[keyword] = value
        elif keyword == "pattern":
            if type(value) is not str:
                raise Unsupported(f"{where}.pattern: not text")
            copy[keyword] = _pattern(value)
        elif keyword == "type":
            names = value if type(value) is list else [value]
            if not names or not all(type(n) is str and n in _TYPES for n in names):
                raise Unsupported(f"{where}.type: {value!r}")
            copy[keyword] = value
            if "number" in names or "integer" in names:
                copy["minimum"], copy["maximum"] = -SAFE_INTEGER, SAFE_INTEGER
        elif keyword == "required":
            if type(value) is not list or not all(type(n) is str for n in value):
                raise Unsupported(f"{where}.required: not a list of names")
            copy[keyword] = value
        else:  # $schema, $id, title, description: no effect on what is accepted
            copy[keyword] = value
    return copy


def leaves_numbers_unchecked(schema: Any) -> bool:
    """Whether SCHEMA lets a number through somewhere without a ``type`` that names it
    (so `strict_copy`'s bounds do not reach it): a schema of any value, an object that
    allows undeclared keys, an array without ``items``."""
    if type(schema) is not dict:
        return schema is not False
    if "type" not in schema:
        return "enum" not in schema
    names = schema["type"] if type(schema["type"]) is list else [schema["type"]]
    if "object" in names:
        extra = schema.get("additionalProperties", True)
        if extra is not False and leaves_numbers_unchecked(extra):
            return True
        if any(leaves_numbers_unchecked(v) for v in schema.get("properties", {}).values()):
            return True
    if "array" in names and leaves_numbers_unchecked(schema.get("items", True)):
        return True
    return False


def max_depth(schema: Any) -> int | None:
    """How deep the args SCHEMA accepts can nest (0 for a scalar, 1 for an object of
    scalars), or None when it admits any depth: a value of any type somewhere, an object
    that allows undeclared keys, an array without ``items``."""
    if type(schema) is not dict:
        return 0 if schema is False else None
    if "type" not in schema:
        return 0 if "enum" in schema else None  # enum values are scalars (`strict_copy`)
    names = schema["type"] if type(schema["type"]) is list else [schema["type"]]
    deepest = 0
    if "object" in names:
        inner = [schema.get("additionalProperties", True), *schema.get("properties", {}).values()]
        for sub in inner:
            depth = max_depth(sub)
            if depth is None:
                return None
            deepest = max(deepest, depth + 1)
    if "array" in names:
        depth = max_depth(schema.get("items", True))
        if depth is None:
            return None
        deepest = max(deepest, depth + 1)
    return deepest


_DECODE: Final = msgspec.json.Decoder().decode
#: Numbers at most this far from 0 are read alike by JSON.parse and msgspec.
SAFE_INTEGER: Final = 2**53
#: Finds what may be an integer beyond 2^53 (9007199254740992 has 16 digits): a run of 16
#: digits or more that is neither a fraction's nor an exponent's nor followed by either.
_LONG_NUMBER_RE: Final = re.compile("(?<![0-9.eE+])[0-9]{16,}(?![0-9.eE])").search
#: Every byte as "0" when an ASCII digit, else as a space (see `_long_number`).
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_SIXTEEN_DIGITS = b"0" * 16
#: What `FastPath.parse` looks for in argsJson, as text and as UTF-8: the escape of
#: U+0000 and the two opening brackets.
_TEXT_MARKS: Final = ("\\u0000", "[", "{")
_UTF8_MARKS: Final = (b"\\u0000", b"[", b"{")


def _long_number(text: Any) -> bool:
    """Whether TEXT may hold an integer beyond 2^53 (`_LONG_NUMBER_RE` finds one).

    Runs only for schemas that leave a number unchecked (`leaves_numbers_unchecked`).
    Most args hold no run of 16 digits at all, which a byte translation shows at C speed;
    the pattern alone, whose lookbehind keeps ``re`` from skipping ahead, tries every
    position of every text (a third of the parse phase on real logs). Non-ASCII text
    encodes to bytes above 0x7f, so only ASCII digits can make a run, as in the pattern.
    TEXT is a ``str``, or ``bytes`` holding UTF-8 that msgspec has parsed.
    """
    is_text = type(text) is str
    octets = text.encode("utf-8", "surrogatepass") if is_text else text
    if _SIXTEEN_DIGITS not in octets.translate(_DIGITS_AS_ZERO):
        return False
    return _LONG_NUMBER_RE(text if is_text else text.decode("utf-8")) is not None


def loads(text: str) -> Any:
    """``json.loads(text)``, parsed by msgspec whenever msgspec can (the same value, see
    above); otherwise by ``json`` itself, which then also raises what it raises."""
    try:
        return _DECODE(text)
    except Exception:
        return json.loads(text)


class FastPath:
    """msgspec + jsonschema_rs over a catalog's schemas (by event name).

    SCHEMAS maps each event name to its JSON Schema; names whose schema is outside the
    supported subset are left out (`unsupported` says why), so their events are always
    declined. FORMATS maps a format's name to the check the explaining path runs for it
    (`events.validation.FORMATS`); jsonschema_rs calls the same function (a pattern
    run in Rust instead measured no faster).
    """

    def __init__(
        self,
        schemas: Mapping[str, Any],
        formats: Mapping[str, Callable[[Any], bool]] | None = None,
    ):
        formats = dict(formats or {})
        names = frozenset(formats)
        self._decode: Callable[[str], Any] = msgspec.json.Decoder().decode
        self._valid: dict[str, Callable[[Any], bool]] = {}
        #: Event names whose text is scanned for long integers (`leaves_numbers_unchecked`).
        self._scan = {name for name, schema in schemas.items() if leaves_numbers_unchecked(schema)}
        #: Event names whose text is screened for nesting (see the module's doc).
        self._screen = {
            name
            for name, schema in schemas.items()
            if (depth := max_depth(schema)) is None or depth > MAX_BRACKETS
        }
        #: Event name -> why its schema has no fast path.
        self.unsupported: dict[str, str] = {}
        for name, schema in schemas.items():
            try:
                self._valid[name] = jsonschema_rs.validator_for(
                    strict_copy(schema, formats=names),
                    formats=formats,
                    validate_formats=True,
                ).is_valid
            except (Unsupported, ValueError) as exc:
                self.unsupported[name] = str(exc)

    def accept(self, name: Any, args_json: Any) -> Any:
        """The args of an event the explaining path would accept unchanged, or DECLINED."""
        args = self.parse(name, args_json)
        return args if args is DECLINED or self.valid(name, args) else DECLINED

    def parse(self, name: Any, args_json: Any) -> Any:
        """ARGS_JSON parsed, or DECLINED (not JSON, out of the fast path's reach, or an
        event whose schema has no fast path). ARGS_JSON is a ``str``, or ``bytes`` of
        text's UTF-8 (`events.envelope.Event`): msgspec refuses bytes that are not UTF-8,
        so the explaining path, which decodes them, sees those. Any other value (a `Blob`
        too) is declined."""
        if type(name) is not str or name not in self._valid:
            return DECLINED
        kind = type(args_json)
        nul: Any
        bracket: Any
        brace: Any
        if kind is str:
            nul, bracket, brace = _TEXT_MARKS
        elif kind is bytes:
            nul, bracket, brace = _UTF8_MARKS
        else:
            return DECLINED
        # find, not ``in``: bytes' ``in`` first tries its operand as an integer (a byte
        # value) and formats the TypeError it raises before searching, about 1,800
        # instructions an event (callgrind, large); find checks for a buffer first.
        if args_json.find(nul) >= 0 or (
            name in self._screen
            and args_json.count(bracket) + args_json.count(brace) > MAX_BRACKETS
        ):
            return DECLINED
        try:
            args = self._decode(args_json)
        except Exception:  # whatever it is, the explaining path decides
            return DECLINED
        # Screened after parsing, which cached the text's UTF-8 for its encode.
        if name in self._scan and _long_number(args_json):
            return DECLINED
        return args

    def valid(self, name: str, args: Any) -> bool:
        """Whether ARGS (parsed by `parse` for NAME) are valid for NAME's schema."""
        try:
            return self._valid[name](args)
        except Exception:
            return False

    def accept_many(self, events: Sequence[Event], lap: Lap | None = None) -> list[Any]:
        """`accept` of each event, in order: its args or DECLINED. LAP, when given, is
        called with "parse" after parsing all of them and "validate" after validating."""
        valid = self._valid
        found = [self.parse(event.name, event.args_json) for event in events]
        if lap is not None:
            lap("parse")
        for index, (event, args) in enumerate(zip(events, found, strict=True)):
            if args is not DECLINED:
                try:
                    ok = valid[event.name](args)
                except Exception:
                    ok = False
                if not ok:
                    found[index] = DECLINED
        if lap is not None:
            lap("validate")
        return found


__all__ = [
    "DECLINED",
    "FastPath",
    "KEYWORDS",
    "MAX_BRACKETS",
    "Unsupported",
    "loads",
    "max_depth",
    "strict_copy",
]
