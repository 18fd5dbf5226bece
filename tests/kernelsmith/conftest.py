"""Fixtures for the agent's tests: a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started FakeOpenAI: queue replies with .reply/.error/.stall, read .requests afterwards."""
    with FakeOpenAI() as server:
        yield server
