"""Launch configurations of the Inception kernels: the autotuning space on a GPU, and one
small fixed configuration under the Triton interpreter."""
from __future__ import annotations

import os

import triton


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# (BLOCK_M output pixels, BLOCK_N output channels, BLOCK_K reduction, num_warps, num_stages)
# per kernel: the autotuning space on a GPU. Each list holds only configurations that
# compile for sm_90 without register spills in every dtype and precision the kernel runs
# (scripts/triton_resources.py checks this in CI); larger tiles spill, mostly in float32.
GPU_CONFIGS = {
    "inception_1x1": [(64, 64, 32, 4, 3), (128, 64, 32, 8, 2), (64, 128, 32, 8, 2), (32, 64, 32, 4, 2), (64, 32, 32, 4, 2)],
    "conv_kxk": [(64, 64, 32, 4, 3), (128, 64, 32, 8, 3), (64, 128, 32, 8, 2), (32, 64, 32, 4, 2), (64, 64, 16, 4, 3)],
    # The pooled tile (nine masked gathers) is register-hungry: small reduction blocks.
    "pool_proj": [(32, 64, 16, 4, 2), (64, 64, 16, 8, 2), (32, 128, 16, 4, 2), (16, 64, 32, 4, 2)],
    # The general conv (conv2d_relu.py): the last, narrow in output channels, for groups of few
    # output channels (depthwise-like convolutions).
    "conv2d_relu": [(64, 64, 32, 4, 3), (128, 64, 32, 8, 3), (64, 128, 32, 8, 2), (32, 64, 32, 4, 2), (128, 16, 32, 8, 2)],
}
# Big enough blocks that the interpreter's per-operation overhead is amortised.
INTERPRETER_CONFIG = (64, 64, 32, 4, 1)


def autotune_configs(name: str) -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
        for m, n, k, w, s in GPU_CONFIGS[name]
    ]


def prepare(name, kernel, key):
    """The kernel launcher to use: autotuned over GPU_CONFIGS[name] on a GPU, the bare kernel
    under the interpreter (launched with INTERPRETER_CONFIG's block sizes by the caller)."""
    if interpreting():
        return kernel, False
    return triton.autotune(configs=autotune_configs(name), key=key)(kernel), True


def block_kwargs(autotuned: bool) -> dict:
    if autotuned:
        return {}
    m, n, k, w, s = INTERPRETER_CONFIG
    return {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "num_warps": w, "num_stages": s}
