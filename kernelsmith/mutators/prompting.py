"""Prompt construction: a MutationContext rendered into the templates under prompts/.

The wording lives in the templates; this module only turns results, inspirations and limits
into the text that fills their placeholders.
"""

from __future__ import annotations

from evaluators.protocol import EvalResult, Status
from kernelsmith.mutators.base import MutationContext, ProgramView
from prompts import template

Messages = list[dict[str, str]]


def messages(kind: str, context: MutationContext) -> Messages:
    """System and user messages for an operator's template: first_kernel, improve, improve_diff or fix."""
    values = {
        "task_name": context.task_name,
        "reference": context.reference_source.strip(),
        "constraints": "\n".join(f"- {line}" for line in context.limits.describe()),
    }
    if kind != "first_kernel":
        if context.parent is None:
            raise ValueError(f"the {kind} prompt needs a parent program")
        values["parent"] = context.parent.source.strip()
        values["feedback"] = feedback(context.parent.result, context.max_error_chars)
        values["notes"] = notes(context.notes)
    if kind in ("improve", "improve_diff"):
        values["inspirations"] = inspirations(context.inspirations)
    if kind == "improve_diff":
        values["diff_format"] = template("diff_format").substitute().strip()
    user = template(kind).substitute(values)
    return [
        {"role": "system", "content": template("system").substitute().strip()},
        {"role": "user", "content": user.strip() + "\n"},
    ]


def feedback(result: EvalResult | None, max_error_chars: int = 2000) -> str:
    """The structured evaluation of a program, as bullet lines plus an error excerpt."""
    if result is None:
        return "Not evaluated yet."
    lines = [f"- Status: {result.status.value} (stage reached: {result.stage.value})"]
    if result.message:
        lines.append(f"- Message: {result.message.strip().splitlines()[0][:300]}")
    failed_trials = [trial for trial in result.trials if not trial.passed]
    worst = max(result.trials, key=lambda t: t.max_abs_error or 0.0, default=None)
    if worst is not None and worst.max_abs_error is not None:
        rel = f", max relative error {worst.max_rel_error:.3g}" if worst.max_rel_error is not None else ""
        lines.append(
            f"- Correctness: {len(result.trials) - len(failed_trials)} of {len(result.trials)} trials passed; "
            f"worst max absolute error {worst.max_abs_error:.3g}{rel}"
        )
    lines.extend(_speed(result))
    for finding in result.findings:
        where = f" (line {finding.line})" if finding.line else ""
        lines.append(f"- Finding [{finding.severity}] {finding.rule}: {finding.message}{where}")
    excerpt = error_excerpt(result, max_error_chars)
    if excerpt:
        lines += ["", "Error excerpt:", "```text", excerpt, "```"]
    return "\n".join(lines)


def _speed(result: EvalResult) -> list[str]:
    if result.timing is None:
        if result.status == Status.ok:
            return ["- Speed: not measured (CPU interpreter: correctness only)"]
        return []
    speedups = []
    if result.speedup is not None:
        speedups.append(f"{result.speedup:.2f}x over eager PyTorch")
    if result.speedup_compile is not None:
        speedups.append(f"{result.speedup_compile:.2f}x over torch.compile")
    lines = [f"- Speedup: {', '.join(speedups)}"] if speedups else []
    t = result.timing
    timing = f"- Timing: {t.median_ms:.4g} ms median (p10 {t.p10_ms:.4g}, p90 {t.p90_ms:.4g}, {t.samples} samples)"
    names = {"eager": "eager PyTorch", "compile": "torch.compile"}
    for name, baseline in result.baselines.items():
        timing += f"; {names.get(name, name)} {baseline.median_ms:.4g} ms"
    return lines + [timing]


def error_excerpt(result: EvalResult, max_chars: int) -> str:
    """The end of the failure's message and log (where tracebacks put the cause), trimmed."""
    if result.status == Status.ok:
        return ""
    message = result.message.strip()
    log = result.log.strip()
    text = log if message and message in log else "\n".join(part for part in (message, log) if part)
    return trim(text, max_chars)


def trim(text: str, max_chars: int) -> str:
    """Keep the last `max_chars` characters on whole lines, saying how many lines were cut."""
    if len(text) <= max_chars:
        return text
    lines = text.splitlines()
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if size + len(line) + 1 > max_chars and kept:
            break
        kept.append(line[-max_chars:])
        size += len(line) + 1
    cut = len(lines) - len(kept)
    return f"[... {cut} earlier line{'s' if cut != 1 else ''} cut ...]\n" + "\n".join(reversed(kept))


def inspirations(programs: list[ProgramView]) -> str:
    if not programs:
        return "None yet."
    parts = []
    for number, program in enumerate(programs, 1):
        parts.append(f"### Program {number}: {_score(program)}\n\n```python\n{program.source.strip()}\n```")
    return "\n\n".join(parts)


def _score(program: ProgramView) -> str:
    result = program.result
    facts = []
    if result is not None:
        facts.append(result.status.value)
        if result.speedup is not None:
            facts.append(f"{result.speedup:.2f}x over eager")
        if result.speedup_compile is not None:
            facts.append(f"{result.speedup_compile:.2f}x over torch.compile")
    if program.score is not None:
        facts.append(f"score {program.score:.3g}")
    if program.description:
        facts.append(f"made by: {program.description}")
    return ", ".join(facts) or "not evaluated"


def notes(items: list[str]) -> str:
    if not items:
        return ""
    return "## Earlier attempts from this program that failed\n\n" + "\n".join(f"- {item}" for item in items) + "\n\n"
