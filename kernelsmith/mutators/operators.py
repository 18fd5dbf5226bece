"""The mutation operators: four that ask an LLM, and parameter tuning that does not."""

from __future__ import annotations

import random

from kernelsmith.llm import LLMClient
from kernelsmith.mutators import prompting
from kernelsmith.mutators.base import Mutation, MutationContext, Mutator
from kernelsmith.params import TuningError, tune
from kernelsmith.replies import ReplyError, extract_program, parse_diff_reply


class LLMOperator(Mutator):
    """Render a template, ask the LLM once, parse the reply; any failure is the Mutation's error."""

    uses_llm = True
    template: str

    def __init__(self, llm: LLMClient) -> None:
        self.llm = llm

    async def mutate(self, context: MutationContext, rng: random.Random) -> Mutation:
        call = await self.llm.complete(prompting.messages(self.template, context), purpose=self.name)
        mutation = Mutation(self.name, llm_calls=[call])
        if call.error is not None:
            mutation.error = f"LLM call to {call.model} failed: {call.error}"
            return mutation
        try:
            mutation.child_source, mutation.description = self.parse(call.response or "", context)
        except ReplyError as error:
            mutation.error = f"unusable reply from {call.model}: {error}"
        return mutation

    def parse(self, reply: str, context: MutationContext) -> tuple[str, str]:
        """The child's source and a description of the change."""
        child = extract_program(reply)
        if context.parent is not None and child.strip() == context.parent.source.strip():
            raise ReplyError("the reply repeats the current program unchanged")
        return child, _first_sentence(reply) or self.name


class FirstKernel(LLMOperator):
    """A first Triton program written from the PyTorch reference."""

    name = "first_kernel"
    template = "first_kernel"

    def applies_to(self, context: MutationContext) -> bool:
        return context.parent is None


class Rewrite(LLMOperator):
    """A complete new program, from a parent that works."""

    name = "rewrite"
    template = "improve"

    def applies_to(self, context: MutationContext) -> bool:
        return context.parent is not None and not context.parent.failed


class Diff(LLMOperator):
    """SEARCH/REPLACE edits of a parent that works; a block that does not apply fails the mutation."""

    name = "diff"
    template = "improve_diff"

    def applies_to(self, context: MutationContext) -> bool:
        return context.parent is not None and not context.parent.failed

    def parse(self, reply: str, context: MutationContext) -> tuple[str, str]:
        assert context.parent is not None
        child, applied = parse_diff_reply(context.parent.source, reply)
        summary = _first_sentence(reply)
        return child, f"{applied}: {summary}" if summary else applied


class Fix(LLMOperator):
    """A repaired version of a failed parent, shown its trimmed error."""

    name = "fix"
    template = "fix"

    def applies_to(self, context: MutationContext) -> bool:
        return context.parent is not None and context.parent.failed


class ParamTune(Mutator):
    """Tile sizes, num_warps and num_stages moved within the backend's limits; no LLM."""

    name = "params"
    uses_llm = False

    def applies_to(self, context: MutationContext) -> bool:
        return context.parent is not None

    async def mutate(self, context: MutationContext, rng: random.Random) -> Mutation:
        assert context.parent is not None
        try:
            tuning = tune(context.parent.source, context.limits, rng)
        except (TuningError, SyntaxError) as error:
            return Mutation(self.name, error=f"parameter tuning: {error}")
        return Mutation(self.name, child_source=tuning.source, description=tuning.description)


def _first_sentence(reply: str) -> str:
    """The reply's own summary of its change: its first line of prose, shortened."""
    for line in reply.strip().splitlines():
        text = line.strip().lstrip("#*-> ").strip()
        if text.startswith(("```", "<<<<<<<", "=======", ">>>>>>>")):
            return ""
        if text:
            return text if len(text) <= 160 else text[:157] + "..."
    return ""
