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


__all__ = ["process_gone", "remove_dead"]
