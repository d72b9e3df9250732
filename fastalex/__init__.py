"""fastalex: fused kernels for AlexNet and GoogLeNet (Inception v1).

`fastalex.ops` holds the functional ops (registered as `torch.ops.fastalex.*`), `fastalex.nn`
the matching modules.
"""
__version__ = "0.1.0"

import torch  # noqa: F401  (loads libc10/libtorch, which fastalex._C links against)

from fastalex import _C  # noqa: F401,E402  (registers the kernels with the dispatcher)
from fastalex import models, nn, ops  # noqa: E402

__all__ = ["ops", "nn", "models", "built_with_cuda"]


def built_with_cuda() -> bool:
    """True when this build holds the CUDA kernels (compiled with or without a GPU present)."""
    return bool(ops.built_with_cuda())
