"""SYNTHETIC, NOT MEASUREMENTS: a made-up speedup for every point of a task's parameter space, so that the
search strategies of benchmarks/search_efficiency.py can be debugged on a landscape whose optimum is known.
Nothing here says how fast a kernel is; its numbers are never reported as GPU results."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from search_measurements import Outcome

from kernelsmith.strategies import ParameterSpace
from kernelsmith.tasks import Task

FLOOR = 0.25  # the speedup far from every bump
NOISE = 0.02  # a fixed pseudo-random wobble per program, as a timing's spread would give


@dataclass(frozen=True)
class Landscape:
    """Two bumps over the knobs' ladder positions: the higher a few rungs from the seed (seeds are written
    by people who guessed well), the lower anywhere (a second region a greedy search can get caught on).
    With several tile sizes, a too large product of tiles fails as if out of resources."""

    ladders: dict[str, tuple[int, ...]]
    bumps: tuple[tuple[dict[str, int], float], ...]  # (centre as ladder positions, peak speedup)
    widths: dict[str, float]  # in rungs
    tiles: tuple[str, ...]
    tile_limit: float  # the largest sum of tile ladder positions that still "compiles"

    @classmethod
    def of(cls, label: str, space: ParameterSpace) -> Landscape:
        rng = random.Random(f"synthetic landscape:{label}")
        ladders = space.ladders()
        seed = {knob.label: ladders[knob.label].index(knob.value) for knob in space.knobs}
        near = {k: min(len(ladders[k]) - 1, max(0, at + rng.randint(-3, 3))) for k, at in seed.items()}
        anywhere = {k: rng.randrange(len(ladders[k])) for k in seed}
        widths = {k: rng.uniform(0.8, 2.0) for k in seed}
        high = rng.uniform(1.8, 3.0)
        tiles = tuple(knob.label for knob in space.knobs if knob.kind == "tile")
        limit = sum(seed[k] for k in tiles) + rng.choice((2, 3, 4)) if len(tiles) > 1 else math.inf
        return cls(ladders, ((near, high), (anywhere, high * rng.uniform(0.6, 0.85))), widths, tiles, limit)

    def speedup(self, knobs: dict[str, int], key: str) -> float | None:
        """The made-up speedup of a program with these knob values; None: it "fails to compile"."""
        at = {k: self.ladders[k].index(v) for k, v in knobs.items() if k in self.ladders}
        if sum(at[k] for k in self.tiles) > self.tile_limit:
            return None
        height = max(FLOOR + (peak - FLOOR) * math.exp(-0.5 * sum(((at[k] - centre[k]) / self.widths[k]) ** 2
                                                                 for k in at))
                     for centre, peak in self.bumps)
        wobble = int(key[:8], 16) / 0xFFFFFFFF * 2 - 1  # from the program's hash: the same program, the same value
        return round(height * (1 + NOISE * wobble), 4)


class Synthetic:
    """Made-up speedups from benchmarks/search_landscape.py: for debugging strategies, never a GPU result."""

    def __init__(self) -> None:
        self.landscapes: dict[str, Landscape] = {}
        self.scored: dict[str, dict[str, Outcome]] = {}  # task label -> normalized hash -> outcome
        self.measured, self.spent_s = 0, 0.0
        self.why = ""

    def start_task(self, tasks_left: int) -> None: ...

    async def get(self, task: Task, space: ParameterSpace, source: str, key: str) -> Outcome:
        scored = self.scored.setdefault(task.label, {})
        if key in scored:
            return scored[key]
        landscape = self.landscapes.setdefault(task.label, Landscape.of(task.label, space))
        knobs = space.values(source)
        speedup = landscape.speedup(knobs, key)
        if speedup is None:
            outcome = Outcome("compile_error", "correctness", None, None, "synthetic: out of resources", 0.0, knobs)
        else:
            outcome = Outcome("ok", "done", speedup, None, "synthetic", 0.0, knobs)
        self.measured += 1
        scored[key] = outcome
        return outcome
