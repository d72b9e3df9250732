"""The benchmark's CPU peers (benchmarks/peers.py): the ONNX export of a reference twin run by
ONNX Runtime and OpenVINO must compute what torch computes, and a peer that cannot run says why.
scripts/bench.sh installs the peers (CI runs it before the tests); without them only the status
test runs."""
import importlib.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import peers


class Stem(nn.Module):
    """The ops the reference twins export: conv + ReLU, LRN, overlapping max-pool (ceil mode),
    linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        x = F.max_pool2d(F.local_response_norm(F.relu(self.conv(x)), 5, 1e-2, 0.75, 2.0), 3, 2, ceil_mode=True)
        return self.fc(torch.flatten(x, 1))


@pytest.mark.parametrize("name", peers.PEERS)
def test_peer_matches_torch(name):
    for module in ("onnx", name):
        pytest.importorskip(module)
    torch.manual_seed(0)
    model = Stem().eval()
    cache = {}
    for batch in (1, 3):  # one export serves every batch size (dynamic batch dimension)
        x = torch.randn(batch, 3, 17, 17)
        out = peers.runner(name, model, x, 2, cache)()
        with torch.no_grad():
            torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-5)
    assert list(cache) == [id(model)]


def test_status(monkeypatch):
    assert peers.status("onnxruntime", "cuda") == "n/a"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    assert peers.status("openvino", "cpu") == "not installed"
