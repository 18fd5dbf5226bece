"""Static checks: each cheat is named by its rule and line; every honest kernel passes every rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluators.static_checks import check_candidate
from tests.conftest import CANDIDATES

ROOT = Path(__file__).parent.parent.parent
HONEST = sorted(ROOT.glob("tasks/*/seeds/*.py")) + [
    CANDIDATES / name for name in ("relu_ok.py", "softmax_ok.py", "matmul_ok.py", "relu_zeros.py", "relu_nan.py")
] + [ROOT / "tasks" / "examples" / "relu_candidate.py"]

KERNEL = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def k(x_ptr, o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(o_ptr + offs, tl.load(x_ptr + offs, mask=offs < n), mask=offs < n)
'''


def candidate(prelude: str = "", forward: str = "out = torch.empty_like(x)\nk[(1,)](x, out, x.numel(), BLOCK=1024)\nreturn out",
              imports: str = "") -> str:
    body = "\n".join("        " + line for line in forward.splitlines())
    return (imports + KERNEL + "\n" + prelude + "\n\nclass ModelNew(nn.Module):\n    def forward(self, x):\n" + body + "\n")


def rules(source: str, strict: bool = False) -> dict[str, int | None]:
    report = check_candidate(source, strict=strict)
    return {f.rule: f.line for f in report.findings if f.severity == "reject"}


@pytest.mark.parametrize("path", HONEST, ids=[f"{p.parent.parent.name}/{p.name}" for p in HONEST])
def test_every_shipped_kernel_passes_every_rule_strict_too(path):
    for strict in (False, True):
        report = check_candidate(path.read_text(), strict=strict)
        assert report.compile_error is None and report.findings == [], [(f.rule, f.line, f.message) for f in report.findings]


@pytest.mark.parametrize(
    ("source", "rule", "marker"),
    [
        (candidate(imports="import os\n"), "forbidden-import", "import os"),
        (candidate(imports="from subprocess import run\n"), "forbidden-import", "subprocess"),
        (candidate(imports="from torch.utils.cpp_extension import load_inline\n"), "forbidden-import", "cpp_extension"),
        (candidate(forward="torch.serialization.os.system('id')\nreturn x"), "forbidden-module", "os.system"),
        (candidate(forward="return torch.sys.modules['kernelsmith_reference'].Model()(x)"), "forbidden-module", "torch.sys"),
        (candidate(forward="torch._C._cuda_synchronize()\nreturn x"), "private-internals", "torch._C"),
        (candidate(forward="return torch.ops.aten.relu(x)"), "torch-internals", "torch.ops"),
        (candidate(forward="mod = __import__('o' + 's')\nreturn x"), "dynamic-code", "__import__"),
        (candidate(forward="exec('import os')\nreturn x"), "dynamic-code", "exec"),
        (candidate(forward="getattr(torch, 'o' + 's')\nreturn x"), "dynamic-code", "getattr"),
        (candidate(forward="g = self.forward.__globals__\nreturn x"), "escape-attribute", "__globals__"),
        (candidate(forward="c = ().__class__.__base__.__subclasses__()\nreturn x"), "escape-attribute", "__subclasses__"),
        (candidate(forward="b = torch.__builtins__\nreturn x"), "escape-attribute", "__builtins__"),
        (candidate(prelude="torch.cuda.Event.elapsed_time = lambda self, end: 0.001"), "monkey-patch", "torch.cuda.Event.elapsed_time ="),
        (candidate(prelude="E = torch.cuda.Event\nE.elapsed_time = lambda self, end: 0.001"), "monkey-patch", "E.elapsed_time ="),
        (candidate(prelude="torch.allclose = lambda *a, **k: True"), "monkey-patch", "torch.allclose ="),
        (candidate(prelude="setattr(torch, 'allclose', lambda *a, **k: True)"), "monkey-patch", "setattr"),
        (candidate(prelude="torch.backends.cudnn.allow_tf32 = True"), "monkey-patch", "allow_tf32"),
        (candidate(forward="with open('/etc/passwd') as f:\n    f.read()\nreturn x"), "file-access", "open("),
        (candidate(prelude="class Lazy(torch.Tensor):\n    pass"), "tensor-subclass", "class Lazy"),
        (candidate(forward="try:\n    k[(1,)](x, x, 1, BLOCK=3)\nexcept Exception:\n    return torch.relu(x)\nreturn x"),
         "try-fallback", "except"),
        (candidate(forward="try:\n    k[(1,)](x, x, 1, BLOCK=3)\nexcept Exception:\n    pass\nreturn x"), "try-fallback", "except"),
        (candidate(prelude="class Model(nn.Module):\n    pass").replace("class ModelNew(nn.Module)", "class ModelNew(Model)"),
         "inherits-reference", "class ModelNew(Model)"),
        (candidate(forward="return Model()(x)"), "calls-reference", "Model()"),
        (candidate(forward="return torch.compile(torch.relu)(x)"), "torch-compile", "torch.compile"),
    ],
)
def test_each_cheat_is_named_with_its_line(source, rule, marker):
    found = rules(source)
    assert rule in found, found
    assert marker in source.splitlines()[found[rule] - 1], (found, marker)


def test_strict_mode_bans_torch_compute_outside_the_kernels_only():
    torch_compute = candidate(forward="out = torch.empty_like(x)\nk[(1,)](x, out, x.numel(), BLOCK=1024)\nreturn out.exp()")
    assert "strict-torch-compute" not in rules(torch_compute)
    found = rules(torch_compute, strict=True)
    assert list(found) == ["strict-torch-compute"] and "out.exp()" in torch_compute.splitlines()[found["strict-torch-compute"] - 1]
    assert rules(candidate(forward="return F.relu(x)", imports="import torch.nn.functional as F\n"), strict=True)
    assert rules(candidate(forward="return x @ x"), strict=True)
    # allocation, layout and metadata stay allowed, and __init__ may compute (parameters)
    allowed = candidate(forward="y = x.contiguous().view(-1)\nout = torch.zeros_like(y)\nn = y.numel() * y.element_size()\n"
                                "k[(triton.cdiv(n, 1024),)](y, out, n, BLOCK=1024)\nreturn out.reshape(x.shape)")
    allowed = allowed.replace("    def forward", "    def __init__(self):\n        super().__init__()\n"
                                                  "        self.w = nn.Parameter(torch.randn(4).exp())\n\n    def forward")
    assert rules(allowed, strict=True) == {}


def test_a_candidate_without_a_kernel_is_rejected_and_one_without_modelnew_does_not_compile():
    assert rules("import torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return x\n") == {
        "no-triton-kernel": None}
    assert check_candidate("import torch\nx = 1\n").compile_error is not None
