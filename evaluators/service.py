"""The evaluator REST service: a FastAPI app over the scheduler, and `serve` to run it on uvicorn.

It runs arbitrary code by design: it listens on loopback unless a bearer token is set, and then
every endpoint but /v1/health needs the token. Every 4xx says what was wrong, as ErrorBody JSON.
"""

from __future__ import annotations

import hmac
import platform
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException

from evaluators.api import API_PREFIX, ErrorBody, JobList, JobState, JobView, ServiceInfo
from evaluators.metrics import render_metrics
from evaluators.protocol import PROTOCOL_VERSION, EvalRequest
from evaluators.scheduler import Job, QueueFull, Scheduler, Unacceptable
from evaluators.service_settings import ServiceConfigError, ServiceSettings, check_binding


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=code, message=message).model_dump(), status_code=status, headers=headers)


def create_app(settings: ServiceSettings, scheduler: Scheduler | None = None) -> FastAPI:
    """The ASGI app; the scheduler starts and stops with it."""
    scheduler = scheduler if scheduler is not None else Scheduler(settings.scheduler_config(), settings.make_sandbox())
    static_info = _static_info(scheduler)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await scheduler.start()
        yield
        await scheduler.stop()

    app = FastAPI(title="kernelsmith evaluator", version=static_info["versions"]["kernelsmith"], lifespan=lifespan,
                  description="Sandboxed evaluation of Triton kernel candidates against their PyTorch reference.")
    app.state.scheduler = scheduler
    app.add_middleware(_Guard, token=settings.token, max_body_bytes=settings.max_request_bytes)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, error: APIError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        message = str(error.detail)
        if error.status_code == 404 and message == "Not Found":
            message = f"no endpoint {request.method} {request.url.path}; see /docs for the API"
        return error_response(error.status_code, code, message, getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            detail = next(p for p in problems if p.get("type") == "json_invalid")
            reason = (detail.get("ctx") or {}).get("error", "malformed JSON")
            return error_response(400, "malformed_json", f"the request body is not valid JSON: {reason} "
                                  f"(at character {detail['loc'][-1]})")
        return error_response(422, "invalid_request", "the request is invalid: " + describe_problems(problems))

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception) -> JSONResponse:
        return error_response(500, "internal_error", f"the evaluator failed: {type(error).__name__}: {error}")

    @app.post(f"{API_PREFIX}/evaluations", status_code=202, response_model=JobView, tags=["evaluations"],
              responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 413: {"model": ErrorBody},
                         422: {"model": ErrorBody}, 429: {"model": ErrorBody}})
    async def submit(request: EvalRequest) -> JSONResponse:
        """Queue an evaluation; the same request submitted again joins the first one (same id)."""
        for name in ("reference_source", "candidate_source"):
            size = len(getattr(request, name).encode())
            if size > settings.max_source_bytes:
                raise APIError(413, "source_too_large", f"{name} is {size} bytes; this evaluator accepts at most "
                               f"{settings.max_source_bytes} bytes per source file")
        try:
            job, deduplicated = scheduler.submit(request)
        except Unacceptable as error:
            raise APIError(422, "unacceptable", str(error)) from None
        except QueueFull as error:
            raise APIError(429, "queue_full", str(error), {"Retry-After": str(error.retry_after_s)}) from None
        view = job_view(scheduler, job, deduplicated=deduplicated)
        return JSONResponse(view.model_dump(mode="json"), status_code=202,
                            headers={"Location": f"{API_PREFIX}/evaluations/{job.id}"})

    @app.get(f"{API_PREFIX}/evaluations", response_model=JobList, tags=["evaluations"])
    async def recent(limit: int = Query(50, ge=1, le=1000), state: JobState | None = None) -> JobList:
        """The most recent jobs first, without their results (fetch one for its result)."""
        return JobList(evaluations=[job_view(scheduler, job, with_result=False)
                                    for job in scheduler.recent(limit, state)])

    @app.get(f"{API_PREFIX}/evaluations/{{job_id}}", response_model=JobView, tags=["evaluations"],
             responses={404: {"model": ErrorBody}})
    async def get(job_id: str) -> JobView:
        return job_view(scheduler, _job(scheduler, job_id))

    @app.get(f"{API_PREFIX}/evaluations/{{job_id}}/wait", response_model=JobView, tags=["evaluations"],
             responses={404: {"model": ErrorBody}})
    async def wait(job_id: str, timeout: float = Query(30.0, ge=0, description="seconds to hold the request "
                                                        f"open, at most {settings.max_wait_s:g}")) -> JobView:
        """Long poll: answers when the job finishes or after `timeout` seconds, whichever comes first."""
        job = await scheduler.wait(_job(scheduler, job_id), min(timeout, settings.max_wait_s))
        return job_view(scheduler, job)

    @app.delete(f"{API_PREFIX}/evaluations/{{job_id}}", response_model=JobView, tags=["evaluations"],
                responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
    async def cancel(job_id: str) -> JobView:
        """Cancel a queued or running job (its worker is killed); everyone who submitted it sees that."""
        job = _job(scheduler, job_id)
        if not scheduler.cancel(job):
            raise APIError(409, "already_finished", f"evaluation {job_id} already finished; there is nothing to cancel")
        return job_view(scheduler, job)

    @app.get(f"{API_PREFIX}/health", tags=["service"])
    async def health() -> dict[str, str]:
        """Liveness; needs no token."""
        return {"status": "ok"}

    @app.get(f"{API_PREFIX}/info", response_model=ServiceInfo, tags=["service"])
    async def info() -> ServiceInfo:
        """Backends, devices, versions, workers, queue depth and free capacity."""
        capacity = scheduler.capacity()
        warm = scheduler.warm
        return ServiceInfo(
            **static_info,
            workers=scheduler.workers(),
            warm={"per_slot": settings.warm, **(vars(warm.stats) if warm else {})},
            queue_depth=sum(lane["queued"] for lane in capacity.values()),
            max_queue=settings.max_queue,
            capacity=capacity,
            limits={"max_request_bytes": settings.max_request_bytes, "max_source_bytes": settings.max_source_bytes,
                    "max_wait_s": settings.max_wait_s, "result_ttl_s": settings.result_ttl_s},
            uptime_s=time.time() - scheduler.started_at,
        )

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"])
    async def metrics() -> PlainTextResponse:
        """Prometheus text format."""
        return PlainTextResponse(render_metrics(scheduler), media_type="text/plain; version=0.0.4")

    return app


def _job(scheduler: Scheduler, job_id: str) -> Job:
    job = scheduler.get(job_id)
    if job is None:
        raise APIError(404, "unknown_evaluation", f"no evaluation {job_id!r} here: it never existed, or its result "
                       f"expired (results are kept {scheduler.config.result_ttl_s:g} s); submit the request again")
    return job


def job_view(scheduler: Scheduler, job: Job, deduplicated: bool = False, with_result: bool = True) -> JobView:
    position = None
    if job.state == JobState.queued:
        position = sum(1 for other in scheduler.recent(len(scheduler.jobs), JobState.queued)
                       if other.backend == job.backend and other.submitted_at < job.submitted_at)
    return JobView(
        id=job.id, state=job.state, task_name=job.request.task_name, backend=job.backend.value,
        request_digest=job.digest, deduplicated=deduplicated, submitted_at=job.submitted_at,
        started_at=job.started_at, finished_at=job.finished_at, slot=job.slot, queue_position=position,
        status=job.result.status if job.result else None, result=job.result if with_result else None,
    )


def describe_problems(problems: Any) -> str:
    """Pydantic errors as one line: where, then what."""
    parts = []
    for problem in list(problems)[:10]:
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or "body"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)


class _Guard:
    """ASGI middleware: bearer-token check and request-size limit, before any body is parsed."""

    def __init__(self, app: Any, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.token is not None and scope["path"] != f"{API_PREFIX}/health":
            problem = self._auth_problem(headers.get(b"authorization"))
            if problem:
                response = error_response(401, "unauthorized", problem, {"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(declared.decode(errors="replace"))(scope, receive, send)
            return
        if scope["method"] in ("POST", "PUT", "PATCH") and declared is None:
            # a chunked body: read it here, within the limit, then hand it on
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    await self._too_large(f"more than {size}")(scope, receive, send)
                    return
                chunks.append(chunk)
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)

            async def replay() -> dict[str, Any]:
                nonlocal body
                message, body = {"type": "http.request", "body": body, "more_body": False}, b""
                return message

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)

    def _auth_problem(self, header: bytes | None) -> str | None:
        if not header:
            return "this evaluator needs a token: send the header 'Authorization: Bearer <token>'"
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return "the Authorization header must read 'Bearer <token>'"
        assert self.token is not None
        if not hmac.compare_digest(value.strip(), self.token):
            return "the bearer token is wrong"
        return None

    def _too_large(self, size: str) -> JSONResponse:
        return error_response(413, "request_too_large", f"the request body is {size} bytes; this evaluator accepts "
                              f"at most {self.max_body_bytes} bytes")


def _static_info(scheduler: Scheduler) -> dict[str, Any]:
    from importlib import metadata

    import torch

    from evaluators.backends import describe
    from evaluators.compat import triton_version

    try:
        version = metadata.version("kernelsmith")
    except metadata.PackageNotFoundError:
        version = "unknown"
    devices = []
    for lane in scheduler.lanes.values():
        for slot in lane.slots:
            devices.append({"slot": slot.name, "backend": slot.spec.backend.value,
                            "device": describe(slot.spec).device})
    return {
        "protocol_version": PROTOCOL_VERSION,
        "versions": {"kernelsmith": version, "torch": torch.__version__, "triton": triton_version(),
                     "python": platform.python_version()},
        "backends": [backend.value for backend in scheduler.lanes],
        "devices": devices,
    }


# -- running it -----------------------------------------------------------------------------


def serve(settings: ServiceSettings, announce: Any = print) -> None:
    """Run the service until interrupted; raises ServiceConfigError before binding anything unsafe."""
    import uvicorn

    check_binding(settings.host, settings.token)
    settings.check()
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as error:
        sock.close()
        raise ServiceConfigError(f"cannot listen on {settings.host}:{settings.port}: {error.strerror}") from None
    try:
        scheduler = Scheduler(settings.scheduler_config(), settings.make_sandbox())  # warm workers start here
    except Unacceptable as error:
        sock.close()
        raise ServiceConfigError(str(error)) from None
    except ServiceConfigError:
        sock.close()
        raise
    app = create_app(settings, scheduler)
    sock.listen(1024)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    slots = ", ".join(f"{b}: {c['slots']}" for b, c in scheduler.capacity().items())
    announce(f"kernelsmith evaluator listening on http://{shown}:{port} ({slots} slot(s); "
             f"{'token required' if settings.token else 'no token, loopback only'})")
    config = uvicorn.Config(app, log_level=settings.log_level, access_log=False, timeout_graceful_shutdown=10,
                            backlog=1024)
    uvicorn.Server(config).run(sockets=[sock])
