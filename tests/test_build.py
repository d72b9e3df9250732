"""What the build produced: the CUDA kernels registered with the dispatcher, and every kernel
compiled for every architecture without spills (from the ptxas report of scripts/setup_env.sh)."""
import json
import os

import pytest
import torch

import fastalex

OPS = ["conv2d_relu", "local_response_norm", "max_pool2d"]
CUDA_OPS = OPS + ["lrn_max_pool2d", "max_pool2d_lrn"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESOURCES = os.path.join(ROOT, "build", "cuda_resources.json")
TRITON_RESOURCES = os.path.join(ROOT, "build", "triton_resources.json")
CUDA_REQUIRED = os.environ.get("FASTALEX_CUDA") == "1"  # CI forces the CUDA build

needs_cuda_build = pytest.mark.skipif(
    not fastalex.built_with_cuda() and not CUDA_REQUIRED,
    reason="fastalex was built without CUDA kernels (no nvcc or a CPU-only torch)",
)


def test_cpu_kernels_registered():
    for op in OPS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fastalex::{op}", "CPU"), op


def test_linear_kernels_registered():
    # The CPU kernel, and the vendor-GEMM composite that serves every other device (CUDA too).
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fastalex::linear", "CPU")
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fastalex::linear", "CompositeExplicitAutograd")


def test_cuda_build_when_required():
    if CUDA_REQUIRED:
        assert fastalex.built_with_cuda(), "FASTALEX_CUDA=1 but the CUDA kernels are not in fastalex._C"


@needs_cuda_build
def test_cuda_kernels_registered():
    for op in CUDA_OPS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fastalex::{op}", "CUDA"), op


def load_report(path, how):
    """A resource report written by the set-up scripts: required in CI, else skipped if absent."""
    if not os.path.exists(path):
        if CUDA_REQUIRED:
            pytest.fail(f"{path} missing: {how}")
        pytest.skip(f"no report at {path} ({how})")
    with open(path) as f:
        return json.load(f)


@needs_cuda_build
def test_every_kernel_compiled_for_every_arch_without_spills():
    report = load_report(RESOURCES, "build with scripts/setup_env.sh to record ptxas' report")
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    expected = {"sm_" + a.strip().replace(".", "").replace("+PTX", "") for a in archs.replace(" ", ";").split(";") if a.strip()}
    assert expected <= set(report["archs"]), (expected, report["archs"])
    kernels = {r["kernel"] for r in report["rows"]}
    for family in ("conv2d_relu_igemm_kernel", "local_response_norm_kernel", "max_pool2d_channels_last_kernel", "max_pool2d_nchw_kernel",
                   "max_pool2d_strided_kernel",
                   "lrn_max_pool2d_kernel", "max_pool2d_lrn_kernel"):
        assert any(k.startswith(family) for k in kernels), family
    for r in report["rows"]:
        assert r["spill_stores"] == 0 and r["spill_loads"] == 0, r
    for k in kernels:
        assert {r["arch"] for r in report["rows"] if r["kernel"] == k} >= expected, k


def test_triton_configurations_compile_for_sm90_without_spills():
    """scripts/test.sh compiles every shipped Triton configuration for sm_90 first."""
    from fastalex.triton import _configs

    report = load_report(TRITON_RESOURCES, "run scripts/test.sh, which runs scripts/triton_resources.py")
    assert report["arch"] == "90a"
    assert not report["problems"], report["problems"]
    # conv_kxk is compiled for 3x3 and 5x5, conv2d_relu in its four paths (K per tap or per
    # column, 32- or 64-bit offsets); each dtype/precision in every configuration it is tuned
    # over (float32 and float32+TF32 over FLOAT32_CONFIGS' list where the kernel has one).
    variants = {"inception_1x1": 1, "conv_kxk": 2, "pool_proj": 1, "conv2d_relu": 4}
    expected = sum(n * len(_configs.configs_for(name, dtype.startswith("float32")))
                   for name, n in variants.items() for dtype in ("float32", "float32+tf32", "float16", "bfloat16"))
    assert len(report["rows"]) == expected, (len(report["rows"]), expected)
    for r in report["rows"]:
        name = r["kernel"].split("[")[0]
        assert (r["BLOCK_M"], r["BLOCK_N"], r["BLOCK_K"], r["num_warps"], r["num_stages"]) in \
            _configs.configs_for(name, r["dtype"].startswith("float32")), r
    for r in report["rows"]:
        assert r["spill_stores"] == 0 and r["spill_loads"] == 0, r
        assert r["shared"] <= 227 * 1024, r


def test_triton_autotuning_runs_float32_inputs_over_their_own_list():
    """Where FLOAT32_CONFIGS has a kernel's float32 list, the autotuner's pruning keeps exactly it
    for float32 inputs and the shared list for the others (the AOT report compiles the same)."""
    import torch
    from fastalex.triton import _configs

    for name in _configs.GPU_CONFIGS:
        configs = _configs.autotune_configs(name)
        keys = [_configs._key(c) for c in configs]
        assert len(keys) == len(set(keys))
        assert set(keys) == set(_configs.configs_for(name, True)) | set(_configs.configs_for(name, False))
        prune = _configs.prune_by_dtype(name)
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            kept = [_configs._key(c) for c in prune(configs, {"x_ptr": torch.empty(1, dtype=dtype)})]
            assert sorted(kept) == sorted(_configs.configs_for(name, dtype == torch.float32)), (name, dtype)
    assert sorted(_configs.configs_for("conv_kxk", True)) != sorted(_configs.configs_for("conv_kxk", False))
    if not _configs.interpreting():  # the launchers as a GPU builds them (bare kernels under the interpreter)
        from fastalex.triton import conv2d_relu, conv_kxk, inception_1x1, pool_proj
        assert conv_kxk.launcher.early_config_prune is not None
        assert conv2d_relu.launcher.early_config_prune is not None
        assert inception_1x1.launcher.early_config_prune is None
        # IEEE and TF32 products tune separately (a TF32 setting changed between calls does not
        # reuse the other precision's choice).
        for launcher in (conv_kxk.launcher, conv2d_relu.launcher, inception_1x1.launcher, pool_proj.launcher):
            assert "PRECISION" in launcher.keys
