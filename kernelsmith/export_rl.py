"""RL records: one prompt per distinct parent, with what an execution-based reward needs, and the reward.

A record carries the reference (the ground truth), the parent, the entry point and the evaluation
settings of its run; `score` turns a model's reply into a candidate, evaluates it and rewards it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest, EvalResult, Status, TimingSettings
from kernelsmith.export import Step
from kernelsmith.export_prompts import Prompt, step_prompt
from kernelsmith.replies import ReplyError, extract_program, parse_diff_reply

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from evaluators.client import Evaluator

ENTRY_POINT = "ModelNew"
# rewards: a caught reward hack is worse than a plain failure; a correct kernel earns 1 at its parent's
# speed, one more per doubling of speed, within [MIN_CORRECT, MAX_CORRECT] so that a slow but correct
# kernel still beats any failure
REJECTED, FAILED, MIN_CORRECT, CORRECT, MAX_CORRECT = -1.0, 0.0, 0.1, 1.0, 4.0


def rl_records(steps: Iterable[Step]) -> list[dict[str, Any]]:
    """One record per distinct prompt state: steps from the same parent code (same task and template)
    give one prompt, the first of them (in archive order) kept."""
    records, seen = [], set()
    for step in steps:
        prompt = step_prompt(step)
        key = (step.task, step.parent.program.normalized_hash, prompt.template)
        if key in seen:
            continue
        seen.add(key)
        records.append(rl_record(step, prompt))
    return records


def rl_record(step: Step, prompt: Prompt | None = None) -> dict[str, Any]:
    prompt = prompt or step_prompt(step)
    parent = step.parent_evaluation
    evaluation = _evaluation_settings(step)
    return {
        "prompt": prompt.messages,
        "task": step.task,
        "reference_source": step.run.reference_source,
        "parent_source": step.parent.program.source,
        "entry_point": ENTRY_POINT,
        "reply_format": prompt.reply_format,
        "backend": step.child_evaluation.backend,
        "device": step.child_evaluation.device,
        "parent_status": parent.status.value,
        "parent_speedup": parent.speedup,
        "trials": evaluation["trials"],
        "repetitions": evaluation["repetitions"],
        "compile_baseline": evaluation["compile_baseline"],
        "time_limit_s": evaluation["time_limit_s"],
        "metadata": {**step.metadata(), "prompt_source": prompt.source, "template": prompt.template},
    }


def candidate_source(record: Mapping[str, Any], reply: str) -> str:
    """The program a reply stands for, parsed as the loop parses it. Raises ReplyError."""
    if record["reply_format"] == "diff":
        return parse_diff_reply(record["parent_source"], reply)[0]
    return extract_program(reply)


def eval_request(record: Mapping[str, Any], candidate: str, backend: Backend | str | None = None) -> EvalRequest:
    """The request that evaluates `candidate` as the record's run evaluated its programs (on `backend`
    instead of the record's, when given: triton-interpret checks correctness on a CPU)."""
    return EvalRequest(
        task_name=record["task"],
        reference_source=record["reference_source"],
        candidate_source=candidate,
        backend=Backend(backend or record["backend"]),
        correctness=CorrectnessSettings(trials=record["trials"]),
        timing=TimingSettings(repetitions=record["repetitions"],
                              baselines=["eager", "compile"] if record["compile_baseline"] else ["eager"]),
        time_limit_s=record["time_limit_s"],
    )


def reward(result: EvalResult, parent_speedup: float | None) -> float | None:
    """REJECTED for a caught reward hack, FAILED for any other failure, None for an infra_error (the
    evaluator's fault: evaluate again); a correct kernel gets CORRECT + log2(its speedup / the parent's),
    clipped to [MIN_CORRECT, MAX_CORRECT], or CORRECT when either speed is unmeasured."""
    if result.status == Status.infra_error:
        return None
    if result.status == Status.rejected:
        return REJECTED
    if result.status != Status.ok:
        return FAILED
    if result.speedup is None or not parent_speedup or not math.isfinite(result.speedup):
        return CORRECT
    return min(MAX_CORRECT, max(MIN_CORRECT, CORRECT + math.log2(result.speedup / parent_speedup)))


@dataclass(frozen=True)
class Score:
    reward: float | None
    result: EvalResult | None  # None when the reply held no usable program
    error: str | None = None  # why the reply could not be used


async def score(record: Mapping[str, Any], reply: str, evaluator: Evaluator,
                backend: Backend | str | None = None) -> Score:
    """Evaluate a model's reply to `record`'s prompt and reward it; an unusable reply scores FAILED."""
    try:
        candidate = candidate_source(record, reply)
    except ReplyError as error:
        return Score(FAILED, None, str(error))
    result = await evaluator.evaluate(eval_request(record, candidate, backend))
    parent_speedup = record["parent_speedup"] if backend is None or Backend(backend).value == record["backend"] else None
    return Score(reward(result, parent_speedup), result)


def _evaluation_settings(step: Step) -> dict[str, Any]:
    """The run's evaluation settings (the loop stores them in the run's config), else the protocol's defaults."""
    settings = step.run.config.get("settings") if isinstance(step.run.config, dict) else None
    stored = settings.get("evaluation") if isinstance(settings, dict) else None
    stored = stored if isinstance(stored, dict) else {}
    defaults = EvalRequest.model_fields
    return {
        "trials": int(stored.get("trials", CorrectnessSettings().trials)),
        "repetitions": int(stored.get("repetitions", TimingSettings().repetitions)),
        "compile_baseline": bool(stored.get("compile_baseline", False)),
        "time_limit_s": float(stored.get("time_limit_s", defaults["time_limit_s"].default)),
    }
