"""What making replay faster must not change: digests, checkpoints, exactly-once."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.envelope import Event
from events.sources import open_source
from projector.checkpoint import PrefixDigest
from projector.digest import digest
from projector.replay import replay
from tests.conftest import FIXTURES, SHARED, SMALL

LARGE = SHARED / "large" / "ai-desk"
#: The large fixture's target digest since the first speed round (bench/results.json).
LARGE_DIGEST = "846887b516ba971c9fb9e1fbb9f9a8ef5ae1a310cf303d5f89cba22d01e27c38"
HOSTILE = [
    Event(1, 1, 0, 0, 0, 0, "v1.X", '{"a":"\ud800 😀 é"}'),
    Event(2, 2, 0, 0, 1, 0, 7, None),  # type: ignore[arg-type]
    Event(3, 2, 1, 0, 2, 0, "\udc00", b"\xff"),  # type: ignore[arg-type]
    Event(4, 3, 0, 0, 2, 0, "n", 12),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (SMALL, "ece0d0294ee4a3b845a90cfa842621785e5294b3"),
        (FIXTURES / "synced-rebase" / "events.ndjson", "25a2d1bc6a2ecd0dcbc165efbd45025956e6a0ff"),
        (HOSTILE, "0a63c813f7f4776aaa7b65b383265afd63e71b86"),
    ],
    ids=["small", "synced-rebase-ndjson", "hostile"],
)
def test_prefix_digests_are_the_ones_targets_already_recorded(events: object, expected: str):
    """A target made by an earlier version still resumes: the prefix digest of the same
    events is byte for byte the same, in one call or split anywhere."""
    listed = list(open_source(events).events()) if isinstance(events, Path) else list(events)
    whole, split = PrefixDigest(), PrefixDigest()
    whole.update_many(listed)
    split.update_many(listed[:3])
    for event in listed[3:]:
        split.update(event)
    assert whole.hexdigest() == split.hexdigest() == expected


@pytest.mark.slow
@pytest.mark.skipif(not LARGE.exists(), reason="shared fixtures not present")
def test_large_replays_to_the_digest_it_always_had(tmp_path: Path):
    """The 100,000 events of large give the same tables as before any speed work."""
    target = tmp_path / "large.db"
    replay(LARGE, target)
    assert digest(target)["overall"] == LARGE_DIGEST
