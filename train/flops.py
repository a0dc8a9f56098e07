"""Peak matmul throughput of this machine (for MFU) and known accelerator peaks."""
from __future__ import annotations

import time

import torch

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets, most
# specific name first (V100 has no bf16: its fp16 peak).  Matched against
# torch.cuda.get_device_name(), e.g. "NVIDIA H100 80GB HBM3" (SXM) or "NVIDIA H100 PCIe".
GPU_PEAK_TFLOPS = [
    ("GB200", 2500.0), ("B200", 2250.0), ("B100", 1750.0),
    ("H200", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4), ("H800", 989.4),
    ("GH200", 989.4), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0),
    ("A6000", 154.8), ("A40", 149.7), ("A30", 165.0), ("A10G", 70.0), ("A10", 125.0), ("L4", 121.0),
    ("V100", 125.0),
]


def gpu_peak_flops(name: str) -> float | None:
    """The dense bf16 peak of a GPU by its device name, or None when not in the table."""
    for key, tflops in GPU_PEAK_TFLOPS:
        if key in name:
            return tflops * 1e12
    return None


def measure_matmul_peak(n: int = 1024, dtype=torch.float32, seconds: float = 0.5) -> float:
    """Achieved FLOP/s of an n x n matmul loop on this process's threads (CPU or current GPU)."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(n, n, dtype=dtype, device=dev)
    b = torch.randn(n, n, dtype=dtype, device=dev)
    for _ in range(3):
        a @ b
    if dev == "cuda":
        torch.cuda.synchronize()
    iters, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        iters += 1
    if dev == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * iters / (time.perf_counter() - t0)


def device_peak_flops() -> tuple[float, str]:
    """(peak FLOP/s, where it comes from) for MFU: the data-sheet bf16 peak of a known GPU;
    else a measured matmul peak, saying so (MFU against it is not comparable to papers')."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        peak = gpu_peak_flops(name)
        if peak is not None:
            return peak, f"{name} bf16 data sheet"
        return (measure_matmul_peak(4096, torch.bfloat16),
                f"{name} is not in the peak table: measured bf16 matmul, MFU not comparable to published")
    return measure_matmul_peak(), "measured fp32 matmul"
