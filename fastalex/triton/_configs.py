"""Launch configurations of the Inception kernels: the autotuning space on a GPU, and one
small fixed configuration under the Triton interpreter."""
from __future__ import annotations

import os

import torch
import triton


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# (BLOCK_M output pixels, BLOCK_N output channels, BLOCK_K reduction, num_warps, num_stages)
# per kernel: the autotuning space on a GPU. Each list holds only configurations that
# compile for sm_90 without register spills in every dtype and precision it serves: all of
# them, or all but float32 where FLOAT32_CONFIGS has the kernel's float32 list
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
# Float32 inputs (IEEE or TF32 products) take these lists instead where the shared one spills
# in float32 under a Triton this project runs with: the float32 dot's operands take more
# registers. Triton 3.6 (the lent GPU machines') spilled 4-48 bytes in nine float32
# configurations that 3.8 (the pin) compiles clean; every entry here is spill-free under both.
# conv_kxk keeps its tile shapes with half the reduction block or one pipeline stage less; the
# general conv gives up its 128 x 64 tile for 64 x 32 (each 128-wide float32 variant tried
# spilled under one of the two).
FLOAT32_CONFIGS = {
    "conv_kxk": [(64, 64, 32, 4, 2), (128, 64, 16, 8, 3), (64, 128, 16, 8, 3), (32, 64, 32, 4, 2), (64, 64, 16, 4, 3)],
    "conv2d_relu": [(64, 64, 32, 4, 3), (64, 128, 32, 8, 2), (32, 64, 32, 4, 2), (128, 16, 32, 8, 2), (64, 32, 32, 4, 2)],
}
# Big enough blocks that the interpreter's per-operation overhead is amortised.
INTERPRETER_CONFIG = (64, 64, 32, 4, 1)


def configs_for(name: str, float32: bool) -> list[tuple]:
    """The configurations kernel `name` is autotuned over for float32 inputs or for the others."""
    return (FLOAT32_CONFIGS.get(name) if float32 else None) or GPU_CONFIGS[name]


def _key(config) -> tuple:
    kw = config.kwargs
    return kw["BLOCK_M"], kw["BLOCK_N"], kw["BLOCK_K"], config.num_warps, config.num_stages


def autotune_configs(name: str) -> list[triton.Config]:
    """Every configuration kernel `name` may run (both lists, each once)."""
    tuples = list(dict.fromkeys(GPU_CONFIGS[name] + FLOAT32_CONFIGS.get(name, [])))
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
        for m, n, k, w, s in tuples
    ]


def prune_by_dtype(name: str):
    """The autotuner's early_config_prune for kernel `name`: of its configurations, those for
    the call's input dtype (its x_ptr argument), configs_for's list. Triton keys its tuning
    cache by the arguments' dtypes too, so each dtype keeps its own choice."""
    def prune(configs, named_args, **kwargs):
        allowed = configs_for(name, named_args["x_ptr"].dtype == torch.float32)
        return [c for c in configs if _key(c) in allowed]
    return prune


def autotune(name: str, key: list[str]):
    """triton.autotune over autotune_configs(name), pruned per dtype where FLOAT32_CONFIGS has
    a list for the kernel."""
    prune = {"early_config_prune": prune_by_dtype(name)} if name in FLOAT32_CONFIGS else None
    return triton.autotune(configs=autotune_configs(name), key=key, prune_configs_by=prune)


def prepare(name, kernel, key):
    """The kernel launcher to use: autotuned over GPU_CONFIGS[name] (FLOAT32_CONFIGS[name] for
    float32 inputs) on a GPU, the bare kernel under the interpreter (launched with
    INTERPRETER_CONFIG's block sizes by the caller)."""
    if interpreting():
        return kernel, False
    return autotune(name, key)(kernel), True


def block_kwargs(autotuned: bool) -> dict:
    if autotuned:
        return {}
    m, n, k, w, s = INTERPRETER_CONFIG
    return {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "num_warps": w, "num_stages": s}
