"""The Inception module's fourth branch in one kernel: 3x3 stride-1 max-pool (padding 1,
-inf outside the image, NaN propagating) of an input tile, then the 1x1 projection + bias +
ReLU on it, written into the branch's channel slice of the module output. The pooled tile
lives only in registers."""
import triton
import triton.language as tl

from fastalex.triton._configs import prepare


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
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < COUT
    n_img = rm // HW  # 32-bit offsets: the host splits batches that would overflow them
    hw = rm % HW
    h = hw // W
    w = hw % W
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
    acc += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    acc = tl.where(acc < 0.0, 0.0, acc)
    y_row = n_img * syn + h * syh + w * syw
    tl.store(y_ptr + y_row[:, None] + (Y_C0 + rn)[None, :] * syc, acc.to(y_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


launcher, autotuned = prepare("pool_proj", pool_proj_kernel, key=["M", "CIN", "COUT"])
