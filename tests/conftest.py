"""Fixtures everything needs: real LiveStore logs, a scratch target, the CLI runner."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from events.catalog import Catalog
from projector.handlers import Handlers
from projector.log import configure
from projector.target import Table, open_target, read_tables

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SMALL = FIXTURES / "small" / "ai-desk"
SMALL_STATE = SMALL / "state-11367593325@6.db"
REBASE = FIXTURES / "synced-rebase" / "ai-desk"
REBASE_STATE = REBASE / "state-11367593325@6.db"
MICRO = FIXTURES / "v0.3.1-micro" / "s031"
SHARED = ROOT.parent / "shared" / "livestore" / "fixtures"


@functools.cache
def catalog_tables(name: str = "ai-desk") -> tuple[dict[str, Table], Handlers]:
    """A bundled catalog's tables (as a fresh target holds them) and its handlers."""
    catalog = Catalog.bundled(name)
    with tempfile.TemporaryDirectory() as d:
        db = open_target(Path(d) / "t.db", create=True, catalog=catalog)
        try:
            tables = read_tables(db.conn, catalog)
        finally:
            db.conn.close()
    return tables, Handlers(catalog, tables)


def write_ndjson(path: Path, events: list[tuple[str, dict[str, Any] | str]]) -> Path:
    """Write EVENTS (name, args) as an NDJSON log at PATH, numbered from 1 (args given as
    text are written as the line's argsJson, verbatim)."""

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for seq, (name, args) in enumerate(events, start=1):
            key = "argsJson" if isinstance(args, str) else "args"
            fh.write(json.dumps({"name": name, key: args, "seqNum": seq}) + "\n")
    return path


def committed_tables(target: Path, theirs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`digest`'s tables of TARGET, and THEIRS (those of the same events replayed in one
    go), less the derived tables TARGET's unfinished bulk load has yet to fill (`status`'s
    deferredTables), which must be empty there: a first run stopped or failed holds its
    committed batches' rows in every other table."""
    from projector.digest import digest
    from projector.runs import status

    ours, theirs = digest(target)["tables"], dict(theirs)
    for table in status(target)["deferredTables"]:
        assert ours.pop(table)["rows"] == 0, table
        theirs.pop(table)
    return ours, theirs


def at_stack_depth(frames: int, call: Any) -> Any:
    """CALL's result, called FRAMES Python frames deeper than here (how deep Python's json
    parser reads depends on the caller's stack)."""
    return call() if frames == 0 else at_stack_depth(frames - 1, call)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_sha256(path: Path) -> dict[str, str]:
    """sha256 of every file under PATH (or of PATH itself)."""
    if path.is_file():
        return {path.name: sha256(path)}
    return {str(p.relative_to(path)): sha256(p) for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def _reset_logging():
    configure("human", "quiet")
    yield
    structlog.reset_defaults()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """Where a test's migration goes (does not exist yet)."""
    return tmp_path / "target.db"


@pytest.fixture
def small_copy(tmp_path: Path) -> Path:
    """A writable copy of the small fixture's store directory."""
    dest = tmp_path / "store" / "ai-desk"
    shutil.copytree(SMALL, dest)
    for p in dest.iterdir():
        p.chmod(0o644)
    return dest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--crash-runs",
        type=int,
        default=25,
        help="How many random SIGKILLs the crash test delivers (CI: 25).",
    )
    parser.addoption(
        "--soak-seconds",
        type=float,
        default=12.0,
        help="How long each concurrent-writer test writes while reading (CI: 12).",
    )
    parser.addoption(
        "--differential-live",
        type=int,
        default=0,
        help="Draw N more mutated logs and let LiveStore rebuild them now (Node 20, "
        "`make oracle-install`); CI runs the committed corpus only.",
    )
    parser.addoption(
        "--differential-seed",
        type=int,
        default=2,
        help="The seed --differential-live draws from (the committed corpus used 1).",
    )


def folder_state(path: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under PATH: cheap, and any write or new file shows."""
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(autouse=True)
def _sources_untouched():
    """No test's command changes a byte of the bundled or shared fixtures, or adds a file
    beside them (a journal, -wal, -shm)."""
    folders = [f for f in (FIXTURES, SHARED) if f.exists()]
    before = [folder_state(f) for f in folders]
    yield
    assert [folder_state(f) for f in folders] == before, "a source fixture changed"


@contextmanager
def untouched(*folders: Path) -> Iterator[None]:
    """Assert that every byte under FOLDERS is the same afterwards, and no file appeared."""
    before = [tree_sha256(f) for f in folders]
    yield
    assert [tree_sha256(f) for f in folders] == before, f"{folders} changed"
