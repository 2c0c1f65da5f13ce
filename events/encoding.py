"""Value encodings LiveStore uses in its state tables, reproduced exactly.

JSON columns hold ``JSON.stringify`` of the value, so numbers must print as JavaScript
prints them; ``Schema.DateFromNumber`` columns hold epoch milliseconds.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_ISO = re.compile(r"^([+-]\d{6}|\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z$")
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


def _needs_js_floats(value: Any) -> bool:
    cls = type(value)
    if cls is str or cls is int or cls is bool or value is None:  # the common leaves, first
        return False
    if isinstance(value, float):
        text = repr(value)
        return "e" in text or text.endswith(".0") or not math.isfinite(value)
    if isinstance(value, dict):
        return any(map(_needs_js_floats, value.values()))
    if isinstance(value, list):
        return any(map(_needs_js_floats, value))
    return False


def _js_encode(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and Infinity are not JSON")
        return js_number(value)
    if isinstance(value, dict):
        return (
            "{" + ",".join(_compact(str(k)) + ":" + _js_encode(v) for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_js_encode(v) for v in value) + "]"
    return _compact(value)


def js_json(value: Any) -> str:
    """JSON.stringify(value) for JSON-decoded Python values."""
    if not _needs_js_floats(value):
        return _compact(value)
    return _js_encode(value)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def iso_to_epoch_ms(text: str) -> int:
    """Schema.DateFromNumber's encoding of a Date given as toISOString() text."""
    match = _ISO.match(text)
    if not match:
        raise ValueError(f"not an ISO-8601 UTC timestamp: {text!r}")
    year, month, day, hour, minute, second, millis = (int(g) for g in match.groups())
    days = _days_from_civil(year, month, day)
    return (((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis
