"""A log being written while it is read: every read is a prefix of a history that existed.

`tests/app_writer.py` writes the eventlog the way LiveStore's Node adapter does (no file
locks, rollback journal), appending events and rewriting pages in another process, while
these tests read it and replay it in a loop. Never a false error, never a torn event, and
at the end the target equals a replay of the final log. CI runs each for
``--soak-seconds`` (default 12); ``pytest tests/test_concurrent.py --soak-seconds 600``
soaks longer.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from events.sources import open_source
from projector.digest import digest
from projector.replay import ReplayOptions, replay
from projector.verify import verify
from tests.conftest import ROOT


def _writer(eventlog: Path, seconds: float, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.app_writer", str(eventlog), "--seconds", str(seconds)]
        + ["--seed", str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(writer: subprocess.Popen[str]) -> int:
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    return int(out)


def _key(event: Any) -> tuple[Any, ...]:
    return (event.event_id, event.name, event.args_json, event.parent_global, event.parent_client)


@pytest.fixture
def store(small_copy: Path) -> Path:
    """A writable copy of the small store, for the app to write while it is read."""
    return small_copy


def test_every_read_while_the_app_writes_is_a_prefix_of_its_final_history(
    store: Path, request: pytest.FixtureRequest
):
    """Each full read of a log being appended to and rewritten is a prefix of its history."""
    seconds = request.config.getoption("--soak-seconds")
    writer = _writer(store / "eventlog@6.db", seconds, seed=11)
    reads: list[tuple[int, str]] = []
    while writer.poll() is None:
        source = open_source(store, lock_timeout=30)
        try:
            keys = [_key(e) for e in source.events()]
        finally:
            source.close()
        reads.append((len(keys), hashlib.sha256(repr(keys).encode()).hexdigest()))
    appended = _finish(writer)
    final = [_key(e) for e in open_source(store).events()]
    assert len(final) == 200 + appended
    for length, hashed in reads:
        assert hashed == hashlib.sha256(repr(final[:length]).encode()).hexdigest(), length
    assert len(reads) >= 5 and len({length for length, _ in reads}) >= 3, reads[:10]


def test_replay_in_a_loop_while_the_app_writes_then_verify_is_clean(
    store: Path, tmp_path: Path, request: pytest.FixtureRequest
):
    """Replays that catch up with a log being written never fail; the end result is exact."""
    seconds = request.config.getoption("--soak-seconds")
    target = tmp_path / "target.db"
    writer = _writer(store / "eventlog@6.db", seconds, seed=12)
    runs = 0
    started = time.monotonic()
    while writer.poll() is None:
        result = replay(store, target, ReplayOptions(batch_size=500, lock_timeout=30))
        assert result.accounted and not result.parked and not result.warnings, result.as_dict()
        runs += 1
    _finish(writer)
    replay(store, target)
    report = verify(target)
    assert report.ok and not report.warnings, [c for c in report.checks if not c.ok]
    reference = tmp_path / "reference.db"
    quiet = tmp_path / "quiet" / "ai-desk"
    shutil.copytree(store, quiet)
    replay(quiet, reference)
    assert digest(target)["overall"] == digest(reference)["overall"]
    assert runs >= 3, (runs, time.monotonic() - started)
