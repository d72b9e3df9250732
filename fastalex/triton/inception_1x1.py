"""The Inception module's three 1x1 convolutions that read the block input (the 1x1 branch,
the 3x3 reduce and the 5x5 reduce) as one GEMM over concatenated weights: each input tile is
loaded once for all three. Bias and ReLU are applied in the epilogue, and each output
column is stored straight to its destination: the 1x1 branch into its channel slice of the
module output, the reduces into their own tensors."""
import triton
import triton.language as tl

from fastalex.triton._configs import prepare


@triton.jit
def inception_1x1_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, r3_ptr, r5_ptr,
    M, HW, W, C, C1, C3R, C5R,
    sxn, sxc, sxh, sxw,
    syn, syc, syh, syw,
    s3n, s3c, s3h, s3w,
    s5n, s5c, s5h, s5w,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # w: (C, C1 + C3R + C5R) contiguous; b: (C1 + C3R + C5R,)
    NT = C1 + C3R + C5R
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < NT
    n_img = rm // HW  # 32-bit offsets: the host splits batches that would overflow them
    hw = rm % HW
    h = hw // W
    w = hw % W
    x_row = n_img * sxn + h * sxh + w * sxw
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, C, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        k_ok = rk < C
        a = tl.load(x_ptr + x_row[:, None] + rk[None, :] * sxc, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(w_ptr + rk[:, None] * NT + rn[None, :], mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    acc += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    acc = tl.where(acc < 0.0, 0.0, acc)  # ReLU that keeps NaN, like torch
    out = acc.to(y_ptr.dtype.element_ty)
    # Column j goes to the 1x1 branch (j < C1), the 3x3 reduce, or the 5x5 reduce.
    c = rn
    to_y = m_ok[:, None] & (c < C1)[None, :]
    tl.store(y_ptr + (n_img * syn + h * syh + w * syw)[:, None] + c[None, :] * syc, out, mask=to_y)
    c3 = rn - C1
    to_r3 = m_ok[:, None] & ((c3 >= 0) & (c3 < C3R))[None, :]
    tl.store(r3_ptr + (n_img * s3n + h * s3h + w * s3w)[:, None] + c3[None, :] * s3c, out, mask=to_r3)
    c5 = rn - C1 - C3R
    to_r5 = m_ok[:, None] & ((c5 >= 0) & (c5 < C5R))[None, :]
    tl.store(r5_ptr + (n_img * s5n + h * s5h + w * s5w)[:, None] + c5[None, :] * s5c, out, mask=to_r5)


launcher, autotuned = prepare("inception_1x1", inception_1x1_kernel, key=["M", "C", "C1", "C3R", "C5R"])
