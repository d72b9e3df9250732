"""Where an eager forward spends its host (CPU) time: the Python functions and the torch ops it
calls, per forward, at a small batch where the GPU work is shorter than the host work.

On the H200 (third GPU run) paper GoogLeNet at batch 1 took 3.9 ms eager against 1.0 ms replayed
from a CUDA graph, which launches the same kernels without the host: the eager forward is bound
by its host work there, not by the kernels. This script says where that host time goes, so the
next GPU session measures it instead of guessing:

    python benchmarks/host_profile.py --device cuda --dtype float16 [--out FILE]

It times the eager forward (median wall time, synchronised) and its host time alone (the
Python call of one forward started on an idle GPU, not waiting for its kernels: few enough
launches that the queue never fills, so this is what the host spends issuing them), then runs
the same forward under cProfile (the Python functions by their own time, with call counts) and
lists the torch ops of one forward from torch.profiler (CPU time per op; on CUDA also the kernel
launches, `cudaLaunchKernel` and friends, with their counts). Each network's section is printed
and appended to --out as soon as it is done, so a time limit keeps what finished. On the CPU it
runs the same (the CPU path's own host overhead at batch 1), which the tests use to keep the
script working.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastalex import models  # noqa: E402

NETWORKS = {
    "googlenet": (lambda: models.googlenet("paper", aux_logits=False), 224),
    "googlenet_tv": (lambda: models.googlenet("torchvision", aux_logits=False), 224),
    "alexnet": (lambda: models.alexnet(), 227),
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile(name, device, dtype, batch, reps, top):
    build, size = NETWORKS[name]
    net = build().eval().to(device, dtype)
    x = torch.randn(batch, 3, size, size, device=device, dtype=dtype)
    lines = [f"## {name}, batch {batch}, {dtype}, {device}"]
    with torch.no_grad():
        for _ in range(5):  # warm-up: Triton compiles and autotunes, timed conv choices settle
            net(x)
        _sync(device)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            net(x)
            _sync(device)
            times.append(time.perf_counter() - t)
        # Host time alone: one forward's Python call, started with the GPU idle and not waiting
        # for its kernels (on the CPU this is the forward itself).
        host = []
        for _ in range(reps):
            _sync(device)
            t = time.perf_counter()
            net(x)
            host.append(time.perf_counter() - t)
        _sync(device)
        lines.append(f"forward: median {statistics.median(times) * 1e3:.3f} ms (synchronised), "
                     f"host time {statistics.median(host) * 1e3:.3f} ms (median of {reps}: the call alone, "
                     "not waiting for the GPU)")
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(reps):
            net(x)
        prof.disable()
        _sync(device)
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("tottime").print_stats(top)
        lines.append(f"cProfile over {reps} forwards (divide by {reps} for one), by own time:")
        lines.append("\n".join(line for line in out.getvalue().splitlines() if line.strip())[-8000:])
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as p:
            net(x)
            _sync(device)
        lines.append("torch.profiler, one forward, ops by CPU time:")
        lines.append(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                    help="default: float16 on CUDA, float32 on the CPU")
    ap.add_argument("--networks", default="googlenet,googlenet_tv,alexnet", help="comma list of " + ", ".join(NETWORKS))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--top", type=int, default=25, help="rows per table")
    ap.add_argument("--out", help="also write the report here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("float16" if device.type == "cuda" else "float32")]
    names = [n for n in args.networks.split(",") if n]
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        ap.error(f"--networks: unknown {unknown}; choose from {sorted(NETWORKS)}")
    header = (f"# host profile: torch {torch.__version__}"
              + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ", CPU")
              + f", {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    sections = [header] + [None] * len(names)
    for i, name in enumerate([None] + names):
        if name is not None:
            sections[i] = profile(name, device, dtype, args.batch, args.reps, args.top)
        print(sections[i] + "\n", flush=True)
        if args.out:
            with open(args.out, "w" if i == 0 else "a") as f:
                f.write(sections[i] + "\n\n")


if __name__ == "__main__":
    main()
