"""The op contract: what every fastalex op promises, declared once per op as an ``OpSpec`` in the
op's own test module (``SPEC = OpSpec(...)``) and checked for every spec by
``tests/test_contract.py`` on every backend the op has:

- results equal the torch reference (float64) within the op's tolerance class, in every dtype
  the backend supports, in NCHW, channels_last and non-contiguous layouts, with the output in
  the input's memory format;
- NaN exactly where torch computing in the input's precision (float32 for half types) gives
  NaN, the same infinities, finite values within tolerance of torch in that precision or of
  the float64 reference everywhere else -- with NaN, +-inf and overflowing finite values put
  at the first, an interior and the last channel and on vector/tile boundaries;
- every bad input raises the stated exception with a message naming the argument;
- torch.library.opcheck (schema, fake kernel, autograd registration), float64 gradcheck, and
  torch.compile(fullgraph=True) numerics against the reference;
- the emulated CUDA kernel gives bit-identical results under several thread schedules.

Backends: ``cpu`` (the hand-written fast paths on), ``cpu_portable`` (every fast path off:
what CPUs without AVX-512 run), ``emu`` (the CUDA kernels on the SIMT emulator), ``triton``
(Triton's interpreter, or the GPU), ``cuda`` (a GPU, when present).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Sequence

import torch

import fastalex

F32, F64, F16, BF16 = torch.float32, torch.float64, torch.float16, torch.bfloat16
HALF = (F16, BF16)

HAS_CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# Tolerance classes (rtol, atol) against the float64 reference computed from the same rounded
# inputs. Half types include the output's final rounding to 11 / 8 mantissa bits.
TOLERANCES = {
    # one rounding per element (LRN): a few ulps of the result
    "elementwise": {F64: (1e-12, 1e-12), F32: (2e-6, 1e-6), F16: (2e-3, 1e-4), BF16: (1.6e-2, 1e-3)},
    # reductions of length K ~ 1e2-1e3 with O(1) results (conv, linear; weights scaled by 1/sqrt(K))
    "reduction": {F64: (1e-10, 1e-10), F32: (1e-4, 1e-4), F16: (4e-3, 4e-3), BF16: (2e-2, 2e-2)},
    # two chained reductions with a float16 intermediate (the Inception block's reduce branches)
    "two_reductions": {F64: (1e-10, 1e-10), F32: (2e-4, 2e-4), F16: (1e-2, 1e-2), BF16: (5e-2, 5e-2)},
    # reductions as above whose float32 inputs a CUDA kernel rounds to TF32 (10-bit mantissa),
    # against a reference of unrounded inputs (the contract itself rounds the reference's inputs
    # instead: see OpSpec.tf32_args)
    "reduction_tf32": {F32: (5e-3, 5e-3)},
    # gradients (LRN backward): a few roundings per element and a cancellation between two
    # terms, so bounds relative to the gradient's scale (O(1) in the samples); half types also
    # carry the rounding of the forward's output, which the backward takes as its input and whose
    # error a small D (k = 0) amplifies
    "gradient": {F64: (1e-12, 1e-12), F32: (1e-5, 1e-5), F16: (4e-3, 4e-3), BF16: (3e-2, 3e-2)},
    # selections (max-pool): bit-exact
    "exact": {F64: (0, 0), F32: (0, 0), F16: (0, 0), BF16: (0, 0)},
}

# The dtypes each backend supports.
BACKEND_DTYPES = {
    "cpu": (F32, F64),
    "cpu_portable": (F32, F64),
    "emu": (F32, F64, F16, BF16),
    # The interpreter's bfloat16 dot is unreliable: bfloat16 is checked on GPUs only.
    "triton": (F32, F16, BF16) if HAS_CUDA else (F32, F16),
    "cuda": (F32, F64, F16, BF16),
}

# Emulator runs that must agree bit for bit: (schedule, seed, guard page at buffer start/end).
EMU_RUNS = (("ascending", 0, "end"), ("descending", 0, "start"), ("warp_random", 7, "end"))

FORMATS = ("nchw", "nhwc", "strided")


@dataclasses.dataclass
class Sample:
    """One call: ``fn(*args, **kwargs)``; ``label`` names it in test ids and failure messages.
    ``formats``: the 4-D first argument is also tried channels_last and as a strided view."""

    label: str
    args: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)
    formats: bool = True


@dataclasses.dataclass
class BadInput:
    """``call(fn, device)`` must raise ``exc`` with a message matching ``pattern``. ``fn`` is the
    public function (``api="public"``, also run through the emulator's twin) or the raw
    ``torch.ops`` overload (``api="schema"``: the C++ checks, bypassing Python's)."""

    label: str
    call: Callable
    exc: type
    pattern: str
    api: str = "public"


@dataclasses.dataclass
class OpSpec:
    name: str
    # the public function (torch's argument order) and the registered overload
    public: Callable
    overload: object
    # the float64 / in-precision reference: same arguments as `public`
    reference: Callable
    # samples(dtype) -> [Sample]: CPU tensors of that dtype (moved to the backend's device)
    samples: Callable[[torch.dtype], Sequence[Sample]]
    # nonfinite(dtype) -> [Sample] with NaN / +-inf / overflowing values placed (see place_values)
    nonfinite: Callable[[torch.dtype], Sequence[Sample]]
    # public-API arguments -> the overload's (schema) arguments, for opcheck
    schema_args: Callable
    tolerance: str = "elementwise"
    bad_inputs: Sequence[BadInput] = ()
    emu: Optional[Callable] = None           # fastalex.emu twin (the CUDA kernel on the emulator)
    emu_overload: Optional[object] = None    # torch.ops.fastalex_emu.<op>
    triton: Optional[Callable] = None        # a Triton implementation with `public`'s arguments
    has_cpu: bool = True
    # gradcheck samples (float64, small); [] when the op has no autograd formula
    grad_samples: Callable[[], Sequence[Sample]] = lambda: []
    # indices of the args that are differentiable tensors
    grad_argnums: Sequence[int] = (0,)
    # backends that multiply float32 in TF32 while torch.backends.cudnn.allow_tf32 is set, and
    # the positions of the arguments they round (cvt.rna: to nearest, ties away from zero): on
    # those backends the reference sees these arguments rounded the same way, so the op's own
    # tolerance class (float32 accumulation) still applies
    tf32_backends: Sequence[str] = ()
    tf32_args: Sequence[int] = ()
    # backends whose float32 convolutions are torch's own (cuDNN through at::convolution), so
    # they follow torch.backends.cudnn.allow_tf32 exactly as torch does and round every operand,
    # intermediates included, as cuDNN chooses: the contract calls them with the flag off, where
    # the float32 tolerance applies (the flag is on by default)
    cudnn_backends: Sequence[str] = ()

    def backends(self):
        out = []
        if self.has_cpu:
            out += ["cpu", "cpu_portable"]
        if self.emu is not None:
            out.append("emu")
        if self.triton is not None:
            out.append("triton")
        if self.has_cpu or self.emu is not None:
            out.append("cuda")
        return out

    def tol(self, dtype):
        return TOLERANCES[self.tolerance][dtype]

    def reference_sample(self, sample, backend, dtype):
        """The sample as the reference must see it on `backend` (see tf32_args)."""
        if not (dtype == F32 and backend in self.tf32_backends and torch.backends.cudnn.allow_tf32):
            return sample
        args = tuple(tf32_round(a) if i in self.tf32_args and isinstance(a, torch.Tensor) else a
                     for i, a in enumerate(sample.args))
        return dataclasses.replace(sample, args=args)


def tf32_round(t):
    """float32 -> TF32 (10 mantissa bits) as cvt.rna.tf32.f32 rounds: to nearest, ties away from
    zero; NaN and inf stay as they are."""
    bits = t.contiguous().view(torch.int32)
    rounded = ((bits + 0x1000) & ~0x1FFF).view(torch.float32)
    return torch.where(torch.isfinite(t.contiguous()), rounded, t.contiguous()).view_as(t)


# ---------------------------------------------------------------- inputs
def rand(*shape, dtype=F32, scale=1.0, seed=None):
    """Seeded normal values (never zeros)."""
    g = torch.Generator().manual_seed(seed if seed is not None else hash(shape) % 2**31)
    return (torch.randn(*shape, generator=g, dtype=F64) * scale).to(dtype)


def tensor(*shape, dtype=F32, device="cpu"):
    """rand() on a device: the bad-input cases' operands."""
    return rand(*shape, dtype=dtype).to(device)


def square_overflow(dtype):
    """A finite value whose square overflows the computing precision (float32 for half types;
    float16's largest values cannot, so they are just large there)."""
    return {F64: 1e160, F32: 3e19, F16: 6e4, BF16: 3e19}[dtype]


def product_overflow(dtype):
    """A finite value whose product with a weight above ~1.2 overflows the computing precision;
    for float16, large enough that sums overflow the float16 output."""
    return {F64: 1.5e308, F32: 3e38, F16: 6e4, BF16: 3e38}[dtype]


def positions(shape, spatial_extra=()):
    """(n, c, h, w) positions for special values: the first, an interior and the last channel,
    spatially at the origin, on the 16-lane vector boundary (columns 15 and 16 of the flat
    pixel index), in the middle and at the last pixel."""
    n, c, h, w = shape
    flat = [0, 15, 16, (h * w) // 2, h * w - 1] + list(spatial_extra)
    out = []
    for i, p in enumerate(flat):
        p = min(p, h * w - 1)
        ch = (0, c // 2, c - 1)[i % 3]
        out.append((i % n, ch, p // w, p % w))
    return out


def place_values(x, kind, where, big):
    """A copy of x with `kind` ("nan", "+inf", "-inf", "overflow" or "mixed") at the indices
    `where`; `big` is the overflowing finite value."""
    x = x.clone()
    cycle = {"nan": [float("nan")], "+inf": [float("inf")], "-inf": [float("-inf")], "overflow": [big, -big],
             "mixed": [float("nan"), float("inf"), -big, float("-inf")]}[kind]
    for i, idx in enumerate(where):
        x[idx] = cycle[i % len(cycle)]
    return x


NONFINITE_KINDS = ("nan", "+inf", "-inf", "overflow", "mixed")


# ---------------------------------------------------------------- layouts and devices
def to_format(x, fmt):
    if fmt == "nchw":
        return x.contiguous()
    if fmt == "nhwc":
        return x.contiguous(memory_format=torch.channels_last)
    if fmt == "strided":
        # Every other column of a tensor twice as wide: a view no kernel can read as dense.
        n, c, h, w = x.shape
        big = torch.full((n, c, h, 2 * w), float("nan"), dtype=x.dtype, device=x.device)
        big[..., ::2] = x
        view = big[..., ::2]
        assert not view.is_contiguous() and not view.is_contiguous(memory_format=torch.channels_last)
        return view
    raise ValueError(fmt)


def map_tensors(obj, fn):
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    return obj


def with_format(args, fmt):
    """args with its first (4-D) tensor in layout `fmt`."""
    args = list(args)
    if fmt != "nchw":
        args[0] = to_format(args[0], fmt)
    return tuple(args)


def device_of(backend):
    return "cuda" if backend in ("cuda",) or (backend == "triton" and HAS_CUDA) else "cpu"


def runner(spec, backend):
    """The function that computes `spec` on `backend` (same arguments as spec.public)."""
    if backend == "cpu":
        return spec.public
    if backend == "cpu_portable":
        def portable(*a, **k):
            with fastalex.cpu_fastpath(False):
                return spec.public(*a, **k)
        return portable
    if backend == "emu":
        return lambda *a, **k: under_schedules(lambda **run: spec.emu(*a, **run, **k), what=f"emulated {spec.name}")
    if backend == "triton":
        return spec.triton
    if backend == "cuda":
        if backend not in spec.cudnn_backends:
            return spec.public

        def ieee_float32(*a, **k):
            # torch >= 2.9 reads the convolutions' own setting (cudnn.conv.fp32_precision); the
            # legacy flag would also set RNN's, and reading it back can raise
            conv = getattr(torch.backends.cudnn, "conv", None)
            owner, attr, off = (conv, "fp32_precision", "ieee") if conv is not None else \
                (torch.backends.cudnn, "allow_tf32", False)
            saved = getattr(owner, attr)
            setattr(owner, attr, off)
            try:
                return spec.public(*a, **k)
            finally:
                setattr(owner, attr, saved)
        return ieee_float32
    raise ValueError(backend)


def bits(t):
    # flattened first: a contiguous tensor with size-1 dims can keep a last stride other than 1
    # (a channels_last (N, C, 1, 1) output), which view(uint8) rejects
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def under_schedules(fn, runs=EMU_RUNS, what="emulated kernel"):
    """fn(schedule=, seed=) under each (schedule, seed, guard) run; asserts the results are
    bit-identical (same strides too) and returns the first: a result that depends on the order
    threads run in is a race."""
    import fastalex.emu as emu

    outs = []
    for schedule, seed, guard in runs:
        with emu.config(guard=guard):
            outs.append(fn(schedule=schedule, seed=seed))
    for (schedule, seed, _), out in zip(runs[1:], outs[1:]):
        assert out.stride() == outs[0].stride(), f"{what}: strides differ under schedule {schedule}:{seed}"
        assert torch.equal(bits(out), bits(outs[0])), (
            f"{what}: result under schedule {schedule}:{seed} differs from {runs[0][0]}")
    return outs[0]


# ---------------------------------------------------------------- comparisons
def precision_of(dtype):
    """The precision torch's reference computes in for the non-finite pattern."""
    return F32 if dtype in HALF else dtype


def reference_in(spec_reference, sample, dtype):
    """The reference computed from the sample's tensors cast to `dtype`."""
    cast = lambda t: t.to(dtype)  # noqa: E731
    return spec_reference(*map_tensors(sample.args, cast), **map_tensors(sample.kwargs, cast))


def pair_list(v):
    """An int or a pair -> [h, w], as the schemas take them."""
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def assert_matches_reference(out, ref64, tol, what):
    rtol, atol = tol
    assert out.shape == ref64.shape, f"{what}: shape {tuple(out.shape)}, expected {tuple(ref64.shape)}"
    assert not torch.isnan(out).any(), f"{what}: output holds NaN (an element was not written?)"
    torch.testing.assert_close(out.double(), ref64, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def assert_like_torch(out, reference, args, kwargs=None, tol=None, what=""):
    """assert_nonfinite_pattern against `reference(*args, **kwargs)` computed by torch in the
    output's precision (float32 for half types) and in float64; `tol` defaults to the
    elementwise class of the output's dtype."""
    sample = Sample(what, tuple(args), dict(kwargs or {}))
    want = reference_in(reference, sample, precision_of(out.dtype)).to(out.dtype)
    ref64 = reference_in(reference, sample, F64)
    assert_nonfinite_pattern(out, want, ref64, tol or TOLERANCES["elementwise"][out.dtype], what)


def assert_nonfinite_pattern(out, want, ref64, tol, what):
    """NaN exactly where `want` (torch in the input's precision, cast to the output dtype) has
    NaN, the same infinities, and finite values close to `want` or to the float64 reference."""
    assert out.shape == want.shape, f"{what}: shape {tuple(out.shape)}, expected {tuple(want.shape)}"
    o, w = out.double().cpu(), want.double().cpu()
    r = ref64.double().cpu()
    for name, pred in (("NaN", torch.isnan), ("+inf", torch.isposinf), ("-inf", torch.isneginf)):
        mism = pred(o) != pred(w)
        if mism.any():
            idx = tuple(mism.nonzero()[0].tolist())
            raise AssertionError(f"{what}: {name} pattern differs from torch at {int(mism.sum())} elements, e.g. "
                                 f"{idx}: got {o[idx].item()}, torch gives {w[idx].item()}")
    fin = torch.isfinite(w)
    rtol, atol = tol
    close = ((o - w).abs() <= atol + rtol * w.abs()) | ((o - r).abs() <= atol + rtol * r.abs())
    bad = fin & ~close
    if bad.any():
        idx = tuple(bad.nonzero()[0].tolist())
        raise AssertionError(f"{what}: {int(bad.sum())} finite values off, e.g. {idx}: got {o[idx].item()}, torch "
                             f"(in precision) {w[idx].item()}, float64 reference {r[idx].item()}")
