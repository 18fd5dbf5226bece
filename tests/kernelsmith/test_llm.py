"""The LLM client against a real OpenAI-compatible server on loopback, through the openai package."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from kernelsmith.llm import LLMCall, LLMClient, ModelSpec, Price, RetryPolicy, retry_after
from tests.fake_openai import FakeOpenAI

ASK = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "write a kernel"}]
FAST_RETRY = RetryPolicy(attempts=3, backoff_s=0.05, max_backoff_s=0.2)


def _client(server, records: list[LLMCall] | None = None, retry: RetryPolicy = FAST_RETRY, **spec) -> LLMClient:
    model = ModelSpec(name=spec.pop("name", "coder"), base_url=server.base_url, api_key="sk-test", **spec)
    return LLMClient([model], seed=1, retry=retry, on_call=records.append if records is not None else None)


def _run(client: LLMClient, messages=ASK, **kwargs) -> LLMCall:
    async def go() -> LLMCall:
        try:
            return await client.complete(messages, **kwargs)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_reply_is_recorded_with_tokens_cost_and_the_exact_prompt(fake_openai):
    fake_openai.reply("```python\nclass ModelNew: ...\n```", prompt_tokens=1000, completion_tokens=500)
    records: list[LLMCall] = []
    client = _client(fake_openai, records, price=Price(input=2.0, output=8.0))

    call = _run(client, purpose="first_kernel")

    assert call.ok and call.response.startswith("```python")
    assert (call.prompt_tokens, call.completion_tokens) == (1000, 500)
    assert call.cost == pytest.approx((1000 * 2.0 + 500 * 8.0) / 1e6)
    assert call.attempts == 1 and call.latency_s > 0 and call.purpose == "first_kernel"
    assert records == [call]  # the loop's callback saw it
    (request,) = fake_openai.requests
    assert request.model == "coder" and request.messages == ASK
    assert request.headers["authorization"] == "Bearer sk-test"
    assert client.usage.calls == 1 and client.usage.tokens == 1500


def test_429_waits_for_retry_after_then_succeeds(fake_openai):
    fake_openai.error(429, retry_after=0.4, message="slow down").reply("done")
    records: list[LLMCall] = []

    call = _run(_client(fake_openai, records))

    assert call.ok and call.response == "done" and call.attempts == 2
    first, second = fake_openai.requests
    assert second.at - first.at >= 0.4  # the server's Retry-After, not our 0.05 s backoff
    assert len(records) == 1


def test_server_errors_are_retried_with_backoff(fake_openai):
    fake_openai.error(500).error(503).reply("third time lucky")

    call = _run(_client(fake_openai))

    assert call.ok and call.attempts == 3 and len(fake_openai.requests) == 3


def test_a_timeout_is_retried_then_recorded_as_the_calls_error(fake_openai):
    fake_openai.stall(3).stall(3)
    records: list[LLMCall] = []
    client = _client(fake_openai, records, retry=RetryPolicy(attempts=2, backoff_s=0.05), timeout_s=0.3)

    started = time.monotonic()
    call = _run(client)

    assert time.monotonic() - started < 2.5  # gave up at the client's timeout, not the server's stall
    assert not call.ok and call.response is None
    assert call.error == "gave up after 2 attempts: timed out; timed out"
    assert len(fake_openai.requests) == 2 and records == [call]
    assert client.usage.failed_calls == 1 and client.usage.tokens == 0


def test_a_client_error_is_not_retried(fake_openai):
    fake_openai.error(400, message="context length exceeded").reply("never sent")

    call = _run(_client(fake_openai))

    assert call.attempts == 1 and fake_openai.pending == 1
    assert call.error == "HTTP 400: context length exceeded"


def test_an_empty_reply_is_an_error_with_its_finish_reason(fake_openai):
    fake_openai.reply("", completion_tokens=4096, finish_reason="length")

    call = _run(_client(fake_openai, price=Price(output=10.0)))

    assert call.error == "the reply was empty (finish reason: length)"
    assert call.completion_tokens == 4096 and call.cost > 0  # paid for, so counted


def test_models_are_drawn_by_weight_from_a_seed_each_at_its_own_endpoint(fake_openai):
    with FakeOpenAI() as other:
        for _ in range(40):  # enough for two runs of 20 calls
            fake_openai.reply("from big")
            other.reply("from small")
        models = [
            ModelSpec("big", base_url=fake_openai.base_url, api_key="k1", weight=3),
            ModelSpec("small", base_url=other.base_url, api_key="k2", weight=1),
        ]

        async def draw(seed: int) -> list[str]:
            client = LLMClient(models, seed=seed, retry=FAST_RETRY)
            calls = [await client.complete(ASK) for _ in range(20)]
            await client.aclose()
            assert all(call.ok and call.response == f"from {call.model}" for call in calls)
            return [call.model for call in calls]

        first, again = asyncio.run(draw(7)), asyncio.run(draw(7))
        assert first == again  # same seed, same models in the same order
        assert 10 <= first.count("big") <= 19 and "small" in first
        assert {r.model for r in fake_openai.requests} == {"big"} and {r.model for r in other.requests} == {"small"}
        assert {r.headers["authorization"] for r in other.requests} == {"Bearer k2"}

    client = LLMClient(models, seed=3)
    share = sum(client.pick_model().name == "big" for _ in range(2000)) / 2000
    assert share == pytest.approx(0.75, abs=0.04)


def test_retry_after_reads_seconds_milliseconds_and_http_dates():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after({"retry-after": future}) <= 31
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_bad_model_weights_are_refused():
    with pytest.raises(ValueError, match="weights"):
        LLMClient([ModelSpec("a", api_key="k", weight=0)])
