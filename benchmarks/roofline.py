"""Ceilings measured in the same run (memory bandwidth from a large copy, compute from a large
matmul), the roofline fraction of each case, and projected H100 times.

A case's roofline time is max(FLOPs / compute ceiling, minimum bytes / bandwidth ceiling);
its fraction of the ceiling is that time over the measured time (1.0 = at the roofline). The
bandwidth ceiling is DRAM's: a case whose data stays in cache can exceed 1.0, and on this CPU
torch's oneDNN convolutions outrun the MKL sgemm that sets the compute ceiling.
The H100 projection applies the same roofline with the H100 SXM's published peaks: it is a
lower bound on what a GPU could do, never a measurement."""
from __future__ import annotations

import torch

from benchmarks.timing import time_fn

# H100 SXM published peaks (dense): HBM3 bandwidth and tensor-core / FMA throughput.
H100 = {
    "bandwidth": 3.35e12,
    "float32": 67e12,        # FP32 FMA (no tensor cores)
    "float32+tf32": 494.7e12,
    "float16": 989.4e12,
    "bfloat16": 989.4e12,
}


def measure_ceilings(device, dtype_label, quick=False):
    """{'bandwidth': bytes/s (read + write), 'compute': FLOP/s} measured now on `device`."""
    # Big enough to stream from DRAM (the CPU's caches are tens of MB) and to reach the
    # matmul's plateau. The best of the repetitions (the 20% quantile) is the ceiling.
    if device == "cuda":
        n_copy, n_mm = (1 << 28) if not quick else (1 << 26), 8192 if not quick else 4096
    else:
        n_copy, n_mm = 1 << 25, 2048
    src = torch.randn(n_copy, device=device)
    dst = torch.empty_like(src)
    t_copy = time_fn(lambda: dst.copy_(src), device, quick)[1]
    dtype = {"float32": torch.float32, "float32+tf32": torch.float32, "float16": torch.float16,
             "bfloat16": torch.bfloat16}[dtype_label]
    a = torch.randn(n_mm, n_mm, device=device, dtype=dtype)
    b = torch.randn(n_mm, n_mm, device=device, dtype=dtype)
    t_mm = time_fn(lambda: torch.mm(a, b), device, quick)[1]
    return {
        "bandwidth": 2 * src.numel() * src.element_size() / t_copy,
        "compute": 2.0 * n_mm ** 3 / t_mm,
        "copy_bytes": 2 * src.numel() * src.element_size(),
        "matmul_n": n_mm,
    }


def roofline_time(flops, nbytes, ceilings):
    return max(flops / ceilings["compute"], nbytes / ceilings["bandwidth"])


def h100_projection(flops, nbytes, dtype_label):
    return max(flops / H100[dtype_label], nbytes / H100["bandwidth"])
