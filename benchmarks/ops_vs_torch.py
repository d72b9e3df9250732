"""Time every fastalex op against its torch reference at the AlexNet and GoogLeNet layer
shapes, and print the max error of each against a float64 reference.

    python benchmarks/ops_vs_torch.py [--device cpu|cuda] [--batch N] [--quick] [--out DIR]

This is the interim main job; the full benchmark suite (roofline ceilings, torch.compile
provider, plots) comes with the benchmark issue. Ratios are measured in the same run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import fastalex
from fastalex import ops

# (name, input C, H, W, out C, kernel, stride, padding, groups) at the papers' sizes.
CONV = [
    ("alexnet.conv1", 3, 227, 227, 96, 11, 4, 0, 1),
    ("alexnet.conv2", 96, 27, 27, 256, 5, 1, 2, 2),
    ("alexnet.conv3", 256, 13, 13, 384, 3, 1, 1, 1),
    ("alexnet.conv4", 384, 13, 13, 384, 3, 1, 1, 2),
    ("alexnet.conv5", 384, 13, 13, 256, 3, 1, 1, 2),
    ("googlenet.conv1", 3, 224, 224, 64, 7, 2, 3, 1),
    ("googlenet.conv2_3x3", 64, 56, 56, 192, 3, 1, 1, 1),
    ("googlenet.3a_3x3", 96, 28, 28, 128, 3, 1, 1, 1),
    ("googlenet.3a_5x5", 16, 28, 28, 32, 5, 1, 2, 1),
    ("googlenet.4e_1x1", 528, 14, 14, 256, 1, 1, 0, 1),
]
# (name, C, H, W, size, alpha (torch convention), beta, k)
LRN = [
    ("alexnet.lrn1", 96, 55, 55, 5, 5e-4, 0.75, 2.0),
    ("alexnet.lrn2", 256, 27, 27, 5, 5e-4, 0.75, 2.0),
    ("googlenet.lrn1", 64, 56, 56, 5, 1e-4, 0.75, 1.0),
    ("googlenet.lrn2", 192, 56, 56, 5, 1e-4, 0.75, 1.0),
]
# (name, C, H, W, kernel, stride, padding, ceil_mode)
POOL = [
    ("alexnet.pool1", 96, 55, 55, 3, 2, 0, False),
    ("alexnet.pool2", 256, 27, 27, 3, 2, 0, False),
    ("alexnet.pool5", 256, 13, 13, 3, 2, 0, False),
    ("googlenet.pool1", 64, 112, 112, 3, 2, 0, True),
    ("googlenet.inception_pool", 480, 14, 14, 3, 1, 1, False),
]


def timeit(fn, device, reps, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cases(batch, device, dtype, quick):
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(device=device, dtype=dtype)

    conv = CONV[:2] + CONV[5:6] if quick else CONV
    for name, c, h, w, oc, k, s, p, grp in conv:
        x, wt, b = rnd(batch, c, h, w), rnd(oc, c // grp, k, k, scale=(c // grp * k * k) ** -0.5), rnd(oc, scale=0.1)
        yield (name + " conv+relu", tuple(x.shape),
               lambda x=x, wt=wt, b=b, s=s, p=p, grp=grp: ops.conv2d_relu(x, wt, b, s, p, grp),
               lambda x=x, wt=wt, b=b, s=s, p=p, grp=grp: F.relu(F.conv2d(x, wt, b, s, p, 1, grp)),
               lambda x=x, wt=wt, b=b, s=s, p=p, grp=grp: F.relu(F.conv2d(x.double(), wt.double(), b.double(), s, p, 1, grp)))
    for name, c, h, w, n, a, be, k in (LRN[:1] if quick else LRN):
        x = rnd(batch, c, h, w, scale=3.0)
        yield (name + " lrn", tuple(x.shape),
               lambda x=x, n=n, a=a, be=be, k=k: ops.local_response_norm(x, n, a, be, k),
               lambda x=x, n=n, a=a, be=be, k=k: F.local_response_norm(x, n, a, be, k),
               lambda x=x, n=n, a=a, be=be, k=k: F.local_response_norm(x.double(), n, a, be, k))
    for name, c, h, w, k, s, p, ceil in (POOL[:1] if quick else POOL):
        x = rnd(batch, c, h, w)
        yield (name + " maxpool", tuple(x.shape),
               lambda x=x, k=k, s=s, p=p, ceil=ceil: ops.max_pool2d(x, k, s, p, ceil),
               lambda x=x, k=k, s=s, p=p, ceil=ceil: F.max_pool2d(x, k, s, p, 1, ceil),
               lambda x=x, k=k, s=s, p=p, ceil=ceil: F.max_pool2d(x.double(), k, s, p, 1, ceil))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="default: 4 on CPU, 128 on CUDA (1 with --quick)")
    ap.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="a few cases, batch 1: proves the script runs")
    ap.add_argument("--out", default=None, help="write a JSON results file into this folder")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    batch = args.batch or (1 if args.quick else (4 if args.device == "cpu" else 128))
    reps = args.reps or (3 if args.quick else (10 if args.device == "cpu" else 50))
    dtype = getattr(torch, args.dtype)
    machine = torch.cuda.get_device_name() if args.device == "cuda" else (platform.processor() or platform.machine())
    print(f"fastalex {fastalex.__version__} | torch {torch.__version__} | device {args.device} ({machine}) | "
          f"threads {torch.get_num_threads()} | batch {batch} | {args.dtype} | median of {reps}")
    print(f"{'case':<34} {'input':<20} {'fastalex ms':>11} {'torch ms':>9} {'speed-up':>8} {'max err':>9}")
    rows = []
    for name, shape, ours, theirs, ref64 in cases(batch, args.device, dtype, args.quick):
        err = (ours().double() - ref64()).abs().max().item()
        t_ours, t_torch = timeit(ours, args.device, reps), timeit(theirs, args.device, reps)
        rows.append(dict(case=name, input=list(shape), fastalex_s=t_ours, torch_s=t_torch, max_abs_err=err))
        print(f"{name:<34} {'x'.join(map(str, shape)):<20} {t_ours * 1e3:>11.3f} {t_torch * 1e3:>9.3f} "
              f"{t_torch / t_ours:>7.2f}x {err:>9.2e}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = os.path.join(args.out, f"ops_vs_torch-{args.device}-{stamp}.json")
        meta = dict(date=stamp, device=args.device, machine=machine, threads=torch.get_num_threads(),
                    torch=torch.__version__, cuda=torch.version.cuda, fastalex=fastalex.__version__,
                    batch=batch, dtype=args.dtype, reps=reps)
        with open(path, "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1)
        print("wrote", path)


if __name__ == "__main__":
    main()
