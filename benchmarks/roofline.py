"""Ceilings measured in the same run (memory bandwidth from a large copy, compute from a large
matmul), the roofline fraction of each case, the published peaks of the GPUs the benchmark
knows (for the fraction of the GPU's peak a case reaches), and projected H100 times.

A case's roofline time is max(FLOPs / compute ceiling, minimum bytes / bandwidth ceiling);
its fraction of the ceiling is that time over the measured time (1.0 = at the roofline). The
bandwidth ceiling is DRAM's: a case whose data stays in cache can exceed 1.0, and on this CPU
torch's oneDNN convolutions outrun the MKL sgemm that sets the compute ceiling.
The H100 projection applies the same roofline with the H100 SXM's published peaks: it is a
lower bound on what a GPU could do, never a measurement."""
from __future__ import annotations

import re

import torch

from benchmarks.timing import time_fn

# Published dense peaks in FLOP/s per dtype label (no structured sparsity: the datasheets'
# tensor figures marked "with sparsity" halved). float16, bfloat16 and float32+tf32 are the
# tensor cores' peaks; "float32" (no TF32) runs on the FP32 FMA units, whose peak it gets.
# Sources (boost clock, as the vendor states them):
#   H100 SXM and PCIe: NVIDIA H100 Tensor Core GPU datasheet,
#     https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet
#     (SXM: FP32 67, TF32 989*, BF16/FP16 1,979*; PCIe: FP32 51, TF32 756*, BF16/FP16 1,513*
#     TFLOPS, * = with sparsity; the 2022-23 editions list the PCIe card, later ones the NVL)
#   H200 SXM: NVIDIA H200 datasheet, https://www.nvidia.com/en-us/data-center/h200/
#     (FP32 67, TF32 989*, BF16/FP16 1,979* TFLOPS; the H100 SXM's compute, more memory)
#   A100 (SXM4 and PCIe, 40 and 80 GB): NVIDIA A100 datasheet,
#     https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf
#     (FP32 19.5, TF32 156, BF16/FP16 312 TFLOPS dense)
# Other GPUs (H100 NVL, H200 NVL, GH200, ...) run at other clocks and powers: "n/a".
GPU_PEAKS = {
    "H100 SXM": {"float32": 67e12, "float32+tf32": 494.5e12, "float16": 989.5e12, "bfloat16": 989.5e12},
    "H100 PCIe": {"float32": 51e12, "float32+tf32": 378e12, "float16": 756.5e12, "bfloat16": 756.5e12},
    "H200 SXM": {"float32": 67e12, "float32+tf32": 494.5e12, "float16": 989.5e12, "bfloat16": 989.5e12},
    "A100": {"float32": 19.5e12, "float32+tf32": 156e12, "float16": 312e12, "bfloat16": 312e12},
}

# H100 SXM published peaks (dense): HBM3 bandwidth (datasheet, 3.35 TB/s) and the above.
H100 = dict(GPU_PEAKS["H100 SXM"], bandwidth=3.35e12)


def gpu_peak_entry(name):
    """The GPU_PEAKS entry for a device name as torch.cuda.get_device_name() gives it (e.g.
    "NVIDIA H100 80GB HBM3" -- the SXM part --, "NVIDIA H100 PCIe", "NVIDIA H200",
    "NVIDIA A100-SXM4-80GB"), or None for a GPU the table does not hold."""
    n = (name or "").upper()
    if "NVL" in n:  # H100 NVL, H200 NVL: their own clocks and peaks
        return None
    if re.search(r"\bH100\b", n):
        return "H100 PCIe" if "PCIE" in n else "H100 SXM"
    if re.search(r"\bH200\b", n):  # not GH200 (no word boundary inside it)
        return "H200 SXM"
    if re.search(r"\bA100\b", n):  # not A100X, A800
        return "A100"
    return None


def gpu_peak_flops(name, dtype_label):
    """The published dense peak (FLOP/s) of GPU `name` for `dtype_label`, or None."""
    entry = gpu_peak_entry(name)
    return None if entry is None else GPU_PEAKS[entry].get(dtype_label)


def peak_fraction(flops, time_s, peak):
    """Achieved FLOP/s over the peak, or None when either is unknown."""
    if peak is None or time_s is None or time_s <= 0:
        return None
    return flops / time_s / peak


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
    out = {
        "bandwidth": 2 * src.numel() * src.element_size() / t_copy,
        "compute": 2.0 * n_mm ** 3 / t_mm,
        "matmul": 2.0 * n_mm ** 3 / t_mm,
        "copy_bytes": 2 * src.numel() * src.element_size(),
        "matmul_n": n_mm,
    }
    if device == "cpu":
        # The CPU's compute ceiling is its FMA peak at this thread count (fastalex's register-only
        # loop, csrc/cpu/fma_peak.cpp), not the library GEMM's rate: that may run a narrower code
        # path than the CPU has, and a case could then beat its own "ceiling".
        out["fma_peak"] = out["compute"] = torch.ops.fastalex.cpu_fma_peak(0.1 if quick else 0.5)
    return out


def roofline_time(flops, nbytes, ceilings):
    return max(flops / ceilings["compute"], nbytes / ceilings["bandwidth"])


def h100_projection(flops, nbytes, dtype_label):
    return max(flops / H100[dtype_label], nbytes / H100["bandwidth"])
