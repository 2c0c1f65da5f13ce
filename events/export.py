"""Writers for the two JSON forms a log can leave the machine in.

`write_export` writes LiveStore's `livestore sync export` document: global events only
(client-only events are never pushed to a backend), seqNum as an integer.
`write_ndjson` writes every event, one object per line, seqNum in LiveStore's client
form ``{global, client, rebaseGeneration}`` and args exactly as stored.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

from events.envelope import Event
from events.errors import SourceError
from events.sources import Source
from events.validation import parse_args


def _raw_args(args_json: Any) -> tuple[str, str, Any]:
    """("args", raw JSON text, parsed args) when argsJson parses, else ("argsJson", its
    JSON string, the text itself)."""
    if isinstance(args_json, str):
        try:
            return "args", args_json, parse_args(args_json)
        except (ValueError, RecursionError):
            pass
    text = args_json if isinstance(args_json, str) else repr(args_json)
    return "argsJson", json.dumps(text), text


def _dumps(event: Event, value: dict[str, Any], **kw: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, **kw)
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


def _seq(g: int, c: int, r: int | None) -> dict[str, int]:
    return {"global": g, "client": c, "rebaseGeneration": r or 0}


def write_ndjson(source: Source, out: IO[str]) -> int:
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
        text = _dumps(e, head, separators=(",", ":"))
        out.write(f'{text[:-1]},"{key}":{raw}}}\n')
        count += 1
    return count


def write_export(source: Source, out: IO[str], *, exported_at: str | None = None) -> int:
    count = sum(1 for e in source.events() if not e.client_only)
    out.write("{\n")
    out.write(f'  "version": 1,\n  "storeId": {json.dumps(source.store_id or "")},\n')
    stamp = exported_at or time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    out.write(f'  "exportedAt": {json.dumps(stamp)},\n  "eventCount": {count},\n')
    out.write('  "events": [')
    global_events = (e for e in source.events() if not e.client_only)
    for index, e in enumerate(global_events):
        key, _, value = _raw_args(e.args_json)
        item = {
            "name": e.name,
            key: value,
            "seqNum": e.seq_global,
            "parentSeqNum": e.parent_global,
            "clientId": e.client_id,
            "sessionId": e.session_id,
        }
        text = _dumps(e, item, indent=2)
        out.write(("," if index else "") + "\n    " + text.replace("\n", "\n    "))
    out.write("\n  ]\n}\n")
    return count


def export(source: Source, path: Path, fmt: str, **kw: Any) -> int:
    # backslashreplace: a lone surrogate (from a JSON source's "\ud800") is written back
    # as that same escape, where UTF-8 alone cannot encode it.
    with path.open("w", encoding="utf-8", errors="backslashreplace") as out:
        if fmt == "ndjson":
            return write_ndjson(source, out)
        return write_export(source, out, **kw)
