"""Peak matmul throughput of this machine (for MFU) and known accelerator peaks."""
from __future__ import annotations

import time

import torch

# Dense bf16 peaks (TFLOP/s) of common training GPUs.
GPU_PEAK_TFLOPS = {"A100": 312.0, "H100": 989.0, "A10": 125.0, "L4": 121.0, "V100": 125.0}


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
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for key, tflops in GPU_PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{name} bf16 spec"
    return measure_matmul_peak(), "measured fp32 matmul"
