"""Reading LiveStore event logs: sources, the event envelope, schemas and upcasting."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# First, before any module of this package or of projector is found: which build of the
# hot-path modules runs (compiled or pure Python; events/_native.py).
from events import _native  # noqa: F401

if TYPE_CHECKING:
    from events.envelope import Event
    from events.errors import SourceError
    from events.sources import Source, open_source

#: Imported when first used, so that importing the package (which `projector` does, for
#: the build choice above) costs nothing more.
_EXPORTS = {
    "Event": "events.envelope",
    "SourceError": "events.errors",
    "Source": "events.sources",
    "open_source": "events.sources",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'events' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = ["Event", "Source", "SourceError", "open_source"]
