"""Task suites: KernelBench-format task files found by file, folder, glob or the shipped suite.

Also the size scale: a pure source-to-source rewrite of a task's module-level size constants,
so that the Triton interpreter can check a whole suite on the CPU in minutes.
"""

from __future__ import annotations

import ast
import glob
import importlib.util
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from evaluators.loading import TaskError, check_reference_source

SEEDS_FOLDER = "seeds"  # a task's seed kernel lives in <level folder>/seeds/<same file name>
SIZE_CONSTANTS = "SIZE_CONSTANTS"  # a task's own list of the constants that may be scaled
HEURISTIC_MINIMUM = 64  # without SIZE_CONSTANTS, integers at least this large count as sizes
GRANULE = 16  # a size that is a multiple of this stays one: tl.dot and tile shapes want it
CPU_SCALE = 0.005  # the scale at which the interpreter checks a whole suite in minutes

_LEVEL = re.compile(r"^level(\d+)$", re.IGNORECASE)
_PROBLEM = re.compile(r"^(\d+)_")
_GLOB_CHARS = set("*?[")


@dataclass
class Task:
    """One reference task, with its seed kernel when the suite ships one."""

    name: str  # the file's stem, as KernelBench names problems: "23_Softmax"
    level: int | None
    problem_id: int | None
    path: Path
    source: str  # at `scale`: this is what an EvalRequest carries as reference_source
    docstring: str = ""
    seed_path: Path | None = None
    seed_source: str | None = None
    scale: float = 1.0

    @property
    def label(self) -> str:
        """Unique within a suite: "level1/23_Softmax"."""
        return f"level{self.level}/{self.name}" if self.level is not None else self.name


@dataclass
class TaskProblem:
    """A file that could not be loaded as a task (or as its seed), and why."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class Suite:
    tasks: list[Task] = field(default_factory=list)
    problems: list[TaskProblem] = field(default_factory=list)

    def filter(
        self, level: int | None = None, problem_id: int | None = None, name: str | None = None
    ) -> Suite:
        """Tasks matching every given filter; `name` is a case-insensitive substring."""
        needle = name.lower() if name else None
        kept = [
            task
            for task in self.tasks
            if (level is None or task.level == level)
            and (problem_id is None or task.problem_id == problem_id)
            and (needle is None or needle in task.name.lower())
        ]
        return Suite(kept, list(self.problems))

    def find(self, label: str) -> Task | None:
        return next((task for task in self.tasks if label in (task.label, task.name)), None)


class SuiteNotFound(Exception):
    """The suite's path names nothing that holds task files."""


# -- the size scale -----------------------------------------------------------------------


def scaled_size(value: int, scale: float) -> int:
    """A size times `scale`: multiples of GRANULE stay multiples (at least GRANULE), others stay >= 1."""
    if value % GRANULE == 0 and value >= GRANULE:
        return max(GRANULE, round(value * scale / GRANULE) * GRANULE)
    return max(1, round(value * scale))


def scale_source(source: str, scale: float) -> str:
    """The task's source with its module-level size constants multiplied by `scale` (0 < scale <= 1).

    Scaled are the names listed in a module-level `SIZE_CONSTANTS = ("batch_size", ...)` tuple,
    or, in files without one (KernelBench's), every module-level integer literal of at least
    HEURISTIC_MINIMUM. Only the literals change: comments, layout and derived expressions stay.
    """
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    if scale == 1:
        return source
    tree = ast.parse(source)
    literals = _int_literals(tree)
    declared = _declared_size_constants(tree)
    if declared is not None:
        missing = sorted(set(declared) - {name for name, _ in literals})
        if missing:
            raise ValueError(
                f"{SIZE_CONSTANTS} names {', '.join(missing)}, which must be module-level integer constants"
            )
        chosen = [node for name, node in literals if name in declared]
    else:
        chosen = [node for _, node in literals if node.value >= HEURISTIC_MINIMUM]
    return _replace_literals(source, {id(node): node for node in chosen}.values(), scale)


def _int_literals(tree: ast.Module) -> list[tuple[str, ast.Constant]]:
    """(name, literal) for every `name = <int>` (also annotated, and tuple-unpacked) at module level."""
    pairs: list[tuple[ast.expr, ast.expr]] = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    if len(target.elts) == len(node.value.elts):
                        pairs.extend(zip(target.elts, node.value.elts, strict=True))
                else:
                    pairs.append((target, node.value))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            pairs.append((node.target, node.value))
    return [
        (target.id, value)
        for target, value in pairs
        if isinstance(target, ast.Name)
        and isinstance(value, ast.Constant)
        and isinstance(value.value, int)
        and not isinstance(value.value, bool)
    ]


def _declared_size_constants(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == SIZE_CONSTANTS for t in node.targets
        ):
            try:
                names = ast.literal_eval(node.value)
            except ValueError:
                names = None
            if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"{SIZE_CONSTANTS} must be a tuple of constant names (line {node.lineno})")
            return set(names)
    return None


def _replace_literals(source: str, nodes: object, scale: float) -> str:
    # column offsets in the AST count UTF-8 bytes, so edit the encoded lines
    lines = source.encode().splitlines(keepends=True)
    for node in sorted(nodes, key=lambda n: (n.lineno, n.col_offset), reverse=True):  # type: ignore[attr-defined]
        if node.end_lineno != node.lineno:  # an integer literal never spans lines; be safe anyway
            continue
        index = node.lineno - 1
        line = lines[index]
        new = str(scaled_size(node.value, scale)).encode()
        lines[index] = line[: node.col_offset] + new + line[node.end_col_offset :]
    return b"".join(lines).decode()


# -- loading ------------------------------------------------------------------------------


def load_task(path: str | Path, scale: float = 1.0) -> Task:
    """One task file; raises TaskError naming the file when it is not a valid task."""
    path = Path(path)
    source = _read(path)
    try:
        check_reference_source(source)
        scaled = scale_source(source, scale)
    except (TaskError, ValueError, SyntaxError) as error:
        raise TaskError(f"{path}: {error}") from None
    tree = ast.parse(source)
    level_match = _LEVEL.match(path.parent.name)
    problem_match = _PROBLEM.match(path.stem)
    task = Task(
        name=path.stem,
        level=int(level_match.group(1)) if level_match else None,
        problem_id=int(problem_match.group(1)) if problem_match else None,
        path=path,
        source=scaled,
        docstring=_first_line(ast.get_docstring(tree) or _model_docstring(tree)),
        scale=scale,
    )
    seed = path.parent / SEEDS_FOLDER / path.name
    if seed.is_file():
        task = replace(task, seed_path=seed, seed_source=_read(seed))
    return task


def load_suite(
    where: str | Path,
    level: int | None = None,
    problem_id: int | None = None,
    name: str | None = None,
    scale: float = 1.0,
) -> Suite:
    """Every task under `where` (a file, a folder, a glob, a KernelBench checkout), filtered.

    A broken file becomes a TaskProblem with its path; the rest of the suite still loads.
    """
    suite = Suite()
    for path in task_files(where):
        try:
            task = load_task(path, scale)
        except TaskError as error:
            suite.problems.append(TaskProblem(path, str(error).removeprefix(f"{path}: ")))
            continue
        problem = _seed_problem(task)
        if problem is not None:
            suite.problems.append(problem)
            task = replace(task, seed_path=None, seed_source=None)
        suite.tasks.append(task)
    suite.tasks.sort(key=_order)
    return suite.filter(level, problem_id, name)


def task_files(where: str | Path) -> list[Path]:
    """The task files a suite path names, before any is read.

    A file is itself; a glob is its matching .py files; a folder with `levelN` subfolders (this
    project's tasks/, a KernelBench checkout's KernelBench/, or the checkout root above it) is
    every level; any other folder is its own .py files. Seed folders and `_`-files never count.
    """
    text = str(where)
    if _GLOB_CHARS & set(text) and not Path(text).exists():
        found = sorted(
            p for p in map(Path, glob.glob(text, recursive=True)) if p.is_file() and _is_task_file(p)
        )
        if not found:
            raise SuiteNotFound(f"the glob {text} matches no task file")
        return found
    path = Path(where)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SuiteNotFound(f"{path} is neither a task file, a folder nor a glob that matches anything")
    levels = _level_folders(path)
    if not levels and _level_folders(path / "KernelBench"):
        levels = _level_folders(path / "KernelBench")
    folders = levels or [path]
    return [p for folder in folders for p in sorted(folder.glob("*.py")) if _is_task_file(p)]


def shipped_suite() -> Path:
    """This project's suite: tasks/ beside the package in a checkout, kernelsmith/_suite in a wheel."""
    checkout = Path(__file__).resolve().parent.parent / "tasks"
    if _level_folders(checkout):
        return checkout
    spec = importlib.util.find_spec("kernelsmith._suite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if _level_folders(Path(location)):
            return Path(location)
    raise SuiteNotFound("the shipped task suite is missing: reinstall kernelsmith, or pass a suite path")


def _seed_problem(task: Task) -> TaskProblem | None:
    """A seed that cannot even be parsed is reported, and the task goes on without it."""
    if task.seed_path is None or task.seed_source is None:
        return None
    try:
        tree = ast.parse(task.seed_source)
    except SyntaxError as error:
        return TaskProblem(task.seed_path, f"the seed does not parse: line {error.lineno}: {error.msg}")
    if not any(isinstance(node, ast.ClassDef) and node.name == "ModelNew" for node in tree.body):
        return TaskProblem(task.seed_path, "the seed defines no class ModelNew")
    return None


def _level_folders(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    found = [p for p in path.iterdir() if p.is_dir() and _LEVEL.match(p.name)]
    return sorted(found, key=lambda p: int(_LEVEL.match(p.name).group(1)))  # type: ignore[union-attr]


def _is_task_file(path: Path) -> bool:
    return path.suffix == ".py" and not path.name.startswith("_") and path.parent.name != SEEDS_FOLDER


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TaskError(f"{path}: cannot be read: {error}") from None


def _model_docstring(tree: ast.Module) -> str:
    """KernelBench files document the Model class rather than the module."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Model":
            return ast.get_docstring(node) or ""
    return ""


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def _order(task: Task) -> tuple[float, float, str]:
    return (
        task.level if task.level is not None else float("inf"),
        task.problem_id if task.problem_id is not None else float("inf"),
        task.name,
    )
