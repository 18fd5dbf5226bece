"""Where an archive lives and how SQLite behaves under a concurrent reader and a concurrent writer."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import archive
from archive import ArchiveError
from archive.database import DEFAULT_PATH

REFERENCE = "class Model: ..."


def test_the_default_archive_is_kernelsmith_db_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with archive.open() as db:
        db.create_run("softmax", REFERENCE)
    assert DEFAULT_PATH == Path("kernelsmith.db")
    assert (tmp_path / "kernelsmith.db").is_file()


def test_a_path_a_pathlike_and_a_url_open_the_same_file(tmp_path):
    path = tmp_path / "nested" / "dirs" / "runs.db"  # missing folders are created
    with archive.open(str(path)) as db:
        run = db.create_run("softmax", REFERENCE)
    with archive.open(path) as db:
        assert db.get_run(run.id).task_name == "softmax"
    with archive.open(f"sqlite:///{path}") as db:
        assert [r.id for r in db.list_runs()] == [run.id]


def test_unusable_locations_say_what_is_wrong(tmp_path):
    with pytest.raises(ArchiveError, match="is a directory"):
        archive.open(tmp_path)
    with pytest.raises(ArchiveError, match="not a database path or SQLAlchemy URL"):
        archive.open("postgresql://user@host:notaport/db")
    with pytest.raises(ArchiveError, match="is the database driver installed"):
        archive.open("nosuchdb://somewhere/archive")


def test_an_unreachable_server_is_named_without_its_password():
    with pytest.raises(ArchiveError) as caught:
        # port 9 (discard) on loopback: nothing listens, the connection is refused at once
        archive.open("postgresql://kernelsmith:s3cret@127.0.0.1:9/archive")
    message = str(caught.value)
    assert "cannot open the archive at postgresql+psycopg://kernelsmith:***@127.0.0.1:9/archive" in message
    assert "s3cret" not in message


def test_the_sqlite_file_is_in_wal_mode(tmp_path):
    path = tmp_path / "archive.db"
    archive.open(path).close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_reader_in_a_long_transaction_does_not_block_the_writer(tmp_path):
    path = tmp_path / "archive.db"
    db = archive.open(path)
    run = db.create_run("softmax", REFERENCE)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM programs").fetchone()[0] == 0  # holds a read snapshot

    started = time.monotonic()
    for index in range(20):
        db.add_program(run, f"x = {index}")
    assert time.monotonic() - started < 2.0
    assert reader.execute("SELECT count(*) FROM programs").fetchone()[0] == 0  # still its snapshot
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM programs").fetchone()[0] == 20
    reader.close()
    db.close()


def test_a_writer_waits_for_another_process_holding_the_lock_instead_of_failing(tmp_path):
    path = tmp_path / "archive.db"
    db = archive.open(path)
    run = db.create_run("softmax", REFERENCE)
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "locked\n"
    started = time.monotonic()
    program = db.add_program(run, "x = 1")
    waited = time.monotonic() - started
    assert holder.wait(timeout=10) == 0

    assert waited >= 0.3
    assert db.get_program(program.id).source == "x = 1"
    assert db.get_run(run).seed == 1  # the other process's write landed too
    db.close()


LOCK_HOLDER = """
import sqlite3, sys, time
other = sqlite3.connect(sys.argv[1], isolation_level=None)
other.execute("BEGIN IMMEDIATE")
other.execute("UPDATE runs SET seed = 1")
print("locked", flush=True)
time.sleep(0.5)
other.execute("COMMIT")
"""
