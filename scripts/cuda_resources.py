"""Table of every CUDA kernel's registers, shared memory, stack and spills, per architecture,
read from the ptxas report (nvcc --resource-usage) in a build log.

    python scripts/cuda_resources.py build/build.log [--json build/cuda_resources.json]

Exits 1 if any kernel spills or is missing for one of the architectures that were built.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys

ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'")
PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")


def parse(text: str) -> list[dict]:
    rows, cur = [], None
    for line in text.splitlines():
        m = ENTRY.search(line)
        if m:
            cur = {"mangled": m.group(1), "arch": m.group(2)}
            continue
        if cur is None:
            continue
        m = PROPS.search(line)
        if m:
            cur.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
            continue
        m = USED.search(line)
        if m:
            cur.update(registers=int(m.group(1)), barriers=int(m.group(2) or 0), smem=int(m.group(3) or 0))
            rows.append(cur)
            cur = None
    # The same kernel can be reported twice if a build compiled a file twice: keep the last.
    unique = {(r["mangled"], r["arch"]): r for r in rows}
    return list(unique.values())


NVCC = re.compile(r"nvcc .* -c (\S+\.cu) ")
GENCODE = re.compile(r"code=(sm_\d+a?)")


def compiled_sources(text: str) -> dict[str, list[str]]:
    """Each .cu file nvcc compiled, with the architectures it generated code for."""
    out = {}
    for line in text.splitlines():
        m = NVCC.search(line)
        if m:
            out[m.group(1)] = sorted(set(GENCODE.findall(line)))
    return out


def demangle(names: list[str]) -> dict[str, str]:
    if not names or shutil.which("c++filt") is None:
        return {n: n for n in names}
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def short(name: str) -> str:
    name = name.replace("fastalex::cuda::", "").replace("__nv_bfloat16", "bf16").replace("__half", "fp16")
    name = re.sub(r"\(.*\)$", "", name)  # drop the parameter list
    return name.replace("void ", "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    text = open(args.log, errors="replace").read()
    rows = parse(text)
    for src, src_archs in sorted(compiled_sources(text).items()):
        print(f"nvcc compiled {'csrc/' + src.split('/csrc/')[-1] if '/csrc/' in src else src} for {', '.join(src_archs)}")
    if not rows:
        print(f"no ptxas resource report in {args.log} (was the build compiled with --resource-usage?)")
        return 1
    names = demangle(sorted({r["mangled"] for r in rows}))
    for r in rows:
        r["kernel"] = short(names[r["mangled"]])
    archs = sorted({r["arch"] for r in rows})
    kernels = sorted({r["kernel"] for r in rows})
    width = max(len(k) for k in kernels)
    print(f"CUDA kernel resources (ptxas, per thread; smem is static shared memory per block)")
    print(f"{'kernel':<{width}}  {'arch':<6} {'regs':>4} {'smem B':>7} {'stack B':>7} {'spill st/ld B':>13}")
    by_key = {(r["kernel"], r["arch"]): r for r in rows}
    problems = []
    for k in kernels:
        for a in archs:
            r = by_key.get((k, a))
            if r is None:
                problems.append(f"{k} was not compiled for {a}")
                continue
            spills = f"{r['spill_stores']}/{r['spill_loads']}"
            print(f"{k:<{width}}  {a:<6} {r['registers']:>4} {r['smem']:>7} {r['stack']:>7} {spills:>13}")
            if r["spill_stores"] or r["spill_loads"]:
                problems.append(f"{k} spills on {a} ({spills} bytes)")
    total_spill = sum(r["spill_stores"] + r["spill_loads"] for r in rows)
    print(f"{len(kernels)} kernels x {len(archs)} archs ({', '.join(archs)}): {total_spill} bytes of spills")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"archs": archs, "rows": rows}, f, indent=1)
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
