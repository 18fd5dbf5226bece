"""Reports of a run and of a leaderboard: self-contained HTML rendered by headless Chromium (plots, the
lineage tree with its diffs, a screenshot that is not blank), Markdown with PNG plots, CSV and JSON, and
the `report`, `show` and `runs` commands. The runs carry measured speedups, so they are written through
the archive API (tests/kernelsmith/timed_runs.py): the CPU interpreter times nothing."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from typer.testing import CliRunner

import archive
from kernelsmith.cli import app
from kernelsmith.report import write_leaderboard_report, write_run_report
from tests.kernelsmith.chromium import assert_not_blank, count_colour, embedded_images, render
from tests.kernelsmith.timed_runs import DEVICE, timed_leaderboard, timed_run

ORANGE = (0xE8, 0x9A, 0x1C)  # the compile_error bar and dot: only the plots draw this colour in a timed report


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, archive.Archive]]:
    path = tmp_path_factory.mktemp("timed") / "archive.db"
    with archive.open(path) as db:
        timed_run(db)
        timed_leaderboard(db)
        yield path, db


def test_a_run_report_is_one_self_contained_page_with_plots_and_the_lineage(store, tmp_path: Path):
    path, db = store
    files = write_run_report(db, 1, tmp_path / "out")
    page = files.html.read_text()
    assert not re.search(r"<(script|link)\b|src=\"(?!data:)|url\(", page), "the page must not load anything"
    images = embedded_images(page)
    assert len(images) == 3  # best speedup over evaluations, status breakdown, lineage tree
    for image in images:
        assert image.width > 300 and image.height > 100
        assert ImageStat.Stat(image.convert("L")).stddev[0] > 10  # something is drawn on it

    dom, screenshot = render(files.html, tmp_path, height=4200)
    steps = re.findall(r'<li class="step[^"]*" data-program="(\d+)"', dom)
    assert steps == ["1", "3", "5"]  # seed -> BLOCK_SIZE 2048 -> 8 warps, the best
    lineage = dom[dom.index('id="lineage-steps"'):]
    assert "1.25x" in lineage and "1.60x" in lineage and "+0.35x over its parent" in lineage
    text = re.sub(r"<[^>]+>", "", lineage)
    assert "-BLOCK_SIZE = 1024" in text and "+BLOCK_SIZE = 2048" in text and "+NUM_WARPS = 8" in text
    assert "Best kernel #5: correct, 1.60x over eager PyTorch, 1.28x over torch.compile." in dom
    assert 'id="best-source"' in dom
    assert_not_blank(screenshot)
    assert count_colour(screenshot, ORANGE) > 1000, "the plots are not on screen"


def test_a_run_report_has_markdown_with_png_plots_beside_it(store, tmp_path: Path):
    _, db = store
    files = write_run_report(db, 1, tmp_path)
    notes = files.markdown.read_text()
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", notes):
        assert Image.open(tmp_path / name).format == "PNG"
    assert "| 3 | #5 | params | 2 | correct, 1.60x | NUM_WARPS 4 -> 8 |" in notes
    assert "```diff" in notes and "+NUM_WARPS = 8" in notes
    assert "```python" in notes  # the best kernel


def test_a_leaderboard_report_gives_fast_p_over_both_baselines_in_every_format(store, tmp_path: Path):
    _, db = store
    files = write_leaderboard_report(db, "timed", tmp_path / "board", markdown_path=tmp_path / "docs" / "board.md")
    document = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    assert document["measured"] and document["compile_measured"] and document["devices"] == [DEVICE]
    overall = document["metrics"]["eager"][-1]
    assert overall["scope"] == "all" and (overall["tasks"], overall["correct"], overall["timed"]) == (5, 4, 4)
    assert overall["fast_p"] == pytest.approx({"0": 0.8, "1": 0.4, "1.5": 0.2, "2": 0.2})
    assert overall["geomean_speedup"] == pytest.approx((2.5 * 1.5 * 0.5 * 1.0) ** 0.25)
    assert overall["mean_speedup"] == pytest.approx(1.375)
    compile_overall = document["metrics"]["compile"][-1]  # 2.0 (a tie at 2x), 1.2, 0.4, 0.8
    assert compile_overall["fast_p"] == pytest.approx({"0": 0.8, "1": 0.4, "1.5": 0.2, "2": 0.0})
    level1, level2 = document["metrics"]["eager"][:2]
    assert (level1["scope"], level1["fast_p"]["1"]) == ("level 1", pytest.approx(2 / 3))
    assert (level2["scope"], level2["fast_p"]["1"]) == ("level 2", 0.0)

    rows = list(csv.DictReader(io.StringIO((tmp_path / "board" / "leaderboard.csv").read_text())))
    assert [row["task"] for row in rows][:3] == ["level1/1_ReLU", "level1/3_Sigmoid", "level1/4_Tanh"]
    assert rows[2]["correct"] == "0" and rows[2]["speedup"] == "" and rows[2]["best_status"] == "incorrect"
    assert float(rows[0]["speedup"]) == 2.5 and float(rows[0]["speedup_compile"]) == 2.0

    notes = (tmp_path / "docs" / "board.md").read_text()
    assert "## fast_p over eager PyTorch" in notes and "## fast_p over torch.compile" in notes
    assert "| all | 5 | 4 | 80.0% | 40.0% | 20.0% | 20.0% | 1.17x (4) | 1.38x (4) |" in notes
    assert f"Device: {DEVICE}" in notes
    assert "![best speedup per task](board.png)" in notes and (tmp_path / "docs" / "board.png").is_file()

    dom, screenshot = render(files.html, tmp_path, height=2400)
    assert 'id="fast-p-eager"' in dom and 'id="fast-p-compile"' in dom and 'id="distribution"' in dom
    assert len(embedded_images(dom)) == 1
    assert dom.count("<tr>") >= 5 + 3 + 3  # five tasks, two fast_p tables of three rows
    assert_not_blank(screenshot)


def test_report_show_and_runs_commands(store, tmp_path: Path):
    path, _ = store
    runner = CliRunner()
    shown = runner.invoke(app, ["show", "1", "--db", str(path), "--json"])
    assert shown.exit_code == 0, shown.output
    facts = json.loads(shown.stdout)
    assert facts["best"]["program_id"] == 5 and facts["best"]["speedup"] == pytest.approx(1.6)
    assert [step["program_id"] for step in facts["lineage"]] == [1, 3, 5]
    assert facts["outcomes"] == {"ok": 5, "incorrect": 1, "failed mutation": 1, "compile_error": 1}
    assert facts["best_so_far"][-1] == pytest.approx(1.6) and facts["reused"] == 1

    text = runner.invoke(app, ["show", "1", "--db", str(path)], env={"COLUMNS": "160"})
    assert text.exit_code == 0 and "lineage of the best program" in text.stdout
    assert "NUM_WARPS 4 -> 8" in text.stdout and "1.60x" in text.stdout

    listing = runner.invoke(app, ["runs", "--db", str(path)], env={"COLUMNS": "160"})
    assert listing.exit_code == 0
    assert "level1/1_ReLU" in listing.stdout and "1.60x" in listing.stdout and "timed" in listing.stdout

    written = runner.invoke(app, ["report", "1", "--db", str(path), "--out", str(tmp_path)])
    assert written.exit_code == 0 and (tmp_path / "run-1.html").is_file()
    board = runner.invoke(app, ["report", "timed", "--db", str(path), "--out", str(tmp_path / "b")])
    assert board.exit_code == 0 and (tmp_path / "b" / "leaderboard.html").is_file()

    missing = runner.invoke(app, ["report", "99", "--db", str(path)])
    assert missing.exit_code == 2 and "no run 99" in missing.stderr
    unknown = runner.invoke(app, ["report", "nosuch", "--db", str(path)])
    assert unknown.exit_code == 2 and "no leaderboard 'nosuch'" in unknown.stderr and "timed" in unknown.stderr
    nowhere = runner.invoke(app, ["runs", "--db", str(tmp_path / "absent.db")])
    assert nowhere.exit_code == 2 and "there is no archive" in nowhere.stderr
    assert not (tmp_path / "absent.db").exists()
