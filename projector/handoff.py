"""Telling a handed-over app database from a projector target, without `finalize`.

`projector.finalize` writes APP_DB with its bookkeeping in the sidecar
``APP_DB.projector.db`` (its module doc). The commands that only need to recognise such
a file (replay, resume, replay-parked, rollback, backups, status, digest, verify) read it
through this module, which imports no more than `projector.target` does: importing
finalize (verify, the Drizzle files, the app schema) cost every replay about 40 ms.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from events.sources import connect_readonly
from projector.errors import TargetError
from projector.target import HANDOFF_TABLE, is_target, real_target

#: What a sidecar's name adds to its APP_DB's.
SIDECAR_SUFFIX = ".projector.db"


def sidecar_path(app_db: Path) -> Path:
    """Where APP_DB's bookkeeping sidecar lives: ``APP_DB.projector.db``, beside the
    database itself when APP_DB is a symbolic link to it (`real_target`)."""
    app_db = real_target(app_db)
    return app_db.with_name(app_db.name + SIDECAR_SUFFIX)


def last_handoff(sidecar: Path) -> dict[str, Any] | None:
    """The latest `_projector_handoff` record of SIDECAR (None when it holds none)."""
    conn = connect_readonly(sidecar)
    try:
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute(f"SELECT * FROM {HANDOFF_TABLE} ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.OperationalError:
            return None
        return dict(row) if row else None
    finally:
        conn.close()


def is_handed_over(path: Path) -> bool:
    """PATH is an app database `finalize` wrote (its sidecar is beside it); a folder
    (``.``, ``/``: no file name to put a sidecar beside) never is."""
    return path.is_file() and sidecar_path(path).exists() and not is_target(path)


def refuse_handed_over(path: Path, command: str) -> None:
    """Raise TargetError when PATH is an app database finalize wrote: COMMAND (verify,
    finalize) works on the projector target it came from, which the message names."""
    if is_handed_over(path):
        handoff = last_handoff(sidecar_path(path))
        where = f" ({handoff['target']})" if handoff else ""
        raise TargetError(
            f"{path}: is an app database handed over by finalize, not a projector target; "
            f"{command} the target it came from{where}"
        )


__all__ = ["SIDECAR_SUFFIX", "is_handed_over", "last_handoff", "refuse_handed_over", "sidecar_path"]
