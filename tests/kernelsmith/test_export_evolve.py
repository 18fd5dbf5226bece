"""Acceptance: a real `evolve` run on the CPU, driven by replayed LLM replies, exported as training data.

The replies make a known lineage: a first kernel, a diff that breaks it, a fix (a repair), the same fix
again (a repeat), and a diff of a correct program (untimed on the CPU). The export must keep exactly the
repair and, when asked for, the untimed step; each stored prompt must be what the templates render.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

import archive
from evaluators.local import LocalEvaluator
from kernelsmith.config import load_settings
from kernelsmith.evolve import evolve
from kernelsmith.export import Category, StepFilter, find_steps
from kernelsmith.export_prompts import render
from kernelsmith.replies import extract_program, parse_diff_reply
from kernelsmith.tasks import CPU_SCALE, load_task
from tests.fake_openai import FakeOpenAI

REPO = Path(__file__).resolve().parents[2]

KERNEL = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK_SIZE=1024)
        return out
'''
FIXED = KERNEL.replace("1024", "2048")
FIXED_AGAIN = FIXED.replace("        n = x.numel()\n", "        n = x.numel()  # elements, not rows\n")

FIRST_KERNEL = f"One program per block of 1024 elements.\n\n```python\n{KERNEL}```\n"
BREAKING_DIFF = """Clamp at one instead.
<<<<<<< SEARCH
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0), mask=mask)
=======
    tl.store(out_ptr + offsets, tl.maximum(x, 1.0), mask=mask)
>>>>>>> REPLACE
"""
FIX = f"The kernel clamped at 1.0, not 0.0; this restores ReLU with bigger blocks.\n\n```python\n{FIXED}```\n"
FIX_AGAIN = f"Clamp at zero again.\n\n```python\n{FIXED_AGAIN}```\n"
WHERE_DIFF = """Select instead of max.
<<<<<<< SEARCH
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0), mask=mask)
=======
    tl.store(out_ptr + offsets, tl.where(x > 0, x, 0.0), mask=mask)
>>>>>>> REPLACE
"""

# one child at a time, replies in request order; the policy fixes a failure while one has had fewer than
# two children, and otherwise draws among the best programs
CONFIG = """
models:
  - name: fake-coder
llm: {{base_url: {base_url}, attempts: 1, max_concurrency: 1}}
operators: {{first_kernel: 1, rewrite: 0, diff: 1, fix: 1, params: 0}}
policy: {{islands: 1, exploit: 0.000001, explore: 0, fix: 1}}
budgets: {{max_evals: null, max_llm_calls: 5}}
evaluation: {{trials: 2, warm: 1}}
prompts: {{max_error_chars: 800}}
proposals: 1
seed: 3
"""


@pytest.fixture(scope="module")
def evolved(tmp_path_factory):
    """The archive of one run of the scripted search, and its programs in the order they were made."""
    work = tmp_path_factory.mktemp("evolved")
    shutil.copy(REPO / "tasks" / "level1" / "1_ReLU.py", work / "relu.py")  # no seed kernel beside it
    with FakeOpenAI() as server:
        for reply in (FIRST_KERNEL, BREAKING_DIFF, FIX, FIX_AGAIN, WHERE_DIFF):
            server.reply(reply)
        (work / "kernelsmith.yaml").write_text(CONFIG.format(base_url=server.base_url))
        settings = load_settings(work / "kernelsmith.yaml", env={"OPENAI_API_KEY": "EMPTY"}).settings
        task = load_task(work / "relu.py", scale=CPU_SCALE)

        async def run() -> None:
            with archive.open(work / "evolve.db") as store:
                async with LocalEvaluator(devices=[], cpu_workers=1, warm=1) as evaluator:
                    await evolve(task, settings, store, evaluator)

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OPENAI_API_KEY", "EMPTY")  # the scripted server takes any key
            asyncio.run(run())
        assert server.pending == 0
    with archive.open(work / "evolve.db") as store:
        (run,) = store.list_runs()
        programs = store.programs(run)
        statuses = [[e.status.value for e in store.evaluations(p)] for p in programs]
    return {"db": work / "evolve.db", "work": work, "programs": programs, "statuses": statuses}


def test_the_run_made_the_scripted_lineage(evolved):
    first, broken, fixed, again, where = evolved["programs"]
    assert [p.operator for p in evolved["programs"]] == ["first_kernel", "diff", "fix", "fix", "diff"]
    assert (broken.parent_id, fixed.parent_id, again.parent_id) == (first.id, broken.id, broken.id)
    assert again.duplicate_of == fixed.id and where.parent_id in (first.id, fixed.id)
    assert evolved["statuses"] == [["ok"], ["incorrect"], ["ok"], ["ok"], ["ok"]]


def test_exactly_the_repair_and_the_untimed_step_are_exported_with_the_prompts_the_loop_sent(evolved):
    first, broken, fixed, again, where = evolved["programs"]
    every = StepFilter(categories=frozenset(Category))
    with archive.open(evolved["db"]) as store:
        selection = find_steps(store, every)
        default = find_steps(store)
    assert [(s.parent.program.id, s.child.program.id, s.category) for s in selection.steps] == [
        (broken.id, fixed.id, Category.repair), (where.parent_id, where.id, Category.untimed)]
    assert selection.skipped == {"child not correct": 1, "repeat of an earlier step": 1}
    assert [s.child.program.id for s in default.steps] == [fixed.id]
    assert default.skipped["untimed (category not asked for)"] == 1

    repair, untimed = selection.steps
    # the loop's stored prompts are exactly what the templates render from the archive
    stored = [json.loads(step.llm_call.prompt) for step in (repair, untimed)]
    assert render(repair, "fix") == stored[0] and render(untimed, "improve_diff") == stored[1]
    assert "tl.maximum(x, 1.0)" in stored[0][1]["content"] and "Status: incorrect" in stored[0][1]["content"]


def test_the_exported_files_hold_the_steps_and_load_with_datasets(evolved, tmp_path):
    import datasets
    from typer.testing import CliRunner

    from kernelsmith.cli import app

    first, broken, fixed, again, where = evolved["programs"]
    db = str(evolved["db"])
    sft = CliRunner().invoke(app, ["export", "sft", str(tmp_path / "sft"), "--db", db,
                                   "--category", "repair", "--category", "untimed"], env={"COLUMNS": "200"})
    assert sft.exit_code == 0, sft.output
    assert "1 child not correct" in sft.stdout and "1 repeat of an earlier step" in sft.stdout
    rl = CliRunner().invoke(app, ["export", "rl", str(tmp_path / "rl"), "--db", db], env={"COLUMNS": "200"})
    assert rl.exit_code == 0, rl.output

    def load(kind: str) -> datasets.Dataset:
        files = str(tmp_path / kind / "train.jsonl")
        return datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "hf"))["train"]

    repair, untimed = load("sft")
    assert repair["metadata"]["category"] == "repair" and repair["metadata"]["child_id"] == fixed.id
    assert repair["metadata"]["template"] == "fix" and repair["metadata"]["prompt_source"] == "stored"
    assert repair["metadata"]["backend"] == "triton-interpret" and repair["metadata"]["gain"] is None
    assert repair["messages"][2]["content"] == FIX  # the model's reply was already in the loop's format
    assert extract_program(repair["messages"][2]["content"]) == fixed.source
    parent = first if where.parent_id == first.id else fixed
    assert untimed["metadata"]["reply_format"] == "diff" and untimed["metadata"]["operator"] == "diff"
    assert parse_diff_reply(parent.source, untimed["messages"][2]["content"])[0] == where.source

    (only,) = load("rl")  # repairs and improvements only, by default: the one repair's parent
    assert only["parent_source"] == broken.source and only["parent_status"] == "incorrect"
    assert only["reference_source"] == load_task(evolved["work"] / "relu.py", scale=CPU_SCALE).source
    assert (only["entry_point"], only["reply_format"], only["trials"]) == ("ModelNew", "code", 2)
