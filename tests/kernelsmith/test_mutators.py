"""Mutators and prompts, with the real openai client talking to a scripted server on loopback."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from evaluators.protocol import Backend, EvalResult, Finding, Stage, Status, TimingStats, TrialResult
from kernelsmith.llm import LLMCall, LLMClient, ModelSpec, Price, RetryPolicy
from kernelsmith.mutators import (
    Diff,
    FirstKernel,
    Fix,
    MutationContext,
    NoOperator,
    OperatorMix,
    ParamTune,
    ProgramView,
    Rewrite,
)
from kernelsmith.mutators.prompting import messages, trim
from kernelsmith.params import BackendLimits

REFERENCE = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(16, 1000)]


def get_init_inputs():
    return []
'''

KERNEL = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.empty_like(x)
        n = x.numel()
        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)
        return out
'''

IMPROVING_DIFF = '''Larger blocks and more warps amortise the launch.
<<<<<<< SEARCH
        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)
=======
        relu_kernel[(triton.cdiv(n, 4096),)](x, out, n, BLOCK=4096, num_warps=8)
>>>>>>> REPLACE
'''

NVIDIA = BackendLimits.for_backend(Backend.triton_nvidia, "NVIDIA H100 80GB HBM3")


def _timing(ms: float) -> TimingStats:
    return TimingStats.from_samples([ms * 0.98, ms, ms * 1.03])


def _ok(speedup: float) -> EvalResult:
    return EvalResult(
        task_name="relu", status=Status.ok, stage=Stage.done,
        trials=[TrialResult(index=0, passed=True, max_abs_error=1e-7, max_rel_error=2e-7)],
        timing=_timing(0.1 / speedup), baselines={"eager": _timing(0.1), "compile": _timing(0.08)},
        speedup=speedup, speedup_compile=0.8 * speedup,
    )


def _failed(log: str) -> EvalResult:
    return EvalResult(task_name="relu", status=Status.compile_error, stage=Stage.load,
                      message="triton.compiler.errors.CompilationError: at 9:4", log=log,
                      findings=[Finding(rule="no_triton_launch", message="no kernel ran", severity="warning")])


def _llm(server, records: list[LLMCall] | None = None) -> LLMClient:
    spec = ModelSpec("coder", base_url=server.base_url, api_key="sk-test", price=Price(1.0, 4.0), timeout_s=0.5)
    return LLMClient([spec], seed=0, retry=RetryPolicy(attempts=2, backoff_s=0.05),
                     on_call=records.append if records is not None else None)


def _context(parent: ProgramView | None = None, **kwargs) -> MutationContext:
    return MutationContext("relu", REFERENCE, NVIDIA, parent=parent, **kwargs)


def _mutate(operator, context):
    async def go():
        try:
            return await operator.mutate(context, random.Random(0))
        finally:
            if getattr(operator, "llm", None) is not None:
                await operator.llm.aclose()

    return asyncio.run(go())


def test_first_kernel_is_written_from_the_reference(fake_openai):
    fake_openai.reply(f"A plain elementwise kernel.\n```python\n{KERNEL}```", 900, 300)
    records: list[LLMCall] = []

    mutation = _mutate(FirstKernel(_llm(fake_openai, records)), _context())

    assert mutation.ok and mutation.child_source == KERNEL
    assert mutation.operator == "first_kernel" and mutation.description == "A plain elementwise kernel."
    assert mutation.model == "coder" and records == mutation.llm_calls
    system, user = fake_openai.requests[0].messages
    assert system["role"] == "system" and "class ModelNew(nn.Module)" in system["content"]
    assert REFERENCE.strip() in user["content"]
    assert "- Backend: triton-nvidia on NVIDIA H100 80GB HBM3." in user["content"]
    assert "num_warps: one of 1, 2, 4, 8, 16" in user["content"]


def test_a_diff_that_applies_makes_the_child_and_the_prompt_carries_feedback_and_inspirations(fake_openai):
    fake_openai.reply(IMPROVING_DIFF)
    parent = ProgramView(KERNEL, result=_ok(1.25), score=1.25)
    inspiration = ProgramView(KERNEL.replace("1024", "2048"), result=_ok(1.6), score=1.6,
                              description="BLOCK 1024->2048")

    mutation = _mutate(Diff(_llm(fake_openai)), _context(parent, inspirations=[inspiration]))

    assert mutation.ok and "BLOCK=4096, num_warps=8" in mutation.child_source
    assert mutation.description.startswith("1 SEARCH/REPLACE block applied: Larger blocks")
    prompt = fake_openai.requests[0].messages[1]["content"]
    assert "- Status: ok (stage reached: done)" in prompt
    assert "- Speedup: 1.25x over eager PyTorch, 1.00x over torch.compile" in prompt
    assert "- Timing: 0.08 ms median" in prompt and "eager PyTorch 0.1 ms; torch.compile 0.08 ms" in prompt
    assert "### Program 1: ok, 1.60x over eager, 1.28x over torch.compile, score 1.6, made by: BLOCK 1024->2048" in prompt
    assert "<<<<<<< SEARCH" in prompt  # the diff format is explained


def test_a_diff_that_does_not_apply_is_a_failed_mutation_shown_to_the_next_prompt(fake_openai):
    fake_openai.reply("<<<<<<< SEARCH\n    BLOCK = 1024\n=======\n    BLOCK = 2048\n>>>>>>> REPLACE", 700, 50)
    fake_openai.reply(IMPROVING_DIFF)
    records: list[LLMCall] = []
    llm = _llm(fake_openai, records)
    parent = ProgramView(KERNEL, result=_ok(1.0))

    async def two_tries():
        first = await Diff(llm).mutate(_context(parent), random.Random(0))
        second = await Diff(llm).mutate(_context(parent, notes=[first.error]), random.Random(0))
        await llm.aclose()
        return first, second

    failed, retried = asyncio.run(two_tries())

    assert not failed.ok and failed.child_source is None
    assert failed.error.startswith("unusable reply from coder: diff block 1 of 1 does not apply: SEARCH line 1 "
                                   "`BLOCK = 1024` is not in the parent")
    assert failed.llm_calls[0].completion_tokens == 50  # the failed attempt still cost tokens
    assert f"- {failed.error}" in fake_openai.requests[1].messages[1]["content"]
    assert retried.ok and len(records) == 2


@pytest.mark.parametrize("operator", [FirstKernel, Rewrite])
def test_a_malformed_reply_is_a_failed_mutation_with_the_reason(fake_openai, operator):
    fake_openai.reply("```python\nclass ModelNew(nn.Module):\n    def forward(self, x)\n        return x\n```")
    parent = ProgramView(KERNEL, result=_ok(1.0))

    mutation = _mutate(operator(_llm(fake_openai)), _context(parent if operator is Rewrite else None))

    assert mutation.error == ("unusable reply from coder: the code block does not parse: line 2: "
                              "expected ':': `def forward(self, x)`")


def test_fix_shows_the_failed_parent_with_its_trimmed_error(fake_openai):
    log = "\n".join(f"  frame {i}" for i in range(400)) + "\nCompilationError: arange's range must be a power of 2"
    fake_openai.reply(f"The range was not a power of two.\n```python\n{KERNEL}```")
    parent = ProgramView(KERNEL.replace("BLOCK=1024", "BLOCK=1000"), result=_failed(log))
    context = _context(parent, max_error_chars=500)
    mix = OperatorMix.build(_llm(fake_openai), {"params": 0})

    async def go():
        chosen = mix.choose(context, random.Random(0))
        mutation = await chosen.mutate(context, random.Random(0))
        await chosen.llm.aclose()
        return chosen, mutation

    chosen, mutation = asyncio.run(go())

    assert isinstance(chosen, Fix) and mutation.ok and mutation.child_source == KERNEL
    prompt = fake_openai.requests[0].messages[1]["content"]
    assert "- Status: compile_error (stage reached: load)" in prompt
    assert "CompilationError: arange's range must be a power of 2\n```" in prompt
    assert "earlier lines cut ...]" in prompt and "frame 10\n" not in prompt
    assert "- Finding [warning] no_triton_launch: no kernel ran" in prompt


def test_an_llm_failure_is_a_failed_mutation_that_keeps_the_call_record(fake_openai):
    fake_openai.error(401, message="invalid api key")

    mutation = _mutate(Rewrite(_llm(fake_openai)), _context(ProgramView(KERNEL, result=_ok(1.0))))

    assert mutation.error == "LLM call to coder failed: HTTP 401: invalid api key"
    assert len(mutation.llm_calls) == 1 and mutation.llm_calls[0].attempts == 1


def test_a_429_then_a_reply_and_a_timeout_are_accounted_for(fake_openai):
    fake_openai.error(429, retry_after=0.1).reply(f"```python\n{KERNEL}```", 1000, 250)
    fake_openai.stall(2).stall(2)
    records: list[LLMCall] = []
    llm = _llm(fake_openai, records)

    async def go():
        first = await FirstKernel(llm).mutate(_context(), random.Random(0))
        second = await FirstKernel(llm).mutate(_context(), random.Random(0))
        await llm.aclose()
        return first, second

    first, second = asyncio.run(go())

    assert first.ok and first.llm_calls[0].attempts == 2
    assert second.error == "LLM call to coder failed: gave up after 2 attempts: timed out; timed out"
    assert llm.usage.calls == 2 and llm.usage.failed_calls == 1
    assert llm.usage.prompt_tokens == 1000 and llm.usage.completion_tokens == 250
    assert llm.usage.cost == pytest.approx(sum(r.cost for r in records)) == pytest.approx((1000 + 250 * 4) / 1e6)


def test_parameter_tuning_needs_no_llm_and_describes_its_change():
    mutation = _mutate(ParamTune(), _context(ProgramView(KERNEL, result=_ok(1.0))))
    assert mutation.ok and mutation.llm_calls == [] and mutation.description.startswith("BLOCK 1024->")

    plain = _mutate(ParamTune(), _context(ProgramView(KERNEL.replace("BLOCK=1024", "BLOCK=triton.next_power_of_2(n)"))))
    assert plain.error.startswith("parameter tuning: no tunable parameter found")


def test_without_an_llm_the_mix_tunes_parameters_only():
    mix = OperatorMix.build(None)
    assert not mix.uses_llm and mix.enabled == ["params"]
    for parent in (ProgramView(KERNEL, result=_ok(1.0)), ProgramView(KERNEL, result=_failed("boom"))):
        assert isinstance(mix.choose(_context(parent), random.Random(0)), ParamTune)
    with pytest.raises(NoOperator, match="no parent program and no LLM configured"):
        mix.choose(_context(), random.Random(0))


def test_with_an_llm_operators_are_drawn_by_weight_among_those_that_apply():
    llm = LLMClient([ModelSpec("coder", base_url="http://127.0.0.1:9/v1", api_key="k")])
    mix = OperatorMix.build(llm, {"rewrite": 1, "diff": 2, "params": 1, "fix": 3})
    rng = random.Random(5)
    working = _context(ProgramView(KERNEL, result=_ok(1.0)))
    counts = Counter(mix.choose(working, rng).name for _ in range(4000))
    assert set(counts) == {"rewrite", "diff", "params"}
    assert counts["diff"] / 4000 == pytest.approx(0.5, abs=0.03)
    assert counts["rewrite"] / 4000 == pytest.approx(0.25, abs=0.03)
    failing = _context(ProgramView(KERNEL, result=_failed("boom")))
    assert Counter(mix.choose(failing, rng).name for _ in range(400)).keys() == {"fix", "params"}
    assert mix.choose(_context(), rng).name == "first_kernel"
    with pytest.raises(ValueError, match="unknown operator"):
        OperatorMix.build(llm, {"crossover": 1})


def test_prompts_tell_each_backends_constraints():
    interpret = MutationContext("relu", REFERENCE, BackendLimits.for_backend(Backend.triton_interpret),
                                parent=ProgramView(KERNEL, result=EvalResult(task_name="relu", status=Status.ok,
                                                                             stage=Stage.done)))
    text = messages("improve", interpret)[1]["content"]
    assert "CPU interpreter (TRITON_INTERPRET=1): correctness only" in text
    assert "- Speed: not measured (CPU interpreter: correctness only)" in text and "num_warps" not in text
    metax = messages("first_kernel", MutationContext("relu", REFERENCE, BackendLimits.for_backend(Backend.maca_metax)))
    assert "- Warp size: 64 threads." in metax[1]["content"] and "Triton 3.0" in metax[1]["content"]
    assert "$" not in "".join(m["content"] for m in metax)  # every placeholder was filled


def test_trim_keeps_the_end_on_whole_lines():
    text = "\n".join(f"line {i}" for i in range(100))
    trimmed = trim(text, 60)
    assert trimmed.endswith("line 99") and trimmed.startswith("[... ") and len(trimmed.split("\n", 1)[1]) <= 60
