"""torch's TF32 flags, read the way torch's own CUDA ops read them.

Convolutions (fastalex's CUDA conv, the Inception module's Triton kernels) multiply float32 in
TF32 exactly when torch's cuDNN convolutions would: ``torch.backends.cudnn.allow_tf32`` (on by
default). fastalex's ``linear`` on CUDA is ``at::addmm`` / ``at::mm``, the very call
``F.linear`` makes, so cuBLAS follows ``torch.backends.cuda.matmul.allow_tf32`` (off by
default) for it with nothing to read here.
"""
from __future__ import annotations

import torch


def conv_tf32_enabled() -> bool:
    """Whether torch's convolutions would use TF32 for float32 now.

    torch >= 2.9 keeps per-op precisions: its convolutions read
    ``torch.backends.cudnn.conv.fp32_precision == "tf32"`` (C++ ``allowTF32CuDNN(CONV)``),
    which setting ``torch.backends.cudnn.allow_tf32`` updates, and which stays readable after
    the per-op API has set conv and RNN differently (where reading ``allow_tf32`` raises).
    Older torch has only ``allow_tf32``."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None:
        return conv.fp32_precision == "tf32"
    return bool(torch.backends.cudnn.allow_tf32)
