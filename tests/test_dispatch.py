"""The public ops call below the Python autograd layer with grad mode off (fastalex/ops/_dispatch.py):
the same results, no graph, and the plain call wherever autograd, torch.compile or a functorch
transform needs the layer."""
import contextlib

import pytest
import torch

from conftest import randn
from fastalex import ops
from fastalex.ops import _dispatch

F32 = torch.float32


def seeded(name, grad):
    """CALLS[name] on the same inputs every time."""
    torch.manual_seed(0)
    return CALLS[name](grad)


def _inception_args(grad=False):
    c, shapes = 8, [(4, 8, 1), (4, 8, 1), (6, 4, 3), (2, 8, 1), (3, 2, 5), (5, 8, 1)]
    args = [randn(1, c, 7, 6)]
    for o, i, k in shapes:
        args += [randn(o, i, k, k, scale=(i * k * k) ** -0.5), randn(o, scale=0.1)]
    return [a.requires_grad_(grad) for a in args]


def _bn_args(grad=False):
    x, w = randn(2, 5, 6, 7), randn(4, 5, 3, 3, scale=0.2)
    mean, var = randn(4, scale=0.1), randn(4).abs() + 0.5
    bw, bb = randn(4), randn(4, scale=0.1)
    return [t.requires_grad_(grad) for t in (x, w)], (mean, var, bw, bb)


CALLS = {
    "conv2d_relu": lambda g: ops.conv2d_relu(randn(2, 5, 9, 8).requires_grad_(g), randn(4, 5, 3, 3).requires_grad_(g),
                                             randn(4).requires_grad_(g), 1, 1),
    "conv2d_bn_relu": lambda g: (lambda t, bn: ops.conv2d_bn_relu(t[0], t[1], None, 1, 1, 1, 1, *bn, 1e-3))(
        *_bn_args(g)),
    "max_pool2d": lambda g: ops.max_pool2d(randn(2, 3, 9, 9).requires_grad_(g), 3, 2),
    "local_response_norm": lambda g: ops.local_response_norm(randn(2, 7, 5, 4).requires_grad_(g), 5),
    "lrn_max_pool2d": lambda g: ops.lrn_max_pool2d(randn(2, 7, 9, 9).requires_grad_(g), 5),
    "max_pool2d_lrn": lambda g: ops.max_pool2d_lrn(randn(2, 7, 9, 9).requires_grad_(g), 5),
    "linear": lambda g: ops.linear(randn(3, 10).requires_grad_(g), randn(6, 10).requires_grad_(g),
                                   randn(6).requires_grad_(g), True),
    "inception": lambda g: ops.inception(*_inception_args(g)),
}


@pytest.fixture
def entries(monkeypatch):
    """Counts the times fastalex's calls go below the autograd key."""
    count = []
    real = _dispatch._BELOW

    @contextlib.contextmanager
    def counting():
        count.append(1)
        with real():
            yield

    monkeypatch.setattr(_dispatch, "_BELOW", counting)
    return count


@pytest.mark.parametrize("name", sorted(CALLS))
def test_no_grad_calls_below_the_autograd_layer_with_the_same_result(name, entries):
    with torch.no_grad():
        fast = seeded(name, True)  # inputs that require grad: still nothing to record
    assert len(entries) >= 1 and fast.grad_fn is None and not fast.requires_grad
    entries.clear()
    graph = seeded(name, True)
    assert entries == [] and graph.grad_fn is not None  # grad mode on: the autograd layer records
    assert torch.equal(fast, graph.detach())


def test_grad_mode_and_tracing_keep_the_plain_call(monkeypatch):
    with torch.no_grad():
        assert _dispatch.below_autograd()
    assert not _dispatch.below_autograd()
    with torch.no_grad():
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        assert not _dispatch.below_autograd()
        monkeypatch.undo()
        monkeypatch.setattr(torch._C, "_are_functorch_transforms_active", lambda: True)
        assert not _dispatch.below_autograd()


def test_inference_mode_and_no_grad_agree(entries):
    with torch.inference_mode():
        a = seeded("inception", False)
    with torch.no_grad():
        b = seeded("inception", False)
    assert torch.equal(a, b)


def test_torch_compile_traces_the_public_op():
    # Under torch.compile the call keeps its autograd layer (is_compiling): the compiled
    # function gives the eager result and a graph in grad mode.
    x, w, b = randn(1, 3, 6, 6, dtype=F32), randn(4, 3, 3, 3), randn(4)
    f = torch.compile(lambda x, w, b: ops.conv2d_relu(x, w, b, 1, 1), backend="eager", fullgraph=True)
    with torch.no_grad():
        assert torch.equal(f(x, w, b), ops.conv2d_relu(x, w, b, 1, 1))
    w.requires_grad_(True)
    assert f(x, w, b).grad_fn is not None


def test_the_paper_inception_module_goes_below_without_grad(entries, monkeypatch):
    # models.Inception on the "ops" backend hands its own tensors to the op directly when no
    # gradient is wanted (not through the public function's per-argument checks); with one
    # wanted it keeps the differentiable path.
    from fastalex import models

    torch.manual_seed(0)
    m = models.Inception(8, 4, 4, 6, 2, 3, 5)
    x = randn(1, 8, 7, 6)
    args = [x] + [t for c in m._convs() for t in (c.weight, c.bias)]
    public = ops.inception
    calls = []
    monkeypatch.setattr(ops, "inception", lambda *a: calls.append(1) or public(*a))
    with torch.no_grad():
        fast = m(x)
        assert entries == [1] and calls == []
        assert torch.equal(fast, public(*args))
    entries.clear()
    graph = m(x)
    assert entries == [] and graph.grad_fn is not None
    torch.testing.assert_close(graph.detach(), fast, rtol=1e-5, atol=1e-6)
    # A parameter that is not a tensor takes the checked path and its error.
    m.branch1.bias = None
    with torch.no_grad(), pytest.raises((TypeError, RuntimeError, ValueError), match="b1|bias"):
        m(x)
