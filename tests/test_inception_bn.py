"""fastalex.ops.inception_bn (torchvision's Inception block in eval mode) against torch's
conv2d -> batch_norm -> relu branches and cat; on the CPU each BatchNorm is applied in its
convolution's store."""
import pytest
import torch
import torch.nn.functional as F

import contract as ct
from fastalex import ops

EPS = 1e-3
ODD = (19, 5, 7, 9, 3, 6, 11)  # channel counts not a multiple of 16 (or 8)
AVX512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def _reference(x, weights, running_means, running_vars, bn_weights, bn_biases, eps=1e-5):
    def cbr(t, i):
        k = weights[i].shape[-1]
        y = F.conv2d(t, weights[i], None, 1, k // 2)
        return F.relu(F.batch_norm(y, running_means[i], running_vars[i], bn_weights[i], bn_biases[i], False, 0.0, eps))
    return torch.cat([cbr(x, 0), cbr(cbr(x, 1), 2), cbr(cbr(x, 3), 4), cbr(F.max_pool2d(x, 3, 1, 1), 5)], 1)


def _params(cfg, dtype, k3=3, seed=0):
    """The five lists for Inception channels cfg = (in, c1, c3 reduce, c3, c5 reduce, c5, pool
    proj), the third branch's kernel k3 (torchvision's 3, or the paper's 5)."""
    cin, c1, c3r, c3, c5r, c5, cp = cfg
    shapes = [(c1, cin, 1), (c3r, cin, 1), (c3, c3r, 3), (c5r, cin, 1), (c5, c5r, k3), (cp, cin, 1)]
    lists = [[], [], [], [], []]
    for i, (o, c, k) in enumerate(shapes):
        s = seed + 10 * i
        lists[0].append(ct.rand(o, c, k, k, dtype=dtype, scale=(2.0 / (c * k * k)) ** 0.5, seed=s))
        lists[1].append(ct.rand(o, dtype=dtype, scale=0.2, seed=s + 1))
        lists[2].append((ct.rand(o, dtype=torch.float64, seed=s + 2).abs() + 0.25).to(dtype))
        lists[3].append(ct.rand(o, dtype=dtype, seed=s + 3))
        lists[4].append(ct.rand(o, dtype=dtype, scale=0.2, seed=s + 4))
    return tuple(lists)


def _sample(label, x, cfg, k3=3, seed=0):
    return ct.Sample(label, (x,) + _params(cfg, x.dtype, k3, seed) + (EPS,))


def _samples(dtype):
    return [
        _sample("odd_channels", ct.rand(2, ODD[0], 7, 6, dtype=dtype), ODD),
        _sample("3a_torchvision", ct.rand(1, 192, 5, 5, dtype=dtype), (192, 64, 96, 128, 16, 32, 32), seed=1),
        _sample("5x5_third_branch", ct.rand(1, ODD[0], 5, 9, dtype=dtype), ODD, k3=5, seed=2),
        _sample("one_pixel", ct.rand(3, ODD[0], 1, 1, dtype=dtype), ODD, seed=3),
        # 32-pixel blocks spanning the two images, rows wider than 16 (the 3x3/1 pool's strips)
        _sample("two_images_wide", ct.rand(2, ODD[0], 11, 19, dtype=dtype), ODD, seed=4),
    ]


def _nonfinite(dtype):
    # No overflowing finite values (see tests/test_inception.py): NaN and infinities in the
    # input, then non-finite BatchNorm tensors (a negative variance, a NaN mean, an infinite
    # weight and bias) in the first and the k x k convolutions.
    out = []
    for kind in ("nan", "+inf", "-inf", "mixed"):
        x = ct.rand(2, ODD[0], 9, 17, dtype=dtype)
        x = ct.place_values(x, kind, ct.positions(x.shape, spatial_extra=(8 * 17,)), 1e3)
        out.append(_sample(kind, x, ODD))
    x = ct.rand(2, ODD[0], 9, 17, dtype=dtype)
    weights, means, vars_, bws, bbs = (list(t.clone() for t in lst) for lst in _params(ODD, dtype, seed=5))
    vars_[0][1] = -1.0
    means[2][3] = float("nan")
    bws[2][4] = float("inf")
    bbs[4][0] = float("-inf")
    bws[5][2] = float("-inf")
    out.append(ct.Sample("bn_values", (x, weights, means, vars_, bws, bbs, EPS)))
    return out


def _bad(label, exc, pattern, api="public", edit=None):
    def call(f, d):
        args = list(ct.map_tensors(_sample("bad", ct.rand(1, 5, 4, 4), (5, 2, 3, 2, 2, 3, 2)).args, lambda t: t.to(d)))
        if edit is not None:
            edit(args, d)
        return f(*args)
    return ct.BadInput(label, call, exc, pattern, api)


def _set(i, j, value):
    def edit(args, d):
        args[i][j] = value(d) if callable(value) else value
    return edit


SPEC = ct.OpSpec(
    name="inception_bn",
    public=ops.inception_bn,
    overload=torch.ops.fastalex.inception_bn.default,
    reference=_reference,
    samples=_samples,
    nonfinite=_nonfinite,
    schema_args=lambda *args: args,
    tolerance="two_reductions",
    cudnn_backends=("cuda",),  # the composite: cuDNN convolutions, TF32 by default
    grad_samples=lambda: [_sample("grad", ct.rand(1, 5, 4, 3, dtype=torch.float64), (5, 2, 3, 2, 2, 3, 2))],
    grad_argnums=(0,),  # the lists' gradients: test_gradients_of_every_list below
    bad_inputs=[
        _bad("3d_input", ValueError, r"fastalex.inception_bn: input must be 4-D \(N, C, H, W\), got 3-D", "schema",
             lambda a, d: a.__setitem__(0, ct.tensor(5, 4, 4, device=d))),
        _bad("five_weights", ValueError, r"weights must hold 6 tensors .*, got 5", "schema",
             lambda a, d: a.__setitem__(1, a[1][:5])),
        _bad("five_weights_public", TypeError, r"weights must be a list of 6 torch.Tensors .* of length 5",
             edit=lambda a, d: a.__setitem__(1, a[1][:5])),
        _bad("input_channels", ValueError, r"weights\[0\] must be \(out_channels, 6, 1, 1\) for an input of 6 channels",
             "schema", lambda a, d: a.__setitem__(0, ct.tensor(1, 6, 4, 4, device=d))),
        _bad("k_reads_reduce", ValueError, r"weights\[2\] expects 4 input channels, but weights\[1\] has 3 output "
                                           r"channels", "schema", _set(1, 2, lambda d: ct.tensor(2, 4, 3, 3, device=d))),
        _bad("even_kernel", ValueError, r"weights\[4\] must have a square kernel of odd size", "schema",
             _set(1, 4, lambda d: ct.tensor(3, 2, 4, 4, device=d))),
        _bad("mean_size", ValueError, r"running_means\[5\] must be 1-D of size 2 \(weights\[5\]'s output channels\)",
             "schema", _set(2, 5, lambda d: ct.tensor(3, device=d))),
        _bad("var_dtype", TypeError, r"running_vars\[3\] has dtype float64 but input has dtype float32", "schema",
             _set(3, 3, lambda d: ct.tensor(2, dtype=torch.float64, device=d))),
        _bad("bn_weight_size", ValueError, r"bn_weights\[1\] must be 1-D of size 3", "schema",
             _set(4, 1, lambda d: ct.tensor(4, device=d))),
        _bad("eps_negative", ValueError, r"fastalex.inception_bn: eps must be non-negative, got -0.5", "schema",
             lambda a, d: a.__setitem__(6, -0.5)),
        _bad("int_dtype", TypeError, r"fastalex.inception_bn: input has dtype Int, which is not supported", "schema",
             lambda a, d: a.__init__(ct.map_tensors(a, lambda t: t.int()))),
        _bad("bias_entry", TypeError, r"bn_biases\[2\] must be a torch.Tensor", edit=_set(5, 2, 0.0)),
    ],
)


def test_gradients_of_every_list():
    # The autograd formula covers every tensor of the lists, not only the input.
    x, *lists, eps = _sample("grad", ct.rand(1, 5, 4, 3, dtype=torch.float64), (5, 2, 3, 2, 2, 3, 2)).args
    flat = [x] + [t for lst in lists for t in lst]
    for t in flat:
        t.requires_grad_(True)

    def f(*ts):
        return ops.inception_bn(ts[0], *[list(ts[1 + 6 * j:7 + 6 * j]) for j in range(5)], eps)

    assert torch.autograd.gradcheck(f, tuple(flat))


@pytest.mark.skipif(not AVX512, reason="the BatchNorm store is the AVX-512 kernels'")
@pytest.mark.parametrize("algo, winograd", [("winograd", 2), ("direct", 0)])
def test_cpu_kernel_branches(monkeypatch, algo, winograd):
    # Inception 4e's channels at 14 x 14: both k x k branches through the chosen algorithm, every
    # convolution applying its BatchNorm in its store.
    monkeypatch.setenv("FASTALEX_CPU_CONV", algo)
    s = _sample("4e", ct.rand(2, 528, 14, 14), (528, 256, 160, 320, 32, 128, 128), seed=6)
    before = torch.ops.fastalex.cpu_winograd_calls()
    out = ops.inception_bn(*s.args)
    assert torch.ops.fastalex.cpu_winograd_calls() - before == winograd
    ref = _reference(*ct.map_tensors(s.args, lambda t: t.double()))
    ct.assert_matches_reference(out, ref, ct.TOLERANCES["two_reductions"][torch.float32], f"4e {algo}")


def test_reads_the_batch_norms_on_every_call():
    # Nothing is kept between calls: in-place changes to any list's tensors, even through .data
    # (no version bump), show in the next call.
    x, *lists, eps = _sample("fresh", ct.rand(1, ODD[0], 9, 9), ODD, seed=7).args
    first = ops.inception_bn(x, *lists, eps)
    for j, i in ((0, 2), (1, 4), (2, 0), (3, 5), (4, 1)):
        lists[j][i].data.add_(0.5)
        out = ops.inception_bn(x, *lists, eps)
        assert not torch.equal(out, first), f"list {j}, tensor {i}"
        ref = _reference(*ct.map_tensors((x, *lists, eps), lambda t: t.double()))
        ct.assert_matches_reference(out, ref, ct.TOLERANCES["two_reductions"][torch.float32], f"list {j}")
        first = out
