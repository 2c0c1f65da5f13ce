"""Reading LiveStore event logs: sources, the event envelope, schemas and upcasting."""

from events.envelope import Event
from events.errors import SourceError
from events.sources import Source, open_source

__all__ = ["Event", "Source", "SourceError", "open_source"]
