"""The speed of light: the floor a device's memory and arithmetic put under a forward's time."""

from __future__ import annotations

import pytest

from evaluators.speed_of_light import MARGIN, lower_bound, table_peak

GIB = 1 << 30


@pytest.mark.parametrize(
    ("name", "bandwidth"),
    [("NVIDIA H100 80GB HBM3", 3.35e12), ("NVIDIA H100 PCIe", 2.0e12), ("NVIDIA H200", 4.8e12),
     ("NVIDIA A100-SXM4-80GB", 2.039e12)],
)
def test_known_devices_have_data_sheet_peaks(name, bandwidth):
    peak = table_peak(name)
    assert peak is not None and peak.bytes_per_s == bandwidth


def test_an_unknown_device_has_no_table_peak():
    assert table_peak("Some Future Accelerator") is None


def test_an_honest_memory_bound_kernel_stays_above_the_floor():
    peak = table_peak("NVIDIA H100 80GB HBM3")
    l2 = 50 << 20
    bound = lower_bound(peak, GIB, GIB, 0, l2)
    assert bound.floor_ms == pytest.approx((2 * GIB - l2) / peak.bytes_per_s * 1000 / MARGIN)
    best_honest_ms = 2 * GIB / (0.92 * peak.bytes_per_s) * 1000  # read and write at 92% of the peak
    assert best_honest_ms > 1.2 * bound.floor_ms
    assert "bytes" in bound.reason
    # outputs that fit in the L2 may not have reached memory when the end event fires
    assert lower_bound(peak, GIB, l2, 0, l2).floor_ms == pytest.approx(GIB / peak.bytes_per_s * 1000 / MARGIN)


def test_a_large_matmul_is_bounded_by_arithmetic():
    peak = table_peak("NVIDIA H200")
    n = 8192
    bound = lower_bound(peak, 2 * n * n * 2, n * n * 2, 2 * n**3, 50 << 20)
    assert "FLOPs" in bound.reason
    assert bound.floor_ms == pytest.approx(2 * n**3 / peak.flops_per_s * 1000 / MARGIN)
