"""k x k convolution (stride 1, 'same' padding) + bias + ReLU as an implicit GEMM with
tl.dot, writing into a channel slice of the Inception module's output. The reduction walks
the k*k taps, and for each tap the input channels in blocks; a tap's input tile is the
output tile shifted by (kh - pad, kw - pad), with zeros outside the image."""
import triton
import triton.language as tl

from fastalex.triton._configs import prepare


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
    acc += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    acc = tl.where(acc < 0.0, 0.0, acc)
    y_row = n_img * syn + h * syh + w * syw
    tl.store(y_ptr + y_row[:, None] + (Y_C0 + rn)[None, :] * syc, acc.to(y_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


launcher, autotuned = prepare("conv_kxk", conv_kxk_kernel, key=["M", "CIN", "COUT", "KS"])
