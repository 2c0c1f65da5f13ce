"""The batch writer: a second process that writes a batch while the main one reads the next.

A replay's main process reads, validates and applies a batch to its rows in memory;
what SQLite then does with them (the rows' ``executemany``, the parked events, the
tracking record, the counters, COMMIT) is a list of statements, and this process runs
them on its own connection, on the second core, while the main process reads and
digests the next batch. Exactly-once is unchanged: a batch's statements, its tracking
record included, run in one transaction here, committed or rolled back whole; the main
process waits for the answer (`BatchWriter.wait`) before it reads the target again, so
it never sees a batch half-written, and redoes a refused batch itself, one event at a
time (`projector.replay`). Once it has answered a batch, it copies that batch's pages
from the WAL into the database (`_checkpoint`) while the main process goes on; after
the last batch, it does so and exits while the main process builds the deferred
indexes (`BatchWriter.request_close`), which waits for it before it lets go of the
target (`BatchWriter.close`).

This file runs as a script in a bare interpreter (``python -I -S``: no site-packages, the
standard library and msgspec or projector._writer only, about 14 MB), so the two
processes stay within the memory the projector may use. The child ignores SIGINT and
SIGTERM (the main process decides when to stop, at a batch boundary), dies with the
main process (Linux ``PR_SET_PDEATHSIG``: an unfinished transaction is then rolled back
by SQLite, as after any kill), and holds the target's writer lock with it (the lock
file's descriptor is inherited), so no other projector can start writing the target
before this process is gone.

Messages are tuples in `marshal`'s format (the same interpreter on both sides) behind an
8-byte length, on the child's stdin and stdout: ``("open", path, pragmas)``;
``("batch", parts)``, where each part is a list of statements of at most `PART_ROWS`
rows, itself a message in MessagePack (so the child holds a batch as bytes, and only one
part of it as objects at a time: a quarter of the memory; and it reads a whole batch
before it runs any, so the main process never waits on a full pipe while SQLite works);
``("close",)``. Answers: ``("ok",)``, or ``(kind, ...)`` for a failure
(`BatchWriter.wait` raises it again in the main process).

A batch's parts are written by msgspec's MessagePack encoder, not marshal: it writes
text from the UTF-8 CPython keeps in each string, where marshal encodes every non-ASCII
string again and hashes every shared object for its references. On ``large`` that is
32-44 ms of the main process's time per replay instead of 88-108 ms, and 54-60 ms of
the child's to read instead of 63-80 (20.8 MB instead of 20.2). What the child reads is
what was sent, but for tuples (lists: the sqlite3 module binds both alike): row values
are JSON values and what the codecs make of them (`projector.handlers._BINDABLE`, for a
hooks.py handler too). A batch holding a value the encoder refuses (a Python handler's
own object, an integer beyond 64 bits, text with a lone surrogate) is not sent:
`BatchWriter.submit` says so and the main process writes it, where SQLite refuses the
value as it would have in the child.

In the compiled build, the child runs each part straight from its MessagePack with
`projector._writer` (projector/_writer.c), which binds every value from where it lies in
the part and fails as the sqlite3 module fails for the decoded part (`run_packed`;
tests/test_writer.py runs every kind of part through both). On ``large`` that takes the
child from about 0.9 s of CPU to 0.63 s: msgspec no longer builds a batch's objects only
for the sqlite3 module to read them again. The main process names the extension's file
(the child cannot import the project); in the pure-Python build, or where it cannot be
loaded, the child imports msgspec alone from the directory the main process names,
nothing else of its site-packages, and the sqlite3 module runs the decoded parts. The
pipe to the child is asked to hold 1 MiB (`_widen_pipe`), so a batch's 2 MB are sent
in fewer wake-ups of the two processes.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import signal
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_LENGTH = struct.Struct(">Q")
#: Rows of a batch sent to the writer in one message (an executemany is split in parts).
PART_ROWS = 2000
#: The size asked for the pipe carrying batches to the writer process (`_widen_pipe`).
PIPE_BYTES = 1 << 20
#: A statement of a batch: (verb, sql, params, rows). Verb "many" runs executemany, "one"
#: execute, "track" an insert that must return a row (eventsourcing's single-row tracking
#: insert returns none when the position is not beyond the recorded one). ROWS marks the
#: statements writing the batch's app rows: what SQLite refuses there is the events'
#: fault (a CHECK, an integer beyond 64 bits, text that is not Unicode) and is answered
#: as "row", so the main process redoes the batch one event at a time.
Op = tuple[str, str, Any, bool]
#: Why a batch's tracking insert recorded nothing (the main process redoes the batch,
#: and its own tracking insert then names the position: `projector.replay`).
TRACKING_REFUSED = "the tracking insert recorded nothing: its position is not beyond the last"
#: The exceptions a row statement raises for a value the target refuses (see
#: `projector.store.RowError`), and ProgrammingError, which is one only as `row_error`
#: tells.
ROW_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    OverflowError,
    ValueError,
)


def row_error(exc: BaseException) -> bool:
    """Whether EXC, raised by a row statement, is the row's fault: a value the target
    refuses, or one the sqlite3 module cannot bind at all (a JSON object or array in a
    column with no codec, where the event's schema lets any value through: ProgrammingError
    ``Error binding parameter N``, InterfaceError before Python 3.11). Any other
    ProgrammingError is the projector's own, and is not taken for the event's."""
    if isinstance(exc, sqlite3.ProgrammingError):
        return str(exc).startswith("Error binding parameter")
    return isinstance(exc, ROW_ERRORS)


class WriterError(Exception):
    """The batch writer process failed in a way that is nobody's data (it died, or hit a
    bug); the batch in flight is not committed."""


def _send(stream: IO[bytes], message: Any) -> None:
    _send_data(stream, marshal.dumps(message))


def _send_data(stream: IO[bytes], data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    data = _receive_data(stream)
    return None if data is None else marshal.loads(data)


def _receive_data(stream: IO[bytes]) -> bytes | None:
    """One message's bytes, or None when the other side is gone."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    data = stream.read(length)
    if len(data) < length:
        return None
    return data


# ---------------------------------------------------------------- the child


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when the main process ends (before it can commit
    anything more); elsewhere the closed pipe ends it at the next message."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it ended before the request was made
        os._exit(1)


def execute_ops(conn: sqlite3.Connection, ops: list[Op]) -> None:
    """Run OPS in the caller's transaction. Raises `RowRefused` for a value a row
    statement's target refuses, `TrackingRefused` when the tracking insert records
    nothing, and any other `sqlite3.Error` as it is."""
    for verb, sql, params, rows in ops:
        try:
            if verb == "many":
                conn.executemany(sql, params)
            elif verb == "one":
                conn.execute(sql, params)
            elif conn.execute(sql, params).fetchone() is None:  # "track"
                raise TrackingRefused(TRACKING_REFUSED)
        except ROW_ERRORS as exc:
            if not rows or not row_error(exc):
                raise
            raise RowRefused(str(exc)) from exc


def _failure(exc: Exception) -> tuple[Any, ...]:
    """The answer saying how a batch failed."""
    if isinstance(exc, RowRefused):
        return ("row", str(exc))
    if isinstance(exc, TrackingRefused):
        return ("tracking", str(exc))
    return ("sqlite", type(exc).__name__, str(exc), getattr(exc, "sqlite_errorcode", None))


def run_packed(conn: Any, part: bytes) -> None:
    """Run a batch part, its MessagePack as sent, on CONN (a `projector._writer`
    Connection) in the caller's transaction; raises as `execute_ops` raises for the same
    statements decoded: `RowRefused`, `TrackingRefused`, or the error itself."""
    failure = conn.run(part)
    if failure is None:
        return
    if failure[0] == "tracking":
        raise TrackingRefused(TRACKING_REFUSED)
    _, exc, rows = failure
    if rows and row_error(exc):
        raise RowRefused(str(exc)) from exc
    raise exc


class _Batch:
    """The child's batch in progress: begun, fed parts (RUN runs one on CONN), then
    committed (or, once a part failed, rolled back and its later parts only read)."""

    def __init__(self, conn: Any, run: Callable[[Any, bytes], None]):
        self.conn = conn
        self.run = run
        self.failed: tuple[Any, ...] | None = None
        conn.execute("BEGIN")

    def feed(self, part: bytes) -> None:
        if self.failed is not None:
            return
        try:
            self.run(self.conn, part)
        except (RowRefused, TrackingRefused, sqlite3.Error) as exc:
            self.failed = _failure(exc)
            self._rollback()

    def commit(self) -> tuple[Any, ...]:
        if self.failed is not None:
            return self.failed
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            return _failure(exc)
        return ("ok",)

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def _checkpoint(conn: sqlite3.Connection) -> None:
    """Copy the committed batch's pages from the WAL into the database, once the main
    process has the answer: it reads and applies the next batch meanwhile, instead of
    waiting for checkpoints run inside later commits (SQLite's wal_autocheckpoint, kept
    as a bound for a batch larger than it). PASSIVE: it waits for no reader, and what it
    cannot copy now is copied after the next batch. A failure here is no batch's: the
    next commit meets a real I/O error again and reports it."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass


def _peak_rss_kib() -> int | None:
    """This process's peak resident set size (Linux VmHWM), in KiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _load_native(path: str) -> Any:
    """The `projector._writer` extension from PATH ("" in the pure-Python build), or None
    when it cannot be loaded (the sqlite3 module then runs the parts)."""
    if not path:
        return None
    try:
        spec = importlib.util.spec_from_file_location("projector._writer", path)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except (ImportError, OSError):
        return None


def serve(parent: int, packages: str, native: str = "") -> int:
    """The child's loop: open the target, then run batches until told to close. PACKAGES:
    the directory msgspec is imported from; NATIVE: the file of the `projector._writer`
    extension, which runs the parts from their MessagePack ("": the sqlite3 module runs
    them, decoded)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(parent)
    compiled = _load_native(native)
    run: Callable[[Any, bytes], None]
    if compiled is not None:
        run = run_packed
    else:
        sys.path.append(packages)
        import msgspec

        decode = msgspec.msgpack.Decoder().decode

        def run(conn: Any, part: bytes) -> None:
            execute_ops(conn, decode(part))

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    conn: Any = None
    batch: _Batch | None = None
    while True:
        message = _receive(stdin)
        if message is None:
            break
        kind = message[0]
        if kind == "close":
            _send(stdout, ("closed", _peak_rss_kib()))
            break
        try:
            if kind == "batch":
                assert conn is not None
                batch = _Batch(conn, run)
                # The batch's parts follow the header, each a message of its own: read
                # them all first, so the main process is not kept waiting on the pipe.
                received = [_receive_data(stdin) for _ in range(message[1])]
                parts = [part for part in reversed(received) if part is not None]
                del received
                if len(parts) < message[1]:  # the main process is gone: nothing to commit
                    break
                while parts:
                    batch.feed(parts.pop())  # each part freed once run
                answer, batch = batch.commit(), None
            else:  # "open"
                _, path, pragmas = message
                if compiled is not None:
                    conn = compiled.Connection(path)
                else:
                    conn = sqlite3.connect(path, isolation_level=None)
                for pragma in pragmas:
                    conn.execute(pragma)
                answer = ("ok",)
        except Exception as exc:  # a bug: said, not hidden
            answer, batch = ("bug", f"{type(exc).__name__}: {exc}"), None
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")
        _send(stdout, answer)
        if kind == "batch" and answer == ("ok",) and conn is not None:
            _checkpoint(conn)
    if conn is not None:
        conn.close()
    return 0


# ---------------------------------------------------------------- the main process's side


class BatchWriter:
    """The main process's handle on a writer process for TARGET.

    ``ready`` waits until the process has opened TARGET (it starts meanwhile);
    ``submit`` sends a batch and returns at once; ``wait`` returns when it is committed
    and raises, in this process, what went wrong otherwise: `RowRefused` (redo the batch
    one event at a time), `TrackingRefused`, the `sqlite3.Error` (a full disk, an I/O
    error), or `WriterError` (the process died). At most one batch is in flight.
    """

    def __init__(self, target: Path, pragmas: list[str], keep_fds: tuple[int, ...] = ()):
        import msgspec  # here, not at the top: the child imports this file without it

        from events import _native

        self._encode = msgspec.msgpack.Encoder().encode
        packages = str(Path(msgspec.__file__).resolve().parent.parent)
        compiled = _native.extension("projector._writer")
        native = str(Path(compiled.__file__).resolve()) if compiled is not None else ""
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                str(Path(__file__).resolve()),
                str(os.getpid()),
                packages,
                native,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=keep_fds,
        )
        _widen_pipe(self.proc.stdin)
        self.pending = False
        #: Whether the process answered that it opened TARGET (`ready`).
        self.opened = False
        #: Whether it was told to end (`request_close`), its answer not yet read.
        self.closing = False
        #: The writer process's peak RSS in KiB, known once it is closed (Linux).
        self.peak_rss_kib: int | None = None
        # The answer is awaited by `ready`: the process starts (an interpreter, sqlite3,
        # the target opened: 70-120 ms) while the main process reads its first batch.
        try:
            self._submit([marshal.dumps(("open", str(target), pragmas))])
        except BaseException:
            self.close()
            raise

    def ready(self) -> None:
        """Wait until the process has opened the target; raises WriterError (it died, or
        could not open it) or the `sqlite3.Error`. Call before the first `submit`."""
        if not self.opened:
            self.wait()
            self.opened = True

    def _submit(self, messages: list[bytes]) -> None:
        """Send MESSAGES in order, each dropped from the list once sent (a batch's parts
        are not held twice)."""
        assert not self.pending and self.proc.stdin is not None
        messages.reverse()
        try:
            while messages:
                _send_data(self.proc.stdin, messages.pop())
        except (BrokenPipeError, OSError) as exc:
            raise WriterError(self._gone(f"could not be sent a batch ({exc})")) from None
        self.pending = True

    def submit(self, ops: list[Op]) -> bool:
        """Send a batch's statements, which the writer runs in one transaction; False (and
        nothing sent) when they hold a value MessagePack cannot carry (see above)."""
        try:
            parts = [self._encode(part) for part in _parts(ops)]
        except (TypeError, ValueError, OverflowError):
            return False
        # A header, then each part as a message of its own: the batch is held serialized
        # once, not also joined into one message.
        parts.insert(0, marshal.dumps(("batch", len(parts))))
        self._submit(parts)
        return True

    def wait(self) -> None:
        """Wait for the batch in flight (if any) to be committed; raise its failure."""
        if not self.pending:
            return
        self.pending = False
        assert self.proc.stdout is not None
        answer = _receive(self.proc.stdout)
        if answer is None:
            raise WriterError(self._gone("stopped"))
        kind = answer[0]
        if kind == "ok":
            return
        if kind == "row":
            raise RowRefused(answer[1])
        if kind == "tracking":
            raise TrackingRefused(answer[1])
        if kind == "sqlite":
            _, name, text, code = answer
            error = getattr(sqlite3, name, sqlite3.DatabaseError)(text)
            error.sqlite_errorcode = code
            raise error
        raise WriterError(f"the batch writer process failed: {answer[1]}")

    def _gone(self, what: str) -> str:
        code = self.proc.poll()
        how = f"exit code {code}" if code is not None else "still running"
        return f"the batch writer process (pid {self.proc.pid}) {what} ({how})"

    def request_close(self) -> None:
        """Tell the process to end once the batch in flight is committed (its answer is
        dropped: call `wait` first to know it) and its pages checkpointed, without
        waiting: the caller goes on (builds the deferred indexes), then calls `close`."""
        if self.closing or self.proc.stdin is None or self.proc.poll() is not None:
            return
        self.closing = True
        try:
            assert self.proc.stdout is not None
            if self.pending:
                self.pending = False
                _receive(self.proc.stdout)
            _send(self.proc.stdin, ("close",))
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def close(self) -> None:
        """End the process (`request_close`, if not done yet) and wait until it is gone."""
        self.request_close()
        if self.closing and self.proc.stdout is not None:
            self.closing = False
            try:
                answer = _receive(self.proc.stdout)
                if answer is not None and answer[0] == "closed":
                    self.peak_rss_kib = answer[1]
            except OSError:
                pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _widen_pipe(stream: IO[bytes] | None) -> None:
    """Let the pipe to the writer process hold up to `PIPE_BYTES` (Linux F_SETPIPE_SZ;
    64 KiB by default), so a batch's 2 MB are sent in fewer wake-ups of the two
    processes. Elsewhere, or above the system's limit, the pipe stays as it is."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return
    command = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only (Python 3.10+)
    if stream is None or command is None:
        return
    try:
        fcntl.fcntl(stream.fileno(), command, PIPE_BYTES)
    except (OSError, ValueError):
        pass


def _parts(ops: list[Op]) -> list[list[Op]]:
    """OPS in order, cut into lists of at most about `PART_ROWS` rows: an executemany of
    more rows is split into several (the same statements, in the same order)."""
    parts: list[list[Op]] = [[]]
    size = 0
    for verb, sql, params, rows in ops:
        if verb != "many":
            parts[-1].append((verb, sql, params, rows))
            continue
        for start in range(0, len(params), PART_ROWS):
            piece = params[start : start + PART_ROWS]
            if size and size + len(piece) > PART_ROWS:
                parts.append([])
                size = 0
            parts[-1].append((verb, sql, piece, rows))
            size += len(piece)
    return [part for part in parts if part]


class RowRefused(Exception):
    """The target refused a value of the batch's rows (`projector.store.RowError`)."""


class TrackingRefused(Exception):
    """The batch's position is not beyond the one recorded in the target's tracking."""


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""))
