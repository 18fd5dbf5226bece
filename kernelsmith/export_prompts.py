"""A step's prompt and reply as the loop saw them: the stored prompt, or the templates rendered again,
and the child written in the reply format the loop parses (a fenced program, or SEARCH/REPLACE blocks).

Every reply is checked by parsing it with kernelsmith.replies: it must give back the child.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

from archive import Run
from evaluators.protocol import Backend, Status
from kernelsmith.export import Scored, Step
from kernelsmith.mutators import MutationContext, ProgramView, prompting
from kernelsmith.params import BackendLimits
from kernelsmith.replies import SEARCH_MARK, ReplyError, extract_program, parse_diff_reply
from prompts import template

Messages = list[dict[str, str]]
MAX_PROSE_CHARS = 2000  # a reply's explanation longer than this is dropped, not cut mid-thought


@dataclass(frozen=True)
class Prompt:
    messages: Messages  # system and user, as sent (stored) or as the templates give them (rendered)
    source: str  # "stored" or "rendered"
    template: str  # improve, improve_diff or fix
    reply_format: str  # "code" (a fenced program) or "diff" (SEARCH/REPLACE blocks)


class UnwritableReply(ValueError):
    """The child cannot be written as a reply the loop would parse back to it."""


def template_of(step: Step) -> str:
    """The template the loop uses for this kind of step: a failed parent is fixed, a diff is edits."""
    if step.parent_evaluation.status != Status.ok:
        return "fix"
    return "improve_diff" if step.child.program.operator == "diff" else "improve"


def step_prompt(step: Step) -> Prompt:
    """The exact prompt stored with the LLM call that made the child, else the templates rendered from
    what the archive holds (parameter tuning asks no model, so its steps are always rendered)."""
    kind = template_of(step)
    reply_format = "diff" if kind == "improve_diff" else "code"
    stored = _stored_messages(step.llm_call.prompt) if step.llm_call is not None else None
    if stored is not None:
        return Prompt(stored, "stored", kind, reply_format)
    return Prompt(render(step, kind), "rendered", kind, reply_format)


def render(step: Step, kind: str) -> Messages:
    """System and user messages from the templates, filled as the loop fills them for this parent.

    Notes about earlier failed attempts from the parent are left out: a rendered prompt stands in where
    no model was asked (parameter tuning), so no attempt ever preceded it in a prompt.
    """
    evaluation = step.child_evaluation
    context = MutationContext(
        task_name=step.task,
        reference_source=step.run.reference_source,
        limits=_limits(evaluation.backend),
        parent=_view(step.parent),
        inspirations=[_view(scored) for scored in step.inspirations],
        max_error_chars=_max_error_chars(step.run),
    )
    return prompting.messages(kind, context)


@dataclass(frozen=True)
class Reply:
    text: str
    format: str  # "code" or "diff": a diff that would not apply back to the child is written as code


def step_reply(step: Step, prompt: Prompt) -> Reply:
    """The assistant turn: the model's own explanation when there was one, then the child as a fenced
    program or as SEARCH/REPLACE blocks against the parent. Raises UnwritableReply."""
    parent, child = step.parent.program.source, step.child.program.source
    prose = _prose(step)
    if prompt.reply_format == "diff":
        blocks = diff_blocks(parent, child)
        if blocks is not None:
            text = f"{prose}\n\n{blocks}\n" if prose else f"{blocks}\n"
            try:
                if _same_text(parse_diff_reply(parent, text)[0], child):
                    return Reply(text, "diff")
            except ReplyError:
                pass
        # edits that would not apply back to the child: a whole program is a reply the diff parser takes too
    text = f"```python\n{child.rstrip()}\n```\n"
    if prose:
        text = f"{prose}\n\n{text}"
    try:
        if _same_text(extract_program(text), child):
            return Reply(text, "code")
    except ReplyError:
        pass
    raise UnwritableReply(f"program {step.child.program.id} cannot be written as a fenced code block "
                          "(it contains a fence itself)")


def diff_blocks(parent: str, child: str) -> str | None:
    """SEARCH/REPLACE blocks that turn `parent` into `child` when applied in order, as the loop applies
    them (first exact match, blank edge lines ignored); None when no set of unique blocks does."""
    current = parent.splitlines()
    target = child.splitlines()
    offset = 0
    blocks = []
    opcodes = difflib.SequenceMatcher(None, current, target, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            continue
        start, length, new = i1 + offset, i2 - i1, [line.rstrip() for line in target[j1:j2]]
        window = _unique_window(current, start, length, new)
        if window is None:
            return None
        before, after = window
        search = current[start - before : start + length + after]
        replaced = current[start - before : start] + new + current[start + length : start + length + after]
        blocks.append("<<<<<<< SEARCH\n" + "\n".join(search) + "\n=======\n"
                      + "\n".join(replaced) + ("\n" if replaced else "") + ">>>>>>> REPLACE")
        current = current[: start - before] + replaced + current[start + length + after :]
        offset += len(new) - length
    return "\n\n".join(blocks) if blocks else None


def _unique_window(lines: list[str], start: int, length: int, new: list[str]) -> tuple[int, int] | None:
    """Context lines (before, after) to quote around lines[start:start+length] so that the SEARCH text is
    not empty, neither it nor the REPLACE text begins or ends with a blank line (the loop trims those),
    and its first match is here."""
    before = after = 0
    while True:
        search = lines[start - before : start + length + after]
        replaced = lines[start - before : start] + new + lines[start + length : start + length + after]
        top_blank = not search or not search[0].strip() or (replaced and not replaced[0].strip())
        bottom_blank = not search or not search[-1].strip() or (replaced and not replaced[-1].strip())
        if not top_blank and not bottom_blank and _first_match(lines, search) == start - before:
            return before, after
        can_before, can_after = start - before > 0, start + length + after < len(lines)
        if not can_before and not can_after:
            return None
        if (top_blank or not bottom_blank) and can_before or not can_after:
            before += 1
        else:
            after += 1


def _first_match(lines: list[str], search: list[str]) -> int | None:
    wanted = [line.rstrip() for line in search]
    for start in range(len(lines) - len(search) + 1):
        if [line.rstrip() for line in lines[start : start + len(search)]] == wanted:
            return start
    return None


def _same_text(a: str, b: str) -> bool:
    """Equal but for trailing whitespace, which the loop's diff application drops."""
    return [line.rstrip() for line in a.strip("\n").splitlines()] == [line.rstrip() for line in b.strip("\n").splitlines()]


def _prose(step: Step) -> str:
    """What the model wrote before its code or edits; for parameter tuning, the tuning's description."""
    if step.llm_call is None:
        return str(step.child.program.metadata.get("description") or "").strip()
    lines = []
    for line in step.llm_call.response.splitlines():
        if SEARCH_MARK.match(line) or line.lstrip().startswith("```"):
            break
        lines.append(line)
    prose = "\n".join(lines).strip()
    return prose if len(prose) <= MAX_PROSE_CHARS else ""


def _stored_messages(prompt: str) -> Messages | None:
    """The loop stores a call's messages as JSON; any other text is taken as the user turn."""
    try:
        messages = json.loads(prompt)
    except json.JSONDecodeError:
        messages = None
    if isinstance(messages, list) and messages and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
    ):
        shaped = [{"role": m["role"], "content": m["content"]} for m in messages]
        if not any(m["role"] == "user" for m in shaped):
            return None
        if shaped[0]["role"] != "system":
            shaped.insert(0, _system())
        return shaped
    if not prompt.strip():
        return None
    return [_system(), {"role": "user", "content": prompt}]


def _system() -> dict[str, str]:
    return {"role": "system", "content": template("system").substitute().strip()}


def _view(scored: Scored) -> ProgramView:
    """A program as the loop shows it: its result, its speedup as score, and how it was made."""
    evaluation = scored.evaluation
    return ProgramView(
        source=scored.program.source,
        result=evaluation.result if evaluation is not None else None,
        score=evaluation.speedup if evaluation is not None else None,
        program_id=scored.program.id,
        operator=scored.program.operator,
        description=scored.program.metadata.get("description"),
    )


def _limits(backend: str) -> BackendLimits:
    try:
        return BackendLimits.for_backend(Backend(backend))
    except ValueError:  # a backend this version does not know: its name, with the common limits
        return BackendLimits(backend)


def _max_error_chars(run: Run) -> int:
    settings = run.config.get("settings") if isinstance(run.config, dict) else None
    prompts = settings.get("prompts") if isinstance(settings, dict) else None
    value = prompts.get("max_error_chars") if isinstance(prompts, dict) else None
    return value if isinstance(value, int) and value > 0 else MutationContext.max_error_chars

