"""Loading KernelBench-format modules from source text, with errors that point at a line.

A reference module defines `Model`, `get_inputs()` and `get_init_inputs()`; a candidate
defines `ModelNew` with the same constructor signature. Modules are written to a file before
import because Triton's JIT reads kernel source through `inspect`.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclass
class SourceProblem(Exception):
    """Something wrong with a module's source, located where possible."""

    message: str
    line: int | None = None
    text: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        shown = f"\n    {self.text.strip()}" if self.text and self.text.strip() else ""
        return f"{where}{self.message}{shown}"


class TaskError(Exception):
    """The reference task itself is broken: the user's error, never the candidate's."""


def parse(source: str, filename: str) -> ast.Module:
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as error:
        raise SourceProblem(f"syntax error: {error.msg}", error.lineno, error.text) from None
    except (ValueError, MemoryError, RecursionError) as error:  # a lone surrogate, absurd nesting
        raise SourceProblem(f"cannot be parsed: {type(error).__name__}: {str(error)[:200]}", None, None) from None


def defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def check_reference_source(source: str) -> None:
    """Cheap structural check of a task file, run before anything is queued or executed."""
    try:
        tree = parse(source, "reference.py")
    except SourceProblem as problem:
        raise TaskError(f"the reference does not parse: {problem}") from None
    missing = {"Model", "get_inputs", "get_init_inputs"} - defined_names(tree)
    if missing:
        raise TaskError(
            f"the reference lacks {', '.join(sorted(missing))}; a KernelBench task defines "
            "class Model(nn.Module), get_inputs() and get_init_inputs()"
        )


def import_file(path: Path, module_name: str, builtins: dict[str, Any] | None = None) -> ModuleType:
    """Import a module from a file; errors become SourceProblem located in that file.

    `builtins`, when given, replaces the module's builtins before any of its code runs (the
    worker gives candidates a guarded set)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SourceProblem(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    if builtins is not None:
        module.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        sys.modules.pop(module_name, None)
        raise SourceProblem(f"syntax error: {error.msg}", error.lineno, error.text) from None
    except BaseException as error:  # a candidate may raise anything at import, SystemExit too
        sys.modules.pop(module_name, None)
        raise located(error, path, "importing the module failed") from None
    return module


def located(error: BaseException, path: Path, context: str) -> SourceProblem:
    """Turn an exception into a SourceProblem at the deepest frame inside `path`."""
    line = text = None
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename) == path:
            line, text = frame.lineno, frame.line
    detail = f"{type(error).__name__}: {error}".strip()
    return SourceProblem(f"{context}: {detail}", line, text)


def get_class(module: ModuleType, name: str, path: Path) -> type:
    import torch

    cls = getattr(module, name, None)
    if cls is None:
        raise SourceProblem(f"no class {name} is defined; the module must define class {name}(nn.Module)")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise SourceProblem(f"{name} must be a class deriving from torch.nn.Module", _line_of(cls, path))
    return cls


def construct(cls: type, init_inputs: list[Any], path: Path) -> Any:
    """Instantiate with the task's init inputs; a signature mismatch names both signatures."""
    try:
        inspect.signature(cls).bind(*init_inputs)
    except TypeError as error:
        signature = _signature_text(cls)
        raise SourceProblem(
            f"{cls.__name__}{signature} cannot be called with the task's {len(init_inputs)} "
            f"init input(s) {_preview(init_inputs)}: {error}",
            _line_of(cls, path),
        ) from None
    except ValueError:
        pass  # no introspectable signature: just try it
    try:
        return cls(*init_inputs)
    except BaseException as error:
        raise located(error, path, f"constructing {cls.__name__} failed") from None


def _signature_text(cls: type) -> str:
    try:
        return str(inspect.signature(cls))
    except (TypeError, ValueError):
        return "(...)"


def _preview(values: list[Any]) -> str:
    text = repr(values)
    return text if len(text) < 120 else text[:117] + "..."


def _line_of(obj: Any, path: Path) -> int | None:
    try:
        if Path(inspect.getsourcefile(obj) or "") == path:
            return inspect.getsourcelines(obj)[1]
    except (TypeError, OSError):
        pass
    return None


def seed_all(seed: int) -> None:
    """Seed every generator a task's get_inputs might use, identically in judge and worker."""
    import random

    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % (1 << 32))
    except ImportError:
        pass


def flatten_outputs(value: Any) -> list[Any]:
    """A forward's result as a flat list (a tensor, or a tuple/list of them)."""
    if isinstance(value, (tuple, list)):
        items: list[Any] = []
        for item in value:
            items.extend(flatten_outputs(item))
        return items
    return [value]
