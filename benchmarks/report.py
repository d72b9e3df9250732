"""Output of a benchmark run: the stdout tables, the results files (JSON, CSV and markdown), the
plot, the static resource tables of the CUDA and Triton kernels, and the tensor-core kernels'
static bounds read from their SASS (scripts/sass_report.py).

A provider's entry in a row holds its times, its error against the float64 reference and, when
it did not run, a status: "n/a" (it does not apply to this case or device: no column when it
applies nowhere), "not installed" (TensorRT without torch-tensorrt), "not available" (this
fastalex has no cuda_graph), "off" (not asked for), "skipped: budget" (--budget did not cover
it), "stopped: budget" (the hard stop ended it) -- or an "error" with its message. A missing
provider never breaks a table.

A `run.py --train` run (meta and rows: mode "train") times training steps: its heading, notes,
networks table, markdown and plot title say forward + backward, and its CSV has a mode column."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import shutil
import sys

PROVIDERS = ("fastalex", "fastalex_graph", "fastalex_unfused", "torch", "torch_compile", "tensorrt", "onnxruntime",
             "openvino")
# What fastalex's speed-up is measured against: the other implementations of the reference (the
# CPU engines on the networks: benchmarks/peers.py), and (the fused LRN + pool cases only)
# fastalex's own two unfused ops in turn.
OTHERS = ("torch", "torch_compile", "tensorrt", "onnxruntime", "openvino")
BASELINES = ("fastalex_unfused",) + OTHERS
TITLES = {"fastalex": "fastalex", "fastalex_graph": "fastalex+graph", "fastalex_unfused": "fastalex unfused",
          "torch": "torch eager", "torch_compile": "torch.compile", "tensorrt": "TensorRT",
          "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
TIME_HEADS = {"fastalex": "fastalex ms", "fastalex_graph": "graph ms", "fastalex_unfused": "unfused ms",
              "torch": "torch ms", "torch_compile": "compile ms", "tensorrt": "TRT ms", "onnxruntime": "ORT ms",
              "openvino": "OV ms"}
RATIO_HEADS = {"fastalex_unfused": ("fused vs unfused", "speedup_vs_unfused"),
               "torch": ("vs torch", "speedup_vs_torch"), "torch_compile": ("vs comp.", "speedup_vs_compile"),
               "tensorrt": ("vs TRT", "speedup_vs_tensorrt"), "onnxruntime": ("vs ORT", "speedup_vs_onnxruntime"),
               "openvino": ("vs OV", "speedup_vs_openvino")}
# The row fields of the speed-up ratios, in CSV order.
RATIO_FIELDS = ("speedup_vs_torch", "speedup_vs_compile", "speedup_vs_tensorrt", "speedup_vs_unfused",
                "speedup_vs_onnxruntime", "speedup_vs_openvino")
STATUS_CELLS = {"skipped: budget": "skipped", "stopped: budget": "stopped"}
# A run's mode (meta["mode"]; `run.py --train`: "train"), as its tables' heading says it.
MODE_TITLES = {"forward": "Forward (inference, under torch.no_grad)",
               "train": "Forward + backward (training steps: forward, loss, gradients)"}
# What a training run's numbers are (benchmarks/train_cases.py has the details).
TRAIN_NOTE = ("Forward + backward: each time is one training step -- the forward, a fixed loss and torch.autograd.grad "
              "of it: for a layer, the gradients of its input (and weight and bias) from a fixed random upstream "
              "gradient; for a network in training mode (dropout p=0), cross-entropy with fixed labels (GoogLeNet: "
              "+ 0.3 x each auxiliary classifier's), the gradients of all its parameters. torch.compile compiles "
              "the reference's forward + loss (its backward runs through AOTAutograd). rel.err: the gradients' error "
              "against the same step in float64, ||g - g64|| / ||g64||, the largest over the step's gradients "
              "(benchmarks/train_cases.py: grad_err, and its TOLERANCE: a check for wrong gradients, not rounding, "
              "since float32 and float64 take different branches at ReLU and max-pool kinks). FLOPs and minimum "
              "bytes (GFLOP/s, GB/s, roofline, %peak): 3x the forward's, a convention; img/s: training images per "
              "second.")


def fmt_ms(t):
    return "—" if t is None else f"{t * 1e3:.3f}"


def fmt_x(v):
    return "—" if v is None else f"{v:.2f}x"


def mode_title(meta):
    """The heading of a run's tables: what its times are."""
    return MODE_TITLES[meta.get("mode", "forward")]


def is_train(rows):
    return any(r.get("mode") == "train" for r in rows)


def label(row):
    """A row's name in tables and plots: network rows carry their batch ("alexnet.forward b16")."""
    return f"{row['case']} b{row['batch']}" if row["kind"] == "network" else row["case"]


def status_cell(entry):
    """What a provider's cell says when it has no time."""
    if entry.get("error"):
        return "error"
    st = entry.get("status")
    if not st:
        return "—"
    return "import failed" if st.startswith("import failed") else STATUS_CELLS.get(st, st)


def provider_cell(entry, value=None, fmt="{:.3f}"):
    """`value` (default: the time in ms) formatted, marked '*' when the provider's output is past
    the dtype's tolerance; otherwise its status."""
    if entry["time_s"] is None:
        return status_cell(entry)
    v = entry["time_s"] * 1e3 if value is None else value
    return fmt.format(v) + ("*" if entry.get("ok") is False else "")


def shown_providers(rows):
    """The providers that apply to at least one row (on CPU: fastalex, torch, torch.compile)."""
    return [p for p in PROVIDERS if any(r["providers"][p].get("status") != "n/a" for r in rows)] or ["fastalex"]


def _num(v, fmt):
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def table_columns(rows, projected):
    """(heading, cell function) for each column of the stdout table."""
    shown = shown_providers(rows)
    cols = [("case", label), ("dtype", lambda r: r["dtype"]),
            ("fastalex ms", lambda r: provider_cell(r["providers"]["fastalex"])),
            ("[q20-q80]", lambda r: "" if r["providers"]["fastalex"]["time_s"] is None else
             f"[{r['providers']['fastalex']['q20_s'] * 1e3:.3f}-{r['providers']['fastalex']['q80_s'] * 1e3:.3f}]")]
    for p in shown[1:]:
        cols.append((TIME_HEADS[p], lambda r, p=p: provider_cell(r["providers"][p])))
    for p in BASELINES:
        head, key = RATIO_HEADS[p]
        if p in shown and (p not in ("tensorrt", "onnxruntime", "openvino") or any(r.get(key) is not None for r in rows)):
            cols.append((head, lambda r, key=key: fmt_x(r.get(key))))
    cols.append(("rel.err", lambda r: _num(r["providers"]["fastalex"]["rel_err"], ".1e")))
    if any(r["kind"] == "network" for r in rows):
        cols.append(("img/s", lambda r: _num(r.get("images_per_s"), ".1f")))
    cols += [("GFLOP/s", lambda r: _num(r["achieved_flops"] and r["achieved_flops"] / 1e9, ".1f")),
             ("GB/s", lambda r: _num(r["achieved_bytes_per_s"] and r["achieved_bytes_per_s"] / 1e9, ".1f")),
             ("roofline", lambda r: _num(r["roofline_fraction"], ".2f"))]
    if not projected or any(r.get("peak_flops") for r in rows):
        cols.append(("%peak", lambda r: "n/a" if r.get("peak_flops") is None else
                     _num(r.get("peak_fraction") and 100 * r["peak_fraction"], ".1f")))
    if not is_train(rows):  # (the copy yardstick is the forward's)
        cols.append(("/copy", lambda r: _num(r.get("time_over_copy"), ".2f")))
    if projected:
        cols.append(("H100 proj. ms", lambda r: _num(r["h100_projected_s"] * 1e3, ".3f")))
    return cols


def render(cols, rows, first_left=2):
    """Fixed-width text: the first `first_left` columns left-aligned, the others right-aligned."""
    cells = [[fn(r) for _, fn in cols] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _) in enumerate(cols)]

    def line(values):
        return " ".join(v.ljust(w) if i < first_left else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))

    out = [line([h for h, _ in cols])]
    out.append("-" * len(out[0]))
    out += [line(c) for c in cells]
    return out


def print_table(rows, projected: bool):
    for r, text in zip([None, None] + list(rows), render(table_columns(rows, projected), rows)):
        flag = ("" if r is None or r["ok"] else "  !! fastalex failed (error below), not ranked"
                if r["providers"]["fastalex"].get("error") else "  !! error above tolerance, not ranked")
        print(text + flag)


def not_run_name(n):
    network = n["case"].endswith((".forward", ".train"))
    return f"{n['case']}{' b' + str(n['batch']) if network else ''} [{n['dtype']}]"


def print_notes(rows, meta, projected):
    if projected:
        print("\nH100 proj. ms: PROJECTED, not measured — the roofline bound max(FLOPs / peak, bytes / 3.35 TB/s) "
              "with the H100 SXM's published peaks; no GPU ran these numbers.")
    shown = [b for b in OTHERS if b in shown_providers(rows)]
    unfused = "fastalex_unfused" in shown_providers(rows)
    print(" / ".join(RATIO_HEADS[b][0] for b in shown) + ": fastalex's speed-up over "
          + " and ".join(", ".join(TITLES[b] for b in shown).rsplit(", ", 1))
          + " of the same reference, measured in this run; "
          + ("unfused ms (fused LRN + pooling): fastalex's own LRN and max-pool ops run in turn, and fused vs "
             "unfused the fused op's speed-up over them; " if unfused else "")
          + "GFLOP/s and GB/s: fastalex's achieved rates (FLOPs and "
          "minimum bytes: each input read once, each output written once); img/s: images per second of a network "
          "row (batch / median time); roofline: the case's roofline time over fastalex's measured time; "
          + ("%peak: fastalex's achieved FLOP/s over the CPU's float32 FMA peak measured in this run at its thread "
             "count (the ceilings line; also the roofline's compute ceiling); " if projected else
             "%peak: fastalex's achieved FLOP/s over the GPU's published dense peak for the dtype "
             "(tensor cores; float32 without TF32: the FP32 FMA peak), n/a for a GPU not in the table; ")
          + ("no /copy column: its copy yardstick is the forward's. " if is_train(rows) else
             "/copy (LRN and pooling): fastalex's time over that of copying the case's input into a preallocated "
             "tensor (x.copy_), timed in this run. ")
          + "A provider's cell without a time: n/a (does not apply to the case), "
          "not installed / not available, off (not asked for), skipped (the --budget did not cover it), stopped "
          "(the budget's hard stop ended it), error "
          "(below); '*': that provider's output is past the dtype's error tolerance.")
    if is_train(rows):
        print(TRAIN_NOTE)
    errors = [(r, p, r["providers"][p]["error"]) for r in rows for p in PROVIDERS if r["providers"][p].get("error")]
    if errors:
        print("\nProvider errors (reported, not fatal):")
        for r, p, e in errors:
            print(f"  {label(r)} [{r['dtype']}] {TITLES[p]}: {e}")
    if meta.get("not_run"):
        print(f"\nNot run ({len(meta['not_run'])} case(s), the time budget did not cover them): "
              + ", ".join(not_run_name(n) for n in meta["not_run"]))
    if meta.get("stopped"):
        print(f"\nStopped: {meta['stopped']}")


def network_rows(rows):
    return [r for r in rows if r["kind"] == "network"]


def best_ratio(row):
    """The best fastalex provider's images/s over the best other provider's, or None."""
    mine = [row["providers"][p]["images_per_s"] for p in ("fastalex", "fastalex_graph")
            if row["providers"][p].get("ok") and row["providers"][p].get("images_per_s")]
    other = [row["providers"][p]["images_per_s"] for p in OTHERS if row["providers"][p].get("images_per_s")]
    return max(mine) / max(other) if mine and other else None


def network_columns(rows):
    shown = shown_providers(rows)
    cols = [("network", lambda r: r["case"]), ("dtype", lambda r: r["dtype"]),
            ("batch", lambda r: str(r["batch"]))]
    for p in shown:
        cols.append((TITLES[p], lambda r, p=p: provider_cell(r["providers"][p], r["providers"][p].get("images_per_s"),
                                                             "{:.1f}")))
    cols.append(("best fastalex / best other", lambda r: fmt_x(best_ratio(r))))
    return cols


def networks_title(rows):
    return "Networks: " + ("training images/s (forward + backward)" if is_train(rows) else "images/s")


def print_networks(rows):
    nets = network_rows(rows)
    if not nets:
        return
    print(f"\n{networks_title(nets)} (batch / median time; higher is better; cells without a number as above)")
    for text in render(network_columns(nets), nets, first_left=2):
        print("  " + text)


def header_lines(meta):
    """The run's description: versions, device, providers and their settings, peak, budget."""
    cuda = meta["device"] == "cuda"
    lines = [f"fastalex {meta['fastalex']} | torch {meta['torch']} (CUDA {meta['cuda']}, cuDNN {meta['cudnn']}) | "
             f"triton {meta['triton']} | torch-tensorrt {meta.get('torch_tensorrt', 'not installed')}"
             + (f" (TensorRT {meta['tensorrt']})" if meta.get("tensorrt") else "") + f" | {meta['date']}"]
    nb = ", ".join(map(str, meta.get("net_batches") or [meta["batch"]]))
    if cuda:
        lines.append(f"device: cuda — {meta['device_name']} (driver {meta.get('driver')}, compute capability "
                     f"{meta.get('capability')}, {meta.get('sm_count')} SMs, {meta.get('gpu_memory_gb')} GiB) | "
                     f"layers at batch {meta['batch']}, networks at batch {nb} | dtypes {', '.join(meta['dtypes'])}")
    else:
        lines.append(f"device: cpu — {meta['device_name']} | threads {meta['threads']} | batch {meta['batch']}"
                     + (f", networks at batch {nb}" if nb != str(meta["batch"]) else "")
                     + f" | dtypes {', '.join(meta['dtypes'])}")
    comp = meta.get("compile") or {}
    which = comp.get("which", "all")
    if which == "none":
        ctext = "off"
    elif which == "all" and comp.get("network_mode") == comp.get("layer_mode"):
        ctext = f"mode {comp.get('layer_mode')}"
    else:
        ctext = (f"mode {comp.get('network_mode')} for the networks, "
                 + (f"{comp.get('layer_mode')} for the layers" if which == "all" else "off for the layers"))
    # The inference engines (CUDA graph, ONNX Runtime, OpenVINO, TensorRT) time no training step.
    engines = meta.get("mode", "forward") == "forward"
    prov = ["fastalex"]
    if cuda and engines:
        prov.append("fastalex + CUDA graph (networks; fastalex.cuda_graph"
                    + ("" if meta.get("fastalex_cuda_graph") else ": not available") + ")")
    prov.append("fastalex unfused (fused LRN + pooling: fastalex's two ops in turn)")
    prov.append("torch eager" + (" (torch.backends.cudnn.benchmark = True)" if cuda else ""))
    prov.append(f"torch.compile ({ctext}" + ("" if engines else "; of the forward + loss, backward through AOTAutograd")
                + ")")
    if not cuda and engines:
        peers = meta.get("peers") or {}
        prov.append("ONNX Runtime " + peers.get("onnxruntime", "not installed")
                    + " (networks; CPU EP, all graph optimisations, torch's thread count)")
        prov.append("OpenVINO " + peers.get("openvino", "not installed")
                    + " (networks; CPU, latency hint, f32 precision, torch's thread count); both fed the reference "
                    "twin's ONNX export")
    if cuda and engines:
        prov.append(f"TensorRT (networks; torch-tensorrt {meta.get('torch_tensorrt', 'not installed')})")
    lines.append("providers: " + " | ".join(prov))
    if not engines:
        lines.append(f"mode: {MODE_TITLES['train']}, run.py --train (benchmarks/train_cases.py)")
    if cuda:
        peaks = meta.get("peak_flops") or {}
        if meta.get("peak_entry"):
            lines.append(f"%peak: of the {meta['peak_entry']}'s published dense peaks ("
                         + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items() if v)
                         + "; float32 without TF32: the FP32 FMA peak; sources in benchmarks/roofline.py)")
        else:
            lines.append(f"%peak: n/a ({meta['device_name']} is not in benchmarks/roofline.py's GPU_PEAKS)")
    if meta.get("budget_s"):
        lines.append(f"budget: {meta['budget_s']:.0f} s (networks first; a compilation only where the budget covers "
                     "it; a hard stop at its end; see benchmarks/budget.py)")
    return lines


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


def markdown_table(cols, rows):
    out = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(fn(r) for _, fn in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_markdown(out_dir, stem, meta, rows, sass):
    """<stem>.md: the run's description (versions, device, providers), the networks' images/s,
    what did not run, and the tensor-core kernels' static bounds."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, stem + ".md")
    nets = network_rows(rows)
    with open(path, "w") as f:
        f.write(f"# fastalex {meta['fastalex']} benchmark, {meta['date']}, {meta['device']} "
                f"({meta['device_name']})\n\nMeasured results: `{stem}.json`, `{stem}.csv`"
                + (f", plot `{stem}.png`" if rows else "") + ".\n\n")
        f.write("".join(f"- {line}\n" for line in header_lines(meta)) + "\n")
        if meta.get("mode") == "train":
            f.write(f"## {MODE_TITLES['train']}\n\n{TRAIN_NOTE}\n\n")
        if nets:
            f.write(f"## {networks_title(nets)} (measured)\n\nBatch / median time; a cell without a number says why "
                    "(n/a, not installed, not available, off, skipped: the budget did not cover it, stopped: "
                    "its hard stop ended it, error); '*': "
                    "past the dtype's error tolerance.\n\n" + markdown_table(network_columns(nets), nets) + "\n")
        errors = [(r, p, r["providers"][p]["error"]) for r in rows for p in PROVIDERS if r["providers"][p].get("error")]
        if errors:
            f.write("## Provider errors\n\n" + "".join(f"- {label(r)} [{r['dtype']}] {TITLES[p]}: `{e}`\n"
                                                      for r, p, e in errors) + "\n")
        if meta.get("not_run") or meta.get("stopped"):
            f.write("## Not run\n\n")
            if meta.get("not_run"):
                f.write(", ".join(not_run_name(n) for n in meta["not_run"])
                        + ": the time budget did not cover them.\n\n")
            if meta.get("stopped"):
                f.write(f"Stopped: {meta['stopped']}.\n\n")
        f.write(f"## {STATIC_BOUNDS_TITLE}\n\n{static_bounds_markdown(sass)}")
    return path


ENTRY_FIELDS = ("time_s", "q20_s", "q80_s", "rel_err", "status", "error", "images_per_s", "peak_fraction", "compile_s")


def write_results(out_dir, stem, meta, rows, ceilings, resources):
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, stem + ".json")
    with open(json_path, "w") as f:
        json.dump(dict(meta=meta, ceilings=ceilings, rows=rows, resources=resources), f, indent=1)
    csv_path = os.path.join(out_dir, stem + ".csv")
    heads = {"time_s": "median_s"}
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "kind", "mode", "dtype", "batch", "input", "flops", "min_bytes"]
                   + [f"{p}_{heads.get(k, k)}" for p in PROVIDERS for k in ENTRY_FIELDS]
                   + list(RATIO_FIELDS) + ["graph_speedup",
                      "images_per_s", "achieved_flops_per_s", "achieved_bytes_per_s", "roofline_time_s",
                      "roofline_fraction", "peak_flops", "peak_fraction", "h100_projected_s", "copy_time_s",
                      "time_over_copy", "ok"])
        for r in rows:
            w.writerow([r["case"], r["kind"], r.get("mode", "forward"), r["dtype"], r["batch"],
                        "x".join(map(str, r["input"])), r["flops"], r["min_bytes"]]
                       + [r["providers"][p].get(k) for p in PROVIDERS for k in ENTRY_FIELDS]
                       + [r.get(k) for k in RATIO_FIELDS + ("graph_speedup", "images_per_s", "achieved_flops",
                                             "achieved_bytes_per_s", "roofline_time_s", "roofline_fraction",
                                             "peak_flops", "peak_fraction", "h100_projected_s", "copy_time_s",
                                             "time_over_copy", "ok")])
    return json_path, csv_path


def plot_title(meta):
    what = "training steps (forward + backward): " if meta.get("mode") == "train" else ""
    if meta["device"] == "cuda":
        return (f"{what}fastalex {meta['fastalex']} on {meta['device_name']} (driver {meta.get('driver')}), "
                f"layers at batch {meta['batch']}, {meta['date']}\ntorch {meta['torch']}, CUDA {meta['cuda']}, "
                f"cuDNN {meta['cudnn']}, triton {meta['triton']}, "
                f"torch-tensorrt {meta.get('torch_tensorrt', 'not installed')}")
    return (f"{what}fastalex {meta['fastalex']} on {meta['device_name']} ({meta['device']}, {meta['threads']} "
            f"threads, batch {meta['batch']}), {meta['date']}\ntorch {meta['torch']}, triton {meta['triton']}")


def plot(rows, meta, path):
    """Left: fastalex's speed-up over each baseline that ran, per case. Right (when networks
    ran): every provider's images/s per network row. Needs matplotlib (skipped without it)."""
    try:
        import matplotlib
    except ImportError:
        print("plot skipped: matplotlib is not installed")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = [r for r in rows if r["ok"] and any(r.get(RATIO_HEADS[b][1]) is not None for b in BASELINES)]
    nets = [r for r in network_rows(rows) if any(r["providers"][p].get("images_per_s") for p in PROVIDERS)]
    if not ranked and not nets:
        return None
    baselines = [b for b in BASELINES if any(r.get(RATIO_HEADS[b][1]) is not None for r in ranked)]
    multi_dtype = len({x["dtype"] for x in rows}) > 1
    names = [f"{label(r)} [{r['dtype']}]" if multi_dtype else label(r) for r in ranked]
    provs = [p for p in PROVIDERS if any(r["providers"][p].get("images_per_s") for r in nets)]
    height = max(0.32 * max(len(ranked), len(nets) * max(1, len(provs)) * 0.5) + 1.8, 3.0)
    fig, axes = plt.subplots(1, 2 if nets else 1, figsize=(16 if nets else 10, height), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]} if nets else None)
    ax = axes[0][0]
    if ranked:
        ys = range(len(ranked))
        h = 0.8 / max(1, len(baselines))
        for k, b in enumerate(baselines):
            key = RATIO_HEADS[b][1]
            ax.barh([y - 0.4 + h * (k + 0.5) for y in ys], [r.get(key) or 0 for r in ranked], height=h,
                    label=f"vs {TITLES[b]}")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yticks(list(ys))
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("speed-up of fastalex (higher is better; measured, same run)")
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.set_axis_off()
    if nets:
        ax = axes[0][1]
        ys = range(len(nets))
        h = 0.8 / max(1, len(provs))
        for k, p in enumerate(provs):
            values = [r["providers"][p].get("images_per_s") or 0 for r in nets]
            pos = [y - 0.4 + h * (k + 0.5) for y in ys]
            ax.barh(pos, values, height=h, label=TITLES[p])
            for y, v in zip(pos, values):
                if v:
                    ax.text(v, y, f" {v:.0f}" if v >= 10 else f" {v:.1f}", va="center", fontsize=6)
        ax.set_yticks(list(ys))
        ax.set_yticklabels([f"{label(r)} [{r['dtype']}]" for r in nets], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("images/s (higher is better; measured)")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(plot_title(meta), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def copy_latest(out_dir, name, paths):
    """latest-<name>.* (name: the device, plus the dtypes when --dtypes chose them)."""
    for p in paths:
        if p:
            ext = os.path.splitext(p)[1]
            shutil.copyfile(p, os.path.join(out_dir, f"latest-{name}{ext}"))
