"""CPU local_response_norm on non-finite inputs and degenerate denominators, on every CPU path
(the AVX-512 ring of squares, the compensated running sum, their channels-last tiles), with
the hand-written fast paths on and off.

Expected: NaN exactly where F.local_response_norm gives NaN in the input's dtype, the same
infinities, and every finite value within tolerance of the float64 reference or of torch in
the input's dtype (the two differ where a square or window sum overflows in float32)."""
import itertools

import pytest
import torch
import torch.nn.functional as F

import fastalex
import contract as ct
from conftest import randn
from fastalex import ops

NAN, INF = float("nan"), float("inf")
# A finite value whose square overflows in the dtype.
BIG = {torch.float32: 3e19, torch.float64: 1e160}
DTYPES = [torch.float32, torch.float64]
FASTPATH = pytest.mark.parametrize("fast", [True, False], ids=["fast", "portable"])
# (size, beta): 5 and 16 take the ring of squares for float32 with beta 0.75 / 0.5 and the
# fast path on; 17 (wider than the ring) and beta 0.6 take the running sum.
WINDOWS = [(5, 0.75), (5, 0.5), (5, 0.6), (16, 0.75), (17, 0.75), (17, 0.5), (17, 0.6)]
# Pixel positions on 16-lane vector and 512-pixel block boundaries of a 24 x 24 map.
PIXELS = [0, 1, 15, 16, 31, 32, 255, 510, 511, 512, 513, 527, 528, 575]


def check(out, x, size, alpha, beta, k):
    assert out.dtype == x.dtype and out.shape == x.shape
    ct.assert_like_torch(out, F.local_response_norm, (x, size, alpha, beta, k), what=f"lrn(size={size}, beta={beta})")


def run(x, size, alpha, beta, k, fast, channels_last):
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with fastalex.cpu_fastpath(fast):
        out = ops.local_response_norm(x, size, alpha, beta, k)
    check(out, x, size, alpha, beta, k)
    return out


def planted(dtype, C=40, H=24, W=24, N=2):
    """Random input with NaN, +inf, -inf and an overflowing finite value planted at the first,
    second, an interior and the last channel, at pixels on vector and block boundaries; some
    pixels hold two (apart, adjacent, or a NaN and an inf in one window)."""
    x = randn(N, C, H, W, dtype=dtype, scale=3.0)
    flat = x.view(N, C, H * W)
    values = [NAN, INF, -INF, BIG[dtype]]
    channels = [0, 1, C // 2, C - 1]
    for i, (v, c) in enumerate(itertools.product(values, channels)):
        n, p = divmod(i, len(PIXELS))
        flat[n % N, c, PIXELS[p]] = v
    # Two in one pixel: far apart, adjacent, a NaN and an inf inside one window.
    flat[1, 2, PIXELS[4]] = NAN
    flat[1, C - 3, PIXELS[4]] = INF
    flat[1, C // 4, PIXELS[5]] = INF
    flat[1, C // 4 + 1, PIXELS[5]] = -INF
    flat[1, C // 2 + 1, PIXELS[6]] = NAN
    flat[1, C // 2 + 3, PIXELS[6]] = BIG[dtype]
    return x


@FASTPATH
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"n{w[0]}_b{w[1]}")
def test_planted_nonfinite(window, dtype, channels_last, fast):
    size, beta = window
    x = planted(dtype)
    out = run(x, size, 5e-4, beta, 2.0, fast, channels_last)
    assert out.isnan().any() and (out == 0).any()  # the planted values did reach the output


@FASTPATH
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "big"])
@pytest.mark.parametrize("window", [(5, 0.75), (5, 0.6), (17, 0.5)], ids=lambda w: f"n{w[0]}_b{w[1]}")
def test_value_leaves_the_window(window, value, dtype, channels_last, fast):
    # C = 40, the value at channel 3 of every pixel: the channels whose window holds it are
    # NaN / zero, every later one exactly as if it had never been there.
    size, beta = window
    v = {"nan": NAN, "inf": INF, "-inf": -INF, "big": BIG[dtype]}[value]
    x = randn(2, 40, 5, 7, dtype=dtype, scale=3.0)
    clean = x.clone()
    x[:, 3] = v
    out = run(x, size, 1e-2, beta, 1.0, fast, channels_last)
    last_touched = 3 + size // 2  # channel c's window is [c - size//2, c + (size-1)//2]
    first_touched = 3 - (size - 1) // 2
    assert out[:, last_touched + 1:].isfinite().all()
    with fastalex.cpu_fastpath(fast):
        out_clean = ops.local_response_norm(clean, size, 1e-2, beta, 1.0)
    torch.testing.assert_close(out[:, last_touched + 1:], out_clean[:, last_touched + 1:], rtol=0, atol=0)
    if first_touched > 0:
        torch.testing.assert_close(out[:, :first_touched], out_clean[:, :first_touched], rtol=0, atol=0)
    touched = torch.cat([out[:, max(first_touched, 0):3], out[:, 4:last_touched + 1]], 1)
    if value == "nan":
        assert touched.isnan().all() and out[:, 3].isnan().all()
    else:
        assert (touched == 0).all()
        assert out[:, 3].isnan().all() if value != "big" else (out[:, 3] == 0).all()


@FASTPATH
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("window", [(5, 0.75), (5, 0.5), (17, 0.75), (5, 1.0), (5, 0.6)],
                         ids=lambda w: f"n{w[0]}_b{w[1]}")
def test_window_sum_overflow_float32(window, channels_last, fast):
    # Squares that are finite but whose window sum overflows float32 (torch then gives
    # d = inf, y = 0); the running sum must recover once they have left.
    size, beta = window
    x = randn(1, 40, 6, 6, scale=3.0)
    x[:, 10:13, :3] = 1.5e19
    x[:, 20, 3:] = 3e38
    out = run(x, size, 1e-4, beta, 2.0, fast, channels_last)
    assert out[:, 13 + size // 2:20 - (size - 1) // 2].isfinite().all()


@FASTPATH
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("window", [(5, 0.75), (5, 0.5), (5, 1.0), (5, 0.6), (17, 0.75)],
                         ids=lambda w: f"n{w[0]}_b{w[1]}")
def test_degenerate_denominators(window, dtype, channels_last, fast):
    size, beta = window
    x = randn(2, 24, 5, 7, dtype=dtype, scale=3.0)
    # k = 0 and an all-zero window: d = 0, y = 0/0 = NaN.
    x[0, 4:12, 1] = 0
    x[1, :, 2, 3] = 0
    # Tiny values: d small (subnormal squares), y large but finite. (Every channel of the pixel:
    # the running sum does not resolve a window sum far below the values that passed through.)
    x[0, :, 3] = (3e-20 if dtype == torch.float32 else 1e-160) * (1 + x[0, :, 3].abs())
    # One nonzero channel among zeros, 0.5^2 = -k below: d = 0 with x != 0 (y = inf) and d < 0.
    x[1, :, 4, 0] = 0
    x[1, 12, 4, 0] = 0.5
    x[1, :, 4, 1] = 0
    x[1, 0, 4, 1] = -0.5
    x[1, 23, 4, 1] = 0.5
    run(x, size, float(size), beta, 0.0, fast, channels_last)
    run(x, size, float(size), beta, -0.25, fast, channels_last)
    # k < 0: d < 0 (NaN for a non-integer beta, x/d for beta 1).
    run(x, size, 1e-2, beta, -1.0, fast, channels_last)
    # alpha < 0 with an inf in the window: d = -inf, pow(-inf, beta) = inf (y = 0); alpha = 0: d = 0 * inf = NaN.
    x[0, 7, 0, 2] = INF
    x[1, 0, 0, 0] = -INF
    x[1, 23, 1, 1] = BIG[dtype]
    run(x, size, -1e-2, beta, 1.0, fast, channels_last)
    run(x, size, 0.0, beta, 1.0, fast, channels_last)


@FASTPATH
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_beta_zero_keeps_x(dtype, fast):
    # pow(d, 0) = 1 even for d = NaN: y = x wherever x is not NaN itself.
    x = planted(dtype, C=12, H=24, W=24)
    for channels_last in (False, True):
        out = run(x, 5, 1e-2, 0.0, 1.0, fast, channels_last)
        torch.testing.assert_close(out, x, rtol=0, atol=0, equal_nan=True)


@FASTPATH
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("k", [0.0, 1e-30])
@pytest.mark.parametrize("size", [1, 2, 5])
def test_small_window_after_large_values(size, k, dtype, channels_last, fast):
    # k ~ 0: d is the window's sum alone, so a window far smaller than squares that passed
    # through it must still come out to the input's precision (the running sum's residue
    # must not show).
    x = randn(2, 48, 6, 6, dtype=dtype, scale=3.0)
    x[:, 8:16] *= 1e4
    x[:, 16:30] *= 1e-6
    x[:, 30:32] *= 1e18 if dtype == torch.float32 else 1e100
    x[:, 32:] *= 1e-5
    run(x, size, 1e-2, 0.75, k, fast, channels_last)
