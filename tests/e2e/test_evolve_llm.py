"""`kernelsmith evolve` driven by scripted LLM replies through the real openai client, on a CPU task.

The script holds a first kernel, a diff that applies, a diff that does not, a malformed reply, a 429
and a timeout; afterwards the archive must hold exactly the lineage, statuses and tokens they imply.
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
from kernelsmith.tasks import CPU_SCALE, load_task
from tests.e2e.runner import REPO, count_rows, kernelsmith, start_kernelsmith, wait_for_rows

pytestmark = pytest.mark.slow

FIRST_KERNEL = '''A flat elementwise kernel: one program per block of 1024 elements.

```python
import torch
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
```
'''

IMPROVING_DIFF = '''Larger blocks and more warps amortise each program's launch.
<<<<<<< SEARCH
        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK_SIZE=1024)
=======
        relu_kernel[(triton.cdiv(n, 2048),)](x, out, n, BLOCK_SIZE=2048, num_warps=8)
>>>>>>> REPLACE
'''

UNAPPLICABLE_DIFF = '''Bypass L1 for the streaming load.
<<<<<<< SEARCH
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0, cache_modifier=".cg")
=======
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
>>>>>>> REPLACE
'''

MALFORMED = "I would make the blocks bigger, but I am not sure how to write it."

# quotes a line that both the first kernel and its improved child have, whichever is chosen as parent
LATE_DIFF = '''Select instead of max.
<<<<<<< SEARCH
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0), mask=mask)
=======
    tl.store(out_ptr + offsets, tl.where(x > 0, x, 0.0), mask=mask)
>>>>>>> REPLACE
'''

TOKENS = [(300, 120), (400, 60), (410, 40), (420, 15), (430, 50)]  # per stored call, in order
PRICE = {"input": 1.0, "output": 2.0}

CONFIG = """
models:
  - name: fake-coder
    price: {{input: 1.0, output: 2.0}}
llm:
  base_url: {base_url}
  timeout_s: 1.5
  attempts: 2
  backoff_s: 0.05
  max_concurrency: 1         # one call at a time: the scripted replies go out in request order
operators: {{first_kernel: 1, rewrite: 0, diff: 1, fix: 0, params: 0}}
budgets: {{max_evals: 3}}
evaluation: {{trials: 2, warm: 1}}
seed: 7
"""


def script(server) -> None:
    server.reply(FIRST_KERNEL, *TOKENS[0])
    server.error(429, retry_after=0.2, message="rate limited")  # the next call waits, then gets:
    server.reply(IMPROVING_DIFF, *TOKENS[1])
    server.reply(UNAPPLICABLE_DIFF, *TOKENS[2])
    server.reply(MALFORMED, *TOKENS[3])
    server.stall(8)  # longer than llm.timeout_s: the call times out and is retried, getting:
    server.reply(LATE_DIFF, *TOKENS[4])


def task_folder(tmp_path: Path) -> Path:
    """A task of its own, without a seed kernel: the LLM writes the first one."""
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copy(REPO / "tasks" / "level1" / "1_ReLU.py", folder / "relu.py")
    return folder


def snapshot(db: Path, run_id: int) -> list[tuple]:
    """What a run stored, without ids of rows or times: the part that must repeat exactly."""
    with archive.open(db) as store:
        programs = [(p.parent_id, p.operator, p.source, p.generation, p.metadata.get("attempt_error"),
                     [e.status.value for e in store.evaluations(p)]) for p in store.programs(run_id)]
        calls = [(c.program_id, c.response, c.prompt, c.prompt_tokens, c.completion_tokens) for c in store.llm_calls(run_id)]
    return programs + calls


def test_scripted_replies_give_the_expected_lineage_statuses_and_tokens(fake_openai, tmp_path, monkeypatch):
    work = task_folder(tmp_path)
    (work / "kernelsmith.yaml").write_text(CONFIG.format(base_url=fake_openai.base_url))
    script(fake_openai)

    done = kernelsmith("evolve", "relu.py", "--db", "evolve.db", "--out", "best.py", cwd=work,
                       OPENAI_API_KEY="EMPTY")

    assert done.returncode == 0, done.stdout + done.stderr
    assert fake_openai.pending == 0 and len(fake_openai.requests) == 7  # 5 calls, 2 of them retried
    with archive.open(work / "evolve.db") as store:
        (run,) = store.list_runs()
        first, improved, unapplied, malformed, late = store.programs(run)
        calls = store.llm_calls(run)

        assert (first.operator, first.parent_id, first.generation) == ("first_kernel", None, 0)
        assert "BLOCK_SIZE=1024)" in first.source and first.model == "fake-coder"
        assert (improved.operator, improved.parent_id, improved.generation) == ("diff", first.id, 1)
        assert "BLOCK_SIZE=2048, num_warps=8" in improved.source
        assert improved.metadata["description"].startswith("1 SEARCH/REPLACE block applied")
        # failed mutations are attempts: stored with their error, the parent's source unchanged, never evaluated
        assert unapplied.parent_id == first.id and unapplied.source == first.source
        assert "diff block 1 of 1 does not apply" in unapplied.metadata["attempt_error"]
        assert malformed.parent_id in (first.id, improved.id)
        assert "no SEARCH/REPLACE blocks, and no full program either" in malformed.metadata["attempt_error"]
        assert late.operator == "diff" and late.parent_id in (first.id, improved.id)
        assert "tl.where(x > 0, x, 0.0)" in late.source
        assert late.generation == store.get_program(late.parent_id).generation + 1
        statuses = [[e.status.value for e in store.evaluations(p)] for p in (first, improved, unapplied, malformed, late)]
        assert statuses == [["ok"], ["ok"], [], [], ["ok"]]
        assert store.get_run(run).status.value == "finished"

        # every call stored once, linked to what it made, with its tokens and cost
        assert [c.program_id for c in calls] == [first.id, improved.id, unapplied.id, malformed.id, late.id]
        assert [(c.prompt_tokens, c.completion_tokens) for c in calls] == TOKENS
        assert [c.error for c in calls] == [None] * 5
        assert sum(c.cost for c in calls) == pytest.approx(sum(p * 1.0 + c * 2.0 for p, c in TOKENS) / 1e6)
        assert [c.response for c in calls] == [FIRST_KERNEL, IMPROVING_DIFF, UNAPPLICABLE_DIFF, MALFORMED, LATE_DIFF]
        # a failed attempt's error is shown to the next prompts made from the same parent
        for call, program in zip(calls, (first, improved, unapplied, malformed, late), strict=True):
            user = json.loads(call.prompt)[-1]["content"]
            earlier = [p for p in (unapplied, malformed) if p.id < program.id and p.parent_id == program.parent_id]
            for attempt in earlier:
                assert attempt.metadata["attempt_error"][:80] in user
            assert ("Earlier attempts from this program that failed" in user) == bool(earlier)

    assert (work / "best.py").read_text() == first.source  # on the CPU every correct kernel ties; the oldest wins
    assert "correct, not timed" in done.stdout and "checks correctness" in done.stdout
    assert "5 calls · 2,245 tokens · $0.0025" in done.stdout

    # the same seed and the same replies, through evolve() itself this time: the same run, row for row
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    settings = load_settings(work / "kernelsmith.yaml", env={}).settings
    task = load_task(work / "relu.py", scale=CPU_SCALE)

    async def again() -> int:
        with archive.open(tmp_path / "again.db") as store:
            async with LocalEvaluator(devices=[], cpu_workers=2, warm=1) as evaluator:
                return (await evolve(task, settings, store, evaluator)).run_id

    script(fake_openai)
    assert snapshot(tmp_path / "again.db", asyncio.run(again())) == snapshot(work / "evolve.db", run.id)


HANGING_KERNEL = FIRST_KERNEL.replace("        return out\n", "        while out.numel() > 0:\n            n += 1\n        return out\n")

ONE_CALL_CONFIG = """
models:
  - name: fake-coder
    price: {{input: 1.0, output: 2.0}}
llm: {{base_url: {base_url}, attempts: 1, max_concurrency: 1}}
operators: {{first_kernel: 1, rewrite: 0, diff: 0, fix: 0, params: 0}}
budgets: {{max_evals: 3, max_llm_calls: 1}}
evaluation: {{trials: 2, warm: 0, time_limit_s: 120}}
seed: 7
"""


def test_a_run_killed_while_its_child_is_evaluated_keeps_the_llm_call_and_its_cost(fake_openai, tmp_path):
    work = task_folder(tmp_path)
    db = work / "evolve.db"
    (work / "kernelsmith.yaml").write_text(ONE_CALL_CONFIG.format(base_url=fake_openai.base_url))
    fake_openai.reply(HANGING_KERNEL, 300, 120)  # a first kernel whose evaluation never ends
    first = start_kernelsmith("evolve", "relu.py", "--db", "evolve.db", cwd=work, log=tmp_path / "first.log",
                              OPENAI_API_KEY="EMPTY")
    try:
        wait_for_rows(db, "llm_calls", 1, first, timeout=90)
        assert count_rows(db, "programs") == 0  # the child it made is still being evaluated
    finally:
        first.kill()  # SIGKILL: the call was paid for; nothing of the run's own tidies up
        first.wait()
    with archive.open(db) as store:
        (run,) = store.list_runs()
        (call,) = store.llm_calls(run)
    assert call.program_id is None and call.response == HANGING_KERNEL
    assert (call.prompt_tokens, call.completion_tokens) == (300, 120)
    assert call.cost == pytest.approx((300 * 1.0 + 120 * 2.0) / 1e6)

    # the resumed run counts the call: its one-call budget is spent, and no second call is made
    resumed = kernelsmith("evolve", "--resume", str(run.id), "--db", "evolve.db", cwd=work, OPENAI_API_KEY="EMPTY")
    output = " ".join(resumed.stdout.split())
    assert "LLM call budget spent (1)" in output, resumed.stdout + resumed.stderr
    assert "1 calls · 420 tokens · $0.0005" in output
    assert len(fake_openai.requests) == 1
