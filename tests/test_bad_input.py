"""Every bad input gets a clear error: the right exception type and a message that names the
argument and what was expected. Checked through the public API and through torch.ops directly
(the C++ checks are what stand between a bad call and an out-of-bounds kernel)."""
import pytest
import torch

from conftest import DEVICES, randn
from fastalex import ops

conv = torch.ops.fastalex.conv2d_relu
lrn = torch.ops.fastalex.local_response_norm
pool = torch.ops.fastalex.max_pool2d
linear = torch.ops.fastalex.linear


def x4(*shape, dtype=torch.float32, device="cpu"):
    return randn(*shape, dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        # wrong ndim
        (lambda d: conv(x4(3, 8, 8, device=d), x4(4, 3, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1], 1), ValueError, r"input must be 4-D \(N, C, H, W\), got 3-D"),
        (lambda d: ops.conv2d_relu(x4(1, 2, 3, 8, 8, device=d), x4(4, 3, 3, 3, device=d)), ValueError, r"input must be 4-D"),
        (lambda d: conv(x4(1, 3, 8, 8, device=d), x4(4, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1], 1), ValueError, r"weight must be 4-D"),
        (lambda d: conv(x4(1, 3, 8, 8, device=d), x4(4, 3, 3, 3, device=d), x4(4, 1, device=d), [1, 1], [0, 0], [1, 1], 1), ValueError, r"bias must be 1-D of size 4"),
        (lambda d: conv(x4(1, 3, 8, 8, device=d), x4(4, 3, 3, 3, device=d), x4(5, device=d), [1, 1], [0, 0], [1, 1], 1), ValueError, r"bias must be 1-D of size 4 \(out_channels\)"),
        # dtype mismatch among input / weight / bias
        (lambda d: conv(x4(1, 3, 8, 8, device=d), x4(4, 3, 3, 3, dtype=torch.float64, device=d), None, [1, 1], [0, 0], [1, 1], 1), TypeError, r"weight has dtype float64 but input has dtype float32"),
        (lambda d: conv(x4(1, 3, 8, 8, device=d), x4(4, 3, 3, 3, device=d), x4(4, dtype=torch.float64, device=d), [1, 1], [0, 0], [1, 1], 1), TypeError, r"bias has dtype float64 but input has dtype float32"),
        # channels vs groups
        (lambda d: conv(x4(1, 6, 8, 8, device=d), x4(4, 3, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1], 4), ValueError, r"input has 6 channels, which is not divisible by groups=4"),
        (lambda d: conv(x4(1, 6, 8, 8, device=d), x4(5, 3, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1], 2), ValueError, r"weight has 5 output channels, expected a positive multiple of groups=2"),
        (lambda d: conv(x4(1, 6, 8, 8, device=d), x4(4, 4, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1], 1), ValueError, r"expects 4 input channels \(weight.size\(1\) \* groups\), but input has 6"),
        (lambda d: conv(x4(1, 6, 8, 8, device=d), x4(4, 6, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1], 0), ValueError, r"groups must be positive, got 0"),
        # kernel larger than the padded input
        (lambda d: conv(x4(1, 3, 4, 4, device=d), x4(4, 3, 7, 7, device=d), None, [1, 1], [1, 1], [1, 1], 1), ValueError, r"kernel size \(7, 7\) with dilation \(1, 1\) spans \(7, 7\), larger than the padded input \(6, 6\)"),
        # stride / padding
        (lambda d: conv(x4(1, 3, 8, 8, device=d), x4(4, 3, 3, 3, device=d), None, [0, 1], [0, 0], [1, 1], 1), ValueError, r"stride must be positive, got \(0, 1\)"),
        (lambda d: conv(x4(1, 3, 8, 8, device=d), x4(4, 3, 3, 3, device=d), None, [1, 1], [-1, 0], [1, 1], 1), ValueError, r"padding must be non-negative, got \(-1, 0\)"),
        (lambda d: ops.conv2d_relu(x4(1, 3, 8, 8, device=d), x4(4, 3, 3, 3, device=d), stride=(1, 2, 3)), TypeError, r"stride must be an int or a pair of ints"),
        (lambda d: ops.conv2d_relu(x4(1, 3, 8, 8, device=d), x4(4, 3, 3, 3, device=d), padding="full"), ValueError, r"padding must be 'valid', 'same', an int or a pair of ints"),
        (lambda d: ops.conv2d_relu(x4(1, 3, 8, 8, device=d), x4(4, 3, 3, 3, device=d), groups=1.5), TypeError, r"groups must be an int"),
        (lambda d: ops.conv2d_relu([1.0], x4(4, 3, 3, 3, device=d)), TypeError, r"input must be a torch.Tensor"),
        # unsupported dtype
        (lambda d: conv(torch.ones(1, 3, 8, 8, dtype=torch.int32, device=d), torch.ones(4, 3, 3, 3, dtype=torch.int32, device=d), None, [1, 1], [0, 0], [1, 1], 1), TypeError, r"input has dtype Int, which is not supported"),
        # LRN
        (lambda d: lrn(x4(3, 8, device=d), 5, 1e-4, 0.75, 1.0), ValueError, r"input must be 3-D or more \(N, C, ...\), got 2-D"),
        (lambda d: lrn(x4(1, 3, 8, 8, device=d), 0, 1e-4, 0.75, 1.0), ValueError, r"size must be positive, got 0"),
        (lambda d: lrn(x4(1, 3, 8, 8, device=d), -2, 1e-4, 0.75, 1.0), ValueError, r"size must be positive, got -2"),
        (lambda d: lrn(x4(1, 3, 8, 8, device=d), 5, float("nan"), 0.75, 1.0), ValueError, r"alpha, beta and k must be finite"),
        (lambda d: lrn(torch.ones(1, 3, 8, 8, dtype=torch.int64, device=d), 5, 1e-4, 0.75, 1.0), TypeError, r"input has dtype Long, which is not supported"),
        (lambda d: ops.local_response_norm(x4(1, 3, 8, 8, device=d), 2.5), TypeError, r"size must be an int"),
        # max-pool
        (lambda d: pool(x4(8, 8, device=d), [3, 3], [2, 2], [0, 0], [1, 1], False), ValueError, r"input must be 4-D \(N, C, H, W\), got 2-D"),
        (lambda d: pool(x4(1, 3, 8, 8, device=d), [3, 3], [2, 2], [2, 0], [1, 1], False), ValueError, r"padding \(2, 0\) must be at most half of kernel_size \(3, 3\)"),
        (lambda d: pool(x4(1, 3, 8, 8, device=d), [3, 3], [0, 2], [0, 0], [1, 1], False), ValueError, r"stride must be positive, got \(0, 2\)"),
        (lambda d: pool(x4(1, 3, 8, 8, device=d), [0, 3], [1, 1], [0, 0], [1, 1], False), ValueError, r"kernel_size must be positive, got \(0, 3\)"),
        (lambda d: pool(x4(1, 3, 8, 8, device=d), [3, 3], [1, 1], [-1, 0], [1, 1], False), ValueError, r"padding must be non-negative"),
        (lambda d: pool(x4(1, 3, 2, 8, device=d), [3, 3], [1, 1], [0, 0], [1, 1], False), ValueError, r"kernel_size \(3, 3\) with dilation \(1, 1\) is larger than the padded input \(2, 8\)"),
        (lambda d: pool(x4(1, 0, 8, 8, device=d), [3, 3], [1, 1], [0, 0], [1, 1], False), ValueError, r"non-zero C, H and W"),
        (lambda d: pool(torch.ones(1, 3, 8, 8, dtype=torch.int32, device=d), [3, 3], [2, 2], [0, 0], [1, 1], False), TypeError, r"input has dtype Int, which is not supported"),
        (lambda d: ops.max_pool2d(x4(1, 3, 8, 8, device=d), (3, 3, 3)), TypeError, r"kernel_size must be an int or a pair of ints"),
        (lambda d: ops.max_pool2d(x4(1, 3, 8, 8, device=d), 3, ceil_mode=1), TypeError, r"ceil_mode must be a bool"),
        # linear
        (lambda d: linear(x4(2, 3, 8, device=d), x4(4, 8, device=d), None, False), ValueError, r"linear: input must be 2-D \(N, in_features\), got 3-D"),
        (lambda d: linear(x4(2, 8, device=d), x4(4, 8, 1, device=d), None, False), ValueError, r"weight must be 2-D \(out_features, in_features\)"),
        (lambda d: linear(x4(2, 8, device=d), x4(4, 7, device=d), None, False), ValueError, r"expects 7 input features \(weight.size\(1\)\), but input has 8"),
        (lambda d: linear(x4(2, 8, device=d), x4(4, 8, device=d), x4(5, device=d), False), ValueError, r"bias must be 1-D of size 4 \(out_features\)"),
        (lambda d: linear(x4(2, 8, device=d), x4(4, 8, dtype=torch.float64, device=d), None, False), TypeError, r"linear: weight has dtype float64 but input has dtype float32"),
        (lambda d: linear(x4(2, 8, device=d), x4(4, 8, device=d), x4(4, dtype=torch.float64, device=d), False), TypeError, r"linear: bias has dtype float64"),
        (lambda d: ops.linear(x4(2, 8, device=d), x4(4, 8, device=d), relu=1), TypeError, r"linear: relu must be a bool"),
        (lambda d: ops.linear(torch.tensor(1.0, device=d), x4(4, 1, device=d)), ValueError, r"linear: input must have at least 1 dimension"),
        (lambda d: ops.linear([1.0], x4(4, 1, device=d)), TypeError, r"linear: input must be a torch.Tensor"),
    ],
)
def test_bad_input(device, call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call(device)


def test_half_is_rejected_on_cpu():
    x = x4(1, 3, 8, 8, dtype=torch.float16)
    with pytest.raises(TypeError, match=r"input has dtype float16, which is not supported on cpu \(expected float32 or float64\)"):
        ops.max_pool2d(x, 3)
    with pytest.raises(TypeError, match=r"float16, which is not supported on cpu"):
        ops.local_response_norm(x, 5)
    with pytest.raises(TypeError, match=r"float16, which is not supported on cpu"):
        ops.conv2d_relu(x, x4(4, 3, 3, 3, dtype=torch.float16))
    with pytest.raises(TypeError, match=r"float16, which is not supported on cpu"):
        ops.linear(x4(2, 3, dtype=torch.float16), x4(4, 3, dtype=torch.float16))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_device_mismatch():
    x = x4(1, 3, 8, 8, device="cuda")
    with pytest.raises(ValueError, match=r"weight is on cpu but input is on cuda:0 \(expected the same device\)"):
        conv(x, x4(4, 3, 3, 3), None, [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match=r"bias is on cpu but input is on cuda:0"):
        conv(x, x4(4, 3, 3, 3, device="cuda"), x4(4), [1, 1], [0, 0], [1, 1], 1)


def test_device_mismatch_reaches_the_cpu_kernel_check():
    # Without a GPU, send a meta weight straight to the CPU kernel (bypassing dispatch, which
    # would otherwise pick the meta kernel) to exercise the C++ device check.
    cpu = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)
    x = x4(1, 3, 8, 8)
    w = torch.empty(4, 3, 3, 3, device="meta")
    with pytest.raises(ValueError, match=r"weight is on meta but input is on cpu \(expected the same device\)"):
        conv.default.redispatch(cpu, x, w, None, [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match=r"bias is on meta but input is on cpu"):
        conv.default.redispatch(cpu, x, x4(4, 3, 3, 3), torch.empty(4, device="meta"), [1, 1], [0, 0], [1, 1], 1)


def test_fake_kernels_size_inputs_beyond_32_bit_indexing():
    # Shape maths on a 4.9e9-element input, without memory.
    x = torch.empty(1, 1, 70000, 70000, device="meta")
    assert pool(x, [3, 3], [2, 2], [0, 0], [1, 1], False).shape == (1, 1, 34999, 34999)
    assert lrn(x, 5, 1e-4, 0.75, 1.0).shape == x.shape
    assert conv(x, torch.empty(2, 1, 3, 3, device="meta"), None, [2, 2], [1, 1], [1, 1], 1).shape == (1, 2, 35000, 35000)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_more_than_2_to_the_31_elements_on_gpu(fmt):
    # 2^31 + a bit of float16 (4.3 GB): 64-bit index paths must be taken and be right.
    if torch.cuda.get_device_properties(0).total_memory < 24 * 2**30:
        pytest.skip("needs a GPU with 24 GiB")
    x = torch.randn(1, 8, 16385, 16385, device="cuda", dtype=torch.float16)
    if fmt == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    out = ops.max_pool2d(x, 3, 2)
    ref = torch.nn.functional.max_pool2d(x, 3, 2)
    assert torch.equal(out, ref)
    del out, ref
    y = ops.local_response_norm(x, 5)
    torch.testing.assert_close(y, torch.nn.functional.local_response_norm(x.float(), 5).half(), rtol=2e-3, atol=1e-4)
