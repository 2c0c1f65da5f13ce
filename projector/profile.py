"""Where a replay's time goes: wall seconds per phase of the batch loop (`make bench`).

The loop calls `Phases.lap` at the boundaries of its steps (a batch, a slice of
`projector.replay.PREPARE_SLICE` events), never per event, so a profiled run costs what
an unprofiled one does. A run without a profile laps a function that does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: The phases, in the order the loop runs them:
#: read (the source's rows into events), digest (the prefix digest and the history
#: check), parse (argsJson to values), validate (schemas, upcasting, finding handlers),
#: prefetch (reading the target rows a slice touches), handlers (applying events to the
#: rows in memory), write (the changed rows and parked events, SQL), commit (checkpoint,
#: counters and COMMIT; with a writer process, sending it the batch), wait (for the writer
#: process to commit the batch before), indexes (the end of a bulk load: filling the
#: derived tables and building the indexes a first run deferred), other (what falls
#: between: progress, accounting, the end).
PHASES = (
    "read",
    "digest",
    "parse",
    "validate",
    "prefetch",
    "handlers",
    "write",
    "commit",
    "wait",
    "indexes",
    "other",
)
Lap = Callable[[str], None]


def no_lap(phase: str) -> None:
    """The lap of a run that is not profiled."""


class Phases:
    """Seconds per phase; `lap(phase)` adds the time since the previous lap to PHASE."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self._last = time.perf_counter()

    def start(self) -> None:
        """Start counting from now (what came before belongs to no phase)."""
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._last
        self._last = now

    def shares(self) -> dict[str, float]:
        """Each phase's share of the total (0..1)."""
        total = sum(self.seconds.values()) or 1.0
        return {phase: seconds / total for phase, seconds in self.seconds.items()}


__all__ = ["PHASES", "Lap", "Phases", "no_lap"]
