"""livestore-projector: migrate a LiveStore event log into plain relational SQLite tables."""

__version__ = "0.1.0"
