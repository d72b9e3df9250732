"""The fused LRN + pooling ops' gradients: the two backward ops composed (fastalex/ops/lrn_pool.py),
against torch.autograd.grad of the unfused torch pair, and differentiable again."""
import pytest
import torch
import torch.nn.functional as F

import contract as ct
from fastalex import ops

# (size, alpha, beta, k, kernel_size, stride, padding, ceil_mode)
ARGS = [(5, 5e-4, 0.75, 2.0, 3, 2, 0, False), (3, 0.3, 0.6, 1.0, 3, 2, 1, True), (4, 0.1, 0.75, 1.0, 2, 1, 0, False)]


def torch_pair(lrn_first, x, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode):
    if lrn_first:
        return F.max_pool2d(F.local_response_norm(x, size, alpha, beta, k), kernel_size, stride, padding,
                            ceil_mode=ceil_mode)
    return F.local_response_norm(F.max_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode), size, alpha,
                                 beta, k)


def grad_of(fn, x, g):
    x = x.detach().requires_grad_(True)
    (dx,) = torch.autograd.grad(fn(x), x, g)
    return dx


@pytest.mark.parametrize("lrn_first", [True, False], ids=["lrn_max_pool2d", "max_pool2d_lrn"])
@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [ct.F32, ct.F64], ids=str)
def test_matches_torch_autograd(lrn_first, fmt, dtype):
    fused = ops.lrn_max_pool2d if lrn_first else ops.max_pool2d_lrn
    for i, args in enumerate(ARGS):
        x = ct.to_format(ct.rand(2, 13, 11, 9, dtype=dtype, scale=3.0, seed=i), fmt)
        g = ct.rand(*fused(x, *args).shape, dtype=dtype, seed=10 + i)
        ours = grad_of(lambda t: fused(t, *args), x, g)
        want = grad_of(lambda t: torch_pair(lrn_first, t, *args), x.double(), g.double())
        ct.assert_matches_reference(ours, want, ct.TOLERANCES["gradient"][dtype], f"{lrn_first} {fmt} {args}")
        if fmt == "nhwc":
            assert ours.is_contiguous(memory_format=torch.channels_last)


def test_backward_runs_the_backward_ops():
    # lrn_max_pool2d's gradient is max_pool2d_backward then local_response_norm_backward, bit for bit.
    args = ARGS[1]
    size, alpha, beta, k, ks, s, p, ceil = args
    x = ct.rand(2, 7, 9, 9, scale=3.0)
    g = ct.rand(*ops.lrn_max_pool2d(x, *args).shape, seed=1)
    z = ops.local_response_norm(x, size, alpha, beta, k)
    want = ops.local_response_norm_backward(ops.max_pool2d_backward(g, z, ks, s, p, 1, ceil), x, z, size, alpha, beta, k)
    assert torch.equal(grad_of(lambda t: ops.lrn_max_pool2d(t, *args), x, g), want)


@pytest.mark.parametrize("fused", [ops.lrn_max_pool2d, ops.max_pool2d_lrn], ids=["lrn_max_pool2d", "max_pool2d_lrn"])
def test_double_backward(fused):
    x = ct.rand(1, 5, 7, 6, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda t: fused(t, 3, 0.3, 0.75, 1.0, 3, 2, 1, True), (x,))
