"""Configuration: precedence flags > env > file > defaults, sources, errors with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaluators.protocol import Backend
from kernelsmith.cli import app
from kernelsmith.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]

FILE = """\
models:
  - name: gpt-big
    weight: 3
    price: {input: 2.5, output: 10}
  - name: local-coder
    base_url: http://10.0.0.5:8000/v1
    api_key_env: VLLM_KEY
budgets:
  max_evals: 50
seed: 3
backend: triton-interpret
"""


def _write(tmp_path: Path, text: str, name: str = "kernelsmith.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_apply_without_a_file_and_say_so(tmp_path):
    loaded = load_settings(env={}, cwd=tmp_path)
    assert loaded.path is None and loaded.settings == Settings()
    assert loaded.settings.models == [] and loaded.settings.budgets.max_evals == 100
    assert loaded.source("budgets.max_evals") == "default"


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path):
    _write(tmp_path, FILE)
    env = {"KERNELSMITH_MAX_EVALS": "70", "KERNELSMITH_SEED": "4", "KERNELSMITH_EVALUATORS": "http://a:1, http://b:2"}

    loaded = load_settings(flags={"--max-evals": 90, "--db": None}, env=env, cwd=tmp_path)

    settings = loaded.settings
    assert (settings.budgets.max_evals, settings.seed, settings.backend) == (90, 4, Backend.triton_interpret)
    assert settings.evaluators == ["http://a:1", "http://b:2"] and settings.db is None
    assert loaded.source("budgets.max_evals") == "flag --max-evals"
    assert loaded.source("seed") == "env KERNELSMITH_SEED"
    assert loaded.source("backend") == "file kernelsmith.yaml:11"
    assert loaded.source("models.0.price.output") == "file kernelsmith.yaml:4"
    assert loaded.source("llm.timeout_s") == "default"


def test_endpoints_and_keys_resolve_per_model(tmp_path):
    _write(tmp_path, FILE)
    env = {"OPENAI_BASE_URL": "http://proxy:4000/v1", "OPENAI_API_KEY": "sk-main", "VLLM_KEY": "vllm-key"}

    big, local = load_settings(env=env, cwd=tmp_path).settings.model_specs(env)

    assert (big.name, big.base_url, big.api_key, big.weight) == ("gpt-big", "http://proxy:4000/v1", "sk-main", 3)
    assert big.price.cost(1_000_000, 100_000) == pytest.approx(2.5 + 1.0)
    assert (local.base_url, local.api_key) == ("http://10.0.0.5:8000/v1", "vllm-key")

    flagged = load_settings(flags={"--base-url": "http://127.0.0.1:9/v1"}, env=env, cwd=tmp_path)
    assert {spec.base_url for spec in flagged.settings.model_specs(env)} == {"http://127.0.0.1:9/v1"}

    client = flagged.settings.llm_client(env=env)
    assert [m.name for m in client.models] == ["gpt-big", "local-coder"] and client.retry.attempts == 4
    assert load_settings(env={}, cwd=tmp_path / "nowhere").settings.llm_client(env={}) is None


def test_a_missing_api_key_names_the_variable_to_set(tmp_path):
    _write(tmp_path, FILE)
    settings = load_settings(env={}, cwd=tmp_path).settings
    with pytest.raises(ConfigError, match="model 'gpt-big': environment variable OPENAI_API_KEY holds no API key"):
        settings.model_specs({})


def test_model_flag_keeps_only_that_model_with_its_file_settings(tmp_path):
    _write(tmp_path, FILE)

    listed = load_settings(flags={"--model": "gpt-big"}, env={}, cwd=tmp_path)
    (model,) = listed.settings.models
    assert model.name == "gpt-big" and model.price.input == 2.5
    assert listed.source("models.0.name") == "flag --model"
    assert listed.source("models.0.price.input") == "file kernelsmith.yaml:4"

    new = load_settings(env={"KERNELSMITH_MODEL": "other"}, cwd=tmp_path)
    assert [(m.name, m.weight, m.price.input) for m in new.settings.models] == [("other", 1.0, 0.0)]
    assert new.source("models.0.name") == "env KERNELSMITH_MODEL"


def test_broken_yaml_names_the_file_and_line(tmp_path):
    path = _write(tmp_path, "budgets:\n  max_evals: 5\n seed: 3\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3:2: not valid YAML: "):
        load_settings(path, env={})


def test_bad_values_and_unknown_keys_name_the_line_and_suggest_the_key(tmp_path):
    _write(tmp_path, "models:\n  - name: a\n    wieght: 2\nbudgets:\n  max_evals: lots\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env={}, cwd=tmp_path)
    message = str(caught.value)
    assert "kernelsmith.yaml:3: models.0.wieght: unknown key (did you mean 'weight'?)" in message
    assert "kernelsmith.yaml:5: budgets.max_evals: Input should be a valid integer" in message

    with pytest.raises(ConfigError, match="env KERNELSMITH_SEED: seed: Input should be a valid integer"):
        load_settings(env={"KERNELSMITH_SEED": "abc"}, cwd=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="configuration file .*missing.yaml does not exist"):
        load_settings(env={"KERNELSMITH_CONFIG": str(tmp_path / "missing.yaml")})


def test_the_shipped_example_is_valid_and_changes_nothing():
    loaded = load_settings(REPO / "kernelsmith.yaml", env={})
    assert loaded.settings == Settings()
    assert loaded.source("operators.diff").startswith("file ")


def test_config_show_prints_values_sources_and_masks_secrets(tmp_path, monkeypatch):
    _write(tmp_path, FILE.replace("http://10.0.0.5:8000/v1", "http://user:hunter2@10.0.0.5:8000/v1"))
    monkeypatch.chdir(tmp_path)
    env = {"OPENAI_API_KEY": "sk-proj-abcdefghijklmnopqrstuvwxyz", "VLLM_KEY": ""}

    result = CliRunner().invoke(app, ["config", "show", "--json", "--max-evals", "7"], env=env)

    assert result.exit_code == 0, result.output
    assert "abcdefghijklmnop" not in result.output and "hunter2" not in result.output
    values = json.loads(result.output)["values"]
    assert values["budgets.max_evals"] == {"value": 7, "source": "flag --max-evals"}
    assert values["models.0.api_key"] == {"value": "sk-...wxyz", "source": "env OPENAI_API_KEY"}
    assert values["models.1.api_key"] == {"value": "(not set)", "source": "env VLLM_KEY"}
    assert values["models.1.base_url"]["value"] == "http://***@10.0.0.5:8000/v1"

    table = CliRunner().invoke(app, ["config", "show"], env=env)
    assert table.exit_code == 0 and "kernelsmith.yaml:9" in table.output


def test_config_show_reports_a_broken_file_as_misuse(tmp_path):
    path = _write(tmp_path, "seed: [1,\n")
    result = CliRunner().invoke(app, ["config", "show", "--config", str(path)])
    squeezed = "".join(result.output.split())  # the console wraps long lines, even inside a path
    assert result.exit_code == 2 and f"error:{path}:2:1:notvalidYAML" in squeezed
