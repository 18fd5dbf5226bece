"""EvaluatorPool: many evaluator services used as one, spread by free capacity, failing over.

An endpoint that stops answering is set aside for a while and its requests go elsewhere; one that
answers with something other than an evaluator's reply is not asked again for that request; an
infra_error result is retried on another endpoint. Submits are idempotent by digest, so a retry
never costs an endpoint a second evaluation of the same request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from evaluators.api import ServiceInfo
from evaluators.client import (
    AsyncEvaluatorClient,
    EvaluationRefused,
    EvaluatorBadReply,
    EvaluatorError,
    EvaluatorUnavailable,
    RetryPolicy,
)
from evaluators.protocol import EvalRequest, EvalResult, Stage, Status


@dataclass
class _Endpoint:
    client: AsyncEvaluatorClient
    info: ServiceInfo | None = None
    info_at: float = float("-inf")  # monotonic time of the last /v1/info answer
    in_flight: int = 0  # this pool's requests there now
    down_until: float = 0.0
    last_error: str | None = None
    refused: EvaluationRefused | None = None  # it answers, but not to us (a wrong token)

    @property
    def url(self) -> str:
        return self.client.base_url

    def up(self, now: float) -> bool:
        return self.info is not None and self.down_until <= now

    def serves(self, backend: str) -> bool:
        return self.info is not None and self.info.lane(backend) is not None

    def free(self, backend: str) -> int:
        """Free slots as last reported, less what this pool has sent there since."""
        assert self.info is not None
        lane = self.info.lane(backend)
        if lane is None:
            return 0
        return lane.slots - max(self.in_flight, lane.busy + lane.queued)


class EvaluatorPool:
    """Spreads evaluations over evaluator services; fits the Evaluator protocol."""

    def __init__(self, urls: Sequence[str], token: str | None = None, *, refresh_s: float = 2.0,
                 down_s: float = 5.0, outage_s: float = 120.0, infra_retries: int = 2, wait_s: float = 30.0,
                 retry: RetryPolicy | None = None) -> None:
        if not urls:
            raise ValueError("an EvaluatorPool needs at least one evaluator URL")
        # few quick retries per endpoint: another endpoint is the better retry
        retry = retry or RetryPolicy(attempts=2, backoff_s=0.25, infra_retries=0)
        self.endpoints = [_Endpoint(AsyncEvaluatorClient(url, token, retry=retry, wait_s=wait_s)) for url in urls]
        self.refresh_s = refresh_s
        self.down_s = down_s
        self.outage_s = outage_s  # how long every endpoint may be down before requests fail
        self.infra_retries = infra_retries
        self._refreshing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EvaluatorPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await asyncio.gather(*(endpoint.client.aclose() for endpoint in self.endpoints))

    async def capacity(self, backend: str = "auto") -> int:
        """Slots over the endpoints that answer now, for deciding how many evaluations to keep in flight."""
        await self._refresh()
        now = time.monotonic()
        total = 0
        for endpoint in self.endpoints:
            lane = endpoint.info.lane(backend) if endpoint.up(now) and endpoint.info else None
            total += lane.slots if lane else 0
        return total

    async def evaluate(self, request: EvalRequest, timeout_s: float | None = None) -> EvalResult:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        infra_left = self.infra_retries
        spoiled: set[str] = set()  # endpoints that gave this request an infra_error
        garbled: dict[str, str] = {}  # endpoints that answered it with something other than an evaluator's reply
        while True:
            if garbled and garbled.keys() >= {e.url for e in self.endpoints}:
                return EvalResult(task_name=request.task_name, status=Status.infra_error, stage=Stage.queued,
                                  message="no evaluator in the pool gave a usable answer: " + "; ".join(
                                      garbled.values()), request_digest=request.digest())
            endpoint = await self._choose(request.backend.value, spoiled, deadline, excluded=frozenset(garbled))
            endpoint.in_flight += 1
            try:
                remaining = None if deadline is None else deadline - time.monotonic()
                result = await endpoint.client.evaluate(request, timeout_s=remaining, infra_retries=0)
            except EvaluatorBadReply as error:
                self._set_aside(endpoint, str(error))
                garbled[endpoint.url] = str(error)
                continue
            except EvaluatorUnavailable as error:
                self._set_aside(endpoint, str(error))
                continue
            finally:
                endpoint.in_flight -= 1
            if result.status == Status.infra_error and infra_left > 0:
                infra_left -= 1
                spoiled.add(endpoint.url)
                continue
            return result

    def status(self) -> list[dict[str, object]]:
        now = time.monotonic()
        return [{"url": e.url, "up": e.up(now), "in_flight": e.in_flight, "last_error": e.last_error}
                for e in self.endpoints]

    async def _choose(self, backend: str, spoiled: set[str], deadline: float | None,
                      excluded: frozenset[str] = frozenset()) -> _Endpoint:
        outage_since: float | None = None
        while True:
            await self._refresh()
            refusals = [e.refused for e in self.endpoints if e.refused is not None]
            if len(refusals) == len(self.endpoints):
                raise refusals[0]
            now = time.monotonic()
            up = [e for e in self.endpoints if e.up(now)]
            usable = [e for e in up if e.serves(backend)]
            if up and not usable and len(up) == len(self.endpoints):
                offered = sorted({name for e in up for name in (e.info.capacity if e.info else {})})
                raise EvaluationRefused(422, "unsupported_backend", f"no evaluator in the pool serves backend "
                                        f"{backend!r}; they offer: {', '.join(offered)}")
            usable = [e for e in usable if e.url not in excluded]
            preferred = [e for e in usable if e.url not in spoiled] or usable
            if preferred:
                best = max(e.free(backend) for e in preferred)
                return random.choice([e for e in preferred if e.free(backend) == best])
            outage_since = now if outage_since is None else outage_since
            if now - outage_since > self.outage_s or (deadline is not None and now > deadline):
                errors = "; ".join(f"{e.url}: {e.last_error}" for e in self.endpoints)
                raise EvaluatorUnavailable(f"no evaluator answered for {now - outage_since:.0f} s ({errors})")
            waits = [e.down_until - now for e in self.endpoints if e.down_until > now]
            await asyncio.sleep(max(0.05, min([1.0, *waits])))

    def _set_aside(self, endpoint: _Endpoint, error: str) -> None:
        endpoint.down_until = time.monotonic() + self.down_s
        endpoint.last_error = error
        endpoint.info_at = float("-inf")  # ask again when it is due back

    async def _refresh(self) -> None:
        """Fetch /v1/info from endpoints whose figures are stale; one refresh at a time for all callers."""
        if self._refreshing is None or self._refreshing.done():
            now = time.monotonic()
            stale = [e for e in self.endpoints if e.down_until <= now and now - e.info_at > self.refresh_s]
            if not stale:
                return
            self._refreshing = asyncio.create_task(self._fetch_all(stale))
        await asyncio.shield(self._refreshing)

    async def _fetch_all(self, endpoints: list[_Endpoint]) -> None:
        async def fetch(endpoint: _Endpoint) -> None:
            try:
                endpoint.info = await asyncio.wait_for(endpoint.client.info(timeout_s=5.0), 10.0)
                endpoint.info_at = time.monotonic()
                endpoint.down_until, endpoint.refused = 0.0, None
            except EvaluationRefused as refusal:
                endpoint.refused = refusal
                self._set_aside(endpoint, str(refusal))
            except (EvaluatorError, asyncio.TimeoutError) as error:
                self._set_aside(endpoint, str(error) or type(error).__name__)

        await asyncio.gather(*(fetch(endpoint) for endpoint in endpoints))
