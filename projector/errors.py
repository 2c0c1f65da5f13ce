"""The projector's exceptions: flat, one line each, mapped to exit codes by the CLI."""

import shlex
from pathlib import Path

from events.errors import CatalogError, EventsError, SourceError


def command_line(*words: str | Path) -> str:
    """The command line a message tells the user to run, in backquotes: ``projector``
    then WORDS, each quoted as a POSIX shell needs it to be taken as one word (a path
    with a space: ``'my dir/app.db'``), so the line can be pasted as it is."""
    return "`" + " ".join(["projector", *(shlex.quote(_word(w)) for w in words)]) + "`"


def _word(word: str | Path) -> str:
    """WORD as the command line takes it: a relative path that starts with ``-`` (a file
    named ``-s.ndjson``) as ``./-s.ndjson``, which click would otherwise read as an
    option."""
    text = str(word)
    return f"./{text}" if isinstance(word, Path) and text.startswith("-") else text


class ProjectorError(Exception):
    """Base class for errors the CLI reports as a one-line message."""


class TargetError(ProjectorError):
    """The target database cannot be used as asked."""


class ReplayError(ProjectorError):
    """A replay stopped: an event failed under the `fail` policy, or a write failed."""


class CatalogFault(ReplayError):
    """An event failed under the `fail` policy in the catalog's own Python (a hooks.py
    handler or upcaster that raised or broke its contract): fixing it changes the
    catalog, which a target migrated with it then refuses."""


class CheckpointMismatch(ProjectorError):
    """The source no longer matches the target's checkpoint."""


class Busy(ProjectorError):
    """Another projector process is writing the same target."""


class Interrupted(ProjectorError):
    """A replay stopped at a batch boundary on SIGINT or SIGTERM."""


class HandoffError(ProjectorError):
    """The app database or its Drizzle files cannot be handed over as asked."""


class ScaffoldError(ProjectorError):
    """A catalog draft cannot be written as asked (its folder, the state DB, the log)."""


class IntegrityBreak(Exception):
    """An event whose rows would break relational integrity; it is parked, not written."""


class Unstorable(ValueError):
    """A value an event puts into a row that no row can hold (a derived table's parent
    column that is no JSON array, or holds an element its derived table cannot store):
    refused when the row is put, so the event is parked whatever the batch size, where
    a later event of the batch overwriting the row would have hidden it from SQLite."""


class HookError(Exception):
    """A hooks.py handler broke the row API's contract; its event is refused like one
    whose rows cannot be stored (parked as invalid, or the run fails)."""


__all__ = [
    "Busy",
    "CatalogError",
    "CheckpointMismatch",
    "EventsError",
    "HandoffError",
    "HookError",
    "IntegrityBreak",
    "Interrupted",
    "ProjectorError",
    "ReplayError",
    "ScaffoldError",
    "SourceError",
    "TargetError",
]
