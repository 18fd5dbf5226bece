"""Normalized source: the same program under different comments, docstrings or formatting hashes the same.

The normalized text is the AST unparsed back to source, with docstrings removed; it is the key of the
evaluation cache, so two sources that differ only in layout reuse one evaluation.
"""

from __future__ import annotations

import ast
import hashlib


def normalized_source(source: str) -> str:
    """Source with comments, docstrings and formatting stripped; the text itself when it does not parse.

    A candidate that does not parse still gets a stable key (its exact text, line endings unified and
    trailing whitespace dropped), so a repeated syntax error is also recognised.
    """
    try:
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                node.body = _without_docstring(node.body)
        return ast.unparse(tree)
    except (SyntaxError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return "\n".join(line.rstrip() for line in lines).strip("\n")


def normalized_hash(source: str) -> str:
    """SHA-256 of the normalized source, hex: the dedup key of a program."""
    return hashlib.sha256(normalized_source(source).encode()).hexdigest()


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        # a body cannot be empty: a function that only had a docstring keeps `pass`
        return body[1:] or [ast.Pass()]
    return body
