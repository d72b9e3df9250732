"""fastalex.ops.lrn_max_pool2d (LRN then max-pool as one op) against torch's unfused pair; its
spec, and the case builder shared with tests/test_max_pool2d_lrn.py (the other order)."""
import torch
import torch.nn.functional as F

import contract as ct
import fastalex.emu as emu
from fastalex import ops

# (label, shape, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode): the networks'
# pairs scaled down, then odd shapes (prime sizes, channels not a multiple of 8, 1x1-ish maps,
# generic beta, a window wider than the CPU ring, padding, rectangular windows).
CASES = [
    ("alexnet_block1", (2, 96, 13, 13), 5, 5e-4, 0.75, 2.0, 3, 2, 0, False),
    ("googlenet_stem", (2, 64, 15, 15), 5, 1e-4, 0.75, 1.0, 3, 2, 0, True),
    ("prime", (1, 7, 13, 17), 5, 1e-2, 0.75, 1.0, 3, 2, 1, True),
    ("generic_beta_wide_window", (2, 19, 9, 11), 17, 1e-1, 0.6, 1.3, 3, 2, 0, False),
    ("rect_window", (1, 5, 10, 9), 3, 1e-1, 0.5, 1.0, (3, 2), (2, 1), (1, 0), True),
    ("tiny_map", (3, 13, 3, 3), 4, 1e-2, 0.75, 1.0, 3, 2, 0, True),
    ("long_rows", (1, 9, 7, 61), 5, 1e-2, 0.75, 2.0, 3, 2, 0, False),
]


def make_spec(name, public, overload, reference):
    """The op's spec: the CPU kernel (fast path and portable), and the CUDA kernel on the emulator
    (fastalex.emu.<name>)."""
    def samples(dtype):
        return [ct.Sample(label, (ct.rand(*shape, dtype=dtype, scale=3.0, seed=i),) + tuple(args))
                for i, (label, shape, *args) in enumerate(CASES)]

    def nonfinite(dtype):
        out = []
        for kind in ct.NONFINITE_KINDS:
            for label, shape, *args in (CASES[0], CASES[2], CASES[6]):
                n, c, h, w = shape
                x = ct.place_values(ct.rand(*shape, dtype=dtype, scale=3.0), kind,
                                    ct.positions(shape, spatial_extra=((h - 1) * w, w - 1, h * w - 1)),
                                    ct.square_overflow(dtype))
                out.append(ct.Sample(f"{kind}_{label}", (x,) + tuple(args)))
        return out

    def schema_args(x, size, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2, padding=0, ceil_mode=False):
        return (x, size, float(alpha), float(beta), float(k), ct.pair_list(kernel_size), ct.pair_list(stride),
                ct.pair_list(padding), ceil_mode)

    t = ct.tensor
    return ct.OpSpec(
        name=name,
        public=public,
        overload=overload,
        reference=reference,
        emu=getattr(emu, name),
        emu_overload=getattr(torch.ops.fastalex_emu, name).default,
        samples=samples,
        nonfinite=nonfinite,
        schema_args=schema_args,
        tolerance="elementwise",
        grad_samples=lambda: [ct.Sample("grad", (ct.rand(1, 6, 7, 6, dtype=torch.float64), 3, 0.3, 0.75, 1.0, 3, 2, 1,
                                                 True))],
        bad_inputs=[
            ct.BadInput("3d_input", lambda f, d: f(t(4, 5, 5, device=d), 5), ValueError, rf"{name}: input must be 4-D \(N, C, H, W\), got 3-D"),
            ct.BadInput("size_zero", lambda f, d: f(t(1, 4, 5, 5, device=d), 0), ValueError, r"size must be positive, got 0"),
            ct.BadInput("size_float", lambda f, d: f(t(1, 4, 5, 5, device=d), 2.5), TypeError, rf"{name}: size must be an int"),
            ct.BadInput("beta_str", lambda f, d: f(t(1, 4, 5, 5, device=d), 5, 1e-4, "x"), TypeError, rf"{name}: beta must be a real number"),
            ct.BadInput("padding_over_half", lambda f, d: f(t(1, 4, 8, 8, device=d), 5, padding=2), ValueError, r"padding \(2, 2\) must be at most half of kernel_size \(3, 3\)"),
            ct.BadInput("stride_zero", lambda f, d: f(t(1, 4, 8, 8, device=d), 5, stride=0), ValueError, r"stride must be positive"),
            ct.BadInput("kernel_too_large", lambda f, d: f(t(1, 4, 2, 8, device=d), 5), ValueError, r"kernel_size \(3, 3\) with dilation \(1, 1\) is larger than the padded input \(2, 8\)"),
            ct.BadInput("ceil_mode_int", lambda f, d: f(t(1, 4, 8, 8, device=d), 5, ceil_mode=1), TypeError, rf"{name}: ceil_mode must be a bool"),
            ct.BadInput("int_dtype", lambda f, d: f(torch.ones(1, 4, 8, 8, dtype=torch.int32, device=d), 5, 1e-4, 0.75, 1.0, [3, 3], [2, 2], [0, 0], False), TypeError, r"input has dtype Int, which is not supported", "schema"),
            ct.BadInput("input_list", lambda f, d: f([1.0], 5), TypeError, rf"{name}: input must be a torch.Tensor"),
        ],
    )


def _reference(x, size, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2, padding=0, ceil_mode=False):
    return F.max_pool2d(F.local_response_norm(x, size, alpha, beta, k), kernel_size, stride, padding, ceil_mode=ceil_mode)


SPEC = make_spec("lrn_max_pool2d", ops.lrn_max_pool2d, torch.ops.fastalex.lrn_max_pool2d.default, _reference)

