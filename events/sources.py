"""Sources: LiveStore's SQLite eventlog (formats 6 and 4), its JSON export, and NDJSON.

`open_source` detects the format from the content, never from the file name, and opens
it read-only: no command creates or changes a file beside the source. Every source
streams `Event` envelopes in LiveStore's replay order (``seqNumGlobal, seqNumClient``)
with bounded memory. The SQLite eventlog is read by `events.sqlite_source`, which copes
with the app writing it meanwhile.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import ijson
import structlog

from events.encoding import js_json
from events.envelope import Event, format_event_id
from events.errors import SourceError, UnreadableDatabase

log = structlog.get_logger("projector")

SQLITE_MAGIC = b"SQLite format 3\x00"
UTF8_BOM = b"\xef\xbb\xbf"
#: The `livestore sync export` versions this projector reads
#: (``packages/@livestore/cli/src/sync-operations.ts``, FORMAT.md §4).
EXPORT_VERSIONS = (1,)

#: What `JsonExport` and `NdjsonSource` read, for the message that refuses other JSON.
EXPORT_SHAPE = (
    'a `livestore sync export` is one object {"version": 1, "storeId", "exportedAt", '
    '"eventCount", "events": [...]}; NDJSON is one event object {"name", "seqNum", "args", '
    "...} per line"
)

KIND_SQLITE = "sqlite-eventlog"
KIND_EXPORT = "json-export"
KIND_NDJSON = "ndjson"


@dataclass
class Source:
    """A readable event log: what it is, and a way to stream its events."""

    path: Path
    kind: str
    format_version: int | None
    store_id: str | None
    details: dict[str, Any] = field(default_factory=dict)

    def events(self, *, utf8_args: bool = False) -> Iterator[Event]:  # pragma: no cover
        """The events in replay order. With UTF8_ARGS, a source may yield argsJson text as
        its UTF-8 bytes (`events.envelope.Event`); JSON sources always yield ``str``."""
        raise NotImplementedError

    def event_names(self) -> set[str]:
        """The distinct event names in the log (to pick the schema catalog)."""
        return {e.name for e in self.events() if isinstance(e.name, str)}

    def name_counts(self) -> dict[str, tuple[int, int]]:
        """``{name: (events, events the writing app did not know)}``: LiveStore stores an
        event its schema does not define with ``schemaHash = -1`` and skips it on replay
        (FORMAT.md section 2: ``common/schema/schema.ts:15``, ``materialize-event.ts:42-54``)."""
        counts: dict[str, list[int]] = {}
        for e in self.events():
            if isinstance(e.name, str):
                seen = counts.setdefault(e.name, [0, 0])
                seen[0] += 1
                seen[1] += e.schema_hash == -1
        return {name: (n, unknown) for name, (n, unknown) in counts.items()}

    def count(self) -> int | None:
        """How many events the log holds, when that is known without reading it all."""
        return None

    def close(self) -> None:
        """Release the source (a no-op for files read per pass)."""

    def describe(self) -> str:
        version = f" v{self.format_version}" if self.format_version is not None else ""
        return f"{self.kind}{version}"


def open_source(
    path: str | Path, *, lock_timeout: float | None = None, format_version: int | None = None
) -> Source:
    """Detect and open SOURCE read-only: a store directory, an eventlog file, or an export.

    LOCK_TIMEOUT (seconds, default `sqlite_source.DEFAULT_LOCK_TIMEOUT`): how long an
    eventlog may stay locked by another process, or keep changing, before `SourceBusy`.
    FORMAT_VERSION picks a store directory's ``eventlog@N.db`` (4 or 6) when it has
    several. Raises `SourceError` (one line) for anything that is not a readable log.
    """
    from events import sqlite_source

    timeout = sqlite_source.DEFAULT_LOCK_TIMEOUT if lock_timeout is None else lock_timeout
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file or directory")
    if p.is_dir():
        return _open_store(p, timeout, format_version)
    try:
        with p.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise SourceError(f"{p}: cannot read: {exc.strerror}") from None
    if not head:
        raise SourceError(f"{p}: empty file, not an event log")
    if head.startswith(SQLITE_MAGIC):
        return sqlite_source.SqliteEventlog(p, lock_timeout=timeout, format_version=format_version)
    if head.startswith(SQLITE_MAGIC[:6]):
        raise SourceError(f"{p}: truncated or corrupt SQLite file (header is damaged)")
    text_head = head.removeprefix(UTF8_BOM).lstrip(b" \t\r\n")
    if text_head.startswith(b"{"):
        if format_version is not None:
            raise SourceError(
                f"{p}: --format-version picks a store directory's eventlog@N.db; "
                "this is a JSON or NDJSON file"
            )
        return _open_json(p)
    if text_head[:1] in b'[-0123456789"tfn' and (value := _json_value(p)) is not None:
        raise SourceError(f"{p}: JSON but not a LiveStore export ({value}): {EXPORT_SHAPE}")
    raise SourceError(f"{p}: not a LiveStore event log (neither SQLite nor a JSON/NDJSON export)")


def _open_store(directory: Path, lock_timeout: float, format_version: int | None) -> Source:
    """A store directory's eventlog (see `sqlite_source.pick_eventlog`), refused when an
    older eventlog beside it holds events the chosen one lacks (a LiveStore 0.3 -> 0.4
    upgrade starts a new, empty log): the user chooses with ``--format-version``."""
    from events.sqlite_source import SqliteEventlog, lacking, pick_eventlog

    path, older = pick_eventlog(directory, format_version)
    source = SqliteEventlog(path, lock_timeout=lock_timeout)
    try:
        for other in older:
            previous = SqliteEventlog(other, lock_timeout=lock_timeout)
            try:
                missing = lacking(previous, source)
            finally:
                previous.close()
            if missing:
                raise SourceError(
                    f"{directory}: {other.name} (format {previous.format_version}) holds "
                    f"{missing:,} event(s) that {path.name} lacks (a LiveStore upgrade starts "
                    f"a new eventlog); choose one with --format-version "
                    f"{previous.format_version} or --format-version {source.format_version}"
                )
            log.info(
                "source.older_eventlog",
                source=str(path),
                detail=f"{other.name} beside it holds no event that {path.name} lacks",
            )
    except BaseException:
        source.close()
        raise
    return source


# ---------------------------------------------------------------- SQLite


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open a SQLite file so that nothing, not even a journal, can be written.

    For the projector's own files (targets, LiveStore's state DB); an eventlog is read
    through `events.sqlite_source`, which also copes with the app writing it.
    Where no file can be created beside it (a read-only file system, or a folder this
    process may not write: another user's target, a copy made read-only) the file is
    opened ``immutable=1``: a WAL-mode database (a projector target) cannot otherwise be
    read there, since its ``-shm`` file cannot be created
    (https://sqlite.org/wal.html#readonly), and with no ``-wal`` beside it no connection
    has it open in WAL mode (the last one to close removes it); unless a ``-wal`` with
    frames is beside it (a writer killed before its checkpoint, or one still writing),
    which immutable would ignore: then it is read through the ``-shm`` beside it.

    A WAL-mode database with no ``-wal`` or ``-shm`` beside it, in a folder that can be
    written, is opened read-write with ``PRAGMA query_only``: a read-only connection
    would create both files and, unable to remove them, leave them behind; a read-write
    one, as the last to close, removes them (https://sqlite.org/wal.html#the_wal_file),
    and query_only refuses every statement that would write.
    """
    if _nothing_created_beside(path):
        return _connect(readonly_uri(path))
    if _wal_without_files(path):
        conn = _connect(path.resolve().as_uri() + "?mode=rw")
        conn.execute("PRAGMA query_only = ON")
        return conn
    return _connect(path.resolve().as_uri() + "?mode=ro")


def readonly_uri(path: Path) -> str:
    """The URI that opens PATH read-only (for ``sqlite3.connect(uri=True)`` or ATTACH):
    where no file can be created beside it ``immutable=1``, unless a ``-wal`` with frames
    is beside it (see `connect_readonly`). Raises `UnreadableDatabase` for such a ``-wal``
    without its ``-shm`` there."""
    uri = path.resolve().as_uri() + "?mode=ro"
    if not _nothing_created_beside(path):
        return uri
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size:
        # Committed frames an immutable open would not see (a writer killed before its
        # checkpoint): read them through the -shm beside it.
        if not Path(f"{path}-shm").exists():
            raise UnreadableDatabase(
                f"{path}: its {wal.name} holds changes that cannot be read without "
                f"{path.name}-shm, which cannot be created in its folder; copy the files to "
                "a writable folder and read them there"
            )
        return uri
    return uri + "&immutable=1"


def _connect(uri: str) -> sqlite3.Connection:
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def _wal_without_files(path: Path) -> bool:
    """Whether PATH is a WAL-mode database (header bytes 18-19 are 2: sqlite.org/fileformat2.html)
    with neither ``-wal`` nor ``-shm`` beside it, that this process may write, in a folder
    it may write."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    if len(header) < 20 or header[18:20] != b"\x02\x02":
        return False
    if any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm")):
        return False
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _nothing_created_beside(path: Path) -> bool:
    """Whether no file can be created in PATH's folder by this process: a read-only file
    system, or a folder it may not write (``access(2)``)."""
    return read_only_fs(path) or not os.access(path.resolve().parent, os.W_OK)


def read_only_fs(path: Path) -> bool:
    """Whether PATH is on a file system mounted read-only (statvfs ST_RDONLY)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


# ---------------------------------------------------------------- JSON export and NDJSON


def _json_error(exc: Exception) -> str:
    """The first line of a JSON parser's message (ijson's spans several)."""
    return str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__


#: What a JSON text other than an object is, by its first ijson event.
_JSON_VALUES = {
    "start_array": "an array",
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean",
    "null": "null",
}


def _json_value(path: Path) -> str | None:
    """What PATH holds when it is one JSON value other than an object ("an array", "a
    number", ...), read as a stream (a UTF-8 BOM first is allowed); None when it is not
    one JSON value."""
    try:
        with path.open("rb") as fh:
            if fh.read(len(UTF8_BOM)) != UTF8_BOM:
                fh.seek(0)
            parsed = ijson.parse(fh)
            first = next(parsed, None)
            for _ in parsed:
                pass
    except (ijson.JSONError, UnicodeDecodeError, ValueError, RecursionError, OSError):
        return None
    return _JSON_VALUES.get(first[1]) if first is not None else None


_BAD_ESCAPE = "Invalid \\uXXXX escape"
#: What is left of a line that ends inside a JSON token, from where `json.loads` gave up,
#: by its message: a literal or a lone minus sign where a value was expected, a
#: number's fraction or exponent (after its digits), a string's \\u escape.
_CUT_TOKENS = {
    "Expecting value": re.compile(r"-|t|tr|tru|f|fa|fal|fals|n|nu|nul"),
    "Expecting ',' delimiter": re.compile(r"(?<=[0-9])(\.|[eE][+-]?)"),
    _BAD_ESCAPE: re.compile(r"u[0-9a-fA-F]{0,4}"),
}


def _ends_in(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether EXC, raised by parsing TEXT, is TEXT ending inside a value (cut short)
    rather than a fault before its end."""
    if exc.msg.startswith("Unterminated string") or exc.pos >= len(text):
        return True
    cut = _CUT_TOKENS.get(exc.msg)
    return cut is not None and cut.fullmatch(text, exc.pos) is not None


def _not_json(text: str) -> str:
    """Why TEXT (an NDJSON line `json.loads` refused) is not JSON: a line that ends before
    its value does is said to end there (cut short, most likely: a writer stopped
    mid-line; read with its line end, the parser would blame that as a control character
    inside the open string), a raw control character inside a string is named, else the
    parser's reason. Columns are 1-based, in characters."""
    line = text.removesuffix("\n").removesuffix("\r")
    try:
        json.loads(line)
    except json.JSONDecodeError as error:
        exc = error
    except (ValueError, RecursionError) as error:
        return _json_error(error)
    else:  # pragma: no cover - TEXT was refused
        return "not JSON"
    if _ends_in(line, exc):
        inside = exc.msg.startswith("Unterminated string") or exc.msg == _BAD_ESCAPE
        what = "inside a string" if inside else "before its JSON value is complete"
        return f"it ends at column {len(line)} {what} (cut short?)"
    if exc.msg.startswith("Invalid control character"):
        return (
            f"raw control character U+{ord(line[exc.pos]):04X} inside a string at column "
            f"{exc.colno} (JSON text must escape it)"
        )
    if exc.msg.startswith("Unexpected UTF-8 BOM"):
        return "a UTF-8 BOM at column 1 (one is read only at the start of the file)"
    return f"{exc.msg[:1].lower()}{exc.msg[1:]} at column {exc.colno}"


def _open_json(path: Path) -> Source:
    """NDJSON when the first non-blank line is a whole event object, else a JSON export."""
    first = b""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            first = line.removeprefix(UTF8_BOM) if number == 1 else line
            if first.strip():
                break
    try:
        obj = json.loads(first.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        obj = None
    if isinstance(obj, dict) and "name" in obj:
        return NdjsonSource(path)
    return JsonExport(path)


def _seq(value: Any, where: str) -> tuple[int, int, int | None]:
    """A seqNum: an int (global, as in `livestore sync export`) or LiveStore's client form."""
    # true and false are no positions, though Python's bool is an int.
    if isinstance(value, bool):
        raise SourceError(f"{where}: seqNum is not a number")
    if isinstance(value, int):
        seq: tuple[int, int, int | None] = (value, 0, None)
    elif isinstance(value, dict) and type(value.get("global")) is int:
        client = value.get("client", 0)
        generation = value.get("rebaseGeneration")
        if type(client) is not int or not (generation is None or type(generation) is int):
            raise SourceError(f"{where}: malformed seqNum {json.dumps(value)[:80]}")
        seq = (value["global"], client, generation)
    else:
        raise SourceError(f"{where}: missing or malformed seqNum")
    if not all(-(2**63) <= n < 2**63 for n in (seq[0], seq[1], seq[2] or 0)):
        raise SourceError(f"{where}: seqNum beyond 64-bit integers")
    return seq


class _Spelled(float):
    """A number kept as the JSON text spelled it, where a float would lose what argsJson
    must hold: a number JSON.parse reads as Infinity (``1e999``, valid JSON, which the
    eventlog reader accepts), an integer too long for `int` (``sys.get_int_max_str_digits``;
    JSON.parse reads it as a double), or a ``NaN``/``Infinity`` literal (not JSON:
    `parse_args` refuses it by that name, as it refuses it in an eventlog)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> _Spelled:
        number = super().__new__(cls, text)
        number.text = text
        return number


def _parse_float(text: str) -> float:
    number = float(text)
    return number if number - number == 0 else _Spelled(text)  # False for inf and NaN


def _parse_long_int(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:  # more digits than int() converts
        return _Spelled(text)


#: JSON text as the JSON sources (NDJSON lines, exports) parse it: as `json.loads`, each
#: number whose float cannot be written back as it was spelled kept as a `_Spelled`.
_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_constant=_Spelled)
#: The same, for a text holding an integer too long for int() (rare: tried second).
_LONG_INT_DECODER = json.JSONDecoder(
    parse_float=_parse_float, parse_constant=_Spelled, parse_int=_parse_long_int
)


#: `_DECODER`'s scanner: the value at an index of a text, and where it ends.
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _decode(text: str) -> Any:
    """TEXT parsed by `_DECODER`; ValueError (a JSONDecodeError) when it is not JSON."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError:
        raise
    except ValueError:  # an integer too long for int(): JSON.parse reads it as a double
        return _LONG_INT_DECODER.decode(text)


def _json_text(value: Any) -> str:
    """argsJson for a parsed args object: what JSON.stringify printed when LiveStore stored it,
    each `_Spelled` number as it was spelled (``1e999`` stays ``1e999``, as the eventlog
    holds it: the same events as the eventlog's, and the same prefix digest)."""
    try:
        try:
            return js_json(value, finite=True)
        except ValueError:
            return _spelled_json(value)
    except RecursionError:  # deeper than their recursion goes; json's C encoder goes deeper
        return json.dumps(value, ensure_ascii=False)


def _spelled_json(value: Any) -> str:
    """`js_json` of VALUE, each `_Spelled` number written as its text."""
    if isinstance(value, _Spelled):
        return value.text
    if isinstance(value, dict):
        items = (js_json(key) + ":" + _spelled_json(item) for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(_spelled_json, value)) + "]"
    return js_json(value)


class _StreamedJson(Source):
    """Shared by both JSON forms: turn event objects into envelopes, checking their order."""

    def _envelopes(self, objects: Iterator[tuple[str, Any]]) -> Iterator[Event]:
        position = 0
        last: tuple[int, int] | None = None
        for where, obj in objects:
            if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                raise SourceError(f"{self.path}: {where} is not a LiveStore event (no name)")
            g, c, r = _seq(obj.get("seqNum"), f"{self.path}: {where}")
            pg, pc, _ = _seq(obj.get("parentSeqNum", 0), f"{self.path}: {where}")
            if last is not None and (g, c) <= last:
                kind = "duplicate" if (g, c) == last else "out-of-order"
                raise SourceError(
                    f"{self.path}: {where}: {kind} position {format_event_id(g, c, r)} "
                    f"after {format_event_id(*last, None)}"
                )
            last = (g, c)
            if "argsJson" in obj:
                args_json = obj["argsJson"]
            else:
                try:
                    args_json = _json_text(obj.get("args", {}))
                except RecursionError:
                    raise SourceError(f"{self.path}: {where}: args nested too deeply") from None
            position += 1
            schema_hash = obj.get("schemaHash")
            yield Event(
                position,
                g,
                c,
                r,
                pg,
                pc,
                obj["name"],
                args_json,
                obj.get("clientId"),
                obj.get("sessionId"),
                schema_hash if isinstance(schema_hash, int) else None,
            )


#: JSON's whitespace (RFC 8259 section 2), which `_JsonStream` skips between values.
_WHITESPACE = re.compile(r"[ \t\n\r]*")
#: How close to the end of what is read a parse error may be and still be a value cut at
#: that end (the longest token a cut leaves unfinished: a \uXXXX\uXXXX pair, -Infinity).
_CUT_MARGIN = 16


class _JsonStream:
    """One JSON text read from a binary file a value at a time, with `_decode`'s decoders
    (so it is parsed as an NDJSON line is, as JSON.parse does) over a sliding window of
    the decoded text: memory holds the value being read (one event), not the file.

    A value the window cuts short is read again with more text, the window at least
    doubling, so a value of n characters is parsed O(log n) times. Positions in messages
    are lines and columns (1-based, in characters) of the whole file.
    """

    CHUNK = 1 << 16  # 64 KiB: the memory of the ijson reader it replaced, at the same speed

    def __init__(self, path: Path, fh: BinaryIO):
        self.path = path
        self._fh = fh
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._bytes = 0  # bytes read from the file
        self._text = ""
        self.pos = 0  # in _text
        self._eof = False
        self._lines = 0  # line ends before _text
        self._column = 0  # characters after the last line end before _text
        while not self._text and not self._eof:
            self._fill()
        if self._text.startswith("\ufeff"):  # a UTF-8 BOM
            self.pos = 1

    def _fill(self) -> None:
        """Drop what was read, keep the rest, and read at least as much again."""
        done = self._text[: self.pos]
        ends = done.count("\n")
        self._lines += ends
        self._column = len(done) - done.rfind("\n") - 1 if ends else self._column + len(done)
        data = self._fh.read(max(self.CHUNK, len(self._text) - self.pos))
        pending = len(self._utf8.getstate()[0])
        try:
            text = self._utf8.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            at = self._bytes - pending + exc.start
            raise SourceError(f"{self.path}: invalid JSON: not UTF-8 text (byte {at:,})") from None
        self._bytes += len(data)
        self._text = self._text[self.pos :] + text
        self.pos = 0
        self._eof = not data

    def peek(self) -> str:
        """The next character after whitespace ('' at the end of the file)."""
        while True:
            self.pos = _WHITESPACE.match(self._text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self._text):
                return self._text[self.pos]
            if self._eof:
                return ""
            self._fill()

    def take(self, expected: str, where: str, name: str = "") -> str:
        """The next character after whitespace, one of EXPECTED (NAME in a message), read
        past; else a SourceError saying where the file ends or what is there instead."""
        char = self.peek()
        if not char:
            self.ends(where)
        if char not in expected:
            self.fail((name or " or ".join(f"'{c}'" for c in expected)) + " expected", where)
        self.pos += 1
        return char

    def value(self, where: str) -> Any:
        """The JSON value after whitespace."""
        if not self.peek():
            self.ends(f"before {where}")
        decoder = _DECODER
        while True:
            try:
                value, end = decoder.raw_decode(self._text, self.pos)
            except json.JSONDecodeError as exc:
                if not self._eof:
                    if exc.msg.startswith("Unterminated string") or (
                        len(self._text) - exc.pos <= _CUT_MARGIN
                    ):
                        self._fill()  # perhaps only cut by the window: read on
                        continue
                elif _ends_in(self._text.rstrip(), exc):
                    self.fail(None, where)
                self.pos = exc.pos
                self.fail(exc.msg[:1].lower() + exc.msg[1:], where)
            except ValueError:  # an integer too long for int(): JSON.parse reads a double
                if decoder is _LONG_INT_DECODER:  # pragma: no cover - it converts every integer
                    raise
                decoder = _LONG_INT_DECODER
                continue
            except RecursionError:
                self.fail("nested too deeply", where)
            if end == len(self._text) and not self._eof:  # a number may go on
                self._fill()
                continue
            self.pos = end
            return value

    def items(self, label: str) -> Iterator[Any]:
        """The items of the array whose ``[`` was just read, each ``LABEL #n`` in messages;
        read past its ``]``. An item followed by its separator within the window is
        scanned at once; any other (cut by the window, or at fault) is read by `value`."""
        if self.peek() == "]":
            self.pos += 1
            return
        scan, skip = _SCAN, _WHITESPACE.match
        count = 0
        while True:
            count += 1
            text = self._text
            try:
                item, end = scan(text, self.pos)
                end = skip(text, end).end()  # type: ignore[union-attr]
                separator = text[end]
            except (StopIteration, ValueError, RecursionError, IndexError):
                item = self.value(f"{label} #{count}")
                separator = self.take(",]", f"after {label} #{count}")
            else:
                if separator not in ",]":
                    self.pos = end
                    self.fail("',' or ']' expected", f"after {label} #{count}")
                self.pos = end + 1
            yield item
            if separator == "]":
                return
            self.pos = skip(self._text, self.pos).end()  # type: ignore[union-attr]

    def ends(self, where: str) -> NoReturn:
        """A SourceError: the file ends WHERE (``after event #2``)."""
        raise SourceError(f"{self.path}: invalid JSON: the file ends {where} (cut short?)")

    def fail(self, reason: str | None, where: str, what: str = "invalid JSON") -> NoReturn:
        """A SourceError: WHAT at the line and column of the current position, in WHERE
        (``event #3``), and REASON; REASON None: the file ends inside WHERE, begun there."""
        before = self._text[: self.pos]
        ends = before.count("\n")
        line = self._lines + ends + 1
        column = (len(before) - before.rfind("\n") - 1 if ends else self._column + len(before)) + 1
        if reason is None:
            raise SourceError(
                f"{self.path}: invalid JSON: the file ends inside {where}, begun at line "
                f"{line}, column {column} (cut short?)"
            )
        place = f"line {line}, column {column} ({where})"
        raise SourceError(f"{self.path}: {what} at {place}: {reason}")


#: What `_export_members` gives where the ``events`` array starts.
_EVENTS_ARRAY = object()


def _export_members(path: Path) -> Iterator[tuple[str | None, Any]]:
    """A `livestore sync export` as it is read: ``(key, value)`` for each member of its
    object but the ``events`` array, ``("events", _EVENTS_ARRAY)`` where that array
    starts, then ``(None, event)`` for each of its items, in file order. Raises
    SourceError."""
    with path.open("rb") as fh:
        stream = _JsonStream(path, fh)
        if stream.peek() != "{":
            stream.fail("an object expected", "the export")
        stream.pos += 1
        has_events = False
        if stream.peek() == "}":
            stream.pos += 1
        else:
            while True:
                stream.take('"', "inside the export's object", "a member name")
                stream.pos -= 1  # the name's opening quote
                key = stream.value("a member name")
                stream.take(":", f"member {key!r}")
                if key != "events" or stream.peek() != "[":
                    yield key, stream.value(f"member {key!r}")
                elif has_events:
                    stream.fail("a second 'events' array", "the export", "not a LiveStore export")
                else:
                    has_events = True
                    yield "events", _EVENTS_ARRAY
                    stream.pos += 1
                    for event in stream.items("event"):
                        yield None, event
                if stream.take(",}", f"after member {key!r}") == "}":
                    break
        if stream.peek():
            stream.fail("more after the export's object", "the export")


class JsonExport(_StreamedJson):
    """`livestore sync export`: ``{version: 1, storeId, exportedAt, eventCount, events}``
    (FORMAT.md §4; ``packages/@livestore/cli/src/sync-operations.ts:31-42``).

    Read as LiveStore's import reads it, with JSON.parse (``commands/import-export.ts``),
    by the decoder that reads NDJSON lines: a string's lone surrogate escape (``\\ud83d``)
    is kept as that surrogate, so the replay stores it as the eventlog's (U+FFFD in a text
    column, the escape in JSON, warning ``lone-surrogate``); an integer beyond 64 bits
    and a number JSON.parse reads as Infinity (``1e999``) are read too. A fault names its
    line, column and event.

    Opening it reads it once: an unknown ``version``, or an ``eventCount`` other than the
    number of events the file holds (an export cut short), is a `SourceError` before any
    event is used.
    """

    def __init__(self, path: Path):
        super().__init__(path=path, kind=KIND_EXPORT, format_version=None, store_id=None)
        header: dict[str, Any] = {}
        has_events = False
        items = 0
        for key, value in _export_members(path):
            if key is None:
                items += 1
            elif value is _EVENTS_ARRAY:
                has_events = True
            elif key in ("version", "storeId", "exportedAt", "eventCount"):
                header[key] = value
        if not has_events:
            raise SourceError(
                f"{path}: JSON but not a LiveStore export (an object without an 'events' "
                f"array): {EXPORT_SHAPE}"
            )
        versions = " or ".join(str(v) for v in EXPORT_VERSIONS)
        version = header.get("version")
        if "version" not in header:
            raise SourceError(
                f"{path}: an export without a version (this tool reads version {versions})"
            )
        if type(version) is not int or version not in EXPORT_VERSIONS:
            raise SourceError(
                f"{path}: unsupported export version {json.dumps(version, default=str)[:40]} "
                f"(this tool reads version {versions})"
            )
        self.format_version = version
        store_id = header.get("storeId")
        self.store_id = store_id if isinstance(store_id, str) else None
        self.details = {k: header[k] for k in ("exportedAt",) if k in header}
        if "eventCount" in header:
            declared = header["eventCount"]
            if type(declared) is not int or declared < 0:
                raise SourceError(
                    f"{path}: eventCount {json.dumps(declared, default=str)[:40]} is not a count"
                )
            if declared != items:
                what = "the export is incomplete" if items < declared else "more than it declares"
                raise SourceError(
                    f"{path}: declares eventCount {declared:,} but holds {items:,} events: {what}"
                )
        self.details["eventCount"] = items

    def count(self) -> int | None:
        return int(self.details["eventCount"])

    def events(self, *, utf8_args: bool = False) -> Iterator[Event]:
        def objects() -> Iterator[tuple[str, Any]]:
            read = 0
            for key, value in _export_members(self.path):
                if key is None:
                    read += 1
                    yield f"event #{read}", value
            if read != self.details["eventCount"]:
                raise SourceError(
                    f"{self.path}: holds {read:,} events now, {self.details['eventCount']:,} "
                    "when it was opened: it changed while it was read"
                )

        return self._envelopes(objects())


class NdjsonSource(_StreamedJson):
    """One event object per line: the export's event shape, seqNum as int or client form.

    Blank lines, CRLF line ends, a UTF-8 BOM at the start and a missing final newline are
    tolerated; anything else that is not one JSON event object per line is a `SourceError`
    naming the line.
    """

    def __init__(self, path: Path):
        super().__init__(path=path, kind=KIND_NDJSON, format_version=None, store_id=None)

    def events(self, *, utf8_args: bool = False) -> Iterator[Event]:
        def objects() -> Iterator[tuple[str, Any]]:
            with self.path.open("rb") as fh:
                for number, raw in enumerate(fh, start=1):
                    line = raw.removeprefix(UTF8_BOM) if number == 1 else raw
                    if not line.strip():
                        continue
                    try:
                        text = line.decode("utf-8")
                        obj = _decode(text)
                    except UnicodeDecodeError:
                        raise SourceError(f"{self.path}: line {number} is not UTF-8 text") from None
                    except ValueError:
                        raise SourceError(
                            f"{self.path}: line {number} is not JSON: {_not_json(text)}"
                        ) from None
                    except RecursionError:
                        raise SourceError(
                            f"{self.path}: line {number} is not JSON (nested too deeply)"
                        ) from None
                    yield f"line {number}", obj

        return self._envelopes(objects())
