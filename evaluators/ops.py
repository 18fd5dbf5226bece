"""Which aten ops a forward runs, and how many FLOPs the reference needs.

Trusted code on both sides uses this: the worker records the ops a candidate's forward runs
outside its Triton launches; the judge records the reference's once per task. An op counts as
compute unless it only allocates, fills with a constant, moves, views or describes a tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Allowed even in strict mode: none of these computes anything from the inputs' values.
NON_COMPUTE = frozenset(
    {
        # allocation and constant fills (a split-K kernel accumulates into torch.zeros)
        "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like",
        "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full", "arange",
        "scalar_tensor", "zero_", "fill_", "lift_fresh", "lift_fresh_copy", "resize_", "set_",
        # views and layout
        "view", "_unsafe_view", "reshape", "_reshape_alias", "permute", "transpose", "t", "expand",
        "expand_as", "squeeze", "unsqueeze", "slice", "select", "as_strided", "alias", "detach", "narrow",
        "unflatten", "flatten", "view_as", "split", "split_with_sizes", "chunk", "unbind", "movedim",
        "contiguous",
        # data movement and dtype or device conversion (precision is judged by the comparison)
        "clone", "copy_", "_to_copy", "to",
        # metadata
        "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "is_contiguous", "_local_scalar_dense",
    }
)


def op_name(func: Any) -> str:
    """`aten.relu` for aten.relu.default: the overload packet, so overloads compare equal."""
    packet = getattr(func, "overloadpacket", None)
    return str(packet if packet is not None else func)


def is_compute(name: str) -> bool:
    namespace, _, op = name.partition(".")
    if namespace != "aten":
        return namespace not in ("prim", "profiler")
    return op not in NON_COMPUTE


class OpRecorder(TorchDispatchMode):
    """Records the aten ops that run while it is active, except while `paused` (Triton launches)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()
        self.paused = 0

    @property
    def compute_ops(self) -> list[str]:
        return sorted(name for name in self.ops if is_compute(name))


def _record(self: OpRecorder, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
    if not self.paused:
        self.ops.add(op_name(func))
    return func(*args, **(kwargs or {}))


# Set after the class exists: torch wraps a __torch_dispatch__ defined in the class body in a
# lazy dynamo guard whose first call imports torch._dynamo (a second per worker) and replaces
# torch.manual_seed, which the timing checks watch.
OpRecorder.__torch_dispatch__ = _record  # type: ignore[method-assign,assignment]


@dataclass
class ReferenceProfile:
    """What the reference's forward does on one trial's inputs: its compute ops and FLOPs."""

    compute_ops: list[str] = field(default_factory=list)
    flops: int = 0


def profile_reference(model: torch.nn.Module, inputs: list[Any]) -> ReferenceProfile:
    from torch.utils.flop_counter import FlopCounterMode

    recorder = OpRecorder()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter, recorder:
        model(*inputs)
    return ReferenceProfile(compute_ops=recorder.compute_ops, flops=int(counter.get_total_flops()))


def recomputes_reference(candidate_ops: list[str], reference_ops: list[str]) -> bool:
    """Does the candidate's forward run every compute op of the reference itself, in torch?"""
    return bool(reference_ops) and set(reference_ops) <= set(candidate_ops)
