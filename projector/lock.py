"""One writer at a time: an advisory lock beside the target, held for a whole command.

The lock file (``TARGET.lock``) exists only while a writer holds it: it is removed on
release, so nothing is left beside the target. Removing a lock file is safe because a
process that locked a file which was unlinked meanwhile sees that the path now names
another file (or none), and starts over (the classic flock-and-unlink race).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from events.scratch import missing_folders, remove_folders
from projector.errors import Busy, TargetError

#: The descriptor of each lock this process holds, by lock file (`held_lock_fd`).
_HELD: dict[str, int] = {}


def lock_path(target: Path) -> Path:
    """TARGET's lock file, beside the database itself: a symbolic link is resolved, so a
    target named through a link and by its own path share one lock."""
    real = Path(os.path.realpath(target))
    return real.with_name(real.name + ".lock")


def held_lock_fd(target: Path) -> int | None:
    """The descriptor of TARGET's lock while this process holds it: a child process that
    inherits it holds the lock as long as it lives (`projector.writer`)."""
    return _HELD.get(str(lock_path(target).absolute()))


def _open_lock(target: Path, path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise TargetError(
            f"{target}: cannot create the lock file {path} ({exc.strerror})"
        ) from None


def _still_linked(fd: int, path: Path) -> bool:
    """Whether PATH still names the file open at FD (another writer may have removed it)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)


def writer_holder(target: Path) -> str | None:
    """The pid (as its lock file says) of another process holding TARGET's writer lock
    right now, or None; neither takes the lock nor creates a file."""
    try:
        fd = os.open(lock_path(target), os.O_RDONLY)
    except OSError:  # no lock file: no writer (a writer removes it when it is done)
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def refuse_if_busy(target: Path) -> None:
    """Raise `Busy` as `writer_lock` would when another process holds TARGET's lock,
    without taking it (a dry run is refused when the real run would be)."""
    holder = writer_holder(target)
    if holder is not None:
        raise _busy(target, holder)


def _pid_in(fd: int) -> str:
    """The pid the lock file open at FD names ("?" when it names none yet)."""
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"


def _busy(target: Path, holder: str) -> Busy:
    return Busy(
        f"{target}: another projector (pid {holder}) is writing this target; wait for it to finish"
    )


def refuse_hard_links(target: Path) -> None:
    """Raise `TargetError` when the database TARGET names has more than one name (hard
    links). Each name would get a lock, a -journal and a -wal of its own, so two
    processes writing through two names could corrupt it ("How To Corrupt An SQLite
    Database File", 2.5 Multiple links to the same file: sqlite.org/howtocorrupt.html;
    SQLite's unix VFS warns of it too). A symbolic link is resolved (`lock_path`)."""
    try:
        links = os.stat(target).st_nlink
    except OSError:  # not there yet (a first replay creates it), or not readable
        return
    if links > 1:
        raise TargetError(
            f"{target}: the database has {links} names (hard links); a writer through "
            "another name would not see this one's lock or journal (sqlite.org/"
            "howtocorrupt.html, 2.5); keep one name, or copy it"
        )


@contextmanager
def writer_lock(target: Path) -> Iterator[None]:
    """Hold TARGET's writer lock, or raise `Busy` at once if another process holds it.

    Raises `TargetError` (one line) when the lock file cannot be created: a read-only
    file system, a folder the user cannot write, or a directory in the lock file's place;
    and when the database has other names (hard links, `refuse_hard_links`).

    The folders it creates for TARGET are removed again on release when TARGET is not
    there (a refused or undone first run, a dry run): what changes nothing leaves nothing.
    """
    path = lock_path(target)
    created = missing_folders(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TargetError(f"{target}: cannot create its folder ({exc.strerror})") from None
    while True:
        fd = _open_lock(target, path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _pid_in(fd)
            os.close(fd)
            raise _busy(target, holder) from None
        if _still_linked(fd, path):
            break
        os.close(fd)  # locked a file its last holder had just removed: lock the new one
    key = str(path.absolute())
    try:
        refuse_hard_links(target)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _HELD[key] = fd
        yield
    finally:
        _HELD.pop(key, None)
        # Unlinked before it is unlocked: a process that opened it meanwhile starts over.
        try:
            path.unlink()
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        if created and not os.path.lexists(path.with_name(path.name[: -len(".lock")])):
            remove_folders(created)
