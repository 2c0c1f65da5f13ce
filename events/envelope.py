"""The immutable event envelope every source yields, whatever its on-disk format."""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple

from events.errors import TextNotUtf8


def format_event_id(seq_global: Any, seq_client: Any, rebase_generation: Any) -> str:
    """LiveStore's notation for an event id: ``e{global}[.{client}][r{generation}]``.

    The positions are integers in every event; they are typed ``Any`` because a message
    about a hand-made table (e.g. its duplicate positions) names whatever it holds."""
    text = f"e{seq_global}"
    if seq_client:
        text += f".{seq_client}"
    if rebase_generation:
        text += f"r{rebase_generation}"
    return text


_EVENT_ID: Final = re.compile(r"e(\d+)(?:\.(\d+))?(?:r(\d+))?")


def parse_event_id(text: str) -> tuple[int, int, int] | None:
    """(global, client, rebase generation) of an id `format_event_id` wrote, or None."""
    found = _EVENT_ID.fullmatch(text)
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2) or 0), int(found.group(3) or 0)


class Event(NamedTuple):
    """One event of the history, exactly as read from the source (a named tuple: built
    for every event read, it costs a quarter of what a frozen dataclass does).

    ``position`` is the 1-based ordinal in LiveStore's replay order
    (``seqNumGlobal, seqNumClient``); it is what checkpoints count.
    ``args_json`` is the argsJson text as stored: it is parsed and validated later,
    so that an event whose args are not JSON is still an event to account for. Read
    with ``Source.events(utf8_args=True)``, text may come as its UTF-8 ``bytes``, not yet
    decoded (`args_text` decodes them); a BLOB always comes as a ``bytes`` subclass
    (`events.sqlite_source.Blob`), never as plain ``bytes``.
    The parent's position, ``name``, ``args_json`` and the ids after them are typed
    ``Any``: a hostile source's may be any SQLite or JSON value (NULL, text, a BLOB), and
    the compiled modules (events/_native.py) check a declared type at run time. (A
    position that is not an integer is refused when the source is read.)
    """

    position: int
    seq_global: int
    seq_client: int
    rebase_generation: int | None
    parent_global: Any
    parent_client: Any
    name: Any
    args_json: Any
    client_id: Any = None
    session_id: Any = None
    schema_hash: Any = None

    @property
    def event_id(self) -> str:
        return format_event_id(self.seq_global, self.seq_client, self.rebase_generation)

    @property
    def client_only(self) -> bool:
        """Client-only and client-document events live at ``seqNumClient > 0``."""
        return self.seq_client > 0


def args_text(event: Event) -> Any:
    """EVENT's argsJson: text as ``str``, any other value as the source holds it.

    Plain ``bytes`` are text read as its UTF-8 (``Source.events(utf8_args=True)``),
    decoded here as strictly as Python's sqlite3 decodes TEXT. Raises `TextNotUtf8` (a
    `SourceError`) when they are not UTF-8: SQLite holds them as TEXT, so the file is
    damaged (read without ``utf8_args``, the same page is refused the same way, by
    `events.sqlite_source`).
    """
    value = event.args_json
    if type(value) is not bytes:
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise text_not_utf8("argsJson", event.position, event.event_id, event.name, exc) from None


def text_not_utf8(
    column: str, position: int, event_id: str, name: Any, exc: UnicodeDecodeError
) -> TextNotUtf8:
    """The refusal of an eventlog whose COLUMN of the event at POSITION (EVENT_ID, NAME:
    None when the name is the text at fault) holds TEXT that is not UTF-8, EXC being its
    decoding's failure: one sentence naming the event, the column and the first bad
    byte's offset in the value (bytes, 0-based), for the caller to prefix with the file."""
    named = f"{event_id}, {name}" if name is not None else event_id
    return TextNotUtf8(
        f"corrupt or unreadable SQLite file: the {column} of event #{position:,} ({named}) "
        f"is TEXT that is not UTF-8 ({exc.reason} at byte {exc.start:,})"
    )
