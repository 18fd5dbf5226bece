"""Training-data export from an archive with a known lineage, built through the archive's API with real
results of the CPU evaluator (GPU timings written onto copies of them): which steps are kept, what each
SFT and RL record holds, the filters, the split, the command, and loading the files with `datasets`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import archive
from evaluators.protocol import Backend, EvalRequest, EvalResult, Status, TimingStats
from kernelsmith.export import Category, ExportError, StepFilter, find_steps, validation_tasks
from kernelsmith.export_prompts import UnwritableReply, diff_blocks, render, step_prompt, step_reply
from kernelsmith.export_rl import FAILED, REJECTED, candidate_source, reward, rl_records, score
from kernelsmith.export_sft import sft_record
from kernelsmith.mutators import MutationContext, ProgramView, prompting
from kernelsmith.params import BackendLimits
from kernelsmith.replies import extract_program, parse_diff_reply

CANDIDATES = Path(__file__).parents[1] / "evaluators" / "candidates"
REFERENCE = (CANDIDATES / "relu_reference.py").read_text()
SEED = (CANDIDATES / "relu_ok.py").read_text()
FAST = SEED.replace("triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)", "triton.cdiv(n, 4096),)](x, out, n, BLOCK=4096)")
FAST_COMMENTED = FAST.replace("        x = x.contiguous()", "        # one pass over the input\n        x = x.contiguous()")
SLIGHTLY = SEED.replace("BLOCK=1024)", "BLOCK=1024, num_warps=2)")
BROKEN = FAST.replace("mask = offs < n\n", "mask = offs < n - 1\n")
FIXED = FAST.replace("x = tl.load(x_ptr + offs, mask=mask)", "x = tl.load(x_ptr + offs, mask=mask, other=0.0)")
TUNED = FAST.replace("BLOCK=4096)", "BLOCK=4096, num_warps=8)")
SEED_COMMENTED = SEED.replace("        n = x.numel()", "        n = x.numel()  # elements")
GPU = "NVIDIA H100 80GB HBM3"
SETTINGS = {"settings": {"evaluation": {"trials": 3, "repetitions": 50, "compile_baseline": False,
                                        "time_limit_s": 120.0}, "prompts": {"max_error_chars": 1500}},
            "backend": "triton-nvidia"}
DIFF_REPLY = """Use a block of 4096 so that each program handles four times the elements.

<<<<<<< SEARCH
        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)
=======
        relu_kernel[(triton.cdiv(n, 4096),)](x, out, n, BLOCK=4096)
>>>>>>> REPLACE
"""
FIX_REPLY = f"The mask dropped the last element; masked lanes now load zeros.\n\n```python\n{FIXED}```\n"


@pytest.fixture(scope="module")
def cpu_results() -> dict[str, EvalResult]:
    """Real verdicts of the Triton interpreter: a correct ReLU and one that drops the last element."""
    from evaluators.local import LocalEvaluator

    async def evaluate() -> list[EvalResult]:
        async with LocalEvaluator(devices=[], cpu_workers=2) as evaluator:
            return await asyncio.gather(*(
                evaluator.evaluate(EvalRequest(task_name="relu", reference_source=REFERENCE, candidate_source=source,
                                               backend=Backend.triton_interpret, correctness={"trials": 2}))
                for source in (SEED, BROKEN)))

    ok, incorrect = asyncio.run(evaluate())
    assert ok.status == Status.ok and incorrect.status == Status.incorrect
    return {"ok": ok, "incorrect": incorrect}


def timed(result: EvalResult, speedup: float) -> EvalResult:
    """The verdict as a GPU evaluator returns it: eager baseline 1 ms, the candidate 1/speedup ms."""
    def stats(ms: float) -> TimingStats:
        return TimingStats.from_samples([ms * 0.99, ms, ms * 1.01])
    return result.model_copy(update={
        "speedup": speedup, "timing": stats(1.0 / speedup), "baselines": {"eager": stats(1.0)},
        "environment": result.environment.model_copy(update={"backend": "triton-nvidia", "device": GPU}),
    })


def for_task(result: EvalResult, task: str) -> EvalResult:
    return result.model_copy(update={"task_name": task})


def loop_messages(kind: str, parent: str, result: EvalResult | None, inspirations=(), backend="triton-nvidia"):
    context = MutationContext("relu", REFERENCE, BackendLimits.for_backend(backend),
                              parent=ProgramView(parent, result=result), inspirations=list(inspirations),
                              max_error_chars=1500)
    return prompting.messages(kind, context)


@pytest.fixture(scope="module")
def lineage(tmp_path_factory, cpu_results):
    """Three runs whose steps are known (p: run 1, q: run 2, r: run 3):

    run 1, relu, GPU:  p1 seed 1.0x ─ diff → p2 1.5x (improvement, stored prompt; an infra_error after it)
                                   ─ rewrite → p3 1.02x (below the minimum gain)
                                   ─ diff → p7 (mutation made no program)
                                   ─ rewrite → p8 = p2 but for a comment (repeat of p1 → p2)
                                   ─ rewrite → p9 = p1 but for a comment (child repeats its parent)
                       p2 ─ rewrite → p4 incorrect (child not correct) ─ fix → p5 1.2x (repair, stored)
                          ─ params → p6 2.25x (improvement 1.5, rendered: no LLM call), inspirations [p1]
                          ─ rewrite → p10 (not evaluated)
    run 2, level1/19_ReLU, CPU: q1 seed ─ rewrite → q2 (untimed) ─ rewrite → q3 incorrect ─ fix → q4
                       (repair; its prompt stored as plain text)
    run 3, relu, GPU:  r1 seed 1.0x ─ diff → r2 = p2 1.5x (repeat of p1 → p2 from another run)
    """
    ok, incorrect = cpu_results["ok"], cpu_results["incorrect"]
    path = tmp_path_factory.mktemp("lineage") / "archive.db"
    p: dict[int, archive.Program] = {}
    with archive.open(path) as db:
        run1 = db.create_run("relu", REFERENCE, config={**SETTINGS, "task": {"name": "relu"}}, seed=1)
        p[1] = db.add_program(run1, SEED, operator="seed", metadata={"description": "the task's seed kernel"})
        db.add_evaluation(p[1], timed(ok, 1.0))
        p[2] = db.add_program(run1, FAST, parent_id=p[1].id, operator="diff", model="m-large", generation=1,
                              metadata={"description": "1 SEARCH/REPLACE block applied: Use a block of 4096"})
        db.add_llm_call(run1, "m-large", "[]", "", program=p[2], error="429 rate limited")
        p2_prompt = loop_messages("improve_diff", SEED, timed(ok, 1.0))
        db.add_llm_call(run1, "m-large", json.dumps(p2_prompt), DIFF_REPLY, program=p[2], prompt_tokens=900)
        db.add_evaluation(p[2], timed(ok, 1.5))
        db.add_evaluation(p[2], ok.model_copy(update={"status": Status.infra_error}))
        p[3] = db.add_program(run1, SLIGHTLY, parent_id=p[1].id, operator="rewrite", generation=1)
        db.add_evaluation(p[3], timed(ok, 1.02))
        p[4] = db.add_program(run1, BROKEN, parent_id=p[2].id, operator="rewrite", generation=2)
        db.add_evaluation(p[4], incorrect)
        p[5] = db.add_program(run1, FIXED, parent_id=p[4].id, operator="fix", model="m-small", generation=3)
        p5_prompt = loop_messages("fix", BROKEN, incorrect)
        db.add_llm_call(run1, "m-small", json.dumps(p5_prompt), FIX_REPLY, program=p[5])
        db.add_evaluation(p[5], timed(ok, 1.2))
        p[6] = db.add_program(run1, TUNED, parent_id=p[2].id, inspiration_ids=[p[1].id], operator="params",
                              generation=2, metadata={"description": "num_warps 4 -> 8"})
        db.add_evaluation(p[6], timed(ok, 2.25))
        p[7] = db.add_program(run1, SEED, parent_id=p[1].id, operator="diff", generation=1,
                              metadata={"attempt_error": "diff block 1 of 1 does not apply"})
        p[8] = db.add_program(run1, FAST_COMMENTED, parent_id=p[1].id, operator="rewrite", generation=1)
        db.add_evaluation(p[8], timed(ok, 1.5))
        p[9] = db.add_program(run1, SEED_COMMENTED, parent_id=p[1].id, operator="rewrite", generation=1)
        db.add_evaluation(p[9], timed(ok, 1.1))
        p[10] = db.add_program(run1, TUNED.replace("num_warps=8", "num_warps=2"), parent_id=p[2].id,
                               operator="rewrite", generation=2)

        task2 = "level1/19_ReLU"
        run2 = db.create_run(task2, REFERENCE, config={"task": {"name": "19_ReLU"}, "backend": "triton-interpret"})
        q1 = db.add_program(run2, SEED, operator="seed")
        db.add_evaluation(q1, for_task(ok, task2))
        q2 = db.add_program(run2, FAST, parent_id=q1.id, operator="rewrite", generation=1)
        db.add_evaluation(q2, for_task(ok, task2))
        q3 = db.add_program(run2, BROKEN, parent_id=q2.id, operator="rewrite", generation=2)
        db.add_evaluation(q3, for_task(incorrect, task2))
        q4 = db.add_program(run2, FIXED, parent_id=q3.id, operator="fix", generation=3)
        db.add_llm_call(run2, "m-small", "Fix this ReLU kernel, please.", FIX_REPLY, program=q4)
        db.add_evaluation(q4, for_task(ok, task2))

        run3 = db.create_run("relu", REFERENCE, config=SETTINGS)
        r1 = db.add_program(run3, SEED, operator="seed")
        db.add_evaluation(r1, timed(ok, 1.0))
        r2 = db.add_program(run3, FAST, parent_id=r1.id, operator="diff", generation=1)
        db.add_evaluation(r2, timed(ok, 1.5))
    return {"path": path, "p": p, "q": [q1, q2, q3, q4], "r": [r1, r2], "runs": [run1, run2, run3],
            "prompts": {"p2": p2_prompt, "p5": p5_prompt}}


def steps_of(lineage, filters=None, **kwargs):
    with archive.open(lineage["path"]) as db:
        return find_steps(db, filters, **kwargs)


def test_exactly_the_improvements_and_repairs_are_kept_and_the_rest_is_accounted_for(lineage):
    p, q = lineage["p"], lineage["q"]
    selection = steps_of(lineage)
    kept = [(s.parent.program.id, s.child.program.id, s.category, s.gain) for s in selection.steps]
    assert kept == [
        (p[1].id, p[2].id, Category.improvement, pytest.approx(1.5)),
        (p[4].id, p[5].id, Category.repair, None),
        (p[2].id, p[6].id, Category.improvement, pytest.approx(1.5)),
        (q[2].id, q[3].id, Category.repair, None),
    ]
    assert selection.skipped == {
        "gain below the minimum": 1, "child not correct": 2, "mutation made no program": 1,
        "repeat of an earlier step": 2, "child repeats its parent": 1, "not evaluated": 1,
        "untimed (category not asked for)": 1,
    }
    # p2's latest evaluation is an infra_error: the ok one before it is what counts
    assert selection.steps[0].child_evaluation.status == Status.ok
    assert selection.steps[0].llm_call.response == DIFF_REPLY  # the good call, not the one that failed


def test_filters_choose_steps_by_gain_category_backend_task_run_and_operator(lineage):
    p, q = lineage["p"], lineage["q"]
    run1, run2, _ = lineage["runs"]

    def children(**filters):
        return [s.child.program.id for s in steps_of(lineage, StepFilter(**filters)).steps]

    assert children(min_gain=1.01) == [p[2].id, p[3].id, p[5].id, p[6].id, q[3].id]
    assert children(min_gain=1.6) == [p[5].id, q[3].id]
    assert children(categories=frozenset({Category.untimed})) == [q[1].id]
    assert children(categories=frozenset({Category.improvement})) == [p[2].id, p[6].id]
    every = set(children(categories=frozenset(Category)))  # an empty set restricts nothing, as documented
    assert set(children(categories=frozenset())) == every and set(children(categories=frozenset({Category.untimed}))) <= every
    assert children(backends=frozenset({"triton-interpret"})) == [q[3].id]
    assert children(tasks=frozenset({"19_ReLU"})) == children(runs=frozenset({run2.id})) == [q[3].id]
    assert children(operators=frozenset({"params", "fix"})) == [p[5].id, p[6].id, q[3].id]
    # without run 1, run 3's p1 -> p2 twin is no longer a repeat
    assert children(runs=frozenset({3})) == [lineage["r"][1].id]
    with pytest.raises(ExportError, match=r"no run 99 .*its runs: 1, 2, 3"):
        steps_of(lineage, StepFilter(runs=frozenset({99})))
    with pytest.raises(ExportError, match=r"no run of task softmax .*its tasks: level1/19_ReLU, relu"):
        steps_of(lineage, StepFilter(tasks=frozenset({"softmax"})))
    with pytest.raises(ExportError, match="minimum gain must be above 1"):
        StepFilter(min_gain=0.9)


def test_the_split_holds_out_whole_tasks_and_the_same_seed_gives_the_same_split(lineage):
    tasks = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    held = validation_tasks(tasks, 0.2, seed=3)
    assert len(held) == 2 and held == validation_tasks(list(reversed(tasks)), 0.2, seed=3)
    assert {frozenset(validation_tasks(tasks, 0.2, seed)) for seed in range(20)} != {held}
    assert validation_tasks(["only"], 0.5, 0) == frozenset() and validation_tasks(tasks, 0.01, 0) != frozenset()
    with pytest.raises(ExportError, match=r"validation share must be in \[0, 1\)"):
        validation_tasks(tasks, 1.0, 0)

    selection = steps_of(lineage, validation=0.5, seed=0)
    train, validation = selection.split("train"), selection.split("validation")
    assert train and validation and len(train) + len(validation) == len(selection.steps)
    assert not {s.task for s in train} & {s.task for s in validation}
    assert {s.task for s in validation} == selection.validation_tasks


def test_sft_records_hold_the_stored_prompt_and_the_child_as_the_reply_the_loop_parses(lineage):
    p = lineage["p"]
    improvement, repair, tuned, cpu_repair = (sft_record(step) for step in steps_of(lineage).steps)

    system, user, assistant = improvement["messages"]
    assert [system, user] == lineage["prompts"]["p2"]  # exactly what the model was sent
    assert assistant["role"] == "assistant"
    assert assistant["content"].startswith("Use a block of 4096 so that each program")
    assert parse_diff_reply(SEED, assistant["content"])[0] == FAST  # SEARCH/REPLACE blocks, as asked for
    assert improvement["metadata"] == {
        "task": "relu", "run_id": 1, "parent_id": p[1].id, "child_id": p[2].id, "category": "improvement",
        "gain": pytest.approx(1.5), "parent_status": "ok", "parent_speedup": 1.0, "child_speedup": 1.5,
        "operator": "diff", "model": "m-large", "generation": 1, "backend": "triton-nvidia", "device": GPU,
        "llm_call_id": 2, "split": "train", "prompt_source": "stored", "template": "improve_diff",
        "reply_format": "diff",
    }

    assert repair["messages"][:2] == lineage["prompts"]["p5"]
    assert repair["messages"][2]["content"] == FIX_REPLY
    assert extract_program(repair["messages"][2]["content"]) == FIXED
    assert repair["metadata"]["category"] == "repair" and repair["metadata"]["gain"] is None
    assert repair["metadata"]["parent_status"] == "incorrect" and repair["metadata"]["template"] == "fix"

    # no LLM call made p6: the prompt is the improve template rendered as the loop renders it
    assert tuned["metadata"]["prompt_source"] == "rendered" and tuned["metadata"]["template"] == "improve"
    user = tuned["messages"][1]["content"]
    assert "```python\n" + FAST.strip() + "\n```" in user and "- Speedup: 1.50x over eager PyTorch" in user
    assert "### Program 1: ok, 1.00x over eager, score 1, made by: the task's seed kernel" in user
    assert "Backend: triton-nvidia." in user and "num_warps: one of 1, 2, 4, 8, 16" in user
    assert tuned["messages"][2]["content"] == f"num_warps 4 -> 8\n\n```python\n{TUNED}```\n"

    # a prompt stored as plain text is the user turn; the system turn comes from the templates
    assert cpu_repair["messages"][0] == improvement["messages"][0]
    assert cpu_repair["messages"][1] == {"role": "user", "content": "Fix this ReLU kernel, please."}
    assert cpu_repair["metadata"]["device"].startswith("cpu") and cpu_repair["metadata"]["child_speedup"] is None


def test_a_rendered_prompt_is_the_loops_prompt_for_the_same_parent(lineage):
    improvement = steps_of(lineage).steps[0]
    # the stored prompt of p2 was made by the loop's prompting from p1 and its result: rendering agrees
    assert render(improvement, "improve_diff") == lineage["prompts"]["p2"]
    assert step_prompt(improvement).source == "stored"


def test_diff_replies_apply_back_to_the_child_whatever_the_edit(lineage):
    lines = FAST.splitlines()
    edits = [
        FAST.replace("import torch\n", "import math\nimport torch\n", 1),  # an insertion at the top
        FAST + "\n\nBLOCK_DEFAULT = 4096\n",  # lines added at the end, after blank ones
        "\n".join(line for line in lines if "contiguous" not in line) + "\n",  # a deletion
        FAST.replace("        return out", "        out = out\n        return out"),  # a line that repeats nearby
        FAST.replace("super().__init__()", "super().__init__()\n\n        self.block = 4096"),  # blank edges
    ]
    for child in edits:
        blocks = diff_blocks(FAST, child)
        assert blocks is not None
        assert parse_diff_reply(FAST, blocks)[0].rstrip() == child.rstrip()

    # the loop trims blank lines at the edges of SEARCH and REPLACE: a blank first line cannot be added
    # by a diff, so such a child is written whole, which the loop's diff parser accepts as well
    blank_top = "\n" + TUNED
    assert diff_blocks(FAST, blank_top) is None
    improvement = steps_of(lineage).steps[0]
    odd = replace(improvement, child=replace(improvement.child, program=replace(improvement.child.program,
                                                                                 source=blank_top)))
    reply = step_reply(odd, step_prompt(odd))
    assert reply.format == "code" and parse_diff_reply(FAST, reply.text)[0] == blank_top
    fenced = TUNED.replace("class ModelNew(nn.Module):\n",
                           'class ModelNew(nn.Module):\n    """Use:\n\n    ```\n    ModelNew()(x)\n    ```\n    """\n')
    tuned = steps_of(lineage).steps[2]  # a code reply: a fence inside the program would end its block
    fenced_step = replace(tuned, child=replace(tuned.child, program=replace(tuned.child.program, source=fenced)))
    assert parse_diff_reply(FAST, step_reply(replace(fenced_step, parent=improvement.child),
                                             step_prompt(odd)).text)[0] == fenced  # as a diff it is fine
    with pytest.raises(UnwritableReply, match="contains a fence"):
        step_reply(fenced_step, step_prompt(fenced_step))


def test_rl_records_carry_what_an_execution_reward_needs(lineage):
    records = rl_records(steps_of(lineage).steps)
    assert [(r["metadata"]["parent_id"], r["reply_format"]) for r in records] == [
        (lineage["p"][1].id, "diff"), (lineage["p"][4].id, "code"), (lineage["p"][2].id, "code"),
        (lineage["q"][2].id, "code"),
    ]
    first = records[0]
    assert first["prompt"] == lineage["prompts"]["p2"]
    assert first["reference_source"] == REFERENCE and first["parent_source"] == SEED
    assert first["entry_point"] == "ModelNew" and first["task"] == "relu"
    assert (first["backend"], first["device"], first["parent_status"], first["parent_speedup"]) == (
        "triton-nvidia", GPU, "ok", 1.0)
    assert (first["trials"], first["repetitions"], first["compile_baseline"], first["time_limit_s"]) == (
        3, 50, False, 120.0)
    assert candidate_source(first, DIFF_REPLY) == FAST  # a diff reply is applied to the parent
    # run 2 stored no evaluation settings: the protocol's defaults
    assert (records[3]["trials"], records[3]["time_limit_s"]) == (5, 300.0)


def test_a_reply_is_scored_by_the_evaluator_and_rewarded(lineage, cpu_results):
    from evaluators.local import LocalEvaluator

    cpu_record = rl_records(steps_of(lineage).steps)[3]
    assert cpu_record["backend"] == "triton-interpret"

    async def scores():
        async with LocalEvaluator(devices=[], cpu_workers=1) as evaluator:
            good = await score(cpu_record, FIX_REPLY, evaluator)
            unusable = await score(cpu_record, "I would rather not.", evaluator)
        return good, unusable

    good, unusable = asyncio.run(scores())
    assert good.result is not None and good.result.status == Status.ok and good.reward == 1.0
    assert unusable.result is None and unusable.reward == FAILED and "no ```python code block" in unusable.error

    ok = cpu_results["ok"]
    assert reward(timed(ok, 3.0), parent_speedup=1.5) == pytest.approx(2.0)  # twice the parent's speed
    assert reward(timed(ok, 0.1), parent_speedup=1.5) == pytest.approx(0.1)  # slow, but beats a failure
    assert reward(timed(ok, 1e6), parent_speedup=1.0) == 4.0
    assert reward(ok.model_copy(update={"status": Status.rejected}), 1.0) == REJECTED
    assert reward(cpu_results["incorrect"], 1.0) == FAILED
    assert reward(ok.model_copy(update={"status": Status.infra_error}), 1.0) is None


def kernelsmith(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "kernelsmith", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, "COLUMNS": "200"})


def export(*args: str):
    """The same command run in this process (a second of imports saved per call)."""
    from typer.testing import CliRunner

    from kernelsmith.cli import app

    return CliRunner().invoke(app, ["export", *args], env={"COLUMNS": "200"})


def test_the_command_writes_files_that_datasets_loads(lineage, tmp_path):
    import datasets

    out = tmp_path / "sft"
    done = kernelsmith("export", "sft", str(out), "--db", str(lineage["path"]), "--validation", "0.5",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "validation" in done.stdout and "2 child not correct" in done.stdout
    files = {"train": str(out / "train.jsonl"), "validation": str(out / "validation.jsonl")}
    sft = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "hf"))
    assert sft["train"].num_rows + sft["validation"].num_rows == 4
    row = sft["train"][0] if sft["train"][0]["metadata"]["task"] == "relu" else sft["validation"][0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["metadata"]["gain"] == pytest.approx(1.5)
    assert {r["metadata"]["task"] for r in sft["train"]}.isdisjoint({r["metadata"]["task"] for r in sft["validation"]})

    rl_out = tmp_path / "rl"
    done = export("rl", str(rl_out), "--db", str(lineage["path"]), "--category", "untimed", "--category", "repair")
    assert done.exit_code == 0, done.output
    assert not (rl_out / "validation.jsonl").exists()
    rl = datasets.load_dataset("json", data_files=str(rl_out / "train.jsonl"), cache_dir=str(tmp_path / "hf"))
    assert sorted(rl["train"]["parent_status"]) == ["incorrect", "incorrect", "ok"]
    assert set(rl["train"]["entry_point"]) == {"ModelNew"}

    bare = tmp_path / "bare"
    done = export("sft", str(bare), "--db", str(lineage["path"]), "--no-metadata")
    assert done.exit_code == 0, done.output
    assert all(set(json.loads(line)) == {"messages"} for line in (bare / "train.jsonl").read_text().splitlines())


def test_misuse_and_empty_exports_are_told_apart(lineage, tmp_path):
    db, out = str(lineage["path"]), str(tmp_path / "o")
    missing = export("sft", out, "--db", str(tmp_path / "none.db"))
    assert missing.exit_code == 2 and "no archive at" in missing.stderr and "Traceback" not in missing.output
    assert not (tmp_path / "none.db").exists()  # looking did not create one
    unknown = export("rl", out, "--db", db, "--run", "42")
    assert unknown.exit_code == 2 and "no run 42" in unknown.stderr
    gain = export("sft", out, "--db", db, "--min-gain", "1")
    assert gain.exit_code == 2 and "minimum gain must be above 1" in gain.stderr
    backend = export("sft", out, "--db", db, "--backend", "cuda")
    assert backend.exit_code == 2 and "unknown backend cuda" in backend.stderr
    nothing = export("sft", out, "--db", db, "--min-gain", "3", "--category", "improvement")
    assert nothing.exit_code == 1 and "no step passed the filters" in nothing.stderr
    assert "5 gain below the minimum" in nothing.stdout and not (tmp_path / "o").exists()
