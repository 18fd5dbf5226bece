"""LLM access: OpenAI-compatible chat endpoints, weighted model choice, retries and accounting.

Every call, whether it succeeded or not, yields one `LLMCall` record that is handed to the
`on_call` callback (the loop stores it in the archive); API failures never raise.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import openai


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float = 0.0
    output: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


@dataclass(frozen=True)
class ModelSpec:
    """One model behind one endpoint, as the client uses it (keys already resolved)."""

    name: str
    base_url: str | None = None
    api_key: str | None = None
    weight: float = 1.0
    price: Price = field(default_factory=Price)
    timeout_s: float = 300.0
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on 429, 5xx, timeouts and lost connections; exponential backoff with jitter."""

    attempts: int = 4  # in all, the first try included
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 120.0  # a Retry-After beyond this is capped, not obeyed blindly

    def backoff(self, retry: int, rng: random.Random) -> float:
        base = min(self.max_backoff_s, self.backoff_s * 2**retry)
        return base * (0.5 + rng.random() / 2)


@dataclass
class LLMCall:
    """One chat completion as it happened: what was asked, what came back, what it cost."""

    model: str
    messages: list[dict[str, str]]
    response: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    error: str | None = None
    attempts: int = 0
    finish_reason: str | None = None
    purpose: str | None = None  # the operator that asked, e.g. "diff"
    started_at: float = 0.0  # unix time

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class LLMUsage:
    """Running totals, read by budgets and the progress display."""

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, call: LLMCall) -> None:
        self.calls += 1
        self.failed_calls += 0 if call.ok else 1
        self.prompt_tokens += call.prompt_tokens
        self.completion_tokens += call.completion_tokens
        self.cost += call.cost


class LLMClient:
    """Chat completions over several weighted models; `complete` returns a record, never raises."""

    def __init__(
        self,
        models: Sequence[ModelSpec],
        *,
        seed: int = 0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 4,
        on_call: Callable[[LLMCall], None] | None = None,
    ) -> None:
        if not models:
            raise ValueError("an LLM client needs at least one model")
        if any(model.weight < 0 for model in models) or sum(model.weight for model in models) <= 0:
            raise ValueError("model weights must be >= 0 and at least one must be > 0")
        self.models = list(models)
        self.retry = retry or RetryPolicy()
        self.usage = LLMUsage()
        self.on_call = on_call
        # model choice is part of a run's reproducible path; backoff jitter is not, so it has its own
        self._choice_rng = random.Random(seed)
        self._jitter_rng = random.Random(seed + 1)
        self._slots = asyncio.Semaphore(max_concurrency)
        self._clients = {model: _open(model) for model in self.models}

    def pick_model(self) -> ModelSpec:
        """Draw a model by weight from the seeded RNG."""
        return self._choice_rng.choices(self.models, weights=[m.weight for m in self.models])[0]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()

    async def complete(
        self, messages: list[dict[str, str]], *, model: str | None = None, purpose: str | None = None
    ) -> LLMCall:
        """Ask one model (by name, or drawn by weight) and return the call's record."""
        spec = self._named(model) if model else self.pick_model()
        call = LLMCall(model=spec.name, messages=messages, purpose=purpose, started_at=time.time())
        started = time.monotonic()
        async with self._slots:
            await self._attempt_all(spec, call)
        call.latency_s = time.monotonic() - started
        self.usage.add(call)
        if self.on_call is not None:
            self.on_call(call)
        return call

    def _named(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise ValueError(f"model {name!r} is not configured (configured: {', '.join(m.name for m in self.models)})")

    async def _attempt_all(self, spec: ModelSpec, call: LLMCall) -> None:
        kwargs: dict[str, object] = {}
        if spec.max_tokens is not None:
            kwargs["max_tokens"] = spec.max_tokens
        if spec.temperature is not None:
            kwargs["temperature"] = spec.temperature
        errors: list[str] = []
        for attempt in range(self.retry.attempts):
            call.attempts = attempt + 1
            try:
                completion = await self._clients[spec].chat.completions.create(
                    model=spec.name, messages=call.messages, **kwargs
                )
            except openai.APIError as error:
                wait, reason = self._retry_wait(error, attempt)
                errors.append(reason)
                if wait is None or attempt + 1 == self.retry.attempts:
                    call.error = _summarize(errors, call.attempts)
                    return
                await asyncio.sleep(wait)
                continue
            _take(completion, spec, call)
            return

    def _retry_wait(self, error: openai.APIError, attempt: int) -> tuple[float | None, str]:
        """Seconds to wait before the next try (None: do not retry) and a one-line reason."""
        if isinstance(error, openai.APITimeoutError):
            return self.retry.backoff(attempt, self._jitter_rng), "timed out"
        if isinstance(error, openai.APIConnectionError):
            return self.retry.backoff(attempt, self._jitter_rng), f"connection failed: {error}"
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            reason = f"HTTP {status}: {_message(error)}"
            if status in (408, 429) or status >= 500:
                after = retry_after(error.response.headers)
                if after is not None:
                    return min(after, self.retry.max_retry_after_s), reason + f" (Retry-After {after:g} s)"
                return self.retry.backoff(attempt, self._jitter_rng), reason
            return None, reason  # 400, 401, 404...: asking again gives the same answer
        return None, f"{type(error).__name__}: {error}"


def _open(model: ModelSpec) -> openai.AsyncOpenAI:
    try:
        # the SDK's own retries are off: ours honour Retry-After and leave one record per call
        return openai.AsyncOpenAI(base_url=model.base_url, api_key=model.api_key, timeout=model.timeout_s, max_retries=0)
    except openai.OpenAIError as error:
        raise ValueError(f"model {model.name!r}: {error}") from error


def _take(completion: object, spec: ModelSpec, call: LLMCall) -> None:
    """Fill the record from a completion: text, usage and cost, or why it holds no text."""
    choices = getattr(completion, "choices", None) or []
    usage = getattr(completion, "usage", None)
    call.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    call.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    call.cost = spec.price.cost(call.prompt_tokens, call.completion_tokens)
    if not choices:
        call.error = "the reply held no choices"
        return
    choice = choices[0]
    call.finish_reason = choice.finish_reason
    call.response = choice.message.content if choice.message else None
    if not call.response:
        call.error = f"the reply was empty (finish reason: {choice.finish_reason})"


def retry_after(headers: object) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), if present."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    milliseconds = get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None  # unreadable: fall back to our own backoff


def _message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(error)[:300]


def _summarize(errors: list[str], attempts: int) -> str:
    if attempts == 1:
        return errors[-1]
    return f"gave up after {attempts} attempts: " + "; ".join(errors)
