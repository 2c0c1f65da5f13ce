"""ECMA-262 regular expressions, as JSON Schema's `pattern` means them, run by Python's `re`.

JSON Schema patterns are ECMA-262 regular expressions (JSON Schema 2020-12 Validation
§6.3.3, Core §6.4), and LiveStore's own checks run in JavaScript. Python's `re` differs
on ordinary-looking patterns: `$` also matches before a final newline, `\\d` and `\\w`
match non-ASCII digits and letters, `.` matches `\\r`, U+2028 and U+2029, and `\\s` knows
other spaces. `to_python` rewrites a pattern so that `re` gives ECMA-262's answer (with
the `u` flag: code points, not UTF-16 units), and `ecma_schema` applies it to a whole
schema, so that every validator the project runs (fastjsonschema on the hot path,
jsonschema for messages) speaks one dialect.

What cannot be rewritten exactly (`\\p{...}` classes, `\\S` inside a character class) is
refused with a ValueError naming the construct rather than matched differently.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

#: ECMA-262 WhiteSpace and LineTerminator code points: what `\s` matches (22.2.2.9).
_SPACE = "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
#: `.` matches anything but a LineTerminator (22.2.2.7, without the `s` flag).
_DOT = "[^\\n\\r\\u2028\\u2029]"
_WORD = "A-Za-z0-9_"
#: ECMA escapes whose meaning Python shares exactly once `(?a)` makes \d, \w, \b ASCII.
_SAME = set("dDwWbBfnrtv0")
_CONTROL = {c: chr(ord(c) % 32) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}


@functools.lru_cache(maxsize=512)
def to_python(pattern: str) -> str:
    """PATTERN (ECMA-262, `u` flag) as a Python `re` pattern that matches the same strings.

    Raises ValueError for a construct Python cannot express the same way.
    """
    out = ["(?a)"]  # ASCII \d, \w, \b (ECMA's); \s and . are spelled out below
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            text, i = _escape(pattern, i, in_class=False)
            out.append(text)
        elif c == "[":
            text, i = _char_class(pattern, i)
            out.append(text)
        elif c == "$":
            out.append("\\Z")  # end of input only; Python's $ also matches before a final \n
            i += 1
        elif c == ".":
            out.append(_DOT)
            i += 1
        elif c == "(" and pattern.startswith("(?<", i) and pattern[i + 3 : i + 4] not in ("=", "!"):
            out.append("(?P<")  # a named group
            i += 3
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """The Python spelling of the escape at PATTERN[i] (a backslash), and where it ends."""
    if i + 1 >= len(pattern):
        raise ValueError(f"pattern {pattern!r} ends with a lone backslash")
    c = pattern[i + 1]
    if c == "s":
        return (_SPACE if in_class else f"[{_SPACE}]"), i + 2
    if c == "S":
        if in_class:
            raise ValueError(f"pattern {pattern!r}: \\S inside a character class is not supported")
        return f"[^{_SPACE}]", i + 2
    if in_class and c == "b":
        return "\\x08", i + 2  # [\b] is a backspace
    if in_class and c == "B":
        raise ValueError(f"pattern {pattern!r}: \\B inside a character class is not valid")
    if c in _SAME:
        return pattern[i : i + 2], i + 2
    if c == "c" and i + 2 < len(pattern) and pattern[i + 2] in _CONTROL:
        return f"\\x{ord(_CONTROL[pattern[i + 2]]):02x}", i + 3
    if c == "x":
        return pattern[i : i + 4], i + 4
    if c == "u":
        if pattern.startswith("{", i + 2):
            end = pattern.index("}", i)
            return f"\\U{int(pattern[i + 3 : end], 16):08x}", end + 1
        return pattern[i : i + 6], i + 6
    if c == "k" and pattern.startswith("<", i + 2):
        end = pattern.index(">", i)
        return f"(?P={pattern[i + 3 : end]})", end + 1
    if c.isdigit():
        j = i + 1
        while j < len(pattern) and pattern[j].isdigit():
            j += 1
        return f"(?:\\{pattern[i + 1 : j]})", j  # a backreference, kept apart from digits after it
    if c in "pP":
        raise ValueError(f"pattern {pattern!r}: Unicode property escapes (\\{c}) are not supported")
    if c.isalnum():
        raise ValueError(f"pattern {pattern!r}: \\{c} is not an ECMA-262 escape")
    return re.escape(c), i + 2  # an identity escape: the character itself


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """The Python spelling of the character class that starts at PATTERN[i] ('[')."""
    j = i + 1
    negated = pattern.startswith("^", j)
    if negated:
        j += 1
    if pattern.startswith("]", j):
        # ECMA: [] matches nothing and [^] any character; in Python ']' would be a member.
        return ("(?s:.)" if negated else "(?!)"), j + 1
    parts = ["[^" if negated else "["]
    while j < len(pattern) and pattern[j] != "]":
        c = pattern[j]
        if c == "\\":
            text, j = _escape(pattern, j, in_class=True)
            parts.append(text)
        elif c in "[$&~|":
            # Literals in ECMA. Python would warn of a nested set ([) or set operation (&&,
            # ~~, ||), and fastjsonschema rewrites every unescaped $ to \Z.
            parts.append("\\" + c)
            j += 1
        else:
            parts.append(c)
            j += 1
    if j >= len(pattern):
        raise ValueError(f"pattern {pattern!r} has an unterminated character class")
    parts.append("]")
    return "".join(parts), j + 1


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """PATTERN (ECMA-262) compiled for Python: use `.search`, as JSON Schema does."""
    return re.compile(to_python(pattern))


def ecma_schema(schema: Any) -> Any:
    """A copy of SCHEMA whose `pattern` values and `patternProperties` keys are rewritten
    by `to_python`, for a validator that can only run Python regexes (fastjsonschema)."""
    return _rewrite(copy.deepcopy(schema))


def _rewrite(node: Any) -> Any:
    if isinstance(node, list):
        return [_rewrite(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "pattern" and isinstance(value, str):
            out[key] = to_python(value)
        elif key == "patternProperties" and isinstance(value, dict):
            out[key] = {to_python(k): _rewrite(v) for k, v in value.items()}
        elif key in ("properties", "$defs", "definitions", "dependentSchemas") and isinstance(
            value, dict
        ):
            out[key] = {k: _rewrite(v) for k, v in value.items()}  # keys are names, not schemas
        elif key in ("enum", "const", "default", "examples"):
            out[key] = value  # instances, not schemas
        else:
            out[key] = _rewrite(value)
    return out


__all__ = ["compile_pattern", "ecma_schema", "to_python"]
