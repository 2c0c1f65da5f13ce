"""Golden fixtures: every case's sources replay to exactly the reviewed expected tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from projector.verify import verify
from tests.golden import FIXTURES, cases, dump, run_case

CASES = [
    pytest.param(case, spec, source, id=f"{case}:{source}")
    for case, spec in cases()
    for source in spec["sources"]
]


def test_every_case_has_an_expectation():
    """Each fixtures/<case>/case.json has its reviewed expected.json beside it."""
    assert len(cases()) >= 3
    for case, _ in cases():
        assert (FIXTURES / case / "expected.json").exists(), case


@pytest.mark.parametrize(("case", "spec", "source"), CASES)
def test_golden_case_replays_to_expected_tables(case, spec, source, tmp_path: Path):
    """Schema and every row of the target equal the golden dump, whatever the source form."""
    expected = json.loads((FIXTURES / case / "expected.json").read_text("utf-8"))
    target = run_case(case, spec, source, tmp_path)
    got = json.loads(json.dumps(dump(target)))
    assert got["schema"] == expected["schema"]
    for table, rows in expected["tables"].items():
        assert got["tables"][table] == rows, f"{case}: table {table} differs"
    if "state" in spec:
        report = verify(target, FIXTURES / case / spec["state"])
        assert report.ok, [d.line() for d in report.unexplained] + [
            c.detail for c in report.checks if not c.ok
        ]
