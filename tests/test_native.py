"""The compiled build of the hot-path modules (events/_native.py): it runs where it was
built, it gives the targets the pure-Python modules give, and a build that no longer
matches its sources is never run."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from events import _native
from tests.conftest import ROOT
from tests.golden import cases

EXTENSION = importlib.machinery.EXTENSION_SUFFIXES[0]

#: Runs every golden case's every source and prints {case:source: replay summary and
#: digest of each table}; a subprocess runs it under each build.
GOLDEN_RUN = """
import json, sys, tempfile
from pathlib import Path
from projector.digest import digest
from projector.log import configure
from tests.golden import cases, run_case
from events import _native
configure("human", "quiet")
out = {"state": _native.state(), "cases": {}}
with tempfile.TemporaryDirectory() as work:
    for case, spec in cases():
        for source in spec["sources"]:
            target = run_case(case, spec, source, Path(work) / case)
            out["cases"][f"{case}:{source}"] = digest(target)
print(json.dumps(out))
"""


#: Replays the differential corpus's mutated logs (wrong types, excess and missing keys,
#: unknown events, odd numbers and dates, duplicates: parked with reasons) and prints the
#: digest of each target, parked events included.
DIFFERENTIAL_RUN = """
import json, tempfile
from pathlib import Path
from projector.digest import digest
from projector.log import configure
from projector.replay import ReplayOptions, replay
from tests import differential
from events import _native
configure("human", "quiet")
out = {"state": _native.state(), "logs": {}}
with tempfile.TemporaryDirectory() as work:
    for mutation in differential.load_corpus()["mutations"]:
        folder = Path(work) / mutation["id"]
        store = differential.apply_ops(differential.BASE, mutation["ops"], folder / "ai-desk")
        replay(store, folder / "target.db", ReplayOptions(on_invalid="park"))
        out["logs"][mutation["id"]] = digest(folder / "target.db")
print(json.dumps(out))
"""


#: Replays, under a todomvc catalog whose schemas allow any args, events whose args (or a
#: client document's value) are no JSON object, and prints each run's parked events and
#: tables: compiled code checks declared types at run time, so a handler typed for an
#: object would refuse in one build what the other applies.
PERMISSIVE_RUN = """
import json, shutil, sqlite3, tempfile
from pathlib import Path
from events import _native
from events.catalog import Catalog
from projector.digest import digest
from projector.log import configure
from projector.replay import ReplayOptions, replay
configure("human", "quiet")
out = {"state": _native.state(), "runs": {}}
with tempfile.TemporaryDirectory() as work:
    work = Path(work)
    catalog_dir = work / "anyargs"
    shutil.copytree("schemas/todomvc", catalog_dir)
    toml = catalog_dir / "catalog.toml"
    toml.write_text(toml.read_text().replace('name = "todomvc"', 'name = "anyargs"', 1))
    for schema in catalog_dir.glob("*.json"):
        schema.write_text('{"$schema": "https://json-schema.org/draft/2020-12/schema"}')
    catalog = Catalog.load(catalog_dir)
    names = ["v1.TodoCreated", "v1.TodoCompleted", "v1.TodoUncompleted", "v1.TodoDeleted",
             "v1.TodoClearedCompleted", "uiStateSet"]
    odd = [5, "x", [1], None, True, {"id": 7}]
    values = [5, "x", None, [["filter", "active"]], {}, {"filter": "active"}]
    for n, args in enumerate(odd):
        lines = [{"name": "v1.TodoCreated", "args": {"id": "t1", "text": "a"}},
                 {"name": "uiStateSet", "args": {"id": "static", "value": {"newTodoText": "a"}}}]
        lines += [{"name": name, "args": args} for name in names]
        lines += [{"name": "uiStateSet", "args": {"id": "static", "value": v}} for v in values]
        source = work / f"log{n}.ndjson"
        source.write_text("".join(json.dumps({**line, "seqNum": seq}) + "\\n"
                                  for seq, line in enumerate(lines, 1)))
        target = work / f"t{n}.db"
        result = replay(source, target, ReplayOptions(catalog=catalog, on_invalid="park"))
        conn = sqlite3.connect(target)
        parked = conn.execute(
            "SELECT position, kind, reason FROM _projector_parked ORDER BY position").fetchall()
        out["runs"][json.dumps(args)] = {
            "applied": result.applied, "parked": parked, "tables": digest(target)}
print(json.dumps(out))
"""


#: Drafts a catalog (`projector scaffold`) of the todomvc fixture copied into a hand-made,
#: non-STRICT eventlog whose first uiStateSet's argsJson is a BLOB, and prints the draft.
BLOB_SCAFFOLD_RUN = """
import json, shutil, sqlite3, tempfile
from pathlib import Path
from events import _native
from projector.log import configure
from projector.scaffold import scaffold
configure("human", "quiet")
out = {"state": _native.state()}
with tempfile.TemporaryDirectory() as work:
    store = Path(work) / "store"
    store.mkdir()
    log = store / "eventlog@6.db"
    shutil.copy("fixtures/todomvc-small/todomvc/eventlog@6.db", log)
    log.chmod(0o644)
    conn = sqlite3.connect(log)
    with conn:
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'eventlog'").fetchone()[0]
        conn.execute("ALTER TABLE eventlog RENAME TO strict_eventlog")
        conn.execute(ddl.replace(") strict", ")"))  # a hand-made copy: not STRICT
        conn.execute("INSERT INTO eventlog SELECT * FROM strict_eventlog")
        conn.execute("DROP TABLE strict_eventlog")
        conn.execute(
            "UPDATE eventlog SET argsJson = CAST(argsJson AS BLOB) WHERE rowid = "
            "(SELECT min(rowid) FROM eventlog WHERE name = 'uiStateSet')"
        )
    conn.close()
    scaffold(store, Path(work) / "draft")
    draft = Path(work) / "draft" / "catalog.toml"
    out["catalog"] = draft.read_text("utf-8").replace(work, "WORK")
print(json.dumps(out))
"""


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != _native.PURE_ENV}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True
    )


def _both_builds(code: str) -> tuple[dict, dict]:
    """What CODE prints (JSON) run by the compiled build and by the pure-Python one."""
    compiled = _python(code)
    pure = _python(code, **{_native.PURE_ENV: "1"})
    assert compiled.returncode == 0, compiled.stderr
    assert pure.returncode == 0, pure.stderr
    got_compiled, got_pure = json.loads(compiled.stdout), json.loads(pure.stdout)
    assert (got_compiled["state"], got_pure["state"]) == ("compiled", "pure (asked)")
    return got_compiled, got_pure


def _compiled_here() -> bool:
    return _native.state() == "compiled"


def test_the_compiled_build_runs_where_it_was_built():
    """`make install` compiles the modules; a build that failed silently (every extension
    is optional) would leave the speed-up off with no word: this test says so."""
    if os.environ.get(_native.PURE_ENV):
        pytest.skip(f"{_native.PURE_ENV} is set: the pure-Python modules run by request")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the pure-Python modules run")
    assert _native.state() == "compiled"
    for module in _native.COMPILED:
        assert sys.modules[module].__file__.endswith(EXTENSION), module


def test_pure_python_is_loaded_when_asked():
    """PROJECTOR_PURE_PYTHON=1 loads each module from its .py, even beside its extension."""
    listed = ", ".join(f"{m}.__file__" for m in _native.COMPILED)
    imports = "; ".join(f"import {m}" for m in _native.COMPILED)
    code = f"import json; {imports}; print(json.dumps([{listed}]))"
    done = _python(code, **{_native.PURE_ENV: "1"})
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout)
    assert [Path(f).suffix for f in files] == [".py"] * len(_native.COMPILED)
    assert done.stderr == ""


@pytest.mark.skipif(not _compiled_here(), reason="the compiled build is not in use here")
def test_both_builds_replay_every_golden_case_to_the_same_tables():
    """Every golden case (every source form, parked and invalid events, three apps, a user
    catalog) replayed by the compiled and by the pure-Python modules: the same digest
    for every table. (The goldens themselves were made by pure Python, and
    the rest of the suite runs the compiled modules against them.)"""
    got_compiled, got_pure = _both_builds(GOLDEN_RUN)
    expected = {f"{case}:{s}" for case, spec in cases() for s in spec["sources"]}
    assert set(got_compiled["cases"]) == expected
    assert got_compiled["cases"] == got_pure["cases"]


@pytest.mark.skipif(not _compiled_here(), reason="the compiled build is not in use here")
def test_both_builds_park_the_differential_corpus_alike():
    """The corpus's mutated logs, each replayed by both builds: the same tables and the
    same parked events with the same reasons."""
    got_compiled, got_pure = _both_builds(DIFFERENTIAL_RUN)
    assert len(got_compiled["logs"]) >= 200
    assert got_compiled["logs"] == got_pure["logs"]


@pytest.mark.skipif(not _compiled_here(), reason="the compiled build is not in use here")
def test_both_builds_apply_args_that_are_no_object_alike():
    """Args that are no JSON object reach the handlers when a catalog's schema allows them:
    both builds apply or park each event alike, with the same reasons (a compiled handler
    typed for a dict refused them all; the pure one raised a traceback for a client
    document's value that is no object, or merged a list of pairs into it)."""
    got_compiled, got_pure = _both_builds(PERMISSIVE_RUN)
    assert got_compiled["runs"] == got_pure["runs"]
    for args, run in got_pure["runs"].items():
        reasons = [reason for _, _, reason in run["parked"]]
        assert not any("object expected" in r or "subscriptable" in r for r in reasons)
        # The first client-document set whose value is no object is parked, saying so
        # (the later ones are held behind it).
        assert any("the value of uiState is not a JSON object: 5" in r for r in reasons)
        if args != '{"id": 7}':
            assert any(f"its args are not a JSON object: {args}" in r for r in reasons)
        # TodoClearedCompleted reads no arg: applied whatever its args (as LiveStore's
        # materializer is), in both builds.
        assert not any("TodoClearedCompleted" in r for r in reasons)


@pytest.mark.skipif(not _compiled_here(), reason="the compiled build is not in use here")
def test_both_builds_draft_a_catalog_alike_from_a_blob_argsjson():
    """An argsJson BLOB is not JSON to the replay (argsJson is not text); the draft of a
    catalog leaves it out as unparseable in both builds (the pure one parsed the BLOB, so
    its draft differed from the compiled one's)."""
    got_compiled, got_pure = _both_builds(BLOB_SCAFFOLD_RUN)
    assert got_compiled["catalog"] == got_pure["catalog"]
    assert "[tables.uiState]" in got_pure["catalog"]


def _fake_build(root: Path) -> None:
    """Under ROOT: every compiled module's source, an (empty) extension beside each, the
    shared library, and the manifest of a build of those sources."""
    for module in _native.COMPILED:
        source = root.joinpath(*module.split(".")).with_suffix(".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {module}\n")
        source.with_suffix(EXTENSION).write_bytes(b"")
    for module, c_source in _native.C_EXTENSIONS.items():
        (root / c_source).write_text(f"/* {module} */\n")
        name = module.rsplit(".", 1)[1]
        (root / c_source).with_name(f"{name}{EXTENSION}").write_bytes(b"")
    package, lib = _native.GROUP.rsplit(".", 1)
    (root / package / f"{lib}__mypyc{EXTENSION}").write_bytes(b"")
    digests = _native.source_digests()  # under ROOT, which the caller set to root
    (root / "events" / _native.MANIFEST).write_text(json.dumps({"sources": digests}))


def test_a_build_older_than_its_sources_is_not_run(tmp_path: Path, monkeypatch):
    """The manifest names each compiled source's SHA-256: one edited since (or checked out
    since) makes every module load from its .py, with one line on stderr."""
    monkeypatch.delenv(_native.PURE_ENV, raising=False)
    monkeypatch.setattr(_native, "ROOT", tmp_path)
    _fake_build(tmp_path)
    assert _native._check() == ("compiled", None)

    (tmp_path / "projector" / "store.py").write_text("# edited\n")
    state, warning = _native._check()
    assert state == "pure (stale)"
    assert warning is not None and "projector/store.py changed since the build" in warning
    assert "`make install` rebuilds them" in warning

    monkeypatch.setenv(_native.PURE_ENV, "1")
    assert _native._check() == ("pure (asked)", None)
    monkeypatch.setenv(_native.PURE_ENV, "0")
    assert _native._check()[0] == "pure (stale)"


def test_an_extension_the_build_does_not_make_is_not_run(tmp_path: Path, monkeypatch):
    """A module taken out of COMPILED leaves its extension beside its source, which Python
    would still import: every module then loads from its .py, with one line on stderr."""
    monkeypatch.delenv(_native.PURE_ENV, raising=False)
    monkeypatch.setattr(_native, "ROOT", tmp_path)
    _fake_build(tmp_path)
    (tmp_path / "projector" / f"cli{EXTENSION}").write_bytes(b"")
    state, warning = _native._check()
    assert state == "pure (stale)"
    assert warning is not None and f"projector/cli{EXTENSION} left by an older build" in warning


@pytest.mark.parametrize("missing", ["manifest", "shared library", "one extension"])
def test_a_partial_build_is_not_run(tmp_path: Path, monkeypatch, missing: str):
    """Every extension is optional in setup.py: a module that did not compile, or a build
    that stopped before its manifest, leaves all of them pure Python (a compiled module
    calls the others' compiled code directly, so they must not be mixed)."""
    monkeypatch.delenv(_native.PURE_ENV, raising=False)
    monkeypatch.setattr(_native, "ROOT", tmp_path)
    _fake_build(tmp_path)
    package, lib = _native.GROUP.rsplit(".", 1)
    gone = {
        "manifest": tmp_path / "events" / _native.MANIFEST,
        "shared library": tmp_path / package / f"{lib}__mypyc{EXTENSION}",
        "one extension": tmp_path / "projector" / f"handlers{EXTENSION}",
    }[missing]
    gone.unlink()
    assert _native._check() == ("pure (not built)", None)


@pytest.mark.skipif(not _compiled_here(), reason="the compiled build is not in use here")
def test_an_edited_source_runs_as_edited(tmp_path: Path):
    """End to end, on a copy of the packages with their build: edit a compiled module's
    source, and the edit is what runs (not the stale extension), with the warning."""
    copy = tmp_path / "copy"
    for package in ("events", "projector", "schemas"):
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    store = copy / "projector" / "store.py"
    store.write_text(store.read_text() + "\nEDITED_SINCE_THE_BUILD = True\n")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import projector.store as s; print(s.__file__, s.EDITED_SINCE_THE_BUILD)",  # noqa: E501
        ],
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(copy)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(store), "True"]
    assert "projector/store.py changed since the build" in done.stderr
