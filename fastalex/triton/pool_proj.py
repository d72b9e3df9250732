"""The Inception module's fourth branch in one kernel: 3x3 stride-1 max-pool (padding 1,
-inf outside the image, NaN propagating) of an input tile, then the 1x1 projection + bias +
ReLU on it, written into the branch's channel slice of the module output. The pooled tile
lives only in registers."""
import triton
import triton.language as tl

from fastalex.triton._configs import prepare
from fastalex.triton._tiles import bias_relu, output_tile, store_channels


@triton.jit
def pool_proj_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M, HW, H, W, CIN, COUT, Y_C0,
    sxn, sxc, sxh, sxw,
    syn, syc, syh, syw,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # w: (CIN, COUT) contiguous; b: (COUT,)
    rm, rn, m_ok, n_ok, n_img, h, w = output_tile(M, HW, W, COUT, BLOCK_M, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, CIN, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        k_ok = rk < CIN
        pooled = tl.full((BLOCK_M, BLOCK_K), float("-inf"), tl.float32)
        for tap in tl.static_range(9):
            ih = h + (tap // 3 - 1)
            iw = w + (tap % 3 - 1)
            ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            v = tl.load(x_ptr + (n_img * sxn + ih * sxh + iw * sxw)[:, None] + rk[None, :] * sxc,
                        mask=ok[:, None] & k_ok[None, :], other=float("-inf")).to(tl.float32)
            pooled = tl.where((v > pooled) | (v != v), v, pooled)
        # Rows past M and channels past CIN hold -inf: zero them before the product.
        pooled = tl.where(m_ok[:, None] & k_ok[None, :], pooled, 0.0)
        a = pooled.to(x_ptr.dtype.element_ty)
        b = tl.load(w_ptr + rk[:, None] * COUT + rn[None, :], mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    store_channels(y_ptr, bias_relu(acc, b_ptr, rn, n_ok), n_img, h, w, Y_C0 + rn, syn, syc, syh, syw,
                   m_ok[:, None] & n_ok[None, :])


launcher, autotuned = prepare("pool_proj", pool_proj_kernel, key=["M", "CIN", "COUT", "PRECISION"])
