"""Schema migrations: a new database gets the whole schema, the migrations build exactly the tables the
code declares, an archive of an older revision is upgraded with its runs, a newer or foreign database is
refused untouched, and an installed wheel migrates too."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, text

import archive
from archive import ArchiveError, SchemaVersionError
from archive.database import resolve_url
from archive.migrate import alembic_config, head_revision
from archive.rows import now
from archive.schema import metadata, runs

ROOT = Path(__file__).resolve().parents[2]


def _revision(url: str) -> str | None:
    engine = create_engine(resolve_url(url))
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    return revision


def test_a_new_database_gets_the_newest_schema(archive_url: str):
    archive.open(archive_url).close()
    assert _revision(archive_url) == head_revision()
    archive.open(archive_url).close()  # opening again is a no-op
    assert _revision(archive_url) == head_revision()


def _differences_from_declared_schema(url: str) -> list:
    engine = create_engine(resolve_url(url))
    with engine.connect() as conn:
        differences = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    engine.dispose()
    return differences


def test_the_migrations_build_exactly_the_declared_schema(archive_url: str):
    archive.open(archive_url).close()
    differences = _differences_from_declared_schema(archive_url)
    assert differences == [], "archive/schema.py and the migrations disagree: write a new revision"


def test_an_archive_of_revision_0002_is_upgraded_with_its_runs(archive_url: str):
    # an archive as kernelsmith left it before run leases: stamped 0002, holding a run
    engine = create_engine(resolve_url(archive_url))
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        created = now()
        conn.execute(insert(runs).values(
            task_name="softmax", reference_source="class Model: ...", reference_hash="0" * 64, config={},
            status="stopped", seed=3, created_at=created, updated_at=created,
        ))
    engine.dispose()
    assert _revision(archive_url) == "0002"

    with archive.open(archive_url) as db:
        (run,) = db.list_runs()
        assert (run.task_name, run.status, run.seed) == ("softmax", archive.RunStatus.stopped, 3)
        db.release(db.claim_run(run))  # its run can be resumed: the process resuming it holds it
    assert _revision(archive_url) == head_revision()
    assert _differences_from_declared_schema(archive_url) == []


def test_a_database_from_a_newer_version_is_refused_untouched(archive_url: str):
    with archive.open(archive_url) as db:
        run = db.create_run("softmax", "class Model: ...")
    engine = create_engine(resolve_url(archive_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()

    with pytest.raises(SchemaVersionError, match="'9999_from_the_future', newer than this version"):
        archive.open(archive_url)
    assert _revision(archive_url) == "9999_from_the_future"
    engine = create_engine(resolve_url(archive_url))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT task_name FROM runs")).scalars().all() == [run.task_name]
    engine.dispose()


def test_an_older_database_is_upgraded_only_when_allowed(archive_url: str):
    # an empty database is the oldest there is: revision none
    with pytest.raises(
        SchemaVersionError, match="has schema revision none, this version needs .* upgrade head"
    ):
        archive.open(archive_url, upgrade=False)
    assert _revision(archive_url) is None
    archive.open(archive_url).close()
    archive.open(archive_url, upgrade=False).close()
    assert _revision(archive_url) == head_revision()


def test_tables_of_the_same_name_not_made_by_the_archive_are_left_alone(tmp_path):
    path = tmp_path / "someone-else.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE runs (id INTEGER PRIMARY KEY, what TEXT)"))
    engine.dispose()
    with pytest.raises(ArchiveError, match=r"already has tables \['runs'\] but no archive schema revision"):
        archive.open(path)


def test_an_installed_wheel_carries_its_migrations(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            wheels,
            ROOT,
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("kernelsmith-*.whl")
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)  # a wheel is installed by unpacking it
    assert (installed / "archive" / "migrations" / "env.py").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = "import archive; db = archive.open(); db.create_run('t', 'ref'); print(archive.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(installed)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(installed / "archive" / "__init__.py")
    assert _revision(str(elsewhere / "kernelsmith.db")) == head_revision()
