"""Golden cases: replay each fixtures/<case>/ source and dump the target's schema and rows.

`make golden` (python -m tests.golden) rewrites fixtures/<case>/expected.json; review the
diff before committing it. tests/test_golden.py compares against those files exactly.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from events.validation import Catalog
from projector.digest import DIGEST_TABLES
from projector.log import configure
from projector.replay import ReplayOptions, replay
from tests.conftest import FIXTURES


def cases() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for case_file in sorted(FIXTURES.glob("*/case.json")):
        found.append((case_file.parent.name, json.loads(case_file.read_text("utf-8"))))
    return found


def dump(target: Path) -> dict[str, Any]:
    """The target's app tables and parked events: DDL and rows as lists of dicts."""
    conn = sqlite3.connect(target)
    conn.row_factory = sqlite3.Row
    try:
        schema = [
            row[0]
            for row in conn.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name IN "
                f"({','.join('?' * len(DIGEST_TABLES))}) ORDER BY type DESC, name",
                list(DIGEST_TABLES),
            )
        ]
        tables = {}
        for table, key in DIGEST_TABLES.items():
            order = ", ".join(f'"{k}"' for k in key)
            tables[table] = [
                dict(r) for r in conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}')
            ]
    finally:
        conn.close()
    return {"schema": schema, "tables": tables}


def run_case(case: str, spec: dict[str, Any], source: str, workdir: Path) -> Path:
    """Replay one source of CASE into a new target under WORKDIR; return the target."""
    target = workdir / f"{case}-{Path(source).name}.db"
    catalog = Catalog.bundled(spec["catalog"]) if "catalog" in spec else None
    options = ReplayOptions(on_invalid=spec.get("onInvalid", "fail"), catalog=catalog)
    replay(FIXTURES / case / source, target, options)
    return target


def main() -> int:
    configure("human", "quiet")
    with tempfile.TemporaryDirectory() as tmp:
        for case, spec in cases():
            result = dump(run_case(case, spec, spec["sources"][0], Path(tmp)))
            out = FIXTURES / case / "expected.json"
            out.write_text(json.dumps(result, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
            print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
