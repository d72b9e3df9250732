"""Bad input beyond each op's own list: every op's bad inputs (exception type and a message that
names the argument) are declared in its spec and run by tests/test_contract.py on every backend;
these are the cross-op cases -- dtypes a device lacks, devices mixed, shapes past 32-bit indexing."""
import pytest
import torch

from conftest import randn
from fastalex import ops

conv = torch.ops.fastalex.conv2d_relu
lrn = torch.ops.fastalex.local_response_norm
pool = torch.ops.fastalex.max_pool2d
linear = torch.ops.fastalex.linear


def x4(*shape, dtype=torch.float32, device="cpu"):
    return randn(*shape, dtype=dtype, device=device)


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
