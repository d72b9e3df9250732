"""The NaN poisoning the kernel tests rely on must actually be in force."""
import torch


def test_fresh_outputs_are_poisoned():
    # torch.empty and the kernels' at::empty share the allocation path (aten::empty).
    assert torch.isnan(torch.empty(1000)).all()
    assert torch.isnan(torch.empty(4, 5, 6, 7, memory_format=torch.channels_last)).all()

