"""Evaluator servers started on demand for the service and client tests, stopped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.evaluators.servers import TOKEN, Server, start_server


@pytest.fixture(scope="session")
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(*args: str, token: str | None = TOKEN) -> Server:
        server = start_server(*args, token=token)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
