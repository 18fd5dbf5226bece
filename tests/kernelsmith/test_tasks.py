"""Suite loading and the size scale: KernelBench layouts, filters, broken files, seeds, the shipped suite."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from evaluators.protocol import Status
from kernelsmith.tasks import (
    CPU_SCALE,
    SuiteNotFound,
    TaskError,
    load_suite,
    load_task,
    scale_source,
    scaled_size,
    shipped_suite,
)
from tests.conftest import CANDIDATES, make_request

REPO = Path(__file__).parents[2]

# a task in KernelBench's own style: no module docstring, no SIZE_CONSTANTS, the Model documented
SOFTMAX = '''import torch
import torch.nn as nn

class Model(nn.Module):
    """
    Simple model that performs a Softmax activation.
    """
    def __init__(self):
        super(Model, self).__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=self_dim)

self_dim = 1
batch_size = 4096
dim = 16384  # two rows' worth per warp

def get_inputs():
    x = torch.randn(batch_size, dim)
    return [x]

def get_init_inputs():
    return []
'''


def kernelbench_task(docstring: str, body: str = "return x") -> str:
    return (
        "import torch\nimport torch.nn as nn\n\n"
        f"class Model(nn.Module):\n    \"\"\"{docstring}\"\"\"\n"
        "    def __init__(self):\n        super().__init__()\n"
        f"    def forward(self, x):\n        {body}\n\n"
        "batch_size = 16\n\n"
        "def get_inputs():\n    return [torch.randn(batch_size, 8)]\n\n"
        "def get_init_inputs():\n    return []\n"
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A KernelBench checkout's layout, with files of our own and two broken ones."""
    root = tmp_path / "KernelBench"
    files = {
        "level1/1_Square_matrix_multiplication_.py": kernelbench_task("Matrix product.", "return x @ x.T"),
        "level1/23_Softmax.py": SOFTMAX,
        "level1/40_Broken_syntax.py": "import torch\nclass Model(:\n",
        "level1/41_No_inputs.py": "import torch.nn as nn\nclass Model(nn.Module):\n    pass\n",
        "level2/12_Gemm_Multiply_LeakyReLU.py": kernelbench_task("Gemm, multiply, LeakyReLU."),
        "level3/5_AlexNet.py": kernelbench_task("A small network."),
        "level1/__init__.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return tmp_path


def test_a_kernelbench_checkout_loads_with_levels_ids_and_docstrings(checkout: Path):
    suite = load_suite(checkout)  # the checkout root: KernelBench/levelN found below it
    assert [(t.level, t.problem_id, t.name) for t in suite.tasks] == [
        (1, 1, "1_Square_matrix_multiplication_"),
        (1, 23, "23_Softmax"),
        (2, 12, "12_Gemm_Multiply_LeakyReLU"),
        (3, 5, "5_AlexNet"),
    ]
    softmax = suite.find("level1/23_Softmax")
    assert softmax is not None and softmax.source == SOFTMAX  # loaded unchanged
    assert softmax.docstring == "Simple model that performs a Softmax activation."
    assert softmax.seed_source is None

    # the same tasks from the KernelBench folder, one level folder, a glob, one file
    assert [t.label for t in load_suite(checkout / "KernelBench").tasks] == [t.label for t in suite.tasks]
    assert [t.label for t in load_suite(checkout / "KernelBench" / "level2").tasks] == ["level2/12_Gemm_Multiply_LeakyReLU"]
    assert [t.name for t in load_suite(str(checkout / "KernelBench" / "level*" / "1*.py")).tasks] == [
        "1_Square_matrix_multiplication_", "12_Gemm_Multiply_LeakyReLU",
    ]
    single = load_task(checkout / "KernelBench" / "level3" / "5_AlexNet.py")
    assert (single.level, single.problem_id, single.label) == (3, 5, "level3/5_AlexNet")


def test_broken_files_are_reported_with_their_path_and_the_rest_loads(checkout: Path):
    suite = load_suite(checkout)
    problems = {problem.path.name: problem.message for problem in suite.problems}
    assert set(problems) == {"40_Broken_syntax.py", "41_No_inputs.py"}
    assert "line 2" in problems["40_Broken_syntax.py"] and "syntax" in problems["40_Broken_syntax.py"]
    assert "get_inputs" in problems["41_No_inputs.py"] and "get_init_inputs" in problems["41_No_inputs.py"]
    assert len(suite.tasks) == 4
    with pytest.raises(TaskError, match="40_Broken_syntax.py"):
        load_task(checkout / "KernelBench" / "level1" / "40_Broken_syntax.py")


def test_filters_by_level_id_and_name(checkout: Path):
    assert [t.name for t in load_suite(checkout, level=1).tasks] == ["1_Square_matrix_multiplication_", "23_Softmax"]
    assert [t.label for t in load_suite(checkout, problem_id=5).tasks] == ["level3/5_AlexNet"]
    assert [t.label for t in load_suite(checkout, name="SOFTMAX").tasks] == ["level1/23_Softmax"]
    assert load_suite(checkout, level=2, name="softmax").tasks == []
    # filters never hide a broken file: it is still reported
    assert len(load_suite(checkout, level=3).problems) == 2


def test_a_path_that_names_nothing_is_an_error():
    with pytest.raises(SuiteNotFound, match="neither"):
        load_suite("/nonexistent/suite")
    with pytest.raises(SuiteNotFound, match="matches no task file"):
        load_suite("/nonexistent/level*/*.py")


def test_seeds_are_found_beside_their_task_and_a_broken_seed_is_reported(tmp_path: Path):
    level = tmp_path / "level1"
    (level / "seeds").mkdir(parents=True)
    (level / "1_Relu.py").write_text((CANDIDATES / "relu_reference.py").read_text())
    (level / "2_Copy.py").write_text((CANDIDATES / "relu_reference.py").read_text())
    (level / "seeds" / "1_Relu.py").write_text((CANDIDATES / "relu_ok.py").read_text())
    (level / "seeds" / "2_Copy.py").write_text("class ModelNew(:\n")
    suite = load_suite(tmp_path)
    relu, copy = suite.tasks  # seeds themselves are never loaded as tasks
    assert relu.seed_path == level / "seeds" / "1_Relu.py" and "ModelNew" in (relu.seed_source or "")
    assert copy.seed_source is None and copy.seed_path is None
    assert [(p.path, "does not parse" in p.message) for p in suite.problems] == [(level / "seeds" / "2_Copy.py", True)]


def test_scaled_sizes_keep_multiples_of_16_and_never_reach_zero():
    assert scaled_size(4096, 0.01) == 48
    assert scaled_size(4096, 0.001) == 16  # a multiple of 16 stays one, at least 16
    assert scaled_size(16, 0.5) == 16
    assert scaled_size(1000, 0.01) == 10
    assert scaled_size(4095, 0.0001) == 1
    assert scaled_size(100, 1.0) == 100


def test_declared_size_constants_are_the_only_ones_scaled():
    source = (
        '"""A task."""\n'
        "batch_size = 4096  # rows\n"
        "dim: int = 1000\n"
        "kernel_size = 128\n"
        "hidden = dim * 2\n"
        'SIZE_CONSTANTS = ("batch_size", "dim")\n'
    )
    scaled = scale_source(source, 0.01)
    assert scaled.splitlines() == [
        '"""A task."""',
        "batch_size = 48  # rows",
        "dim: int = 10",
        "kernel_size = 128",  # not declared: left alone however large
        "hidden = dim * 2",  # derived sizes follow the scaled ones
        'SIZE_CONSTANTS = ("batch_size", "dim")',
    ]
    assert scale_source(source, 1.0) == source
    with pytest.raises(ValueError, match="scale"):
        scale_source(source, 0.0)
    with pytest.raises(ValueError, match="width"):
        scale_source(source.replace('"dim")', '"dim", "width")'), 0.5)


def test_files_without_size_constants_scale_integers_of_64_and_more():
    scaled = scale_source(SOFTMAX, 0.01)
    assert "batch_size = 48\n" in scaled and "dim = 160  # two rows' worth per warp\n" in scaled
    assert "self_dim = 1\n" in scaled  # a small integer is an axis or a kernel size, not a size
    tree = ast.parse(scale_source("flag = True\nrate = 512.0\nc = 64\n", 0.25))
    assert [ast.literal_eval(node.value) for node in tree.body] == [True, 512.0, 16]
    assert "a, b = 64, 3" in scale_source("a, b = 256, 3\n", 0.25)


def test_a_declared_constant_that_is_missing_makes_the_task_a_reported_problem(tmp_path: Path):
    (tmp_path / "1_Bad.py").write_text(
        (CANDIDATES / "relu_reference.py").read_text() + '\nSIZE_CONSTANTS = ("batch_size", "width")\n'
    )
    assert load_suite(tmp_path).problems == []  # unscaled, nothing is rewritten
    problems = load_suite(tmp_path, scale=0.5).problems
    assert len(problems) == 1 and "width" in problems[0].message


def test_a_scaled_kernelbench_task_is_still_a_task_the_evaluator_accepts(tmp_path: Path, interpret_judge):
    (tmp_path / "1_Relu.py").write_text(
        "import torch\nimport torch.nn as nn\n\nclass Model(nn.Module):\n    def forward(self, x):\n"
        "        return torch.relu(x)\n\nbatch_size = 4096\ndim = 65536\n\n"
        "def get_inputs():\n    return [torch.randn(batch_size, dim)]\n\ndef get_init_inputs():\n    return []\n"
    )
    task = load_task(tmp_path / "1_Relu.py", scale=CPU_SCALE)
    assert "batch_size = 16\ndim = 320\n" in task.source and task.scale == CPU_SCALE
    result = interpret_judge.evaluate(make_request(task.source, "relu_ok.py", task_name=task.label))
    assert result.status == Status.ok, result.message
    assert result.trials[0].numel == 16 * 320


def test_the_shipped_suite_is_found_in_the_checkout():
    assert shipped_suite() == REPO / "tasks"
    assert load_suite(shipped_suite()).problems == []


@pytest.mark.slow
def test_the_shipped_suite_is_found_when_installed_from_a_wheel(tmp_path: Path):
    # build from a copy: an in-tree build would leave build/ and egg-info in the checkout
    tree = tmp_path / "tree"
    for name in ("setup.py", "pyproject.toml", "README.md"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tree / name)
    for package in ("kernelsmith", "evaluators", "archive", "prompts", "tasks"):
        shutil.copytree(REPO / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(tree)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("kernelsmith-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:  # installing a pure wheel is unpacking it onto the path
        archive.extractall(site)
    assert (site / "kernelsmith" / "_suite" / "level1" / "seeds" / "13_Softmax.py").is_file()
    assert (site / "kernelsmith" / "report_templates" / "page.html").is_file()  # the HTML report's page
    probe = subprocess.run(
        [sys.executable, "-c",
         "from kernelsmith.tasks import load_suite, shipped_suite; s = load_suite(shipped_suite()); "
         "print(shipped_suite()); print(len(s.tasks), sum(t.seed_source is not None for t in s.tasks), len(s.problems))"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)}, timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    where, counts = probe.stdout.splitlines()
    assert Path(where) == site / "kernelsmith" / "_suite"
    shipped = load_suite(shipped_suite())
    assert counts == f"{len(shipped.tasks)} {sum(t.seed_source is not None for t in shipped.tasks)} 0"


# -- the command ----------------------------------------------------------------------------------


def tasks_command(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kernelsmith", "tasks", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, env={**os.environ, "COLUMNS": "200"},
    )


def test_the_command_lists_the_shipped_suite_and_filters_it():
    everything = tasks_command()
    assert everything.returncode == 0, everything.stderr
    assert "13_Softmax" in everything.stdout and "4_TransformerBlock" in everything.stdout
    softmax_row = next(line for line in everything.stdout.splitlines() if "13_Softmax" in line)
    assert "Softmax over the last dimension" in softmax_row and "yes" in softmax_row
    level3 = tasks_command("--level", "3", "--name", "cnn")
    assert level3.returncode == 0 and "3_SmallCNN" in level3.stdout and "13_Softmax" not in level3.stdout
    by_id = tasks_command("--level", "1", "--id", "13")
    assert [line for line in by_id.stdout.splitlines() if "_" in line and "│" in line][0].count("13_Softmax") == 1


def test_the_command_reports_broken_files_and_misuse(checkout: Path):
    listed = tasks_command(str(checkout / "KernelBench"))
    assert listed.returncode == 1  # the listing is shown, but the suite is not clean
    assert "23_Softmax" in listed.stdout and "12_Gemm_Multiply_LeakyReLU" in listed.stdout
    assert "40_Broken_syntax.py" in listed.stderr and "41_No_inputs.py" in listed.stderr
    none = tasks_command(str(checkout / "KernelBench" / "level2"), "--name", "softmax")
    assert none.returncode == 1 and "no task" in none.stderr and "--name softmax" in none.stderr
    missing = tasks_command("/nonexistent/suite")
    assert missing.returncode == 2 and "neither" in missing.stderr and "Traceback" not in missing.stderr
