"""Behavioural descriptors of a candidate, read from its source by AST: the coordinates of its cell in the
diversity grid (how many Triton kernels, whether they use tl.dot, the largest tile, num_warps)."""

from __future__ import annotations

import ast
from dataclasses import dataclass

MAX_KERNELS = 3  # "three or more"
MIN_TILE, MAX_TILE = 16, 4096
MAX_WARPS = 16


@dataclass(frozen=True, order=True)
class Descriptor:
    kernels: int  # @triton.jit functions, capped at MAX_KERNELS
    uses_dot: bool  # a kernel calls tl.dot (tensor-core matmul)
    tile: int  # largest BLOCK-/TILE-named constant, rounded up to a power of two; 0 when none is written
    num_warps: int  # largest num_warps written, as a power of two; 0 when left to Triton's default


def describe(source: str) -> Descriptor:
    """The descriptor of a candidate's source; a source that does not parse lands in the all-zero cell."""
    try:
        return _describe(ast.parse(source))
    except (SyntaxError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return Descriptor(0, False, 0, 0)


def _describe(tree: ast.Module) -> Descriptor:
    kernels = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and _is_jit(node)]
    uses_dot = any(_calls_dot(kernel) for kernel in kernels)
    tiles: list[int] = []
    warps: list[int] = []
    for name, value in _named_constants(tree):
        if "BLOCK" in name.upper() or "TILE" in name.upper():
            tiles.append(value)
        elif name == "num_warps":
            warps.append(value)
    return Descriptor(
        kernels=min(len(kernels), MAX_KERNELS),
        uses_dot=uses_dot,
        tile=_tile_bucket(max(tiles)) if tiles else 0,
        num_warps=_warps_bucket(max(warps)) if warps else 0,
    )


def _tile_bucket(value: int) -> int:
    if value <= 0:
        return 0
    bucket = 1 << (value - 1).bit_length()  # next power of two
    return min(max(bucket, MIN_TILE), MAX_TILE)


def _warps_bucket(value: int) -> int:
    if value <= 0:
        return 0
    return min(1 << (value.bit_length() - 1), MAX_WARPS)  # power of two at or below


def _dotted_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        return _dotted_name(node.func)
    if isinstance(node, ast.Attribute):
        return f"{_dotted_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _is_jit(function: ast.FunctionDef) -> bool:
    # @triton.jit, @jit, @triton.jit(...), possibly under @triton.autotune / @triton.heuristics
    return any(_dotted_name(decorator).split(".")[-1] == "jit" for decorator in function.decorator_list)


def _calls_dot(kernel: ast.FunctionDef) -> bool:
    return any(
        isinstance(node, ast.Call) and _dotted_name(node.func).split(".")[-1] == "dot"
        for node in ast.walk(kernel)
    )


_LARGEST = 1 << 64
_ARITHMETIC = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b if b else None,
    ast.Pow: lambda a, b: a**b if 0 <= b <= 64 else None,
    ast.LShift: lambda a, b: a << b if 0 <= b <= 64 else None,
}


def _int_constant(node: ast.expr | None) -> int | None:
    """An integer written as a literal or constant arithmetic (2 ** 10, 64 * 4); None otherwise."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _int_constant(node.left), _int_constant(node.right)
        # bounded operands: a hostile candidate's ((2**64)**64)**64... must not hang the controller
        if left is not None and right is not None and max(abs(left), abs(right)) <= _LARGEST:
            return _ARITHMETIC[type(node.op)](left, right)
    return None


def _named_constants(tree: ast.AST) -> list[tuple[str, int]]:
    """(name, integer) pairs written in the source: keyword arguments (BLOCK_SIZE=1024, num_warps=4),
    assignments (BLOCK = 128, self.BLOCK_M = 64), parameter defaults (BLOCK: tl.constexpr = 256) and
    string-keyed dict entries (triton.Config({"BLOCK_M": 128}))."""
    found: list[tuple[str, int]] = []

    def add(name: str | None, node: ast.expr | None) -> None:
        value = _int_constant(node)
        if name and value is not None:
            found.append((name, value))

    for node in ast.walk(tree):
        if isinstance(node, ast.keyword):
            add(node.arg, node.value)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name | ast.Attribute):
                    add(target.id if isinstance(target, ast.Name) else target.attr, node.value)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    add(key.value, value)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            positional = arguments.posonlyargs + arguments.args
            for argument, default in zip(
                positional[len(positional) - len(arguments.defaults) :], arguments.defaults, strict=True
            ):
                add(argument.arg, default)
            for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
                add(argument.arg, default)
    return found
