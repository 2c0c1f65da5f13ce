"""The target's records as a user reads them: `status`, `parked`, `backups`, and `rollback`,
which undoes the last run with them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from events.sources import connect_readonly
from projector import backup as backups
from projector.errors import TargetError
from projector.handoff import refuse_handed_over
from projector.lock import held_lock_fd, writer_holder, writer_lock
from projector.target import (
    PARKED_TABLE,
    RUNS_TABLE,
    STATE_TABLE,
    check_writable,
    deferred_tables,
    real_target,
    refuse_sidecar,
    require_target,
    state_columns,
)


def shown_state(state: str, target: Path) -> str:
    """A run's recorded STATE as a user should read it: "running" is "interrupted" when no
    other process holds TARGET's writer lock (it was killed; under this process's own
    lock, as rollback and finalize take it, too), else says another one writes."""
    if state != "running":
        return state
    if held_lock_fd(target) is not None or writer_holder(target) is None:
        return "interrupted"
    return "running (another process is writing)"


def status(target: Path) -> dict[str, Any]:
    """Source, store, checkpoint out of total, state, counts and backup of TARGET."""
    target = real_target(target)
    require_target(target)
    conn = connect_readonly(target)
    try:
        # A target made before strictKeys or deferredIndexes has neither.
        strict, deferred_sql = state_columns(conn, strictKeys="0", deferredIndexes="NULL").values()
        row = conn.execute(
            f"SELECT source, sourceKind, formatVersion, storeId, catalog, onInvalid, {strict}, "
            f"position, lastEventId, sourceTotal, applied, parked, reapplied, state "
            f"FROM {STATE_TABLE} WHERE id = 1"
        ).fetchone()
        if row is None:
            holder = writer_holder(target)
            raise TargetError(
                f"{target}: no migration recorded yet"
                + (
                    f": another projector (pid {holder}) is writing its first batch; ask again "
                    "in a moment"
                    if holder is not None
                    else ""
                )
            )
        keys = (
            "source sourceKind formatVersion storeId catalog onInvalid strictKeys position "
            "lastEventId sourceTotal applied parked reapplied state"
        ).split()
        info: dict[str, Any] = dict(zip(keys, row, strict=True))
        info["state"] = shown_state(info["state"], target)
        info["strictKeys"] = bool(info["strictKeys"])
        last = conn.execute(
            f"SELECT run, command, startedAt, endedAt, fromPosition, toPosition, read, applied, "
            f"parked, state, backup, createdTarget FROM {RUNS_TABLE} ORDER BY run DESC LIMIT 1"
        ).fetchone()
        run_keys = (
            "run command startedAt endedAt fromPosition toPosition read applied parked "
            "state backup createdTarget"
        ).split()
        info["lastRun"] = dict(zip(run_keys, last, strict=True)) if last else None
        if info["lastRun"] is not None:
            info["lastRun"]["createdTarget"] = bool(info["lastRun"]["createdTarget"])
        # Where the backup is now (a relative path was recorded relative to the run's
        # working directory; `backups.locate`).
        info["backup"] = backups.shown(target, last[10] if last else None)
        info["runs"] = conn.execute(f"SELECT COUNT(*) FROM {RUNS_TABLE}").fetchone()[0]
        info["parkedByKind"] = dict(
            conn.execute(f"SELECT kind, COUNT(*) FROM {PARKED_TABLE} GROUP BY kind ORDER BY kind")
        )
        # A first run not finished yet builds these indexes and fills these derived
        # tables at its end (bulk load).
        deferred = conn.execute(
            f"SELECT {deferred_sql} FROM {STATE_TABLE} WHERE id = 1"
        ).fetchone()[0]
        info["deferredIndexes"] = len(json.loads(deferred)) if deferred else 0
        info["deferredTables"] = deferred_tables(conn)
    finally:
        conn.close()
    info["target"] = str(target)
    return info


def rollback(target: Path) -> dict[str, Any]:
    """Return TARGET to its content before the last run and forget that run.

    The run's backup is restored and then deleted; a run that created TARGET is undone by
    removing TARGET (with its WAL files and any backups beside it); a run that applied
    nothing (no backup was taken) is only forgotten, and the migration's state is left as
    it is. The writer lock is held throughout and its file removed afterwards.
    Returns ``{"target", "run", "action": "restored"|"removed"|"emptied"|"forgotten",
    "message", ...}``.
    Raises TargetError, Busy.
    """
    target = real_target(target)
    refuse_handed_over(target, "rollback")
    require_target(target)
    refuse_sidecar(target)
    check_writable(target)
    with writer_lock(target):
        conn = connect_readonly(target)
        try:
            last = conn.execute(
                f"SELECT run, backup, createdTarget, state, read FROM {RUNS_TABLE} "
                "ORDER BY run DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
        if last is None:
            raise TargetError(f"{target}: no run recorded; nothing to roll back")
        run, backup, created, state, read = last
        state = shown_state(state, target)  # a run still "running" was killed
        if created:  # 2: made in a file that was there, empty: emptied again, in place
            emptied = created == 2
            removed = (backups.empty_database if emptied else backups.remove_database)(target)
            return {
                "target": str(target),
                "run": run,
                "action": "emptied" if emptied else "removed",
                "removed": [str(p) for p in removed],
                "message": f"run {run} created the target in {target}, an empty file; rolled "
                "back by emptying it"
                if emptied
                else f"run {run} created {target}; rolled back by removing it",
            }
        if not backup and not read:
            conn = sqlite3.connect(target)
            try:
                with conn:
                    conn.execute(f"DELETE FROM {RUNS_TABLE} WHERE run = ?", (run,))
                position, now = conn.execute(
                    f"SELECT position, state FROM {STATE_TABLE}"
                ).fetchone()
            finally:
                conn.close()
            return {
                "target": str(target),
                "run": run,
                "action": "forgotten",
                "position": position,
                "message": f"run {run} applied nothing; {target} is unchanged ({now})",
            }
        if not backup:
            raise TargetError(f"{target}: run {run} has no backup; cannot roll it back")
        used = backups.locate(target, backup)
        backups.restore_backup(used, target)
        conn = sqlite3.connect(target)
        try:
            with conn:
                conn.execute(f"UPDATE {STATE_TABLE} SET state = 'rolled back' WHERE id = 1")
            position = conn.execute(f"SELECT position FROM {STATE_TABLE}").fetchone()
        finally:
            conn.close()
        backups.delete(used)
        return {
            "target": str(target),
            "run": run,
            "action": "restored",
            "backup": str(used),
            "position": position[0] if position else 0,
            "message": f"run {run} ({state}) rolled back from {used} (backup removed)",
        }


def backups_of(target: Path, prune: int | None = None) -> dict[str, Any]:
    """TARGET's backups (oldest first), each with the run that can be rolled back with it;
    with PRUNE, all but the newest PRUNE are deleted first (under the writer lock).

    Returns ``{"target", "backups": [{"path", "run", "takenAt", "bytes", "usedBy"}],
    "bytes", "pruned": [...], "prunedBytes"}``. ``usedBy`` is the run whose rollback
    restores it, or None for a backup no run refers to (a run killed before it
    committed anything: the next run deletes it, `backup.back_up_before`). Raises
    TargetError, Busy.
    """
    target = real_target(target)
    refuse_handed_over(target, "list the backups of")  # they are beside the target
    require_target(target)
    pruned: list[dict[str, Any]] = []
    if prune is not None:
        if prune < 0:
            raise TargetError(f"--prune {prune}: keep a number of backups >= 0")
        check_writable(target)
        with writer_lock(target):
            found = list_backups_used(target)
            doomed = found[: max(len(found) - prune, 0)]
            for backup in doomed:
                backups.delete(backup["path"])
            pruned = doomed
    found = list_backups_used(target)
    as_text = [{**b, "path": str(b["path"])} for b in found]
    return {
        "target": str(target),
        "backups": as_text,
        "bytes": sum(b["bytes"] for b in found),
        "pruned": [{**b, "path": str(b["path"])} for b in pruned],
        "prunedBytes": sum(b["bytes"] for b in pruned),
    }


def list_backups_used(target: Path) -> list[dict[str, Any]]:
    found = backups.list_backups(target)
    conn = connect_readonly(target)
    try:
        recorded = {
            Path(backup).name: run
            for run, backup in conn.execute(
                f"SELECT run, backup FROM {RUNS_TABLE} WHERE backup IS NOT NULL"
            )
        }
    finally:
        conn.close()
    for backup in found:
        backup["usedBy"] = recorded.get(backup["path"].name)
    return found


def parked(target: Path, kind: str | None = None) -> dict[str, Any]:
    """TARGET's parked events in position order (only those of KIND when given).

    Returns ``{"target", "parked": total, "byKind", "events": [{"position", "eventId",
    "name", "kind", "reason", "row", "waitsOn"}]}``: ``row`` is the row the event touches
    (``table:key``, ``table:*`` when its args could not name one); a held event's
    ``waitsOn`` is the parked event at the root of its hold: the earliest it waits for
    (on its row or its table), or that one's cause when it is held itself.
    Raises TargetError.
    """
    # The compiled handlers' module: not for status.
    from projector.handlers import any_row, entity_list

    require_target(target)
    conn = connect_readonly(target)
    try:
        rows = conn.execute(
            f"SELECT position, eventId, name, kind, reason, entity FROM {PARKED_TABLE} "
            "ORDER BY position"
        ).fetchall()
    finally:
        conn.close()
    Label = tuple[int, str]  # (position, "e12 (#14)"): the earliest sorts first
    first: dict[str, Label] = {}  # entity -> the first parked event holding it
    first_in_table: dict[str, Label] = {}  # table -> the first parked event on a row of it
    root: dict[int, Label] = {}  # a held event's position -> the event at the root of it
    events = []
    by_kind: dict[str, int] = {}
    for position, event_id, name, what, reason, entity in rows:
        by_kind[what] = by_kind.get(what, 0) + 1
        waits_on = None
        entities = entity_list(entity)
        label = (position, f"{event_id} (#{position:,})")
        if what == "held":
            # Held by an earlier park on one of its rows, on its whole table (args too
            # broken to name a row), or on any row of a table it changes in bulk: the
            # earliest is the cause, and the cause of a cause that is itself held is what
            # it waits on (see Projection.apply).
            causes = []
            for e in entities:
                table = e.split(":", 1)[0]
                causes += [first[k] for k in (e, any_row(table)) if k in first]
                if e == any_row(table) and table in first_in_table:
                    causes.append(first_in_table[table])
            if causes:
                cause = min(causes)
                root[position] = root.get(cause[0], cause)
                waits_on = root[position][1]
        for e in entities:
            first.setdefault(e, label)
            first_in_table.setdefault(e.split(":", 1)[0], label)
        if kind is None or what == kind:
            events.append(
                {
                    "position": position,
                    "eventId": event_id,
                    "name": name if isinstance(name, str) else repr(name),
                    "kind": what,
                    "reason": reason,
                    "row": entity,
                    "waitsOn": waits_on,
                }
            )
    return {
        "target": str(target),
        "parked": len(rows),
        "byKind": dict(sorted(by_kind.items())),
        "kind": kind,
        "events": events,
    }
