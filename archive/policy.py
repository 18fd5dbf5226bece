"""The selection policy: elites (top k by fitness) on islands that swap their best now and then, a
MAP-Elites grid over behavioural descriptors for diversity, and parent sampling that mixes
exploitation, exploration and fixing a recent failure. Its state is a function of the evaluated
history and the seed, so a resumed run rebuilds it from the archive and makes the same choices."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from archive.descriptors import Descriptor, describe
from archive.fitness import Fitness, rank_key, usable
from archive.records import Evaluation, Program, Run

if TYPE_CHECKING:
    from archive.store import Archive


class PolicyConfig(BaseModel):
    """How parents and inspirations are chosen. The three mode weights need not sum to one."""

    model_config = ConfigDict(extra="forbid")

    elite_count: int = Field(8, ge=1, description="k: how many of an island's best programs are its elites")
    islands: int = Field(4, ge=1, description="populations evolving apart")
    migration_interval: int = Field(25, ge=1, description="evaluated programs between two migrations")
    migration_count: int = Field(
        2, ge=0, description="elites each island sends to the next one per migration"
    )
    exploit: float = Field(0.6, ge=0, description="weight of drawing the parent from the island's elites")
    exploit_focus: float = Field(
        0.8, ge=0, lt=1, description="an exploit draw weighs the i-th best elite by (1 - exploit_focus)**i; 0: uniform"
    )
    pooled_until: int = Field(
        8, ge=0, description="an island holding fewer programs than this also draws exploit parents from the "
        "run's elites; 0: never",
    )
    explore: float = Field(0.3, ge=0, description="weight of drawing it from the diversity grid or uniformly")
    explore_ramp: int = Field(
        32, ge=0, description="the explore weight grows in proportion to the run's programs up to this many, "
        "then stays at `explore`; 0: full from the first draw",
    )
    fix: float = Field(0.1, ge=0, description="weight of drawing a recent failure to repair")
    explore_uniform: float = Field(
        0.25,
        ge=0,
        le=1,
        description="share of explore draws made uniformly over the island instead of the grid",
    )
    fix_window: int = Field(8, ge=1, description="how many of the island's latest failures a fix draws from")
    fix_attempts: int = Field(
        2, ge=1, description="a failure that already has this many children is left alone"
    )
    inspirations: int = Field(
        3, ge=0, description="programs shown beside the parent, from elites and the grid"
    )

    @model_validator(mode="after")
    def _some_mode(self) -> PolicyConfig:
        if self.exploit + self.explore + self.fix <= 0:
            raise ValueError("at least one of exploit, explore and fix must have a positive weight")
        return self


class Mode(str, Enum):
    exploit = "exploit"
    explore = "explore"
    fix = "fix"


@dataclass(frozen=True)
class Candidate:
    """A program as the policy sees it: where it lives, how good it is, what it looks like."""

    program_id: int
    normalized_hash: str
    island: int
    parent_id: int | None
    fitness: Fitness
    descriptor: Descriptor
    generation: int = 0
    evaluation_id: int | None = None
    message: str = ""  # the evaluation's message: what a fix prompt shows for a failure

    @classmethod
    def from_records(cls, program: Program, evaluation: Evaluation) -> Candidate:
        return cls(
            program_id=program.id,
            normalized_hash=program.normalized_hash,
            island=program.island,
            parent_id=program.parent_id,
            fitness=Fitness(evaluation.status, evaluation.stage, evaluation.speedup),
            descriptor=describe(program.source),
            generation=program.generation,
            evaluation_id=evaluation.id,
            message=evaluation.result.message,
        )

    def rank(self) -> tuple[int, float, int]:
        return rank_key(self.program_id, self.fitness)


@dataclass(frozen=True)
class Selection:
    """What to mutate next: the parent, programs to show beside it, and the island the child joins."""

    mode: Mode
    parent: Candidate
    inspirations: tuple[Candidate, ...]
    island: int


class Policy:
    def __init__(self, config: PolicyConfig | None = None, seed: int = 0) -> None:
        self.config = config or PolicyConfig()
        self.seed = seed
        self._candidates: dict[int, Candidate] = {}
        self._observed = 0  # distinct programs observed: the history's length, which keys the RNG
        self._draws = 0  # selections since the history last grew
        self._members: list[set[int]] = [set() for _ in range(self.config.islands)]
        self._cells: dict[Descriptor, int] = {}
        self._children: Counter[int] = Counter()

    @classmethod
    def from_history(
        cls, history: Iterable[tuple[Program, Evaluation]], config: PolicyConfig | None = None, seed: int = 0
    ) -> Policy:
        policy = cls(config, seed)
        for program, evaluation in history:
            policy.observe(program, evaluation)
        return policy

    @classmethod
    def from_archive(cls, archive: Archive, run: Run | int, config: PolicyConfig | None = None) -> Policy:
        """The policy of a run as its stored history left it (the run's seed seeds it)."""
        run = archive.get_run(run)
        return cls.from_history(archive.evaluated_programs(run), config, run.seed)

    # history

    def observe(self, program: Program, evaluation: Evaluation) -> None:
        """Take in a new result. infra_errors say nothing about the candidate and are ignored."""
        if usable(evaluation.status):
            self.add(Candidate.from_records(program, evaluation))

    def add(self, candidate: Candidate) -> None:
        """Take in a candidate (a program with its latest usable result); a known program is updated."""
        previous = self._candidates.get(candidate.program_id)
        self._candidates[candidate.program_id] = candidate
        cell = candidate.descriptor
        if previous is not None and self._cells.get(previous.descriptor) == candidate.program_id:
            # a re-evaluated cell best may have got worse: the cell goes to whoever is best now
            self._cells[previous.descriptor] = max(
                (c for c in self._candidates.values() if c.descriptor == previous.descriptor),
                key=Candidate.rank,
            ).program_id
        best = self._cells.get(cell)
        if best is None or candidate.rank() > self._candidates[best].rank():
            self._cells[cell] = candidate.program_id
        if previous is not None:
            return
        self._members[candidate.island % self.config.islands].add(candidate.program_id)
        if candidate.parent_id is not None:
            self._children[candidate.parent_id] += 1
        self._observed += 1
        self._draws = 0
        if self._observed % self.config.migration_interval == 0:
            self._migrate()

    def _migrate(self) -> None:
        # every island sends its best to the next one in a ring, all at the same moment
        count = self.config.migration_count
        outgoing = [
            [c.program_id for c in self.elites(island)[:count]] for island in range(self.config.islands)
        ]
        for island, migrants in enumerate(outgoing):
            self._members[(island + 1) % self.config.islands].update(migrants)

    # views

    @property
    def candidates(self) -> list[Candidate]:
        return [self._candidates[i] for i in sorted(self._candidates)]

    def island_members(self, island: int) -> list[Candidate]:
        """The island's own programs and the migrants it received, oldest first."""
        return [self._candidates[i] for i in sorted(self._members[island % self.config.islands])]

    def elites(self, island: int | None = None) -> list[Candidate]:
        """The best `elite_count` distinct programs (by normalized source) of an island, or of all, best first."""
        pool = self.candidates if island is None else self.island_members(island)
        return _distinct_best(pool)[: self.config.elite_count]

    def cells(self) -> dict[Descriptor, Candidate]:
        """Each occupied cell of the diversity grid with the best program in it."""
        return {cell: self._candidates[best] for cell, best in sorted(self._cells.items())}

    def recent_failures(self, island: int) -> list[Candidate]:
        """The island's latest failures that have not yet had `fix_attempts` children, newest first."""
        failures = [
            c
            for c in reversed(self.island_members(island))
            if not c.fitness.ok and self._children[c.program_id] < self.config.fix_attempts
        ]
        return failures[: self.config.fix_window]

    # selection

    def select(self, island: int | None = None) -> Selection | None:
        """Choose a parent and inspirations; None until some program has a usable result.

        Draws are seeded by (seed, history length, draws since it grew): the same history gives the
        same sequence of choices, in this process or after a resume.
        """
        if not self._candidates:
            return None
        rng = random.Random(f"{self.seed}:{self._observed}:{self._draws}")
        self._draws += 1
        if island is None:
            island = rng.randrange(self.config.islands)
        island %= self.config.islands
        members = self.island_members(island) or self.candidates
        weights = {
            Mode.exploit: self.config.exploit,
            Mode.explore: self._explore_weight(),
            Mode.fix: self.config.fix,
        }
        mode = rng.choices(list(weights), weights=list(weights.values()))[0]
        if mode == Mode.fix and not self.recent_failures(island):
            mode = Mode.exploit if self.config.exploit > 0 else Mode.explore
        if mode == Mode.fix:
            parent = rng.choice(self.recent_failures(island))
        elif mode == Mode.exploit:
            parent = self._exploit(rng, members)
        elif rng.random() < self.config.explore_uniform:
            parent = rng.choice(_distinct_best(members, by_age=True))
        else:
            parent = rng.choice(list(self.cells().values()))
        return Selection(mode, parent, self._inspirations(rng, members, parent), island)

    def _explore_weight(self) -> float:
        # a run of a few programs has no niches yet: its "diverse" cells are just its worse programs
        ramp = self.config.explore_ramp
        return self.config.explore * (min(1.0, self._observed / ramp) if ramp else 1.0)

    def _exploit(self, rng: random.Random, members: list[Candidate]) -> Candidate:
        # a young island's few programs are no elite: until it fills up, it draws from the whole run's elites
        pool = members if len(members) >= self.config.pooled_until else self.candidates
        elites = _distinct_best(pool)[: self.config.elite_count]
        if not self.config.exploit_focus:
            return rng.choice(elites)
        decay = 1.0 - self.config.exploit_focus  # rank-weighted: the best elite most often, the rest still drawn
        return rng.choices(elites, weights=[decay**rank for rank in range(len(elites))])[0]

    def _inspirations(
        self, rng: random.Random, members: list[Candidate], parent: Candidate
    ) -> tuple[Candidate, ...]:
        # about half from the island's elites, the rest from the grid's cells; never the parent's own code
        wanted = self.config.inspirations
        elites = [
            c
            for c in _distinct_best(members)[: self.config.elite_count]
            if c.normalized_hash != parent.normalized_hash
        ]
        diverse = [
            c for c in _distinct_best(self.cells().values()) if c.normalized_hash != parent.normalized_hash
        ]
        chosen: list[Candidate] = []
        hashes: set[str] = set()
        for pool, share in ((elites, (wanted + 1) // 2), (diverse, wanted), (elites, wanted)):
            available = [c for c in pool if c.normalized_hash not in hashes]
            for candidate in rng.sample(available, min(share, wanted - len(chosen), len(available))):
                chosen.append(candidate)
                hashes.add(candidate.normalized_hash)
        return tuple(chosen)


def _distinct_best(pool: Iterable[Candidate], *, by_age: bool = False) -> list[Candidate]:
    """One candidate per normalized source (the best of its copies), best first or oldest first."""
    best: dict[str, Candidate] = {}
    for candidate in pool:
        kept = best.get(candidate.normalized_hash)
        if kept is None or candidate.rank() > kept.rank():
            best[candidate.normalized_hash] = candidate
    if by_age:
        return sorted(best.values(), key=lambda c: c.program_id)
    return sorted(best.values(), key=Candidate.rank, reverse=True)
