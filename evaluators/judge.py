"""The trusted side of one evaluation: static checks, reference data, a sandboxed worker, verdict.

The judge never imports candidate code. It drives a worker through load, correctness trials,
timing and rechecks, compares every output itself, cross-checks the worker's timings against
its own wall clock, and turns whatever happens (crash, hang, tampering) into an EvalResult.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from evaluators.backends import BackendSpec, BackendUnavailable, describe, resolve
from evaluators.channel import ChannelError, ChannelTimeout, Message, decode_tensor_groups
from evaluators.compare import compare_outputs
from evaluators.compat import exact_float32
from evaluators.judge_timing import TimingPhase
from evaluators.loading import TaskError
from evaluators.ops import ReferenceProfile, profile_reference
from evaluators.protocol import EvalRequest, EvalResult, Finding, Stage, Status, TrialResult
from evaluators.reference import ReferenceData, ReferenceStore
from evaluators.runtime_rules import (
    Verdict,
    guard_findings,
    launches_verdict,
    ops_verdict,
    rejection,
)
from evaluators.sandbox import Limits, ProcessSandbox, WorkerHandle, WorkerStartError
from evaluators.speed_of_light import Peak
from evaluators.static_checks import check_candidate
from evaluators.warm import cpu_hard_limit, cpu_seconds


@dataclass
class Judge:
    """Evaluates requests for one backend and device; keeps reference data between requests."""

    spec: BackendSpec
    sandbox: Any = field(default_factory=ProcessSandbox)
    references: ReferenceStore = field(default_factory=ReferenceStore)
    workers: Any = None  # a warm pool with .acquire(spec, limits) -> WorkerHandle, else cold starts
    limits: Limits = field(default_factory=Limits)  # memory, processes, files; time comes from each request
    # whether CUDA IPC handles open across a given sandbox setup (probed once per setup)
    ipc_works: dict[tuple[str, bool, bool], bool] = field(default_factory=dict)
    # Off only in the adversarial tests: candidates the static checks would stop then reach the
    # runtime layers (guards, sandbox, comparisons), which must hold on their own.
    static_checks: bool = True
    peak: Peak | None = None  # the device's physical limits, from the table or measured once

    def __post_init__(self) -> None:
        exact_float32()

    @classmethod
    def for_backend(cls, request_backend: Any, device_index: int | None = None, **kwargs: Any) -> Judge:
        return cls(resolve(request_backend, device_index), **kwargs)

    def evaluate(self, request: EvalRequest) -> EvalResult:
        started = time.perf_counter()
        run = _Evaluation(self, request)
        if self.spec.device_index is not None:
            with torch.cuda.device(self.spec.device_index):  # the current device is per thread
                result = run.execute()
        else:
            result = run.execute()
        result.duration_s = time.perf_counter() - started
        result.request_digest = request.digest()
        return result


class _Evaluation(TimingPhase):
    def __init__(self, judge: Judge, request: EvalRequest) -> None:
        self.judge = judge
        self.request = request
        self.spec = judge.spec
        self.device = torch.device(self.spec.torch_device)
        self.findings: list[Finding] = []
        self.trials: list[TrialResult] = []
        self.stage = Stage.static_check
        self.worker: WorkerHandle | None = None
        self.limits = judge.limits
        self.deadline = 0.0
        self.result = EvalResult(task_name=request.task_name, status=Status.infra_error, stage=Stage.queued)
        self.max_elements = 1024
        self._last_mark = time.perf_counter()
        self._nonce: str | None = None
        self._noted_ops = False

    def execute(self) -> EvalResult:
        result = self.result
        try:
            result.environment = describe(self.spec)
            result.environment.sandbox = getattr(self.judge.sandbox, "name", None)
            self._static_checks()
            self._mark("static_check")
            self.stage = Stage.reference
            with self._quiet():  # the reference's baselines are timed here, the first time
                reference, _ = self.judge.references.get(self.request, self.spec)
            self._mark("reference")
            if reference.degenerate:
                self.findings.append(Finding(rule="weak-reference", message=reference.degenerate, severity="warning"))
            result.baselines = dict(reference.baselines)
            self.deadline = time.monotonic() + self.request.time_limit_s
            self._run_worker(reference)
            result.status, result.stage = Status.ok, Stage.done
            result.message = self._success_message(result)
        except Verdict as verdict:
            result.status, result.stage, result.message = verdict.status, verdict.stage, verdict.message
            if verdict.finding:
                self.findings.append(verdict.finding)
        except TaskError as error:
            result.status, result.stage = Status.infra_error, Stage.reference
            result.message = f"the task's reference is broken (not the candidate's fault): {error}"
        except (WorkerStartError, BackendUnavailable) as error:
            result.status, result.stage, result.message = Status.infra_error, self.stage, str(error)
        except torch.cuda.OutOfMemoryError as error:
            result.status, result.stage = Status.infra_error, self.stage
            result.message = f"the judge ran out of GPU memory: {error}"
        finally:
            if self.worker is not None:
                result.log = self.worker.log_tail()
                result.environment.network_isolated = self.worker.network_isolated
                result.environment.privileges_dropped = self.worker.privileges_dropped
                self.worker.close()
        result.trials = self.trials
        result.findings = self.findings
        return result

    # -- stages --------------------------------------------------------------------------

    def _static_checks(self) -> None:
        report = check_candidate(self.request.candidate_source, strict=self.request.strict)
        if report.compile_error:
            raise Verdict(Status.compile_error, Stage.static_check, f"candidate.py {report.compile_error}")
        if not self.judge.static_checks:
            return
        self.findings.extend(report.findings)
        rejects = [f for f in report.findings if f.severity == "reject"]
        if rejects:
            first = rejects[0]
            where = f" (line {first.line})" if first.line else ""
            raise Verdict(Status.rejected, Stage.static_check, f"{first.rule}{where}: {first.message}")

    def _run_worker(self, reference: ReferenceData) -> None:
        self.stage = Stage.load
        limits = replace(self.judge.limits, wall_s=self.request.time_limit_s, cpu_s=int(self.request.time_limit_s * 4) + 60)
        self.limits = limits
        pool = self.judge.workers
        self.worker = pool.acquire(self.spec, limits) if pool is not None else self.judge.sandbox.start(self.spec, limits)
        # the most one message carries: a trial's outputs, their repeat and inputs, or the compared timed outputs
        copies = max(4, self.request.timing.compared_repetitions)
        self.worker.channel.max_blob_bytes = copies * reference.output_bytes + 3 * reference.input_bytes + (64 << 20)
        self.max_elements = 4 * reference.output_elements + (1 << 20) + reference.input_bytes
        with _before_the_candidate():
            if not self.worker.set_up:  # else the warm pool read it when it had the GPU set up
                self._receive("ready")
            self._mark("worker_start")
            cuda_ipc = self._cuda_ipc_usable()
        sync_latency_ms = self._load(reference, cuda_ipc)
        self._mark("load")
        self.stage = Stage.correctness
        self._trials(reference)
        self._mark("correctness")
        if self.spec.measures_time and self.request.timing.enabled:
            self.stage = Stage.timing
            with self._quiet():
                self._time(reference, sync_latency_ms)
            self._mark("timing")
        self.stage = Stage.correctness
        self._rechecks(reference)
        self._mark("recheck")

    def _quiet(self) -> contextlib.AbstractContextManager[None]:
        """While timing or calibrating: no spare worker sets up its GPU on this device (its new CUDA
        context would share the GPU with what is measured)."""
        quiet = getattr(self.judge.workers, "quiet", None)
        return quiet(self.spec) if quiet is not None and self.spec.measures_time else contextlib.nullcontext()

    def _mark(self, phase: str) -> None:
        """Seconds spent in each phase since the previous mark: where an evaluation's time goes."""
        now = time.perf_counter()
        self.result.phase_s[phase] = round(now - self._last_mark, 4)
        self._last_mark = now

    def _cuda_ipc_usable(self) -> bool:
        """CUDA IPC is the fast path for outputs; some sandboxes (a user or namespace apart) refuse it."""
        assert self.worker is not None
        if self.device.type != "cuda":
            return False
        key = (self.worker.sandbox, self.worker.network_isolated, self.worker.privileges_dropped)
        if key not in self.judge.ipc_works:
            self._send({"type": "probe_ipc"})
            try:
                probe = self._receive("outputs").tensors["outputs"]
                expected = torch.arange(1024, dtype=torch.float32, device=self.device)
                self.judge.ipc_works[key] = len(probe) == 1 and bool(torch.equal(probe[0], expected))
            except Verdict:
                self.judge.ipc_works[key] = False
        return self.judge.ipc_works[key]

    def _load(self, reference: ReferenceData, cuda_ipc: bool) -> float:
        assert self.worker is not None
        workdir = self.worker.workdir
        for name, source in (("reference.py", reference.source), ("candidate.py", self.request.candidate_source)):
            (workdir / name).write_text(source)
            # readable by the worker's user, whichever it is, even from a judge started with umask 077;
            # the directory (the worker's own) keeps everyone else out
            os.chmod(workdir / name, 0o644)
        # quiet: the worker measures its host's synchronize latency now, before the candidate's code
        # exists (the side-stream slack rests on it), and a spare's GPU set-up beside it would inflate it
        with _before_the_candidate(), self._quiet():
            self._send(
                {"type": "load", "reference_file": str(workdir / "reference.py"),
                 "candidate_file": str(workdir / "candidate.py"), "init_seed": reference.init_seed,
                 "cuda_ipc": cuda_ipc, "cpu_s": self.limits.cpu_s}
            )
            # the worker sets up its GPU now unless the warm pool had it done; the host's synchronize latency
            latency = self._receive("device").header.get("sync_latency_ms")
        self._mark("device")
        self._receive("loaded")
        self._check_cpu_limit()
        # a sane synchronize takes microseconds; a larger figure would only widen the side-stream slack
        return min(max(float(latency), 0.0), 1.0) if isinstance(latency, (int, float)) else 0.0

    def _check_cpu_limit(self) -> None:
        """The worker lowered its own CPU limit before loading anything: read it back from outside."""
        assert self.worker is not None
        try:
            hard = cpu_hard_limit(self.worker.pid)
            spent = cpu_seconds(self.worker.pid)
        except (OSError, ValueError, StopIteration, NotImplementedError):
            return  # not a process of this host (a container's own limits hold it)
        if hard is None or hard > spent + self.limits.cpu_s + 10:
            raise Verdict(Status.infra_error, Stage.load,
                          f"the worker's CPU limit is {hard} s, above the {self.limits.cpu_s} s this request allows")

    def _trials(self, reference: ReferenceData) -> None:
        for index, seed in enumerate(reference.trial_seeds):
            first = index == 0
            self._send({"type": "run", "seed": seed, "repeat": first, "send_inputs": first})
            message = self._receive("outputs")
            launches_verdict(message.header, "correctness trial", self.stage)
            self._check_ops(message, reference)
            outputs = message.tensors.pop("outputs")
            trial = compare_outputs(outputs, reference.output_for(seed), self.request.correctness, index)
            del outputs
            self.trials.append(trial)
            if not trial.passed:
                raise Verdict(Status.incorrect, Stage.correctness, f"trial {index}: {trial.message}")
            if first:
                self._check_repeat_and_inputs(message, reference, seed)
            self._release_memory()

    def _check_repeat_and_inputs(self, message: Message, reference: ReferenceData, seed: int) -> None:
        repeat = message.tensors.pop("repeat_outputs", [])
        again = compare_outputs(repeat, reference.output_for(seed), self.request.correctness, 0)
        del repeat
        if not again.passed:
            raise Verdict(
                Status.incorrect, Stage.correctness,
                f"a second run on the same inputs gave a wrong result (nondeterministic): {again.message}",
            )
        inputs = message.tensors.pop("inputs", [])
        pristine = [x for x in self._regenerate_inputs(reference, seed) if isinstance(x, torch.Tensor)]
        mutated = len(pristine) != len(inputs) or any(
            a.shape != b.shape or not torch.equal(a, b) for a, b in zip(inputs, pristine, strict=False)
        )
        del inputs, pristine
        if mutated:
            raise Verdict(
                Status.rejected, Stage.correctness, "forward modified its input tensors in place",
                Finding(rule="input-mutation", message="forward wrote into its inputs; a kernel must leave them intact"),
            )

    def _release_memory(self) -> None:
        """Hand freed judge memory back to the driver: the worker shares this GPU."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _regenerate_inputs(self, reference: ReferenceData, seed: int) -> list[Any]:
        return reference.task.make_inputs(seed, self.device)

    def _rechecks(self, reference: ReferenceData) -> None:
        for seed in reference.recheck_seeds:
            self._send({"type": "recheck", "seed": seed})
            message = self._receive("outputs")
            launches_verdict(message.header, "recheck", self.stage)
            self._check_ops(message, reference)
            outputs = message.tensors.pop("outputs")
            trial = compare_outputs(outputs, reference.output_for(seed), self.request.correctness, len(self.trials))
            trial.phase = "recheck"
            self.trials.append(trial)
            if not trial.passed:
                raise Verdict(
                    Status.incorrect, Stage.correctness,
                    f"correct at first, wrong after timing on new inputs in the same buffers "
                    f"(stale or cached output?): {trial.message}",
                )

    def _check_ops(self, message: Message, reference: ReferenceData) -> None:
        """The torch compute ops forward ran outside its Triton launches (recorded by the worker)."""
        ops = message.header.get("ops")
        need_profile = isinstance(ops, list) and bool(ops) and not self.request.strict
        reference_ops = self._profile(reference).compute_ops if need_profile else []
        note = ops_verdict(ops, self.request.strict, reference_ops, self.stage)
        if note is not None and not self._noted_ops:
            self._noted_ops = True
            self.findings.append(note)

    def _profile(self, reference: ReferenceData) -> ReferenceProfile:
        """The reference's compute ops and FLOPs, measured once per reference."""
        if reference.profile is None:
            inputs = reference.task.make_inputs(reference.trial_seeds[0], self.device)
            reference.profile = profile_reference(reference.model, inputs)
        return reference.profile

    # -- plumbing ------------------------------------------------------------------------

    def _decode(self, message: Message) -> None:
        assert self.worker is not None
        try:
            message.tensors = decode_tensor_groups(self.worker.channel, message, self.device, self.max_elements)
        except ChannelTimeout:
            self._timed_out()
        except ChannelError as error:
            raise Verdict(Status.rejected, self.stage, f"the worker's tensors could not be read: {error}",
                          Finding(rule="channel-tampering", message=str(error))) from None
        except RuntimeError as error:  # e.g. an IPC handle that does not open
            raise Verdict(Status.runtime_error, self.stage, f"the worker's tensors could not be read: {error}") from None

    def _send(self, header: dict[str, Any]) -> None:
        assert self.worker is not None
        self._nonce = secrets.token_hex(16)  # the answer must carry it: a forged message cannot
        try:
            self.worker.channel.send(dict(header, nonce=self._nonce))
        except OSError:
            self._worker_gone()

    def _receive(self, expected: str) -> Message:
        assert self.worker is not None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._timed_out()
        try:
            message = self.worker.channel.recv(timeout=remaining)
        except ChannelTimeout:
            self._timed_out()
        except ChannelError:
            self._worker_gone()
        if message.type != "ready" and message.header.get("nonce") != self._nonce:
            raise Verdict(Status.rejected, self.stage, "a message on the harness channel did not answer the judge's "
                          f"command (forged {message.type!r}?)",
                          Finding(rule="channel-tampering", message="a message without the command's nonce"))
        found = guard_findings(message.header, self.stage)
        if found:
            self.findings.extend(found[1:])
            raise rejection(found[0], self.stage)
        if message.type == expected:
            if message.header.get("stream"):
                self._decode(message)
            return message
        if message.type == "error":
            status = message.header.get("status")
            status = Status.compile_error if status == "compile_error" else Status.runtime_error
            line = message.header.get("line")
            text = message.header.get("text")
            where = f"candidate.py line {line}: " if isinstance(line, int) else ""
            shown = f"\n    {str(text).strip()}" if text else ""
            raise Verdict(status, self.stage, f"{where}{str(message.header.get('message', ''))[:4000]}{shown}")
        raise Verdict(Status.rejected, self.stage, f"the harness channel was tampered with: got {message.type!r}, "
                      f"expected {expected!r}", Finding(rule="channel-tampering", message="unexpected message"))

    def _timed_out(self) -> None:
        assert self.worker is not None
        self.worker.kill("time limit")
        raise Verdict(Status.timeout, self.stage,
                      f"no answer within the {self.request.time_limit_s:g} s time limit during {self.stage.value}; "
                      "the worker's process group was killed")

    def _worker_gone(self) -> None:
        assert self.worker is not None
        with suppress(Exception):
            self.worker.wait(5)
        summary = self.worker.exit_summary()
        tail = self.worker.log_tail().strip().splitlines()[-3:]
        detail = ("; last output: " + " | ".join(tail)) if tail else ""
        status = Status.runtime_error
        raise Verdict(status, self.stage, f"{summary} during {self.stage.value}{detail}")

    def _success_message(self, result: EvalResult) -> str:
        passed = sum(t.passed for t in self.trials)
        text = f"{passed} of {len(self.trials)} trials correct"
        if result.speedup is not None and result.timing is not None:
            text += f"; {result.timing.median_ms:.4f} ms, {result.speedup:.2f}x eager"
        elif not self.spec.measures_time:
            text += "; not timed (the Triton interpreter checks correctness only)"
        return text


@contextlib.contextmanager
def _before_the_candidate() -> Iterator[None]:
    """Until the worker says `device`, no code of the candidate or the task has run in it (it imports
    them after): a crash, a hang or an error there is the host's (a GPU that would not set up, a
    killed worker), an infra_error the client may retry elsewhere."""
    try:
        yield
    except Verdict as verdict:
        if verdict.status not in (Status.runtime_error, Status.timeout):
            raise
        raise Verdict(Status.infra_error, verdict.stage, "the worker failed before loading the candidate "
                      f"(not the candidate's fault): {verdict.message}") from None
