"""Differential: the projector against LiveStore's own rebuild, on mutated real logs.

fixtures/differential/corpus.json holds mutations of the small fixture's eventlog, the
way real apps bend logs, each with LiveStore 0.4.0's answer: the rows of its rebuilt
state, or its refusal (`make corpus`, tests/differential.py). Every one is replayed here
with the projector, no Node needed. What a user can rely on:

- a log LiveStore accepts gives LiveStore's rows; every difference is explained, by a
  parked event on the row or by a deliberate deviation (projector/deviations.py), and
  every event the projector parks from it stands for such a deviation;
- a log LiveStore refuses is not applied silently: the projector parks (under
  ``--on-invalid fail``, stops at) an event of it.

``pytest --differential-live N`` draws N more mutations (``--differential-seed``) and
lets LiveStore rebuild them now (Node 20 and `make oracle-install`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from projector.deviations import DEVIATIONS
from tests import differential
from tests.conftest import ROOT

CORPUS = differential.load_corpus() if differential.CORPUS.exists() else {}
MUTATIONS = CORPUS.get("mutations", [])


def test_the_corpus_has_at_least_200_mutated_logs_of_every_kind():
    """CI compares at least 200 logs, with every kind of mutation, against LiveStore 0.4.0."""
    assert len(MUTATIONS) >= 200
    kinds = {kind for m in MUTATIONS for kind in m["kind"].split("+")}
    assert kinds == set(differential.MUTATORS)
    assert sum(1 for m in MUTATIONS if m["livestore"]["ok"]) >= 150
    pins = json.loads((ROOT / "oracle" / "package.json").read_text("utf-8"))["dependencies"]
    assert pins["@livestore/livestore"] == CORPUS["livestore"] == differential.LIVESTORE_VERSION


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m["id"] for m in MUTATIONS])
def test_the_projector_gives_livestores_rows_or_a_documented_deviation(
    mutation: dict, tmp_path: Path
):
    """LiveStore's rows, or a difference a parked event or a named deviation explains."""
    outcome = differential.compare(mutation, tmp_path)
    assert outcome.ok, outcome.report()


def test_the_corpus_spells_each_mutation_as_it_was_rebuilt(tmp_path: Path):
    """Applying a mutation's edits twice gives the same eventlog (the corpus is a recipe)."""
    for mutation in MUTATIONS[:20]:
        a = differential.apply_ops(differential.BASE, mutation["ops"], tmp_path / "a" / "x")
        b = differential.apply_ops(differential.BASE, mutation["ops"], tmp_path / "b" / "x")
        assert a.read_bytes() == b.read_bytes(), mutation["id"]


def test_every_deviation_is_documented_for_users():
    """docs/deviations.md lists every deviation the engine knows, by name, and no other."""
    text = (ROOT / "docs" / "deviations.md").read_text("utf-8")
    table = text.split("## Deliberate deviations", 1)[1].split("\n## ", 1)[0]
    documented = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert documented == set(DEVIATIONS)


def test_live_oracle_on_freshly_drawn_mutations(request: pytest.FixtureRequest):
    """With --differential-live N, N new mutations rebuilt by LiveStore now agree too."""
    count = request.config.getoption("--differential-live")
    if not count:
        pytest.skip("no --differential-live N given")
    if not differential.oracle_available():
        pytest.skip("the oracle needs Node 20 and `make oracle-install`")
    seed = request.config.getoption("--differential-seed")
    catalog = differential.Catalog.bundled("ai-desk")
    drawn = differential.draw(seed, count, catalog, differential.base_events())
    with tempfile.TemporaryDirectory(prefix="differential-live-") as tmp:
        work = Path(tmp)
        jobs = []
        for index, mutation in enumerate(drawn):
            mutation["id"] = f"live{seed}-{index}"
            store = differential.apply_ops(
                differential.BASE, mutation["ops"], work / mutation["id"] / "ai-desk"
            ).parent
            jobs.append((store, work / mutation["id"] / "state.db"))
        answers = differential.rebuild_many(jobs)
        for mutation, (_, state), answer in zip(drawn, jobs, answers, strict=True):
            rows = differential.state_delta(differential.BASE_STATE, state) if answer["ok"] else {}
            mutation["livestore"] = {"ok": answer["ok"], "rows": rows, "error": answer.get("error")}
    failed = [o.report() for o in differential.compare_all(drawn) if not o.ok]
    assert not failed, "\n".join(failed)
