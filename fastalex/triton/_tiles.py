"""Pieces shared by the Inception kernels: the program's output tile (pixels x output
channels) and the bias + ReLU + store epilogue into a channel slice of an NCHW or NHWC tensor."""
import triton
import triton.language as tl


@triton.jit
def output_tile(M, HW, W, NCOLS, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's output pixels rm (image n_img, row h, column w) and output columns rn,
    with their in-range masks. Offsets are 32-bit: the host splits batches that would overflow."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_img = rm // HW
    hw = rm % HW
    return rm, rn, rm < M, rn < NCOLS, n_img, hw // W, hw % W


@triton.jit
def bias_relu(acc, b_ptr, rn, n_ok):
    acc += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    return tl.where(acc < 0.0, 0.0, acc)  # ReLU that keeps NaN, like torch


@triton.jit
def store_channels(y_ptr, out, n_img, h, w, c, syn, syc, syh, syw, mask):
    """out[i, j] -> y[n_img[i], c[j], h[i], w[i]] where mask."""
    tl.store(y_ptr + (n_img * syn + h * syh + w * syw)[:, None] + c[None, :] * syc, out.to(y_ptr.dtype.element_ty),
             mask=mask)
