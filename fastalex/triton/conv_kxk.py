"""k x k convolution (stride 1, 'same' padding) + bias + ReLU as an implicit GEMM with
tl.dot, writing into a channel slice of the Inception module's output. The reduction walks
the k*k taps, and for each tap the input channels in blocks; a tap's input tile is the
output tile shifted by (kh - pad, kw - pad), with zeros outside the image."""
import triton
import triton.language as tl

from fastalex.triton._configs import prepare
from fastalex.triton._tiles import bias_relu, output_tile, store_channels


@triton.jit
def conv_kxk_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M, HW, H, W, CIN, COUT, Y_C0,
    sxn, sxc, sxh, sxw,
    syn, syc, syh, syw,
    KS: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # w: (KS, KS, CIN, COUT) contiguous; b: (COUT,)
    PAD: tl.constexpr = KS // 2
    rm, rn, m_ok, n_ok, n_img, h, w = output_tile(M, HW, W, COUT, BLOCK_M, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for tap in range(0, KS * KS):
        ih = h + (tap // KS - PAD)
        iw = w + (tap % KS - PAD)
        row_ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        x_row = n_img * sxn + ih * sxh + iw * sxw
        w_tap = w_ptr + tap * CIN * COUT
        for k0 in range(0, CIN, BLOCK_K):
            rk = k0 + tl.arange(0, BLOCK_K)
            k_ok = rk < CIN
            a = tl.load(x_ptr + x_row[:, None] + rk[None, :] * sxc, mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            b = tl.load(w_tap + rk[:, None] * COUT + rn[None, :], mask=k_ok[:, None] & n_ok[None, :], other=0.0)
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
    store_channels(y_ptr, bias_relu(acc, b_ptr, rn, n_ok), n_img, h, w, Y_C0 + rn, syn, syc, syh, syw,
                   m_ok[:, None] & n_ok[None, :])


launcher, autotuned = prepare("conv_kxk", conv_kxk_kernel, key=["M", "CIN", "COUT", "KS", "PRECISION"])
