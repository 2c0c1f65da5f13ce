"""Backups before each run, taken with SQLite's online backup API, and rollback from them.

A backup is ``TARGET.run<N>-<UTC time>.bak`` beside the target. Only a run that has
something to apply takes one (deleting what a killed attempt at the same run left);
rollback deletes the backup it restored from, and `projector backups TARGET --prune
KEEP` deletes all but the newest KEEP.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from events.sources import connect_readonly
from projector.errors import TargetError

#: ``TARGET.run<N>-<stamp>[-<k>].bak``: the run it was taken before, and when.
_NAME = re.compile(r"\.run(\d+)-(\d{8}T\d{6}(?:\.\d+)?Z)(?:-(\d+))?\.bak$")


def backup_path(target: Path, run: int) -> Path:
    """A new, unused backup name for RUN beside TARGET (reserved by creating it empty).

    The stamp has milliseconds and a counter is added when the name is taken anyway, so two
    runs in the same second (a run, its rollback and the next run) never share a file.
    """
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    base = f"{target.name}.run{run}-{stamp}"
    for k in range(1, 1000):
        path = target.with_name(base + (f"-{k}" if k > 1 else "") + ".bak")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            continue
        except OSError as exc:
            raise TargetError(
                f"{target}: cannot write a backup beside it ({exc.strerror})"
            ) from None
        return path
    raise TargetError(f"{target}: cannot find a free backup name for run {run}")


def _copy(source: Path, destination: Path, *, journal: str | None = None) -> None:
    """Copy SOURCE's pages into DESTINATION with SQLite's online backup API (then set the
    copy's JOURNAL mode, when given)."""
    src = connect_readonly(source)
    try:
        dst = sqlite3.connect(destination)
        try:
            src.backup(dst)
            if journal:
                dst.execute(f"PRAGMA journal_mode = {journal}")
        finally:
            dst.close()
    finally:
        src.close()


def take_backup(
    target: Path, destination: Path, failure: str = "cannot back up before writing"
) -> Path:
    """Copy TARGET to DESTINATION page by page through SQLite (consistent even with a WAL).

    The copy is one self-contained file (rollback-journal mode): reading it, as rollback
    does, then leaves no -wal or -shm beside it. (A target is put back in WAL mode each
    time it is opened for writing: `projector.target.open_target`.) Raises TargetError
    ``TARGET: FAILURE (why)`` when it cannot be made (a full disk), deleting what was made.
    """
    try:
        _copy(target, destination, journal="DELETE")
    except (sqlite3.Error, OSError) as exc:
        delete(destination)
        raise TargetError(f"{target}: {failure} ({exc})") from None
    return destination


def back_up_before(target: Path, run: int) -> Path:
    """TARGET's backup before RUN (`take_backup` into a new `backup_path`), after deleting
    the backups an earlier attempt at RUN left: RUN is the next run number, so a backup
    named after it was taken by a run killed before it committed anything, and holds what
    TARGET still holds (a whole copy, or a partial one with its -journal)."""
    for backup in list_backups(target):
        if backup["run"] == run:
            delete(backup["path"])
    return take_backup(target, backup_path(target, run))


def delete(backup: Path) -> None:
    """Remove BACKUP with any SQLite side files beside it."""
    for path in [backup, *companions(backup)]:
        path.unlink(missing_ok=True)


def locate(target: Path, recorded: str) -> Path:
    """Where a run's RECORDED backup is now: beside TARGET (the folder may have moved, and
    older runs recorded the path relative to the directory they ran in)."""
    beside = target.with_name(Path(recorded).name)
    return beside if beside.exists() or not Path(recorded).exists() else Path(recorded)


def shown(target: Path, recorded: str | None) -> str | None:
    """A run's RECORDED backup as `status` shows it: the absolute path where `locate`
    finds it, or where it was when it is gone (pruned, used by a rollback, removed by
    hand), so that a target's and its app database's status name it alike."""
    if not recorded:
        return None
    return str(locate(target, recorded).absolute())


def restore_backup(backup: Path, target: Path) -> None:
    """Overwrite TARGET's content with BACKUP's, through SQLite's backup API."""
    if not backup.exists():
        raise TargetError(
            f"{target}: backup {backup} is missing (deleted by `backups --prune`, or moved); "
            "cannot roll back"
        )
    try:
        _copy(backup, target)
    except (sqlite3.Error, OSError) as exc:
        raise TargetError(f"{target}: cannot restore {backup} ({exc})") from None


def companions(target: Path) -> list[Path]:
    """TARGET's SQLite side files that exist: WAL, shared memory, rollback journal."""
    found = []
    for suffix in ("-wal", "-shm", "-journal"):
        path = target.with_name(target.name + suffix)
        if path.exists():
            found.append(path)
    return found


def empty_database(target: Path) -> list[Path]:
    """Empty, in place, a file a run made a target in when it was there, empty (SQLite took
    it for an empty database): its side files and any backups beside it go; return them."""
    removed = companions(target)
    for path in removed:
        path.unlink()
    for backup in list_backups(target):
        delete(backup["path"])
        removed.append(backup["path"])
    os.truncate(target, 0)
    return removed


def remove_database(target: Path) -> list[Path]:
    """Delete a target created by the run being rolled back, with its side files and any
    backups left beside it."""
    removed = []
    for path in [target, *companions(target)]:
        if path.exists():
            path.unlink()
            removed.append(path)
    for backup in list_backups(target):
        delete(backup["path"])
        removed.append(backup["path"])
    return removed


def list_backups(target: Path) -> list[dict[str, Any]]:
    """TARGET's backups, oldest first: ``{"path" (absolute), "run", "takenAt", "bytes"}``."""
    found: list[tuple[tuple[str, int, int], dict[str, Any]]] = []
    prefix = target.name + ".run"
    folder = target.parent if str(target.parent) else Path(".")
    try:
        children = list(folder.iterdir())
    except OSError:
        return []
    for path in children:
        if not path.name.startswith(prefix):
            continue
        match = _NAME.search(path.name[len(target.name) :])
        if match is None or not path.is_file():
            continue
        stamp, run = match.group(2), int(match.group(1))
        taken = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:]}"
        info = {
            "path": target.absolute().with_name(path.name),
            "run": run,
            "takenAt": taken,
            "bytes": path.stat().st_size,
        }
        # A counter (-2, -3) marks a later backup made within the same millisecond.
        found.append(((taken, run, int(match.group(3) or 1)), info))
    return [info for _, info in sorted(found, key=lambda item: item[0])]
