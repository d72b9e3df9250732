"""Full networks: AlexNet and GoogLeNet in their paper and torchvision variants, against their
plain-torch reference twins (same weights) and against torchvision's own models.

Tolerances (float32, eval mode, batch 2): logits within rtol 1e-4 / atol 1e-4 of the reference
after re-initialising weights so activations stay O(1) (the papers' 0.01-std init shrinks them
to where any tolerance passes)."""
import contextlib
import os

import pytest
import torch

from conftest import HAS_CUDA, randn
from fastalex import models
from fastalex.models.googlenet import TorchvisionInception, fold_batch_norms
from fastalex.nn import use_reference

try:
    import torchvision
except ImportError:  # pragma: no cover - the test command installs it
    torchvision = None

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
needs_triton = pytest.mark.skipif(not (HAS_CUDA or INTERPRET), reason="Triton needs a GPU or TRITON_INTERPRET=1")
needs_cuda = [pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")]
needs_torchvision = pytest.mark.skipif(torchvision is None, reason="torchvision is not installed (pip install torchvision==0.29.1)")
TOL = dict(rtol=1e-4, atol=1e-4)


@torch.no_grad()
def rescale(model):
    """He-normal weights and small random biases, so activations stay O(1) through the net."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.uniform_(-0.3, 0.3, generator=g)
            m.running_mean.uniform_(-0.3, 0.3, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
    return model


def twins(build, *args, **kwargs):
    ours = rescale(build(*args, **kwargs)).eval()
    ref = use_reference(build(*args, **kwargs))
    ref.load_state_dict(ours.state_dict())
    return ours, ref.eval()


def assert_logits_close(a, b):
    assert a.shape == b.shape
    assert not torch.isnan(a).any()
    assert b.abs().max() > 1e-2, "logits too small for a meaningful comparison"
    torch.testing.assert_close(a, b, **TOL)


# ---------------------------------------------------------------- AlexNet
def test_paper_alexnet_parameters_and_init():
    m = models.alexnet()
    assert sum(p.numel() for p in m.parameters()) == 60_965_224
    convs = [l for l in m.features if isinstance(l, torch.nn.Conv2d)]
    fcs = [l for l in m.classifier if isinstance(l, torch.nn.Linear)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    for i, layer in enumerate(convs + fcs):
        assert abs(layer.weight.std().item() - 0.01) < 0.002
        assert torch.all(layer.bias == (1.0 if i in (1, 3, 4, 5, 6) else 0.0))
    lrn = m.features[1]
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 5e-4, 0.75, 2.0)  # the paper's alpha 1e-4, undivided
    assert models.alexnet(num_classes=10).classifier[-1].out_features == 10


def test_paper_alexnet_matches_reference():
    ours, ref = twins(models.alexnet)
    x = randn(2, 3, 227, 227)
    with torch.no_grad():
        assert_logits_close(ours(x), ref(x))


def test_paper_alexnet_runs_through_fastalex_ops(monkeypatch):
    calls = []
    import fastalex.ops as fops

    for name in ("conv2d_relu", "local_response_norm", "max_pool2d", "lrn_max_pool2d", "max_pool2d_lrn"):
        real = getattr(fops, name)
        monkeypatch.setattr(fops, name, lambda *a, _real=real, _name=name, **k: (calls.append(_name), _real(*a, **k))[1])
    import fastalex.nn as fnn

    monkeypatch.setattr(fnn, "ops", fops)
    m = models.alexnet().eval()
    with torch.no_grad():
        m(randn(1, 3, 227, 227))
    # both LRNs fused with the pools after them; pool5 alone
    assert sorted(calls) == sorted(["conv2d_relu"] * 5 + ["lrn_max_pool2d"] * 2 + ["max_pool2d"])


@pytest.mark.skipif(not torch.backends.cpu.get_cpu_capability().startswith("AVX512"),
                    reason="elsewhere inception_bn composes conv2d_bn_relu: other op counts")
def test_torchvision_googlenet_runs_through_the_batch_norm_ops():
    # On the CPU, eval mode: every convolution applies its BatchNorm in its store (no folding,
    # so no conv2d_relu / inception and no elementwise fold ops either).
    from torch.profiler import ProfilerActivity, profile

    m = models.googlenet("torchvision").eval()
    x = randn(1, 3, 96, 96)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        m(x)
    counts = {}
    for e in prof.events():
        counts[e.name] = counts.get(e.name, 0) + 1
    fastalex_ops = {k: v for k, v in counts.items() if k.startswith("fastalex::")}
    assert fastalex_ops == {"fastalex::conv2d_bn_relu": 3, "fastalex::inception_bn": 9, "fastalex::max_pool2d": 4,
                            "fastalex::linear": 1}, fastalex_ops
    assert "aten::rsqrt" not in counts and "aten::mul" not in counts


@needs_torchvision
def test_torchvision_alexnet_loads_and_matches():
    torch.manual_seed(0)
    tv = rescale(torchvision.models.alexnet()).eval()
    ours = models.alexnet("torchvision")
    ours.load_state_dict(tv.state_dict())
    ours.eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())
    x = randn(2, 3, 224, 224)
    with torch.no_grad():
        assert_logits_close(ours(x), tv(x))


def test_alexnet_train_mode_and_bad_input():
    m = models.alexnet().train()
    assert m(randn(2, 3, 227, 227)).shape == (2, 1000)
    with pytest.raises(ValueError, match=r"input must be 227x227 .* got 224x224"):
        m(randn(1, 3, 224, 224))
    with pytest.raises(ValueError, match=r"input must be \(N, 3, H, W\), got shape \(1, 4, 227, 227\)"):
        m(randn(1, 4, 227, 227))
    with pytest.raises(ValueError, match=r"variant must be one of"):
        models.alexnet("caffe")
    with pytest.raises(ValueError, match=r"at least 63x63"):
        models.alexnet("torchvision")(randn(1, 3, 32, 32))


# ---------------------------------------------------------------- GoogLeNet
def test_paper_googlenet_structure():
    m = models.googlenet()
    assert m.inception3a.branch3.kernel_size == (5, 5)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    for fused in (m.maxpool1, m.lrn2):  # the stem's pool -> LRN and LRN -> pool, each fused
        assert (fused.size, fused.alpha, fused.beta, fused.k) == (5, 1e-4, 0.75, 1.0)
        assert (fused.kernel_size, fused.stride, fused.padding, fused.ceil_mode) == (3, 2, 0, True)
    assert m.dropout.p == 0.4 and m.aux1.dropout.p == 0.7
    assert models.googlenet(aux_logits=False).aux1 is None


def test_paper_googlenet_matches_reference():
    ours, ref = twins(models.googlenet)
    x = randn(2, 3, 224, 224)
    with torch.no_grad():
        assert_logits_close(ours(x), ref(x))


def test_paper_googlenet_train_mode_returns_aux_logits():
    m = models.googlenet(num_classes=7).train()
    out = m(randn(2, 3, 224, 224))
    assert isinstance(out, models.GoogLeNetOutputs)
    assert out.logits.shape == out.aux_logits1.shape == out.aux_logits2.shape == (2, 7)
    m.eval()
    assert m(randn(2, 3, 224, 224)).shape == (2, 7)
    assert m(randn(1, 3, 96, 128)).shape == (1, 7)  # eval mode: any size (global average pool)
    m.train()
    with pytest.raises(ValueError, match=r"auxiliary classifiers need the 14x14 maps of a 224x224 input"):
        m(randn(1, 3, 96, 96))


@needs_torchvision
@pytest.mark.parametrize("aux_logits, transform_input", [(True, False), (False, True)])
def test_torchvision_googlenet_loads_and_matches(aux_logits, transform_input):
    torch.manual_seed(0)
    tv = rescale(torchvision.models.googlenet(init_weights=True, aux_logits=aux_logits, transform_input=transform_input)).eval()
    ours = models.googlenet("torchvision", aux_logits=aux_logits, transform_input=transform_input).eval()
    ours.load_state_dict(tv.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())
    x = randn(2, 3, 224, 224)
    with torch.no_grad():
        assert_logits_close(ours(x), tv(x))
    if aux_logits:
        ours.train()
        tv.train()
        torch.manual_seed(5)
        a = ours(x)
        torch.manual_seed(5)
        b = tv(x)
        assert type(a).__name__ == "GoogLeNetOutputs" and all(t.shape == (2, 1000) for t in a)
        torch.testing.assert_close(a.logits, b.logits, **TOL)


def _edit_in_place(m):
    with torch.no_grad():
        m.conv1.conv.weight.mul_(0.5)
        m.inception4a.branch2[1].bn.running_var.mul_(4.0)


def _edit_through_data(m):
    # Writes through .data do not bump the version counter: a version-keyed cache misses them.
    m.conv2.bn.weight.data.mul_(-1.5)
    m.inception3a.branch1.conv.weight.data[:3].zero_()


def _assign_data(m):
    torch.manual_seed(11)
    m.conv3.conv.weight.data = torch.randn_like(m.conv3.conv.weight) * 0.05
    m.inception5b.branch4[1].bn.running_mean = torch.randn_like(m.inception5b.branch4[1].bn.running_mean)


def _optimizer_step(m):
    torch.manual_seed(12)
    opt = torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-2)
    for p in m.parameters():
        p.grad = torch.randn_like(p) * 0.01
    opt.step()


def _load_other_weights(m):
    other = rescale(torchvision.models.googlenet(init_weights=True))
    with torch.no_grad():
        other.conv1.conv.weight.mul_(-1.0)
        other.inception3b.branch3[0].bn.running_var.mul_(3.0)
    m.load_state_dict(other.state_dict())


@needs_torchvision
@pytest.mark.parametrize("edit", [_edit_in_place, _edit_through_data, _assign_data, _optimizer_step, _load_other_weights])
@pytest.mark.parametrize("inception_backend", ["auto", "reference"])
def test_torchvision_googlenet_never_computes_with_stale_folded_weights(edit, inception_backend):
    # Each edit is applied to both networks while ours stays in eval mode; the very next
    # forward must see it (no eval() call, no refresh of any kind in between). "auto" on the
    # CPU runs inception_bn (nothing folded); "reference" makes every Inception block fold its
    # BatchNorms (fold_batch_norms, the CUDA path's) and compute with torch's convolutions.
    tv = rescale(torchvision.models.googlenet(init_weights=True)).eval()
    ours = models.googlenet("torchvision").eval()
    ours.load_state_dict(tv.state_dict())
    for mod in ours.modules():
        if isinstance(mod, TorchvisionInception):
            mod.backend = inception_backend
    x = randn(1, 3, 96, 96)
    with torch.no_grad():
        before = ours(x)
        torch.testing.assert_close(before, tv(x), **TOL)
    edit(ours)
    edit(tv)
    with torch.no_grad():
        after = ours(x)
        assert not torch.allclose(before, after, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(after, tv(x), **TOL)


@pytest.mark.parametrize("device, dtype", [("cpu", torch.float32), ("cpu", torch.float64), ("cpu", torch.float16),
                                           ("cpu", torch.bfloat16),
                                           *[pytest.param("cuda", d, marks=needs_cuda)
                                             for d in (torch.float32, torch.float16, torch.bfloat16)]])
def test_fold_batch_norms_is_folded_per_convolution(device, dtype):
    # The multi-tensor fold computes exactly what BasicConv2d.folded() does, convolution by
    # convolution, for a block's six (distinct eps values and random statistics included), and
    # leaves the grad-mode case to folded() itself.
    block = rescale(models.googlenet("torchvision", aux_logits=False).inception4a).eval().to(device, dtype)
    convs = [block.branch1, block.branch2[0], block.branch2[1], block.branch3[0], block.branch3[1], block.branch4[1]]
    for i, c in enumerate(convs):
        c.bn.eps = 1e-3 * (i + 1)
    with torch.no_grad():
        got, want = fold_batch_norms(convs), [c.folded() for c in convs]
    assert len(got) == 6
    for (w, b), (w_ref, b_ref) in zip(got, want):
        assert w.dtype == dtype and w.device.type == device
        assert torch.equal(w, w_ref) and torch.equal(b, b_ref)
    grads = fold_batch_norms(convs)
    assert all(w.requires_grad and b.requires_grad for w, b in grads)


@needs_torchvision
def test_torchvision_googlenet_follows_dtype_moves_and_mode_switches():
    tv = rescale(torchvision.models.googlenet(init_weights=True)).eval()
    ours = models.googlenet("torchvision").eval()
    ours.load_state_dict(tv.state_dict())
    x = randn(1, 3, 96, 96, dtype=torch.float64)
    ours.double()
    tv.double()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-10, atol=1e-10)
        ours.train()
        tv.train()
        ours.conv1.bn.running_var.mul_(4.0)
        tv.conv1.bn.running_var.mul_(4.0)
        ours.eval()
        tv.eval()
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-10, atol=1e-10)


@needs_torchvision
def test_torchvision_googlenet_eval_forward_is_differentiable():
    # Folding is part of the graph: gradients reach the conv weights and BatchNorm parameters
    # through the fused eval-mode path as they do through torchvision's.
    tv = rescale(torchvision.models.googlenet(init_weights=True, aux_logits=False)).eval()
    ours = models.googlenet("torchvision", aux_logits=False).eval()
    ours.load_state_dict(tv.state_dict())
    x = randn(1, 3, 64, 64)
    ours(x).square().sum().backward()
    tv(x).square().sum().backward()
    for name in ("conv1.conv.weight", "conv1.bn.weight", "inception4a.branch2.1.bn.bias"):
        a, b = ours.get_parameter(name).grad, tv.get_parameter(name).grad
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6 * b.abs().max().item())


@needs_triton
@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_googlenet_inception_blocks_follow_the_cudnn_tf32_flag(monkeypatch, variant):
    # Every Inception block keeps allow_tf32=None, so the Triton path asks for TF32 exactly
    # while torch.backends.cudnn.allow_tf32 is set. The launches are only recorded (their
    # outputs stay unwritten): this checks the precision each block resolves, not values.
    import fastalex.triton.inception as ti

    seen = []
    monkeypatch.setattr(ti, "_launch", lambda *args: seen.append(args[-1]))
    device = "cuda" if HAS_CUDA else "cpu"
    m = models.googlenet(variant, aux_logits=False).to(device).eval()
    blocks = [b for b in m.modules() if hasattr(b, "allow_tf32")]
    assert len(blocks) == 9 and all(b.allow_tf32 is None for b in blocks)
    for b in blocks:
        b.backend = "triton"
    x = randn(1, 3, 32, 32, device=device)
    for flag, expected in ((True, "tf32"), (False, "ieee")):
        seen.clear()
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", flag)
        with torch.no_grad():
            m(x)
        assert seen == [expected] * 9


def test_googlenet_bad_input():
    m = models.googlenet().eval()
    with pytest.raises(ValueError, match=r"input must be \(N, 3, H, W\), got shape \(1, 1, 224, 224\)"):
        m(randn(1, 1, 224, 224))
    with pytest.raises(ValueError, match=r"at least 15x15"):
        m(randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"variant must be one of"):
        models.googlenet("v3")
    with pytest.raises(ValueError, match=r"transform_input belongs to the torchvision variant"):
        models.googlenet(transform_input=True)


# ---------------------------------------------------------------- fused LRN + pool in the paper networks
from fastalex import nn as fnn  # noqa: E402

# Where each paper network's LRN + pool pairs are: (path, fused module type), and the paths
# that hold an nn.Identity in place of the pair's second layer.
PAPER_FUSED = {
    "alexnet": (models.alexnet, 227, [("features.1", fnn.LrnMaxPool2d), ("features.4", fnn.LrnMaxPool2d)],
                ["features.2", "features.5"]),
    "googlenet": (models.googlenet, 96, [("maxpool1", fnn.MaxPool2dLrn), ("lrn2", fnn.LrnMaxPool2d)],
                  ["lrn1", "maxpool2"]),
}


@pytest.mark.parametrize("name", list(PAPER_FUSED))
def test_paper_networks_fuse_lrn_with_pool(name):
    build, _, fused, identities = PAPER_FUSED[name]
    m = build()
    mods = dict(m.named_modules())
    assert [(path, type(mods[path])) for path, _ in fused] == fused
    assert all(type(mods[path]) is torch.nn.Identity for path in identities)
    assert [p for p, x in mods.items() if isinstance(x, (fnn.LrnMaxPool2d, fnn.MaxPool2dLrn))] == [p for p, _ in fused]
    assert not any(isinstance(x, torch.nn.LocalResponseNorm) for x in m.modules())  # no LRN left on its own


def test_paper_state_dict_keys_are_the_unfused_networks():
    # The LRN and pool layers have no parameters; the fusion keeps every other layer where it
    # was, so checkpoints of the unfused networks load as they are.
    keys = list(models.alexnet().state_dict())
    assert [k for k in keys if k.startswith("features.")] == [
        f"features.{i}.{p}" for i in (0, 3, 6, 7, 8) for p in ("weight", "bias")]
    assert [k for k in keys if k.startswith("classifier.")] == [
        f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")]
    keys = list(models.googlenet().state_dict())
    assert keys[:6] == [f"conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")]
    assert keys[6].startswith("inception3a.")


@pytest.mark.parametrize("name", list(PAPER_FUSED))
def test_paper_reference_twins_run_torchs_unfused_pair(monkeypatch, name):
    # A reference twin never calls the fused ops (its modules compute torch's LRN and pool);
    # the fastalex network does, and agrees with the twin.
    build, size, fused, _ = PAPER_FUSED[name]
    import fastalex.ops as fops

    calls = []
    for op in ("lrn_max_pool2d", "max_pool2d_lrn"):
        real = getattr(fops, op)
        monkeypatch.setattr(fops, op, lambda *a, _real=real, _op=op, **k: (calls.append(_op), _real(*a, **k))[1])
    ours, ref = twins(build)
    x = randn(2, 3, size, size)
    with torch.no_grad():
        want = ref(x)
        assert calls == []
        assert_logits_close(ours(x), want)
    assert sorted(calls) == sorted("lrn_max_pool2d" if t is fnn.LrnMaxPool2d else "max_pool2d_lrn" for _, t in fused)


# ---------------------------------------------------------------- torch.compile
@pytest.mark.slow
def test_torch_compile_fullgraph_alexnet():
    torch._dynamo.reset()
    m = models.alexnet().eval()
    x = randn(1, 3, 227, 227)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(m, fullgraph=True)(x), m(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_torch_compile_fullgraph_googlenet(variant):
    torch._dynamo.reset()
    m = rescale(models.googlenet(variant)).eval()
    x = randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(m, fullgraph=True)(x), m(x), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- networks on CUDA
# Layout: on CUDA a network converts its input to channels_last once and keeps every
# intermediate channels_last up to the explicit flatten before its classifier; on CPU nothing
# converts. Graphs: fastalex.cuda_graph. The CPU tests below run everywhere; the GPU ones
# (marked gpu) skip without CUDA.
import fastalex  # noqa: E402
from fastalex.models._layout import flatten_for_classifier, input_layout  # noqa: E402


def gpu(test):
    return pytest.mark.gpu(pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")(test))


# name -> (builder, input size); eval mode accepts any size for all but paper AlexNet.
NETS = {
    "alexnet-paper": (lambda: models.alexnet(), 227),
    "alexnet-torchvision": (lambda: models.alexnet("torchvision"), 96),
    "googlenet-paper": (lambda: models.googlenet(), 96),
    "googlenet-torchvision": (lambda: models.googlenet("torchvision"), 96),
}


def layouts_seen(model, x):
    """Runs model(x) with a forward hook on every submodule; returns (module name, "input" or
    "output", is channels_last, is NCHW-contiguous) for every 4-D tensor a submodule took or
    gave (the root's own input excluded: that is the caller's tensor)."""
    seen, handles = [], []
    for name, mod in model.named_modules():
        def hook(mod, args, out, name=name):
            tensors = [("output", out)] + ([("input", a) for a in args] if name else [])
            for kind, t in tensors:
                if isinstance(t, torch.Tensor) and t.dim() == 4:
                    seen.append((name or "<root>", kind, t.is_contiguous(memory_format=torch.channels_last),
                                 t.is_contiguous()))
        handles.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    assert seen, "no 4-D tensor seen"
    return seen


@pytest.mark.parametrize("fmt", ["nchw", "channels_last"])
@pytest.mark.parametrize("name", list(NETS))
def test_cpu_forward_converts_no_layout(name, fmt):
    # On CPU the input's layout runs through the whole network, as before: NCHW stays NCHW,
    # channels_last stays channels_last; the logits do not depend on it.
    build, size = NETS[name]
    m = rescale(build()).eval()
    x = randn(1, 3, size, size)
    xf = x.contiguous(memory_format=torch.channels_last) if fmt == "channels_last" else x
    assert input_layout(xf) is xf
    seen = layouts_seen(m, xf)
    column = 2 if fmt == "channels_last" else 3
    assert [s for s in seen if not s[column]] == []
    if fmt == "channels_last":
        with torch.no_grad():
            torch.testing.assert_close(m(xf), m(x), **TOL)


def test_flatten_for_classifier_is_chw_order_in_both_layouts():
    x = randn(2, 5, 3, 4)
    want = x.reshape(2, -1)
    for t in (x, x.contiguous(memory_format=torch.channels_last)):
        out = flatten_for_classifier(t)
        assert out.is_contiguous() and torch.equal(out, want)
    one = randn(2, 7, 1, 1).contiguous(memory_format=torch.channels_last)
    assert flatten_for_classifier(one).data_ptr() == one.data_ptr()  # 1x1 maps: a view, no copy


def test_cuda_graph_argument_errors():
    m = models.alexnet("torchvision")
    x = randn(1, 3, 96, 96)
    with pytest.raises(TypeError, match=r"fastalex.cuda_graph: model must be a torch.nn.Module, got function"):
        fastalex.cuda_graph(lambda t: t, x)
    with pytest.raises(TypeError, match=r"example must be a torch.Tensor, got list"):
        fastalex.cuda_graph(m.eval(), [x])
    m.train()
    with pytest.raises(ValueError, match=r"the model must be in eval mode \(call model.eval\(\) first\).*"
                                         r"in training mode: AlexNet, features, features.0 and \d+ more"):
        fastalex.cuda_graph(m, x)
    m.eval()
    m.classifier[0].train()  # one submodule left in training mode is refused too
    with pytest.raises(ValueError, match=r"in training mode: classifier.0$"):
        fastalex.cuda_graph(m, x)
    m.eval()
    with pytest.raises(ValueError, match=r"CUDA graphs need a CUDA tensor; the example is on cpu"):
        fastalex.cuda_graph(m, x)
    with pytest.raises(ValueError, match=r"warmup must be a positive int, got 0"):
        fastalex.cuda_graph(m, x, warmup=0)


def test_graphed_forward_checks_copies_and_replays():
    # The callable's own logic, with a stand-in for the captured graph (runs without a GPU).
    class Graph:
        replays = 0

        def replay(self):
            Graph.replays += 1
            out.copy_(static.sum((1, 2, 3)))

    static, out = torch.zeros(2, 3, 4, 5), torch.zeros(2)
    g = fastalex.GraphedForward(Graph(), static, out)
    with pytest.raises(ValueError, match=r"captured for input shape \(2, 3, 4, 5\), dtype torch.float32 on cpu; "
                                         r"got shape \(1, 3, 4, 5\), dtype torch.float32 on cpu"):
        g(torch.ones(1, 3, 4, 5))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4, 5\), dtype torch.float64 on cpu"):
        g(torch.ones(2, 3, 4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4, 5\), dtype torch.float32 on meta"):
        g(torch.empty(2, 3, 4, 5, device="meta"))
    with pytest.raises(TypeError, match=r"the input must be a torch.Tensor, got list"):
        g([1.0])
    assert Graph.replays == 0
    x = torch.ones(2, 3, 4, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    res = g(x)
    assert res is out and Graph.replays == 1 and torch.equal(static, x.detach())
    assert not static.requires_grad
    assert torch.equal(res, torch.full((2,), 60.0))


@contextlib.contextmanager
def tf32_flags(enabled):
    """torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32 both set to
    `enabled` inside (None: left as they are), restored after. (By hand: pytest's monkeypatch
    cannot restore an attribute of torch.backends.cuda.matmul.)"""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if enabled is not None:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def cuda_twins(name, dtype=torch.float32):
    """Our network on CUDA in `dtype` (eval mode, O(1) activations), its plain-torch twin in
    float64 on CUDA with the same (rounded) weights, and an input batch of 2."""
    build, size = NETS[name]
    ours = rescale(build()).to(device="cuda", dtype=dtype).eval()
    ref = use_reference(build())
    ref.load_state_dict({k: v.double() for k, v in ours.state_dict().items()})
    ref = ref.to(device="cuda", dtype=torch.float64).eval()
    return ours, ref, randn(2, 3, size, size, dtype=dtype, device="cuda")


@gpu
@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", list(NETS))
def test_cuda_forward_is_channels_last_throughout(name, mode):
    ours, _, x = cuda_twins(name)
    if mode == "train":
        ours.train()
        if name == "googlenet-paper":  # its auxiliary heads need a 224x224 input
            x = randn(2, 3, 224, 224, device="cuda")
    assert x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    seen = layouts_seen(ours, x)
    assert [s for s in seen if not s[2]] == [], "not channels_last"


@gpu
@pytest.mark.parametrize("case", ["float32", "float32_tf32", "float16", "bfloat16"])
@pytest.mark.parametrize("name", list(NETS))
def test_cuda_networks_in_each_dtype_match_float64(name, case):
    # Sanity bounds on max |logit error| / max |logit| against the float64 twin (layout or
    # indexing bugs give errors of order 1): float32 without TF32 is float32-accurate; TF32,
    # float16 and bfloat16 lose 10, 10 and 7 mantissa bits per rounding, over 8 to 22 layers.
    dtype, tf32, bound = {
        "float32": (torch.float32, False, 2e-4),
        "float32_tf32": (torch.float32, True, 3e-2),
        "float16": (torch.float16, None, 3e-2),
        "bfloat16": (torch.bfloat16, None, 1e-1),
    }[case]
    ours, ref, x = cuda_twins(name, dtype)
    with tf32_flags(tf32), torch.no_grad():
        out, want = ours(x), ref(x.double())
    assert out.dtype == dtype and out.shape == want.shape == (2, 1000)
    assert torch.isfinite(out).all()
    scale = want.abs().max().item()
    assert scale > 1e-2, "logits too small for a meaningful comparison"
    err = (out.double() - want).abs().max().item() / scale
    assert err <= bound, f"{name} {case}: max error {err:.2e} of max |logit| {scale:.3g} (bound {bound})"


@gpu
@pytest.mark.parametrize("name", list(NETS))
def test_cuda_eval_forward_never_synchronises(name):
    ours, _, x = cuda_twins(name)
    with torch.no_grad():
        ours(x)  # first use: Triton compiles and autotunes, which synchronises
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            ours(x)
        finally:
            torch.cuda.set_sync_debug_mode("default")


@gpu
@pytest.mark.parametrize("name", list(NETS))
def test_cuda_graph_replay_equals_eager(name):
    ours, _, x = cuda_twins(name)
    g = fastalex.cuda_graph(ours, x)
    x2, x3 = torch.randn_like(x), torch.randn_like(x).contiguous(memory_format=torch.channels_last)
    out2 = g(x2)
    assert out2 is g.static_output
    out2 = out2.clone()
    out3 = g(x3).clone()
    with torch.no_grad():
        torch.testing.assert_close(out2, ours(x2), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out3, ours(x3), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out2, out3)
    # The graph reads the parameters' memory: an in-place update shows in the next replay.
    with torch.no_grad():
        [m for m in ours.modules() if isinstance(m, torch.nn.Linear)][-1].bias.add_(1.0)
        torch.testing.assert_close(g(x2).clone(), ours(x2), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(g(x2).clone(), out2 + 1.0, rtol=1e-5, atol=1e-5)


@gpu
def test_cuda_graph_rejects_other_inputs():
    ours, _, x = cuda_twins("googlenet-paper")
    g = fastalex.cuda_graph(ours, x, warmup=1)
    dev = x.device
    with pytest.raises(ValueError, match=rf"captured for input shape \(2, 3, 96, 96\), dtype torch.float32 on "
                                         rf"{dev}; got shape \(1, 3, 96, 96\), dtype torch.float32 on {dev}"):
        g(x[:1])
    with pytest.raises(ValueError, match=rf"got shape \(2, 3, 96, 96\), dtype torch.float16 on {dev}"):
        g(x.half())
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 96, 96\), dtype torch.float32 on cpu"):
        g(x.cpu())
    ours.train()
    with pytest.raises(ValueError, match=r"the model must be in eval mode"):
        fastalex.cuda_graph(ours, x)
