"""Search strategies over a seed kernel's launch parameters: the archive's Policy with parameter tuning,
and the two simpler strategies it is measured against, uniform random sampling of the same parameter
space and greedy hill-climbing from the best so far (`HillClimb` is also a Selector evolve() accepts)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from archive.fitness import usable
from archive.policy import Candidate, Mode, Policy, PolicyConfig, Selection
from kernelsmith.params import BackendLimits, Knob, TuningError, _edit, find_knobs, tune

if TYPE_CHECKING:
    from archive import Archive, Evaluation, Program, Run


def ladder(kind: str, limits: BackendLimits) -> tuple[int, ...]:
    """The legal values of a knob, in order: the ladder tune() steps along one or two rungs at a time."""
    if kind == "tile":
        return tuple(1 << p for p in range(limits.min_tile.bit_length() - 1, limits.max_tile.bit_length())
                     if limits.min_tile <= 1 << p <= limits.max_tile)
    return tuple(getattr(limits, kind))


@dataclass
class ParameterSpace:
    """Every assignment of a seed's tunable knobs to legal values: the space parameter tuning searches."""

    source: str
    limits: BackendLimits
    knobs: list[Knob]

    @classmethod
    def of(cls, source: str, limits: BackendLimits) -> ParameterSpace:
        knobs = [knob for knob in find_knobs(source, limits) if len(ladder(knob.kind, limits)) > 1]
        if not knobs:
            raise TuningError("no tunable parameter found: the seed has no space to search")
        return cls(source, limits, knobs)

    @property
    def size(self) -> int:
        return math.prod(len(ladder(knob.kind, self.limits)) for knob in self.knobs)

    def ladders(self) -> dict[str, tuple[int, ...]]:
        return {knob.label: ladder(knob.kind, self.limits) for knob in self.knobs}

    def sample(self, rng: random.Random) -> dict[str, int]:
        """A uniformly random point: each knob drawn independently from its ladder."""
        return {label: rng.choice(values) for label, values in self.ladders().items()}

    def assign(self, values: dict[str, int]) -> str:
        """The seed with its knobs set to `values` (knobs not named keep the seed's value), edited in place
        as tune() edits, so a sample and a tuned child of the same point are the same program."""
        edits = [(node, values.get(knob.label, knob.value)) for knob in self.knobs for node in knob.nodes]
        return _edit(self.source, edits)

    def values(self, source: str) -> dict[str, int]:
        """Where a program of this space sits: its knob values by the seed's labels."""
        return {knob.label: knob.value for knob in find_knobs(source, self.limits)}


class HillClimb:
    """A Selector that always picks the best program so far (the oldest on a tie), with no inspirations:
    every child is a mutation of the current best."""

    def __init__(self) -> None:
        self._candidates: dict[int, Candidate] = {}

    @classmethod
    def from_archive(cls, archive: Archive, run: Run | int) -> HillClimb:
        selector = cls()
        for program, evaluation in archive.evaluated_programs(archive.get_run(run)):
            selector.observe(program, evaluation)
        return selector

    def observe(self, program: Program, evaluation: Evaluation) -> None:
        if usable(evaluation.status):
            self.add(Candidate.from_records(program, evaluation))

    def add(self, candidate: Candidate) -> None:
        self._candidates[candidate.program_id] = candidate  # a re-evaluation replaces the old result

    @property
    def best(self) -> Candidate | None:
        return max(self._candidates.values(), key=Candidate.rank, default=None)

    def select(self) -> Selection | None:
        best = self.best
        return Selection(Mode.exploit, best, (), 0) if best is not None else None


def hill_climb_selector(archive: Archive, run: Run) -> HillClimb:
    """For evolve(selector=...): greedy hill-climbing instead of the archive's Policy."""
    return HillClimb.from_archive(archive, run)


@dataclass(frozen=True)
class Child:
    """One proposal: its source, the parent it was made from (None for a fresh sample), its island."""

    source: str
    parent: Candidate | None
    island: int
    mode: str  # how the parent was chosen (exploit, explore, fix), or "sample"


class Strategy(Protocol):
    """Proposes children one at a time from the results it was given."""

    name: str

    def propose(self, rng: random.Random) -> Child: ...

    def add(self, candidate: Candidate, source: str) -> None: ...


class SelectAndTune:
    """A Selector picks the parent and parameter tuning moves one to three of its knobs a rung or two:
    what `kernelsmith evolve` does without a model."""

    def __init__(self, name: str, selector: Policy | HillClimb, limits: BackendLimits) -> None:
        self.name, self.selector, self.limits = name, selector, limits
        self.sources: dict[int, str] = {}  # the selector sees candidates; tuning needs their source

    def propose(self, rng: random.Random) -> Child:
        selection = self.selector.select()
        if selection is None:
            raise RuntimeError(f"{self.name}: nothing to select from: add the seed's result first")
        source = self.sources[selection.parent.program_id]
        return Child(tune(source, self.limits, rng).source, selection.parent, selection.island,
                     selection.mode.value)

    def add(self, candidate: Candidate, source: str) -> None:
        self.sources[candidate.program_id] = source
        self.selector.add(candidate)


class RandomSampling:
    """Each child a uniformly random point of the seed's parameter space, whatever the results so far."""

    name = "random"

    def __init__(self, space: ParameterSpace) -> None:
        self.space = space

    def propose(self, rng: random.Random) -> Child:
        return Child(self.space.assign(self.space.sample(rng)), None, 0, "sample")

    def add(self, candidate: Candidate, source: str) -> None:
        pass  # results do not steer it


def make_strategy(name: str, space: ParameterSpace, seed: int, policy: PolicyConfig | None = None) -> Strategy:
    """`policy` (the archive's Policy under `policy`, default: its defaults), `hill` or `random`."""
    if name == "random":
        return RandomSampling(space)
    if name == "hill":
        return SelectAndTune(name, HillClimb(), space.limits)
    if name == "policy" or policy is not None:
        return SelectAndTune(name, Policy(policy, seed), space.limits)
    raise ValueError(f"unknown strategy {name!r}: policy, hill or random")
