"""The Inception module of GoogLeNet (Szegedy et al., 2015)."""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from fastalex import ops
from fastalex.ops._dispatch import below_autograd, call_below
from fastalex.ops.inception import composed as inception_composed

BACKENDS = ("auto", "triton", "ops", "reference")
# The six convolutions in the op's order.
_CONV_NAMES = ("branch1", "branch2_reduce", "branch2", "branch3_reduce", "branch3", "branch4")


class Inception(nn.Module):
    """Four branches concatenated on channels: 1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> 5x5 |
    3x3 max-pool (stride 1, padding 1) -> 1x1 projection, each convolution with bias and ReLU
    (the paper's module: 5x5 where torchvision has 3x3, no BatchNorm).

    Arguments in torchvision's (and the paper's table's) order. ``backend``:
      - "auto": the Triton kernels for CUDA tensors, the C++ ops (fastalex.ops) for CPU ones;
      - "triton": the Triton kernels (on CPU tensors only under TRITON_INTERPRET=1);
      - "ops": ``fastalex.ops.inception`` (on the CPU, float32 NCHW on AVX-512: one kernel whose
        branches write their slices of the output) or, when gradients are needed, fastalex's
        differentiable conv+bias+ReLU and max-pool ops and one torch.cat;
      - "reference": plain torch ops.
    ``allow_tf32``: whether the Triton path multiplies float32 inputs in TF32 on the GPU (10
    mantissa bits, ~1e-3 relative error). ``None`` (the default) follows torch's convolutions:
    TF32 exactly while ``torch.backends.cudnn.allow_tf32`` is set (torch's default), read at
    every call (``fastalex._tf32.conv_tf32_enabled``); ``True`` or ``False`` overrides the flag
    for this module. float16 and bfloat16 are unaffected, and so is the "ops" path, whose CUDA
    conv follows the flag itself. Under ``torch.compile`` or ``fastalex.cuda_graph`` the flag is
    read when the graph is traced or captured.
    ``branch3_kernel``: 5 (the paper) or 3 (torchvision's GoogLeNet, kept for its weights).
    The Triton path's backward recomputes the forward in torch ops (the kernels are forward-only).
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, backend="auto",
                 allow_tf32=None, branch3_kernel=5, device=None, dtype=None):
        super().__init__()
        names = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")
        values = (in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
        for name, v in zip(names, values):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(f"fastalex.models.Inception: {name} must be a positive int, got {v!r}")
        if branch3_kernel not in (3, 5):
            raise ValueError(f"fastalex.models.Inception: branch3_kernel must be 3 or 5, got {branch3_kernel!r}")
        if backend not in BACKENDS:
            raise ValueError(f"fastalex.models.Inception: backend must be one of {BACKENDS}, got {backend!r}")
        kw = dict(device=device, dtype=dtype)
        self.in_channels = in_channels
        self.backend = backend
        self.allow_tf32 = check_allow_tf32(allow_tf32)
        self.branch1 = nn.Conv2d(in_channels, ch1x1, 1, **kw)
        self.branch2_reduce = nn.Conv2d(in_channels, ch3x3red, 1, **kw)
        self.branch2 = nn.Conv2d(ch3x3red, ch3x3, 3, padding=1, **kw)
        self.branch3_reduce = nn.Conv2d(in_channels, ch5x5red, 1, **kw)
        self.branch3 = nn.Conv2d(ch5x5red, ch5x5, branch3_kernel, padding=branch3_kernel // 2, **kw)
        self.branch4 = nn.Conv2d(in_channels, pool_proj, 1, **kw)

    @property
    def out_channels(self) -> int:
        return self.branch1.out_channels + self.branch2.out_channels + self.branch3.out_channels + self.branch4.out_channels

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}, allow_tf32={self.allow_tf32!r}, out_channels={self.out_channels}"

    def _convs(self):
        return tuple(getattr(self, name) for name in _CONV_NAMES)

    def _check(self, x):
        check_input(x, self.in_channels, self.branch1.weight)

    def resolved_backend(self, x) -> str:
        return resolve_backend(self.backend, x)

    def forward(self, x):
        self._check(x)
        backend = self.resolved_backend(x)
        if backend == "ops" and below_autograd():
            # No gradient wanted: the module's own tensors straight to the op, below its autograd
            # layer -- where inception_forward's "ops" path ends, without its per-argument Python
            # checks (the op checks shapes, dtypes and devices; a missing bias takes the path
            # below and its error). At batch 1 this took paper GoogLeNet's forward from 12.61 to
            # 12.45 ms (16 us a block; alternating in one process, 8 rounds).
            mods = self._modules
            args = [x]
            for name in _CONV_NAMES:
                p = mods[name]._parameters
                args += (p["weight"], p["bias"])
            if all(isinstance(a, torch.Tensor) for a in args):
                return call_below(torch.ops.fastalex.inception, *args)
        params = [(c.weight, c.bias) for c in self._convs()]
        return inception_forward(x, params, backend, self.allow_tf32)



def check_allow_tf32(allow_tf32):
    """None (follow torch.backends.cudnn.allow_tf32 at call time), True or False."""
    if allow_tf32 is not None and not isinstance(allow_tf32, bool):
        raise TypeError(f"fastalex.models.Inception: allow_tf32 must be None (follow "
                        f"torch.backends.cudnn.allow_tf32), True or False, got {allow_tf32!r}")
    return allow_tf32


def check_input(x, in_channels, weight):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"fastalex.models.Inception: input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"fastalex.models.Inception: input must be 4-D (N, C, H, W), got {x.dim()}-D of shape {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(f"fastalex.models.Inception: input has {x.shape[1]} channels, expected in_channels={in_channels}")
    if x.dtype != weight.dtype:
        raise TypeError(f"fastalex.models.Inception: input has dtype {x.dtype} but the module's weights are {weight.dtype}")
    if x.device != weight.device:
        raise ValueError(f"fastalex.models.Inception: input is on {x.device} but the module's weights are on {weight.device}")


def resolve_backend(backend, x) -> str:
    if backend != "auto":
        return backend
    return "triton" if x.is_cuda else "ops"


def inception_forward(x, params, backend, allow_tf32=None):
    """The module's forward from its six (weight, bias) pairs, in the order branch1,
    branch2_reduce, branch2, branch3_reduce, branch3, branch4 (shared with GoogLeNet's
    torchvision variant, which passes BatchNorm-folded weights). ``allow_tf32``: the
    module's (None: follow torch.backends.cudnn.allow_tf32 when the Triton op runs).

    The output keeps the input's memory format on every backend (channels_last in,
    channels_last out), and nothing here reads tensor values on the host."""
    (w1, b1), (wr3, br3), (w3, b3), (wr5, br5), (w5, b5), (wp, bp) = params
    k3, k5 = w3.shape[-1], w5.shape[-1]
    if backend == "reference":
        return torch.cat([
            F.relu(F.conv2d(x, w1, b1)),
            F.relu(F.conv2d(F.relu(F.conv2d(x, wr3, br3)), w3, b3, padding=k3 // 2)),
            F.relu(F.conv2d(F.relu(F.conv2d(x, wr5, br5)), w5, b5, padding=k5 // 2)),
            F.relu(F.conv2d(F.max_pool2d(x, 3, 1, 1), wp, bp)),
        ], 1)
    if backend == "ops":
        args = (x, w1, b1, wr3, br3, w3, b3, wr5, br5, w5, b5, wp, bp)
        # With gradients: fastalex's differentiable ops, whose autograd saves what backward needs.
        # Without: the one op (on the CPU a kernel whose branches write their output slices);
        # its own backward would recompute the forward.
        if torch.is_grad_enabled() and any(t.requires_grad for t in args):
            return inception_composed(*args)
        return ops.inception(*args)
    from fastalex.triton import _configs

    if not x.is_cuda and not _configs.interpreting():
        raise RuntimeError(
            "fastalex.models.Inception: backend='triton' needs CUDA tensors, or TRITON_INTERPRET=1 set before "
            "triton is imported to run the kernels on the CPU interpreter")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"fastalex.models.Inception: backend='triton' supports float32, float16 and bfloat16, got {x.dtype}")
    from fastalex.triton.inception import inception_triton, pack_weights

    pw1, pb1, pw3, pb3, pw5, pb5, pwp, pbp = pack_weights(w1, b1, wr3, br3, w3, b3, wr5, br5, w5, b5, wp, bp)
    return inception_triton(x, pw1, pb1, w1.shape[0], wr3.shape[0], wr5.shape[0], pw3, pb3, pw5, pb5, pwp, pbp,
                            check_allow_tf32(allow_tf32))
