"""fastalex: fused kernels for AlexNet and GoogLeNet (Inception v1).

`fastalex.ops` holds the functional ops (registered as `torch.ops.fastalex.*`), `fastalex.nn`
the matching modules, `fastalex.models` the networks; `fastalex.cuda_graph(model, example)`
captures a model's eval forward in a CUDA graph.
"""
__version__ = "0.1.0"

import torch  # noqa: F401  (loads libc10/libtorch, which fastalex._C links against)

from fastalex import _C  # noqa: F401,E402  (registers the kernels with the dispatcher)
from fastalex import models, nn, ops  # noqa: E402
from fastalex._cuda_graph import GraphedForward, cuda_graph  # noqa: E402

__all__ = ["ops", "nn", "models", "built_with_cuda", "cpu_fastpath", "cuda_graph", "GraphedForward"]


def built_with_cuda() -> bool:
    """True when this build holds the CUDA kernels (compiled with or without a GPU present)."""
    return bool(ops.built_with_cuda())


class cpu_fastpath:
    """The switch for every hand-written CPU fast path (the AVX-512 conv, LRN, max-pool and
    linear kernels). ``fastalex.cpu_fastpath.enabled()`` tells its state; ``with
    fastalex.cpu_fastpath(False): ...`` runs a region on the portable paths other CPUs take
    (the tests run every CPU case both ways). ``FASTALEX_CPU_FASTPATH=0`` turns them off for
    the whole process."""

    def __init__(self, enabled: bool):
        if not isinstance(enabled, bool):
            raise TypeError(f"fastalex.cpu_fastpath: enabled must be a bool, got {enabled!r}")
        self._enabled = enabled
        self._saved = None

    @staticmethod
    def enabled() -> bool:
        return bool(torch.ops.fastalex.cpu_fastpath_enabled())

    def __enter__(self):
        self._saved = bool(torch.ops.fastalex.set_cpu_fastpath(self._enabled))
        return self

    def __exit__(self, *exc):
        torch.ops.fastalex.set_cpu_fastpath(self._saved)
        return False
