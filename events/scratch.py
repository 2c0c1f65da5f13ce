"""Scratch files named after the process that writes them, and removing those whose
process is gone (killed before it could remove its own: SIGKILL, a power cut).

A command writes its output through such a file beside it (an export's
``.OUT.<pid>.partial``, finalize's ``.APP_DB.tmp<pid>``), or copies into a folder named
after itself (a dry run), and removes it when it ends, whether it succeeded or not. Only
a process killed outright leaves it behind; the next run of the same command removes
what such processes left. A file whose pid names a live process (a run in progress, or
a pid reused since) is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def process_gone(pid: int) -> bool:
    """Whether no process has PID (signal 0 finds none: kill(2)); False for a process of
    another user, which may well be running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def remove_dead(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    """Remove the entries of FOLDER whose name PATTERN matches whole, with the pid in its
    group ``pid``, when that process is gone (a folder with what it holds); return them.
    What cannot be listed or removed is left as it is."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found is None or not process_gone(int(found["pid"])):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


def missing_folders(folder: Path) -> list[Path]:
    """FOLDER and those of its parents that do not exist yet, deepest first."""
    missing: list[Path] = []
    while not os.path.lexists(folder) and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_folders(created: list[Path]) -> None:
    """Remove the folders CREATED (`missing_folders`, deepest first) while they are empty:
    one that another process has filled meanwhile stays, with its parents."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            break


@contextmanager
def folders_for(path: Path) -> Iterator[None]:
    """Create the missing folders of PATH (as ``mkdir -p`` of its parent), and remove
    those again on the way out when PATH is not there then: a command that failed or was
    refused leaves no folder behind, as replay leaves none for its target
    (`projector.lock.writer_lock`). Raises OSError when a folder cannot be created."""
    created = missing_folders(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield
    finally:
        if created and not os.path.lexists(path):
            remove_folders(created)


__all__ = ["folders_for", "missing_folders", "process_gone", "remove_dead", "remove_folders"]
