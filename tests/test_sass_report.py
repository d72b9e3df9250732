"""scripts/sass_report.py: the SASS parser and control-flow analysis on hand-written listings,
the occupancy and bound arithmetic, the fail conditions on tiny kernels compiled with nvcc at
test time, and the report scripts/test.sh writes for the built extension.

The compiled cases skip only when nvcc is absent, and not in CI (CI=true or FASTALEX_CUDA=1)."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = os.path.join(ROOT, "build", "sass_report.json")
CUDA_REQUIRED = os.environ.get("FASTALEX_CUDA") == "1"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes") or CUDA_REQUIRED

_spec = importlib.util.spec_from_file_location("sass_report", os.path.join(ROOT, "scripts", "sass_report.py"))
sr = importlib.util.module_from_spec(_spec)
sys.modules["sass_report"] = sr  # dataclasses look their module up while the class is built
_spec.loader.exec_module(sr)


# ---------------------------------------------------------------- parser, no toolchain needed
LISTING = """
	code for sm_80
		Function : _ZN8fastalex4cuda15toy_mma_kernelEv
	.headerflags	@"EF_CUDA_SM80 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM80)"
        /*0000*/                   MOV R1, c[0x0][0x28] ;                  /* 0x0000 */
                                                                           /* 0x0000 */
        /*0010*/                   ISETP.GE.AND P0, PT, R0, 0x1, PT ;      /* 0x0000 */
        /*0020*/              @!P0 BRA 0x100 ;                             /* 0x0000 */
        /*0030*/                   MOV R2, RZ ;                            /* 0x0000 */
        /*0040*/                   LDSM.16.M88.4 R4, [R3] ;                /* 0x0000 */
        /*0050*/                   MOV R8, RZ ;                            /* 0x0000 */
        /*0060*/                   HMMA.16816.F32 R12, R4, R6, R12 ;       /* 0x0000 */
        /*0070*/                   HMMA.16816.F32.BF16 R16, R4, R6, R16 ;  /* 0x0000 */
        /*0080*/                   IADD3 R8, R8, 0x1, RZ ;                 /* 0x0000 */
        /*0090*/                   ISETP.NE.AND P1, PT, R8, 0x4, PT ;      /* 0x0000 */
        /*00a0*/               @P1 BRA 0x60 ;                              /* 0x0000 */
        /*00b0*/              @!PT LDS RZ, [RZ] ;                          /* 0x0000 */
        /*00c0*/                   LDGSTS.E.BYPASS.128 [R2], [R4.64] ;     /* 0x0000 */
        /*00d0*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;           /* 0x0000 */
        /*00e0*/                   ISETP.NE.AND P2, PT, R2, 0x8, PT ;      /* 0x0000 */
        /*00f0*/               @P2 BRA 0x40 ;                              /* 0x0000 */
        /*0100*/                   FFMA R0, R1, R2, R3 ;                   /* 0x0000 */
        /*0110*/                   EXIT ;                                  /* 0x0000 */
        /*0120*/                   BRA 0x120;                              /* 0x0000 */
		Function : _Z9ffma_loopPf
	.headerflags	@"EF_CUDA_SM80 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM80)"
        /*0000*/                   MOV R1, c[0x0][0x28] ;                  /* 0x0000 */
        /*0010*/                   FFMA R2, R3, R4, R2 ;                   /* 0x0000 */
        /*0020*/                   STL [R1], R2 ;                          /* 0x0000 */
        /*0030*/                   ISETP.NE.AND P0, PT, R2, RZ, PT ;       /* 0x0000 */
        /*0040*/               @P0 BRA 0x10 ;                              /* 0x0000 */
        /*0050*/                   LDL.LU R5, [R1] ;                       /* 0x0000 */
        /*0060*/                   EXIT ;                                  /* 0x0000 */
        /*0070*/                   BRA 0x70;                               /* 0x0000 */
"""


def _rows(listing=LISTING, launch=None):
    funcs = sr.parse_sass(listing)
    return {f.mangled: sr.analyse_function(f, f.mangled, dict(registers=96, static_smem=0, stack=0, local=0),
                                           launch or dict(dynamic_smem=32768, threads=128, assumed=False))
            for f in funcs}


def test_parse_listing():
    funcs = sr.parse_sass(LISTING)
    assert [(f.mangled, f.arch, len(f.instrs)) for f in funcs] == [
        ("_ZN8fastalex4cuda15toy_mma_kernelEv", "sm_80", 19), ("_Z9ffma_loopPf", "sm_80", 8)]
    ins = funcs[0].instrs[2]
    assert (ins.addr, ins.pred, ins.opcode, ins.operands) == (0x20, "!P0", "BRA", "0x100")
    assert funcs[0].instrs[11].never and funcs[0].instrs[11].base == "LDS"


def test_nested_loops_and_innermost_hmma_loop():
    funcs = sr.parse_sass(LISTING)
    _, loops = sr.find_loops(funcs[0].instrs)
    # Two natural loops: 0x40..0xf0 (outer, back edge at 0xf0) holding 0x60..0xa0 (inner);
    # the trailing BRA-to-itself after EXIT is unreachable and not a loop.
    assert sorted((lp.start, lp.end) for lp in loops) == [(0x40, 0xF0), (0x60, 0xA0)]
    row = _rows()["_ZN8fastalex4cuda15toy_mma_kernelEv"]
    ml = row["main_loop"]
    assert (ml["start"], ml["end"], ml["depth"], ml["key"]) == ("0x0060", "0x00a0", 1, "HMMA")
    assert ml["counts"]["HMMA"] == 2 and ml["counts"]["total"] == 5 and ml["counts"]["LDSM"] == 0
    assert row["tensor_core_kernel"] and sr.problems_of(row) == []


def test_ffma_main_loop_and_local_memory():
    row = _rows()["_Z9ffma_loopPf"]
    assert row["main_loop"]["key"] == "FFMA" and row["main_loop"]["counts"]["FFMA"] == 1
    assert row["local_memory"]["count"] == 2
    assert row["local_memory"]["opcodes"] == {"LDL.LU": 1, "STL": 1}
    (problem,) = sr.problems_of(row)
    assert "local memory" in problem and "[sm_80]" in problem


def test_marker_is_the_function_name():
    assert sr.function_name("void fastalex::cuda::conv2d_relu_mma_kernel<float, 128>(float const*, int)") \
        == "conv2d_relu_mma_kernel"
    # A template argument or a namespace that contains the marker does not make a kernel one.
    assert sr.TENSOR_CORE_MARKER not in sr.function_name("void my_mma::plain_kernel<tile_mma_cfg>(int)")
    assert sr.function_name("_Z9ffma_loopPf") == "_Z9ffma_loopPf"


def test_instruction_widths():
    ins = {i.opcode: i for i in sr.parse_sass(LISTING)[0].instrs}
    assert sr.smem_bytes(ins["LDSM.16.M88.4"]) == (512, 0)
    assert sr.smem_bytes(ins["LDGSTS.E.BYPASS.128"]) == (0, 512)
    assert sr.smem_bytes(ins["LDS"]) == (0, 0)  # the @!PT padding never executes
    assert sr.hmma_shape("HMMA.16816.F32.BF16") == (16, 8, 16, "bf16")
    assert sr.hmma_shape("HMMA.1688.F32.TF32") == (16, 8, 8, "tf32")
    assert sr.hmma_shape("HMMA.16816.F32") == (16, 8, 16, "f16")


def test_occupancy_like_the_occupancy_calculator():
    # 96 registers: 3072 per warp, 5 warps per SMSP -> 20 warps: 5 blocks of 4 warps... but
    # 32 KiB + 1 KiB per block fits 4 times into 164 KiB on sm_80: shared memory limits.
    occ = sr.occupancy("sm_80", registers=96, static_smem=0, dynamic_smem=32768, threads=128)
    assert occ["limits"]["registers"] == 5 and occ["limits"]["shared memory"] == 4
    assert (occ["blocks_per_sm"], occ["warps_per_sm"], occ["limiter"]) == (4, 16, "shared memory")
    # sm_90: 228 KiB; the cubin's SHARED (4096 here) already includes the 1 KiB reservation.
    occ = sr.occupancy("sm_90", registers=128, static_smem=4096, dynamic_smem=0, threads=256)
    assert occ["smem_per_block"] == 4096 and occ["limits"]["registers"] == 2
    assert occ["limiter"] == "registers" and occ["warps_per_sm"] == 16
    assert sr.occupancy("sm_80", 32, 0, 200 * 1024, 128)["blocks_per_sm"] == 0  # does not fit


def test_bound_arithmetic():
    row = _rows()["_ZN8fastalex4cuda15toy_mma_kernelEv"]
    b = row["bound"]
    # 2 HMMA.16816 per 5 issued instructions; sm_80: 2048 FMA / 256 per SMSP = 8 cycles each.
    assert b["hmma_per_iter"] == 2 and b["instr_per_iter"] == 5 and b["flops_per_iter_per_warp"] == 8192
    assert b["tensor_cycles_per_iter_per_smsp"] == 16
    assert b["terms"]["issue"] == 1.0 and b["terms"]["smem"] == 1.0 and b["terms"]["mma_sync"] == 1.0
    assert b["bound_fraction_of_tensor_peak"] == 1.0 and b["limiter"] == "none"
    # The same loop on sm_90 is capped by the mma.sync ceiling (4 cycles per HMMA, 5 issues).
    funcs = sr.parse_sass(LISTING.replace("sm_80", "sm_90"))
    row90 = sr.analyse_function(funcs[0], funcs[0].mangled, dict(registers=96, static_smem=0, stack=0, local=0),
                                dict(dynamic_smem=0, threads=128, assumed=False))
    assert row90["bound"]["tensor_cycles_per_iter_per_smsp"] == 8 and row90["bound"]["terms"]["issue"] == 1.0
    assert row90["bound"]["limiter"] == "mma_sync"
    assert row90["bound"]["bound_fraction_of_tensor_peak"] == sr.MMA_SYNC_CEILING["sm_90"]
    # One warp per SM (32 threads): three of four SMSPs idle.
    row1 = _rows(launch=dict(dynamic_smem=0, threads=32, assumed=False))["_ZN8fastalex4cuda15toy_mma_kernelEv"]
    assert row1["bound"]["terms"]["occupancy"] == 1.0  # 32 threads but many blocks per SM
    occ = sr.occupancy("sm_80", registers=255, static_smem=0, dynamic_smem=160 * 1024, threads=32)
    assert occ["warps_per_sm"] == 1


# ---------------------------------------------------------------- kernels compiled by nvcc
def _nvcc():
    path = shutil.which("nvcc")
    if path is None and os.environ.get("CUDA_HOME"):
        cand = os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
        path = cand if os.path.exists(cand) else None
    if path is None:
        if IN_CI:
            pytest.fail("nvcc not found, and CI (CI=true or FASTALEX_CUDA=1) must compile the SASS test kernels")
        pytest.skip("nvcc not found: the compiled SASS cases need it")
    if sr.find_tool("cuobjdump") is None:
        pytest.fail("nvcc exists but cuobjdump was found nowhere (PATH, CUDA_HOME/bin, triton's bin)")
    return path


GOOD = r"""
#include <cstdint>
// A cp.async -> ldmatrix -> mma.sync loop, the shape of the tensor-core conv's main loop.
__global__ void __launch_bounds__(128) tile_mma_kernel(const uint32_t* __restrict__ a, float* out, int iters) {
  __shared__ __align__(16) uint32_t s[2][128 * 4];
  float d[4] = {0.f, 0.f, 0.f, 0.f};
  const int t = threadIdx.x;
  for (int it = 0; it < iters; ++it) {
    uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(&s[it & 1][t * 4]));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(dst), "l"(a + (it * 128 + t) * 4) : "memory");
    asm volatile("cp.async.commit_group;\n" ::: "memory");
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
    __syncthreads();
    uint32_t r[4];
    uint32_t row = static_cast<uint32_t>(__cvta_generic_to_shared(&s[it & 1][(t % 32) * 8]));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(row));
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3]), "r"(r[0]), "r"(r[1]));
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i) out[t * 4 + i] = d[i];
}
"""

BAD = r"""
#include <cstdint>
// Named as a tensor-core kernel, but its loop runs on the FMA pipe.
__global__ void fake_mma_kernel(const float* __restrict__ a, float* out, int n) {
  float acc = 0.f;
  for (int i = 0; i < n; ++i) acc = fmaf(a[i * blockDim.x + threadIdx.x], acc, 1.5f);
  out[threadIdx.x] = acc;
}
// A tensor-core kernel without any loop.
__global__ void straight_mma_kernel(const uint32_t* a, float* out) {
  float d[4] = {0.f, 0.f, 0.f, 0.f};
  uint32_t r0 = a[threadIdx.x], r1 = a[threadIdx.x + 32];
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(r0), "r"(r1), "r"(r0), "r"(r1), "r"(r0), "r"(r1));
  for (int i = 0; i < 4; ++i) out[threadIdx.x * 4 + i] = d[i];
}
// A dynamically indexed local array, written in a loop of runtime length: local memory (STL/LDL).
__global__ void local_array_kernel(const int* __restrict__ idx, float* out, int n) {
  float v[64];
  for (int i = 0; i < 64; ++i) v[i] = out[i * 32 + threadIdx.x];
  for (int i = 0; i < n; ++i) v[idx[i] & 63] += 1.f;
  out[threadIdx.x] = v[idx[threadIdx.x] & 63];
}
"""


def _compile(tmp_path_factory, name, source, archs):
    nvcc = _nvcc()
    d = tmp_path_factory.mktemp("sass")
    src = d / f"{name}.cu"
    src.write_text(source)
    if len(archs) == 1:
        out, flags = d / f"{name}.cubin", ["-cubin", f"-arch={archs[0]}"]
    else:
        out = d / f"{name}.fatbin"
        flags = ["-fatbin"] + [f"-gencode=arch=compute_{a[3:]},code={a}" for a in archs]
    subprocess.run([nvcc, *flags, "-O3", "-o", str(out), str(src)], check=True, capture_output=True, text=True)
    return str(out)


@pytest.fixture(scope="module")
def good_bin(tmp_path_factory):
    return _compile(tmp_path_factory, "good", GOOD, ["sm_80", "sm_90"])


@pytest.fixture(scope="module")
def bad_bin(tmp_path_factory):
    return _compile(tmp_path_factory, "bad", BAD, ["sm_80"])


def _run(args, env=None):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "sass_report.py"), *args],
                          capture_output=True, text=True, env=env)
    return proc.returncode, proc.stderr


def test_mma_loop_found_and_bounded(good_bin, tmp_path):
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    rc, err = _run([good_bin, "--json", str(out), "--markdown", str(md)])
    assert rc == 0, err
    report = json.loads(out.read_text())
    assert report["archs"] == ["sm_80", "sm_90"] and not report["problems"]
    for row in report["kernels"]:
        assert row["function"] == "tile_mma_kernel" and row["tensor_core_kernel"]
        ml = row["main_loop"]
        assert ml["key"] == "HMMA" and ml["counts"]["HMMA"] >= 1
        assert ml["counts"]["LDSM"] >= 1 and ml["counts"]["LDGSTS"] >= 1 and ml["counts"]["BAR"] >= 1
        assert row["local_memory"]["count"] == 0
        assert row["launch"]["threads"] == 128 and row["launch"]["assumed"]  # from __launch_bounds__
        b = row["bound"]
        assert 0 < b["bound_fraction_of_tensor_peak"] <= sr.MMA_SYNC_CEILING[row["arch"]]
        assert (b["limiter"] in b["terms"] or b["limiter"] == "none") and b["smem_bytes_per_hmma"] > 0
    assert "Static bounds (from SASS, not measured)" in md.read_text()
    assert "tile_mma_kernel" in err and "BOUND" in err


def test_launch_configuration_is_used(good_bin, tmp_path):
    out = tmp_path / "r.json"
    rc, err = _run([good_bin, "--arch", "sm_80", "--launch", "tile_mma=65536,256", "--json", str(out)])
    assert rc == 0, err
    (row,) = json.loads(out.read_text())["kernels"]
    assert row["launch"]["dynamic_smem"] == 65536 and row["launch"]["threads"] == 256
    assert row["occupancy"]["blocks_per_sm"] == 2 and row["occupancy"]["limiter"] == "shared memory"
    # A configuration that cannot be resident is an error for a tensor-core kernel.
    rc, err = _run([good_bin, "--arch", "sm_80", "--launch", "tile_mma=200000,256"])
    assert rc == 1 and "cannot be resident" in err


def test_fail_conditions(bad_bin, tmp_path):
    out = tmp_path / "r.json"
    rc, err = _run([bad_bin, "--json", str(out)])
    assert rc == 1
    report = json.loads(out.read_text())
    rows = {r["function"]: r for r in report["kernels"]}
    fake, straight, local = rows["fake_mma_kernel"], rows["straight_mma_kernel"], rows["local_array_kernel"]
    assert fake["main_loop"]["key"] == "FFMA" and fake["main_loop"]["counts"]["HMMA"] == 0
    assert straight["main_loop"] is None
    assert local["local_memory"]["count"] >= 2 and not local["tensor_core_kernel"]
    assert set(local["local_memory"]["opcodes"]) & {"STL", "STL.64", "STL.128"}
    problems = report["problems"]
    assert len(problems) == 3, problems
    assert any("fake_mma_kernel [sm_80]" in p and "no HMMA in its main loop" in p for p in problems)
    assert any("straight_mma_kernel [sm_80]" in p and "no main loop" in p for p in problems)
    assert any("local_array_kernel [sm_80]" in p and "local memory" in p for p in problems)
    assert "PROBLEM: fake_mma_kernel [sm_80]" in err


def test_auto_mode_without_device_code(tmp_path):
    if sr.find_tool("cuobjdump") is None:
        pytest.skip("no cuobjdump")
    out = tmp_path / "r.json"
    out.write_text("{}")  # a stale report from an earlier CUDA build
    env = dict(os.environ)
    env.pop("FASTALEX_CUDA", None)
    rc, err = _run(["--auto", sys.executable, "--json", str(out)], env=env)
    assert rc == 0 and "skipped" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    env["FASTALEX_CUDA"] = "1"
    rc, err = _run(["--auto", sys.executable, "--json", str(out)], env=env)
    assert rc == 1 and "ERROR" in err and "no CUDA device code" in err


# ---------------------------------------------------------------- the built extension
def test_extension_report():
    """scripts/test.sh writes build/sass_report.json when fastalex._C holds CUDA kernels."""
    import fastalex

    if not os.path.exists(REPORT):
        if CUDA_REQUIRED:
            pytest.fail(f"{REPORT} missing: scripts/test.sh runs scripts/sass_report.py --auto")
        pytest.skip(f"no {REPORT} (a build without CUDA kernels, or not run through scripts/test.sh)")
    if not fastalex.built_with_cuda():
        pytest.skip("fastalex was built without CUDA kernels; the report is stale")
    with open(REPORT) as f:
        report = json.load(f)
    assert not report["problems"], report["problems"]
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    expected = {"sm_" + a.strip().replace(".", "").replace("+PTX", "") for a in archs.replace(" ", ";").split(";")
                if a.strip()}
    assert expected <= set(report["archs"]), (expected, report["archs"])
    functions = {r["function"] for r in report["kernels"]}
    assert "conv2d_relu_igemm_kernel" in functions, sorted(functions)
    for r in report["kernels"]:
        assert r["local_memory"]["count"] == 0, r["kernel"]
        if r["function"] == "conv2d_relu_igemm_kernel":  # the SIMT conv: an FFMA (DFMA) loop, no HMMA
            ml = r["main_loop"]
            assert ml is not None and ml["key"] in ("FFMA", "DFMA") and ml["key_count"] > 0, (r["kernel"], r["arch"])
            assert ml["counts"]["HMMA"] == 0 and ml["key"] == ("DFMA" if "double" in r["kernel"] else "FFMA")
        if r["tensor_core_kernel"]:
            assert r["main_loop"]["counts"]["HMMA"] > 0 and r["bound"] is not None, (r["kernel"], r["arch"])
