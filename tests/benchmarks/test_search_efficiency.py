"""benchmarks/search_efficiency.py end to end as a command, on this CPU: the synthetic landscape (curves,
tables and plot), the real evaluator on the interpreter (a measurement cache, no timings), a replay of
that cache with more seeds, and refusals. Structure only: no speedup claimed from a CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "search_efficiency.py"
STRATEGIES = 'policy;policy-uniform={"exploit_focus": 0, "pooled_until": 0, "explore_ramp": 0};random;hill'


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def report(out: Path) -> dict:
    return json.loads((out / "search_efficiency.json").read_text())


def test_on_the_synthetic_landscape_every_strategy_gets_its_curves_tables_and_plot(tmp_path):
    out = tmp_path / "out"
    done = bench("--synthetic", "--tasks", "13_Softmax,level2/1_Linear_ReLU", "--budget", "8", "--seeds", "2",
                 "--strategies", STRATEGIES, "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = report(out)
    assert data["kind"] == "synthetic" and list(data["tasks"]) == ["level1/13_Softmax", "level2/1_Linear_ReLU"]
    for task in data["tasks"].values():
        runs = task["runs"]
        assert sorted((r["strategy"], r["seed"]) for r in runs) == sorted(
            (s, seed) for s in ("policy", "policy-uniform", "random", "hill") for seed in (0, 1))
        for run in runs:
            curve = run["curve"]
            assert run["trials"][0]["mode"] == "seed" and run["trials"][0]["knobs"] == task["seed_knobs"]
            assert len(curve) == 8 or run["stop"].startswith("stuck")
            assert all(later >= earlier for earlier, later in zip(curve, curve[1:], strict=False))  # never falls
            assert len({t["program"] for t in run["trials"]}) == len(curve)  # each evaluation a new program
        summary = task["summary"]
        assert summary["best_any"] == max(r["curve"][-1] for r in runs)
        for row in summary["strategies"].values():
            assert row["min_best"] <= row["median_best"] <= row["max_best"] <= summary["best_any"]
            assert 1 <= row["median_to_target"] <= 9 and 0 <= row["reached"] <= row["runs"] == 2
    totals = data["totals"]
    assert totals["evaluations"] == sum(len(r["curve"]) for t in data["tasks"].values() for r in t["runs"])
    assert totals["distinct"] == totals["measured"] < totals["evaluations"]  # shared, never scored twice

    table = (out / "search_efficiency.md").read_text()
    assert table.startswith("**SYNTHETIC LANDSCAPE")
    assert table.count("| level1/13_Softmax |") == 4 and table.count("| level2/1_Linear_ReLU |") == 4
    assert "evaluations to 90% of the task's best" in table
    assert (out / "search_efficiency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert done.stdout.rstrip().endswith("search_efficiency.md")  # the table, then where things went

    bench("--synthetic", "--tasks", "13_Softmax,level2/1_Linear_ReLU", "--budget", "8", "--seeds", "2",
                  "--strategies", STRATEGIES, "--out", str(tmp_path / "again"))
    assert report(tmp_path / "again")["tasks"] == data["tasks"]  # the same seeds choose the same programs


@pytest.mark.slow
def test_measured_on_the_interpreter_then_replayed_with_more_seeds_from_the_cache(tmp_path):
    out = tmp_path / "gpu"
    done = bench("--backend", "triton-interpret", "--tasks", "13_Softmax", "--budget", "3", "--seeds", "1",
                 "--strategies", "policy;random;hill", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "distinct programs to measure" in done.stdout.splitlines()[0]  # the estimate comes first
    data = report(out)
    cache = json.loads((out / "search_cache.json").read_text())
    programs = cache["tasks"]["level1/13_Softmax"]["programs"]
    assert cache["header"]["backend"] == "triton-interpret" and cache["header"]["repetitions"] == 30
    assert len(programs) == data["totals"]["measured"] == data["totals"]["distinct"]
    assert all(p["status"] == "ok" and p["speedup"] is None for p in programs.values())  # correct, not timed
    assert all(run["curve"] == [None] * 3 and run["stop"] == "budget" for run in data["tasks"]["level1/13_Softmax"]["runs"])
    assert "No timed results" in (out / "search_efficiency.md").read_text()

    replayed = bench("--replay", str(out / "search_cache.json"), "--tasks", "13_Softmax", "--budget", "3",
                     "--seeds", "2", "--strategies", "policy;random;hill", "--out", str(tmp_path / "cpu"))
    assert replayed.returncode == 0, replayed.stderr
    replay = report(tmp_path / "cpu")
    assert replay["kind"] == "replay" and replay["totals"]["measured"] == 0
    runs = {(r["strategy"], r["seed"]): r for r in replay["tasks"]["level1/13_Softmax"]["runs"]}
    for run in data["tasks"]["level1/13_Softmax"]["runs"]:  # seed 0 replays exactly what was measured
        assert runs[(run["strategy"], 0)]["trials"] == run["trials"]
    second = [run for (_, seed), run in runs.items() if seed == 1]  # as far as the cache lets it, and says so
    assert {run["stop"] for run in second} <= {"budget", "a program not in the cache (it would need the GPU)"}
    assert any(len(run["curve"]) < 3 for run in second)
    assert "cut short" in (tmp_path / "cpu" / "search_efficiency.md").read_text()


def test_a_gpu_time_cap_of_zero_measures_nothing_and_says_so(tmp_path):
    done = bench("--backend", "triton-interpret", "--tasks", "13_Softmax", "--budget", "3", "--seeds", "1",
                 "--gpu-seconds", "0", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    runs = report(tmp_path)["tasks"]["level1/13_Softmax"]["runs"]
    assert {run["stop"] for run in runs} == {"the task's share of --gpu-seconds was spent"}
    assert all(run["curve"] == [] for run in runs)
    assert "cut short" in (tmp_path / "search_efficiency.md").read_text()


def test_misuse_is_refused_before_anything_is_measured(tmp_path):
    unknown = bench("--synthetic", "--strategies", "policy;annealing", "--out", str(tmp_path))
    assert unknown.returncode != 0 and "unknown strategy 'annealing'" in unknown.stderr
    bad = bench("--synthetic", "--strategies", 'tight={"islandz": 1}', "--out", str(tmp_path))
    assert bad.returncode != 0 and "tight" in bad.stderr and "islandz" in bad.stderr
    missing = bench("--synthetic", "--tasks", "13_Softmaxx", "--out", str(tmp_path))
    assert missing.returncode != 0 and "no shipped task '13_Softmaxx'" in missing.stderr

    cache = tmp_path / "search_cache.json"
    cache.write_text(json.dumps({"header": {"format": 1, "backend": "triton-interpret", "scale": 0.005,
                                            "repetitions": 100, "trials": 3}, "tasks": {}}))
    other = bench("--backend", "triton-interpret", "--tasks", "13_Softmax", "--out", str(tmp_path))
    assert other.returncode != 0 and "repetitions 100, not 30" in other.stderr
    assert json.loads(cache.read_text())["header"]["repetitions"] == 100  # left as it was
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    replay = bench("--replay", str(broken), "--out", str(tmp_path / "r"))
    assert replay.returncode != 0 and "not a readable search cache" in replay.stderr
