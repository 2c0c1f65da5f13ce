"""Crash safety: `projector replay` killed with SIGKILL at random points, then resumed.

Every kill is followed by `projector resume` (or a fresh `replay` when the run died
before recording anything); the result must have the digest of an uninterrupted run,
and the source must be byte-identical afterwards. `pytest --crash-runs 200` kills more.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from events.sources import connect_readonly
from projector.digest import digest
from projector.replay import replay
from projector.runs import status
from projector.verify import verify
from tests.conftest import REBASE, ROOT, SHARED, tree_sha256

CMD = [sys.executable, "-m", "projector", "-q"]
BATCH = "7"


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CMD, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


def schema(path: Path) -> list[str]:
    """Every table's and index's DDL: a first run builds some indexes only at its end."""
    conn = connect_readonly(path)
    try:
        return sorted(sql for (sql,) in conn.execute("SELECT sql FROM sqlite_master") if sql)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> tuple[str, list[str], float]:
    """The uninterrupted run's digest and schema, and how long a CLI replay takes."""
    target = tmp_path_factory.mktemp("baseline") / "t.db"
    started = time.monotonic()
    done = _run("replay", str(REBASE), str(target), "--batch-size", BATCH)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    return digest(target)["overall"], schema(target), elapsed


def test_sigkill_at_random_points_then_resume_gives_the_same_digest(
    tmp_path: Path, baseline: tuple[str, list[str], float], request: pytest.FixtureRequest
):
    """Killed anywhere (a batch, the first commit, the indexes built at the end of the
    first run), resume ends with the same rows and the same tables and indexes."""
    expected, expected_schema, elapsed = baseline
    runs = request.config.getoption("--crash-runs")
    rng = random.Random(20261127)
    before = tree_sha256(REBASE)
    outcomes = {"killed": 0, "finished before the kill": 0}
    for i in range(runs):
        target = tmp_path / f"t{i}.db"
        proc = subprocess.Popen(
            [*CMD, "replay", str(REBASE), str(target), "--batch-size", BATCH],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, elapsed * 1.1))
        proc.send_signal(signal.SIGKILL)
        code = proc.wait()
        outcomes["killed" if code == -signal.SIGKILL else "finished before the kill"] += 1
        again = _run("resume", str(target))
        if again.returncode != 0:
            # Killed before the run recorded its source: start it again, as a user would.
            assert any(
                why in again.stderr
                for why in ("no migration recorded", "not a projector target", "no such target")
            ), again.stderr
            again = _run("replay", str(REBASE), str(target), "--batch-size", BATCH)
        assert again.returncode == 0, (i, again.stderr)
        assert "Traceback" not in again.stderr
        assert digest(target)["overall"] == expected, f"run {i}: digest differs after resume"
        assert schema(target) == expected_schema, f"run {i}: schema differs after resume"
        assert verify(target).ok
    assert outcomes["killed"] >= runs // 2, outcomes
    assert tree_sha256(REBASE) == before


def test_sigterm_stops_at_a_batch_boundary_and_prints_the_resume_command(tmp_path: Path):
    """SIGTERM: the batch in flight is committed, the resume command is printed, exit 143."""
    large = SHARED / "large" / "ai-desk"
    source, batch = (large, "500") if large.exists() else (REBASE, "1")
    target = tmp_path / "t.db"
    proc = subprocess.Popen(
        [
            *CMD[:-1],
            "--log-format",
            "json",
            "replay",
            str(source),
            str(target),
            "--batch-size",
            batch,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until the run has started writing
        if "replay.start" in line:
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode in (0, -signal.SIGTERM):
        # It finished first (a SIGTERM during interpreter exit gets the default action).
        pytest.skip("the replay finished before SIGTERM arrived")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert f"projector resume {target}" in err and "Traceback" not in err
    position = status(target)["position"]
    assert status(target)["state"] == "interrupted" and position % int(batch) == 0
    done = _run("resume", str(target))
    assert done.returncode == 0, done.stderr
    reference = tmp_path / "reference.db"
    replay(source, reference)
    assert digest(target)["overall"] == digest(reference)["overall"]


def test_a_kill_during_the_first_commit_leaves_no_half_schema(tmp_path: Path):
    """A target whose creation was killed is not mistaken for a foreign database."""
    target = tmp_path / "t.db"
    target.write_bytes(b"")
    replay(REBASE, target)
    assert verify(target).ok
