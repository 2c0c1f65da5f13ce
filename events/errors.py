"""Exceptions raised while reading and checking a LiveStore event log."""


class EventsError(Exception):
    """Base class for every error of the events layer."""


class SourceError(EventsError):
    """The source is not a readable LiveStore event log."""


class TextNotUtf8(SourceError):
    """Bytes read as a TEXT value's UTF-8 are not UTF-8 (`events.envelope.args_text`): the
    file is damaged. The message names the event; the caller adds the file's path."""


class SourceBusy(SourceError):
    """The source stayed locked by another process, or kept changing, past the lock timeout."""


class UnreadableDatabase(EventsError):
    """A SQLite file cannot be read as it stands (`events.sources.connect_readonly`)."""


class CatalogError(EventsError):
    """A schema catalog is missing, malformed or ambiguous."""


class ExportError(EventsError):
    """The export cannot be written where it was asked to go."""
