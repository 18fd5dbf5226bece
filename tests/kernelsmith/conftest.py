"""Fixtures for the agent's tests: a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _load_fake_openai():
    # tests/ is not a package (importlib import mode); load the shared server module by path once
    name = "kernelsmith_tests_fake_openai"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "fake_openai.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def fake_openai() -> Iterator[object]:
    """A started FakeOpenAI: queue replies with .reply/.error/.stall, read .requests afterwards."""
    with _load_fake_openai().FakeOpenAI() as server:
        yield server
