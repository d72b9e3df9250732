"""Benchmark cases: every op at every AlexNet-paper and GoogLeNet-paper layer shape, every
Inception module, and both networks' forward (at one or several batch sizes). Each case builds
its inputs once and offers the providers side by side -- fastalex, torch eager (cuDNN / oneDNN),
torch.compile of the same reference (and, for the networks, the fastalex module and its input
for a CUDA graph, the reference module for TensorRT; for the fused LRN + pool ops, fastalex's two
unfused ops in turn) -- plus a float64 reference for the error column, its FLOPs and its minimum
bytes (every input read once, every output written once)."""
from __future__ import annotations

import copy
import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F

from fastalex import models, ops
from fastalex.models.googlenet import INCEPTION_TABLE
from fastalex.nn import use_reference


@dataclasses.dataclass
class Case:
    name: str
    kind: str  # conv | lrn | pool | linear | inception | network
    shape: tuple
    flops: float
    bytes: float
    fastalex: Callable[[], torch.Tensor]
    torch: Callable[[], torch.Tensor]
    reference64: Callable[[], torch.Tensor]  # the torch computation in float64 (for the error)
    compile_target: Callable  # what torch.compile compiles (called like `torch`'s callable)
    compile_args: tuple = ()
    # Memory-bound cases: the input, whose plain copy (into a preallocated tensor, timed in the
    # same run) is the yardstick for their targets.
    copy_input: torch.Tensor | None = None
    batch: int = 0
    # Network cases: the fastalex module and its input (fastalex.cuda_graph captures them).
    module: torch.nn.Module | None = None
    example: torch.Tensor | None = None
    # Fused cases (LRN + pool): fastalex's own unfused ops in turn, what the fused op replaces.
    unfused: Callable[[], torch.Tensor] | None = None
    # "forward" (inference) or "train" (forward + backward: benchmarks/train_cases.py).
    mode: str = "forward"
    # Builds the torch.compile provider's timed callable for a compile mode; None: run.py calls
    # torch.compile(compile_target) on compile_args. Training steps compile their forward + loss
    # and differentiate it (benchmarks/train_cases.py).
    make_compiled: Callable[[str], Callable] | None = None
    # The error column's measure of a provider's output against reference64's (None: run.rel_err).
    error: Callable[[object, object], float] | None = None


# (name, in C, H, W, out C, kernel, stride, padding, groups) at the papers' sizes.
CONV_LAYERS = [
    ("alexnet.conv1", 3, 227, 227, 96, 11, 4, 0, 1),
    ("alexnet.conv2", 96, 27, 27, 256, 5, 1, 2, 2),
    ("alexnet.conv3", 256, 13, 13, 384, 3, 1, 1, 1),
    ("alexnet.conv4", 384, 13, 13, 384, 3, 1, 1, 2),
    ("alexnet.conv5", 384, 13, 13, 256, 3, 1, 1, 2),
    ("googlenet.conv1", 3, 224, 224, 64, 7, 2, 3, 1),
    ("googlenet.conv2_reduce", 64, 56, 56, 64, 1, 1, 0, 1),
    ("googlenet.conv2", 64, 56, 56, 192, 3, 1, 1, 1),
]
# (name, C, H, W, size, alpha (torch convention), beta, k)
LRN_LAYERS = [
    ("alexnet.lrn1", 96, 55, 55, 5, 5e-4, 0.75, 2.0),
    ("alexnet.lrn2", 256, 27, 27, 5, 5e-4, 0.75, 2.0),
    ("googlenet.lrn1", 64, 56, 56, 5, 1e-4, 0.75, 1.0),
    ("googlenet.lrn2", 192, 56, 56, 5, 1e-4, 0.75, 1.0),
]
# (name, C, H, W, kernel, stride, padding, ceil_mode)
POOL_LAYERS = [
    ("alexnet.pool1", 96, 55, 55, 3, 2, 0, False),
    ("alexnet.pool2", 256, 27, 27, 3, 2, 0, False),
    ("alexnet.pool5", 256, 13, 13, 3, 2, 0, False),
    ("googlenet.pool1", 64, 112, 112, 3, 2, 0, True),
    ("googlenet.pool2", 192, 56, 56, 3, 2, 0, True),
    ("googlenet.pool3", 480, 28, 28, 3, 2, 0, True),
    ("googlenet.pool4", 832, 14, 14, 3, 2, 0, True),
]
# (name, in features, out features, relu)
LINEAR_LAYERS = [
    ("alexnet.fc6", 256 * 6 * 6, 4096, True),
    ("alexnet.fc7", 4096, 4096, True),
    ("alexnet.fc8", 4096, 1000, False),
    ("googlenet.fc", 1024, 1000, False),
]
INCEPTION_SPATIAL = {"3": 28, "4": 14, "5": 7}
QUICK = {"alexnet.conv2", "alexnet.lrn1", "alexnet.pool1", "alexnet.lrn1+pool1", "googlenet.inception3a",
         "alexnet.forward"}


def _conv_out(s, k, st, p):
    return (s + 2 * p - k) // st + 1


def _pool_out(s, k, st, p, ceil):
    num = s + 2 * p - k + (st - 1 if ceil else 0)
    out = num // st + 1
    if ceil and (out - 1) * st >= s + p:
        out -= 1
    return out


class Generators:
    """The cases' random streams, from one seed: `cpu` for weight initialisation (on the host,
    before a model moves) and `device` for the inputs, drawn where they live -- drawing the
    batch-128 inputs on the host in float64 took ~30 s of a GPU run."""

    def __init__(self, seed, device):
        self.cpu = torch.Generator().manual_seed(seed)
        self.device = self.cpu if torch.device(device).type == "cpu" else \
            torch.Generator(device=device).manual_seed(seed)


def _rand(shape, dtype, device, g, scale=1.0):
    if g.device is g.cpu:  # on CPU: drawn in float64, as the CPU results so far were
        return (torch.randn(shape, generator=g.cpu, dtype=torch.float64) * scale).to(device=device, dtype=dtype)
    return torch.randn(shape, generator=g.device, device=device, dtype=torch.float32).mul_(scale).to(dtype)


@torch.no_grad()
def _he_init(model, g):
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g.cpu) * (2.0 / m.weight[0].numel()) ** 0.5)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g.cpu) * 0.1)


def conv_cases(batch, dtype, device, g):
    # On CUDA each layer also runs channels_last, the tensor-core kernel's fast layout (and
    # cuDNN's for half types); an NCHW input costs the kernel a channels_last copy.
    formats = ("nchw", "nhwc") if device == "cuda" else ("nchw",)
    for name, c, h, w, oc, k, s, p, grp in CONV_LAYERS:
        x0 = _rand((batch, c, h, w), dtype, device, g)
        wt = _rand((oc, c // grp, k, k), dtype, device, g, (c // grp * k * k) ** -0.5)
        b = _rand((oc,), dtype, device, g, 0.1)
        oh, ow = _conv_out(h, k, s, p), _conv_out(w, k, s, p)
        flops = 2.0 * batch * oc * oh * ow * (c // grp) * k * k
        nbytes = (x0.numel() + wt.numel() + b.numel() + batch * oc * oh * ow) * x0.element_size()

        def ref(x, wt, b, s=s, p=p, grp=grp):
            return F.relu(F.conv2d(x, wt, b, s, p, 1, grp))

        for fmt in formats:
            x = x0.contiguous(memory_format=torch.channels_last) if fmt == "nhwc" else x0
            label = f"{name} conv+relu" + (" nhwc" if fmt == "nhwc" else "")
            yield Case(label, "conv", tuple(x.shape), flops, nbytes,
                       lambda x=x, wt=wt, b=b, s=s, p=p, grp=grp: ops.conv2d_relu(x, wt, b, s, p, 1, grp),
                       lambda x=x, wt=wt, b=b, ref=ref: ref(x, wt, b),
                       lambda x=x, wt=wt, b=b, ref=ref: ref(x.double(), wt.double(), b.double()),
                       ref, (x, wt, b))


def lrn_cases(batch, dtype, device, g):
    for name, c, h, w, n, a, be, k in LRN_LAYERS:
        x = _rand((batch, c, h, w), dtype, device, g, 3.0)

        def ref(x, n=n, a=a, be=be, k=k):
            return F.local_response_norm(x, n, a, be, k)

        # per element: the window sum (add + subtract), the scale, the power, the product
        yield Case(f"{name}", "lrn", tuple(x.shape), 8.0 * x.numel(), 2.0 * x.numel() * x.element_size(),
                   lambda x=x, n=n, a=a, be=be, k=k: ops.local_response_norm(x, n, a, be, k),
                   lambda x=x, ref=ref: ref(x),
                   lambda x=x, ref=ref: ref(x.double()),
                   ref, (x,), copy_input=x)


def pool_cases(batch, dtype, device, g):
    for name, c, h, w, k, s, p, ceil in POOL_LAYERS:
        x = _rand((batch, c, h, w), dtype, device, g)
        oh, ow = _pool_out(h, k, s, p, ceil), _pool_out(w, k, s, p, ceil)
        out = batch * c * oh * ow

        def ref(x, k=k, s=s, p=p, ceil=ceil):
            return F.max_pool2d(x, k, s, p, 1, ceil)

        yield Case(f"{name} maxpool", "pool", tuple(x.shape), float(out * (k * k - 1)),
                   (x.numel() + out) * x.element_size(),
                   lambda x=x, k=k, s=s, p=p, ceil=ceil: ops.max_pool2d(x, k, s, p, 1, ceil),
                   lambda x=x, ref=ref: ref(x),
                   lambda x=x, ref=ref: ref(x.double()),
                   ref, (x,), copy_input=x)


# (name, C, H, W, lrn first?, LRN size, alpha, beta, k, pool kernel, stride, ceil_mode): the
# networks' LRN + pool pairs (paper AlexNet after conv1 and conv2; GoogLeNet's stem both ways).
LRN_POOL_LAYERS = [
    ("alexnet.lrn1+pool1", 96, 55, 55, True, 5, 5e-4, 0.75, 2.0, 3, 2, False),
    ("alexnet.lrn2+pool2", 256, 27, 27, True, 5, 5e-4, 0.75, 2.0, 3, 2, False),
    ("googlenet.pool1+lrn1", 64, 112, 112, False, 5, 1e-4, 0.75, 1.0, 3, 2, True),
    ("googlenet.lrn2+pool2", 192, 56, 56, True, 5, 1e-4, 0.75, 1.0, 3, 2, True),
]


def lrn_pool_pair(lib, x, lrn_first, n, a, be, k, ks, s, ceil):
    """LRN and max-pool as two ops in turn from `lib` (torch.nn.functional or fastalex.ops: same
    signatures), in the case's order."""
    if lrn_first:
        return lib.max_pool2d(lib.local_response_norm(x, n, a, be, k), ks, s, 0, 1, ceil)
    return lib.local_response_norm(lib.max_pool2d(x, ks, s, 0, 1, ceil), n, a, be, k)


def lrn_pool_cases(batch, dtype, device, g):
    for name, c, h, w, lrn_first, n, a, be, k, ks, s, ceil in LRN_POOL_LAYERS:
        x = _rand((batch, c, h, w), dtype, device, g, 3.0)
        oh, ow = _pool_out(h, ks, s, 0, ceil), _pool_out(w, ks, s, 0, ceil)
        out = batch * c * oh * ow
        lrn_elems = x.numel() if lrn_first else out
        params = (lrn_first, n, a, be, k, ks, s, ceil)

        def ref(x, params=params):
            return lrn_pool_pair(F, x, *params)

        fused = ops.lrn_max_pool2d if lrn_first else ops.max_pool2d_lrn
        yield Case(name, "lrn_pool", tuple(x.shape), 8.0 * lrn_elems + float(out * (ks * ks - 1)),
                   (x.numel() + out) * x.element_size(),
                   lambda x=x, f=fused, n=n, a=a, be=be, k=k, ks=ks, s=s, ceil=ceil: f(x, n, a, be, k, ks, s, 0, ceil),
                   lambda x=x, ref=ref: ref(x),
                   lambda x=x, ref=ref: ref(x.double()),
                   ref, (x,), copy_input=x,
                   unfused=lambda x=x, params=params: lrn_pool_pair(ops, x, *params))


def linear_cases(batch, dtype, device, g):
    for name, k, o, relu in LINEAR_LAYERS:
        x = _rand((batch, k), dtype, device, g)
        wt = _rand((o, k), dtype, device, g, k ** -0.5)
        b = _rand((o,), dtype, device, g, 0.1)

        def ref(x, wt, b, relu=relu):
            y = F.linear(x, wt, b)
            return F.relu(y) if relu else y

        # the weights dominate the bytes: at small batch these layers stream them from memory
        yield Case(f"{name} linear{'+relu' if relu else ''}", "linear", tuple(x.shape), 2.0 * batch * k * o,
                   (x.numel() + wt.numel() + b.numel() + batch * o) * x.element_size(),
                   lambda x=x, wt=wt, b=b, relu=relu: ops.linear(x, wt, b, relu),
                   lambda x=x, wt=wt, b=b, ref=ref: ref(x, wt, b),
                   lambda x=x, wt=wt, b=b, ref=ref: ref(x.double(), wt.double(), b.double()),
                   ref, (x, wt, b))


# The single-op layer cases, in table order (the training benchmark's layers too).
LAYER_CASES = (conv_cases, lrn_cases, pool_cases, lrn_pool_cases, linear_cases)


def inception_cases(batch, dtype, device, g, allow_tf32=False):
    for name, *cfg in INCEPTION_TABLE:
        s = INCEPTION_SPATIAL[name[len("inception")]]
        m = models.Inception(*cfg, allow_tf32=allow_tf32)
        _he_init(m, g)
        m = m.to(device=device, dtype=dtype).eval()
        ref = models.Inception(*cfg, backend="reference").to(device=device, dtype=dtype).eval()
        ref.load_state_dict(m.state_dict())
        ref64 = models.Inception(*cfg, backend="reference").to(device=device, dtype=torch.float64).eval()
        ref64.load_state_dict(m.state_dict())
        x = _rand((batch, cfg[0], s, s), dtype, device, g)
        cin, c1, r3, c3, r5, c5, pp = cfg
        px = batch * s * s
        flops = 2.0 * px * (cin * (c1 + r3 + r5 + pp) + r3 * 9 * c3 + r5 * 25 * c5)
        weights = sum(p.numel() for p in m.parameters())
        nbytes = (x.numel() + weights + px * m.out_channels) * x.element_size()
        yield Case(f"googlenet.{name}", "inception", tuple(x.shape), flops, nbytes,
                   lambda m=m, x=x: m(x), lambda ref=ref, x=x: ref(x), lambda ref64=ref64, x=x: ref64(x.double()),
                   ref, (x,))


NETWORKS = (("alexnet", models.alexnet, 227), ("googlenet", models.googlenet, 224),
            ("googlenet_tv", lambda: models.googlenet(variant="torchvision"), 224))


def build_networks(dtype, device, g, allow_tf32=False, names=None):
    """(name, fastalex network, its plain-torch twin, the twin in float64, input size, weight
    count) for the papers' AlexNet and GoogLeNet and torchvision's GoogLeNet (BatchNorm, 3x3
    for 5x5), whose weights people serve -- or those of them in `names`; in eval mode (a
    training benchmark switches them)."""
    for name, build, size in NETWORKS:
        if names is not None and name not in names:
            continue
        m = build()
        _he_init(m, g)
        for block in m.modules():
            if isinstance(block, models.Inception):
                block.allow_tf32 = allow_tf32
        m = m.to(device=device, dtype=dtype).eval()
        # Its plain-torch twins: the same module with the reference switch on (same weights), and
        # that in float64 (the float64 copy of the dtype's weights, as a state_dict load gives).
        ref = use_reference(copy.deepcopy(m)).eval()
        ref64 = copy.deepcopy(ref).to(torch.float64).eval()
        yield name, m, ref, ref64, size, sum(p.numel() for p in m.parameters())


def network_cases(batches, dtype, device, g, allow_tf32=False):
    """Each network built once (same weights at every batch size), one case per batch size."""
    for name, m, ref, ref64, size, weights in build_networks(dtype, device, g, allow_tf32):
        for batch in batches:
            x = _rand((batch, 3, size, size), dtype, device, g)
            flops = network_flops(name, batch)
            nbytes = (x.numel() + weights + batch * 1000) * x.element_size()
            yield Case(f"{name}.forward", "network", tuple(x.shape), flops, nbytes,
                       lambda m=m, x=x: m(x), lambda ref=ref, x=x: ref(x),
                       lambda ref64=ref64, x=x: ref64(x.double()),
                       ref, (x,), batch=batch, module=m, example=x)


def network_flops(name, batch):
    """Multiply-adds x 2 of the convolutions and linear layers (pools and LRN are negligible)."""
    total = 0.0
    if name == "alexnet":
        for _, c, h, w, oc, k, s, p, grp in CONV_LAYERS[:5]:
            total += 2.0 * oc * _conv_out(h, k, s, p) ** 2 * (c // grp) * k * k
        total += 2.0 * (9216 * 4096 + 4096 * 4096 + 4096 * 1000)
    else:
        for _, c, h, w, oc, k, s, p, grp in CONV_LAYERS[5:]:
            total += 2.0 * oc * _conv_out(h, k, s, p) ** 2 * (c // grp) * k * k
        # torchvision's variant runs a 3x3 where the paper has the 5x5
        taps5 = 9 if name == "googlenet_tv" else 25
        for name_, cin, c1, r3, c3, r5, c5, pp in INCEPTION_TABLE:
            s = INCEPTION_SPATIAL[name_[len("inception")]]
            total += 2.0 * s * s * (cin * (c1 + r3 + r5 + pp) + r3 * 9 * c3 + r5 * taps5 * c5)
        total += 2.0 * 1024 * 1000
    return batch * total


def all_cases(batch, dtype, device, quick=False, seed=0, allow_tf32=False, net_batches=None):
    """Every case in table order: the layers at `batch`, the networks at each of `net_batches`
    (default: `batch`). With `quick`, only the QUICK cases."""
    g = Generators(seed, device)
    for gen in LAYER_CASES + (inception_cases, network_cases):
        extra = {"allow_tf32": allow_tf32} if gen in (inception_cases, network_cases) else {}
        size = list(net_batches or [batch]) if gen is network_cases else batch
        for case in gen(size, dtype, device, g, **extra):
            case.batch = case.batch or batch
            if not quick or case.name.split(" ")[0] in QUICK:
                yield case
