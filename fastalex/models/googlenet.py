"""GoogLeNet / Inception v1 (Szegedy et al., 2015) from fastalex ops, in two variants.

"paper": the paper's network -- 7x7/2 conv, 3x3/2 max-pool, LRN, 1x1 and 3x3 convs, LRN,
3x3/2 max-pool, Inception 3a-3b, pool, 4a-4e, pool, 5a-5b (5x5 third branches, no
BatchNorm), global average pool, dropout 0.4, linear; auxiliary classifiers on 4a and 4d
(5x5/3 average pool, 1x1 conv 128, FC 1024, dropout 0.7, linear) whose logits are returned
in training mode only. Pools use ceil mode (Caffe's reference model): 112 -> 56 -> 28 -> 14 -> 7.
LRN: size 5, alpha 1e-4 (divided by size), beta 0.75, k 1 (Caffe's bvlc_googlenet). The stem's
maxpool1 -> lrn1 runs as one op (``fastalex.nn.MaxPool2dLrn``, named maxpool1) and lrn2 ->
maxpool2 as another (``fastalex.nn.LrnMaxPool2d``, named lrn2); lrn1 and maxpool2 are
``nn.Identity``. None of these has parameters: the state_dict is the unfused network's.

"torchvision": parameter-compatible with ``torchvision.models.googlenet(init_weights=True,
aux_logits=..., transform_input=...)``: BatchNorm (eps 0.001) after every convolution, 3x3
third branches, 2x2 fourth pool, aux heads with adaptive 4x4 pooling, dropout 0.2. In
training mode the BatchNorms run as torch ops; in eval mode they join the convolutions. On the
CPU every convolution runs as ``fastalex.ops.conv2d_bn_relu`` and every
Inception block as ``fastalex.ops.inception_bn`` (when no gradient is needed), which apply each
BatchNorm as a per-channel scale and shift where the convolution stores its output: no folded
weights exist at all. Elsewhere (CUDA, and the Inception backends other than "ops") the
BatchNorms are folded into the convolution weights and biases on every forward, so every
convolution runs as one fused conv + bias + ReLU and every Inception module through
``fastalex.models.Inception``'s backends. Either way nothing derived from the parameters is
kept between forwards: whatever changes a weight or a BatchNorm parameter or buffer (in place,
through ``.data``, an optimizer, ``load_state_dict``, a device or dtype move) shows in the next
forward. (A cache keyed on tensor versions would miss writes through ``.data``, which do not
bump the version counter; on the CPU refolding cost a sixth of the batch-1 forward, measured in
the README.)

On CUDA both variants convert the input to channels_last once at the start of the forward;
every intermediate (stem, Inception blocks, whose Triton kernels write channels_last in and
out, pools, auxiliary heads) stays channels_last up to the explicit flatten before each
classifier (fastalex.models._layout). Other devices keep the input's layout. The eval forward
reads no tensor value on the host (no synchronisation), so ``fastalex.cuda_graph`` can
capture it.
"""
from __future__ import annotations

from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import nn

from fastalex import ops
from fastalex.models._layout import flatten_for_classifier, input_layout
from fastalex.models.inception import Inception, check_allow_tf32, check_input, inception_forward, resolve_backend
from fastalex.nn import Conv2dReLU, Linear, LrnMaxPool2d, MaxPool2d, MaxPool2dLrn, ReferenceSwitch, use_reference
from fastalex.ops._dispatch import invoke

VARIANTS = ("paper", "torchvision")
GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])

# (name, in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj): the paper's table.
INCEPTION_TABLE = [
    ("inception3a", 192, 64, 96, 128, 16, 32, 32),
    ("inception3b", 256, 128, 128, 192, 32, 96, 64),
    ("inception4a", 480, 192, 96, 208, 16, 48, 64),
    ("inception4b", 512, 160, 112, 224, 24, 64, 64),
    ("inception4c", 512, 128, 128, 256, 24, 64, 64),
    ("inception4d", 512, 112, 144, 288, 32, 64, 64),
    ("inception4e", 528, 256, 160, 320, 32, 128, 128),
    ("inception5a", 832, 256, 160, 320, 32, 128, 128),
    ("inception5b", 832, 384, 192, 384, 48, 128, 128),
]


def _check_image(x, who):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"fastalex.models.GoogLeNet: input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"fastalex.models.GoogLeNet ({who}): input must be (N, 3, H, W), got shape {tuple(x.shape)}")
    if min(x.shape[2], x.shape[3]) < 15:
        raise ValueError(f"fastalex.models.GoogLeNet ({who}): input must be at least 15x15 (224x224 in the paper), "
                         f"got {x.shape[2]}x{x.shape[3]}")


def _inceptions_and_classifier(net, x):
    """Both variants after their stems: Inception 3a-5b with the pools between them, the
    auxiliary heads on 4a and 4d (training mode), global average pool, dropout, linear."""
    x = net.inception3b(net.inception3a(x))
    x = net.inception4a(net.maxpool3(x))
    aux1 = net.aux1(x) if net.training and net.aux1 is not None else None
    x = net.inception4d(net.inception4c(net.inception4b(x)))
    aux2 = net.aux2(x) if net.training and net.aux2 is not None else None
    x = net.inception4e(x)
    x = net.inception5b(net.inception5a(net.maxpool4(x)))
    logits = net.fc(net.dropout(flatten_for_classifier(F.adaptive_avg_pool2d(x, 1))))
    if net.training and net.aux_logits:
        return GoogLeNetOutputs(logits, aux2, aux1)
    return logits


# ---------------------------------------------------------------- the paper's network
class PaperAux(nn.Module):
    """Auxiliary classifier: 5x5/3 average pool, 1x1 conv 128 + ReLU, FC 1024 + ReLU,
    dropout 0.7, linear."""

    def __init__(self, in_channels, num_classes, dropout=0.7):
        super().__init__()
        self.conv = Conv2dReLU(in_channels, 128, 1)
        self.fc1 = Linear(128 * 4 * 4, 1024, relu=True)
        self.fc2 = Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        if x.shape[2:] != (14, 14):
            raise ValueError(f"fastalex.models.GoogLeNet (paper): the auxiliary classifiers need the 14x14 maps of a "
                             f"224x224 input, got {x.shape[2]}x{x.shape[3]} (use eval mode or aux_logits=False)")
        x = self.conv(F.avg_pool2d(x, 5, 3))
        x = self.fc1(flatten_for_classifier(x))
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """The paper's GoogLeNet; use ``fastalex.models.googlenet()``."""

    def __init__(self, num_classes=1000, aux_logits=True, dropout=0.4, aux_dropout=0.7):
        super().__init__()
        self.aux_logits = aux_logits
        lrn = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv1 = Conv2dReLU(3, 64, 7, stride=2, padding=3)
        # The stem's pool -> LRN and LRN -> pool pairs each run as one op, under the name of the
        # pair's first layer; the second name stays, as an nn.Identity, so the forward reads in
        # the paper's order.
        self.maxpool1 = MaxPool2dLrn(**lrn, kernel_size=3, stride=2, ceil_mode=True)
        self.lrn1 = nn.Identity()
        self.conv2 = Conv2dReLU(64, 64, 1)
        self.conv3 = Conv2dReLU(64, 192, 3, padding=1)
        self.lrn2 = LrnMaxPool2d(**lrn, kernel_size=3, stride=2, ceil_mode=True)
        self.maxpool2 = nn.Identity()
        for name, *cfg in INCEPTION_TABLE:
            setattr(self, name, Inception(*cfg))
        self.maxpool3 = MaxPool2d(3, 2, ceil_mode=True)
        self.maxpool4 = MaxPool2d(3, 2, ceil_mode=True)
        self.aux1 = PaperAux(512, num_classes, aux_dropout) if aux_logits else None
        self.aux2 = PaperAux(528, num_classes, aux_dropout) if aux_logits else None
        self.dropout = nn.Dropout(dropout)
        self.fc = Linear(1024, num_classes)
        self._init()

    @torch.no_grad()
    def _init(self):
        # Caffe's bvlc_googlenet: Xavier weights, constant 0.2 biases (0 for the classifiers).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.0 if isinstance(m, nn.Linear) else 0.2)

    def forward(self, x):
        _check_image(x, "paper")
        x = self.lrn1(self.maxpool1(self.conv1(input_layout(x))))
        x = self.maxpool2(self.lrn2(self.conv3(self.conv2(x))))
        return _inceptions_and_classifier(self, x)


# ---------------------------------------------------------------- torchvision's variant
class BasicConv2d(ReferenceSwitch, nn.Module):
    """torchvision's conv (no bias) + BatchNorm(eps 0.001) + ReLU, same parameter names. In eval
    mode it runs ``ops.conv2d_bn_relu`` on the CPU (the BatchNorm in the convolution's store) and
    the BatchNorm-folded fused conv+bias+ReLU elsewhere."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def folded(self):
        """(weight, bias) of the conv with the eval-mode BatchNorm folded in, from the current
        parameters and buffers (recomputed on every call; differentiable when grad is on)."""
        bn = self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        return self.conv.weight * scale.view(-1, 1, 1, 1), bn.bias - bn.running_mean * scale

    def forward(self, x):
        if self.training or self.reference:
            return F.relu(self.bn(self.conv(x)))
        c, bn = self.conv, self.bn
        if isinstance(x, torch.Tensor) and x.device.type == "cpu":
            # The BatchNorm applied in the convolution's store: no folded weights at all.
            return ops.conv2d_bn_relu(x, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups, bn.running_mean,
                                      bn.running_var, bn.weight, bn.bias, bn.eps)
        w, b = self.folded()
        return ops.conv2d_relu(x, w, b, c.stride, c.padding, c.dilation, c.groups)


def fold_batch_norms(convs):
    """``[c.folded() for c in convs]`` for a list of BasicConv2d, with the same arithmetic in
    multi-tensor kernels for the whole list (``torch._foreach_*``): on CUDA each small torch op
    is a kernel launch, and folding a block's six convolutions one by one took 36 of them (six
    each) on every eval forward; torchvision GoogLeNet's eager forward was bound by its host in
    the third GPU run, these launches inferred to be most of it (benchmarks/results/README.md).
    This takes 11: five for the per-channel factors of all six, and the weight products, whose
    shapes differ, one each. Recomputed on every call like ``folded``, so nothing can be stale.
    Where a gradient is wanted, or a BatchNorm lacks its affine parameters or running
    statistics, it is ``folded`` per convolution."""
    bns = [c._modules["bn"] for c in convs]
    weights = [c._modules["conv"].weight for c in convs]
    if (any(bn.weight is None or bn.bias is None or bn.running_mean is None or bn.running_var is None for bn in bns)
            or (torch.is_grad_enabled() and any(t.requires_grad for bn, w in zip(bns, weights)
                                                for t in (w, bn.weight, bn.bias, bn.running_mean, bn.running_var)))):
        return [c.folded() for c in convs]
    # scale = bn.weight * rsqrt(running_var + eps), shift = bn.bias - running_mean * scale, as folded().
    scales = torch._foreach_add([bn.running_var for bn in bns], [float(bn.eps) for bn in bns])
    torch._foreach_rsqrt_(scales)
    scales = torch._foreach_mul([bn.weight for bn in bns], scales)
    shifts = torch._foreach_sub([bn.bias for bn in bns], torch._foreach_mul([bn.running_mean for bn in bns], scales))
    folded_weights = torch._foreach_mul(weights, [s.view(-1, 1, 1, 1) for s in scales])
    return list(zip(folded_weights, shifts))


class TorchvisionInception(ReferenceSwitch, nn.Module):
    """torchvision's Inception block (BasicConv2d branches, 3x3 third branch). In eval mode on
    the CPU ("ops" backend, no gradient needed) it runs ``ops.inception_bn``; otherwise the
    folded weights run through fastalex.models.Inception's backends, with its ``allow_tf32``
    (None: follow torch.backends.cudnn.allow_tf32 at call time)."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, backend="auto",
                 allow_tf32=None):
        super().__init__()
        self.in_channels = in_channels
        self.backend = backend
        self.allow_tf32 = check_allow_tf32(allow_tf32)
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        # torchvision uses 3x3 here where the paper has 5x5 (kept for its released weights).
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x):
        if self.training or self.reference:
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)
        check_input(x, self.in_channels, self.branch1.conv.weight)
        # The six BasicConv2d looked up on every call (a replaced submodule is seen at once),
        # straight from the registries nn.Module's attribute lookup reads: at batch 1 the Python
        # between the kernels is part of the time.
        mods = self._modules
        convs = (mods["branch1"], mods["branch2"]._modules["0"], mods["branch2"]._modules["1"],
                 mods["branch3"]._modules["0"], mods["branch3"]._modules["1"], mods["branch4"]._modules["1"])
        backend = resolve_backend(self.backend, x)
        bns = [c._modules["bn"] for c in convs]
        if (backend == "ops" and not x.is_cuda
                and all(bn.eps == bns[0].eps and bn.track_running_stats and bn.affine for bn in bns)
                and not (torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()))):
            # One op whose convolutions apply their BatchNorms as they store: nothing folded.
            # (The module's own tensors: the public function's Python type checks add nothing.)
            return invoke(
                torch.ops.fastalex.inception_bn,
                x, [c._modules["conv"]._parameters["weight"] for c in convs],
                [bn._buffers["running_mean"] for bn in bns], [bn._buffers["running_var"] for bn in bns],
                [bn._parameters["weight"] for bn in bns], [bn._parameters["bias"] for bn in bns], bns[0].eps)
        return inception_forward(x, fold_batch_norms(convs), backend, self.allow_tf32)


class TorchvisionAux(nn.Module):
    def __init__(self, in_channels, num_classes, dropout=0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = Linear(2048, 1024, relu=True)
        self.fc2 = Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = self.fc1(flatten_for_classifier(x))
        return self.fc2(self.dropout(x))


class TorchvisionGoogLeNet(nn.Module):
    """torchvision's GoogLeNet, parameter-compatible; use ``fastalex.models.googlenet(variant=
    "torchvision")``."""

    def __init__(self, num_classes=1000, aux_logits=True, transform_input=False, dropout=0.2, dropout_aux=0.7):
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = MaxPool2d(3, stride=2, ceil_mode=True)
        for name, *cfg in INCEPTION_TABLE:
            setattr(self, name, TorchvisionInception(*cfg))
        self.maxpool3 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = MaxPool2d(2, stride=2, ceil_mode=True)
        self.aux1 = TorchvisionAux(512, num_classes, dropout_aux) if aux_logits else None
        self.aux2 = TorchvisionAux(528, num_classes, dropout_aux) if aux_logits else None
        self.dropout = nn.Dropout(p=dropout)
        self.fc = Linear(1024, num_classes)
        self._init()

    @torch.no_grad()
    def _init(self):
        # torchvision's init_weights=True: truncated normal (std 0.01, +-2) for convs and
        # linears, BatchNorm weight 1 and bias 0.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _transform_input(self, x):
        if not self.transform_input:
            return x
        # torchvision's re-mapping from ImageNet normalisation to the (x - 0.5) / 0.5 its
        # original weights were trained with.
        x0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((x0, x1, x2), 1)

    def forward(self, x):
        _check_image(x, "torchvision")
        # The input conversion follows torchvision's input transform (which concatenates
        # per-channel slices): still one conversion, of the tensor the stem reads.
        x = input_layout(self._transform_input(x))
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        return _inceptions_and_classifier(self, x)


def googlenet(variant: str = "paper", num_classes: int = 1000, aux_logits: bool = True,
              transform_input: bool = False) -> nn.Module:
    """GoogLeNet on fastalex ops. ``variant``: "paper" or "torchvision" (loads
    ``torchvision.models.googlenet(init_weights=True, aux_logits=..., transform_input=...)``'s
    state_dict; ``transform_input`` applies to that variant only)."""
    if variant not in VARIANTS:
        raise ValueError(f"fastalex.models.googlenet: variant must be one of {VARIANTS}, got {variant!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise ValueError(f"fastalex.models.googlenet: num_classes must be a positive int, got {num_classes!r}")
    if variant == "paper":
        if transform_input:
            raise ValueError("fastalex.models.googlenet: transform_input belongs to the torchvision variant")
        return GoogLeNet(num_classes, aux_logits)
    return TorchvisionGoogLeNet(num_classes, aux_logits, transform_input)


def reference_googlenet(variant: str = "paper", num_classes: int = 1000, aux_logits: bool = True,
                        transform_input: bool = False) -> nn.Module:
    """The same network (same parameters and state_dict keys) computed with plain torch ops."""
    return use_reference(googlenet(variant, num_classes, aux_logits, transform_input))
