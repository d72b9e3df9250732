"""Compile every shipped Triton kernel configuration ahead of time for a GPU architecture
(no GPU needed) and report registers, spills and shared memory per kernel and configuration.

    python scripts/triton_resources.py [--arch 90] [--json build/triton_resources.json]

Registers and spills come from ptxas (-v) run on Triton's PTX; shared memory is Triton's own
figure (what the launch asks for). Exits 1 if any configuration spills or fails to compile.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.pop("TRITON_INTERPRET", None)  # compile for real, whatever the caller's setting

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from fastalex.triton import _configs  # noqa: E402
from fastalex.triton.conv2d_relu import conv2d_relu_kernel  # noqa: E402
from fastalex.triton.conv_kxk import conv_kxk_kernel  # noqa: E402
from fastalex.triton.inception_1x1 import inception_1x1_kernel  # noqa: E402
from fastalex.triton.pool_proj import pool_proj_kernel  # noqa: E402

# (label, pointer type, tl.dot input precision): every dtype/precision the op can run in.
DTYPES = [("float32", "fp32", "ieee"), ("float32+tf32", "fp32", "tf32"), ("float16", "fp16", "ieee"),
          ("bfloat16", "bf16", "ieee")]


def signature(fn, ptr_type, constexprs):
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = ptr_type
        else:
            sig[name] = "i32"
    return sig


def variants():
    """(label, config list name, kernel, extra constexprs) for every kernel the Inception op and
    fastalex.triton.conv2d_relu launch; the general conv in each of its four code paths (K
    walked per tap or per column, 32- or 64-bit offsets), with a bias."""
    conv = [(f"conv2d_relu[{walk}{',i64' if idx64 else ''}]", "conv2d_relu", conv2d_relu_kernel,
             {"HAS_BIAS": True, "ALIGNED": walk == "tap", "IDX64": idx64})
            for idx64 in (False, True) for walk in ("col", "tap")]
    return [
        ("inception_1x1", "inception_1x1", inception_1x1_kernel, {}),
        ("conv_kxk[3x3]", "conv_kxk", conv_kxk_kernel, {"KS": 3}),
        ("conv_kxk[5x5]", "conv_kxk", conv_kxk_kernel, {"KS": 5}),
        ("pool_proj", "pool_proj", pool_proj_kernel, {}),
    ] + conv


def compile_one(job):
    """Compiles one (kernel, dtype, configuration); returns its report row (or an error)."""
    label, cfg_name, dtype, ptr, precision, (bm, bn, bk, warps, stages), arch = job
    fn, extra = {v[0]: (v[2], v[3]) for v in variants()}[label]
    cap = int(arch.rstrip("a"))
    constexprs = dict(extra, PRECISION=precision, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
    row = dict(kernel=label, dtype=dtype, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps, num_stages=stages)
    try:
        src = triton.compiler.ASTSource(fn=fn, signature=signature(fn, "*" + ptr, constexprs), constexprs=constexprs)
        ck = triton.compile(src, target=GPUTarget("cuda", cap, 32), options={"num_warps": warps, "num_stages": stages})
        row.update(ptxas_usage(ck.asm["ptx"], arch), shared=int(ck.metadata.shared))
    except Exception as e:  # a configuration that does not compile is a defect too
        row["error"] = (str(e).splitlines() or [type(e).__name__])[0]
    return row


def ptxas_usage(ptx: str, arch: str) -> dict:
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        out = subprocess.run([ptxas, f"-arch=sm_{arch}", "-v", src, "-o", os.path.join(d, "k.cubin")],
                             capture_output=True, text=True)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise RuntimeError(text)
    regs = re.search(r"Used (\d+) registers", text)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    stack = re.search(r"(\d+) bytes stack frame", text)
    return dict(registers=int(regs.group(1)), spill_stores=int(spill.group(1)), spill_loads=int(spill.group(2)),
                stack=int(stack.group(1)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="90", help="compute capability, e.g. 90 (H100) or 80 (A100)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compiles")
    args = ap.parse_args()
    cap = int(args.arch)
    arch = f"{cap}a" if cap >= 90 else str(cap)
    jobs = [(label, cfg_name, dtype, ptr, precision, cfg, arch)
            for label, cfg_name, _, _ in variants()
            for dtype, ptr, precision in DTYPES
            for cfg in _configs.configs_for(cfg_name, ptr == "fp32")]
    t0 = time.time()
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(compile_one, jobs))
    print(f"Triton {triton.__version__} kernels compiled ahead of time for sm_{arch} (no GPU), per shipped configuration")
    print(f"{'kernel':<23} {'dtype':<13} {'BM':>4} {'BN':>4} {'BK':>3} {'warps':>5} {'stages':>6} {'regs':>5} {'smem B':>7} {'spill st/ld B':>13}")
    rows, problems = [], []
    for row in results:
        cfg = f"BM={row['BLOCK_M']} BN={row['BLOCK_N']} BK={row['BLOCK_K']} warps={row['num_warps']} stages={row['num_stages']}"
        if "error" in row:
            problems.append(f"{row['kernel']} {row['dtype']} {cfg} does not compile: {row['error']}")
            continue
        rows.append(row)
        spills = f"{row['spill_stores']}/{row['spill_loads']}"
        print(f"{row['kernel']:<23} {row['dtype']:<13} {row['BLOCK_M']:>4} {row['BLOCK_N']:>4} {row['BLOCK_K']:>3} "
              f"{row['num_warps']:>5} {row['num_stages']:>6} {row['registers']:>5} {row['shared']:>7} {spills:>13}")
        if row["spill_stores"] or row["spill_loads"]:
            problems.append(f"{row['kernel']} {row['dtype']} {cfg} spills {spills} bytes")
        if row["shared"] > 227 * 1024:
            problems.append(f"{row['kernel']} {row['dtype']} {cfg} needs {row['shared']} bytes of shared memory (> 227 KiB)")
    total = sum(r["spill_stores"] + r["spill_loads"] for r in rows)
    print(f"{len(rows)} kernel configurations for sm_{arch} in {time.time() - t0:.0f} s: {total} bytes of spills")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(dict(arch=arch, triton=triton.__version__, rows=rows, problems=problems), f, indent=1)
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
