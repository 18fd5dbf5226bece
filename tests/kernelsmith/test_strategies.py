"""The search strategies the Policy is measured against: the seed's parameter space, uniform random
sampling of it, and hill-climbing, which always mutates the best program so far."""

from __future__ import annotations

import ast
import random
from collections import Counter
from pathlib import Path

import pytest

import archive
from archive.descriptors import Descriptor
from archive.fitness import Fitness
from archive.policy import Candidate, Mode
from evaluators.protocol import Backend, EvalResult, Stage, Status
from kernelsmith.params import BackendLimits, TuningError, find_knobs
from kernelsmith.strategies import HillClimb, ParameterSpace, RandomSampling, make_strategy

SEEDS = Path(__file__).resolve().parents[2] / "tasks" / "level1" / "seeds"
NVIDIA = BackendLimits.for_backend(Backend.triton_nvidia)


def candidate(program_id: int, status: Status = Status.ok, speedup: float | None = None) -> Candidate:
    stage = Stage.done if status == Status.ok else Stage.correctness
    return Candidate(program_id, f"code-{program_id}", 0, None, Fitness(status, stage, speedup),
                     Descriptor(1, False, 0, 0))


def test_the_space_of_a_matmul_seed_is_every_ladder_value_of_its_five_knobs():
    source = (SEEDS / "19_SquareMatmul.py").read_text()
    space = ParameterSpace.of(source, NVIDIA)
    ladders = space.ladders()
    assert ladders["BLOCK_M"] == (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
    assert ladders["num_warps (NUM_WARPS)"] == (1, 2, 4, 8, 16)
    assert ladders["num_stages (NUM_STAGES)"] == (1, 2, 3, 4, 5)
    assert space.size == 9 * 9 * 9 * 5 * 5
    assert space.assign(space.values(source)) == source  # the seed's own point is the seed, byte for byte

    rng = random.Random(3)
    for _ in range(20):
        values = space.sample(rng)
        child = space.assign(values)
        ast.parse(child)
        assert space.values(child) == values  # every knob moved to exactly the drawn value
        # nothing but the knobs changed: the same structure, and comments survive
        assert child.count("\n") == source.count("\n") and "#" in child


def test_random_sampling_covers_the_space_uniformly():
    space = ParameterSpace.of((SEEDS / "13_Softmax.py").read_text(), NVIDIA)
    assert space.size == 45
    sampling = RandomSampling(space)
    rng = random.Random(0)
    seen = Counter(tuple(space.values(sampling.propose(rng).source).values()) for _ in range(1800))
    assert len(seen) == 45  # every point drawn
    assert max(seen.values()) < 3 * 1800 / 45  # none much more often than its share
    assert sampling.propose(rng).parent is None  # a sample has no parent


def test_a_seed_without_knobs_has_no_space():
    with pytest.raises(TuningError, match="no tunable parameter"):
        ParameterSpace.of("import torch\n\nclass ModelNew:\n    pass\n", NVIDIA)


def test_hill_climbing_always_mutates_the_best_program_so_far():
    climb = HillClimb()
    assert climb.select() is None
    climb.add(candidate(1, speedup=1.0))
    climb.add(candidate(2, Status.compile_error))
    assert climb.select().parent.program_id == 1  # a failure never beats a correct program
    climb.add(candidate(3, speedup=1.4))
    climb.add(candidate(4, speedup=1.4))
    selection = climb.select()
    assert selection.parent.program_id == 3 and selection.mode == Mode.exploit  # a tie goes to the older
    assert selection.inspirations == ()

    strategy = make_strategy("hill", ParameterSpace.of((SEEDS / "13_Softmax.py").read_text(), NVIDIA), 0)
    seed = (SEEDS / "13_Softmax.py").read_text()
    strategy.add(candidate(1, speedup=1.0), seed)
    best = seed.replace("BLOCK_SIZE = 1024", "BLOCK_SIZE = 4096")
    strategy.add(candidate(2, speedup=2.0), best)
    strategy.add(candidate(3, speedup=1.5), seed.replace("BLOCK_SIZE = 1024", "BLOCK_SIZE = 512"))
    for number in range(10):  # every child is one to three knob moves away from the best
        child = strategy.propose(random.Random(number))
        assert child.parent.program_id == 2
        moved = {k.label: k.value for k in find_knobs(child.source, NVIDIA)}
        assert moved["BLOCK_SIZE"] in (2048, 4096) and moved != {"BLOCK_SIZE": 4096, "num_warps (NUM_WARPS)": 4}


def test_hill_climbing_rebuilds_from_an_archive(tmp_path):
    result = EvalResult(task_name="t", status=Status.ok, stage=Stage.done, speedup=1.0)
    with archive.open(tmp_path / "a.db") as db:
        run = db.create_run("t", "class Model: ...")
        for index, speedup in enumerate((1.0, 1.7, 1.2)):
            program = db.add_program(run, f"x = {index}")
            db.add_evaluation(program, result.model_copy(update={"speedup": speedup}))
        assert HillClimb.from_archive(db, run).select().parent.program_id == 2


def test_unknown_strategies_are_refused():
    space = ParameterSpace.of((SEEDS / "13_Softmax.py").read_text(), NVIDIA)
    with pytest.raises(ValueError, match="unknown strategy 'annealing'"):
        make_strategy("annealing", space, 0)
