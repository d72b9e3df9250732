"""The Inception module's three 1x1 convolutions that read the block input (the 1x1 branch,
the 3x3 reduce and the 5x5 reduce) as one GEMM over concatenated weights: each input tile is
loaded once for all three. Bias and ReLU are applied in the epilogue, and each output
column is stored straight to its destination: the 1x1 branch into its channel slice of the
module output, the reduces into their own tensors."""
import triton
import triton.language as tl

from fastalex.triton._configs import prepare
from fastalex.triton._tiles import bias_relu, output_tile, store_channels


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
    rm, rn, m_ok, n_ok, n_img, h, w = output_tile(M, HW, W, NT, BLOCK_M, BLOCK_N)
    x_row = n_img * sxn + h * sxh + w * sxw
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, C, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        k_ok = rk < C
        a = tl.load(x_ptr + x_row[:, None] + rk[None, :] * sxc, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(w_ptr + rk[:, None] * NT + rn[None, :], mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    out = bias_relu(acc, b_ptr, rn, n_ok)
    # Column j goes to the 1x1 branch (j < C1), the 3x3 reduce, or the 5x5 reduce.
    store_channels(y_ptr, out, n_img, h, w, rn, syn, syc, syh, syw, m_ok[:, None] & (rn < C1)[None, :])
    c3 = rn - C1
    store_channels(r3_ptr, out, n_img, h, w, c3, s3n, s3c, s3h, s3w, m_ok[:, None] & ((c3 >= 0) & (c3 < C3R))[None, :])
    c5 = rn - C1 - C3R
    store_channels(r5_ptr, out, n_img, h, w, c5, s5n, s5c, s5h, s5w, m_ok[:, None] & ((c5 >= 0) & (c5 < C5R))[None, :])


launcher, autotuned = prepare("inception_1x1", inception_1x1_kernel, key=["M", "C", "C1", "C3R", "C5R", "PRECISION"])
