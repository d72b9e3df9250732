"""Output of a benchmark run: the stdout table, the results files (JSON, CSV and markdown), the
plot, the static resource tables of the CUDA and Triton kernels, and the tensor-core kernels'
static bounds read from their SASS (scripts/sass_report.py)."""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import sys

PROVIDERS = ("fastalex", "torch", "torch_compile")


def fmt_ms(t):
    return "—" if t is None else f"{t * 1e3:.3f}"


def fmt_x(v):
    return "—" if v is None else f"{v:.2f}x"


def print_table(rows, projected: bool):
    head = (f"{'case':<34} {'dtype':<12} {'fastalex ms':>11} {'[q20-q80]':>17} {'torch ms':>9} {'compile ms':>10} "
            f"{'vs torch':>8} {'vs comp.':>8} {'rel.err':>8} {'GFLOP/s':>8} {'GB/s':>7} {'roofline':>8} {'/copy':>6}")
    if projected:
        head += f" {'H100 proj. ms':>13}"
    print(head)
    print("-" * len(head))
    for r in rows:
        f = r["providers"]["fastalex"]
        band = "" if f["time_s"] is None else f"[{f['q20_s'] * 1e3:.3f}-{f['q80_s'] * 1e3:.3f}]"
        flag = "" if r["ok"] else "  !! error above tolerance, not ranked"
        line = (f"{r['case']:<34} {r['dtype']:<12} {fmt_ms(f['time_s']):>11} {band:>17} "
                f"{fmt_ms(r['providers']['torch']['time_s']):>9} {fmt_ms(r['providers']['torch_compile']['time_s']):>10} "
                f"{fmt_x(r['speedup_vs_torch']):>8} {fmt_x(r['speedup_vs_compile']):>8} {f['rel_err']:>8.1e} "
                f"{(r['achieved_flops'] or float('nan')) / 1e9:>8.1f} {(r['achieved_bytes_per_s'] or float('nan')) / 1e9:>7.1f} "
                f"{r['roofline_fraction'] if r['roofline_fraction'] is not None else float('nan'):>8.2f} "
                f"{'—' if r.get('time_over_copy') is None else format(r['time_over_copy'], '.2f'):>6}")
        if projected:
            line += f" {r['h100_projected_s'] * 1e3:>13.3f}"
        print(line + flag)


def print_resources(cuda, triton):
    print("\nStatic resources of the CUDA kernels (ptxas; per thread; static shared memory per block)")
    if not cuda:
        print("  (no record: this build has no CUDA kernels, or was not built by scripts/setup_env.sh)")
    else:
        by_kernel = {}
        for r in cuda["rows"]:
            by_kernel.setdefault(r["kernel"], {})[r["arch"]] = r
        archs = sorted(cuda["archs"])
        width = max(len(k) for k in by_kernel)
        print(f"  {'kernel':<{width}} " + " ".join(f"{a + ' regs/smem/spill':>24}" for a in archs))
        for k in sorted(by_kernel):
            cells = []
            for a in archs:
                r = by_kernel[k].get(a)
                cells.append(f"{'missing':>24}" if r is None else
                             f"{r['registers']:>8} /{r['smem']:>6} /{r['spill_stores'] + r['spill_loads']:>6}")
            print(f"  {k:<{width}} " + " ".join(cells))
    print(f"\nStatic resources of the Triton kernels, compiled ahead of time for sm_"
          f"{triton['arch'] if triton else '90a'} (per kernel and dtype, over its shipped configurations)")
    if not triton:
        print("  (no record: run scripts/triton_resources.py)")
        return
    groups = {}
    for r in triton["rows"]:
        groups.setdefault((r["kernel"], r["dtype"]), []).append(r)
    print(f"  {'kernel':<23} {'dtype':<13} {'configs':>7} {'regs min-max':>13} {'smem max B':>10} {'spill B':>8}")
    for (k, d), rs in groups.items():
        regs = [r["registers"] for r in rs]
        print(f"  {k:<23} {d:<13} {len(rs):>7} {min(regs):>6}-{max(regs):<6} {max(r['shared'] for r in rs):>10} "
              f"{sum(r['spill_stores'] + r['spill_loads'] for r in rs):>8}")
    if triton.get("problems"):
        for p in triton["problems"]:
            print("  PROBLEM:", p)


STATIC_BOUNDS_TITLE = "Static bounds (from SASS, not measured)"


def _sass_report():
    """scripts/sass_report.py as a module (it renders its own report)."""
    name = "fastalex_scripts_sass_report"
    if name not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "sass_report.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def sass_summary(sass):
    """The part of build/sass_report.json a results file keeps: per kernel and arch, the main
    loop's counts and, for HMMA main loops, the bound, its limiter, occupancy and launch."""
    if not sass:
        return None
    rows = []
    for r in sass["kernels"]:
        ml = r["main_loop"]
        rows.append(dict(kernel=r["kernel"], arch=r["arch"], tensor_core_kernel=r["tensor_core_kernel"],
                         total_instructions=r["total_instructions"], local_memory=r["local_memory"]["count"],
                         main_loop=None if ml is None else dict(key=ml["key"], counts=ml["counts"]),
                         bound=r["bound"], occupancy=r["occupancy"] if r["bound"] else None,
                         launch=r["launch"] if r["bound"] else None))
    return dict(kind="static, from SASS; bounds are a model, not measurements", archs=sass["archs"],
                model=sass["model"], problems=sass["problems"], kernels=rows)


def static_bounds_markdown(sass):
    """The "Static bounds (from SASS, not measured)" section, markdown, without its heading."""
    if not sass:
        return ("No SASS report: this build has no CUDA kernels, or scripts/sass_report.py did not run "
                "(scripts/bench.sh and scripts/test.sh run it and write build/sass_report.json).\n")
    text = _sass_report().markdown(sass)
    return text.split("\n", 2)[2] if text.startswith("## ") else text


def print_static_bounds(sass):
    print(f"\n{STATIC_BOUNDS_TITLE}")
    for line in static_bounds_markdown(sass).rstrip().splitlines():
        print("  " + line if line else "")


def write_markdown(out_dir, stem, meta, sass):
    """<stem>.md: the run's static sections (for now the tensor-core kernels' bounds)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, stem + ".md")
    with open(path, "w") as f:
        f.write(f"# fastalex {meta['fastalex']} benchmark, {meta['date']}, {meta['device']} "
                f"({meta['device_name']})\n\nMeasured results: `{stem}.json`, `{stem}.csv`.\n\n"
                f"## {STATIC_BOUNDS_TITLE}\n\n{static_bounds_markdown(sass)}")
    return path


def write_results(out_dir, stem, meta, rows, ceilings, resources):
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, stem + ".json")
    with open(json_path, "w") as f:
        json.dump(dict(meta=meta, ceilings=ceilings, rows=rows, resources=resources), f, indent=1)
    csv_path = os.path.join(out_dir, stem + ".csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "kind", "dtype", "input", "flops", "min_bytes"]
                   + [f"{p}_{k}" for p in PROVIDERS for k in ("median_s", "q20_s", "q80_s", "rel_err")]
                   + ["speedup_vs_torch", "speedup_vs_compile", "achieved_flops_per_s", "achieved_bytes_per_s",
                      "roofline_time_s", "roofline_fraction", "h100_projected_s", "copy_time_s", "time_over_copy", "ok"])
        for r in rows:
            w.writerow([r["case"], r["kind"], r["dtype"], "x".join(map(str, r["input"])), r["flops"], r["min_bytes"]]
                       + [r["providers"][p][k] for p in PROVIDERS for k in ("time_s", "q20_s", "q80_s", "rel_err")]
                       + [r["speedup_vs_torch"], r["speedup_vs_compile"], r["achieved_flops"], r["achieved_bytes_per_s"],
                          r["roofline_time_s"], r["roofline_fraction"], r["h100_projected_s"], r.get("copy_time_s"),
                          r.get("time_over_copy"), r["ok"]])
    return json_path, csv_path


def plot(rows, meta, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = [r for r in rows if r["ok"] and r["speedup_vs_torch"] is not None]
    if not ranked:
        return None
    labels = [f"{r['case']} [{r['dtype']}]" if len({x['dtype'] for x in rows}) > 1 else r["case"] for r in ranked]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(ranked) + 1.6))
    ys = range(len(ranked))
    ax.barh([y - 0.2 for y in ys], [r["speedup_vs_torch"] for r in ranked], height=0.4, label="vs torch eager")
    ax.barh([y + 0.2 for y in ys], [r["speedup_vs_compile"] or 0 for r in ranked], height=0.4,
            label="vs torch.compile")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up of fastalex (higher is better; measured, same run)")
    ax.set_title(f"fastalex {meta['fastalex']} on {meta['device_name']} ({meta['device']}, {meta['threads']} threads, "
                 f"batch {meta['batch']}), {meta['date']}", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def copy_latest(out_dir, device, paths):
    for p in paths:
        if p:
            ext = os.path.splitext(p)[1]
            shutil.copyfile(p, os.path.join(out_dir, f"latest-{device}{ext}"))
