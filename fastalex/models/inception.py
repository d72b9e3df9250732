"""The Inception module of GoogLeNet (Szegedy et al., 2015)."""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from fastalex import ops

BACKENDS = ("auto", "triton", "ops", "reference")


class Inception(nn.Module):
    """Four branches concatenated on channels: 1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> 5x5 |
    3x3 max-pool (stride 1, padding 1) -> 1x1 projection, each convolution with bias and ReLU
    (the paper's module: 5x5 where torchvision has 3x3, no BatchNorm).

    Arguments in torchvision's (and the paper's table's) order. ``backend``:
      - "auto": the Triton kernels for CUDA tensors, the C++ ops (fastalex.ops) for CPU ones;
      - "triton": the Triton kernels (on CPU tensors only under TRITON_INTERPRET=1);
      - "ops": fastalex.ops (fused conv+bias+ReLU, max-pool) and one torch.cat;
      - "reference": plain torch ops.
    ``allow_tf32``: let the Triton path multiply float32 inputs in TF32 on the GPU (faster,
    ~1e-3 relative error); by default it multiplies in full float32 like torch's default.
    The Triton path's backward recomputes the forward in torch ops (the kernels are forward-only).
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, backend="auto",
                 allow_tf32=False, device=None, dtype=None):
        super().__init__()
        names = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")
        values = (in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
        for name, v in zip(names, values):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(f"fastalex.models.Inception: {name} must be a positive int, got {v!r}")
        if backend not in BACKENDS:
            raise ValueError(f"fastalex.models.Inception: backend must be one of {BACKENDS}, got {backend!r}")
        kw = dict(device=device, dtype=dtype)
        self.in_channels = in_channels
        self.backend = backend
        self.allow_tf32 = bool(allow_tf32)
        self.branch1 = nn.Conv2d(in_channels, ch1x1, 1, **kw)
        self.branch2_reduce = nn.Conv2d(in_channels, ch3x3red, 1, **kw)
        self.branch2 = nn.Conv2d(ch3x3red, ch3x3, 3, padding=1, **kw)
        self.branch3_reduce = nn.Conv2d(in_channels, ch5x5red, 1, **kw)
        self.branch3 = nn.Conv2d(ch5x5red, ch5x5, 5, padding=2, **kw)
        self.branch4 = nn.Conv2d(in_channels, pool_proj, 1, **kw)

    @property
    def out_channels(self) -> int:
        return self.branch1.out_channels + self.branch2.out_channels + self.branch3.out_channels + self.branch4.out_channels

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}, out_channels={self.out_channels}"

    def _convs(self):
        return (self.branch1, self.branch2_reduce, self.branch2, self.branch3_reduce, self.branch3, self.branch4)

    def _check(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"fastalex.models.Inception: input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"fastalex.models.Inception: input must be 4-D (N, C, H, W), got {x.dim()}-D of shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"fastalex.models.Inception: input has {x.shape[1]} channels, expected in_channels={self.in_channels}")
        w = self.branch1.weight
        if x.dtype != w.dtype:
            raise TypeError(f"fastalex.models.Inception: input has dtype {x.dtype} but the module's weights are {w.dtype}")
        if x.device != w.device:
            raise ValueError(f"fastalex.models.Inception: input is on {x.device} but the module's weights are on {w.device}")

    def resolved_backend(self, x) -> str:
        if self.backend != "auto":
            return self.backend
        return "triton" if x.is_cuda else "ops"

    def forward(self, x):
        self._check(x)
        backend = self.resolved_backend(x)
        if backend == "reference":
            return self._forward_reference(x)
        if backend == "ops":
            return self._forward_ops(x)
        return self._forward_triton(x)

    def _forward_reference(self, x):
        b1, r3, c3, r5, c5, p = self._convs()
        return torch.cat([
            F.relu(b1(x)),
            F.relu(c3(F.relu(r3(x)))),
            F.relu(c5(F.relu(r5(x)))),
            F.relu(p(F.max_pool2d(x, 3, 1, 1))),
        ], 1)

    def _forward_ops(self, x):
        b1, r3, c3, r5, c5, p = self._convs()
        # The three 1x1 convolutions that read x run as one fused conv over stacked weights.
        t = ops.conv2d_relu(x, torch.cat([b1.weight, r3.weight, r5.weight]), torch.cat([b1.bias, r3.bias, r5.bias]))
        a, t3, t5 = t.split([b1.out_channels, r3.out_channels, r5.out_channels], 1)
        return torch.cat([
            a,
            ops.conv2d_relu(t3, c3.weight, c3.bias, 1, 1),
            ops.conv2d_relu(t5, c5.weight, c5.bias, 1, 2),
            ops.conv2d_relu(ops.max_pool2d(x, 3, 1, 1), p.weight, p.bias),
        ], 1)

    def _forward_triton(self, x):
        from fastalex.triton import _configs

        if not x.is_cuda and not _configs.interpreting():
            raise RuntimeError(
                "fastalex.models.Inception: backend='triton' needs CUDA tensors, or TRITON_INTERPRET=1 set before "
                "triton is imported to run the kernels on the CPU interpreter")
        if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise TypeError(f"fastalex.models.Inception: backend='triton' supports float32, float16 and bfloat16, got {x.dtype}")
        from fastalex.triton.inception import inception_triton, pack_weights

        b1, r3, c3, r5, c5, p = self._convs()
        packed = pack_weights(b1.weight, b1.bias, r3.weight, r3.bias, c3.weight, c3.bias,
                              r5.weight, r5.bias, c5.weight, c5.bias, p.weight, p.bias)
        w1, bb1, w3, bb3, w5, bb5, wp, bp = packed
        return inception_triton(x, w1, bb1, b1.out_channels, r3.out_channels, r5.out_channels,
                                w3, bb3, w5, bb5, wp, bp, self.allow_tf32)
