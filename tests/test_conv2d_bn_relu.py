"""fastalex.ops.conv2d_bn_relu against torch's conv2d -> batch_norm (eval) -> relu; on the CPU
the BatchNorm is applied in the convolution's store, by the direct path and by Winograd."""
import pytest
import torch
import torch.nn.functional as F

import contract as ct
from fastalex import ops

EPS = 1e-3  # torchvision's BasicConv2d
AVX512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def _reference(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, running_mean=None, running_var=None,
               bn_weight=None, bn_bias=None, eps=1e-5):
    y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    return F.relu(F.batch_norm(y, running_mean, running_var, bn_weight, bn_bias, False, 0.0, eps))


F64 = torch.float64


def _bn(oc, dtype, seed):
    # BatchNorm factors between about 0.1 and 3 in magnitude, of both signs.
    return (ct.rand(oc, dtype=dtype, scale=0.2, seed=seed), (ct.rand(oc, dtype=F64, seed=seed + 1).abs() + 0.25).to(dtype),
            ct.rand(oc, dtype=dtype, seed=seed + 2), ct.rand(oc, dtype=dtype, scale=0.2, seed=seed + 3))


def _case(label, dtype, n, c, h, w, oc, k, stride=1, padding=0, dilation=1, groups=1, bias=False, affine=True,
          wscale=None, seed=0):
    x = ct.rand(n, c, h, w, dtype=dtype, seed=seed + 10)
    fan_in = c // groups * k * k
    wt = ct.rand(oc, c // groups, k, k, dtype=dtype, scale=fan_in ** -0.5 if wscale is None else wscale, seed=seed + 11)
    b = ct.rand(oc, dtype=dtype, scale=0.5, seed=seed + 12) if bias else None
    mean, var, bw, bb = _bn(oc, dtype, seed + 13)
    if not affine:
        bw = bb = None
    # F.conv2d's arguments, then F.batch_norm's (eval), each in torch's order
    return ct.Sample(label, (x, wt, b, stride, padding, dilation, groups, mean, var, bw, bb, EPS))


def _samples(dtype):
    return [
        _case("googlenet_stem_7x7s2", dtype, 1, 3, 23, 23, 16, 7, 2, 3),
        _case("3x3_winograd_size", dtype, 2, 16, 14, 14, 24, 3, 1, 1, seed=1),
        _case("1x1_odd_channels", dtype, 2, 13, 7, 9, 19, 1, seed=2),
        _case("groups2_5x5_conv_bias", dtype, 1, 8, 9, 9, 12, 5, 1, 2, 1, 2, bias=True, seed=3),
        _case("no_bn_affine", dtype, 1, 5, 6, 7, 6, 3, 1, 1, affine=False, seed=4),
        _case("one_pixel", dtype, 3, 7, 1, 1, 5, 1, seed=5),
        _case("partial_tiles_stride2", dtype, 1, 9, 11, 10, 67, 3, 2, 1, seed=6),
    ]


def _nonfinite(dtype):
    out = []
    big = ct.product_overflow(dtype)
    for kind in ct.NONFINITE_KINDS:
        s = _case(f"{kind}_3x3_pad1", dtype, 2, 6, 17, 19, 9, 3, 1, 1, wscale=1.0)
        x = ct.place_values(s.args[0], kind, ct.positions(s.args[0].shape), big)
        out.append(ct.Sample(s.label, (x,) + s.args[1:]))
    # Finite sums whose BatchNorm product overflows: torch's CPU batch_norm computes
    # x * alpha + beta as one fused multiply-add (0.6 max * 2 - 0.9 max = 0.3 max, where a
    # separate multiply would give inf), as the CPU kernel's store does; the composites run
    # torch's batch_norm itself. 1x1 convolutions of one channel with weight 1 make the sums the
    # inputs themselves; with a conv bias the sum + bias overflows first (inf in torch).
    top = torch.finfo(ct.precision_of(dtype)).max
    for bias in (False, True):
        x = ct.rand(2, 1, 5, 7, dtype=dtype, seed=8)
        x[0, 0, 1, 2] = 0.6 * top
        x[1, 0, 4, 6] = -0.6 * top
        w = torch.ones(3, 1, 1, 1, dtype=dtype)
        b = torch.tensor([0.5 * top, 0.0, -0.5 * top], dtype=dtype) if bias else None
        mean = torch.zeros(3, dtype=dtype)
        var = torch.full((3,), 1.0 - EPS, dtype=dtype)  # invstd 1 (up to rounding)
        bw = torch.tensor([2.0, -2.0, 2.0], dtype=dtype)
        bb = torch.tensor([-0.9 * top, 0.9 * top, 0.1], dtype=dtype)
        out.append(ct.Sample(f"product_overflow{'_conv_bias' if bias else ''}",
                             (x, w, b, 1, 0, 1, 1, mean, var, bw, bb, EPS)))
    # Non-finite BatchNorm tensors: a negative variance (a NaN factor), a NaN mean, an infinite
    # weight (an infinite factor), an infinite bias -- with and without a conv bias.
    for bias in (False, True):
        s = _case(f"bn_values{'_conv_bias' if bias else ''}", dtype, 2, 6, 14, 14, 9, 3, 1, 1, bias=bias, seed=7)
        mean, var, bw, bb = (t.clone() for t in s.args[7:11])
        var[1] = -1.0
        mean[2] = float("nan")
        bw[3] = float("inf")
        bb[4] = float("-inf")
        bw[5] = float("-inf")
        out.append(ct.Sample(s.label, s.args[:7] + (mean, var, bw, bb, EPS)))
    return out


def _schema_args(x, weight, bias, stride, padding, dilation, groups, running_mean, running_var, bn_weight, bn_bias,
                 eps):
    return (x, weight, bias, ct.pair_list(stride), ct.pair_list(padding), ct.pair_list(dilation), groups, running_mean,
            running_var, bn_weight, bn_bias, eps)


def _bad(label, exc, pattern, api="public", x=(1, 3, 8, 8), w=(4, 3, 3, 3), **swap):
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups", "running_mean", "running_var",
             "bn_weight", "bn_bias", "eps")

    def call(f, d):
        args = dict(zip(names, (ct.tensor(*x, device=d), ct.tensor(*w, device=d), None, [1, 1], [0, 0], [1, 1], 1)
                        + tuple(t.to(d) for t in _bn(w[0], torch.float32, 0)) + (EPS,)))
        for k, v in swap.items():
            args[k] = v(d) if callable(v) else v
        return f(*(args[n] for n in names))
    return ct.BadInput(label, call, exc, pattern, api)


SPEC = ct.OpSpec(
    name="conv2d_bn_relu",
    public=ops.conv2d_bn_relu,
    overload=torch.ops.fastalex.conv2d_bn_relu.default,
    reference=_reference,
    samples=_samples,
    nonfinite=_nonfinite,
    schema_args=_schema_args,
    tolerance="reduction",
    cudnn_backends=("cuda",),  # the composite: cuDNN convolutions, TF32 by default
    grad_samples=lambda: [_case("grad", torch.float64, 1, 4, 6, 5, 6, 3, (2, 1), 1, (1, 2), 2, bias=True)],
    grad_argnums=(0, 1, 2, 7, 8, 9, 10),
    bad_inputs=[
        _bad("3d_input", ValueError, r"fastalex.conv2d_bn_relu: input must be 4-D \(N, C, H, W\), got 3-D", "schema",
             x=(3, 8, 8)),
        _bad("weight_channels", ValueError, r"fastalex.conv2d_bn_relu: weight of shape .* expects 4 input channels",
             w=(4, 4, 3, 3)),
        _bad("mean_size", ValueError, r"running_mean must be 1-D of size 4 \(weight's output channels\), got shape "
                                      r"\[5\]", running_mean=lambda d: ct.tensor(5, device=d)),
        _bad("bn_weight_2d", ValueError, r"bn_weight must be 1-D of size 4", "schema",
             bn_weight=lambda d: ct.tensor(4, 1, device=d)),
        _bad("var_dtype", TypeError, r"running_var has dtype float64 but input has dtype float32",
             running_var=lambda d: ct.tensor(4, dtype=torch.float64, device=d).abs()),
        _bad("eps_negative", ValueError, r"fastalex.conv2d_bn_relu: eps must be non-negative, got -1", "schema",
             eps=-1.0),
        _bad("unbatched_input", ValueError, r"fastalex.conv2d_bn_relu: input must be 4-D \(N, C, H, W\), got 3-D",
             x=(3, 8, 8)),
        _bad("eps_string", TypeError, r"eps must be a real number", eps="1e-3"),
        _bad("no_running_mean", TypeError, r"running_mean must be a torch.Tensor, got NoneType", running_mean=None),
        _bad("bn_bias_list", TypeError, r"bn_bias must be a torch.Tensor", bn_bias=[0.0] * 4),
        _bad("stride_triple", TypeError, r"fastalex.conv2d_bn_relu: stride must be an int or a pair of ints",
             stride=(1, 2, 3)),
        _bad("int_dtype", TypeError, r"input has dtype Int, which is not supported", "schema",
             **{name: (lambda d, shape=shape: torch.ones(*shape, dtype=torch.int32, device=d))
                for name, shape in (("input", (1, 3, 8, 8)), ("weight", (4, 3, 3, 3)), ("running_mean", (4,)),
                                    ("running_var", (4,)), ("bn_weight", (4,)), ("bn_bias", (4,)))}),
    ],
)


# ---------------------------------------------------------------- the CPU kernel's own paths
def _check(sample, what):
    out = ops.conv2d_bn_relu(*sample.args)
    ref = _reference(*ct.map_tensors(sample.args, lambda t: t.double()))
    ct.assert_matches_reference(out, ref, ct.TOLERANCES["reduction"][torch.float32], what)


@pytest.mark.skipif(not AVX512, reason="the BatchNorm store is the AVX-512 kernels'")
@pytest.mark.parametrize("algo", ["direct", "winograd"])
@pytest.mark.parametrize("k", [3, 5])
def test_cpu_store_applies_the_batch_norm(monkeypatch, algo, k):
    # Both algorithms of the packed path apply the scale in their store: the micro-kernel's last
    # reduction block (two of them here: 576 > 512 rows of K) and Winograd's output transform.
    monkeypatch.setenv("FASTALEX_CPU_CONV", algo)
    for i, (n, c, h, oc) in enumerate([(1, 64, 14, 40), (2, 19, 9, 33), (1, 8, 28, 16)]):
        s = _case(f"{algo}_{k}x{k}_{i}", torch.float32, n, c, h, h + 3, oc, k, 1, k // 2, seed=20 + i)
        before = torch.ops.fastalex.cpu_winograd_calls()
        _check(s, s.label)
        assert torch.ops.fastalex.cpu_winograd_calls() - before == (1 if algo == "winograd" else 0)


@pytest.mark.skipif(not AVX512, reason="the BatchNorm store is the AVX-512 kernels'")
def test_cpu_nonfinite_factor_declines_winograd(monkeypatch):
    # An infinite factor times Winograd's rounding residue would be inf where the direct sum is an
    # exact zero: the call takes the direct path, with torch's NaN and inf.
    monkeypatch.setenv("FASTALEX_CPU_CONV", "winograd")
    s = _case("inf_factor", torch.float32, 1, 16, 14, 14, 8, 3, 1, 1, seed=30)
    x, bw = s.args[0].clone(), s.args[9].clone()
    x[:, :, :7] = 0.0  # exact zero sums at the top: inf * 0 = NaN in torch
    bw[2] = float("inf")
    args = (x,) + s.args[1:9] + (bw,) + s.args[10:]
    before = torch.ops.fastalex.cpu_winograd_calls()
    ct.assert_like_torch(ops.conv2d_bn_relu(*args), _reference, args, {}, ct.TOLERANCES["reduction"][torch.float32],
                         "inf factor")
    assert torch.ops.fastalex.cpu_winograd_calls() == before


def test_eps_as_torch():
    # F.batch_norm takes eps = 0 and lets NaN through (NaN factors); negative ones are errors.
    s = _case("eps", torch.float32, 1, 6, 9, 9, 8, 3, 1, 1, seed=50)
    for eps in (0.0, float("nan")):
        args = s.args[:11] + (eps,)
        ct.assert_like_torch(ops.conv2d_bn_relu(*args), _reference, args, {},
                             ct.TOLERANCES["reduction"][torch.float32], f"eps={eps}")


def test_reads_the_batch_norm_on_every_call():
    # Nothing is kept between calls: an in-place change to any BatchNorm tensor, even through
    # .data (no version bump), shows in the next call.
    s = _case("fresh", torch.float32, 1, 8, 10, 10, 6, 3, 1, 1, seed=40)
    args = list(s.args)
    first = ops.conv2d_bn_relu(*args)
    for i in (7, 8, 9, 10):
        args[i].data.mul_(1.5) if i != 8 else args[i].data.add_(0.5)
        out = ops.conv2d_bn_relu(*args)
        assert not torch.equal(out, first)
        _check(ct.Sample("fresh", tuple(args)), f"after editing argument {i}")
        first = out
