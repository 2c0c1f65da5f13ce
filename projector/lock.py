"""One writer at a time: an advisory lock beside the target, held for a whole command."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from projector.errors import Busy


def lock_path(target: Path) -> Path:
    return target.with_name(target.name + ".lock")


@contextmanager
def writer_lock(target: Path) -> Iterator[None]:
    """Hold TARGET's writer lock, or raise `Busy` at once if another process holds it."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise Busy(
                f"{target}: another projector (pid {holder}) is writing this target; "
                "wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
