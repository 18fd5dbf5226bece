"""Where the archive lives: a path or SQLAlchemy URL turned into an engine set up for crash safety.

SQLite (the default, at ./kernelsmith.db) runs in WAL mode so a reader never blocks the writer, with
foreign keys enforced, synchronous=FULL so a committed row survives a crash, and a busy timeout.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from archive.errors import ArchiveError

DEFAULT_PATH = Path("kernelsmith.db")
BUSY_TIMEOUT_MS = 30_000


def resolve_url(location: str | os.PathLike[str] | None) -> URL:
    """A SQLAlchemy URL for a path, a URL string, or None (the default file in the current directory)."""
    if location is None:
        location = DEFAULT_PATH
    if str(location) == ":memory:":
        # SQLite's in-memory name would otherwise become a file called ":memory:"; a search's lineage
        # is meant to outlive its process, so say what to use instead
        raise ArchiveError("an archive cannot live in memory: give a file path (a temporary one for throwaway runs)")
    if isinstance(location, os.PathLike) or "://" not in str(location):
        path = Path(location).expanduser().resolve()
        if path.is_dir():
            raise ArchiveError(
                f"archive path {path} is a directory; give a file path such as {path / 'kernelsmith.db'}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        return URL.create("sqlite+pysqlite", database=str(path))
    try:
        url = make_url(str(location))
    except (ArgumentError, ValueError) as exc:
        raise ArchiveError(f"not a database path or SQLAlchemy URL: {location!r} ({exc})") from None
    if url.drivername == "postgresql":
        # the driver kernelsmith installs, whatever SQLAlchemy's default for a bare postgresql:// is
        url = url.set(drivername="postgresql+psycopg")
    return url


def display_url(url: URL) -> str:
    """The URL as shown in messages: never with its password."""
    return url.render_as_string(hide_password=True)


def create_archive_engine(url: URL) -> Engine:
    """An engine for `url`; SQLite connections get the pragmas and locking described above."""
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url)
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ArchiveError(
            f"cannot open the archive at {display_url(url)}: {exc}; "
            "is the database driver installed (psycopg for PostgreSQL)?"
        ) from None


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    engine = create_engine(
        url,
        # one shared connection, or every checkout would see a fresh empty in-memory database
        poolclass=StaticPool if in_memory else None,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # let SQLAlchemy's begin event below decide how each transaction starts
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # A write takes the write lock up front: a deferred transaction that reads, then writes, fails
        # at once with "database is locked" when another writer committed meanwhile (the busy
        # timeout cannot help it), while BEGIN IMMEDIATE simply waits for its turn.
        if connection.get_execution_options().get("archive_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine
