"""The evaluator REST service, through a real uvicorn server on loopback (CPU interpreter backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.evaluators.servers import RELU_CANDIDATE, RELU_REFERENCE, REPO, SLOW_CANDIDATE, relu_request


@pytest.fixture(scope="module")
def server(servers):
    return servers("--cpu-workers", "1", "--max-queue", "2", "--max-request-bytes", "200000",
                   "--max-source-bytes", "50000")


def submit(server, request, token="default"):
    return httpx.post(f"{server.url}/v1/evaluations", content=request.model_dump_json(),
                      headers={"Content-Type": "application/json", **server.headers(token)}, timeout=10)


def get(server, path, token="default", **params):
    return httpx.get(f"{server.url}{path}", headers=server.headers(token), params=params, timeout=70)


def cancel(server, job_id):
    return httpx.delete(f"{server.url}/v1/evaluations/{job_id}", headers=server.headers(), timeout=10)


def wait_until(predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_every_endpoint_but_health_needs_the_token(server):
    assert httpx.get(f"{server.url}/v1/health").json() == {"status": "ok"}
    for path in ("/v1/info", "/metrics", "/v1/evaluations", "/openapi.json"):
        missing = get(server, path, token=None)
        assert missing.status_code == 401, path
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in missing.json()["message"]
        wrong = get(server, path, token="not-the-token-at-all")
        assert wrong.status_code == 401
        assert wrong.json() == {"error": "unauthorized", "message": "the bearer token is wrong"}
    basic = httpx.get(f"{server.url}/v1/info", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401 and "Bearer" in basic.json()["message"]
    assert submit(server, _tiny_request(), token=None).status_code == 401
    spec = get(server, "/openapi.json").json()
    assert {"/v1/evaluations", "/v1/evaluations/{job_id}/wait", "/v1/info", "/metrics"} <= set(spec["paths"])


def _tiny_request():
    from evaluators.protocol import EvalRequest

    return EvalRequest(task_name="t", reference_source="x = 1", candidate_source="y = 2")


def test_bad_requests_are_answered_with_what_was_wrong(server):
    headers = {"Content-Type": "application/json", **server.headers()}
    url = f"{server.url}/v1/evaluations"

    malformed = httpx.post(url, content=b'{"task_name": "relu",', headers=headers)
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "malformed_json" and "not valid JSON" in malformed.json()["message"]

    body = json.loads(relu_request().model_dump_json())
    del body["candidate_source"]
    body["correctness"]["trials"] = 0
    invalid = httpx.post(url, json=body, headers=server.headers())
    assert invalid.status_code == 422
    message = invalid.json()["message"]
    assert "candidate_source: Field required" in message and "correctness.trials" in message

    body = json.loads(relu_request().model_dump_json())
    body["protocol_version"] = "99"
    assert "protocol version '99' is not supported" in httpx.post(url, json=body, headers=server.headers()).text

    huge = httpx.post(url, content=b"{" + b" " * 300_000 + b"}", headers=headers)
    assert huge.status_code == 413
    assert "at most 200000 bytes" in huge.json()["message"]

    chunked = httpx.post(url, content=iter([b"{", b" " * 150_000, b" " * 150_000, b"}"]), headers=headers)
    assert chunked.status_code == 413

    big_source = relu_request(candidate=RELU_CANDIDATE + "#" * 60_000)
    too_big = submit(server, big_source)
    assert too_big.status_code == 413
    assert too_big.json()["message"].startswith("candidate_source is ")

    broken = submit(server, relu_request(reference=RELU_REFERENCE.replace("def get_inputs", "def inputs")))
    assert broken.status_code == 422
    assert "reference_source" in broken.json()["message"] and "get_inputs" in broken.json()["message"]

    gpu = submit(server, relu_request(backend="triton-nvidia"))
    assert gpu.status_code == 422
    assert "'triton-nvidia' is not served here" in gpu.json()["message"]

    unknown = get(server, "/v1/evaluations/0123456789abcdef")
    assert unknown.status_code == 404 and "submit the request again" in unknown.json()["message"]
    negative = get(server, "/v1/evaluations/0123456789abcdef/wait", timeout=-1)
    assert negative.status_code == 422 and "timeout" in negative.json()["message"]
    assert get(server, "/v2/nothing").json()["error"] == "not_found"


def test_the_same_request_is_evaluated_once(server):
    before = _evaluations(server)
    request = relu_request("idempotent")
    first = submit(server, request)
    second = submit(server, request)
    assert first.status_code == second.status_code == 202
    assert first.headers["Location"] == f"/v1/evaluations/{first.json()['id']}"
    assert second.json()["id"] == first.json()["id"]
    assert (first.json()["deduplicated"], second.json()["deduplicated"]) == (False, True)

    job_id = first.json()["id"]
    done = get(server, f"/v1/evaluations/{job_id}/wait", timeout=60).json()
    assert done["state"] == "done" and done["status"] == "ok", done
    assert done["result"]["status"] == "ok" and done["result"]["request_digest"] == request.digest()

    again = submit(server, request).json()
    assert again["id"] == job_id and again["state"] == "done" and again["result"]["status"] == "ok"
    assert _evaluations(server) - before == 1
    listed = get(server, "/v1/evaluations", limit=5).json()["evaluations"]
    assert listed[0]["id"] == job_id and listed[0]["status"] == "ok" and listed[0]["result"] is None

    info = get(server, "/v1/info").json()
    assert info["backends"] == ["triton-interpret"]
    assert info["capacity"]["triton-interpret"]["slots"] == 1 and info["versions"]["torch"]
    metrics = get(server, "/metrics").text
    assert 'kernelsmith_queue_depth{backend="triton-interpret"} 0' in metrics
    assert 'kernelsmith_latency_seconds_bucket{le="+Inf"}' in metrics


def test_a_full_queue_answers_429_and_cancel_frees_the_slot(server):
    running = submit(server, relu_request("slow-a", candidate=SLOW_CANDIDATE)).json()
    wait_until(lambda: get(server, f"/v1/evaluations/{running['id']}").json()["state"] == "running")
    queued = [submit(server, relu_request(f"slow-{n}", candidate=SLOW_CANDIDATE)).json() for n in "bc"]
    assert [job["state"] for job in queued] == ["queued", "queued"]
    assert [job["queue_position"] for job in queued] == [0, 1]

    full = submit(server, relu_request("slow-d", candidate=SLOW_CANDIDATE))
    assert full.status_code == 429
    assert int(full.headers["Retry-After"]) >= 1
    assert full.json()["error"] == "queue_full" and "2 waiting for 1 slot" in full.json()["message"]
    assert get(server, "/v1/info").json()["queue_depth"] == 2

    waited = get(server, f"/v1/evaluations/{queued[0]['id']}/wait", timeout=0.5).json()
    assert waited["state"] == "queued"  # the long poll gave up after its timeout, the job still waits

    cancelled = cancel(server, queued[0]["id"])
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert cancel(server, queued[0]["id"]).status_code == 200  # cancelling twice is harmless
    started = time.monotonic()
    assert cancel(server, running["id"]).json()["state"] == "cancelled"
    # the running worker was killed: the slot moves on to the next job at once
    wait_until(lambda: get(server, f"/v1/evaluations/{queued[1]['id']}").json()["state"] == "running", 20)
    assert time.monotonic() - started < 20
    assert cancel(server, queued[1]["id"]).json()["state"] == "cancelled"
    wait_until(lambda: get(server, "/v1/info").json()["capacity"]["triton-interpret"]["busy"] == 0, 20)

    # a cancelled request submitted again is evaluated afresh
    again = submit(server, relu_request("slow-a", candidate=SLOW_CANDIDATE)).json()
    assert again["id"] != running["id"] and again["state"] in ("queued", "running")
    cancel(server, again["id"])


def test_cancelling_a_finished_evaluation_is_a_conflict(server):
    job = submit(server, relu_request("finished")).json()
    assert get(server, f"/v1/evaluations/{job['id']}/wait", timeout=60).json()["state"] == "done"
    conflict = cancel(server, job["id"])
    assert conflict.status_code == 409 and "already finished" in conflict.json()["message"]


def test_refuses_an_open_address_without_a_token():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("KERNELSMITH_EVALUATOR_TOKEN", None)
    for command in ([sys.executable, "-m", "evaluators", "--host", "0.0.0.0", "--port", "0"],
                    [sys.executable, "-c", "from kernelsmith.cli import main; main()", "serve", "--host", "0.0.0.0"]):
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done
        assert "refusing to listen on 0.0.0.0 without a token" in done.stderr.replace("\n", " ")


def _evaluations(server) -> int:
    total = 0
    for line in get(server, "/metrics").text.splitlines():
        if line.startswith("kernelsmith_evaluations_total{") and 'status="cancelled"' not in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_a_gpu_worker_sees_the_gpu_its_judge_uses(monkeypatch):
    from evaluators.backends import BackendSpec
    from evaluators.protocol import Backend

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # the service was given GPUs 2 and 3
    assert BackendSpec(Backend.triton_nvidia, 1).worker_env()["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert BackendSpec(Backend.triton_nvidia, 1).worker_env()["CUDA_VISIBLE_DEVICES"] == "1"


def test_finished_results_are_forgotten_after_their_time():
    from evaluators.scheduler import Scheduler, SchedulerConfig

    scheduler = Scheduler(SchedulerConfig(cpu_workers=1, result_ttl_s=60, max_kept=2))
    jobs = [scheduler.submit(relu_request(f"ttl-{n}"))[0] for n in range(4)]
    for job in jobs:
        scheduler.cancel(job)  # finished, as far as retention goes
    scheduler.sweep(now=jobs[0].finished_at + 1)
    assert [scheduler.get(job.id) for job in jobs] == [None, None, jobs[2], jobs[3]]  # only max_kept stay
    scheduler.sweep(now=jobs[3].finished_at + 61)
    assert scheduler.jobs == {} and scheduler.by_digest == {}
    again, deduplicated = scheduler.submit(relu_request("ttl-3"))
    assert not deduplicated and again.id != jobs[3].id


def test_with_the_docker_sandbox_every_candidate_runs_in_a_container(servers, docker_sandbox):
    server = servers("--cpu-workers", "1", "--sandbox", "docker", "--docker-image", docker_sandbox.image)
    job = submit(server, relu_request("in a container"))
    assert job.status_code == 202, job.text
    done = get(server, f"/v1/evaluations/{job.json()['id']}/wait", timeout=60).json()
    assert done["status"] == "ok", done
    assert done["result"]["environment"]["sandbox"] == "docker"


def test_the_docker_sandbox_is_refused_at_start_without_its_image():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "evaluators", "--port", "0", "--cpu-workers", "1", "--sandbox", "docker",
               "--docker-image", "kernelsmith-no-such-image:missing"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    # without a daemon it says so; with one, that the image is missing and how to build one
    assert "--sandbox docker:" in done.stderr
    assert "kernelsmith-no-such-image:missing" in done.stderr or "no docker daemon" in done.stderr
