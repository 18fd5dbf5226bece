"""The sandboxed side of an evaluation: the only process that imports candidate code.

It imports torch and Triton, captures the timing primitives, installs the launch counter and
the runtime guards before anything of the candidate's runs, then answers the judge's commands:
load, run a trial, time, recheck, bye. It reports raw outputs, timings, the ops a forward ran
and what the guards saw; every verdict is the judge's. Started as
`python -m evaluators.worker SOCKET` in a private directory.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from evaluators.worker_start import (
    keep_memory_private,
    limit_own_cpu,
    start_triton_driver,
    warm_compiler_for_gpu,
)

# captured before torch, triton or any candidate code can touch them
_urandom = os.urandom
_exit = os._exit


def _fresh_seed() -> int:
    return int.from_bytes(_urandom(8), "little") & ((1 << 63) - 1)


class Worker:
    def __init__(self, channel: Any, workdir: Path) -> None:
        import torch

        from evaluators.compat import LaunchCounter, exact_float32, interpreter_enabled
        from evaluators.guards import Guard
        from evaluators.ops import OpRecorder
        from evaluators.timing import Clock

        self.torch = torch
        self.channel = channel
        self.interpret = interpreter_enabled()
        exact_float32()  # as the judge computes the reference
        gpu = not self.interpret and torch.cuda.is_available()  # asks the driver; creates no context
        self.device = torch.device("cuda", 0) if gpu else torch.device("cpu")
        self.clock: Clock | None = None  # on a GPU: set up by the first command (start_device)
        if gpu:
            warm_compiler_for_gpu()
        self.sync_latency_ms = 0.0
        from evaluators.loading import seed_all

        self.manual_seed = torch.manual_seed
        self.seed_all = seed_all
        # start torch's thread pool now: threads that appear during a forward are the candidate's
        torch.ones(1 << 18).sum()
        self.guard = Guard(workdir)
        self.guard.install()
        self.launches = LaunchCounter()
        self.launches.install()
        # the current CUDA stream, as Triton asks for it: taken before any candidate code runs
        self.raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        self.recorder_class = OpRecorder
        self.nonce: Any = None
        self.model: Any = None
        self.get_inputs: Any = None
        self.candidate_path: Path | None = None
        self.last_inputs: list[Any] | None = None
        self.keepalive: list[Any] = []
        self.cuda_ipc = False  # the judge enables it once it has seen an IPC handle open

    # -- commands ------------------------------------------------------------------------

    def serve(self) -> None:
        self.channel.send({"type": "ready", "pid": os.getpid(), "device": str(self.device)})
        handlers = {
            "setup": self.setup,
            "probe_ipc": self.probe_ipc,
            "load": self.load,
            "run": self.run,
            "time": self.time,
            "recheck": self.recheck,
        }
        while True:
            message = self.channel.recv()
            self.keepalive.clear()  # the judge has copied whatever it mapped
            if message.type == "bye":
                return
            self.nonce = message.header.get("nonce")
            handler = handlers.get(message.type)
            if handler is None:
                self.send({"type": "error", "status": "infra_error", "message": f"unknown command {message.type!r}"})
                continue
            try:
                handler(message.header)
            except BaseException as error:  # anything the candidate raised (SystemExit too), located in its file
                self.report_failure(error)

    def send(self, header: dict[str, Any]) -> None:
        """Answer the command being served: the judge takes no message without its nonce."""
        self.channel.send(dict(header, nonce=self.nonce))

    def start_device(self) -> None:
        """The CUDA context, the timing clock and Triton's driver: on the warm pool's `setup`, or on
        the first command that needs them.

        Not at start-up: a worker started ahead of need works on the CPU only (imports, a first
        compilation) and does not share the GPU with a candidate being timed there; the pool sends
        `setup` only while nothing is timed on the device. Harness code, before any candidate code:
        the guards do not count it, and the primitives are still pristine.
        """
        if self.device.type != "cuda" or self.clock is not None:
            return
        from evaluators.timing import Clock

        self.torch.cuda.set_device(self.device)
        self.torch.cuda.init()
        self.clock = Clock.capture(self.device)
        start_triton_driver()

    def setup(self, command: dict[str, Any]) -> None:
        """The warm pool's command: the GPU set up ahead of the candidate, then `ready` again."""
        self.start_device()
        self.send({"type": "ready", "pid": os.getpid(), "device": str(self.device), "set_up": True})

    def calibrate(self) -> None:
        """The clock's figures for this evaluation, taken now rather than when the GPU was set up:
        a spare worker sets up while another candidate may be running on the same GPU."""
        from evaluators.timing import calibrate_sync_latency

        if self.clock is not None:
            self.clock.calibrate_spin()
            self.sync_latency_ms = calibrate_sync_latency(self.clock)

    def probe_ipc(self, command: dict[str, Any]) -> None:
        """Send a small tensor by CUDA IPC: the judge learns whether handles open across this sandbox."""
        self.start_device()
        self.cuda_ipc = True
        probe = self.torch.arange(1024, dtype=self.torch.float32, device=self.device)
        self.send_outputs({"type": "outputs"}, {"outputs": [probe]})
        self.cuda_ipc = False

    def load(self, command: dict[str, Any]) -> None:
        from evaluators.loading import SourceProblem, construct, get_class, import_file

        limit_own_cpu(command.get("cpu_s"))  # first: no code of the task or the candidate has run yet
        self.start_device()
        self.calibrate()
        # said now, before the candidate's import: no code of its own has had a chance to change it
        self.send({"type": "device", "sync_latency_ms": self.sync_latency_ms})
        self.cuda_ipc = bool(command.get("cuda_ipc")) and self.device.type == "cuda"
        reference = import_file(Path(command["reference_file"]), "kernelsmith_reference")
        self.get_inputs = reference.get_inputs
        init_inputs = list(reference.get_init_inputs())
        self.candidate_path = Path(command["candidate_file"]).resolve()
        self.guard.baseline()  # last: everything before is the harness's and the reference's own state
        self.guard.candidate_file = str(self.candidate_path)
        self.guard.enter()
        try:
            candidate = import_guarded(self.candidate_path, "candidate", self.guard.candidate_builtins())
            model_class = get_class(candidate, "ModelNew", self.candidate_path)
            self.seed_all(int(command["init_seed"]))
            model = construct(model_class, init_inputs, self.candidate_path)
            self.model = model.to(self.device) if hasattr(model, "to") else model
            self.guard.leave()
        except SourceProblem as problem:
            self.send(
                {"type": "error", "status": "compile_error", "stage": "load", "message": problem.message,
                 "line": problem.line, "text": problem.text, "guard": self.guard.findings()}
            )
            return
        self.send({"type": "loaded", "guard": self.guard.findings()})

    def make_inputs(self, seed: int) -> list[Any]:
        self.seed_all(seed)
        with self.torch.device(self.device):
            inputs = list(self.get_inputs())
        # then a seed nobody can predict: the generators' state must not tell a checked call (whose
        # input seeds follow from the request) from a timed one
        self.seed_all(_fresh_seed())
        return inputs

    def forward(self, inputs: list[Any], ops: set[str] | None = None) -> list[Any]:
        """One call of the candidate; with `ops`, the compute ops it ran outside Triton launches join it."""
        from torch.utils._python_dispatch import _get_current_dispatch_mode

        from evaluators.loading import flatten_outputs

        recorder = self.recorder_class() if ops is not None else None
        self.guard.recorder = recorder
        self.guard.enter()
        try:
            with self.torch.no_grad():
                if recorder is None:
                    result = self.model(*inputs)
                else:
                    with recorder:
                        result = self.model(*inputs)
                        if _get_current_dispatch_mode() is not recorder:
                            ops.add("<op recorder removed>")
        finally:
            self.guard.recorder = None
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
        self.guard.leave()
        if recorder is not None and ops is not None:
            ops.update(recorder.compute_ops)
        return flatten_outputs(result)

    def send_outputs(self, header: dict[str, Any], groups: dict[str, list[Any]]) -> None:
        from evaluators.channel import send_tensor_groups

        for name, tensors in groups.items():
            for position, tensor in enumerate(tensors):
                if type(tensor) is not self.torch.Tensor:
                    if isinstance(tensor, self.torch.Tensor):
                        self.guard.record("tensor-subclass", f"forward returned a {type(tensor).__name__}, not a plain "
                                          "torch.Tensor", None)
                    raise TypeError(f"{name} {position} is a {type(tensor).__name__}, not a plain torch.Tensor")
                if tensor.device != self.device:
                    raise TypeError(f"{name} {position} is on {tensor.device}, expected {self.device}")
        header = dict(header, nonce=self.nonce)
        self.keepalive = send_tensor_groups(self.channel, header, groups, self.cuda_ipc)

    def run(self, command: dict[str, Any]) -> None:
        inputs = self.make_inputs(int(command["seed"]))
        self.launches.reset()
        ops: set[str] = set()
        outputs = self.forward(inputs, ops)
        launches = self.launches.count
        groups = {"outputs": outputs}
        if command.get("repeat"):
            groups["repeat_outputs"] = self.forward(inputs, ops)
        if command.get("send_inputs"):
            groups["inputs"] = [x for x in inputs if isinstance(x, self.torch.Tensor)]
        header = {
            "type": "outputs",
            "launches": launches,
            "kernels": dict(self.launches.kernels),
            "launch_hooks_intact": self.launches.intact(),
            "ops": sorted(ops),
            "guard": self.guard.findings(),
        }
        self.send_outputs(header, groups)

    def time(self, command: dict[str, Any]) -> None:
        from evaluators.timing import Kept, flush_buffer, timed_loop

        if self.clock is None:
            self.send({"type": "error", "status": "infra_error", "message": "timing needs a GPU"})
            return
        flush = flush_buffer(self.device, bool(command.get("flush_l2", True)))

        def next_inputs() -> tuple[int, list[Any]]:
            seed = _fresh_seed()  # unpredictable: the candidate must not recognize timed inputs
            self.last_inputs = self.make_inputs(seed)
            return seed, self.last_inputs

        fresh = bool(command.get("fresh_inputs", True))
        # the repetitions whose outputs the judge compares (none in the warm-up and null loops)
        chosen = [i for i in command.get("compare") or [] if isinstance(i, int)]
        kept = Kept(frozenset(chosen), self._output_copies) if chosen else None
        self.launches.reset()
        self.clock.timed_stream()  # the stream the loop times on, whatever a forward left current
        if self.raw_stream is not None:
            raw_stream, index = self.raw_stream, self.device.index or 0
            self.launches.watch_stream(raw_stream(index), lambda: raw_stream(index))
        self.guard.enter()
        # the null loop: the same loop, guards and inputs with nothing called, for the judge to time
        model = (lambda *inputs: None) if command.get("null") else self.model
        warming = int(command["repetitions"]) == 0  # the warm-up phase: the loops after it use what it finds
        issue_ms: list[float] | None = [] if warming and not command.get("null") else None
        samples, warmup_calls = timed_loop(
            self._timed_call(model),
            next_inputs,
            self.clock,
            int(command["repetitions"]),
            int(command["warmup"]),
            flush,
            fresh,
            float(command.get("warmup_ms", 0.0)),
            kept,
            issue_ms,
        )
        del flush
        self.guard.leave()
        off_stream = self.launches.off_stream
        self.launches.watch_stream(None)
        if warming:  # the GPU runs at its working clock now, and the host's time to issue a call is known
            self.clock.calibrate_spin()
            self.clock.fit_spin(issue_ms or [])
        # the figures first, on their own: the judge's wall clock stops when they arrive
        self.send(
            {
                "type": "timing",
                "stream_ms": [s.stream_ms for s in samples],
                "device_ms": [s.device_ms for s in samples],
                "launches": self.launches.count,
                "off_stream_launches": off_stream,
                "warmup_calls": warmup_calls,
                "tampered": self.clock.tampered() + ([] if self.launches.intact() else ["triton launch hooks"]),
                "guard": self.guard.findings(),
            }
        )
        if kept is not None:
            header = {"type": "timed_outputs", "repetitions": chosen,
                      "seeds": [kept.seeds.get(i) for i in chosen], "guard": self.guard.findings()}
            self.send_outputs(header, {f"repetition_{i}": kept.outputs.get(i, []) for i in chosen})

    def _output_copies(self, result: Any) -> list[Any]:
        """Copies of a timed call's output tensors, for the judge to compare (anything else as it is:
        send_outputs refuses it)."""
        from evaluators.loading import flatten_outputs

        tensor = self.torch.Tensor
        return [t.detach().clone() if type(t) is tensor else t for t in flatten_outputs(result)]

    def _timed_call(self, model: Any) -> Any:
        """A timed call runs as a checked one does (no autograd): nothing it can query tells them apart."""
        no_grad = self.torch.no_grad

        def call(inputs: list[Any]) -> Any:
            with no_grad():
                return model(*inputs)

        return call

    def recheck(self, command: dict[str, Any]) -> None:
        """New values in the very tensors last timed: output caches keyed by address go stale."""
        fresh = self.make_inputs(int(command["seed"]))
        inputs = self.last_inputs if self.last_inputs is not None else fresh
        for target, source in zip(inputs, fresh, strict=True):
            if isinstance(target, self.torch.Tensor) and isinstance(source, self.torch.Tensor):
                with self.torch.no_grad():
                    target.copy_(source)
        self.launches.reset()
        ops: set[str] = set()
        outputs = self.forward(inputs, ops)
        header = {"type": "outputs", "launches": self.launches.count, "launch_hooks_intact": self.launches.intact(),
                  "ops": sorted(ops), "guard": self.guard.findings()}
        self.send_outputs(header, {"outputs": outputs})

    # -- failures ------------------------------------------------------------------------

    def report_failure(self, error: BaseException) -> None:
        from evaluators.loading import located

        status = "compile_error" if _is_compile_error(error) else "runtime_error"
        where = self.candidate_path or Path("candidate.py")
        problem = located(error, where, "Triton compilation failed" if status == "compile_error" else "forward failed")
        if isinstance(error, (SystemExit, KeyboardInterrupt)):  # an attempt to end the worker
            self.guard.record("process-exit", f"candidate code raised {type(error).__name__}", problem.line)
        self.send(
            {
                "type": "error",
                "status": status,
                "message": problem.message[:4000],
                "line": problem.line,
                "text": problem.text,
                "traceback": "".join(traceback.format_exception(error))[-4000:],
                "guard": self.guard.findings(),
            }
        )


def import_guarded(path: Path, module_name: str, guarded_builtins: dict[str, Any]) -> Any:
    """Import the candidate with its own builtins (see Guard.candidate_builtins); errors located in its file."""
    from evaluators.loading import import_file

    return import_file(path, module_name, builtins=guarded_builtins)


def _is_compile_error(error: BaseException) -> bool:
    names = {cls.__name__ for cls in type(error).__mro__}
    module = type(error).__module__ or ""
    return "CompilationError" in names or module.startswith("triton.compiler")


def main(argv: list[str]) -> int:
    from evaluators.channel import Channel

    keep_memory_private()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(argv[0])
    channel = Channel(sock)
    try:
        worker = Worker(channel, Path(argv[0]).resolve().parent)
        worker.serve()
    except Exception as error:  # the judge reads EOF plus our stderr
        print(f"worker failed: {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        _exit(70)
    sys.stdout.flush()
    sys.stderr.flush()
    _exit(0)  # no candidate atexit handler or finalizer runs after the last answer
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
