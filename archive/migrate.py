"""Brings a database to the schema this code expects: creates it, upgrades an older one, refuses a newer one."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect

from archive.errors import ArchiveError, SchemaVersionError

MIGRATIONS = Path(__file__).parent / "migrations"
# any fixed number: PostgreSQL serialises concurrent upgrades of one database on this lock
_PG_MIGRATION_LOCK = 0x6B736D61


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migrations found in {MIGRATIONS}"
    return head


def ensure_schema(engine: Engine, where: str, *, upgrade: bool = True) -> str:
    """Upgrade the database behind `engine` to the head revision (or check it is there); returns it.

    `where` names the database in messages. An empty database gets the whole schema.
    """
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    head = head_revision()
    with engine.connect().execution_options(archive_write=True) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return head
        _check_known(script, current, head, where)
        if current is None:
            _check_not_foreign(connection, where)
        if not upgrade:
            raise SchemaVersionError(
                f"the archive at {where} has schema revision {current or 'none'}, this version needs {head}; "
                "open it once with upgrade=True (what archive.open() does by default) or run "
                f"`alembic -c {MIGRATIONS / 'alembic.ini'} -x url=URL upgrade head`"
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return head


def _check_known(script: ScriptDirectory, current: str | None, head: str, where: str) -> None:
    if current is None:
        return
    try:
        known = script.get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise SchemaVersionError(
            f"the archive at {where} has schema revision {current!r}, newer than this version of "
            f"kernelsmith knows (its newest is {head!r}); upgrade kernelsmith to read it. "
            "Nothing was changed in the database."
        )


def _check_not_foreign(connection: Connection, where: str) -> None:
    # tables of ours without a revision stamp: not made by the archive, or half-made by hand
    ours = {"runs", "programs", "evaluations", "llm_calls", "program_inspirations"}
    present = ours & set(inspect(connection).get_table_names())
    if present:
        raise ArchiveError(
            f"the database at {where} already has tables {sorted(present)} but no archive schema revision: "
            "it was not created by kernelsmith's archive; use another path or URL"
        )
