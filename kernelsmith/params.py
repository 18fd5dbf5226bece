"""Parameter tuning without an LLM: AST edits of tile sizes, num_warps and num_stages.

Knobs are found where Triton reads them (keyword arguments at kernel launches, `triton.Config`
entries, the constants those name) and moved within the backend's limits by a seeded RNG. Edits
are made in place on the source text, so comments and layout survive.
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass, field

from evaluators.protocol import Backend

LAUNCH_OPTIONS = ("num_warps", "num_stages")


@dataclass(frozen=True)
class BackendLimits:
    """What a backend accepts for launch parameters, and what prompts tell the model about it."""

    backend: str
    warp_size: int = 32
    num_warps: tuple[int, ...] = (1, 2, 4, 8, 16)
    num_stages: tuple[int, ...] = (1, 2, 3, 4, 5)
    min_tile: int = 16  # tl.dot needs at least 16 along each dimension
    max_tile: int = 4096
    measures_time: bool = True
    device: str | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def for_backend(cls, backend: Backend | str, device: str | None = None) -> BackendLimits:
        name = Backend(backend).value
        if name == Backend.maca_metax.value:
            return cls(name, warp_size=64, num_stages=(1, 2, 3, 4), device=device, notes=(
                "MetaX MACA runs a fork of Triton 3.0: use only APIs that Triton 3.0 has.",
                "A warp is 64 threads wide on MetaX, so num_warps=4 is 256 threads.",
            ))
        if name == Backend.triton_interpret.value:
            return cls(name, measures_time=False, device=device or "CPU", notes=(
                "CPU interpreter (TRITON_INTERPRET=1): correctness only, speed is not measured; "
                "prefer simple, clearly correct kernels.",
            ))
        return cls(name, device=device)

    def describe(self) -> list[str]:
        """One line per constraint, for prompts."""
        lines = [f"Backend: {self.backend}" + (f" on {self.device}" if self.device else "") + "."]
        if self.measures_time:
            lines.append(f"Warp size: {self.warp_size} threads.")
            lines.append(f"num_warps: one of {', '.join(map(str, self.num_warps))}; "
                         f"num_stages: one of {', '.join(map(str, self.num_stages))}.")
        lines.append(f"Tile sizes (tl.constexpr, used with tl.arange): powers of two from {self.min_tile} "
                     f"to {self.max_tile}.")
        return lines + list(self.notes)


class TuningError(ValueError):
    """The source has no parameter that can move within the limits."""


@dataclass
class Knob:
    kind: str  # "tile", "num_warps" or "num_stages"
    label: str
    value: int
    nodes: list[ast.Constant] = field(default_factory=list)  # every literal that moves with it

    @property
    def line(self) -> int:
        return self.nodes[0].lineno


@dataclass(frozen=True)
class Change:
    label: str
    old: int
    new: int

    def __str__(self) -> str:
        return f"{self.label} {self.old}->{self.new}"


@dataclass(frozen=True)
class Tuning:
    source: str
    changes: tuple[Change, ...]

    @property
    def description(self) -> str:
        return ", ".join(map(str, self.changes))


def tune(source: str, limits: BackendLimits, rng: random.Random, max_changes: int = 3) -> Tuning:
    """Move one to `max_changes` knobs to neighbouring legal values; the result parses."""
    knobs = [knob for knob in find_knobs(source, limits) if _moves(knob, limits)]
    if not knobs:
        raise TuningError(
            "no tunable parameter found: no power-of-two tile size, num_warps or num_stages given as a "
            "constant at a kernel launch, in a triton.Config, or in a constant those name"
        )
    count = min(len(knobs), max_changes, rng.choices((1, 2, 3), weights=(6, 3, 1))[0])
    chosen = sorted(rng.sample(range(len(knobs)), count))
    changes, edits = [], []
    for index in chosen:
        knob = knobs[index]
        new = rng.choice(_moves(knob, limits))
        changes.append(Change(knob.label, knob.value, new))
        edits += [(node, new) for node in knob.nodes]
    child = _edit(source, edits)
    ast.parse(child)  # a literal swapped for a literal cannot break syntax; prove it anyway
    return Tuning(child, tuple(changes))


def _moves(knob: Knob, limits: BackendLimits) -> list[int]:
    """Legal values next to the knob's current one (a step or two along its ladder)."""
    if knob.kind == "tile":
        ladder = [1 << p for p in range(limits.min_tile.bit_length() - 1, limits.max_tile.bit_length())]
        ladder = [v for v in ladder if limits.min_tile <= v <= limits.max_tile]
    else:
        ladder = list(getattr(limits, knob.kind))
    if knob.value in ladder:
        at = ladder.index(knob.value)
        near = [ladder[i] for i in (at - 1, at + 1) if 0 <= i < len(ladder)]
        return near or []
    # an illegal current value (num_warps=32 where 16 is the most): step to the nearest legal ones
    return sorted(ladder, key=lambda v: abs(v - knob.value))[:2]


def _edit(source: str, edits: list[tuple[ast.Constant, int]]) -> str:
    lines = source.splitlines(keepends=True)
    # ast columns are UTF-8 byte offsets; edit right to left so earlier offsets stay valid
    unique = {(node.lineno, node.col_offset, node.end_col_offset): value for node, value in edits}
    for (lineno, start, end), value in sorted(unique.items(), reverse=True):
        raw = lines[lineno - 1].encode()
        lines[lineno - 1] = (raw[:start] + str(value).encode() + raw[end:]).decode()
    return "".join(lines)


def find_knobs(source: str, limits: BackendLimits) -> list[Knob]:
    """Every launch parameter of `source` that tuning may move, in source order."""
    finder = _KnobFinder(limits)
    finder.run(ast.parse(source))
    knobs = sorted(finder.knobs.values(), key=lambda k: (k.line, k.nodes[0].col_offset))
    seen: dict[str, int] = {}
    for knob in knobs:
        seen[knob.label] = seen.get(knob.label, 0) + 1
    for knob in knobs:
        if seen[knob.label] > 1:
            knob.label += f" (line {knob.line})"
    return knobs


def _int_literal(node: ast.AST | None) -> ast.Constant | None:
    """`1024`, or the 1024 of `tl.constexpr(1024)`."""
    if isinstance(node, ast.Call) and _dotted(node.func).endswith("constexpr") and len(node.args) == 1:
        node = node.args[0]
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node
    return None


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_pow2(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


class _KnobFinder:
    """Two passes: where each name gets its value (per scope), then where Triton reads values."""

    def __init__(self, limits: BackendLimits) -> None:
        self.limits = limits
        self.assigned: dict[tuple[int, str], list[ast.AST]] = {}  # (scope id, name) -> values
        self.knobs: dict[tuple[int, ...], Knob] = {}
        self.configs = 0
        self._module_id = 0

    def run(self, tree: ast.Module) -> None:
        self._module_id = id(tree)
        self._collect(tree, tree, None)
        self._visit(tree, (tree,), None)

    # pass 1: assignments ------------------------------------------------------------------------
    def _collect(self, node: ast.AST, scope: ast.AST, cls: ast.ClassDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner_scope, inner_cls = scope, cls
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner_scope = child
                # a parameter's value is its default when it has one, else unknown
                args = child.args.posonlyargs + child.args.args
                defaults = [None] * (len(args) - len(child.args.defaults)) + list(child.args.defaults)
                for arg, default in zip(args + child.args.kwonlyargs, defaults + child.args.kw_defaults, strict=True):
                    self._assign(child, arg.arg, default)
            elif isinstance(child, ast.ClassDef):
                inner_scope, inner_cls = child, child  # class-level names are not visible in methods
            elif isinstance(child, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                value = child.value if not isinstance(child, ast.AugAssign) else None
                for target in targets:
                    if isinstance(target, ast.Name):
                        self._assign(scope, target.id, value)
                    elif isinstance(target, ast.Attribute) and _dotted(target.value) == "self" and cls:
                        self._assign(cls, "self." + target.attr, value)
            elif isinstance(child, (ast.For, ast.comprehension)) and isinstance(child.target, ast.Name):
                self._assign(scope, child.target.id, None)  # a loop variable is no constant
            self._collect(child, inner_scope, inner_cls)

    def _assign(self, scope: ast.AST, name: str, value: ast.AST | None) -> None:
        self.assigned.setdefault((id(scope), name), []).append(value)

    def _resolve(self, node: ast.AST, scopes: tuple[ast.AST, ...], cls: ast.ClassDef | None) -> list[ast.Constant]:
        """The literals a name or `self.attr` always holds, or [] when it is not one constant."""
        if isinstance(node, ast.Name):
            keys = [(id(scope), node.id) for scope in reversed(scopes)]
        elif isinstance(node, ast.Attribute) and _dotted(node.value) == "self" and cls is not None:
            keys = [(id(cls), "self." + node.attr)]
        else:
            return []
        for key in keys:
            if key in self.assigned:
                literals = [_int_literal(value) for value in self.assigned[key]]
                if all(literals) and len({lit.value for lit in literals}) == 1:
                    return literals  # type: ignore[return-value]
                return []
        return []

    # pass 2: where Triton reads launch parameters -------------------------------------------------
    def _visit(self, node: ast.AST, scopes: tuple[ast.AST, ...], cls: ast.ClassDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner_scopes, inner_cls = scopes, cls
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner_scopes = scopes + (child,)
            elif isinstance(child, ast.ClassDef):
                inner_cls = child
            elif isinstance(child, ast.Call):
                if isinstance(child.func, ast.Subscript):
                    self._launch(child, scopes, cls)
                elif _dotted(child.func) in ("triton.Config", "Config"):
                    self._config(child)
            elif isinstance(child, (ast.Assign, ast.AnnAssign)) and len(scopes) == 1:
                self._module_constant(child)
            self._visit(child, inner_scopes, inner_cls)

    def _launch(self, call: ast.Call, scopes: tuple[ast.AST, ...], cls: ast.ClassDef | None) -> None:
        """`kernel[grid](..., BLOCK_SIZE=1024, num_warps=4)`."""
        for keyword in call.keywords:
            if keyword.arg is None:
                continue
            kind = keyword.arg if keyword.arg in LAUNCH_OPTIONS else "tile"
            literal = _int_literal(keyword.value)
            if literal is not None:
                tied = self._grid_ties(call, scopes, literal.value) if kind == "tile" else []
                self._add(kind, keyword.arg, [literal, *tied])
            else:
                holder = _dotted(keyword.value)  # say which name holds it: "BLOCK_SIZE (self.block)"
                label = keyword.arg if holder in ("", keyword.arg) else f"{keyword.arg} ({holder})"
                self._add(kind, label, self._resolve(keyword.value, scopes, cls))

    def _grid_ties(self, call: ast.Call, scopes: tuple[ast.AST, ...], value: int) -> list[ast.Constant]:
        """Literals that must move with a literal tile size: the same number in the launch grid,
        or in `cdiv(..., 1024)` in the same function (the grid, or a buffer of partial results)."""
        grid = call.func.slice  # type: ignore[attr-defined]
        places: list[ast.AST] = [grid]
        for node in ast.walk(scopes[-1]) if len(scopes) > 1 else []:
            if isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] == "cdiv" and len(node.args) == 2:
                places.append(node.args[1])
        return [
            node for place in places for node in ast.walk(place)
            if isinstance(node, ast.Constant) and type(node.value) is int and node.value == value
        ]

    def _config(self, call: ast.Call) -> None:
        """`triton.Config({"BLOCK_M": 64, ...}, num_warps=4, num_stages=3)`."""
        self.configs += 1
        label = f"Config {self.configs}"
        if call.args and isinstance(call.args[0], ast.Dict):
            for key, value in zip(call.args[0].keys, call.args[0].values, strict=True):
                literal = _int_literal(value)
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and literal is not None:
                    self._add("tile", f"{label} {key.value}", [literal])
        for keyword in call.keywords:
            literal = _int_literal(keyword.value)
            if keyword.arg in LAUNCH_OPTIONS and literal is not None:
                self._add(keyword.arg, f"{label} {keyword.arg}", [literal])

    def _module_constant(self, node: ast.Assign | ast.AnnAssign) -> None:
        """`BLOCK_SIZE = 1024` at module level: a tile size by its name, even if no launch names it."""
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper() and any(
                word in target.id for word in ("BLOCK", "TILE")
            ):
                literals = [_int_literal(v) for v in self.assigned.get((self._module_id, target.id), [])]
                if literals and all(literals) and len({lit.value for lit in literals}) == 1:
                    self._add("tile", target.id, literals)  # type: ignore[arg-type]

    def _add(self, kind: str, label: str, literals: list[ast.Constant]) -> None:
        literals = list({id(lit): lit for lit in literals}.values())
        if not literals:
            return
        value = literals[0].value
        if kind == "tile" and not (_is_pow2(value) and self.limits.min_tile <= value <= self.limits.max_tile):
            return  # not a tile size we may touch (a vector width, a group size, a shape)
        if kind != "tile" and value <= 0:
            return
        key = tuple(sorted(id(lit) for lit in literals))
        for existing_key, knob in self.knobs.items():
            if set(existing_key) & set(key):  # the same literal reached another way: one knob
                merged = sorted(set(existing_key) | set(key))
                knob.nodes = sorted({id(n): n for n in knob.nodes + literals}.values(),
                                    key=lambda n: (n.lineno, n.col_offset))
                del self.knobs[existing_key]
                self.knobs[tuple(merged)] = knob
                return
        nodes = sorted(literals, key=lambda n: (n.lineno, n.col_offset))
        self.knobs[key] = Knob(kind, label, value, nodes)
