"""Value encodings LiveStore uses in its state tables, reproduced exactly.

JSON columns hold ``JSON.stringify`` of the value, so numbers must print as JavaScript
prints them; ``Schema.DateFromNumber`` columns hold epoch milliseconds.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

import msgspec

from events import _native

#: toISOString()'s shape, with the ranges of month, day, hour, minute and second. ASCII
#: digits and the end of the text only: Python's \d would read Arabic-Indic digits and
#: its $ would allow a final newline, which toISOString never writes.
_ISO: Final = re.compile(
    r"^([+-][0-9]{6}|[0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])\.([0-9]{3})Z\Z"
)
#: A UTF-16 surrogate on its own: JSON's \ud83d escape decodes to one (a pair decodes to
#: one astral character), and UTF-8 cannot encode it.
_LONE_SURROGATE: Final = re.compile("[" + chr(0xD800) + "-" + chr(0xDFFF) + "]")


def utf8_text(text: str) -> str:
    """TEXT as JavaScript's TextEncoder writes it to SQLite: each lone surrogate becomes
    U+FFFD. That is what LiveStore's SQLite binding stores for a text column."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def json_escape_surrogates(text: str) -> str:
    """JSON TEXT with each lone surrogate written as its escape (\\ud83d), as
    JSON.stringify writes it (ECMA-262 25.5.2.3, QuoteJSONString): valid UTF-8, and the
    same string when parsed. Every non-ASCII character of JSON text is inside a string."""
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_encode_str = json.encoder.encode_basestring  # what _encoder uses for str (ensure_ascii=False)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
# The C encoder that _encoder.encode builds on every call, built once (3-4x faster on short
# values). Same arguments as JSONEncoder.iterencode, except no circular-reference markers:
# JSON-decoded values cannot hold a cycle.
try:  # c_make_encoder is CPython-internal: should its signature change, use the slow path.
    _c_compact = (
        _c_make_encoder(None, _encoder.default, _encode_str, None, ":", ",", False, False, False)
        if _c_make_encoder is not None
        else None
    )
except TypeError:  # pragma: no cover
    _c_compact = None


def _compact(value: Any) -> str:
    """_encoder.encode(value): compact JSON, non-ASCII kept, NaN and Infinity refused."""
    if _c_compact is None:  # pragma: no cover - CPython always has the C encoder
        return _encoder.encode(value)
    if isinstance(value, str):
        return _encode_str(value)
    return "".join(_c_compact(value, 0))


def js_number(value: float) -> str:
    """Number.prototype.toString for a finite double (what JSON.stringify prints)."""
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    digits_text, _, exp_text = repr(abs(value)).partition("e")
    mantissa = digits_text.replace(".", "")
    point = digits_text.find(".")
    int_len = point if point >= 0 else len(digits_text)
    exponent = int(exp_text) if exp_text else 0
    # Normalise to digits d1..dk with the decimal point after position n (ECMA-262 7.1.12.1).
    stripped = mantissa.lstrip("0")
    n = int_len + exponent - (len(mantissa) - len(stripped))
    digits = stripped.rstrip("0") or "0"
    k = len(digits)
    sign = "-" if value < 0 else ""
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp = f"e{'+' if e >= 0 else '-'}{abs(e)}"
    if k == 1:
        return sign + digits + exp
    return sign + digits[0] + "." + digits[1:] + exp


def _js_encode(value: Any, finite: bool) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            if finite or math.isnan(value):
                raise ValueError("NaN and Infinity are not JSON")
            return "null"  # JSON.stringify(Infinity) (JSON.parse reads 1e999 as Infinity)
        return js_number(value)
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(_compact(str(k)) + ":" + _js_encode(v, finite) for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_js_encode(v, finite) for v in value) + "]"
    return _compact(value)


#: msgspec's encoder writes a value without floats exactly as `_compact` does (every
#: string escape, non-ASCII kept, integers of any size: tests/test_encoding.py checks each
#: code point), about five times faster; it refuses a lone surrogate (UTF-8 cannot hold it).
_msgspec_encode: Final = msgspec.json.Encoder().encode
#: The compiled helpers (events/_pages.c), or None in the pure-Python build.
_PAGES: Final[Any] = _native.extension("events._pages")
#: Its plain_json, bound once (a call of a module's method looks the name up each time).
_PLAIN_JSON: Final[Any] = None if _PAGES is None else _PAGES.plain_json


#: How deep the projector reads JSON: args nested deeper are unparseable (deviation
#: deep-nesting, `events.validation`), so no value written from them is deeper. msgspec
#: writes values up to this deep; deeper ones take the json module's path, which counts
#: depth against the interpreter's recursion limit (and refuses what it refused before).
MAX_NESTING: Final = 128

#: What `_kind` finds in a value: only text, integers, booleans, null, lists and dicts,
#: at most `MAX_NESTING` deep (msgspec writes it); a float, or another type, or deeper
#: (the json module writes it); a float JSON.stringify prints unlike ``repr`` (an
#: exponent, a trailing ".0", not finite: `_js_encode` writes it).
_PLAIN, _COMPACT, _JS_FLOATS = 0, 1, 2


def _kind(value: Any, depth: int = 0) -> int:
    """The encoder VALUE needs (`_PLAIN`, `_COMPACT` or `_JS_FLOATS`), in one walk."""
    cls = type(value)
    if cls is str or cls is int or cls is bool or value is None:  # the common leaves, first
        return _PLAIN
    if isinstance(value, float):
        return _float_kind(value)
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return _COMPACT
    if depth >= MAX_NESTING:  # no recursion past it (compiled code has no stack check)
        return _deep_kind(value)
    kind = _PLAIN if cls is dict or cls is list else _COMPACT
    for item in items:
        found = _kind(item, depth + 1)
        if found > kind:
            if found == _JS_FLOATS:
                return found
            kind = found
    return kind


def _float_kind(value: float) -> int:
    text = repr(value)
    if "e" in text or text.endswith(".0") or not math.isfinite(value):
        return _JS_FLOATS
    return _COMPACT


def _deep_kind(value: Any) -> int:
    """`_kind` of a value nested past `MAX_NESTING` (never `_PLAIN`), walked with a list
    for a stack: the json module's path then refuses it if it is too deep for it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if _float_kind(item) == _JS_FLOATS:
                return _JS_FLOATS
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return _COMPACT


def js_json(value: Any, *, finite: bool = False) -> str:
    """JSON.stringify(value) for JSON-decoded Python values: an infinite number is null
    (ValueError when FINITE, and for NaN, which JSON.parse never yields), a lone surrogate
    is its escape (\\ud83d), other non-ASCII text is kept as it is.

    A plain value (no float, no lone surrogate, integers within 64 bits: most) is written
    in one pass in C by the compiled build (`events/_pages.c`, plain_json: what msgspec
    writes, tests/test_pages.py); anything else, or the pure-Python build, as below."""
    if _PLAIN_JSON is not None:
        text = _PLAIN_JSON(value)
        if text is not None:
            return text
    return _js_json(value, finite)


def _js_json(value: Any, finite: bool) -> str:
    kind = _kind(value)
    if kind == _PLAIN:
        try:  # valid UTF-8 out: no lone surrogate to escape
            return _msgspec_encode(value).decode("utf-8")
        except (UnicodeEncodeError, TypeError, OverflowError):
            pass  # a lone surrogate, a key that is no text: the json module's path
    text = _compact(value) if kind != _JS_FLOATS else _js_encode(value, finite)
    if text.isascii() or _LONE_SURROGATE.search(text) is None:
        return text
    return json_escape_surrogates(text)


def js_json_indented(value: Any, depth: int = 0) -> str:
    """JSON.stringify(value, null, 2) for JSON-decoded Python values, each line after the
    first indented DEPTH more steps of two spaces: numbers, strings and an infinite number
    (null) as `js_json` writes them; an empty object or array is ``{}`` or ``[]``, any
    other holds one member a line (ECMA-262 25.5.2.5-6, SerializeJSONObject and
    SerializeJSONArray). Raises ValueError for NaN, TypeError for what JSON cannot hold."""
    text = _js_indented(value, "  " * depth)
    if text.isascii() or _LONE_SURROGATE.search(text) is None:
        return text
    return json_escape_surrogates(text)


def _js_indented(value: Any, pad: str) -> str:
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = pad + "  "
        members = [f"{inner}{_compact(str(k))}: {_js_indented(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(members) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = pad + "  "
        return "[\n" + ",\n".join(inner + _js_indented(v, inner) for v in value) + "\n" + pad + "]"
    if isinstance(value, float):
        return _js_encode(value, False)
    return _compact(value)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400  # Python floors; Hinnant's C (year - 399) / 400 emulates that
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


#: new Date(x) is valid for |x| <= 8.64e15 ms (ECMA-262 21.4.1.1, Time Values).
MAX_TIME_MS: Final = 8_640_000_000_000_000


def is_iso_date(text: Any) -> bool:
    """TEXT is exactly what Date.prototype.toISOString() writes for some valid Date.

    That is the only text LiveStore writes for a `Schema.Date` (FORMAT.md §2, argsJson
    encoding). Other text that JavaScript's Date parser reads (no milliseconds, an
    offset, "2024-02-30", which V8 rolls over to March 1st) LiveStore would store as a
    different, normalised value; the projector does not reproduce V8's parser, so such
    text is not accepted (docs/deviations.md, date-text). Checked: the calendar (leap
    years included), the time range of a Date, and the year's spelling (four digits for
    0..9999, else a sign and six digits; never -000000, ECMA-262 21.4.1.32).
    """
    if type(text) is not str:
        return True  # not a string: the schema's type keyword speaks to it
    if len(text) == 24 and text.isascii():  # a four-digit year: _ISO's checks, without re
        octets: bytes = text.encode("ascii")
        if not (
            octets[4] == 45  # "-"
            and octets[7] == 45  # "-"
            and octets[10] == 84  # "T"
            and octets[13] == 58  # ":"
            and octets[16] == 58  # ":"
            and octets[19] == 46  # "."
            and octets[23] == 90  # "Z"
        ):
            return False
        # The rest: ASCII digits, byte by byte: indexing bytes at a constant compiles to C
        # (mypyc), where a method call (translate, isdigit) cost as much as the whole check.
        if not (
            48 <= octets[0] <= 57
            and 48 <= octets[1] <= 57
            and 48 <= octets[2] <= 57
            and 48 <= octets[3] <= 57
            and 48 <= octets[5] <= 57
            and 48 <= octets[6] <= 57
            and 48 <= octets[8] <= 57
            and 48 <= octets[9] <= 57
            and 48 <= octets[11] <= 57
            and 48 <= octets[12] <= 57
            and 48 <= octets[14] <= 57
            and 48 <= octets[15] <= 57
            and 48 <= octets[17] <= 57
            and 48 <= octets[18] <= 57
            and 48 <= octets[20] <= 57
            and 48 <= octets[21] <= 57
            and 48 <= octets[22] <= 57
        ):
            return False
        month = octets[5] * 10 + octets[6] - 528  # 528 = ord("0") * 11
        day = octets[8] * 10 + octets[9] - 528
        if not (
            1 <= month <= 12
            and 1 <= day <= 31
            and octets[11] * 10 + octets[12] - 528 <= 23
            and octets[14] * 10 + octets[15] - 528 <= 59
            and octets[17] * 10 + octets[18] - 528 <= 59
        ):
            return False
        if day <= 28:
            return True  # no month is shorter, no 4-digit year out of range
        year = int(text[:4])
        return day <= _days_in_month(year, month)  # a 4-digit year is in range
    match = _ISO.match(text)
    if match is None:
        return False
    # A signed six-digit year (a four-digit one makes the 24 characters checked above).
    year_text = match.group(1)
    year, month, day = int(year_text), int(match.group(2)), int(match.group(3))
    if 0 <= year <= 9999 or year_text == "-000000":
        return False
    if day > _days_in_month(year, month):
        return False
    return abs(iso_to_epoch_ms(text)) <= MAX_TIME_MS


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def iso_to_epoch_ms(text: str) -> int:
    """Schema.DateFromNumber's encoding of a Date given as toISOString() text."""
    match = _ISO.match(text)
    if not match:
        raise ValueError(f"not an ISO-8601 UTC timestamp: {text!r}")
    year, month, day, hour, minute, second, millis = (int(g) for g in match.groups())
    days = _days_from_civil(year, month, day)
    return (((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis
