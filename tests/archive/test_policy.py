"""The selection policy: property tests of elites, grid cells, the sampling mix and reproducibility, and a
resumed run that rebuilds the same policy from a real archive."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import archive
from archive.descriptors import Descriptor
from archive.fitness import Fitness
from archive.policy import Candidate, Mode, Policy, PolicyConfig
from evaluators.protocol import STAGE_ORDER, Stage, Status

FAILURES = [s for s in Status if s not in (Status.ok, Status.infra_error)]


@st.composite
def candidates(draw, min_size: int = 1, max_size: int = 40, islands: int = 3) -> list[Candidate]:
    """A history: program ids in order, a few copies of the same code, crowded grid cells, ties."""
    rows = draw(
        st.lists(
            st.tuples(
                st.booleans(),  # ok
                st.sampled_from(FAILURES),
                st.sampled_from([s for s in Stage if s != Stage.done]),
                st.none() | st.sampled_from([0.5, 1.0, 1.25, 2.0]) | st.floats(0.01, 50),
                st.integers(0, 12),  # which code: equal numbers are copies of one normalized source
                st.integers(0, islands - 1),
                st.tuples(st.integers(0, 2), st.booleans(), st.sampled_from([0, 64, 128])),
            ),
            min_size=min_size,
            max_size=max_size,
        )
    )
    history = []
    for program_id, (ok, failure, stage, speedup, code, island, cell) in enumerate(rows, start=1):
        fitness = Fitness(Status.ok, Stage.done, speedup) if ok else Fitness(failure, stage, None)
        history.append(
            Candidate(
                program_id=program_id,
                normalized_hash=f"code-{code}",
                island=island,
                parent_id=program_id - 1 if program_id > 1 else None,
                fitness=fitness,
                descriptor=Descriptor(cell[0], cell[1], cell[2], 4),
                message="" if ok else f"{failure.value} at {stage.value}",
            )
        )
    return history


def order(candidate: Candidate) -> tuple:
    """The ranking spelled out independently of archive.fitness: best first when sorted ascending.
    ok before any failure; faster first, an ok without timing after every timed ok; failures by how far
    they got; the older program first on a tie."""
    fitness = candidate.fitness
    if fitness.status == Status.ok:
        timed = fitness.speedup is not None
        return (0, 0 if timed else 1, -(fitness.speedup or 0.0), candidate.program_id)
    return (1, 0, -STAGE_ORDER[fitness.stage], candidate.program_id)


def best_distinct(pool: list[Candidate], k: int) -> list[int]:
    chosen, seen = [], set()
    for candidate in sorted(pool, key=order):
        if candidate.normalized_hash not in seen:
            seen.add(candidate.normalized_hash)
            chosen.append(candidate.program_id)
    return chosen[:k]


def policy_of(history: list[Candidate], seed: int = 0, **config) -> Policy:
    policy = Policy(PolicyConfig(**config), seed)
    for candidate in history:
        policy.add(candidate)
    return policy


def choices(policy: Policy, draws: int, island: int | None = None) -> list[tuple]:
    picks = []
    for _ in range(draws):
        selection = policy.select(island)
        picks.append(
            (selection.mode, selection.island, selection.parent.program_id)
            + tuple(c.program_id for c in selection.inspirations)
        )
    return picks


@given(candidates(), st.integers(1, 10))
def test_the_elites_are_exactly_the_best_k_distinct_programs(history, k):
    policy = policy_of(history, elite_count=k, islands=3, migration_interval=10_000)
    assert [c.program_id for c in policy.elites()] == best_distinct(history, k)
    for island in range(3):
        members = [c for c in history if c.island == island]
        assert [c.program_id for c in policy.elites(island)] == best_distinct(members, k)


@given(candidates(), st.data())
def test_every_grid_cell_keeps_its_best_whatever_the_order_and_after_re_evaluations(history, data):
    shuffled = data.draw(st.permutations(history))
    policy = policy_of(shuffled)
    # some programs get re-evaluated (re-measured, or a retry); their latest result is what counts
    latest = {c.program_id: c for c in history}
    for program_id in data.draw(st.lists(st.sampled_from(sorted(latest)), max_size=5)):
        worse = Candidate(
            **{**vars(latest[program_id]), "fitness": Fitness(Status.timeout, Stage.load, None)}
        )
        policy.add(worse)
        latest[program_id] = worse

    cells = policy.cells()
    assert set(cells) == {c.descriptor for c in latest.values()}
    for descriptor, best in cells.items():
        in_cell = [c for c in latest.values() if c.descriptor == descriptor]
        assert best == min(in_cell, key=order)


@settings(max_examples=8, deadline=None)
@given(
    st.floats(0, 1).filter(lambda w: w == 0 or w > 0.05),
    st.floats(0.05, 1),
    st.floats(0, 1).filter(lambda w: w == 0 or w > 0.05),
    st.integers(0, 2**31),
)
def test_sampling_follows_the_configured_mix(exploit, explore, fix, seed):
    # one island with elites, diverse cells and recent failures, so every mode can be served
    history = [
        Candidate(
            i,
            f"code-{i}",
            0,
            None,
            Fitness(Status.ok, Stage.done, 1.0 + i / 10),
            Descriptor(i % 3, False, 0, 0),
        )
        for i in range(1, 11)
    ] + [
        Candidate(
            i,
            f"code-{i}",
            0,
            None,
            Fitness(Status.runtime_error, Stage.load, None),
            Descriptor(0, True, 0, 0),
        )
        for i in range(11, 15)
    ]
    policy = policy_of(history, seed, islands=1, exploit=exploit, explore=explore, fix=fix, explore_ramp=0)
    draws = 3000
    picks = [pick[0] for pick in choices(policy, draws)]
    total = exploit + explore + fix
    for mode, weight in ((Mode.exploit, exploit), (Mode.explore, explore), (Mode.fix, fix)):
        # five standard deviations at worst (p = 0.5): a real bias fails, chance alone practically never
        assert abs(picks.count(mode) / draws - weight / total) < 0.046, mode
    assert all(policy.select().parent.program_id >= 11 for _ in range(50)) if fix == total else True


@given(candidates(min_size=2), st.integers(0, 2**31))
def test_the_same_seed_and_history_give_the_same_choices(history, seed):
    config = {"islands": 3, "migration_interval": 5, "inspirations": 3}
    live = policy_of(history[:-1], seed, **config)
    first = choices(live, 4)
    live.add(history[-1])
    second = choices(live, 4)

    replayed = policy_of(history[:-1], seed, **config)
    assert choices(replayed, 4) == first
    replayed.add(history[-1])
    assert choices(replayed, 4) == second
    assert choices(policy_of(history, seed, **config), 4) == second  # rebuilt in one go, as on resume


@given(candidates(), st.integers(0, 5))
def test_inspirations_are_distinct_and_never_the_parent(history, wanted):
    policy = policy_of(history, inspirations=wanted, islands=1)
    for _ in range(10):
        selection = policy.select()
        hashes = [c.normalized_hash for c in selection.inspirations]
        assert len(hashes) == len(set(hashes)) <= wanted
        assert selection.parent.normalized_hash not in hashes
        pool = {c.program_id for c in policy.elites(0)} | {c.program_id for c in policy.cells().values()}
        assert {c.program_id for c in selection.inspirations} <= pool


def test_different_seeds_choose_differently():
    history = [
        Candidate(
            i,
            f"code-{i}",
            0,
            None,
            Fitness(Status.ok, Stage.done, float(i)),
            Descriptor(i % 3, i % 2 == 0, 0, 0),
        )
        for i in range(1, 30)
    ]
    assert choices(policy_of(history, seed=1), 10) != choices(policy_of(history, seed=2), 10)


def test_nothing_to_choose_before_the_first_result():
    assert Policy().select() is None


def test_islands_send_their_best_to_the_next_island_every_interval():
    def ok(program_id: int, island: int, speedup: float) -> Candidate:
        return Candidate(
            program_id,
            f"code-{program_id}",
            island,
            None,
            Fitness(Status.ok, Stage.done, speedup),
            Descriptor(1, False, 0, 0),
        )

    policy = Policy(PolicyConfig(islands=2, migration_interval=4, migration_count=1, elite_count=2))
    for candidate in (ok(1, 0, 1.0), ok(2, 0, 3.0), ok(3, 1, 2.0)):
        policy.add(candidate)
    assert [c.program_id for c in policy.island_members(1)] == [3]
    policy.add(ok(4, 1, 1.5))  # the fourth result: time to migrate
    assert [c.program_id for c in policy.island_members(0)] == [1, 2, 3]
    assert [c.program_id for c in policy.island_members(1)] == [2, 3, 4]
    assert [c.program_id for c in policy.elites(1)] == [2, 3]


def test_fix_draws_a_recent_failure_that_has_not_been_tried_too_often():
    failure = Candidate(
        1,
        "code-1",
        0,
        None,
        Fitness(Status.compile_error, Stage.load, None),
        Descriptor(1, False, 0, 0),
        message="NameError: tl.dott",
    )
    fresh = Candidate(
        2,
        "code-2",
        0,
        None,
        Fitness(Status.incorrect, Stage.correctness, None),
        Descriptor(1, False, 0, 0),
        message="max abs error 3.2",
    )
    policy = policy_of([failure, fresh], exploit=0, explore=0, fix=1, islands=1, fix_attempts=2)
    assert {policy.select().parent.program_id for _ in range(30)} == {1, 2}

    for child in (3, 4):  # two fixes of the compile error were tried and failed
        policy.add(
            Candidate(
                child,
                f"code-{child}",
                0,
                1,
                Fitness(Status.runtime_error, Stage.load, None),
                Descriptor(1, False, 0, 0),
            )
        )
    picked = {policy.select().parent.program_id for _ in range(30)}
    assert 1 not in picked and picked <= {2, 3, 4}
    assert policy.recent_failures(0)[0].program_id == 4  # newest first


def test_explore_draws_from_the_grid_or_uniformly_as_configured():
    # nine programs in one cell and one alone in another: the grid gives the lone one half the draws
    history = [
        Candidate(
            i, f"code-{i}", 0, None, Fitness(Status.ok, Stage.done, float(i)), Descriptor(1, i == 10, 0, 0)
        )
        for i in range(1, 11)
    ]
    grid = [
        pick[2]
        for pick in choices(
            policy_of(history, exploit=0, explore=1, fix=0, islands=1, explore_uniform=0), 400
        )
    ]
    assert set(grid) == {9, 10} and 0.4 < grid.count(10) / 400 < 0.6
    uniform = [
        pick[2]
        for pick in choices(
            policy_of(history, exploit=0, explore=1, fix=0, islands=1, explore_uniform=1), 400
        )
    ]
    assert set(uniform) == set(range(1, 11))


def test_a_config_with_no_mode_to_sample_is_refused():
    with pytest.raises(ValueError, match="at least one of exploit, explore and fix"):
        PolicyConfig(exploit=0, explore=0, fix=0)


def test_a_resumed_run_rebuilds_the_policy_and_makes_the_same_choices(tmp_path, make_result):
    config = PolicyConfig(islands=2, migration_interval=3, elite_count=3)
    db = archive.open(tmp_path / "archive.db")
    run = db.create_run("softmax", "class Model: ...", seed=11)
    live = Policy(config, run.seed)

    def step(selection, index: int, *policies: Policy) -> None:
        parent = selection.parent.program_id if selection else None
        island = selection.island if selection else 0
        program = db.add_program(run, f"x = {index}", parent_id=parent, generation=index, island=island)
        status = [Status.ok, Status.incorrect, Status.infra_error, Status.ok][index % 4]
        speedup = 1 + (index * 7 % 5) / 4 if status == Status.ok else None
        evaluation = db.add_evaluation(program, make_result(status, speedup=speedup))
        for policy in policies:
            policy.observe(program, evaluation)

    for index in range(12):
        step(live.select(), index, live)
    resumed = Policy.from_archive(db, run.id, config)
    assert resumed.candidates == live.candidates and resumed.cells() == live.cells()
    assert [(c.program_id, c.generation) for c in resumed.candidates] == sorted(
        (p.id, p.generation) for p, _ in db.evaluated_programs(run)
    )
    assert [resumed.island_members(i) for i in range(2)] == [live.island_members(i) for i in range(2)]
    # from here the two make identical choices, step after step
    for index in range(12, 20):
        selection = live.select()
        assert resumed.select() == selection
        step(selection, index, live, resumed)
    db.close()


def ok_on(program_id: int, island: int, speedup: float) -> Candidate:
    return Candidate(
        program_id, f"code-{program_id}", island, None, Fitness(Status.ok, Stage.done, speedup),
        Descriptor(1, False, 0, 0),
    )


def test_exploit_draws_favour_the_best_elite_as_configured():
    # eight elites, best first: with exploit_focus 0.5 each is drawn half as often as the one above it
    history = [ok_on(i, 0, float(10 - i)) for i in range(1, 9)]
    focused = [pick[2] for pick in choices(
        policy_of(history, exploit=1, explore=0, fix=0, islands=1, exploit_focus=0.5), 2000)]
    assert 0.45 < focused.count(1) / 2000 < 0.56 and 0.2 < focused.count(2) / 2000 < 0.3
    assert set(focused) == set(range(1, 9))  # the others are still drawn
    default = [pick[2] for pick in choices(policy_of(history, exploit=1, explore=0, fix=0, islands=1), 2000)]
    assert 0.75 < default.count(1) / 2000 < 0.85  # the default focus, 0.8: the best four times in five
    uniform = [pick[2] for pick in choices(
        policy_of(history, exploit=1, explore=0, fix=0, islands=1, exploit_focus=0), 2000)]
    assert all(0.09 < uniform.count(i) / 2000 < 0.16 for i in range(1, 9))


def test_a_young_island_draws_exploit_parents_from_the_whole_run_until_it_fills_up():
    # the seed (fast) lives on island 0; island 1 holds one slow child of it
    history = [ok_on(1, 0, 2.0), ok_on(2, 1, 0.5)]
    picks = [pick[2] for pick in choices(
        policy_of(history, exploit=1, explore=0, fix=0, islands=2, pooled_until=3), 200, island=1)]
    assert set(picks) == {1, 2} and picks.count(1) > picks.count(2)  # the faster seed, most often
    alone = choices(policy_of(history, exploit=1, explore=0, fix=0, islands=2, pooled_until=0), 50, island=1)
    assert {pick[2] for pick in alone} == {2}
    # once the island holds pooled_until programs, it draws from its own
    grown = history + [ok_on(3, 1, 0.6), ok_on(4, 1, 0.7)]
    picks = choices(policy_of(grown, exploit=1, explore=0, fix=0, islands=2, pooled_until=3), 200, island=1)
    assert {pick[2] for pick in picks} == {2, 3, 4}


def test_the_explore_weight_grows_with_the_run_until_explore_ramp():
    # exploit and explore weigh the same; with explore_ramp 20, a run of 5 programs explores at a quarter
    # of the weight (1 : 0.25, a fifth of the draws), one of 20 or more at the full weight (half the draws)
    def explored(programs: int, ramp: int) -> float:
        history = [ok_on(i, 0, float(i)) for i in range(1, programs + 1)]
        policy = policy_of(history, exploit=1, explore=1, fix=0, islands=1, explore_ramp=ramp)
        return [pick[0] for pick in choices(policy, 2000)].count(Mode.explore) / 2000

    assert 0.16 < explored(5, 20) < 0.24
    assert 0.45 < explored(20, 20) < 0.55 and 0.45 < explored(40, 20) < 0.55
    assert 0.45 < explored(5, 0) < 0.55  # 0: no ramp
    # explore alone still draws from the first program on
    alone = policy_of([ok_on(1, 0, 1.0)], exploit=0, explore=1, fix=0, islands=1, explore_ramp=20)
    assert {pick[0] for pick in choices(alone, 20)} == {Mode.explore}
