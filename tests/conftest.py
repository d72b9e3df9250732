"""Shared test fixtures: devices, seeding, NaN-poisoned outputs, per-dtype tolerances."""
import glob
import os

# Without a GPU the Triton kernels run on Triton's CPU interpreter, which must be chosen
# before triton is first imported.
if "TRITON_INTERPRET" not in os.environ and not glob.glob("/dev/nvidia[0-9]*"):
    os.environ["TRITON_INTERPRET"] = "1"

# lrn_max_pool2d's CUDA host code runs its LRN and max-pool kernels in turn unless
# FASTALEX_LRN_POOL_CUDA=fused (csrc/cuda/lrn_max_pool2d_cuda.cu: the fused kernel measured
# slower on an H200). The tests run the fused kernel (on the emulator and on a GPU) so that the
# contract keeps checking it; tests/test_lrn_pool_emu.py checks the default route against it.
os.environ.setdefault("FASTALEX_LRN_POOL_CUDA", "fused")

import pytest  # noqa: E402
import torch  # noqa: E402

import fastalex  # noqa: F401,E402  (loads the ops)

HAS_CUDA = torch.cuda.is_available()

# Devices every kernel test runs on; the CUDA one only where a GPU exists.
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")])]

CPU_DTYPES = [torch.float32, torch.float64]
CUDA_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def dtypes_for(device):
    return CPU_DTYPES if device == "cpu" else CUDA_DTYPES


@pytest.fixture(autouse=True)
def _seed_and_poison():
    """Seed every test, and poison every freshly allocated tensor (kernel outputs included)
    with NaN: with deterministic algorithms on, torch fills uninitialised memory, so an
    output element a kernel forgets to write shows up as NaN instead of stale zeros."""
    torch.manual_seed(0)
    prev = torch.are_deterministic_algorithms_enabled()
    prev_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    yield
    torch.use_deterministic_algorithms(prev)
    torch.utils.deterministic.fill_uninitialized_memory = prev_fill


def randn(*shape, dtype=torch.float32, device="cpu", scale=1.0):
    """Seeded normal values; never zeros (a zero input hides missing reads and writes)."""
    return (torch.randn(*shape, dtype=torch.float64) * scale).to(device=device, dtype=dtype)


# NCHW, channels_last and a strided view (columns between hold NaN): the contract's layouts.
from contract import TOLERANCES, to_format  # noqa: E402,F401


FORMATS = ["nchw", "nhwc", "strided"]

# Tolerances (rtol, atol) against a float64 reference computed from the same (rounded) inputs:
# the contract's classes (tests/contract.py), for the per-op tests outside it.
ELEMENTWISE_TOL = TOLERANCES["elementwise"]
REDUCTION_TOL = TOLERANCES["reduction"]


def conv_tol(device, dtype):
    """The conv's tolerance on `device` ("cpu", "cuda" or "emu"): CUDA kernels multiply float32
    in TF32 while torch.backends.cudnn.allow_tf32 is set, as cuDNN does."""
    if device != "cpu" and dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        return TOLERANCES["reduction_tf32"][torch.float32]
    return REDUCTION_TOL[dtype]


def assert_close(out, ref, tol):
    rtol, atol = tol
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert not torch.isnan(out).any(), "output holds NaN: an element was not written"
    torch.testing.assert_close(out.double(), ref.double(), rtol=rtol, atol=atol)


def conv_inputs(n, c, h, w, oc, k, groups=1, bias=True, dtype=torch.float32, device="cpu", wscale=None):
    """Seeded (x, weight, bias) for a conv2d_relu case: weights scaled by 1/sqrt(fan-in) (unless
    wscale), so the outputs are O(1); k an int or a (kH, kW) pair."""
    kh, kw = (k, k) if isinstance(k, int) else k
    x = randn(n, c, h, w, dtype=dtype, device=device)
    fan_in = c // groups * kh * kw
    wt = randn(oc, c // groups, kh, kw, dtype=dtype, device=device, scale=fan_in ** -0.5 if wscale is None else wscale)
    b = randn(oc, dtype=dtype, device=device, scale=0.5) if bias else None
    return x, wt, b


def check_conv2d_relu(x, wt, b, stride=1, padding=0, groups=1, tol=None):
    """fastalex.ops.conv2d_relu against relu(conv2d) in float64 within tol (the reduction class
    of x's dtype by default); the ReLU really clamps (random inputs give negative
    pre-activations) and the output keeps the input's memory format. Returns the output."""
    from fastalex import ops

    out = ops.conv2d_relu(x, wt, b, stride, padding, 1, groups)
    ref = torch.nn.functional.relu(torch.nn.functional.conv2d(
        x.double(), wt.double(), None if b is None else b.double(), stride, padding, 1, groups))
    assert_close(out, ref, REDUCTION_TOL[x.dtype] if tol is None else tol)
    if out.numel() >= 64:
        assert (out == 0).any() and (out > 0).any()
    if x.dim() == 4:
        # (torch's suggestion for the input: NCHW for strided views, channels_last for NHWC)
        from torch._prims_common import suggest_memory_format

        assert out.is_contiguous(memory_format=suggest_memory_format(x))
    return out

