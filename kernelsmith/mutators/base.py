"""What every mutator sees and returns: plain views of programs, the context, the mutation."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from evaluators.protocol import EvalResult, Status
from kernelsmith.llm import LLMCall
from kernelsmith.params import BackendLimits


@dataclass
class ProgramView:
    """A program as a prompt shows it: its source and, once evaluated, its result."""

    source: str
    result: EvalResult | None = None
    score: float | None = None  # the archive's fitness, shown next to inspirations
    program_id: str | int | None = None
    operator: str | None = None  # how it was made, e.g. "diff"
    description: str | None = None  # what that mutation changed

    @property
    def failed(self) -> bool:
        """Evaluated and not ok (an infra_error is the evaluator's fault, never the program's)."""
        return self.result is not None and self.result.status not in (Status.ok, Status.infra_error)


@dataclass
class MutationContext:
    """Everything a mutator may use to make one child."""

    task_name: str
    reference_source: str
    limits: BackendLimits
    parent: ProgramView | None = None  # None: write a first kernel from the reference
    inspirations: list[ProgramView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what earlier attempts from this parent got wrong
    max_error_chars: int = 2000


@dataclass
class Mutation:
    """A child's source, or the error that prevented one; either way, what it cost."""

    operator: str
    child_source: str | None = None
    error: str | None = None
    description: str = ""
    llm_calls: list[LLMCall] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.child_source is not None and self.error is None

    @property
    def model(self) -> str | None:
        return self.llm_calls[-1].model if self.llm_calls else None


class Mutator(ABC):
    """Makes one child from a context; failures come back as a Mutation with an error."""

    name: ClassVar[str]
    uses_llm: ClassVar[bool]

    @abstractmethod
    def applies_to(self, context: MutationContext) -> bool:
        """Whether this operator can work on the context (a parent, a failed parent...)."""

    @abstractmethod
    async def mutate(self, context: MutationContext, rng: random.Random) -> Mutation:
        """Make one child."""
