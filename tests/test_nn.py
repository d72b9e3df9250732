"""fastalex.nn modules: same parameters and outputs as their torch.nn counterparts."""
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, randn
from fastalex import nn as fnn


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_relu_module_matches_torch(device):
    m = fnn.Conv2dReLU(6, 8, (3, 5), stride=(2, 1), padding=(1, 2), groups=2).to(device)
    ref = torch.nn.Conv2d(6, 8, (3, 5), stride=(2, 1), padding=(1, 2), groups=2).to(device)
    ref.load_state_dict(m.state_dict())
    x = randn(2, 6, 11, 13, device=device)
    torch.testing.assert_close(m(x), F.relu(ref(x)), rtol=1e-5, atol=1e-5)
    assert set(m.state_dict()) == {"weight", "bias"}


def test_conv2d_relu_module_without_bias_and_bad_padding():
    m = fnn.Conv2dReLU(3, 4, 3, bias=False)
    assert m.bias is None
    assert m(randn(1, 3, 5, 5)).shape == (1, 4, 3, 3)
    with pytest.raises(ValueError, match="padding must be an int or a pair"):
        fnn.Conv2dReLU(3, 4, 3, padding="same")


@pytest.mark.parametrize("device", DEVICES)
def test_lrn_module_matches_torch(device):
    m = fnn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    x = randn(2, 10, 6, 6, device=device, scale=10)
    torch.testing.assert_close(m(x), torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)(x), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_max_pool_module_matches_torch(device):
    m = fnn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
    x = randn(2, 4, 14, 14, device=device)
    assert torch.equal(m(x), torch.nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)(x))
    assert fnn.MaxPool2d(2)(x).shape == (2, 4, 7, 7)
