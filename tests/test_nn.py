"""fastalex.nn modules: constructed like their torch.nn counterparts (same argument order, names,
parameters and initialisation) and computing the same outputs."""
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, randn
from fastalex import nn as fnn


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "args, kwargs",
    [
        # nn.Conv2d's positional order: in, out, kernel_size, stride, padding, dilation, groups, bias
        ((6, 8, (3, 5), (2, 1), (1, 2), 1, 2), {}),
        ((6, 8, 3, 1, 2, 2, 1, False), {}),
        ((6, 8, 4), {"padding": "same", "dilation": (1, 2)}),  # odd total padding: extra on the right
        ((6, 8, 3), {"padding": "valid"}),
        ((6, 4, 3), {"padding": 2, "padding_mode": "reflect"}),
        ((6, 4, 3), {"padding": (1, 2), "padding_mode": "circular", "groups": 2}),
        ((6, 4, 3), {"padding": 1, "padding_mode": "replicate", "stride": 2}),
    ],
)
def test_conv2d_relu_module_matches_torch(device, args, kwargs):
    m = fnn.Conv2dReLU(*args, **kwargs).to(device)
    ref = torch.nn.Conv2d(*args, **kwargs).to(device)
    ref.load_state_dict(m.state_dict())
    assert m.extra_repr() == ref.extra_repr()
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = randn(2, 6, 11, 13, device=device).contiguous(memory_format=fmt)
        torch.testing.assert_close(m(x), F.relu(ref(x)), rtol=1e-5, atol=1e-5)
    assert set(m.state_dict()) == ({"weight", "bias"} if ref.bias is not None else {"weight"})


def test_conv2d_relu_module_rejects_what_nn_conv2d_rejects():
    with pytest.raises(ValueError, match="padding_mode"):
        fnn.Conv2dReLU(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        fnn.Conv2dReLU(3, 4, 3, stride=2, padding="same")


@pytest.mark.parametrize("device", DEVICES)
def test_lrn_module_matches_torch(device):
    m = fnn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    x = randn(2, 10, 6, 6, device=device, scale=10)
    torch.testing.assert_close(m(x), torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)(x), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "args",
    [
        # nn.MaxPool2d's positional order: kernel_size, stride, padding, dilation, return_indices, ceil_mode
        (3, 2, 1, 1, False, True),
        (3, 2, 0, 2, False, False),
        (2,),
        ((3, 2), (2, 1), (1, 0), (2, 1), True, True),
    ],
)
def test_max_pool_module_matches_torch(device, args):
    m, ref = fnn.MaxPool2d(*args), torch.nn.MaxPool2d(*args)
    assert m.extra_repr() == ref.extra_repr()
    x = randn(2, 4, 14, 15, device=device)
    out, want = m(x), ref(x)
    if isinstance(want, tuple):
        assert torch.equal(out[0], want[0]) and torch.equal(out[1], want[1])
    else:
        assert torch.equal(out, want)


def _torch_pair(lrn_first, x, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode):
    def lrn(t):
        return torch.nn.LocalResponseNorm(size, alpha, beta, k)(t)

    def pool(t):
        return torch.nn.MaxPool2d(kernel_size, stride, padding, ceil_mode=ceil_mode)(t)

    return pool(lrn(x)) if lrn_first else lrn(pool(x))


# (module, its op's name, LRN first?)
LRN_POOL_MODULES = [(fnn.LrnMaxPool2d, "lrn_max_pool2d", True), (fnn.MaxPool2dLrn, "max_pool2d_lrn", False)]
# The modules' positional order: size, alpha, beta, k, kernel_size, stride, padding, ceil_mode
LRN_POOL_ARGS = [
    (5, 5e-4, 0.75, 2.0, 3, 2, 0, False),  # paper AlexNet
    (5, 1e-4, 0.75, 1.0, 3, 2, 0, True),  # paper GoogLeNet's stem
    (3, 2e-3, 0.5, 1.5, (3, 2), (1, 2), (1, 0), True),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("args", LRN_POOL_ARGS)
@pytest.mark.parametrize("module, op, lrn_first", LRN_POOL_MODULES)
def test_lrn_pool_modules_match_the_torch_pair(device, module, op, lrn_first, args):
    m = module(*args)
    assert m.state_dict() == {}
    for fmt in (torch.contiguous_format, torch.channels_last):
        # scale 10: the LRN's denominator differs from k by far more than the tolerance
        x = randn(2, 10, 13, 14, device=device, scale=10).contiguous(memory_format=fmt)
        out, want = m(x), _torch_pair(lrn_first, x, *args)
        assert out.shape == want.shape
        torch.testing.assert_close(out, want, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("module, op, lrn_first", LRN_POOL_MODULES)
def test_lrn_pool_modules_reference_switch(monkeypatch, module, op, lrn_first):
    from fastalex import ops

    calls = []
    real = getattr(ops, op)
    monkeypatch.setattr(ops, op, lambda *a, **k: (calls.append(op), real(*a, **k))[1])
    args = LRN_POOL_ARGS[1]
    x = randn(2, 10, 13, 14, scale=10)
    m = module(*args)
    m(x)
    assert calls == [op]  # by default: the fused op
    # use_reference reaches it inside a network; it then computes torch's pair exactly and
    # never the fused op.
    net = torch.nn.Sequential(torch.nn.Identity(), m)
    assert fnn.use_reference(net) is net and m.reference
    assert torch.equal(net(x), _torch_pair(lrn_first, x, *args))
    assert calls == [op]
    fnn.use_reference(net, False)
    net(x)
    assert calls == [op, op]


@pytest.mark.parametrize("module, op, lrn_first", LRN_POOL_MODULES)
def test_lrn_pool_modules_repr(module, op, lrn_first):
    m = module(5, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2, ceil_mode=True)
    # the LRN's repr, then the pool's (dilation aside: the ops have none)
    assert m.extra_repr() == (torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0).extra_repr()
                              + ", kernel_size=3, stride=2, padding=0, ceil_mode=True")
    assert repr(m) == f"{module.__name__}({m.extra_repr()})"


def test_signatures_follow_torch():
    # Names, order and defaults of torch's functions and constructors (so positional code
    # ported from torch keeps its meaning).
    import inspect

    from fastalex import ops

    def params(f, drop=()):
        return [(p.name, p.default) for p in inspect.signature(f).parameters.values() if p.name not in drop]

    assert params(fnn.Conv2dReLU.__init__) == params(torch.nn.Conv2d.__init__)
    assert params(fnn.MaxPool2d.__init__) == params(torch.nn.MaxPool2d.__init__)
    # F.max_pool2d is wrapped by boolean_dispatch; its documented signature is the one below.
    assert params(ops.max_pool2d) == [("input", inspect.Parameter.empty), ("kernel_size", inspect.Parameter.empty),
                                      ("stride", None), ("padding", 0), ("dilation", 1), ("ceil_mode", False),
                                      ("return_indices", False)]
    assert params(F.max_pool2d_with_indices)[:6] == params(ops.max_pool2d)[:6]
    assert params(ops.local_response_norm) == params(F.local_response_norm)
    # the fused LRN + pool modules take their ops' arguments, in their order
    assert params(fnn.LrnMaxPool2d.__init__, drop=("self",)) == params(ops.lrn_max_pool2d, drop=("input",))
    assert params(fnn.MaxPool2dLrn.__init__, drop=("self",)) == params(ops.max_pool2d_lrn, drop=("input",))
    conv = params(ops.conv2d_relu)
    assert conv == [("input", inspect.Parameter.empty), ("weight", inspect.Parameter.empty), ("bias", None),
                    ("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)]
