"""The program database: lineage store (SQLite by default, any SQLAlchemy URL) and selection policy.

    import archive
    from archive.policy import Policy, PolicyConfig

    db = archive.open()                      # ./kernelsmith.db; or a path, or "postgresql://..."
    run = db.create_run("23_Softmax", reference_source, config={...}, seed=7)
    seed = db.add_program(run, source, operator="seed", generation=0, island=0)
    cached = db.find_cached_result(run.task_name, "triton-nvidia", source)   # None: evaluate it
    db.add_evaluation(seed, cached.result if cached else judge.evaluate(request))
    policy = Policy.from_archive(db, run, PolicyConfig())                   # also how a resume starts
    choice = policy.select()                 # Selection(mode, parent, inspirations, island)
    child = db.add_program(run, new_source, parent_id=choice.parent.program_id,
                           inspiration_ids=[c.program_id for c in choice.inspirations],
                           operator="rewrite", model="...",
                           generation=choice.parent.generation + 1, island=choice.island)
    evaluation = db.add_evaluation(child, result)
    policy.observe(child, evaluation)
    db.add_llm_call(run, model="...", prompt=..., response=..., program=child, prompt_tokens=...)
    db.ancestors(child); db.descendants(seed); db.path_to_best(run); db.generation_stats(run)
    db.resume(run.id); db.set_run_status(run, "finished"); db.list_runs(); db.get_run(run.id)
    lease = db.claim_run(run)                # RunBusy while another live process evolves the run
    db.heartbeat(lease); db.release(lease)   # beat well within 120 s; release when done
    board = db.leaderboards.create("level1", suite, ["level1/1_ReLU", ...], config={...})
    db.leaderboards.record(board, "level1/1_ReLU", run=run)   # or error="why no run could start"

Every add_* commits before it returns. Errors a user should see are ArchiveError. docs/archive.md
describes the schema, migrations, dedup and the policy.
"""

from archive.errors import ArchiveError, RunBusy, SchemaVersionError
from archive.leaderboards import Leaderboard, LeaderboardEntry
from archive.lease import Lease
from archive.records import Evaluation, GenerationStats, LlmCall, Program, Run, RunStatus
from archive.store import Archive, open_archive

open = open_archive  # archive.open(url) reads best at call sites; the builtin is untouched elsewhere

__all__ = [
    "Archive",
    "ArchiveError",
    "Evaluation",
    "GenerationStats",
    "Leaderboard",
    "LeaderboardEntry",
    "Lease",
    "LlmCall",
    "Program",
    "Run",
    "RunBusy",
    "RunStatus",
    "SchemaVersionError",
    "open",
    "open_archive",
]
