"""The fastest a forward can physically run on a device: a time under it was not measured honestly.

A forward must read its inputs from memory (the L2 is flushed before every repetition) and do
the reference's FLOPs, so its time is bounded below by bytes / peak bandwidth and by
FLOPs / peak FLOP/s. Peaks come from a small table by device name (vendor data-sheet figures);
for devices not in it, the copy bandwidth measured on the device stands in. The bound is divided
by a generous margin: it catches timings that are impossible, never ones that are merely good.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MARGIN = 1.5


@dataclass(frozen=True)
class Peak:
    bytes_per_s: float
    flops_per_s: float | None  # dense bf16 tensor-core peak: above every dtype's


# the first name contained in the device's name wins: more specific names first
PEAKS: list[tuple[str, Peak]] = [
    ("H100 PCIe", Peak(2.0e12, 756e12)),
    ("H100 NVL", Peak(3.9e12, 835e12)),
    ("H100", Peak(3.35e12, 989e12)),
    ("H800", Peak(3.35e12, 989e12)),
    ("H200", Peak(4.8e12, 989e12)),
    ("H20", Peak(4.0e12, 148e12)),
    ("GH200", Peak(4.9e12, 989e12)),
    ("B200", Peak(8.0e12, 2250e12)),
    ("A100-PCIE-40GB", Peak(1.555e12, 312e12)),
    ("A100", Peak(2.039e12, 312e12)),
    ("A800", Peak(2.039e12, 312e12)),
    ("L40S", Peak(0.864e12, 362e12)),
    ("L4", Peak(0.3e12, 121e12)),
    ("A10", Peak(0.6e12, 125e12)),
    ("V100", Peak(0.9e12, 125e12)),
]


def table_peak(device_name: str) -> Peak | None:
    for name, peak in PEAKS:
        if name.lower() in device_name.lower():
            return peak
    return None


def measured_copy_bandwidth(device: torch.device, size_bytes: int = 256 << 20, repetitions: int = 10) -> float:
    """Bytes per second moved by a device-to-device copy (read plus write), the best of a few."""
    src = torch.empty(size_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    dst.copy_(src)
    best_ms = float("inf")
    for _ in range(repetitions):
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        best_ms = min(best_ms, start.elapsed_time(end))
    del src, dst
    return 2 * size_bytes / (best_ms / 1000.0)


@dataclass
class Bound:
    floor_ms: float
    reason: str


def lower_bound(
    peak: Peak, input_bytes: int, output_bytes: int, flops: int, l2_bytes: int = 0, margin: float = MARGIN
) -> Bound:
    """The least time a forward can take, divided by `margin`, and which limit sets it.

    Outputs may stay in the L2 when the end event is recorded, so only what cannot fit there counts.
    """
    moved = input_bytes + max(0, output_bytes - l2_bytes)
    memory_ms = moved / peak.bytes_per_s * 1000.0 / margin
    compute_ms = flops / peak.flops_per_s * 1000.0 / margin if peak.flops_per_s and flops else 0.0
    if compute_ms > memory_ms:
        return Bound(compute_ms, f"{flops:.3g} FLOPs at {peak.flops_per_s:.3g} FLOP/s / {margin:g}")
    return Bound(memory_ms, f"{moved:.3g} bytes at {peak.bytes_per_s:.3g} B/s / {margin:g}")
