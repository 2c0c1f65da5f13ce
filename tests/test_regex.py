"""One regex dialect: JSON Schema patterns match as ECMA-262 says, not as Python's `re` would."""

from __future__ import annotations

import json
import random
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.regex import compile_pattern, ecma_schema, to_python

DATE = (
    "^(?:\\d{4}|[+-]\\d{6})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\\d|3[01])"
    "T(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d\\.\\d{3}Z$"
)

# (pattern, text, ECMA-262's answer): each checked against Node 20 (`new RegExp(p, "u")`).
CASES = [
    (DATE, "2024-01-16T08:56:04.715Z", True),
    (DATE, "2024-01-16T08:56:04.715Z\n", False),  # Python's $ matches before a final \n
    (DATE, "\u0662\u0660\u0662\u0664-01-16T08:56:04.715Z", False),  # Python's \d: any digit
    ("^a$", "a\n", False),
    ("^\\w+$", "é", False),  # \w is ASCII in ECMA-262
    ("^\\w+$", "abc_09", True),
    ("^.$", "\r", False),  # . excludes every LineTerminator
    ("^.$", "\u2028", False),
    ("^.$", "\U0001f600", True),  # u flag: a code point
    ("^\\s$", "\ufeff", True),  # ECMA \s includes the BOM and NBSP
    ("^\\s$", "\xa0", True),
    ("^\\s$", "\x1c", False),  # Python's \s matches the file separators
    ("^[\\s,]+$", " ,\u3000", True),
    ("\\bx\\b", "éxé", True),  # é is not a word character: boundaries around x
    ("^[$]$", "$", True),
    ("^[^]$", "\n", True),  # [^] is any character
    ("^[]$", "", False),  # [] matches nothing
    ("^(?<y>a)\\k<y>$", "aa", True),
    ("^\\u{1F600}$", "\U0001f600", True),
    ("^\\cJ$", "\n", True),
    ("^a{2}$", "aa", True),
]


@pytest.mark.parametrize(("pattern", "text", "expected"), CASES)
def test_patterns_match_as_ecma_262(pattern: str, text: str, expected: bool):
    """A pattern accepts exactly what JavaScript's RegExp (u flag) accepts."""
    assert bool(compile_pattern(pattern).search(text)) is expected


@pytest.mark.parametrize("pattern", ["\\p{L}", "[\\S]", "\\q", "[a"])
def test_patterns_python_cannot_express_are_refused(pattern: str):
    """A construct with no exact Python spelling is a clear error, never a different match."""
    with pytest.raises(ValueError, match="pattern"):
        to_python(pattern)


def test_schema_rewrite_touches_patterns_only():
    """Patterns and patternProperties keys are rewritten; enum values and names are not."""
    schema = {
        "properties": {"pattern": {"type": "string", "pattern": "^a$"}},
        "patternProperties": {"^x$": {"enum": [{"pattern": "^a$"}]}},
    }
    out = ecma_schema(schema)
    assert out["properties"]["pattern"]["pattern"] == "(?a)^a\\Z"
    assert list(out["patternProperties"]) == ["(?a)^x\\Z"]
    assert out["patternProperties"]["(?a)^x\\Z"]["enum"] == [{"pattern": "^a$"}]
    assert schema["properties"]["pattern"]["pattern"] == "^a$"  # the input is not changed


ATOMS = ["a", "\\d", "\\w", "\\s", "\\S", "\\D", "\\W", ".", "[a-c]", "[^\\d]", "[\\s,]", "\\b"]
ATOMS += ["(?:a|\\d)", "é", "\\u00e9", "\\$", "[$.]", "\\.", "(a)", "\\n", "[^]"]
TEXT_CHARS = "a b1_é٣\n\r\t\u2028\xa0\ufeff\x1c$.,Z\U0001f600"


def _random_patterns(rng: random.Random, count: int) -> list[str]:
    found = []
    for _ in range(count):
        parts = []
        for _ in range(3):
            atom = rng.choice(ATOMS)
            # An assertion (\b) cannot be quantified in ECMA-262's u mode.
            parts.append(
                atom + ("" if atom == "\\b" else rng.choice(["", "", "*", "+", "?", "{2}"]))
            )
        found.append(rng.choice(["^", ""]) + "".join(parts) + rng.choice(["$", ""]))
    return found


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node (JavaScript's RegExp)")
def test_patterns_agree_with_javascript_on_random_patterns_and_texts():
    """1,500 random pattern/text pairs: Python (rewritten) and Node's RegExp give one answer."""
    rng = random.Random(14)
    patterns = _random_patterns(rng, 300)
    texts = ["".join(rng.choice(TEXT_CHARS) for _ in range(rng.randint(0, 5))) for _ in range(5)]
    pairs = [(p, t) for p in patterns for t in texts]
    script = (
        "const pairs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(pairs.map(([p, t]) => new RegExp(p, 'u').test(t))))"
    )
    out = subprocess.run(
        ["node", "-e", script], input=json.dumps(pairs), capture_output=True, text=True, check=True
    )
    answers = json.loads(out.stdout)
    wrong = [
        (p, t, js)
        for (p, t), js in zip(pairs, answers, strict=True)
        if bool(compile_pattern(p).search(t)) is not js
    ]
    assert not wrong, wrong[:10]


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=TEXT_CHARS, max_size=6),
    pattern=st.sampled_from(_random_patterns(random.Random(1), 50)),
)
def test_rewritten_patterns_never_raise(pattern: str, text: str):
    """Every pattern of the grammar above compiles and runs on any text."""
    compile_pattern(pattern).search(text)
