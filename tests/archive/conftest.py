"""Archives on real databases: a fresh SQLite file, and a fresh database on the PostgreSQL server named by
KERNELSMITH_TEST_POSTGRES_URL (CI starts one; see .ci/run)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url, text

import archive
import archive.database
from evaluators.protocol import EvalResult, Stage, Status

POSTGRES_URL = os.environ.get("KERNELSMITH_TEST_POSTGRES_URL")
NO_POSTGRES = (
    "KERNELSMITH_TEST_POSTGRES_URL is unset: set it to a PostgreSQL URL whose role may CREATE DATABASE "
    "(.ci/run starts one) to run the PostgreSQL tests"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL of a new, empty PostgreSQL database, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    server = create_engine(archive.database.resolve_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    name = f"kernelsmith_test_{uuid.uuid4().hex[:12]}"
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The same test on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "archive.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def db(archive_url: str) -> Iterator[archive.Archive]:
    with archive.open(archive_url) as opened:
        yield opened


def result(
    status: Status = Status.ok,
    speedup: float | None = None,
    stage: Stage | None = None,
    task_name: str = "softmax",
    backend: str = "triton-interpret",
    device: str | None = "cpu",
    message: str = "",
) -> EvalResult:
    """An evaluator's verdict, as the judge would return it."""
    return EvalResult.model_validate(
        {
            "task_name": task_name,
            "status": status,
            "stage": stage or (Stage.done if status == Status.ok else Stage.correctness),
            "speedup": speedup,
            "message": message,
            "environment": {"backend": backend, "device": device},
        }
    )


@pytest.fixture
def make_result():
    """result() as a fixture, for test modules (they cannot import conftest under importlib mode)."""
    return result
