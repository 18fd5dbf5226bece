"""Reference outputs and baseline timings, computed in the trusted judge and cached per task.

They depend only on the task, the seeds, the device and the settings, so every candidate of a
task reuses them. Inputs are generated on the device from a seed, never copied from the host.
No candidate code is ever imported in this process.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from evaluators import workdirs
from evaluators.backends import BackendSpec
from evaluators.compare import degenerate_reference
from evaluators.loading import (
    SourceProblem,
    TaskError,
    check_reference_source,
    construct,
    flatten_outputs,
    get_class,
    import_file,
    seed_all,
)
from evaluators.protocol import EvalRequest, TimingStats
from evaluators.timing import Clock, effective_times, flush_buffer, timed_loop

_module_counter = itertools.count()
# torch's global RNG is shared by every thread: judges running side by side (one per device in
# the service) must seed and draw under one lock, or they get each other's random inputs
_rng_lock = threading.Lock()


def derive_seed(base: int, label: str, index: int) -> int:
    digest = hashlib.sha256(f"{base}:{label}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class ReferenceData:
    key: str
    source: str
    init_seed: int
    trial_seeds: list[int]
    recheck_seeds: list[int]
    task: TaskModule
    model: torch.nn.Module
    device: torch.device
    # outputs by seed; empty when they are too large to keep beside the candidate (then recomputed)
    outputs: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    baselines: dict[str, TimingStats] = field(default_factory=dict)
    input_bytes: int = 0
    output_bytes: int = 0
    output_elements: int = 1
    degenerate: str | None = None
    compute_s: float = 0.0
    profile: Any = None  # evaluators.ops.ReferenceProfile, measured by the judge when first needed

    def output_for(self, seed: int) -> list[torch.Tensor]:
        if seed in self.outputs:
            return self.outputs[seed]
        # regenerating on the device costs one reference forward; copying huge outputs to the host costs more
        return _run_reference(self.model, self.task.make_inputs(seed, self.device))

    def held_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for ts in self.outputs.values() for t in ts)


class TaskModule:
    """A reference task loaded in the judge."""

    def __init__(self, source: str, workdir: Path) -> None:
        check_reference_source(source)
        self.path = workdir / f"reference_{next(_module_counter)}.py"
        self.path.write_text(source)
        try:
            self.module: ModuleType = import_file(self.path, f"kernelsmith_task_{self.path.stem}")
            self.model_class = get_class(self.module, "Model", self.path)
        except SourceProblem as problem:
            raise TaskError(f"the reference failed to load: {problem}") from None

    def make_inputs(self, seed: int, device: torch.device) -> list[Any]:
        with _rng_lock:
            seed_all(seed)
            with torch.device(device):
                return self._called("get_inputs", self.module.get_inputs)

    def _called(self, name: str, function: Any) -> list[Any]:
        """The list a task function returns; its failure is the task's, said with the file."""
        try:
            return list(function())
        except torch.cuda.OutOfMemoryError:
            raise  # the device's, not the task's
        except Exception as error:
            raise TaskError(f"the task's {name}() failed: {type(error).__name__}: {error}") from None

    def build(self, init_seed: int, device: torch.device) -> torch.nn.Module:
        init_inputs = self._called("get_init_inputs", self.module.get_init_inputs)
        try:
            with _rng_lock:
                seed_all(init_seed)
                model = construct(self.model_class, init_inputs, self.path)
        except SourceProblem as problem:
            raise TaskError(f"the reference Model could not be built: {problem}") from None
        return model.to(device)


def reference_key(request: EvalRequest, spec: BackendSpec) -> str:
    relevant = {
        "source": request.reference_source,
        "seed": request.correctness.seed,
        "trials": request.correctness.trials,
        "recheck": request.correctness.recheck_after_timing,
        "device": spec.torch_device,
        "backend": spec.backend.value,
        # which repetitions are compared changes neither the reference nor its baselines
        "timing": request.timing.model_dump(mode="json", exclude={"compared_repetitions"})
        if spec.measures_time else None,
    }
    return hashlib.sha256(repr(sorted(relevant.items())).encode()).hexdigest()


def compute_reference(request: EvalRequest, spec: BackendSpec, task: TaskModule) -> ReferenceData:
    started = time.perf_counter()
    device = torch.device(spec.torch_device)
    seed = request.correctness.seed
    data = ReferenceData(
        key=reference_key(request, spec),
        source=request.reference_source,
        init_seed=seed,
        trial_seeds=[derive_seed(seed, "trial", i) for i in range(request.correctness.trials)],
        recheck_seeds=[derive_seed(seed, "recheck", i) for i in range(request.correctness.recheck_after_timing)],
        task=task,
        model=task.build(seed, device),
        device=device,
    )
    seeds = data.trial_seeds + data.recheck_seeds
    keep = True
    first_trials: list[list[torch.Tensor]] = []
    for index, trial_seed in enumerate(seeds):
        inputs = task.make_inputs(trial_seed, device)
        outputs = _run_reference(data.model, inputs)
        if index == 0:
            data.input_bytes = sum(x.numel() * x.element_size() for x in inputs if isinstance(x, torch.Tensor))
            data.output_bytes = sum(t.numel() * t.element_size() for t in outputs)
            data.output_elements = max((t.numel() for t in outputs), default=1)
            keep = _worth_keeping(data.output_bytes * len(seeds), device)
        del inputs
        if len(first_trials) < 2:
            first_trials.append(outputs)
        if keep:
            data.outputs[trial_seed] = outputs
        elif len(first_trials) == 2:
            break  # too large to keep: later uses recompute on the device
    data.degenerate = degenerate_reference(first_trials)
    del first_trials
    if spec.measures_time and request.timing.enabled:
        _time_baselines(data, request, task, data.model, device)
    data.compute_s = time.perf_counter() - started
    return data


def _worth_keeping(total_bytes: int, device: torch.device) -> bool:
    """Keep reference outputs on the GPU unless they would crowd out the candidate."""
    if device.type != "cuda":
        return True
    return total_bytes <= torch.cuda.get_device_properties(device).total_memory // 8


def _run_reference(model: torch.nn.Module, inputs: list[Any]) -> list[torch.Tensor]:
    try:
        with torch.no_grad():
            result = flatten_outputs(model(*inputs))
    except Exception as error:
        raise TaskError(f"the reference forward failed: {type(error).__name__}: {error}") from None
    if not result or not all(isinstance(t, torch.Tensor) for t in result):
        raise TaskError("the reference forward must return a tensor or a tuple of tensors")
    return [t.detach().clone() for t in result]


def _time_baselines(
    data: ReferenceData, request: EvalRequest, task: TaskModule, model: torch.nn.Module, device: torch.device
) -> None:
    settings = request.timing
    clock = Clock.capture(device)
    flush = flush_buffer(device, settings.flush_l2)
    seeds = itertools.count(1 << 40)

    def next_inputs() -> tuple[int, list[Any]]:
        seed = next(seeds)
        return seed, task.make_inputs(seed, device)

    def measure(call: Callable[[list[Any]], Any]) -> tuple[list[float], float]:
        """Per-call times, and wall milliseconds per call of the whole loop (warm-up included)."""
        started = time.perf_counter()
        samples, warmup_calls = timed_loop(call, next_inputs, clock, settings.repetitions, settings.warmup, flush,
                                           settings.fresh_inputs, settings.warmup_ms)
        wall_ms = (time.perf_counter() - started) * 1000.0 / (settings.repetitions + warmup_calls)
        times, _ = effective_times(samples, device_slack_ms=float("inf"))
        return times, wall_ms

    with torch.no_grad():
        # the loop's own cost per call (inputs, flush, synchronizes): the wall-clock cross-check needs it
        if "eager" in settings.baselines:
            eager, _ = measure(lambda inputs: model(*inputs))
            data.baselines["eager"] = TimingStats.from_samples(eager)
        if "compile" in settings.baselines:
            compiled = torch.compile(model)
            compiled(*next_inputs()[1])  # compile outside the timed loop
            times, _ = measure(lambda inputs: compiled(*inputs))
            data.baselines["compile"] = TimingStats.from_samples(times)


class ReferenceStore:
    """An LRU cache of ReferenceData, bounded by entries and by the bytes of outputs held."""

    def __init__(self, max_entries: int = 8, max_bytes: int = 8 << 30) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, ReferenceData] = OrderedDict()
        self._workdir = workdirs.make("kernelsmith-judge-")
        weakref.finalize(self, shutil.rmtree, self._workdir, ignore_errors=True)  # its task files

    def get(self, request: EvalRequest, spec: BackendSpec) -> tuple[ReferenceData, bool]:
        """(data, cached): computes on a miss."""
        key = reference_key(request, spec)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key], True
        task = TaskModule(request.reference_source, self._workdir)
        data = compute_reference(request, spec, task)
        self._entries[key] = data
        self._evict()
        return data, False

    def _evict(self) -> None:
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_entries
            or sum(e.held_bytes() for e in self._entries.values()) > self.max_bytes
        ):
            self._entries.popitem(last=False)
