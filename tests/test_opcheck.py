"""Autograd through a stack of ops against torch's own gradients, and the AlexNet front under
torch.compile(fullgraph=True). (opcheck, gradcheck and per-op torch.compile numerics run for
every op's spec in tests/test_contract.py.)"""
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, randn
from fastalex import nn as fnn
from fastalex import ops


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_match_torch(device):
    x = randn(2, 6, 11, 11, device=device, dtype=torch.float64)
    w = randn(8, 3, 3, 3, device=device, dtype=torch.float64)
    b = randn(8, device=device, dtype=torch.float64)

    def run(conv, lrn, pool, inputs):
        x, w, b = (t.clone().requires_grad_(True) for t in inputs)
        y = pool(lrn(conv(x, w, b)))
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype, device=y.device).view_as(y)).sum().backward()
        return [t.grad for t in (x, w, b)]

    ours = run(lambda x, w, b: ops.conv2d_relu(x, w, b, 1, 1, 1, 2),
               lambda y: ops.local_response_norm(y, 5, 1e-2, 0.75, 2.0),
               lambda y: ops.max_pool2d(y, 3, 2, 0, 1, True), (x, w, b))
    ref = run(lambda x, w, b: F.relu(F.conv2d(x, w, b, 1, 1, 1, 2)),
              lambda y: F.local_response_norm(y, 5, 1e-2, 0.75, 2.0),
              lambda y: F.max_pool2d(y, 3, 2, 0, 1, True), (x, w, b))
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


class Stack(torch.nn.Module):
    """The AlexNet front: conv -> ReLU -> LRN -> overlapping pool, twice."""

    def __init__(self):
        super().__init__()
        self.conv1 = fnn.Conv2dReLU(3, 16, 5, stride=2)
        self.lrn1 = fnn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
        self.pool1 = fnn.MaxPool2d(3, 2)
        self.conv2 = fnn.Conv2dReLU(16, 24, 3, padding=1, groups=2)
        self.lrn2 = fnn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
        self.pool2 = fnn.MaxPool2d(3, 2, ceil_mode=True)

    def forward(self, x):
        x = self.pool1(self.lrn1(self.conv1(x)))
        return self.pool2(self.lrn2(self.conv2(x)))


@pytest.mark.slow
def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    model = Stack().eval()
    x = randn(2, 3, 35, 35)
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        out = compiled(x)
    torch.testing.assert_close(out, eager, rtol=1e-6, atol=1e-6)
    # Also with a channels_last input and a different batch (recompile or dynamic shape).
    x2 = randn(3, 3, 35, 35).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x2), model(x2), rtol=1e-5, atol=1e-5)
