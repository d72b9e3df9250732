"""Mixed precision (--amp) on CUDA: torch.autocast in float16 with a gradient scaler.

torch.autocast casts only the torch ops it knows; fastalex's ops are custom ops, so without a
rule they would meet float16 activations (from the torch ops between them: BatchNorm and
convolutions in training mode, average pools) with float32 weights. The rules registered here
cast every floating-point input of fastalex's ops to float16 under CUDA autocast (the CUDA
kernels accumulate half types in float32). CPU kernels take float32 and float64 only, so --amp
needs a CUDA device. Not yet run on a GPU."""
from __future__ import annotations

import torch

_OPS = ("conv2d_relu", "conv2d_relu_triton", "linear", "local_response_norm", "max_pool2d", "lrn_max_pool2d",
        "max_pool2d_lrn", "inception_triton", "inception")
_registered = False


def register_autocast_rules():
    global _registered
    if _registered:
        return
    for name in _OPS:
        if hasattr(torch.ops.fastalex, name):
            torch.library.register_autocast(f"fastalex::{name}", "cuda", torch.float16)
    _registered = True


def autocast():
    return torch.autocast("cuda", dtype=torch.float16)


def grad_scaler():
    return torch.amp.GradScaler("cuda")
