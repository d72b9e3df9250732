"""The CPU kernels of the fused LRN + max-pool ops (csrc/cpu/lrn_pool_cpu.cpp) and the AVX-512 LRN
core they share with local_response_norm (csrc/cpu/lrn_avx512.h), beyond the contract
(tests/test_lrn_max_pool2d.py, tests/test_max_pool2d_lrn.py): the row groups a map is split into
(which depend on the thread count) must not change a bit of the result; the fast path and the
portable one agree with the float64 reference; d^-beta keeps its accuracy across and beyond the
range its AVX-512 forms cover, where lanes are recomputed as torch computes them."""
import contextlib

import pytest
import torch
import torch.nn.functional as F

import contract as ct
import fastalex
from fastalex import ops

OPS = {
    "lrn_max_pool2d": (ops.lrn_max_pool2d,
                       lambda x, n, a, b, k, ks, s, p, c: F.max_pool2d(F.local_response_norm(x, n, a, b, k), ks, s, p,
                                                                        ceil_mode=c)),
    "max_pool2d_lrn": (ops.max_pool2d_lrn,
                       lambda x, n, a, b, k, ks, s, p, c: F.local_response_norm(F.max_pool2d(x, ks, s, p, ceil_mode=c),
                                                                                n, a, b, k)),
}

# (shape, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode): maps tall enough to split
# into several row groups, the networks' windows and others (beta 0.5, a window of 3 and of 7,
# padding, stride 1, a rectangular window), widths below and above a vector.
SHAPES = [
    ((1, 96, 55, 55), 5, 5e-4, 0.75, 2.0, 3, 2, 0, False),
    ((2, 19, 71, 13), 5, 1e-2, 0.75, 1.0, 3, 2, 0, True),
    ((1, 33, 40, 37), 3, 1e-1, 0.5, 1.0, 3, 2, 1, True),
    ((1, 10, 29, 17), 7, 1e-2, 0.75, 0.5, (3, 2), (1, 2), (1, 0), False),
]


@contextlib.contextmanager
def threads(n):
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("name", OPS)
def test_cpu_kernel_registered(name):
    """The op has a CPU kernel of its own."""
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fastalex::{name}", "CPU")


@pytest.mark.parametrize("fast", [True, False], ids=["fastpath", "portable"])
@pytest.mark.parametrize("case", range(len(SHAPES)))
@pytest.mark.parametrize("name", OPS)
def test_row_groups_do_not_change_the_result(name, case, fast):
    """Thread counts change how the rows are split into tasks (and which rows two bands both
    compute); the result is the same bit for bit, and matches the float64 reference."""
    shape, *args = SHAPES[case]
    fn, ref = OPS[name]
    x = ct.rand(*shape, scale=3.0, seed=case)
    outs = []
    with fastalex.cpu_fastpath(fast):
        for n in (1, 2, 3):
            with threads(n):
                outs.append(torch.full_like(fn(x, *args), float("nan")).copy_(fn(x, *args)))
    for out in outs[1:]:
        assert torch.equal(out, outs[0])
    rtol, atol = ct.TOLERANCES["elementwise"][torch.float32]
    torch.testing.assert_close(outs[0].double(), ref(x.double(), *args), rtol=rtol, atol=atol)


# Scales of the input and k that put d = k + alpha / size * sum(x^2) across both ends of the
# AVX-512 forms' range ([2^-40, 2^40] for beta 0.75, [2^-125, 2^100] for 0.5) and beyond them.
D_RANGE = [
    ("d_near_2^40", 2e5, 2.0),
    ("d_past_2^40", 3e8, 2.0),
    ("d_past_2^100", 3e17, 2.0),
    ("k_tiny_d_below_2^-40", 1e-9, 1e-13),
    ("k_subnormal_scale", 1e-20, 1e-38),
]


@pytest.mark.parametrize("beta", [0.75, 0.5])
@pytest.mark.parametrize("label,scale,k", D_RANGE, ids=[d[0] for d in D_RANGE])
@pytest.mark.parametrize("name", ["local_response_norm"] + list(OPS))
def test_d_range(name, label, scale, k, beta):
    """Lanes whose d lies outside the fast forms' range are recomputed as torch does; inside it
    the forms keep float32's elementwise tolerance (float64 reference)."""
    x = ct.rand(2, 21, 9, 35, scale=scale, seed=11)
    # some pixels near zero, so a vector holds lanes on both sides of the range's ends
    x[:, :, ::3] *= 1e-6
    args = (5, 1e-4, beta, k)
    if name == "local_response_norm":
        fn, ref = ops.local_response_norm, F.local_response_norm
        pool = ()
    else:
        (fn, ref), pool = OPS[name], (3, 2, 0, False)
    out = fn(x, *args, *pool)
    expected = ref(x.double(), *args, *pool)
    rtol, _ = ct.TOLERANCES["elementwise"][torch.float32]
    # relative only: the outputs span many decades
    torch.testing.assert_close(out.double(), expected, rtol=rtol, atol=0)


@pytest.mark.parametrize("name", OPS)
def test_negative_alpha(name):
    """alpha < 0 makes d negative or tiny for some pixels (NaN or huge results where torch gives
    them), so every lane's d is tested at both ends."""
    fn, ref = OPS[name]
    x = ct.rand(1, 12, 17, 19, scale=3.0, seed=5)
    args = (5, -2.0, 0.75, 1.0, 3, 2, 0, False)
    out = fn(x, *args)
    expected = ref(x, *args)
    assert torch.equal(out.isnan(), expected.isnan())
    rtol, atol = ct.TOLERANCES["elementwise"][torch.float32]
    finite = expected.isfinite()
    torch.testing.assert_close(out[finite].double(), ref(x.double(), *args)[finite], rtol=rtol, atol=atol)
