"""Training-step cases (`benchmarks/run.py --train`): forward + backward of each layer kind at the
layer shapes of benchmarks/cases.py (conv + ReLU, LRN, max-pool, the fused LRN + pool pairs in
both orders, linear) and of the three networks in training mode, built by the same tables and
builders from the same seed (so with the forward cases' inputs and weights).

The timed step, the same for every provider: the forward, a fixed scalar loss, and the loss's
gradients through torch.autograd.grad (returned, not accumulated into .grad: nothing to zero
between calls).
- Layers: the loss is sum(out * G), G a fixed random tensor of the output's shape; the backward
  starts from G (autograd.grad's grad_outputs), so no loss op runs. The gradients are those of
  every input of the op: the input's, and the weight's and bias's for conv + ReLU and linear.
- Networks (paper AlexNet, paper GoogLeNet, torchvision's GoogLeNet), in training mode with
  every nn.Dropout set to p=0 in every provider, so that the providers compute the same
  deterministic function: cross-entropy (batch mean) with fixed random labels, plus for
  GoogLeNet its two auxiliary classifiers' at the training recipe's weight (0.3, the paper's;
  fastalex.train.loop.loss_fn). The gradients are those of every parameter (not the image's).
  torchvision's GoogLeNet normalises with batch statistics (updating its BatchNorms' running
  statistics each step, which the gradients do not depend on); in training mode its
  convolutions run as torch ops in fastalex too (fastalex.models.googlenet), so its fastalex
  step differs from torch's only in the pools and linear layers.

Providers: fastalex; torch eager (the same ops in torch, or the network's reference twin,
fastalex.nn.use_reference); torch.compile of the reference's forward (+ loss for the networks),
whose backward runs AOTAutograd's compiled graph; for the fused LRN + pool pairs also
fastalex's two unfused ops in turn. The inference-only providers (CUDA graph, TensorRT, ONNX
Runtime, OpenVINO) and the copy yardstick do not apply.

Error (grad_err): each gradient against the same step's in float64 (the float64 copies of the
inputs and weights, the same G and labels), ||g - g64|| / ||g64||, the largest over the step's
gradients; under TOLERANCE, which says why this is no forward's largest-element error.

FLOPs and minimum bytes: 3x the forward case's (GoogLeNet's without its auxiliary classifiers,
~0.5% of its FLOPs) -- a convention (the backward as twice the forward: the input's gradient
and the weights'), not a count.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from benchmarks import cases as case_defs
from benchmarks.cases import Case, Generators, _rand
from fastalex.train.loop import loss_fn
from fastalex.train.recipes import recipe

STEP_COST = 3.0  # a training step's FLOPs and bytes over the forward's (the convention above)
# The network cases' names and the training recipe each takes its loss weights from.
RECIPES = {"alexnet": ("alexnet", "paper"), "googlenet": ("googlenet", "paper"),
           "googlenet_tv": ("googlenet", "torchvision")}
# The largest grad_err a provider may show, per dtype: a check for wrong gradients, not for
# rounding. Where a ReLU's input is within rounding of 0, or a max-pool window's two largest values
# are within rounding of each other, float32 and float64 take different branches, and a gradient
# differs by O(upstream gradient x weight) wherever that branch feeds: one such flip set
# googlenet.conv1's input gradient (torch eager, batch 16) apart by 1.4e-2 of its largest element
# (run.rel_err's measure, which would flag correct steps), 2.2e-4 in grad_err's. Chained through a
# network, and spread over whole channels by BatchNorm on batch statistics, such flips add up: in
# the CPU run's cases (seed 0, batches 1 and 16) grad_err reached 4.3e-3 for AlexNet, 4.5e-3 for
# paper GoogLeNet and 2.6e-2 for torchvision's (torch eager as much as fastalex), and 5.6e-2 for
# torchvision's over 11 seeds at batch 1 (CPU, float32). A wrong gradient is off by O(1): a max-pool
# backward that spreads the gradient over the window gives 0.9 (tests/test_bench_train.py).
# The CUDA dtypes' values are guesses, not measurements: no GPU has run --train.
TOLERANCE = {"float32": 0.2, "float32+tf32": 0.3, "float16": 0.3, "bfloat16": 0.5}
QUICK = {"alexnet.conv2", "alexnet.lrn1", "alexnet.pool1", "alexnet.lrn1+pool1", "alexnet.fc8", "alexnet.train"}


def step(forward, wrt, grad_out=None):
    """The timed training step: `forward()` (the output, or the scalar loss when `grad_out` is
    None), then the gradients of `wrt`, as a tuple. It turns grad mode on itself: run.py calls
    every provider under torch.no_grad, the forward benchmark's setting."""
    def run():
        with torch.enable_grad():
            return torch.autograd.grad(forward(), wrt, grad_out)
    return run


def grad_err(out, ref):
    """A step's error (a case's `error`): ||g - g64|| / ||g64|| for each gradient g of `out`
    against the float64 step's g64 in `ref`, the largest of them; inf for a gradient missing,
    misshapen or not finite."""
    if len(out) != len(ref):
        return math.inf
    worst = 0.0
    for g, g64 in zip(out, ref):
        if g.shape != g64.shape:
            return math.inf
        diff, scale = (g.detach().double() - g64).norm().item(), g64.norm().item()
        err = diff / scale if scale else (0.0 if diff == 0 else math.inf)
        if not math.isfinite(err):
            return math.inf
        worst = max(worst, err)
    return worst


def compiled_step(fn, args, wrt, grad_out=None):
    """A case's make_compiled: torch.compile of `fn` (the reference's forward, + loss for the
    networks) in a given mode, called on `args` and differentiated like the other providers."""
    def make(mode):
        compiled = torch.compile(fn, mode=mode)
        return step(lambda: compiled(*args), wrt, grad_out)
    return make


def layer_case(case, g):
    """The training step of a forward layer case (benchmarks/cases.py): the gradients of all its
    tensors (compile_args, which its providers' callables read), starting from a fixed G."""
    args = case.compile_args
    for a in args:
        a.requires_grad_(True)
    with torch.no_grad():
        out = case.compile_target(*args)
    grad_out = torch.empty_like(out).copy_(_rand(out.shape, out.dtype, out.device, g))  # the output's layout
    del out

    def reference64():
        args64 = [a.detach().double().requires_grad_(True) for a in args]
        return step(lambda: case.compile_target(*args64), args64, grad_out.double())()

    return dataclasses.replace(
        case, flops=STEP_COST * case.flops, bytes=STEP_COST * case.bytes, mode="train",
        fastalex=step(case.fastalex, args, grad_out), torch=step(case.torch, args, grad_out),
        reference64=reference64, copy_input=None,
        unfused=None if case.unfused is None else step(case.unfused, args, grad_out),
        make_compiled=compiled_step(case.compile_target, args, args, grad_out), error=grad_err)


def train_mode(net):
    """Training mode, every dropout at p=0 (a no-op in torch: the step stays deterministic)."""
    net.train()
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return net


def network_cases(batches, dtype, device, g, g_train, allow_tf32=False, names=None):
    """Each network (cases.build_networks; those in `names`) in training mode, one case per batch
    size."""
    for name, m, ref, ref64, size, weights in case_defs.build_networks(dtype, device, g, allow_tf32, names):
        aux_weight = recipe(*RECIPES[name]).aux_weight
        for net in (m, ref, ref64):
            train_mode(net)
        params, ref_params, params64 = (tuple(net.parameters()) for net in (m, ref, ref64))
        for batch in batches:
            x = _rand((batch, 3, size, size), dtype, device, g)  # the forward case's input
            labels = torch.randint(1000, (batch,), generator=g_train.cpu).to(device)
            x64 = x.double()

            def loss(net, x, labels=labels, aux_weight=aux_weight):
                return loss_fn(net(x), labels, aux_weight)[0]

            yield Case(f"{name}.train", "network", tuple(x.shape),
                       STEP_COST * case_defs.network_flops(name, batch),
                       STEP_COST * (x.numel() + weights + batch * 1000) * x.element_size(),
                       step(lambda m=m, x=x, loss=loss: loss(m, x), params),
                       step(lambda ref=ref, x=x, loss=loss: loss(ref, x), ref_params),
                       step(lambda ref64=ref64, x64=x64, loss=loss: loss(ref64, x64), params64),
                       ref, (x,), batch=batch, mode="train", error=grad_err,
                       make_compiled=compiled_step(lambda x, ref=ref, loss=loss: loss(ref, x), (x,), ref_params))


def all_cases(batch, dtype, device, quick=False, seed=0, allow_tf32=False, net_batches=None):
    """Every training case in table order, like cases.all_cases: the layers at `batch`, the
    networks at each of `net_batches` (default: `batch`); with `quick`, only the QUICK ones (and
    only their networks are built). The labels and the layers' G come from a stream of their own
    (seed + 1), so the inputs and weights are the forward cases'."""
    g, g_train = Generators(seed, device), Generators(seed + 1, device)
    for gen in case_defs.LAYER_CASES:
        for case in gen(batch, dtype, device, g):
            if not quick or case.name.split(" ")[0] in QUICK:
                case.batch = case.batch or batch
                yield layer_case(case, g_train)
    # (AlexNet, the QUICK network, is built first: its weights are the same either way.)
    names = {name.split(".")[0] for name in QUICK} if quick else None
    for case in network_cases(list(net_batches or [batch]), dtype, device, g, g_train, allow_tf32, names):
        if not quick or case.name in QUICK:
            yield case
