"""Calling fastalex's custom ops without their Python autograd layer when it has nothing to do.

torch.library.register_autograd puts a Python function at each op's autograd dispatch key. With
grad mode off it only redispatches below itself, but it still runs: a Python call, a
requires-grad scan of every argument and a boxed redispatch, about 8 µs per call on this
project's CI-class CPU and more for list arguments (inception_bn takes 30 tensors). At batch 1
that is part of the time: timed in one process, alternating the two paths, a forward under
torch.no_grad was 1.5% (torchvision GoogLeNet), 2.9% (paper GoogLeNet) and 0.7% (AlexNet)
faster below the layer. With grad mode off the layer would do nothing, so the
public functions call the ops below it; grad mode on, torch.compile tracing or a functorch
transform keep the plain call (and the layer)."""
from __future__ import annotations

import torch

# The guard torch.library's own autograd kernel uses to call below itself.
_BELOW = torch._C._AutoDispatchBelowAutograd


def below_autograd() -> bool:
    """Whether invoke() calls below the autograd key: grad mode off and nothing tracing or
    transforming the call."""
    return not (torch.is_grad_enabled() or torch.compiler.is_compiling()
                or torch._C._are_functorch_transforms_active())


def call_below(op, *args):
    """op(*args) below the autograd dispatch key; for callers that checked below_autograd()."""
    with _BELOW():
        return op(*args)


def invoke(op, *args):
    """op(*args); with grad mode off (and no torch.compile tracing or functorch transform) below
    the autograd dispatch key, which records nothing then anyway."""
    if not below_autograd():
        return op(*args)
    return call_below(op, *args)
