"""fastalex benchmarks: every op at every AlexNet/GoogLeNet layer shape, every Inception
module and both networks' forward, fastalex (and on CUDA fastalex in a CUDA graph) vs torch
eager vs torch.compile (vs TensorRT where torch-tensorrt is installed; the fused LRN + pool ops
also vs fastalex's two unfused ops in turn), with errors against a float64 reference, roofline
fractions against ceilings measured in the same run, the fraction of the GPU's published peak,
the kernels' static resources and the tensor-core kernels' static bounds (from their SASS).

    python benchmarks/run.py [--quick] [--train] [--device cpu|cuda] [--batch N] [--net-batches 1,16,128]
                             [--out DIR] [--dtypes float32,float16,...] [--compile all|networks|none]
                             [--max-autotune] [--no-compile] [--budget SECONDS] [--cases SUBSTRING]
                             [--threads N]

Writes <out>/<device>[-<dtypes>]-<date>.{json,csv,png,md} and copies them to
<out>/latest-<device>[-<dtypes>].* (the .md holds the versions, the networks' images/s and the
"Static bounds (from SASS, not measured)" section).

--train times training steps instead (forward + backward; benchmarks/train_cases.py says what
exactly): each layer kind at its layer shapes (conv + ReLU, LRN, max-pool, the fused LRN + pool
pairs, linear) and the three networks in training mode (dropout at p=0; a cross-entropy loss,
GoogLeNet's auxiliary classifiers weighted 0.3), fastalex vs torch eager vs torch.compile of
the reference's forward + loss. The error column compares the gradients (a layer's inputs', a
network's parameters') with the same step in float64: train_cases.grad_err, under
train_cases.TOLERANCE; FLOPs and bytes are 3x the forward's, by convention. Its files are
<out>/<device>-train-...; every row and the meta say mode "train".

No timing is asserted anywhere: the numbers are for people to read.
"""
from __future__ import annotations

import time

_T0 = time.monotonic()  # a --budget counts the imports too

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import fastalex  # noqa: E402
from benchmarks import cases as case_defs  # noqa: E402
from benchmarks import peers, report, roofline, train_cases  # noqa: E402
from benchmarks.budget import Budget, BudgetExceeded, family  # noqa: E402
from benchmarks.timing import time_fn  # noqa: E402

# Largest error a provider may show against the float64 reference, relative to the
# reference's largest magnitude, per dtype (TF32 and half types round their products).
TOLERANCE = {"float32": 1e-4, "float32+tf32": 5e-3, "float16": 1e-2, "bfloat16": 6e-2}
DTYPES = {"float32": torch.float32, "float32+tf32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
NET_BATCHES_CUDA = (1, 16, 128)
NET_BATCHES_CPU = (1, 16)
# Providers that compile (torch.compile, TensorRT): the expensive ones a --budget rations.
EXPENSIVE = ("torch_compile", "tensorrt")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name):
    """The installed distribution's version without importing it, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def tensorrt_status(device):
    """(torch_tensorrt module or None, status for its column when None)."""
    if device != "cuda":
        return None, "n/a"
    if importlib.util.find_spec("torch_tensorrt") is None:
        return None, "not installed"
    try:
        import torch_tensorrt

        return torch_tensorrt, None
    except Exception as e:  # noqa: BLE001  (a broken install is reported, not fatal)
        return None, "import failed: " + first_line(e)


def machine_meta(args, batch, net_batches, labels, trt_status):
    meta = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        device=args.device, batch=batch, net_batches=list(net_batches), dtypes=list(labels),
        threads=torch.get_num_threads(), quick=args.quick, mode="train" if args.train else "forward",
        fastalex=fastalex.__version__, torch=torch.__version__, cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        python=platform.python_version(), platform=platform.platform(), cpu=cpu_name(),
        fastalex_cuda_kernels=fastalex.built_with_cuda(),
        fastalex_cuda_graph=hasattr(fastalex, "cuda_graph"),
        torch_tensorrt=package_version("torch_tensorrt") or package_version("torch-tensorrt") or "not installed",
        tensorrt=package_version("tensorrt"),
        budget_s=args.budget,
        peers={name: package_version(name) or "not installed" for name in peers.PEERS},
        # the CUDA lrn_max_pool2d's route: its two kernels in turn unless this says "fused"
        lrn_pool_cuda=os.environ.get("FASTALEX_LRN_POOL_CUDA") or "unfused",
    )
    if trt_status and trt_status.startswith("import failed"):
        meta["torch_tensorrt"] += f" ({trt_status})"
    try:
        import triton

        meta["triton"] = triton.__version__
    except ImportError:
        meta["triton"] = None
    if args.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        meta.update(device_name=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    sm_count=props.multi_processor_count,
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))))
        try:
            import subprocess

            meta["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True).stdout.strip().splitlines()[0] or None
        except (OSError, IndexError):
            meta["driver"] = None
        meta["cudnn_benchmark"] = "on for torch eager and torch.compile (set for their runs, restored after)"
        meta["peak_entry"] = roofline.gpu_peak_entry(props.name)
        meta["peak_flops"] = {label: roofline.gpu_peak_flops(props.name, label) for label in labels}
    else:
        meta.update(device_name=meta["cpu"], driver=None, peak_entry=None, peak_flops=None)
    meta["compile"] = dict(which=args.compile, network_mode=compile_mode("network", args),
                           layer_mode=compile_mode("conv", args))
    return meta


def first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def rel_err(out, ref):
    if isinstance(out, (tuple, list)) and len(out) == 1:
        out = out[0]
    out = out.double()
    scale = ref.abs().max().item() or 1.0
    if out.shape != ref.shape:
        return float("inf")
    return (out - ref).abs().max().item() / scale


def tolerance(label, mode):
    """The largest error a provider may show: TOLERANCE for a forward's output (rel_err),
    train_cases.TOLERANCE for a training step's gradients (train_cases.grad_err)."""
    return (train_cases.TOLERANCE if mode == "train" else TOLERANCE)[label]


def compile_mode(kind, args):
    """torch.compile's mode: max-autotune for the networks on CUDA (not with --quick), for every
    case with --max-autotune on CUDA; default otherwise (and always on CPU)."""
    if args.device != "cuda":
        return "default"
    if args.max_autotune or (kind == "network" and not args.quick):
        return "max-autotune"
    return "default"


@contextlib.contextmanager
def cudnn_benchmark(on):
    """torch's best on CUDA: cuDNN picks its fastest algorithm per shape (benchmark mode)."""
    prev = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on or prev
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = prev


def compile_tensorrt(trt, model, x, label):
    """The plain-torch model compiled by torch-tensorrt (dynamo frontend) in the case's dtype;
    float32 without TF32 asks TensorRT not to use TF32 either."""
    kwargs = dict(ir="dynamo", inputs=[x], enabled_precisions={x.dtype})
    if label == "float32":
        kwargs["disable_tf32"] = True
    return trt.compile(model, **kwargs)


def new_entry(status=None):
    return dict(time_s=None, q20_s=None, q80_s=None, rel_err=None, status=status)


def measure(entry, make, ref, device, args, tol, state, name, error=rel_err):
    """Builds a provider's callable (`make`: compile, capture, or nothing), checks its output
    against the float64 reference (`error`: the case's measure, rel_err unless it has its own),
    then times it. A failure is recorded in the entry, never raised. Returns the seconds spent
    building it and making its first call."""
    state["provider"] = name
    t0 = time.perf_counter()
    built = None
    try:
        fn = make()
        with torch.no_grad():  # (a training step turns grad mode back on inside: train_cases.step)
            out = fn()
            built = time.perf_counter() - t0
            entry["rel_err"] = error(out, ref)
            del out
        entry["ok"] = entry["rel_err"] <= tol
        entry["time_s"], entry["q20_s"], entry["q80_s"] = time_fn(fn, device, args.quick)
    except Exception as e:  # noqa: BLE001  (a provider that fails is reported, not fatal)
        entry["error"] = first_line(e)
    return time.perf_counter() - t0 if built is None else built


def run_cheap(case, label, args, env, state):
    """A case's first pass: fastalex, fastalex in a CUDA graph, fastalex's unfused ops, torch
    eager and the copy yardstick. The compiled providers get their status here ("pending" when
    they are to run in the second pass, run_compiled)."""
    device, tol, error = args.device, tolerance(label, case.mode), case.error or rel_err
    cuda = device == "cuda"
    ref = case.reference64()
    row = dict(case=case.name, kind=case.kind, mode=case.mode, dtype=label, batch=case.batch,
               input=list(case.shape), flops=case.flops, min_bytes=case.bytes, providers={})
    p = row["providers"] = {name: new_entry() for name in report.PROVIDERS}
    network = case.kind == "network"
    # The inference engines (CUDA graph, TensorRT, ONNX Runtime, OpenVINO) run networks' forwards only.
    engines = network and case.mode == "forward"

    # cudnn.benchmark for fastalex as for torch: it is also what makes fastalex's per-layer conv
    # choice on CUDA timed (fastalex.ops.conv_backend) instead of heuristic.
    with cudnn_benchmark(cuda):
        measure(p["fastalex"], lambda: case.fastalex, ref, device, args, tol, state, "fastalex", error)

        # A fused op against fastalex's own two ops in turn: what the fusion itself gains.
        if case.unfused is None:
            p["fastalex_unfused"]["status"] = "n/a"
        else:
            measure(p["fastalex_unfused"], lambda: case.unfused, ref, device, args, tol, state, "fastalex_unfused",
                    error)

    if not (cuda and engines):
        p["fastalex_graph"]["status"] = "n/a"
    elif not env["cuda_graph"]:
        p["fastalex_graph"]["status"] = "not available"
    else:
        def make_graph():
            graphed = fastalex.cuda_graph(case.module, case.example)
            return lambda: graphed(case.example)

        p["fastalex_graph"]["compile_s"] = measure(p["fastalex_graph"], make_graph, ref, device, args, tol, state,
                                                   "fastalex_graph", error)

    with cudnn_benchmark(cuda):
        measure(p["torch"], lambda: case.torch, ref, device, args, tol, state, "torch", error)

    # The CPU inference engines, on the networks: the reference twin exported to ONNX.
    for name in peers.PEERS:
        st = "n/a" if not engines else peers.status(name, device)
        if st:
            p[name]["status"] = st
        else:
            p[name]["compile_s"] = measure(
                p[name], lambda name=name: peers.runner(name, case.compile_target, case.example,
                                                        torch.get_num_threads(), env["onnx"]),
                ref, device, args, tol, state, name, error)

    # torch.compile of the plain-torch reference; TensorRT (torch-tensorrt) of it for the networks on CUDA.
    p["torch_compile"]["mode"] = compile_mode(case.kind, args)
    if args.compile == "none" or (args.compile == "networks" and not network):
        p["torch_compile"]["status"] = "off"
    else:
        p["torch_compile"]["status"] = "pending"
    if not (cuda and engines):
        p["tensorrt"]["status"] = "n/a"
    elif env["tensorrt"] is None:
        p["tensorrt"]["status"] = env["tensorrt_status"]
    else:
        p["tensorrt"]["status"] = "pending"

    # fastalex's time over the time of copying the case's input (memory-bound cases).
    row["copy_time_s"] = row["time_over_copy"] = None
    if case.copy_input is not None:
        state["provider"] = "copy"
        dst = torch.empty_like(case.copy_input)
        row["copy_time_s"] = time_fn(lambda: dst.copy_(case.copy_input), device, args.quick)[0]
    return row


def has_pending(row):
    return any(e.get("status") == "pending" for e in row["providers"].values())


def run_compiled(case, row, label, args, env, budget, state):
    """A case's second pass: torch.compile and TensorRT, each only when the budget's share left
    covers its expected compilation time (otherwise "skipped: budget")."""
    device, tol, error = args.device, tolerance(label, case.mode), case.error or rel_err
    p = row["providers"]
    fam = family(case.name, case.kind)
    ref = None

    entry = p["torch_compile"]
    if entry["status"] == "pending":
        mode = entry["mode"]
        if not budget.allows_compile("torch_compile", mode, fam):
            entry["status"] = "skipped: budget"
        else:
            entry["status"] = "stopped: budget"  # until it has run: what a hard stop inside it leaves
            ref = case.reference64()
            torch._dynamo.reset()

            def make_compiled():
                if case.make_compiled is not None:  # a training step (benchmarks/train_cases.py)
                    return case.make_compiled(mode)
                compiled = torch.compile(case.compile_target, mode=mode)
                return lambda: compiled(*case.compile_args)

            with cudnn_benchmark(device == "cuda"):
                entry["compile_s"] = measure(entry, make_compiled, ref, device, args, tol, state, "torch_compile",
                                             error)
            entry["status"] = None
            budget.record_compile("torch_compile", mode, fam, entry["compile_s"])

    entry = p["tensorrt"]
    if entry["status"] == "pending":
        if not budget.allows_compile("tensorrt", "default", fam):
            entry["status"] = "skipped: budget"
        else:
            entry["status"] = "stopped: budget"
            ref = case.reference64() if ref is None else ref

            def make_trt():
                mod = compile_tensorrt(env["tensorrt"], case.compile_target, case.example, label)
                return lambda: mod(case.example)

            entry["compile_s"] = measure(entry, make_trt, ref, device, args, tol, state, "tensorrt", error)
            entry["status"] = None
            budget.record_compile("tensorrt", "default", fam, entry["compile_s"])


def finish_row(row, ceilings, peak):
    """The derived columns: correctness flag, speed-ups, images/s, roofline, fraction of peak."""
    p = row["providers"]
    f = p["fastalex"]
    row["ok"] = f.get("ok", False)
    t = f["time_s"]
    for entry in p.values():
        ts = entry["time_s"]
        entry["images_per_s"] = row["batch"] / ts if row["kind"] == "network" and ts else None
        entry["peak_fraction"] = roofline.peak_fraction(row["flops"], ts, peak)

    def ratio(other):
        o = p[other]["time_s"]
        return None if (not row["ok"] or t is None or o is None) else o / t

    row["speedup_vs_torch"] = ratio("torch")
    row["speedup_vs_compile"] = ratio("torch_compile")
    row["speedup_vs_tensorrt"] = ratio("tensorrt")
    row["speedup_vs_unfused"] = ratio("fastalex_unfused")
    for name in peers.PEERS:
        row[f"speedup_vs_{name}"] = ratio(name)
    g = p["fastalex_graph"]["time_s"]
    row["graph_speedup"] = None if (t is None or g is None or not p["fastalex_graph"].get("ok")) else t / g
    if row["copy_time_s"] is not None and t is not None:
        row["time_over_copy"] = t / row["copy_time_s"]
    rt = roofline.roofline_time(row["flops"], row["min_bytes"], ceilings)
    row["roofline_time_s"] = rt
    row["roofline_fraction"] = None if t is None else rt / t
    row["achieved_flops"] = None if t is None else row["flops"] / t
    row["achieved_bytes_per_s"] = None if t is None else row["min_bytes"] / t
    row["peak_flops"] = peak
    row["peak_fraction"] = f["peak_fraction"]
    row["images_per_s"] = f["images_per_s"]
    row["h100_projected_s"] = roofline.h100_projection(row["flops"], row["min_bytes"], row["dtype"])
    return row


def priority_order(cases, compiled=False):
    """The order (indices into `cases`: Case objects or rows) a run takes its cases in; a --budget that runs out
    leaves the last ones. First pass (`compiled` False): the layers in table order, then the
    networks at their largest batch, then at the others ascending -- the layers (each a kernel of
    its own) cost ~1 s each, and GoogLeNet's Inception shapes at the largest batch are the
    Inception cases' own, so the Triton autotuning those pay is not paid twice. Second pass
    (torch.compile, TensorRT): the networks in that order first, then the layers."""
    kinds = [(c["kind"], c["batch"]) if isinstance(c, dict) else (c.kind, c.batch) for c in cases]
    nets = [i for i, (kind, _) in enumerate(kinds) if kind == "network"]
    top = max((kinds[i][1] for i in nets), default=0)
    nets.sort(key=lambda i: (kinds[i][1] != top, kinds[i][1]))
    layers = [i for i, (kind, _) in enumerate(kinds) if kind != "network"]
    return nets + layers if compiled else layers + nets


def priority(cases, compiled=False):
    return [cases[i] for i in priority_order(cases, compiled)]


def finish_rows(second, ceilings, peak):
    """The finished rows of one dtype in table order; a compiled provider the run did not get to
    (a hard stop) says "skipped: budget"."""
    rows = []
    for pos, _, row in sorted(second, key=lambda x: x[0]):
        for entry in row["providers"].values():
            if entry.get("status") == "pending":
                entry["status"] = "skipped: budget"
        rows.append(finish_row(row, ceilings, peak))
    return rows


def log_case(label, what, t0):
    """A line per case in a log (a terminal has the progress bar)."""
    if not sys.stderr.isatty():
        print(f"  {label} {what}: {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)


def progress(items, desc):
    """A progress bar on a terminal (tqdm, when installed); in a log, main() prints a line per
    case with its seconds instead."""
    if not sys.stderr.isatty():
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional
        return items
    return tqdm(items, desc=desc, file=sys.stderr, leave=False)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None,
                    help="the layers' batch: default 128 on CUDA, 16 on CPU (2 with --quick)")
    ap.add_argument("--net-batches", default=None,
                    help="comma list of the networks' batch sizes (default: 1,16,128 on CUDA, 1,16 on CPU, the "
                         "--batch value with --quick)")
    ap.add_argument("--dtypes", default=None,
                    help="comma list of float32, float32+tf32, float16, bfloat16 (default: all four on CUDA, float32 on CPU)")
    ap.add_argument("--quick", action="store_true", help="a few cases at a small batch: proves the script works")
    ap.add_argument("--train", action="store_true",
                    help="time training steps (forward + loss + backward, the gradients checked against float64) "
                         "of the layers and networks instead of forwards: benchmarks/train_cases.py")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--compile", choices=["all", "networks", "none"], default="all",
                    help="which cases get the torch.compile provider (default: all)")
    ap.add_argument("--no-compile", action="store_true", help="same as --compile none")
    ap.add_argument("--max-autotune", action="store_true",
                    help="torch.compile(mode='max-autotune') for every case on CUDA (the networks get it anyway)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds this run may take: networks first, compilations only where they fit, "
                         "a hard stop at the end (see benchmarks/budget.py)")
    ap.add_argument("--cases", default=None,
                    help="only cases whose name contains this (a comma list: any of these)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU")
    args = ap.parse_args(argv)
    if args.no_compile:
        args.compile = "none"
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch or (2 if args.quick else (128 if args.device == "cuda" else 16))
    if args.net_batches:
        try:
            net_batches = [int(b) for b in args.net_batches.split(",")]
        except ValueError:
            raise SystemExit(f"--net-batches: expected a comma list of integers, got {args.net_batches!r}")
    else:
        net_batches = ([batch] if args.quick else list(NET_BATCHES_CUDA) if args.device == "cuda"
                       else list(NET_BATCHES_CPU))
    labels = (args.dtypes.split(",") if args.dtypes else
              (["float32", "float32+tf32", "float16", "bfloat16"] if args.device == "cuda" else ["float32"]))
    for label in labels:
        if label not in TOLERANCE:
            raise SystemExit(f"--dtypes: unknown dtype {label!r} (expected one of {', '.join(TOLERANCE)})")
        if args.device == "cpu" and label != "float32":
            raise SystemExit("--dtypes: the CPU kernels run float32 (and float64) only")
    budget = Budget(args.budget, start=_T0)
    trt, trt_status = tensorrt_status(args.device)
    env = dict(tensorrt=trt, tensorrt_status=trt_status, cuda_graph=hasattr(fastalex, "cuda_graph"), onnx={})
    meta = machine_meta(args, batch, net_batches, labels, trt_status)
    for line in report.header_lines(meta):
        print(line)

    all_rows, ceilings, not_run, second = [], {}, [], []
    c = peak = None
    state = dict(case=None, dtype=None, provider=None)
    if budget.limited:
        def hard_stop(signum, frame):
            raise BudgetExceeded()

        signal.signal(signal.SIGALRM, hard_stop)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, budget.remaining()))
    try:
        for i, label in enumerate(labels):
            budget.begin_share(len(labels) - i)
            dtype = DTYPES[label]
            if args.device == "cuda":
                tf32 = label == "float32+tf32"
                torch.backends.cuda.matmul.allow_tf32 = tf32
                torch.backends.cudnn.allow_tf32 = tf32
            state.update(case="(ceilings)", dtype=label, provider=None)
            ceilings[label] = roofline.measure_ceilings(args.device, label, args.quick)
            c = ceilings[label]
            print(f"ceilings ({label}, measured now): copy {c['bandwidth'] / 1e9:.1f} GB/s (read+write), "
                  f"matmul {c['matmul_n']}^3 {c['matmul'] / 1e9:.1f} GFLOP/s"
                  + (f", FMA peak {c['fma_peak'] / 1e9:.1f} GFLOP/s at {torch.get_num_threads()} threads "
                     "(the compute ceiling and %peak)" if "fma_peak" in c else ""))
            # %peak: the GPU's published peak; on CPU the FMA peak measured now.
            peak = (meta["peak_flops"][label] if meta["peak_flops"] else None) or c.get("fma_peak")
            state.update(case="(building the cases)")
            source = train_cases if args.train else case_defs
            selected = [k for k in source.all_cases(batch, dtype, args.device, quick=args.quick,
                                                    allow_tf32=label == "float32+tf32", net_batches=net_batches)
                        if not args.cases or any(c in k.name for c in args.cases.split(","))]
            queue = [(n, k) for n, k in enumerate(selected)]
            queue = [queue[i] for i in priority_order([k for _, k in queue])]
            del selected
            second = []  # (table position, case, row) of the cases with a compiled provider to run
            # First pass: the cheap providers of every case the share covers (priority_order).
            for j in progress(range(len(queue)), f"{args.device} {label}"):
                pos, case = queue[j]
                queue[j] = None  # free each case's tensors once nothing needs them
                if not budget.allows_case():
                    not_run.append(dict(case=case.name, batch=case.batch, dtype=label, reason="budget"))
                    continue
                state.update(case=case.name + (f" b{case.batch}" if case.kind == "network" else ""), provider=None)
                t_case = time.monotonic()
                row = run_cheap(case, label, args, env, state)
                log_case(label, f"[{j + 1}/{len(queue)}] {state['case']}", t_case)
                second.append((pos, case if has_pending(row) else None, row))
                del case, row
            gc.collect()
            # Second pass: torch.compile and TensorRT where the share left covers them, networks first.
            order = priority_order([row for _, _, row in second], compiled=True)
            for k in order:
                pos, case, row = second[k]
                if case is not None:
                    state.update(case=case.name + (f" b{case.batch}" if case.kind == "network" else ""),
                                 provider=None)
                    t_case = time.monotonic()
                    run_compiled(case, row, label, args, env, budget, state)
                    if not has_pending(row) and any(row["providers"][p].get("compile_s") for p in EXPENSIVE):
                        log_case(label, f"compiled {state['case']}", t_case)
                    second[k] = (pos, None, row)
                    del case
                    torch._dynamo.reset()
                    gc.collect()
            all_rows += finish_rows(second, c, peak)
            second = []
    except (BudgetExceeded, KeyboardInterrupt) as e:
        why = "the time budget ran out" if isinstance(e, BudgetExceeded) else "interrupted"
        meta["stopped"] = (f"{why} during {state['case']} [{state['dtype']}]"
                           + (f" ({state['provider']})" if state["provider"] else "")
                           + "; the rows finished before it are written, the rest did not run")
        meta["exit"] = 0 if isinstance(e, BudgetExceeded) else 130
        all_rows += finish_rows(second, c, peak)
    finally:
        if budget.limited:
            signal.setitimer(signal.ITIMER_REAL, 0)
    meta["not_run"] = not_run
    if args.device == "cuda":
        # Which conv implementation the timed choice took for each layer key (Key.text(): the
        # conv backend cache's spelling), so a run says which candidate won where.
        from fastalex.ops import conv_backend

        meta["conv_choices"] = {key.text(): backend for key, backend in conv_backend.timed_choices().items()}
    return finish(args, meta, all_rows, ceilings)


def finish(args, meta, all_rows, ceilings):
    projected = args.device != "cuda"
    print()
    print(report.mode_title(meta))
    report.print_table(all_rows, projected)
    report.print_notes(all_rows, meta, projected)
    report.print_networks(all_rows)
    bad = [r for r in all_rows if not r["ok"]]
    if bad:
        print(f"\n{len(bad)} case(s) exceed their error tolerance and are not ranked: "
              + ", ".join(f"{report.label(r)} [{r['dtype']}]" for r in bad))
    # build/sass_report.json describes the CUDA kernels of the last --auto run; a build without
    # them has none to describe (a leftover file would be another build's).
    sass = load_json(os.path.join(ROOT, "build", "sass_report.json")) if meta["fastalex_cuda_kernels"] else None
    resources = dict(cuda=load_json(os.path.join(ROOT, "build", "cuda_resources.json")),
                     triton=load_json(os.path.join(ROOT, "build", "triton_resources.json")),
                     sass=report.sass_summary(sass))
    report.print_resources(resources["cuda"], resources["triton"])
    report.print_static_bounds(sass)
    threads = f"{meta['threads']}threads-" if args.threads and args.device == "cpu" else ""
    dtypes = "".join(f"{d.replace('+', '-')}-" for d in meta["dtypes"]) if args.dtypes else ""
    # "<device>-train": training-step results (--train), never mixed up with the forward ones
    device = args.device + ("-train" if args.train else "")
    stem = (f"{device}-{'quick-' if args.quick else ''}{threads}{dtypes}"
            f"{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}")
    meta["wall_s"] = round(time.monotonic() - _T0, 1)
    json_path, csv_path = report.write_results(args.out, stem, meta, all_rows, ceilings, resources)
    png = report.plot(all_rows, meta, os.path.join(args.out, stem + ".png"))
    md_path = report.write_markdown(args.out, stem, meta, all_rows, sass)
    if not args.quick and not args.cases:
        report.copy_latest(args.out, device + (f"-{dtypes[:-1]}" if dtypes else ""),
                           [json_path, csv_path, png, md_path])
    print(f"\nwrote {json_path}, {csv_path}, {md_path}" + (f", {png}" if png else "") + f" ({meta['wall_s']} s)")
    if meta.get("stopped"):
        print(f"STOPPED: {meta['stopped']}")
    if "exit" in meta:
        return meta["exit"] or (1 if bad else 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
