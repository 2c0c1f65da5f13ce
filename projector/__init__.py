"""livestore-projector: migrate a LiveStore event log into plain relational SQLite tables."""

# First, before any module of this package is found: which build of the hot-path modules
# runs (compiled or pure Python; events/_native.py).
from events import _native  # noqa: F401

__version__ = "0.1.0"
