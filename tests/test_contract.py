"""The op contract (tests/contract.py) over every op's spec: each ``tests/test_*.py`` module that
declares ``SPEC`` is an op, and every check below runs for it on every backend it has."""
import dataclasses
import glob
import importlib
import os

import pytest
import torch

import contract as ct

HERE = os.path.dirname(os.path.abspath(__file__))


def discover():
    specs = []
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if name == "test_contract":
            continue
        with open(path) as f:
            if "\nSPEC = " not in f.read():
                continue
        specs.append(importlib.import_module(name).SPEC)
    return specs


SPECS = discover()
gpu = [pytest.mark.gpu, pytest.mark.skipif(not ct.HAS_CUDA, reason="no CUDA device")]
needs_triton = pytest.mark.skipif(not (ct.HAS_CUDA or ct.INTERPRET), reason="Triton needs a GPU or TRITON_INTERPRET=1")


def matrix():
    for spec in SPECS:
        for backend in spec.backends():
            marks = gpu if backend == "cuda" else [needs_triton] if backend == "triton" else []
            for dtype in ct.BACKEND_DTYPES[backend]:
                if backend == "cuda" and spec.emu is None and not spec.has_cpu:
                    continue
                yield pytest.param(spec, backend, dtype, marks=marks, id=f"{spec.name}-{backend}-{str(dtype)[6:]}")


MATRIX = list(matrix())


def on(backend, args):
    dev = ct.device_of(backend)
    return ct.map_tensors(args, lambda t: t.to(dev))


def formats_of(sample):
    four_d = isinstance(sample.args[0], torch.Tensor) and sample.args[0].dim() == 4
    return ct.FORMATS if (sample.formats and four_d) else ("nchw",)


@pytest.mark.parametrize("spec, backend, dtype", MATRIX)
def test_matches_reference(spec, backend, dtype):
    fn = ct.runner(spec, backend)
    for sample in spec.samples(dtype):
        ref = ct.reference_in(spec.reference, spec.reference_sample(sample, backend, dtype), ct.F64)
        for fmt in formats_of(sample):
            out = fn(*ct.with_format(on(backend, sample.args), fmt), **on(backend, sample.kwargs))
            what = f"{spec.name} [{backend}, {dtype}, {sample.label}, {fmt}]"
            assert out.dtype == dtype, f"{what}: output dtype {out.dtype}"
            ct.assert_matches_reference(out.cpu(), ref, spec.tol(dtype), what)
            if out.dim() == 4 and fmt != "strided":
                want = torch.channels_last if fmt == "nhwc" else torch.contiguous_format
                assert out.is_contiguous(memory_format=want), f"{what}: output not in the input's memory format"


@pytest.mark.parametrize("spec, backend, dtype", MATRIX)
def test_nonfinite_values_as_torch(spec, backend, dtype):
    fn = ct.runner(spec, backend)
    for sample in spec.nonfinite(dtype):
        for fmt in formats_of(sample)[:2]:
            args = ct.with_format(on(backend, sample.args), fmt)
            out = fn(*args, **on(backend, sample.kwargs))
            seen = spec.reference_sample(sample, backend, dtype)
            what = f"{spec.name} [{backend}, {dtype}, {sample.label}, {fmt}]"
            if backend in spec.cudnn_backends:
                # A composite that is torch's own composition on this device answers to torch on
                # this device, in the sample's dtype (on an H200 torch's CUDA batch_norm gave inf
                # where its CPU kernel gives a finite value or NaN, and half types stay half there).
                # Equal by construction today: the row guards that composition (a BatchNorm folded
                # into the weights, a lost TF32 setting or memory format would fail it).
                want = ct.runner(dataclasses.replace(spec, public=spec.reference), backend)(
                    *args, **on(backend, sample.kwargs)).cpu()
                ct.assert_nonfinite_pattern(out.cpu(), want, ct.reference_in(spec.reference, seen, ct.F64),
                                            spec.tol(dtype), what)
            else:
                ct.assert_like_torch(out.cpu(), spec.reference, seen.args, seen.kwargs, spec.tol(dtype), what)


def bad_matrix():
    for spec in SPECS:
        for bad in spec.bad_inputs:
            fns = []
            if spec.has_cpu:
                fns.append(("cpu", spec.public if bad.api == "public" else spec.overload, "cpu", []))
            if spec.emu is not None:
                fns.append(("emu", spec.emu if bad.api == "public" else spec.emu_overload, "cpu", []))
            fns.append(("cuda", spec.public if bad.api == "public" else spec.overload, "cuda", gpu))
            for backend, fn, device, marks in fns:
                yield pytest.param(bad, fn, device, marks=marks, id=f"{spec.name}-{backend}-{bad.api}-{bad.label}")


@pytest.mark.parametrize("bad, fn, device", list(bad_matrix()))
def test_bad_input_is_a_clear_error(bad, fn, device):
    with pytest.raises(bad.exc, match=bad.pattern):
        bad.call(fn, device)


OPCHECKED = [pytest.param(s, id=s.name) for s in SPECS if s.overload is not None]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=gpu)])
@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("spec", OPCHECKED)
def test_opcheck(spec, requires_grad, device):
    if device == "cpu" and not (spec.has_cpu or spec.emu is not None or ct.INTERPRET):
        pytest.skip("a Triton-only op takes CPU tensors only under TRITON_INTERPRET=1")
    for sample in spec.samples(ct.F32)[:3]:
        args = ct.map_tensors(spec.schema_args(*sample.args, **sample.kwargs),
                              lambda t: t.to(device).requires_grad_(requires_grad))
        torch.library.opcheck(spec.overload, args)


@pytest.mark.parametrize("spec", [pytest.param(s, id=s.name) for s in SPECS if s.grad_samples()])
def test_gradcheck_float64(spec):
    for sample in spec.grad_samples():
        args = list(sample.args)
        for i in spec.grad_argnums:
            if isinstance(args[i], torch.Tensor):
                args[i] = args[i].double().requires_grad_(True)
        tensors = [args[i] for i in spec.grad_argnums if isinstance(args[i], torch.Tensor)]

        def f(*ts):
            full = list(args)
            it = iter(ts)
            for i in spec.grad_argnums:
                if isinstance(full[i], torch.Tensor):
                    full[i] = next(it)
            return spec.public(*full, **sample.kwargs)

        assert torch.autograd.gradcheck(f, tuple(tensors)), f"{spec.name} [{sample.label}]"


@pytest.mark.slow
@pytest.mark.parametrize("spec", [pytest.param(s, id=s.name) for s in SPECS if s.has_cpu])
def test_torch_compile_matches_reference(spec):
    torch._dynamo.reset()
    compiled = torch.compile(spec.public, fullgraph=True)
    for sample in spec.samples(ct.F32)[:2]:
        ref = ct.reference_in(spec.reference, sample, ct.F64)
        with torch.no_grad():
            out = compiled(*sample.args, **sample.kwargs)
        ct.assert_matches_reference(out, ref, spec.tol(ct.F32), f"{spec.name} compiled [{sample.label}]")


def test_every_op_has_a_spec():
    # Every op of the library is covered by a spec, and every op with a CUDA kernel (the ops of
    # the emulator's library) by a spec with an emulated twin.
    import fastalex  # noqa: F401
    import fastalex.emu  # noqa: F401

    names = torch._C._dispatch_get_all_op_names()
    ops = {n.split("::")[1] for n in names if n.startswith("fastalex::")}
    # (the emulator's own settings and introspection are no kernels)
    emu_meta = {"configure", "launched_kernels", "launch_count", "lrn_pool_tiling"}
    emulated = {n.split("::")[1] for n in names if n.startswith("fastalex_emu::")} - emu_meta
    # (the build, fast-path, Winograd and buffer-pool introspection and the benchmark's FMA-peak
    # probe are no kernels)
    meta = {"built_with_cuda", "set_cpu_fastpath", "cpu_fastpath_enabled", "cpu_fma_peak", "cpu_winograd_calls",
            "cpu_pool_bytes", "cpu_pool_release", "cpu_pool_empty", "inception_triton"}
    specced = {s.overload._schema.name.split("::")[1] for s in SPECS if s.overload is not None}
    specced_emu = {s.emu_overload._schema.name.split("::")[1] for s in SPECS if s.emu_overload is not None}
    assert "conv2d_relu" in ops and ops - meta <= specced, f"ops without a spec: {sorted(ops - meta - specced)}"
    assert emulated and emulated <= specced_emu, f"emulated ops without a spec: {sorted(emulated - specced_emu)}"
