"""The target's run history: `status` reads it, `rollback` undoes the last run with it."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Any

from events.sources import connect_readonly
from projector import backup as backups
from projector.errors import TargetError
from projector.lock import lock_path, writer_lock
from projector.target import PARKED_TABLE, RUNS_TABLE, STATE_TABLE, is_target, refuse_sidecar


def _writer_running(target: Path) -> bool:
    """Whether another process holds TARGET's writer lock right now."""
    path = lock_path(target)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def status(target: Path) -> dict[str, Any]:
    """Source, store, checkpoint out of total, state, counts and backup of TARGET."""
    if not target.exists() or not is_target(target):
        raise TargetError(f"{target}: not a projector target")
    conn = connect_readonly(target)
    try:
        row = conn.execute(
            f"SELECT source, sourceKind, formatVersion, storeId, catalog, onInvalid, position, "
            f"lastEventId, sourceTotal, applied, parked, reapplied, state "
            f"FROM {STATE_TABLE} WHERE id = 1"
        ).fetchone()
        if row is None:
            raise TargetError(f"{target}: no migration recorded yet")
        keys = (
            "source sourceKind formatVersion storeId catalog onInvalid position lastEventId "
            "sourceTotal applied parked reapplied state"
        ).split()
        info: dict[str, Any] = dict(zip(keys, row, strict=True))
        if info["state"] == "running" and not _writer_running(target):
            info["state"] = "interrupted"
        elif info["state"] == "running":
            info["state"] = "running (another process is writing)"
        last = conn.execute(
            f"SELECT run, command, startedAt, endedAt, fromPosition, toPosition, read, applied, "
            f"parked, state, backup, createdTarget FROM {RUNS_TABLE} ORDER BY run DESC LIMIT 1"
        ).fetchone()
        run_keys = (
            "run command startedAt endedAt fromPosition toPosition read applied parked "
            "state backup createdTarget"
        ).split()
        info["lastRun"] = dict(zip(run_keys, last, strict=True)) if last else None
        info["backup"] = last[10] if last else None
        info["runs"] = conn.execute(f"SELECT COUNT(*) FROM {RUNS_TABLE}").fetchone()[0]
        info["parkedByKind"] = dict(
            conn.execute(f"SELECT kind, COUNT(*) FROM {PARKED_TABLE} GROUP BY kind ORDER BY kind")
        )
    finally:
        conn.close()
    info["target"] = str(target)
    return info


def rollback(target: Path) -> dict[str, Any]:
    """Return TARGET to its content before the last run (remove it if that run created it)."""
    if not target.exists():
        raise TargetError(f"{target}: no such target database")
    if not is_target(target):
        raise TargetError(f"{target}: not a projector target")
    refuse_sidecar(target)
    with writer_lock(target):
        conn = sqlite3.connect(target)
        try:
            last = conn.execute(
                f"SELECT run, backup, createdTarget, state FROM {RUNS_TABLE} "
                "ORDER BY run DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
        if last is None:
            raise TargetError(f"{target}: no run recorded; nothing to roll back")
        run, backup, created, state = last
        if created:
            removed = backups.remove_database(target)
            return {
                "target": str(target),
                "run": run,
                "action": "removed",
                "removed": [str(p) for p in removed],
                "message": f"run {run} created {target}; rolled back by removing it",
            }
        if not backup:
            raise TargetError(f"{target}: run {run} has no backup; cannot roll it back")
        backups.restore_backup(Path(backup), target)
        conn = sqlite3.connect(target)
        try:
            conn.execute(f"UPDATE {STATE_TABLE} SET state = 'rolled back' WHERE id = 1")
            conn.commit()
            position = conn.execute(f"SELECT position FROM {STATE_TABLE}").fetchone()
        finally:
            conn.close()
        return {
            "target": str(target),
            "run": run,
            "action": "restored",
            "backup": backup,
            "position": position[0] if position else 0,
            "message": f"run {run} ({state}) rolled back from {backup}",
        }
