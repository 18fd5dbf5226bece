"""Alembic's entry point: migrates the connection archive.open() hands over, or a URL given with -x url=."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from archive.database import create_archive_engine, resolve_url
from archive.schema import metadata

config = context.config


def _configure_and_run(**options) -> None:
    # batch mode: SQLite can only alter a table by copying it, which Alembic does in batch mode
    context.configure(target_metadata=metadata, render_as_batch=True, compare_type=True, **options)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str | None:
    return context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")


if config.attributes.get("connection") is not None:
    _configure_and_run(connection=config.attributes["connection"])
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    if context.is_offline_mode():
        _configure_and_run(url=resolve_url(_url()), literal_binds=True)
    else:
        with create_archive_engine(resolve_url(_url())).begin() as connection:
            _configure_and_run(connection=connection)
