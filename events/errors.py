"""Exceptions raised while reading and checking a LiveStore event log."""


class EventsError(Exception):
    """Base class for every error of the events layer."""


class SourceError(EventsError):
    """The source is not a readable LiveStore event log."""


class CatalogError(EventsError):
    """A schema catalog is missing, malformed or ambiguous."""


class ExportError(EventsError):
    """The export cannot be written where it was asked to go."""
