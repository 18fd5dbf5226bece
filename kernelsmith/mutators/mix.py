"""The operator mix: which mutator makes the next child, drawn by configured weights."""

from __future__ import annotations

import random
from collections.abc import Mapping

from kernelsmith.llm import LLMClient
from kernelsmith.mutators.base import Mutation, MutationContext, Mutator
from kernelsmith.mutators.operators import Diff, FirstKernel, Fix, ParamTune, Rewrite

DEFAULT_WEIGHTS = {"first_kernel": 1.0, "rewrite": 1.0, "diff": 2.0, "fix": 1.0, "params": 1.0}


class NoOperator(RuntimeError):
    """No operator can work on this context (no parent and no LLM to write a first kernel)."""


class OperatorMix:
    """Draws one applicable operator by weight; parameter tuning alone when there is no LLM."""

    def __init__(self, mutators: list[Mutator], weights: Mapping[str, float] | None = None) -> None:
        weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        unknown = set(weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown operator(s) {sorted(unknown)}; known: {sorted(DEFAULT_WEIGHTS)}")
        if any(weight < 0 for weight in weights.values()):
            raise ValueError("operator weights must be >= 0")
        self.mutators = mutators
        self.weights = {m.name: weights[m.name] for m in mutators}

    @classmethod
    def build(cls, llm: LLMClient | None, weights: Mapping[str, float] | None = None) -> OperatorMix:
        mutators: list[Mutator] = [ParamTune()]
        if llm is not None:
            mutators += [FirstKernel(llm), Rewrite(llm), Diff(llm), Fix(llm)]
        return cls(mutators, weights)

    @property
    def uses_llm(self) -> bool:
        return any(m.uses_llm and self.weights[m.name] > 0 for m in self.mutators)

    def choose(self, context: MutationContext, rng: random.Random) -> Mutator:
        candidates = [m for m in self.mutators if self.weights[m.name] > 0 and m.applies_to(context)]
        if not candidates:
            if context.parent is None:
                raise NoOperator("no parent program and no LLM configured to write a first kernel: "
                                 "start from a seed kernel or configure a model")
            raise NoOperator(f"no operator applies (enabled: {', '.join(self.enabled)})")
        return rng.choices(candidates, weights=[self.weights[m.name] for m in candidates])[0]

    @property
    def enabled(self) -> list[str]:
        return [m.name for m in self.mutators if self.weights[m.name] > 0]

    async def mutate(self, context: MutationContext, rng: random.Random) -> Mutation:
        return await self.choose(context, rng).mutate(context, rng)
