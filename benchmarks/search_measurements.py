"""Where a search's outcomes come from when they are real: a program evaluated once through the evaluator
(GPU, or the interpreter without timings), recorded in a JSON cache keyed by its normalized source, and
read back from that cache on a machine without the GPU."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from archive.fitness import Fitness
from evaluators.api import EvaluatorError
from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest, Stage, Status, TimingSettings
from kernelsmith.strategies import ParameterSpace
from kernelsmith.tasks import Task


@dataclass
class Outcome:
    """What a program's one evaluation said, as much as a search needs and a reader wants."""

    status: str
    stage: str
    speedup: float | None  # over eager PyTorch; None when not timed (the CPU interpreter) or not ok
    ms: float | None  # the candidate's median time
    message: str
    seconds: float  # wall time the evaluation took: what the GPU budget paid for it
    knobs: dict[str, int]

    @property
    def fitness(self) -> Fitness:
        return Fitness(Status(self.status), Stage(self.stage), self.speedup)


class Cache:
    """Outcomes of measured programs per task, keyed by normalized-source hash; a JSON file on disk."""

    FORMAT = 1

    def __init__(self, path: Path, header: dict) -> None:
        self.path, self.header = path, header
        self.tasks: dict[str, dict] = {}

    @classmethod
    def load(cls, path: Path) -> Cache:
        try:
            data = json.loads(path.read_text())
            cache = cls(path, data["header"])
            cache.tasks = {label: {**entry, "programs": {h: Outcome(**o) for h, o in entry["programs"].items()}}
                           for label, entry in data["tasks"].items()}
        except (OSError, ValueError, KeyError, TypeError) as error:
            sys.exit(f"{path}: not a readable search cache ({error})")
        if cache.header.get("format") != cls.FORMAT:
            sys.exit(f"{path}: cache format {cache.header.get('format')}, this script reads {cls.FORMAT}")
        return cache

    def entry(self, task: Task) -> dict:
        """The task's programs; refuses measurements made against another reference or seed."""
        digest = {"reference_sha256": _sha(task.source), "seed_sha256": _sha(task.seed_source or "")}
        entry = self.tasks.setdefault(task.label, {**digest, "programs": {}})
        for key, value in digest.items():
            if entry[key] != value:
                sys.exit(f"{self.path}: the measurements of {task.label} were made with another "
                         f"{key.split('_')[0]} (the task file changed since): use a new --out folder")
        return entry["programs"]

    def save(self) -> None:
        data = {"header": self.header,
                "tasks": {label: {**entry, "programs": {h: asdict(o) for h, o in entry["programs"].items()}}
                          for label, entry in self.tasks.items()}}
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(data, indent=1) + "\n")
        partial.replace(self.path)  # a crash mid-write keeps the previous file


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Measured:
    """Programs evaluated for real (GPU, or the interpreter without timings), each once, through the cache."""

    def __init__(self, evaluator, backend: str, args: argparse.Namespace, cache: Cache) -> None:
        self.evaluator, self.backend, self.args, self.cache = evaluator, backend, args, cache
        self.measured = 0
        self.spent_s = 0.0
        self.task_s = self.share_s = math.inf
        self.why = ""

    def start_task(self, tasks_left: int) -> None:
        self.task_s = 0.0
        if self.args.gpu_seconds is not None:
            self.share_s = max(0.0, self.args.gpu_seconds - self.spent_s) / tasks_left

    async def get(self, task: Task, space: ParameterSpace, source: str, key: str) -> Outcome | None:
        programs = self.cache.entry(task)
        if key in programs:
            return programs[key]
        if self.task_s >= self.share_s:
            self.why = "the task's share of --gpu-seconds was spent"
            return None
        request = EvalRequest(task_name=task.label, reference_source=task.source, candidate_source=source,
                              backend=Backend(self.backend), correctness=CorrectnessSettings(trials=self.args.trials),
                              timing=TimingSettings(repetitions=self.args.repetitions, baselines=["eager"]),
                              time_limit_s=self.args.time_limit)
        started = time.perf_counter()
        try:
            result = await self.evaluator.evaluate(request)
        except EvaluatorError as error:
            self.why = f"the evaluator failed: {error}"
            return None
        finally:
            seconds = time.perf_counter() - started
            self.spent_s += seconds
            self.task_s += seconds
        if result.status == Status.infra_error:  # the evaluator's fault, after its own retry
            self.why = f"the evaluator failed: {_first_line(result.message)}"
            return None
        device = result.environment.device
        if self.cache.header.setdefault("device", device) != device:
            sys.exit(f"{self.cache.path} holds measurements from {self.cache.header['device']}, this is "
                     f"{device}: use a new --out folder")
        self.cache.header.setdefault("environment", result.environment.model_dump(mode="json"))
        eager = result.baselines.get("eager")
        if eager is not None:
            self.cache.tasks[task.label].setdefault("eager_ms", eager.median_ms)
        outcome = Outcome(result.status.value, result.stage.value, result.speedup,
                          result.timing.median_ms if result.timing else None,
                          _first_line(result.message), round(seconds, 2), space.values(source))
        programs[key] = outcome
        self.measured += 1
        self.cache.save()
        return outcome


class Replayed:
    """Only what a cache recorded: a program it lacks would need the GPU."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.measured, self.spent_s = 0, 0.0
        self.why = "a program not in the cache (it would need the GPU)"

    def start_task(self, tasks_left: int) -> None: ...

    async def get(self, task: Task, space: ParameterSpace, source: str, key: str) -> Outcome | None:
        return self.cache.entry(task).get(key)


def _first_line(text: str, limit: int = 200) -> str:
    return (text.strip().splitlines() or [""])[0][:limit]
