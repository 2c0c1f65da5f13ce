"""The catalog's schema check: jsonschema_rs answers "valid" only where jsonschema agrees.

`events.catalog.check_schema` takes jsonschema_rs's meta-schema verdict when it says valid
(`_quick_valid`) and asks jsonschema otherwise. What must hold: whenever the quick check
says valid, ``jsonschema.Draft202012Validator.check_schema`` finds the schema valid too,
so no catalog is accepted that was refused before.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import catalog as catalog_module
from events.catalog import DRAFT_2020_12, QUICK_DEPTH, SCHEMAS_DIR, _quick_valid, check_schema

#: Texts that are regular expressions in one dialect and not in another, or in none.
PATTERNS = ["^[a-z]+$", "(", "[a-", "\\d{2,}", "(?P<n>x)", "(?<n>x)", "\\p{L}", "a{2,1}", "*"]
SCHEMA_URIS = [DRAFT_2020_12, "http://json-schema.org/draft-07/schema#", DRAFT_2020_12 + "#"]
TYPES = ["object", "array", "string", "integer", "number", "null", "boolean"]
NAMES = st.sampled_from(["a", "b", "id", "$schema", "pattern"])

#: Any JSON value (what a keyword holds when it is given the wrong type).
anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2.5, 2.5), st.text()),
    lambda c: st.one_of(st.lists(c, max_size=2), st.dictionaries(NAMES, c, max_size=2)),
    max_leaves=4,
)


def _or_wrong(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly RIGHT (a value of the keyword's type), sometimes any JSON value."""
    return st.one_of(right, right, right, anything)


def _schemas(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Schemas whose keywords mostly hold values of the right type, so both verdicts
    are common (random documents are nearly all invalid, which would test little)."""
    keywords: dict[str, st.SearchStrategy[Any]] = {
        "$schema": st.sampled_from(SCHEMA_URIS),
        "type": st.one_of(st.sampled_from([*TYPES, "strin"]), st.lists(st.sampled_from(TYPES))),
        "properties": st.dictionaries(NAMES, s, max_size=2),
        "items": st.one_of(s, st.lists(s, max_size=2)),  # a list: draft-07's form
        "prefixItems": st.lists(s, max_size=2),
        "additionalProperties": s,
        "required": st.lists(NAMES, max_size=2),
        "enum": st.lists(anything, max_size=2),
        "const": anything,
        "pattern": st.sampled_from(PATTERNS),
        "patternProperties": st.dictionaries(st.sampled_from(PATTERNS), s, max_size=2),
        "minimum": st.integers(-2, 2),
        "maxLength": st.integers(-1, 3),
        "uniqueItems": st.booleans(),
        "format": st.sampled_from(["date-time", "regex", "nope"]),
        "$defs": st.dictionaries(NAMES, s, max_size=2),
        "$ref": st.sampled_from(["#", "#/$defs/a", "a b"]),
        "$anchor": st.sampled_from(["a", "1bad"]),
        "anyOf": st.lists(s, max_size=2),
        "not": s,
        "if": s,
        "then": s,
        "dependentRequired": st.dictionaries(NAMES, st.lists(NAMES, max_size=2), max_size=2),
        "unevaluatedProperties": s,
        "x-custom": anything,
    }
    chosen = st.lists(st.sampled_from(sorted(keywords)), max_size=4, unique=True)
    return chosen.flatmap(
        lambda names: st.fixed_dictionaries({k: _or_wrong(keywords[k]) for k in names})
    )


documents = st.recursive(
    st.one_of(st.booleans(), st.just({}), st.builds(dict, type=st.sampled_from(TYPES))),
    _schemas,
    max_leaves=12,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_a_schema_the_quick_check_accepts_is_one_jsonschema_accepts(doc: Any):
    if _quick_valid(doc):
        jsonschema.Draft202012Validator.check_schema(doc)


@pytest.mark.parametrize("path", sorted(SCHEMAS_DIR.glob("*/*.json")), ids=lambda p: p.name)
def test_every_bundled_schema_passes_the_quick_check(path):
    """The quick check is the one that runs for the bundled catalogs' schemas."""
    doc = json.loads(path.read_text("utf-8"))
    if path.name == "catalog.schema.json":
        pytest.skip("catalog.toml's own schema, not an event's")
    assert _quick_valid(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"pattern": "(?<n>x)"},  # ECMA-262 and Rust name groups so; Python's re does not
        {"properties": {"x": {"pattern": "("}}},
        {"patternProperties": {"(": {}}},
        # items as a list is draft-07's; jsonschema_rs would check it against draft-07
        {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{}]},
    ],
)
def test_what_jsonschema_rs_alone_would_accept_jsonschema_decides(doc: Any):
    """jsonschema_rs finds each valid and jsonschema does not: the quick check declines."""
    assert jsonschema_rs.meta.is_valid(doc)
    assert not _quick_valid(doc)
    with pytest.raises(jsonschema.SchemaError):
        check_schema(doc)


def test_another_meta_schema_is_never_looked_up(monkeypatch: pytest.MonkeyPatch):
    """jsonschema_rs fetches an unknown $schema over the network: it is not asked."""

    def no_network(doc: Any) -> bool:
        raise AssertionError("jsonschema_rs asked about another meta-schema")

    monkeypatch.setattr(catalog_module.jsonschema_rs.meta, "is_valid", no_network)
    nested = {"properties": {"x": {"$schema": "http://example.invalid/meta", "type": "string"}}}
    for doc in ({"$schema": "http://example.invalid/meta"}, nested):
        assert not _quick_valid(doc)
        check_schema(doc)  # jsonschema checks against 2020-12, whatever $schema says


def test_a_schema_deeper_than_the_quick_depth_is_left_to_jsonschema():
    doc: dict[str, Any] = {}
    node = doc
    for _ in range(QUICK_DEPTH // 2 + 1):
        node["properties"] = {"a": {}}
        node = node["properties"]["a"]
    assert jsonschema_rs.meta.is_valid(doc) and not _quick_valid(doc)
    check_schema(doc)
