"""Prompt templates shipped with kernelsmith (see README.md for each one's placeholders)."""

from __future__ import annotations

from importlib import resources
from string import Template


def template(name: str) -> Template:
    """The template `prompts/<name>.md`, read from the installed package."""
    path = resources.files(__name__).joinpath(f"{name}.md")
    if not path.is_file():
        raise FileNotFoundError(f"no prompt template {name!r} (looked for {path})")
    return Template(path.read_text(encoding="utf-8"))
