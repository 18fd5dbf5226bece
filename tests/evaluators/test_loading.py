"""Loading modules from source: errors point at the line that caused them."""

from __future__ import annotations

import pytest

from evaluators.loading import SourceProblem, TaskError, check_reference_source, flatten_outputs, import_file


def test_import_error_is_located_in_the_file(tmp_path):
    path = tmp_path / "candidate.py"
    path.write_text("x = 1\ny = undefined_name + 1\n")
    with pytest.raises(SourceProblem) as raised:
        import_file(path, "located_candidate")
    assert raised.value.line == 2
    assert "NameError" in raised.value.message
    assert "undefined_name" in str(raised.value)


def test_system_exit_at_import_is_a_source_problem(tmp_path):
    path = tmp_path / "exits.py"
    path.write_text("raise SystemExit(0)\n")
    with pytest.raises(SourceProblem, match="SystemExit"):
        import_file(path, "exits_at_import")


def test_reference_structure_is_checked_before_anything_runs():
    with pytest.raises(TaskError, match="does not parse"):
        check_reference_source("def broken(:\n")
    check_reference_source("class Model: pass\ndef get_inputs(): pass\ndef get_init_inputs(): pass\n")


def test_outputs_are_flattened_in_order():
    assert flatten_outputs((1, [2, (3,)], 4)) == [1, 2, 3, 4]
    assert flatten_outputs(5) == [5]
