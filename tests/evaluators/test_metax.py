"""The maca-metax backend without MetaX hardware: detection on a fake device tree, mx-smi's table from
a fake `mx-smi` (tests/evaluators/fake_mx_smi prints a reconstruction of its recorded layouts, not
output captured from a MetaX GPU), the worker's environment and docker flags, and the Triton 3.0 API
paths of evaluators.compat that MetaX's fork shares (`make test-triton30` runs this file on 3.0.0).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from evaluators.backends import BackendUnavailable, HostFacts, resolve
from evaluators.compat import do_bench_arguments
from evaluators.metax import MxSmiError, detect, parse_mx_smi, run_mx_smi
from evaluators.protocol import Backend, Stage, Status
from evaluators.worker_env import worker_environment
from tests.conftest import make_request

FAKE_MX_SMI = Path(__file__).parent / "fake_mx_smi"


@pytest.fixture
def metax_root(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A file tree shaped like a MetaX host's, and an environment with mx-smi on PATH and MACA_PATH set."""
    root = tmp_path / "host"
    (root / "dev" / "dri").mkdir(parents=True)
    (root / "dev" / "mxcd").touch()
    maca = root / "opt" / "maca"
    for part in ("mxgpu_llvm/bin/mxcc", "lib/maca_mathlib.bc"):
        (maca / part).parent.mkdir(parents=True, exist_ok=True)
        (maca / part).touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mx-smi").symlink_to(FAKE_MX_SMI)
    return root, {"PATH": f"{bin_dir}:/usr/bin:/bin", "MACA_PATH": str(maca)}


# -- mx-smi ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("layout", "names", "memory", "versions"), [
    ("2.2.4", ["MetaX C500", "MetaX C500"], [65536, 65536], ("2.33.0.5", "2.14.8")),
    ("2.2.9", ["MetaX C550"], [65536], ("3.3.0.15", "3.4.4")),
])
def test_mx_smi_table_is_read_in_both_recorded_layouts(monkeypatch, layout, names, memory, versions):
    monkeypatch.setenv("FAKE_MX_SMI_LAYOUT", layout)
    report = run_mx_smi(str(FAKE_MX_SMI))
    assert [d.name for d in report.devices] == names
    assert [d.memory_total_mib for d in report.devices] == memory
    assert [d.index for d in report.devices] == list(range(len(names))) and report.attached == len(names)
    assert (report.maca_version, report.driver_version, report.smi_version) == (*versions, layout)
    assert report.devices[0].bus_id and report.devices[0].state == "Available"
    assert report.versions() == f"MACA {versions[0]}, driver {versions[1]}"


def test_mx_smi_failures_say_what_happened(monkeypatch, metax_root):
    with pytest.raises(MxSmiError, match="no device table"):
        parse_mx_smi("mx-smi  version: 2.2.4\nNo devices were found\n")
    monkeypatch.setenv("FAKE_MX_SMI_FAIL", "1")
    root, env = metax_root
    host = detect(root, env, query=True)
    assert host.present and host.report is None
    assert any("driver not loaded" in gap for gap in host.missing())


# -- detection -------------------------------------------------------------------------------

def test_a_metax_host_is_found_with_its_devices_and_only_metax_triton_missing(metax_root):
    root, env = metax_root
    host = detect(root, env, query=True)
    assert host.present
    assert host.evidence() == [f"device node {root}/dev/mxcd", f"mx-smi at {Path(env['PATH'].split(':')[0])}/mx-smi",
                               f"MACA_PATH={env['MACA_PATH']}"]
    assert [d.describe() for d in host.report.devices] == ["MetaX C500, 65536 MiB"] * 2
    # Triton here is upstream's, not MetaX's fork: the one thing this tree lacks
    assert len(host.missing()) == 1 and "MetaX's Triton" in host.missing()[0]
    os.unlink(Path(env["MACA_PATH"]) / "mxgpu_llvm/bin/mxcc")
    assert "$MACA_PATH/mxgpu_llvm/bin/mxcc" in detect(root, env).missing()


@pytest.mark.parametrize("sign", ["device node", "mx-smi in the driver's folder", "MACA_PATH", "triton target"])
def test_any_one_sign_marks_a_metax_host(tmp_path, sign):
    env = {"PATH": "/usr/bin:/bin"}
    assert not detect(tmp_path, env).present
    target = None
    if sign == "device node":
        (tmp_path / "dev").mkdir()
        (tmp_path / "dev" / "mxcd").touch()
    elif sign == "MACA_PATH":
        env["MACA_PATH"] = "/opt/maca"
    elif sign == "triton target":
        target = "maca"
    else:  # not on PATH: found where MetaX's driver package puts it
        (tmp_path / "opt" / "mxdriver" / "bin").mkdir(parents=True)
        (tmp_path / "opt" / "mxdriver" / "bin" / "mx-smi").symlink_to(FAKE_MX_SMI)
    assert detect(tmp_path, env, triton_target=target).present


# -- the backend it gives: environment and docker flags ----------------------------------------

def test_auto_picks_maca_metax_there_and_pins_the_gpu_for_workers_and_containers(metax_root, monkeypatch, tmp_path):
    root, env = metax_root
    # torch cannot see a GPU on this machine: the count is the one fact the fake tree cannot give
    facts = replace(HostFacts.probe(root, env), gpu_count=2)
    for variable in ("MACA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(variable, raising=False)
    spec = resolve(Backend.auto, 1, facts)
    assert spec.backend == Backend.maca_metax and spec.torch_device == "cuda:1" and spec.measures_time
    monkeypatch.setenv("MACA_PATH", env["MACA_PATH"])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    worker = worker_environment(spec, tmp_path)  # what the process sandbox starts a worker with
    assert worker["MACA_VISIBLE_DEVICES"] == worker["CUDA_VISIBLE_DEVICES"] == "1"
    assert worker["MACA_MPS_MODE"] == "1" and worker["TRITON_INTERPRET"] == "0"
    assert worker["MACA_PATH"] == env["MACA_PATH"] and "OPENAI_API_KEY" not in worker
    assert spec.docker_devices() == ["/dev/dri:/dev/dri:rwm", "/dev/mxcd:/dev/mxcd:rwm"]
    assert spec.docker_group_add() == ["video"] and spec.docker_device_requests() == []
    assert spec.container_env()["MACA_VISIBLE_DEVICES"] == "1"  # every GPU's files go in: host numbering
    # an evaluator started on part of the host numbers its GPUs from 0; workers get the host's number
    monkeypatch.setenv("MACA_VISIBLE_DEVICES", "4,5")
    assert spec.worker_env()["MACA_VISIBLE_DEVICES"] == spec.worker_env()["CUDA_VISIBLE_DEVICES"] == "5"
    monkeypatch.delenv("MACA_VISIBLE_DEVICES")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "6,7")
    assert spec.worker_env()["MACA_VISIBLE_DEVICES"] == "7"


def test_without_metax_signs_a_gpu_is_nvidia_requested_by_its_host_index(tmp_path, monkeypatch):
    facts = replace(HostFacts.probe(tmp_path, {"PATH": "/usr/bin:/bin"}), gpu_count=4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    spec = resolve(Backend.auto, 1, facts)
    assert spec.backend == Backend.triton_nvidia
    assert spec.worker_env()["CUDA_VISIBLE_DEVICES"] == "3" and "MACA_VISIBLE_DEVICES" not in spec.worker_env()
    assert spec.docker_device_requests() == [{"driver": "nvidia", "device_ids": ["3"], "capabilities": [["gpu"]]}]
    assert spec.container_env()["CUDA_VISIBLE_DEVICES"] == "0"  # the container sees only that GPU
    assert spec.docker_devices() == [] and spec.docker_group_add() == []
    with pytest.raises(BackendUnavailable, match="no sign of a MetaX host"):
        resolve(Backend.maca_metax, 0, facts)
    with pytest.raises(BackendUnavailable, match="GPU 4 does not exist"):
        resolve(Backend.auto, 4, facts)


def test_here_without_a_gpu_auto_is_the_interpreter_and_maca_metax_says_what_to_install(metax_root):
    root, env = metax_root
    facts = HostFacts.probe(root, env)  # the real probe: torch on this machine sees no GPU
    assert facts.gpu_count == 0 and facts.metax.triton_target is None
    interpret = resolve(Backend.auto, None, facts)
    assert interpret.backend == Backend.triton_interpret and interpret.docker_devices() == []
    with pytest.raises(BackendUnavailable, match="install MetaX's PyTorch build"):
        resolve(Backend.maca_metax, None, facts)


# -- Triton 3.0 API paths (MetaX's fork is built on Triton 3.0.0) ----------------------------

NO_LAUNCH = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=offs < n), 0.0), mask=offs < n)


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x)  # the kernel exists but never runs
'''


def test_a_forward_that_launches_no_triton_kernel_is_rejected(interpret_judge):
    result = interpret_judge.evaluate(make_request("relu_reference.py", NO_LAUNCH))
    assert (result.status, result.stage) == (Status.rejected, Stage.correctness)
    assert [f.rule for f in result.findings] == ["no-triton-launch"]


COUNTED = '''
import json, torch, triton, triton.language as tl
from evaluators.compat import LaunchCounter

counter = LaunchCounter()
counter.install()

@triton.jit
def add_one(x_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=offs < n) + 1, mask=offs < n)

@triton.autotune(configs=[triton.Config({"BLOCK": 32})], key=["n"])
@triton.jit
def add_two(x_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=offs < n) + 2, mask=offs < n)

x = torch.zeros(100)
current = [7]  # stands for the current CUDA stream while timing: the interpreter has none
counter.watch_stream(7, lambda: current[0])
add_one[(4,)](x, 100, BLOCK=32)
current[0] = 8  # the candidate switched streams
add_one.run(x, 100, BLOCK=32, grid=(4,), warmup=False)
add_one.run(x, 100, BLOCK=32, grid=(4,), warmup=True)  # compiles (or nothing, interpreted): no launch
add_two[(4,)](x, 100)
off_stream = counter.off_stream
counter.watch_stream(None)
add_one[(4,)](x, 100, BLOCK=32)  # not timing: no stream to hold it to
intact = counter.intact()
import triton.runtime.jit as jit
jit.JITFunction.run = jit.JITFunction.run.__wrapped__  # what a candidate undoing the counter does
print(json.dumps({"count": counter.count, "kernels": counter.kernels, "x": x[0].item(),
                  "intact": intact, "after_undo": counter.intact(), "off_stream": off_stream,
                  "off_stream_after": counter.off_stream}))
'''


def test_launches_are_counted_through_every_entry_point_of_this_triton(tmp_path):
    script = tmp_path / "counted.py"
    script.write_text(textwrap.dedent(COUNTED))  # triton.jit reads kernel source from a file
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["x"] == 5.0  # the kernels really ran: 1 + 1 + 2 + 1
    assert seen["count"] == 4 and seen["kernels"] == {"add_one": 3, "add_two": 1}
    assert seen["intact"] is True and seen["after_undo"] is False
    # launches issued while another stream was current, autotuned ones included; none once unwatched
    assert seen["off_stream"] == 2 and seen["off_stream_after"] == 0


def test_do_bench_gets_arguments_this_triton_accepts_and_asks_for_the_median():
    from triton.testing import do_bench

    parameters = inspect.signature(do_bench).parameters
    kwargs = do_bench_arguments(parameters, warmup_ms=10, rep_ms=50)
    inspect.signature(do_bench).bind(lambda: None, **kwargs)  # raises on a name this Triton lacks
    assert kwargs.get("return_mode") == "median" or kwargs.get("quantiles") == [0.5]
    assert ("fast_flush" in kwargs) == ("fast_flush" in parameters)
