"""Configuration: a YAML file, environment variables and CLI flags, merged once.

Precedence is flags > environment > file > defaults, and every effective value remembers where
it came from (`kernelsmith config show`). Keys are documented in the example kernelsmith.yaml.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evaluators.protocol import Backend
from kernelsmith.llm import LLMCall, LLMClient, ModelSpec, Price, RetryPolicy

DEFAULT_FILE = "kernelsmith.yaml"  # looked for in the working directory when no file is named

# environment variable -> key; OPENAI_API_KEY is not here: it is read when a model's key is needed
ENVIRONMENT = {
    "OPENAI_BASE_URL": "llm.base_url",
    "KERNELSMITH_MODEL": "model",
    "KERNELSMITH_DB": "db",
    "KERNELSMITH_BACKEND": "backend",
    "KERNELSMITH_SEED": "seed",
    "KERNELSMITH_EVALUATORS": "evaluators",  # comma-separated URLs
    "KERNELSMITH_MAX_EVALS": "budgets.max_evals",
    "KERNELSMITH_MAX_COST": "budgets.max_cost",
    "KERNELSMITH_WALL_TIME": "budgets.wall_time_s",
}
# CLI flag -> key, for the commands that take them (`evolve`, `config show`)
FLAGS = {
    "--model": "model",
    "--base-url": "llm.base_url",
    "--db": "db",
    "--backend": "backend",
    "--seed": "seed",
    "--evaluator": "evaluators",
    "--max-evals": "budgets.max_evals",
    "--max-cost": "budgets.max_cost",
    "--wall-time": "budgets.wall_time_s",
    "--target-speedup": "budgets.target_speedup",
    "--stagnation": "budgets.stagnation",
    "--scale": "scale",
    "--trials": "evaluation.trials",
    "--repetitions": "evaluation.repetitions",
    "--proposals": "proposals",
}


class ConfigError(ValueError):
    """A configuration that cannot be used, naming the file and line (or variable, or flag)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriceConfig(_Section):
    input: float = Field(0.0, ge=0, description="US dollars per million prompt tokens")
    output: float = Field(0.0, ge=0, description="US dollars per million completion tokens")


class ModelConfig(_Section):
    name: str = Field(..., min_length=1, description="the model id sent to the endpoint")
    base_url: str | None = Field(None, description="endpoint; default llm.base_url")
    api_key_env: str | None = Field(None, description="variable holding the key; default llm.api_key_env")
    weight: float = Field(1.0, ge=0, description="share of LLM calls, relative to the other models")
    price: PriceConfig = Field(default_factory=PriceConfig)
    timeout_s: float | None = Field(None, gt=0, description="per-call timeout; default llm.timeout_s")
    max_tokens: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)


class LLMConfig(_Section):
    base_url: str | None = Field(None, description="default endpoint (None: the openai package's default)")
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(300.0, gt=0)
    attempts: int = Field(4, ge=1, le=20, description="tries per call, the first included")
    backoff_s: float = Field(1.0, ge=0)
    max_backoff_s: float = Field(60.0, ge=0)
    max_concurrency: int = Field(4, ge=1, description="LLM calls in flight at once")


class Budgets(_Section):
    """The run stops at the first budget spent; None means unlimited."""

    max_evals: int | None = Field(100, ge=1)
    max_llm_calls: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=0)
    max_cost: float | None = Field(None, ge=0, description="US dollars")
    wall_time_s: float | None = Field(None, gt=0)
    target_speedup: float | None = Field(None, gt=0)
    stagnation: int | None = Field(None, ge=1, description="evaluations without a better program")
    idle: int | None = Field(
        50, ge=1, description="children in a row that needed no evaluation (repeats, failed mutations)"
    )


class OperatorWeights(_Section):
    first_kernel: float = Field(1.0, ge=0)
    rewrite: float = Field(1.0, ge=0)
    diff: float = Field(2.0, ge=0)
    fix: float = Field(1.0, ge=0)
    params: float = Field(1.0, ge=0)


class EvaluationSettings(_Section):
    """What every candidate of a run is put through (see evaluators.protocol.EvalRequest)."""

    trials: int = Field(5, ge=1, le=100, description="correctness trials, each on fresh inputs")
    repetitions: int = Field(100, ge=1, description="timed repetitions (GPU backends)")
    compile_baseline: bool = Field(False, description="also time torch.compile, for speedup_compile")
    time_limit_s: float = Field(300.0, gt=0, le=3600, description="seconds one candidate may take")
    warm: int = Field(1, ge=0, description="workers started ahead per slot by the embedded evaluator")
    cpu_workers: int | None = Field(
        None, ge=1, description="embedded evaluator's interpreter slots without a GPU; None: one per core, up to 4"
    )


class PromptSettings(_Section):
    max_error_chars: int = Field(2000, ge=200, description="error excerpt shown to the model")


class Settings(_Section):
    models: list[ModelConfig] = Field(default_factory=list, description="empty: parameter tuning only")
    llm: LLMConfig = Field(default_factory=LLMConfig)
    budgets: Budgets = Field(default_factory=Budgets)
    backend: Backend = Backend.auto
    evaluators: list[str] = Field(default_factory=list, description="empty: evaluate here, in-process")
    db: str | None = Field(None, description="archive path or SQLAlchemy URL; None: the archive's default")
    seed: int = 0
    scale: float | None = Field(
        None, gt=0, le=1, description="task size scale; None: CPU_SCALE on triton-interpret, 1 on GPUs"
    )
    proposals: int | None = Field(
        None, ge=1, description="children made at once; None: evaluator slots plus LLM concurrency"
    )
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    operators: OperatorWeights = Field(default_factory=OperatorWeights)
    policy: dict[str, Any] = Field(default_factory=dict, description="passed to the archive's selection policy")
    prompts: PromptSettings = Field(default_factory=PromptSettings)

    def model_specs(self, env: Mapping[str, str] | None = None) -> list[ModelSpec]:
        """The configured models with endpoints and keys resolved; a missing key is an error."""
        env = os.environ if env is None else env
        specs = []
        for model in self.models:
            key_env = model.api_key_env or self.llm.api_key_env
            key = env.get(key_env)
            if not key:
                raise ConfigError(
                    f"model {model.name!r}: environment variable {key_env} holds no API key",
                    f"set {key_env} (a local server without authentication accepts any value, e.g. EMPTY)",
                )
            specs.append(ModelSpec(
                name=model.name,
                base_url=model.base_url or self.llm.base_url,
                api_key=key,
                weight=model.weight,
                price=Price(model.price.input, model.price.output),
                timeout_s=model.timeout_s or self.llm.timeout_s,
                max_tokens=model.max_tokens,
                temperature=model.temperature,
            ))
        return specs

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.llm.attempts, self.llm.backoff_s, self.llm.max_backoff_s)

    def llm_client(
        self, on_call: Callable[[LLMCall], None] | None = None, env: Mapping[str, str] | None = None
    ) -> LLMClient | None:
        """The client for the configured models, or None when there are none (parameter tuning only)."""
        if not self.models:
            return None
        return LLMClient(self.model_specs(env), seed=self.seed, retry=self.retry_policy(),
                         max_concurrency=self.llm.max_concurrency, on_call=on_call)


@dataclass
class LoadedSettings:
    settings: Settings
    sources: dict[str, str]  # dotted key -> "default", "file PATH:LINE", "env NAME" or "flag --NAME"
    path: Path | None

    def source(self, key: str) -> str:
        """Where a dotted key's value came from (the nearest recorded ancestor, else default)."""
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            found = self.sources.get(".".join(parts[:end]))
            if found:
                return found
        return "default"


def load_settings(
    path: Path | str | None = None,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    base: tuple[str, Mapping[str, Any]] | None = None,
) -> LoadedSettings:
    """Merge defaults, the file, the environment and `flags` (keyed by flag, e.g. "--max-evals";
    None values are flags not given) into validated Settings.

    `base` is (source, settings dump) taking the file's place, e.g. ("run 3", run.config["settings"]):
    a resumed run keeps its own settings, with only the environment and flags over them.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = None if base is not None else _find_file(path, env, cwd or Path.cwd())
    if base is not None:
        data = copy.deepcopy(dict(base[1]))
        sources.update({key: base[0] for key in data})
    if path is not None:
        file_data, lines = read_file(path)
        data = file_data
        shown = _shown(path, cwd or Path.cwd())
        sources.update({key: f"file {shown}:{line}" for key, line in lines.items()})
    for name, key in ENVIRONMENT.items():
        if env.get(name):
            value: Any = env[name]
            if key == "evaluators":
                value = [url.strip() for url in value.split(",") if url.strip()]
            _put(data, sources, key, value, f"env {name}")
    for flag, value in (flags or {}).items():
        if flag not in FLAGS:
            raise KeyError(f"{flag} is not a configuration flag (known: {', '.join(FLAGS)})")
        if value is not None and value != []:
            _put(data, sources, FLAGS[flag], value, f"flag {flag}")
    _apply_model_choice(data, sources)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_explain(error, sources), "the example kernelsmith.yaml documents every key") from None
    return LoadedSettings(settings, sources, path)


def _find_file(path: Path | str | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    if path is None and env.get("KERNELSMITH_CONFIG"):
        path = env["KERNELSMITH_CONFIG"]
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"configuration file {path} does not exist")
        return path
    default = cwd / DEFAULT_FILE
    return default if default.is_file() else None


def _shown(path: Path, cwd: Path) -> str:
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def read_file(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The file's mapping and the line of every key in it; YAML errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read configuration file {path}: {error}") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{where}: not valid YAML: {problem}",
                          "check the indentation, colons and brackets at and just before that line") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the configuration must be a mapping of keys to values, not {type(data).__name__}")
    lines: dict[str, int] = {}
    _key_lines(node, "", lines)
    return data, lines


def _key_lines(node: yaml.Node | None, prefix: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            _key_lines(value_node, key + ".", lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = f"{prefix}{index}"
            lines[key] = item.start_mark.line + 1
            _key_lines(item, key + ".", lines)


def _put(data: dict[str, Any], sources: dict[str, str], key: str, value: Any, source: str) -> None:
    """Set a dotted key, replacing whatever the lower layers said under it."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    for existing in [k for k in sources if k == key or k.startswith(key + ".")]:
        del sources[existing]
    sources[key] = source


def _apply_model_choice(data: dict[str, Any], sources: dict[str, str]) -> None:
    """`model` (flag or env) narrows the models to that one, keeping its settings from the file;
    `--base-url` then points every model at that endpoint."""
    name = data.pop("model", None)
    if name is not None:
        source = sources.pop("model")
        models = data.get("models") or []
        listed = [i for i, m in enumerate(models) if isinstance(m, dict) and m.get("name") == name][:1]
        data["models"] = [models[i] for i in listed] or [{"name": name}]
        kept = {}
        for key in [k for k in sources if k == "models" or k.startswith("models.")]:
            value = sources.pop(key)
            if listed and key.startswith(f"models.{listed[0]}."):  # its settings keep their file lines
                kept["models.0." + key.split(".", 2)[2]] = value
        sources.update(kept)
        sources["models.0.name"] = source
    if sources.get("llm.base_url", "").startswith("flag "):
        for index, model in enumerate(data.get("models") or []):
            if isinstance(model, dict) and model.get("base_url"):
                model["base_url"] = None
                sources[f"models.{index}.base_url"] = sources["llm.base_url"]


def _explain(error: ValidationError, sources: dict[str, str]) -> str:
    """One line per problem: where the value came from, the key, what is wrong, what was meant."""
    lines = []
    loaded = LoadedSettings(Settings(), sources, None)
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"])
        where = loaded.source(key)
        where = "" if where == "default" else where.replace("file ", "") + ": "
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            known = _known_keys(problem["loc"][:-1])
            close = difflib.get_close_matches(str(problem["loc"][-1]), known, n=1)
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(known)}")
        lines.append(f"{where}{key}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[str(part)].annotation
        inner = getattr(annotation, "__args__", (annotation,))
        nested = [t for t in inner if isinstance(t, type) and issubclass(t, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)
