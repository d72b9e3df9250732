"""fastalex benchmarks: every op at every AlexNet/GoogLeNet layer shape, every Inception
module and both networks' forward, fastalex vs torch eager vs torch.compile, with errors
against a float64 reference, roofline fractions against ceilings measured in the same run,
the kernels' static resources and the tensor-core kernels' static bounds (from their SASS).

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--batch N] [--out DIR]
                             [--dtypes float32,float16,...] [--max-autotune] [--no-compile]
                             [--cases SUBSTRING] [--threads N]

Writes <out>/<device>-<date>.{json,csv,png,md} and copies them to <out>/latest-<device>.*
(the .md holds the "Static bounds (from SASS, not measured)" section).
No timing is asserted anywhere: the numbers are for people to read.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import fastalex  # noqa: E402
from benchmarks import cases as case_defs  # noqa: E402
from benchmarks import report, roofline  # noqa: E402
from benchmarks.timing import time_fn  # noqa: E402

# Largest error a provider may show against the float64 reference, relative to the
# reference's largest magnitude, per dtype (TF32 and half types round their products).
TOLERANCE = {"float32": 1e-4, "float32+tf32": 5e-3, "float16": 1e-2, "bfloat16": 6e-2}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_meta(args, batch):
    meta = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        device=args.device, batch=batch, threads=torch.get_num_threads(), quick=args.quick,
        fastalex=fastalex.__version__, torch=torch.__version__, cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        python=platform.python_version(), platform=platform.platform(), cpu=cpu_name(),
        fastalex_cuda_kernels=fastalex.built_with_cuda(),
    )
    try:
        import triton

        meta["triton"] = triton.__version__
    except ImportError:
        meta["triton"] = None
    if args.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        meta.update(device_name=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    sm_count=props.multi_processor_count)
        try:
            import subprocess

            meta["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True).stdout.strip()
        except OSError:
            meta["driver"] = None
    else:
        meta.update(device_name=meta["cpu"], driver=None)
    return meta


def rel_err(out, ref):
    out = out.double()
    scale = ref.abs().max().item() or 1.0
    if out.shape != ref.shape:
        return float("inf")
    return (out - ref).abs().max().item() / scale


def run_case(case, dtype_label, device, args, tol):
    ref = case.reference64()
    row = dict(case=case.name, kind=case.kind, dtype=dtype_label, input=list(case.shape), flops=case.flops,
               min_bytes=case.bytes, providers={})
    fns = {"fastalex": case.fastalex, "torch": case.torch}
    if not args.no_compile:
        mode = "max-autotune" if args.max_autotune and device == "cuda" else "default"
        try:
            compiled = torch.compile(case.compile_target, mode=mode)
            fns["torch_compile"] = lambda: compiled(*case.compile_args)
        except Exception as e:  # noqa: BLE001
            row["compile_error"] = str(e).splitlines()[0]
    for name in report.PROVIDERS:
        fn = fns.get(name)
        entry = dict(time_s=None, q20_s=None, q80_s=None, rel_err=None)
        if fn is not None:
            try:
                with torch.no_grad():
                    entry["rel_err"] = rel_err(fn(), ref)
                entry["time_s"], entry["q20_s"], entry["q80_s"] = time_fn(fn, device, args.quick)
            except Exception as e:  # noqa: BLE001  (a provider that fails is reported, not fatal)
                entry["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
        row["providers"][name] = entry
    f = row["providers"]["fastalex"]
    row["ok"] = f["rel_err"] is not None and f["rel_err"] <= tol
    t = f["time_s"]

    def ratio(other):
        o = row["providers"][other]["time_s"]
        return None if (not row["ok"] or t is None or o is None) else o / t

    row["speedup_vs_torch"] = ratio("torch")
    row["speedup_vs_compile"] = ratio("torch_compile")
    # fastalex's time over the time of copying the case's input (memory-bound cases).
    row["copy_time_s"] = row["time_over_copy"] = None
    if case.copy_input is not None:
        dst = torch.empty_like(case.copy_input)
        row["copy_time_s"] = time_fn(lambda: dst.copy_(case.copy_input), device, args.quick)[0]
        if t is not None:
            row["time_over_copy"] = t / row["copy_time_s"]
    return row


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="default 128 on CUDA, 16 on CPU (2 with --quick)")
    ap.add_argument("--dtypes", default=None,
                    help="comma list of float32, float32+tf32, float16, bfloat16 (default: all four on CUDA, float32 on CPU)")
    ap.add_argument("--quick", action="store_true", help="a few cases at a small batch: proves the script works")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile provider")
    ap.add_argument("--max-autotune", action="store_true", help="torch.compile(mode='max-autotune') on CUDA")
    ap.add_argument("--cases", default=None, help="only cases whose name contains this")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch or (2 if args.quick else (128 if args.device == "cuda" else 16))
    labels = (args.dtypes.split(",") if args.dtypes else
              (["float32", "float32+tf32", "float16", "bfloat16"] if args.device == "cuda" else ["float32"]))
    for label in labels:
        if label not in TOLERANCE:
            raise SystemExit(f"--dtypes: unknown dtype {label!r} (expected one of {', '.join(TOLERANCE)})")
        if args.device == "cpu" and label != "float32":
            raise SystemExit("--dtypes: the CPU kernels run float32 (and float64) only")
    meta = machine_meta(args, batch)
    print(f"fastalex {meta['fastalex']} | torch {meta['torch']} (CUDA {meta['cuda']}, cuDNN {meta['cudnn']}) | "
          f"triton {meta['triton']} | {meta['date']}")
    print(f"device: {args.device} — {meta['device_name']} | threads {meta['threads']} | batch {batch} | "
          f"dtypes {', '.join(labels)}")
    from tqdm import tqdm

    all_rows, ceilings = [], {}
    t_start = time.time()
    for label in labels:
        dtype = {"float32": torch.float32, "float32+tf32": torch.float32, "float16": torch.float16,
                 "bfloat16": torch.bfloat16}[label]
        if args.device == "cuda":
            tf32 = label == "float32+tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        ceilings[label] = roofline.measure_ceilings(args.device, label, args.quick)
        c = ceilings[label]
        print(f"ceilings ({label}, measured now): copy {c['bandwidth'] / 1e9:.1f} GB/s (read+write), "
              f"matmul {c['matmul_n']}^3 {c['compute'] / 1e9:.1f} GFLOP/s")
        selected = [k for k in case_defs.all_cases(batch, dtype, args.device, quick=args.quick,
                                                   allow_tf32=label == "float32+tf32")
                    if not args.cases or args.cases in k.name]
        for case in tqdm(selected, desc=f"{args.device} {label}", file=sys.stderr, leave=False):
            torch._dynamo.reset()
            row = run_case(case, label, args.device, args, TOLERANCE[label])
            t = row["providers"]["fastalex"]["time_s"]
            rt = roofline.roofline_time(case.flops, case.bytes, c)
            row["roofline_time_s"] = rt
            row["roofline_fraction"] = None if t is None else rt / t
            row["achieved_flops"] = None if t is None else case.flops / t
            row["achieved_bytes_per_s"] = None if t is None else case.bytes / t
            row["h100_projected_s"] = roofline.h100_projection(case.flops, case.bytes, label)
            all_rows.append(row)
    projected = args.device != "cuda"
    print()
    report.print_table(all_rows, projected)
    if projected:
        print("\nH100 proj. ms: PROJECTED, not measured — the roofline bound max(FLOPs / peak, bytes / 3.35 TB/s) "
              "with the H100 SXM's published peaks; no GPU ran these numbers.")
    print("vs torch / vs comp.: fastalex's speed-up over torch eager and torch.compile of the same reference, "
          "measured in this run; GFLOP/s and GB/s: fastalex's achieved rates (FLOPs and minimum bytes: each input "
          "read once, each output written once); roofline: the case's roofline time over fastalex's measured time; "
          "/copy (LRN and pooling): fastalex's time over that of copying the case's input into a preallocated "
          "tensor (x.copy_), timed in this run.")
    bad = [r for r in all_rows if not r["ok"]]
    if bad:
        print(f"\n{len(bad)} case(s) exceed their error tolerance and are not ranked: "
              + ", ".join(f"{r['case']} [{r['dtype']}]" for r in bad))
    # build/sass_report.json describes the CUDA kernels of the last --auto run; a build without
    # them has none to describe (a leftover file would be another build's).
    sass = load_json(os.path.join(ROOT, "build", "sass_report.json")) if meta["fastalex_cuda_kernels"] else None
    resources = dict(cuda=load_json(os.path.join(ROOT, "build", "cuda_resources.json")),
                     triton=load_json(os.path.join(ROOT, "build", "triton_resources.json")),
                     sass=report.sass_summary(sass))
    report.print_resources(resources["cuda"], resources["triton"])
    report.print_static_bounds(sass)
    threads = f"{meta['threads']}threads-" if args.threads and args.device == "cpu" else ""
    stem = (f"{args.device}-{'quick-' if args.quick else ''}{threads}"
            f"{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}")
    meta["wall_s"] = round(time.time() - t_start, 1)
    json_path, csv_path = report.write_results(args.out, stem, meta, all_rows, ceilings, resources)
    png = report.plot(all_rows, meta, os.path.join(args.out, stem + ".png"))
    md_path = report.write_markdown(args.out, stem, meta, sass)
    if not args.quick and not args.cases:
        report.copy_latest(args.out, args.device, [json_path, csv_path, png, md_path])
    print(f"\nwrote {json_path}, {csv_path}, {md_path}" + (f", {png}" if png else "") + f" ({meta['wall_s']} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
