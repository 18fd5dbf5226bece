"""Static checks on a candidate's AST, before any of it runs.

Each rule is a function that walks the tree and yields findings naming the rule and the line.
A syntax error or a missing ModelNew is a compile_error; a finding of severity "reject" makes
the candidate `rejected` without running it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from evaluators.loading import SourceProblem, parse
from evaluators.protocol import Finding

Rule = Callable[[ast.Module, "CheckContext"], Iterator[Finding]]
RULES: list[Rule] = []


@dataclass
class CheckContext:
    strict: bool
    source_lines: list[str]


@dataclass
class StaticReport:
    compile_error: SourceProblem | None
    findings: list[Finding]

    @property
    def rejected(self) -> bool:
        return any(f.severity == "reject" for f in self.findings)


def rule(function: Rule) -> Rule:
    RULES.append(function)
    return function


def check_candidate(source: str, strict: bool = False) -> StaticReport:
    try:
        tree = parse(source, "candidate.py")
    except SourceProblem as problem:
        return StaticReport(problem, [])
    model_new = _find_class(tree, "ModelNew")
    if model_new is None:
        return StaticReport(
            SourceProblem("no class ModelNew is defined; the candidate must define class ModelNew(nn.Module)"), []
        )
    context = CheckContext(strict=strict, source_lines=source.splitlines())
    findings = [finding for check in RULES for finding in check(tree, context)]
    return StaticReport(None, findings)


def _find_class(tree: ast.Module, name: str) -> ast.ClassDef | None:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    return None


def _dotted(node: ast.AST) -> str | None:
    """`triton.jit` for Attribute(Name('triton'), 'jit'); None when not a plain dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _import_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> full module or object path, from the module's imports."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def resolve_name(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The full dotted path a name refers to, through import aliases (`tl.load` -> `triton.language.load`)."""
    dotted = _dotted(node)
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full


def _decorator_paths(node: ast.FunctionDef, aliases: dict[str, str]) -> list[str]:
    paths = []
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        path = resolve_name(target, aliases)
        if path:
            paths.append(path)
    return paths


def triton_kernels(tree: ast.Module) -> list[ast.FunctionDef]:
    aliases = _import_aliases(tree)
    kernels = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
            path in ("triton.jit", "triton.runtime.jit.jit") for path in _decorator_paths(node, aliases)
        ):
            kernels.append(node)
    return kernels


@rule
def has_triton_kernel(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    if not triton_kernels(tree):
        yield Finding(
            rule="no-triton-kernel",
            message="the candidate defines no @triton.jit kernel; ModelNew must compute with Triton kernels",
        )


@rule
def no_reference_inheritance(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    model_new = _find_class(tree, "ModelNew")
    assert model_new is not None
    for base in model_new.bases:
        if _dotted(base) in ("Model", "reference.Model"):
            yield Finding(
                rule="inherits-reference",
                message="ModelNew inherits from the reference Model; it must implement forward itself",
                line=model_new.lineno,
            )
