"""Reports as files: one self-contained HTML page (inline CSS, plots as embedded PNGs) and a Markdown page
with its PNG plots beside it, for a run or a leaderboard; a leaderboard also gets CSV and JSON."""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer

from archive import Archive, Leaderboard, Run
from evaluators.protocol import Status
from kernelsmith import __version__, plots
from kernelsmith.history import RunHistory, Step, read_history
from kernelsmith.standings import (
    CORRECTNESS_ONLY,
    FAST_P_MEANING,
    Standings,
    csv_text,
    describe,
    markdown,
    metric_cells,
    metric_headers,
    metric_title,
    read_standings,
    standings_json,
    task_cells,
    task_headers,
)

_CODE = HtmlFormatter(noclasses=True, style="default", nobackground=True)


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    others: list[Path] = field(default_factory=list)  # plots, CSV, JSON


# -- a run -------------------------------------------------------------------------------------


def write_run_report(archive: Archive, run: Run | int, out_dir: Path) -> ReportFiles:
    """run-<id>.html (self-contained), run-<id>.md and its PNG plots, in `out_dir`."""
    history = read_history(archive, run)
    stem = f"run-{history.run.id}"
    images = {
        "speedup": plots.png(plots.speedup_over_evaluations(history)),
        "statuses": plots.png(plots.status_breakdown(history.outcomes)),
        "lineage": plots.png(plots.lineage_tree(history)),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    others = []
    for name, data in images.items():
        path = out_dir / f"{stem}-{name}.png"
        path.write_bytes(data)
        others.append(path)
    page = out_dir / f"{stem}.html"
    page.write_text(run_page(history, images), encoding="utf-8")
    notes = out_dir / f"{stem}.md"
    notes.write_text(run_markdown(history, {name: f"{stem}-{name}.png" for name in images}), encoding="utf-8")
    return ReportFiles(page, notes, others)


def run_page(history: RunHistory, images: dict[str, bytes]) -> str:
    run = history.run
    body = [
        f"<h1>Run {run.id}: {_e(run.task_name)}</h1>",
        f'<p class="lead">{_e(verdict(history))}</p>',
    ]
    if not history.measured:
        body.append('<p class="warn">Speed was not measured: the CPU interpreter checks correctness only, so '
                    "there are no speedups, and correct programs are not ranked by speed.</p>")
    body += [_facts(run_facts(history)),
             '<section id="progress"><h2>Best speedup over evaluations</h2>',
             _figure(images["speedup"], "best speedup over evaluations",
                     "Each step is a new best correct program; dots are every correct result."
                     if history.measured else "Correct programs found, result by result."),
             "</section>",
             '<section id="statuses"><h2>Status breakdown</h2>',
             _figure(images["statuses"], "status breakdown", "Each program counted once, by its latest result."),
             _table(["outcome", "programs"], [[name, str(count)] for name, count in history.outcomes.most_common()],
                    numeric={1}),
             "</section>",
             '<section id="lineage"><h2>Lineage of the best program</h2>',
             _figure(images["lineage"], "lineage tree",
                     "Every program by generation, linked to its parent; the best program's lineage in bold."),
             _lineage(history),
             "</section>",
             '<section id="best-kernel"><h2>Best kernel</h2>', _best_kernel(history), "</section>"]
    return _page(f"kernelsmith run {run.id}: {run.task_name}", "\n".join(body))


def run_markdown(history: RunHistory, images: dict[str, str]) -> str:
    run = history.run
    out = [f"# Run {run.id}: {run.task_name}", "", verdict(history), ""]
    out += [f"- **{name}**: {value}" for name, value in run_facts(history).items()]
    out += ["", "## Best speedup over evaluations", "", f"![best speedup over evaluations]({images['speedup']})",
            "", "## Status breakdown", "", f"![status breakdown]({images['statuses']})", "",
            "## Lineage of the best program", "", f"![lineage tree]({images['lineage']})", "",
            "| step | program | operator | generation | result | what changed |", "| ---: | ---: | --- | ---: | --- | --- |"]
    out += [f"| {i} | #{s.program.id} | {s.program.operator} | {s.program.generation} | {step_result(s, history)} | "
            f"{s.description.replace('|', '/')} |" for i, s in enumerate(history.lineage, start=1)]
    for step in history.lineage[1:]:
        out += ["", f"### #{step.program.id}: {step.description}", "", "```diff", step.diff.rstrip("\n"), "```"]
    best = history.best_correct
    if best is not None:
        out += ["", "## Best kernel", "", "```python", best[0].source.rstrip("\n"), "```"]
    return "\n".join(out) + "\n"


def verdict(history: RunHistory) -> str:
    best = history.best
    if best is None:
        return "No program has a result yet."
    program, evaluation = best
    if evaluation.status != Status.ok:
        return f"No correct kernel: the best program, #{program.id}, got as far as {evaluation.status.value}."
    if evaluation.speedup is not None:
        text = f"Best kernel #{program.id}: correct, {evaluation.speedup:.2f}x over eager PyTorch"
        if evaluation.speedup_compile is not None:
            text += f", {evaluation.speedup_compile:.2f}x over torch.compile"
        return text + "."
    return f"Best kernel #{program.id}: correct (speed not measured)."


def run_facts(history: RunHistory) -> dict[str, str]:
    run = history.run
    settings = run.config.get("settings", {})
    models = [m.get("name") for m in settings.get("models", []) if isinstance(m, dict)]
    budget = settings.get("budgets", {}).get("max_evals")
    return {
        "status": run.status.value,
        "backend": f"{history.backend or 'unknown'} on {history.device or 'unknown device'}",
        "search": (f"LLM operators ({', '.join(models)}) and parameter tuning" if models
                   else "parameter tuning (no model)") + (f"; budget {budget} evaluations" if budget else ""),
        "programs": f"{len(history.programs)} stored; {len(history.results)} results "
                    f"({sum(r.reused for r in history.results)} reused from identical programs)",
        "lineage": f"{len(history.lineage)} programs from the first to the best",
        "LLM": f"{history.llm_calls} calls, {history.tokens:,} tokens, ${history.cost:.4f}",
        "started": run.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        "last change": run.updated_at.strftime("%Y-%m-%d %H:%M UTC"),
    }


def step_result(step: Step, history: RunHistory) -> str:
    evaluation = step.evaluation
    if evaluation is None:
        return "no result"
    if evaluation.status != Status.ok:
        return evaluation.status.value
    if evaluation.speedup is None:
        return "correct" if not history.measured else "correct, not timed"
    return f"correct, {evaluation.speedup:.2f}x"


def _lineage(history: RunHistory) -> str:
    if not history.lineage:
        return '<p class="note">No program has a result yet.</p>'
    items = []
    previous: float | None = None
    for number, step in enumerate(history.lineage, start=1):
        evaluation = step.evaluation
        ok = evaluation is not None and evaluation.status == Status.ok
        speedup = evaluation.speedup if ok and evaluation is not None else None
        change = ""
        if speedup is not None and previous is not None:
            change = f" ({speedup - previous:+.2f}x over its parent)"
        previous = speedup if speedup is not None else previous
        result = f'<span class="{"ok" if ok else "bad"}">{_e(step_result(step, history))}</span>{_e(change)}'
        head = (f'<div class="step-head">{number}. #{step.program.id} · {_e(step.program.operator)}'
                f"{' · ' + _e(step.program.model) if step.program.model else ''} · generation {step.program.generation}"
                f' · {result} <span class="what">{_e(step.description)}</span></div>')
        if step.diff:
            added = sum(1 for line in step.diff.splitlines() if line.startswith("+") and not line.startswith("+++"))
            removed = sum(1 for line in step.diff.splitlines() if line.startswith("-") and not line.startswith("---"))
            body = (f"<details open><summary>diff from #{step.program.parent_id} (+{added} −{removed})</summary>"
                    f'<div class="code">{highlight(step.diff, DiffLexer(), _CODE)}</div></details>')
        elif step.program.parent_id is None:
            body = '<p class="note">The run\'s first program.</p>'
        else:
            body = f'<p class="note">Same source as #{step.program.parent_id}.</p>'
        items.append(f'<li class="step{"" if ok else " failed"}" data-program="{step.program.id}">{head}{body}</li>')
    return '<ol class="lineage" id="lineage-steps">\n' + "\n".join(items) + "\n</ol>"


def _best_kernel(history: RunHistory) -> str:
    best = history.best_correct
    if best is None:
        return '<p class="note">No correct kernel was found.</p>'
    return (f'<p class="note">Program #{best[0].id}.</p>'
            f'<div class="code" id="best-source">{highlight(best[0].source, PythonLexer(), _CODE)}</div>')


# -- a leaderboard -----------------------------------------------------------------------------


def write_leaderboard_report(
    archive: Archive, leaderboard: Leaderboard | str, out_dir: Path, markdown_path: Path | None = None
) -> ReportFiles:
    """leaderboard.html, .md, .csv and .json and the speedup plot in `out_dir`; with `markdown_path`,
    the Markdown there too, with its plot beside it (<stem>.png) so that both can be committed."""
    standings = read_standings(archive, leaderboard)
    image = plots.png(plots.speedup_distribution(standings))
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = out_dir / "speedups.png"
    plot.write_bytes(image)
    page = out_dir / "leaderboard.html"
    page.write_text(leaderboard_page(standings, image), encoding="utf-8")
    notes = out_dir / "leaderboard.md"
    notes.write_text(markdown(standings, plot.name), encoding="utf-8")
    table = out_dir / "leaderboard.csv"
    table.write_text(csv_text(standings), encoding="utf-8")
    document = out_dir / "leaderboard.json"
    document.write_text(json.dumps(standings_json(standings), indent=2) + "\n", encoding="utf-8")
    others = [plot, table, document]
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        beside = markdown_path.with_suffix(".png")
        beside.write_bytes(image)
        markdown_path.write_text(markdown(standings, os.path.relpath(beside, markdown_path.parent)), encoding="utf-8")
        others += [markdown_path, beside]
    return ReportFiles(page, notes, others)


def leaderboard_page(standings: Standings, image: bytes) -> str:
    board = standings.leaderboard
    body = [f"<h1>Leaderboard {_e(board.name)}</h1>"]
    for line in describe(standings):
        warning = "not measured" in line or "do not compare" in line
        body.append(f'<p class="{"warn" if warning else "lead"}">{_e(line)}</p>')
    headers = metric_headers(standings)
    for baseline in standings.baselines():
        rows = [metric_cells(row) for row in standings.metrics(baseline)]
        body += [f'<section id="fast-p-{baseline}"><h2>{_e(metric_title(standings, baseline))}</h2>',
                 _table(headers, rows, numeric=set(range(1, len(headers))), total_last=True),
                 "</section>"]
    body += [f'<p class="note">{_e(FAST_P_MEANING if standings.measured else CORRECTNESS_ONLY)}</p>',
             '<section id="distribution"><h2>Speedup distribution</h2>',
             _figure(image, "speedup distribution",
                     "Each task's best correct speedup over eager PyTorch, fastest first; x marks a task without a "
                     "correct kernel." if standings.measured else "Share of each level's tasks with a correct kernel."),
             "</section>",
             '<section id="tasks"><h2>Best kernel per task</h2>',
             _table(task_headers(standings), [task_cells(row, standings) for row in standings.rows], numeric={2, 3}),
             "</section>"]
    return _page(f"kernelsmith leaderboard {board.name}", "\n".join(body))


# -- HTML pieces --------------------------------------------------------------------------------


def _page(title: str, body: str) -> str:
    template = Template(resources.files("kernelsmith").joinpath("report_templates", "page.html").read_text("utf-8"))
    return template.substitute(title=_e(title), body=body, version=__version__,
                               written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _facts(facts: dict[str, str]) -> str:
    items = "".join(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in facts.items())
    return f'<dl class="facts">{items}</dl>'


def _figure(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _table(headers: list[str], rows: list[list[str]], numeric: frozenset[int] | set[int] = frozenset(),
           total_last: bool = False) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    lines = []
    for index, row in enumerate(rows):
        total = ' class="total"' if total_last and index == len(rows) - 1 else ""
        cells = "".join(f'<td{" class=num" if i in numeric else ""}>{_e(c)}</td>' for i, c in enumerate(row))
        lines.append(f"<tr{total}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"

