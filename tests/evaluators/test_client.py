"""Clients of the evaluator service against real servers: retries, failover across a pool, local."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest

from evaluators.client import (
    AsyncEvaluatorClient,
    EvaluationRefused,
    EvaluatorBadReply,
    EvaluatorClient,
    EvaluatorPool,
    EvaluatorUnavailable,
    LocalEvaluator,
    RetryPolicy,
)
from evaluators.protocol import Status
from tests.evaluators.servers import (
    BROKEN_REFERENCE,
    FAILING_REFERENCE,
    FORGOTTEN,
    PROXY_PAGE,
    QUEUED,
    RELU_CANDIDATE,
    TOKEN,
    ScriptedEvaluator,
    relu_request,
)


@pytest.fixture(scope="module")
def server(servers):
    return servers("--cpu-workers", "1")


def test_sync_client_evaluates_and_reports_verdicts(server):
    with EvaluatorClient(server.url, token=TOKEN) as client:
        assert client.health()
        assert client.info().lane("auto").slots == 1
        assert client.evaluate(relu_request("sync")).status == Status.ok

        broken = client.evaluate(relu_request("syntax", candidate=RELU_CANDIDATE + "\ndef oops(:\n"))
        assert broken.status == Status.compile_error and "syntax" in broken.message

        with pytest.raises(EvaluationRefused) as refused:
            client.evaluate(relu_request(reference=BROKEN_REFERENCE))
        assert refused.value.status == 422 and "get_inputs" in refused.value.message

    with EvaluatorClient(server.url, token="a-wrong-token-of-some-length") as stranger:
        with pytest.raises(EvaluationRefused) as refused:
            stranger.evaluate(relu_request("sync"))
        assert refused.value.status == 401


def test_infra_errors_are_resubmitted_then_answered(server):
    def infra_errors() -> int:
        metrics = httpx.get(f"{server.url}/metrics", headers=server.headers()).text
        line = next((x for x in metrics.splitlines() if 'status="infra_error"' in x), "x 0")
        return int(float(line.rsplit(" ", 1)[1]))

    before = infra_errors()

    async def run():
        async with AsyncEvaluatorClient(server.url, token=TOKEN,
                                        retry=RetryPolicy(infra_retries=2, backoff_s=0.01)) as client:
            return await client.evaluate(relu_request("infra", reference=FAILING_REFERENCE))

    result = asyncio.run(run())
    assert result.status == Status.infra_error and "broken task" in result.message
    assert infra_errors() - before == 3  # the first try and two resubmissions, none deduplicated


def test_client_retries_until_the_service_answers(servers):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    with EvaluatorClient(url, token=TOKEN, retry=RetryPolicy(attempts=2, backoff_s=0.05)) as client:
        started = time.monotonic()
        with pytest.raises(EvaluatorUnavailable, match="after 2 tries"):
            client.evaluate(relu_request("nobody"))
        assert time.monotonic() - started < 5

    starter = threading.Timer(0.5, lambda: servers("--cpu-workers", "1", "--port", str(port)))
    starter.start()
    patient = RetryPolicy(attempts=200, backoff_s=0.1, max_backoff_s=0.2)
    try:
        with EvaluatorClient(url, token=TOKEN, retry=patient) as client:
            assert client.evaluate(relu_request("late")).status == Status.ok
    finally:
        starter.join()


def test_a_job_the_service_keeps_losing_is_resubmitted_a_few_times_then_an_infra_error():
    retry = RetryPolicy(backoff_s=0.01, lost_retries=3)

    async def run_async(url):
        async with AsyncEvaluatorClient(url, token=TOKEN, retry=retry) as client:
            return await client.evaluate(relu_request("lost"), timeout_s=10)

    with ScriptedEvaluator(submit=QUEUED, wait=FORGOTTEN) as forgetful:  # accepts every job, then 404s on it
        with EvaluatorClient(forgetful.url, token=TOKEN, retry=retry) as client:
            lost = client.evaluate(relu_request("lost"), timeout_s=10)
        assert forgetful.asked("POST /v1/evaluations") == 4  # the first submit and three more
        lost_async = asyncio.run(run_async(forgetful.url))
        assert forgetful.asked("POST /v1/evaluations") == 8
    for result in (lost, lost_async):
        assert result.status == Status.infra_error
        assert f"{forgetful.url} lost the evaluation of relu 4 times" in result.message


def test_pool_spreads_work_and_fails_over_when_an_evaluator_dies(server, servers):
    doomed = servers("--cpu-workers", "1")
    requests = [relu_request(f"failover-{n}") for n in range(4)]

    async def run():
        async with EvaluatorPool([doomed.url, server.url], token=TOKEN, down_s=60) as pool:
            assert await pool.capacity() == 2

            async def kill_when_busy():
                async with httpx.AsyncClient(headers=server.headers()) as http:
                    while (await http.get(f"{doomed.url}/v1/info")).json()["capacity"]["triton-interpret"]["busy"] == 0:
                        await asyncio.sleep(0.05)
                doomed.kill()  # SIGKILL mid-evaluation: its requests must be answered elsewhere

            killer = asyncio.create_task(kill_when_busy())
            results = await asyncio.gather(*(pool.evaluate(request) for request in requests))
            await killer
            return results, pool.status(), await pool.capacity()

    results, status, capacity_after = asyncio.run(run())
    assert [result.status for result in results] == [Status.ok] * len(requests)
    assert [entry["up"] for entry in status] == [False, True]
    assert capacity_after == 1
    survivor_jobs = httpx.get(f"{server.url}/v1/evaluations", headers=server.headers(), params={"limit": 50}).json()
    digests = {job["request_digest"] for job in survivor_jobs["evaluations"] if job["status"] == "ok"}
    assert {request.digest() for request in requests} <= digests  # every one ended on the survivor


def test_pool_fails_over_from_an_endpoint_that_answers_with_a_page_instead_of_json(server):
    async def run(urls):
        async with EvaluatorPool(urls, token=TOKEN) as pool:
            return await pool.evaluate(relu_request("proxied"), timeout_s=60), pool.status()

    # behind a proxy that answers 200 with its sign-in page; it reports more free slots, so it is tried first
    with ScriptedEvaluator(submit=PROXY_PAGE, slots=8) as proxied:
        result, status = asyncio.run(run([proxied.url, server.url]))
        assert result.status == Status.ok and proxied.asked("POST /v1/evaluations") == 1
        assert status[0]["up"] is False and "something other than an evaluator's reply" in status[0]["last_error"]

        alone, _ = asyncio.run(run([proxied.url]))
        assert alone.status == Status.infra_error
        assert f"{proxied.url}/v1/evaluations answered HTTP 200" in alone.message and "sign in" in alone.message

        with EvaluatorClient(proxied.url, token=TOKEN) as client, pytest.raises(EvaluatorBadReply, match="HTTP 200"):
            client.evaluate(relu_request("proxied"))


def test_pool_refuses_what_no_evaluator_can_do(server):
    async def run(pool, request):
        async with pool:
            return await pool.evaluate(request)

    with pytest.raises(EvaluationRefused, match="no evaluator in the pool serves backend 'triton-nvidia'"):
        asyncio.run(run(EvaluatorPool([server.url], token=TOKEN), relu_request(backend="triton-nvidia")))
    with pytest.raises(EvaluationRefused, match="the bearer token is wrong"):
        asyncio.run(run(EvaluatorPool([server.url], token="a-wrong-token-of-some-length"), relu_request("x")))


def test_local_evaluator_needs_no_http_and_uses_its_warm_pool():
    async def run():
        async with LocalEvaluator(cpu_workers=1, warm=1) as local:
            assert await local.capacity() == 1
            results = [await local.evaluate(relu_request(f"local-{n}")) for n in range(2)]
            with pytest.raises(EvaluationRefused, match="get_inputs"):
                await local.evaluate(relu_request(reference=BROKEN_REFERENCE))
            return results, local.scheduler.warm.stats

    results, stats = asyncio.run(run())
    assert [result.status for result in results] == [Status.ok, Status.ok]
    assert stats.hits == 2 and stats.misses == 0
