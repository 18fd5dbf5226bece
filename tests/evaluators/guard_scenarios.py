"""Runs candidate code under the worker's runtime guards and prints what each scenario left: JSON lines.

A separate process because an audit hook can never be removed: `python guard_scenarios.py`.
Used by test_guards.py.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "1"

CANDIDATE = '''
import torch
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n)
    tl.store(out_ptr + offs, tl.maximum(x, 0.0), mask=offs < n)


def kernel(workdir):
    x = torch.randn(3000)
    out = torch.empty_like(x)
    relu_kernel[(triton.cdiv(3000, 1024),)](x, out, 3000, BLOCK=1024)
    assert torch.equal(out, x.clamp(min=0))


def read_inside(workdir):
    with open(workdir + "/data.txt") as f:
        f.read()


def write_inside(workdir):
    with open(workdir + "/out.txt", "w") as f:
        f.write("x")


def read_outside(workdir):
    open("/etc/hostname").read()


def write_outside(workdir):
    open(workdir + "/../escaped.txt", "w").write("x")


def torch_load_outside(workdir):
    torch.load("/etc/hostname")


def import_forbidden(workdir):
    import os  # noqa


def thread(workdir):
    stop = torch.threading.Event()
    torch.threading.Thread(target=stop.wait, args=(5,), daemon=True).start()


def signal_handler(workdir):
    signal = torch.sys.modules["signal"]
    signal.signal(signal.SIGUSR1, lambda *args: None)


def realtime_signal_handler(workdir):
    signal = torch.sys.modules["signal"]
    signal.signal(signal.SIGRTMIN + 1, lambda *args: None)


def patch(workdir):
    torch.allclose = lambda *args, **kwargs: True


def getframe(workdir):
    torch.sys._getframe()


def os_exit(workdir):
    torch.os._exit(3)


def exec_code(workdir):
    exec("y = 1")


def spawn_through_triton(workdir):
    triton.testing.subprocess.run(["true"])


def socket_open(workdir):
    torch.sys.modules["socket"].socket()
'''


def main() -> None:
    import torch

    from evaluators.compat import LaunchCounter
    from evaluators.guards import Guard
    from evaluators.ops import OpRecorder
    from evaluators.worker import import_guarded

    workdir = Path(tempfile.mkdtemp(prefix="kernelsmith-guards-"))
    (workdir / "data.txt").write_text("inside")
    guard = Guard(workdir)
    guard.install()
    LaunchCounter().install()
    # a worker whose task failed to load reports before any baseline was taken
    print(json.dumps({"scenario": "before_baseline", "findings": guard.findings(), "error": None}), flush=True)
    guard.baseline()
    path = workdir / "candidate.py"
    path.write_text(CANDIDATE)
    guard.candidate_file = str(path.resolve())
    module = import_guarded(path.resolve(), "candidate", guard.candidate_builtins())
    print(json.dumps({"scenario": "import", "findings": guard.findings(), "error": None}), flush=True)
    for name in sys.argv[1:]:
        recorder = OpRecorder()
        guard.recorder = recorder
        error = None
        guard.enter()
        try:
            with recorder:
                getattr(module, name)(str(workdir))
        except BaseException as failure:  # what the candidate would see
            error = type(failure).__name__
        guard.recorder = None
        guard.leave()
        findings = guard.findings()
        print(json.dumps({"scenario": name, "findings": findings, "error": error, "ops": recorder.compute_ops}),
              flush=True)
        if name == "patch":  # put it back, so that later scenarios report only their own
            torch.allclose = guard._snapshot["torch"][1]["allclose"]
        if name == "signal_handler":
            import signal

            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        if name == "realtime_signal_handler":
            import signal

            signal.signal(signal.SIGRTMIN + 1, signal.SIG_DFL)


if __name__ == "__main__":
    main()
