"""Errors the archive raises for the caller to show: each says what went wrong, where, and what to try."""


class ArchiveError(Exception):
    """A database that cannot be opened or used, or a call that would store something inconsistent."""


class SchemaVersionError(ArchiveError):
    """The database's schema revision is not one this version of the archive can use."""


class RunBusy(ArchiveError):
    """Another live process holds the run's lease (it is evolving that run); the message names it."""
