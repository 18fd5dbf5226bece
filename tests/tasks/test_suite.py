"""The shipped suite's own rules: naming, docstrings, size constants, real shapes, and tunable seeds."""

from __future__ import annotations

import ast
import re
import types

import pytest
import torch

from evaluators.compare import degenerate_reference
from kernelsmith.params import BackendLimits, find_knobs
from kernelsmith.tasks import CPU_SCALE, SIZE_CONSTANTS, Task, load_suite, shipped_suite

SUITE = load_suite(shipped_suite())
TASKS = {task.label: task for task in SUITE.tasks}


def module_of(task: Task, source: str | None = None) -> types.ModuleType:
    """Our own task files are trusted: import them here to look at shapes and outputs."""
    module = types.ModuleType(task.name)
    exec(compile(source or task.source, str(task.path), "exec"), module.__dict__)
    return module


def test_the_suite_has_every_level_it_promises_and_loads_clean():
    assert SUITE.problems == []
    counts = {level: sum(t.level == level for t in SUITE.tasks) for level in (1, 2, 3)}
    assert counts[1] >= 20 and counts[2] >= 8 and counts[3] >= 3, counts
    for level in (1, 2, 3):
        ids = sorted(t.problem_id for t in SUITE.tasks if t.level == level)
        assert ids == list(range(1, len(ids) + 1)), f"level {level} ids are not 1..n: {ids}"
    assert all(t.seed_source is not None for t in SUITE.tasks if t.level == 1), "every level-1 task ships a seed"


@pytest.mark.parametrize("label", TASKS)
def test_a_task_follows_the_suite_conventions(label: str):
    task = TASKS[label]
    assert re.fullmatch(r"\d+_[A-Za-z0-9_]+", task.name), "KernelBench naming: N_Name.py"
    tree = ast.parse(task.source)
    docstring = ast.get_docstring(tree) or ""
    assert docstring and "\n" not in docstring.strip(), "a one-line module docstring"
    declared = next(
        (node for node in tree.body if isinstance(node, ast.Assign)
         and any(isinstance(t, ast.Name) and t.id == SIZE_CONSTANTS for t in node.targets)),
        None,
    )
    assert declared is not None, f"{label} declares no {SIZE_CONSTANTS}"


@pytest.mark.parametrize("label", TASKS)
def test_full_size_shapes_hold_and_mean_something_on_a_gpu(label: str):
    # the meta device checks every shape at the real sizes without allocating or computing anything
    module = module_of(TASKS[label])
    with torch.device("meta"):
        model = module.Model(*module.get_init_inputs())
        inputs = module.get_inputs()
        output = model(*inputs)
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)] + [output]
    traffic = sum(t.numel() * t.element_size() for t in tensors)
    assert traffic >= 8 << 20, f"{label} moves only {traffic >> 20} MB: too small to time on a GPU"


@pytest.mark.parametrize("label", TASKS)
def test_at_cpu_scale_the_reference_is_small_finite_and_input_dependent(label: str):
    task = TASKS[label]
    module = module_of(task, load_suite(task.path, scale=CPU_SCALE).tasks[0].source)
    torch.manual_seed(0)
    model = module.Model(*module.get_init_inputs())
    outputs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        inputs = module.get_inputs()
        assert sum(x.numel() for x in inputs if isinstance(x, torch.Tensor)) <= 1 << 16, "scaled inputs stay small"
        with torch.no_grad():
            out = model(*inputs)
        assert not out.is_floating_point() or bool(torch.isfinite(out).all())
        outputs.append([out])
    if outputs[0][0].numel() == 1:  # a loss: one value, which the constant-output check always flags
        assert not torch.equal(outputs[0][0], outputs[1][0]), "the output does not depend on the inputs"
    else:
        assert degenerate_reference(outputs) is None


@pytest.mark.parametrize("label", [label for label, task in TASKS.items() if task.seed_source])
def test_a_seed_gives_the_parameter_tuner_tile_sizes_and_warps_to_move(label: str):
    knobs = find_knobs(TASKS[label].seed_source or "", BackendLimits.for_backend("triton-nvidia"))
    kinds = {knob.kind for knob in knobs}
    assert {"tile", "num_warps"} <= kinds, f"{label}: found only {[knob.label for knob in knobs]}"
