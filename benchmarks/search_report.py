"""The tables and the plot of benchmarks/search_efficiency.py, from its report: per task and strategy the
final best speedup over seeds and the evaluations needed to reach 90% of the best any strategy found."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from pathlib import Path

TARGET = 0.9  # "reached": a best speedup of at least 90% of the best any strategy found for the task


def padded(run: dict, budget: int) -> list[float | None]:
    """A stuck run keeps its best to the budget (it would find nothing new); a cut-off run ends where it did."""
    curve = run["curve"]
    if run["stop"].startswith("stuck") and curve:
        return curve + [curve[-1]] * (budget - len(curve))
    return curve


def summarize(runs: list[dict], strategies: list[str], budget: int) -> dict:
    """Per strategy: final bests over seeds, and evaluations to reach 90% of the task's best (budget+1: never)."""
    finals = [curve[-1] for run in runs if (curve := padded(run, budget)) and curve[-1] is not None]
    best_any = max(finals, default=None)
    rows = {}
    for name in strategies:
        mine = [run for run in runs if run["strategy"] == name]
        curves = [padded(run, budget) for run in mine]
        ends = [curve[-1] for curve in curves if curve and curve[-1] is not None]
        reach = [next((n for n, best in enumerate(curve, 1) if best is not None and best >= TARGET * best_any), None)
                 for curve in curves] if best_any else []
        rows[name] = {
            "median_best": statistics.median(ends) if ends else None,
            "min_best": min(ends, default=None),
            "max_best": max(ends, default=None),
            "median_to_target": statistics.median(n or budget + 1 for n in reach) if reach else None,
            "reached": sum(n is not None for n in reach),
            "runs": len(mine),
            "cut_short": sum(len(curve) < budget for curve in curves),
            "median_gpu_s": statistics.median(run["gpu_s"] for run in mine) if mine else None,
        }
    return {"best_any": best_any, "target": TARGET * best_any if best_any else None, "strategies": rows}


def fmt(value: float | None, suffix: str = "x") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def source_words(report: dict) -> str:
    return {"synthetic": "a SYNTHETIC landscape (made-up speedups, not measurements)",
            "replay": f"recorded measurements on {report['device']}",
            "measured": str(report["device"])}[report["kind"]]


def markdown(report: dict) -> str:
    settings = report["settings"]
    budget = settings["budget"]
    lines = []
    if report["kind"] == "synthetic":
        lines += ["**SYNTHETIC LANDSCAPE: made-up speedups from a known function of the knobs, not measurements. "
                  "For debugging the strategies only.**", ""]
    lines += [f"Parameter-only search from each task's seed kernel on {source_words(report)}: {budget} evaluations "
              f"per run (the seed's included), {settings['seeds']} seeds per strategy; {settings['repetitions']} "
              f"timed repetitions and {settings['trials']} correctness trials per evaluation.", "",
              f"| task | strategy | best speedup, median | min - max over seeds | evaluations to {TARGET:.0%} of "
              "the task's best, median | runs that reached it | seconds measuring per run, median |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, task in report["tasks"].items():
        for name, row in task["summary"]["strategies"].items():
            to = row["median_to_target"]
            to_text = "-" if to is None else (f"not reached (>{budget})" if to > budget else f"{to:g}")
            cut = f" ({row['cut_short']} cut short)" if row["cut_short"] else ""
            lines.append(f"| {label} | {name} | {fmt(row['median_best'])} | {fmt(row['min_best'])} - "
                         f"{fmt(row['max_best'])} | {to_text} | {row['reached']}/{row['runs']}{cut} | "
                         f"{fmt(row['median_gpu_s'], '')} |")
    totals = report["totals"]
    made = {"synthetic": f"{totals['measured']} scored on the landscape",
            "replay": f"all read from {report['settings']['replay']}",
            "measured": f"{totals['measured']} measured in this invocation ({totals['measure_s']:.0f} s)"}[report["kind"]]
    lines += ["", f"The task's best is the best speedup any strategy found for it with any seed. A run that never "
              f"reached {TARGET:.0%} of it counts as {budget + 1} evaluations in the median. A stuck run (every "
              "proposal repeated its own programs) keeps its best to the budget; a run cut short (a program the "
              "cache lacked, or the GPU time cap) is counted to where it stopped.", "", overall(report), "",
              f"{totals['evaluations']} evaluations in all (every run's, its seed's included) of {totals['distinct']} "
              f"distinct programs, each measured once: {made}."]
    return "\n".join(lines) + "\n"


def overall(report: dict) -> str:
    """Per strategy across tasks: the mean share of the task's best it reached, and where it got there first."""
    names = list(report["strategies"])
    budget = report["settings"]["budget"]
    shares: dict[str, list[float]] = {name: [] for name in names}
    firsts: Counter[str] = Counter()
    for task in report["tasks"].values():
        summary = task["summary"]
        if not summary["best_any"]:
            continue
        rows = summary["strategies"]
        for name in names:
            if rows[name]["median_best"] is not None:
                shares[name].append(rows[name]["median_best"] / summary["best_any"])
        fastest = min(rows[name]["median_to_target"] for name in names)
        if fastest <= budget:
            firsts.update(name for name in names if rows[name]["median_to_target"] == fastest)
    if not any(shares.values()):
        return "No timed results (the CPU interpreter times nothing): the curves show structure only."
    parts = [f"{name} {statistics.mean(shares[name]):.0%}, first to {TARGET:.0%} on {firsts[name]}"
             for name in names if shares[name]]
    return (f"Across {len(report['tasks'])} tasks, the median best as a share of the task's best, and the tasks "
            f"where the strategy's median reached {TARGET:.0%} first (ties count for each): " + "; ".join(parts) + ".")


def plot(report: dict, path: Path) -> str:
    """Best speedup against evaluations, one panel per task: the median over seeds and a min-max band."""
    try:
        import matplotlib
    except ImportError:
        return "no plot: matplotlib is not installed here (--replay the cache where it is)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget, tasks = report["settings"]["budget"], report["tasks"]
    columns = min(4, len(tasks))
    rows = math.ceil(len(tasks) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    colours = dict(zip(report["strategies"], plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for ax, (label, task) in zip(axes.flat, tasks.items(), strict=False):
        for name in report["strategies"]:
            curves = [padded(run, budget) for run in task["runs"] if run["strategy"] == name]
            # the median and band only while every seed's run has a figure: past a run cut short, a
            # median of the others would fall and rise with who is left, not with the search
            common = min((len(curve) for curve in curves), default=0)
            xs, middle, low, high = [], [], [], []
            for n in range(1, common + 1):
                values = [curve[n - 1] for curve in curves if curve[n - 1] is not None]
                if values:
                    xs.append(n)
                    middle.append(statistics.median(values))
                    low.append(min(values))
                    high.append(max(values))
            ax.plot(xs, middle, label=name, color=colours[name])
            ax.fill_between(xs, low, high, alpha=0.15, color=colours[name])
            for curve in curves:  # what the longer runs did after that, each on its own, dotted
                tail = [(n, value) for n, value in enumerate(curve, 1) if n >= max(common, 1) and value is not None]
                if len(tail) > 1:
                    ax.plot([n for n, _ in tail], [v for _, v in tail], color=colours[name], linestyle=":", linewidth=1)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("best speedup over eager")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    figure.suptitle(f"Best speedup vs evaluations on {source_words(report)}: median over "
                    f"{report['settings']['seeds']} seeds, band min to max; dotted: single runs past the "
                    "shortest", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"wrote {path}"
