"""Backups before each run, taken with SQLite's online backup API, and rollback from them."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from events.sources import connect_readonly
from projector.errors import TargetError


def backup_path(target: Path, run: int) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return target.with_name(f"{target.name}.run{run}-{stamp}.bak")


def _copy(source: Path, destination: Path) -> None:
    """Copy SOURCE's pages into DESTINATION with SQLite's online backup API."""
    src = connect_readonly(source)
    dst = sqlite3.connect(destination)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def take_backup(target: Path, destination: Path) -> Path:
    """Copy TARGET to DESTINATION page by page through SQLite (consistent even with a WAL)."""
    try:
        _copy(target, destination)
    except sqlite3.Error as exc:
        destination.unlink(missing_ok=True)
        raise TargetError(f"{target}: cannot back up before writing ({exc})") from None
    return destination


def restore_backup(backup: Path, target: Path) -> None:
    """Overwrite TARGET's content with BACKUP's, through SQLite's backup API."""
    if not backup.exists():
        raise TargetError(f"{target}: backup {backup} is missing; cannot roll back")
    _copy(backup, target)


def remove_database(target: Path) -> list[Path]:
    """Delete a target created by the run being rolled back, with its WAL files."""
    removed = []
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = target.with_name(target.name + suffix)
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed
