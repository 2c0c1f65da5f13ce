"""Writers for the two JSON forms a log can leave the machine in.

`write_export` writes LiveStore's `livestore sync export` document: global events only
(client-only events are never pushed to a backend), seqNum as an integer, args as
JSON.stringify writes what JSON.parse read from argsJson (LiveStore's export pulls the
events from the sync backend and writes them with JSON.stringify:
``packages/@livestore/cli/src/commands/import-export.ts``), so ``1e999`` is ``null``.
`write_ndjson` writes every event, one object per line, seqNum in LiveStore's client
form ``{global, client, rebaseGeneration}`` and args exactly as stored (its reader reads
them back as the eventlog's: ``1e999`` stays ``1e999``).
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from events.encoding import js_json_indented
from events.envelope import Event
from events.errors import ExportError, SourceError
from events.scratch import folders_for, remove_dead
from events.sources import Source
from events.validation import parse_args


def _raw_args(args_json: Any, *, js_numbers: bool = False) -> tuple[str, str, Any]:
    """("args", raw JSON text, parsed args) when argsJson parses, else ("argsJson", its
    JSON string, the text itself). JS_NUMBERS: parsed as JSON.parse reads numbers
    (`parse_args`)."""
    if isinstance(args_json, str):
        try:
            return "args", args_json, parse_args(args_json, js_numbers=js_numbers)
        except (ValueError, RecursionError):
            pass
    text = args_json if isinstance(args_json, str) else repr(args_json)
    return "argsJson", json.dumps(text), text


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _in_events(value: Any) -> str:
    """VALUE as an item of the export's events array (two levels deep)."""
    return js_json_indented(value, 2)


def _dumps(event: Event, value: dict[str, Any], encode: Callable[[Any], str]) -> str:
    """ENCODE(VALUE), or a SourceError naming EVENT for what JSON cannot hold."""
    try:
        return encode(value)
    except TypeError:
        # A BLOB name or id, which only a hand-made (non-STRICT) eventlog table can hold.
        raise SourceError(
            f"{event.event_id} (#{event.position}): holds a value JSON cannot represent "
            "(a BLOB); it cannot be exported"
        ) from None
    except RecursionError:
        raise SourceError(
            f"{event.event_id} (#{event.position}): args nested too deeply to be exported"
        ) from None
    except ValueError:
        # NaN (or, in NDJSON, Infinity) as a clientId or sessionId, which only a JSON
        # source read by Python's lenient parser can hold: JSON has no such number.
        raise SourceError(
            f"{event.event_id} (#{event.position}): holds NaN or Infinity outside its args, "
            "which JSON cannot represent; it cannot be exported"
        ) from None


def _seq(g: int, c: int, r: int | None) -> dict[str, int]:
    return {"global": g, "client": c, "rebaseGeneration": r or 0}


def write_ndjson(source: Source, out: IO[str]) -> tuple[int, int]:
    """Write every event as one NDJSON line; return (events written, 0 left out)."""
    count = 0
    for e in source.events():
        key, raw, _ = _raw_args(e.args_json)
        head = {
            "name": e.name,
            "seqNum": _seq(e.seq_global, e.seq_client, e.rebase_generation),
            "parentSeqNum": _seq(e.parent_global, e.parent_client, None),
            "clientId": e.client_id,
            "sessionId": e.session_id,
            "schemaHash": e.schema_hash,
        }
        text = _dumps(e, head, _compact)
        out.write(f'{text[:-1]},"{key}":{raw}}}\n')
        count += 1
    return count, 0


def iso_string(text: str) -> str:
    """TEXT, an ISO 8601 date and time with a UTC offset, as Date.prototype.toISOString()
    writes that moment: UTC, milliseconds, ``Z`` (``2024-01-01T00:00:00+02:00`` is
    ``2023-12-31T22:00:00.000Z``), which is how LiveStore writes exportedAt
    (``new Date().toISOString()``, ``packages/@livestore/cli/src/sync-operations.ts``).
    Digits past the millisecond are dropped: a Date holds none. ValueError for anything
    else, a time without an offset included (local time or UTC? JavaScript reads it as
    local time)."""
    example = "e.g. 2026-01-01T00:00:00.000Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date and time ({example})") from None
    if "T" not in text and " " not in text:
        raise ValueError(f"{text!r} has no time ({example})")
    if moment.utcoffset() is None:
        raise ValueError(
            f"{text!r} has no UTC offset: add Z for UTC or the offset of its time zone "
            "(+02:00); exportedAt is written in UTC"
        )
    try:
        return _iso(moment.astimezone(UTC))
    except OverflowError:
        raise ValueError(f"{text!r} is before year 1 in UTC") from None


def _iso(moment: datetime) -> str:
    """toISOString() of an aware UTC MOMENT (a four-digit year: datetime has no other)."""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


def write_export(
    source: Source, out: IO[str], *, exported_at: str | None = None
) -> tuple[int, int]:
    """Write LiveStore's `sync export` document; return (global events written,
    client-only events left out: they are never pushed, so an export never has them).

    EXPORTED_AT (default: now) is written as `iso_string` makes it; ValueError when it
    is not a moment."""
    count = left_out = 0
    for e in source.events():
        if e.client_only:
            left_out += 1
        else:
            count += 1
    stamp = iso_string(exported_at) if exported_at else _iso(datetime.now(UTC))
    out.write("{\n")
    out.write(f'  "version": 1,\n  "storeId": {json.dumps(source.store_id or "")},\n')
    out.write(f'  "exportedAt": {json.dumps(stamp)},\n  "eventCount": {count},\n')
    out.write('  "events": [')
    global_events = (e for e in source.events() if not e.client_only)
    for index, e in enumerate(global_events):
        key, _, value = _raw_args(e.args_json, js_numbers=True)
        item = {
            "name": e.name,
            key: value,
            "seqNum": e.seq_global,
            "parentSeqNum": e.parent_global,
            "clientId": e.client_id,
            "sessionId": e.session_id,
        }
        text = _dumps(e, item, _in_events)
        out.write(("," if index else "") + "\n    " + text)
    out.write("\n  ]\n}\n")
    return count, left_out


#: Formats by OUT's extension, when --format is not given.
FORMATS_BY_SUFFIX = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson"}


def export(
    source: Source, out: Path | IO[str], fmt: str, *, replace: bool = True, **kw: Any
) -> tuple[int, int]:
    """Write SOURCE to OUT (a path, or an open text stream such as stdout) as FMT ("json"
    or "ndjson"); return (events written, client-only events left out).

    A path is written through a temporary file beside it and renamed into place, so a
    failed export leaves no half file and an existing OUT is replaced only when complete.
    Without REPLACE, the file is linked into place (link(2) never replaces), so an OUT
    another process created meanwhile (a second export to the same path) is kept and the
    export refused. OUT's missing folders are created, and removed again when the export
    fails. Raises SourceError (an event that cannot be exported), ExportError and OSError.
    """
    if not isinstance(out, Path):
        try:
            return _write(source, out, fmt, **kw)
        except OSError as exc:  # stdout on a full disk (a closed pipe is click's: EPIPE)
            if exc.errno == errno.EPIPE:
                raise
            name = str(getattr(out, "name", "the output")).strip("<>")
            raise ExportError(f"{name}: cannot write it ({exc.strerror or exc})") from None
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    # What an export of the same OUT killed outright left behind (events.scratch).
    remove_dead(out.parent, re.compile(rf"\.{re.escape(out.name)}\.(?P<pid>\d+)\.partial"))
    try:
        # OUT's folder is made as replay makes its target's, and gone again on failure.
        with folders_for(out):
            try:
                # backslashreplace: a lone surrogate (from a JSON source's "\ud800") is
                # written back as that same escape, where UTF-8 alone cannot encode it.
                with partial.open("w", encoding="utf-8", errors="backslashreplace") as fh:
                    counts = _write(source, fh, fmt, **kw)
                if replace:
                    os.replace(partial, out)
                else:
                    _link_new(partial, out)
            finally:
                try:
                    partial.unlink(missing_ok=True)
                except OSError:
                    pass
    except OSError as exc:
        raise ExportError(f"{out}: cannot write it ({exc.strerror or exc})") from None
    return counts


def _link_new(partial: Path, out: Path) -> None:
    """Put PARTIAL in place as OUT, which must not exist: a hard link, which fails where
    OUT exists (PARTIAL is removed by the caller). On a file system without hard links,
    a check and a rename, which a concurrent writer can race."""
    taken = ExportError(
        f"{out}: was created while the export ran (another export to it?); "
        "pass --force to replace it"
    )
    try:
        os.link(partial, out)
    except FileExistsError:
        raise taken from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.lexists(out):
            raise taken from None
        os.replace(partial, out)


def _write(source: Source, out: IO[str], fmt: str, **kw: Any) -> tuple[int, int]:
    if fmt == "ndjson":
        return write_ndjson(source, out)
    return write_export(source, out, **kw)
