"""The benchmark's bookkeeping, without timing anything: the GPU peak table lookup, images/s and
fraction of peak from given times, tables and results files with providers that did not run
(not installed, not available, n/a, off, skipped, error), the fused LRN + pool cases' unfused
provider (its callable, its wiring with a fake timer, its columns), and the --budget rules on a
fake clock."""
import csv
import importlib.util
import json
import math
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import budget as budget_mod  # noqa: E402
from benchmarks import cases as case_defs  # noqa: E402
from benchmarks import report, roofline  # noqa: E402
from benchmarks import run as bench_run  # noqa: E402


@pytest.mark.parametrize("name, entry", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA A100-PCIE-40GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA H100 NVL", None),
    ("NVIDIA H200 NVL", None),
    ("NVIDIA GH200 480GB", None),
    ("NVIDIA A100X", None),
    ("NVIDIA H800", None),
    ("NVIDIA GeForce RTX 4090", None),
    ("", None),
    (None, None),
])
def test_gpu_peak_entry(name, entry):
    assert roofline.gpu_peak_entry(name) == entry


def test_gpu_peak_values():
    assert roofline.gpu_peak_flops("NVIDIA H100 80GB HBM3", "float16") == 989.5e12
    assert roofline.gpu_peak_flops("NVIDIA H100 80GB HBM3", "float32+tf32") == 494.5e12
    assert roofline.gpu_peak_flops("NVIDIA H100 80GB HBM3", "float32") == 67e12
    assert roofline.gpu_peak_flops("NVIDIA A100-SXM4-40GB", "bfloat16") == 312e12
    assert roofline.gpu_peak_flops("NVIDIA H100 NVL", "float16") is None
    for entry in roofline.GPU_PEAKS.values():
        assert set(entry) == {"float32", "float32+tf32", "float16", "bfloat16"}
        # tensor peaks: half types twice TF32 (to the datasheets' rounding), TF32 above the FMA peak
        assert entry["float16"] == entry["bfloat16"] == pytest.approx(2 * entry["float32+tf32"], rel=1e-3)
        assert entry["float32+tf32"] > entry["float32"]
    # the CPU projection keeps using the H100 SXM's figures
    assert roofline.H100["float16"] == roofline.GPU_PEAKS["H100 SXM"]["float16"]
    assert roofline.peak_fraction(1e12, 1.0, None) is None
    assert roofline.peak_fraction(1e12, None, 1e12) is None
    assert roofline.peak_fraction(2e12, 0.5, 8e12) == 0.5


def entry(time_s=None, status=None, rel_err=1e-7, ok=True, error=None):
    e = bench_run.new_entry(status)
    if time_s is not None:
        e.update(time_s=time_s, q20_s=time_s * 0.9, q80_s=time_s * 1.1, rel_err=rel_err, ok=ok)
    if error:
        e["error"] = error
    return e


def make_row(case, kind, batch, providers, peak, flops=4e9, dtype="float16"):
    full = {p: providers.get(p, entry(status="n/a")) for p in report.PROVIDERS}
    row = dict(case=case, kind=kind, dtype=dtype, batch=batch, input=[batch, 3, 8, 8], flops=flops,
               min_bytes=1e6, providers=full, copy_time_s=None, time_over_copy=None)
    return bench_run.finish_row(row, dict(compute=1e13, bandwidth=1e11), peak)


def gpu_rows():
    peak = 1e15
    net = make_row("alexnet.forward", "network", 16, dict(
        fastalex=entry(0.004), fastalex_graph=entry(status="not available"), torch=entry(0.008),
        torch_compile=entry(error=bench_run.first_line(RuntimeError("BackendCompilerFailed: inductor raised\nSECOND"))),
        tensorrt=entry(status="not installed")), peak)
    net1 = make_row("alexnet.forward", "network", 1, dict(
        fastalex=entry(0.002), fastalex_graph=entry(0.001), torch=entry(0.003),
        torch_compile=entry(status="skipped: budget"), tensorrt=entry(status="not installed")), peak)
    layer = make_row("alexnet.conv2 conv+relu", "conv", 128, dict(
        fastalex=entry(0.001), torch=entry(0.002, rel_err=1.0, ok=False), torch_compile=entry(status="off")), peak)
    return [layer, net1, net]


def test_images_per_second_and_peak_fraction():
    layer, net1, net = gpu_rows()
    assert net["images_per_s"] == pytest.approx(16 / 0.004)
    assert net["providers"]["torch"]["images_per_s"] == pytest.approx(16 / 0.008)
    assert net1["providers"]["fastalex_graph"]["images_per_s"] == pytest.approx(1000.0)
    assert net["providers"]["tensorrt"]["images_per_s"] is None
    assert layer["images_per_s"] is None  # images/s only for the networks
    assert net["peak_fraction"] == pytest.approx(4e9 / 0.004 / 1e15)
    assert net["speedup_vs_torch"] == pytest.approx(2.0)
    assert net["speedup_vs_compile"] is None and net["speedup_vs_tensorrt"] is None
    assert net1["graph_speedup"] == pytest.approx(2.0)
    assert report.best_ratio(net1) == pytest.approx((1 / 0.001) / (1 / 0.003))
    # without a known peak (CPU, an unknown GPU) there is no fraction
    cpu = make_row("alexnet.forward", "network", 2, dict(fastalex=entry(0.1), torch=entry(0.2)), None)
    assert cpu["peak_fraction"] is None and cpu["providers"]["torch"]["peak_fraction"] is None


def test_cpu_table_has_no_cuda_only_columns(capsys):
    rows = [make_row("alexnet.forward", "network", 2, dict(
        fastalex=entry(0.1), torch=entry(0.2), torch_compile=entry(0.15)), None, dtype="float32")]
    assert report.shown_providers(rows) == ["fastalex", "torch", "torch_compile"]
    report.print_table(rows, projected=True)
    report.print_networks(rows)
    out = capsys.readouterr().out
    assert "graph" not in out and "TRT" not in out and "TensorRT" not in out and "n/a" not in out
    assert "%peak" not in out and "H100 proj. ms" in out
    assert "alexnet.forward b2" in out


def test_gpu_table_says_why_a_provider_did_not_run(capsys):
    rows = gpu_rows()
    report.print_table(rows, projected=False)
    table = capsys.readouterr().out
    assert "vs TRT" not in table  # no TensorRT time anywhere: no ratio column for it
    print(table)
    meta = dict(not_run=[dict(case="googlenet.forward", batch=128, dtype="float16")], stopped=None)
    report.print_notes(rows, meta, projected=False)
    report.print_networks(rows)
    out = capsys.readouterr().out
    for text in ("not available", "not installed", "skipped", "off", "error", "n/a", "%peak", "img/s",
                 "BackendCompilerFailed: inductor raised", "googlenet.forward b128 [float16]", "2.000*"):
        assert text in out, text
    assert "SECOND" not in out  # an error's first line only


def test_results_files_with_missing_providers(tmp_path):
    rows = gpu_rows()
    meta = dict(device="cuda", fastalex="0", torch="2.11.0", cuda="12.8", cudnn=91000, triton="3.6.0",
                torch_tensorrt="not installed", tensorrt=None, date="d", batch=128, net_batches=[1, 16, 128],
                device_name="NVIDIA H100 80GB HBM3", driver="580", capability="9.0", sm_count=132,
                gpu_memory_gb=79.2, dtypes=["float16"], fastalex_cuda_graph=False, peak_entry="H100 SXM",
                peak_flops={"float16": 989.5e12}, budget_s=None, threads=1, not_run=[], quick=False,
                compile=dict(which="all", network_mode="max-autotune", layer_mode="default"))
    header = "\n".join(report.header_lines(meta))
    for text in ("NVIDIA H100 80GB HBM3", "driver 580", "CUDA 12.8", "cuDNN 91000", "torch 2.11.0", "triton 3.6.0",
                 "torch-tensorrt not installed", "cudnn.benchmark = True", "max-autotune for the networks",
                 "fastalex.cuda_graph: not available", "H100 SXM", "fastalex unfused"):
        assert text in header, text
    json_path, csv_path = report.write_results(str(tmp_path), "run", meta, rows, {}, {})
    assert json.load(open(json_path))["rows"][2]["providers"]["tensorrt"]["status"] == "not installed"
    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert [r["tensorrt_status"] for r in table] == ["n/a", "not installed", "not installed"]
    assert table[1]["fastalex_graph_images_per_s"] == "1000.0"
    md = open(report.write_markdown(str(tmp_path), "run", meta, rows, None)).read()
    assert "| alexnet.forward | float16 | 16 |" in md and "not available" in md and "BackendCompilerFailed" in md


def lrn_pool_rows():
    """An LRN + pool row (fused 1 ms, unfused 1.5 ms, torch 3 ms, torch.compile 2 ms), one whose
    fused op failed, and a network row (no unfused provider)."""
    def row(fastalex, case="alexnet.lrn1+pool1"):
        return make_row(case, "lrn_pool", 16, dict(fastalex=fastalex, fastalex_unfused=entry(0.0015),
                                                   torch=entry(0.003), torch_compile=entry(0.002)),
                        None, dtype="float32")

    net = make_row("alexnet.forward", "network", 16, dict(fastalex=entry(0.1), torch=entry(0.2),
                                                          torch_compile=entry(0.15)), None, dtype="float32")
    return [row(entry(0.001)), row(entry(0.001, rel_err=1.0, ok=False), "googlenet.pool1+lrn1"), net]


def test_fused_vs_unfused_ratio_table_and_csv(tmp_path, capsys):
    rows = lrn_pool_rows()
    assert rows[0]["speedup_vs_unfused"] == pytest.approx(1.5)
    assert rows[0]["speedup_vs_torch"] == pytest.approx(3.0)
    assert rows[1]["speedup_vs_unfused"] is None  # past its tolerance: not ranked
    assert rows[2]["speedup_vs_unfused"] is None and rows[2]["providers"]["fastalex_unfused"]["status"] == "n/a"
    assert report.shown_providers(rows) == ["fastalex", "fastalex_unfused", "torch", "torch_compile"]
    assert report.best_ratio(rows[2]) == pytest.approx(1.5)  # the unfused ops are no "other" provider
    report.print_table(rows, projected=True)
    lines = capsys.readouterr().out.splitlines()
    heads = lines[0].split()
    assert heads.index("unfused") < heads.index("torch")  # "unfused ms" next to fastalex's columns
    assert "fused vs unfused" in lines[0]
    assert "1.500" in lines[2] and "1.50x" in lines[2] and "3.00x" in lines[2]
    assert "n/a" in lines[4] and "!!" not in lines[4]
    meta = dict(not_run=[], stopped=None)
    report.print_notes(rows, meta, projected=True)
    notes = capsys.readouterr().out
    assert "fused vs unfused the fused op's speed-up" in notes
    assert "over torch eager and torch.compile of the same reference" in notes
    _, csv_path = report.write_results(str(tmp_path), "run", meta, rows, {}, {})
    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert [r["speedup_vs_unfused"] for r in table] == ["1.5", "", ""]
    assert table[0]["fastalex_unfused_median_s"] == "0.0015" and table[2]["fastalex_unfused_status"] == "n/a"
    png = report.plot(rows, dict(meta, device="cpu", fastalex="0", device_name="cpu", threads=2, batch=16, date="d",
                                 torch="2", triton=None), str(tmp_path / "run.png"))
    assert png is None if importlib.util.find_spec("matplotlib") is None else os.path.exists(png)


def test_unfused_provider_is_timed_and_error_checked(monkeypatch):
    # run_cheap with a fake timer (each callable has its own time): the unfused ops are measured
    # and compared with the float64 reference like every provider; a case without them says n/a.
    ref = torch.arange(6.0).reshape(1, 1, 2, 3)
    good, bad = ref.float(), ref.float() + 1.0
    times = {}

    def fake_time_fn(fn, device, quick):
        return times[fn], times[fn] * 0.9, times[fn] * 1.1

    monkeypatch.setattr(bench_run, "time_fn", fake_time_fn)
    args = bench_run.parse_args(["--device", "cpu", "--no-compile"])
    env = dict(tensorrt=None, tensorrt_status="n/a", cuda_graph=False)

    def run(unfused):
        case = case_defs.Case("alexnet.lrn1+pool1", "lrn_pool", (1, 1, 2, 3), 1.0, 1.0, lambda: good,
                              lambda: good, lambda: ref.double(), None, unfused=unfused)
        times.update({case.fastalex: 1e-3, case.torch: 4e-3, unfused: 3e-3})
        row = bench_run.run_cheap(case, "float32", args, env, dict(case=None, dtype=None, provider=None))
        return bench_run.finish_row(row, dict(compute=1e13, bandwidth=1e11), None)

    row = run(lambda: good)
    e = row["providers"]["fastalex_unfused"]
    assert (e["time_s"], e["rel_err"], e["ok"], e["status"]) == (3e-3, 0.0, True, None)
    assert row["speedup_vs_unfused"] == pytest.approx(3.0) and row["speedup_vs_torch"] == pytest.approx(4.0)
    e = run(lambda: bad)["providers"]["fastalex_unfused"]
    assert e["rel_err"] == pytest.approx(1 / 5) and e["ok"] is False
    assert report.provider_cell(e) == "3.000*"
    row = run(None)
    assert row["providers"]["fastalex_unfused"]["status"] == "n/a" and row["speedup_vs_unfused"] is None


def test_lrn_pool_cases_unfused_runs_fastalexs_two_ops_in_the_case_order(monkeypatch):
    from fastalex import ops

    calls = []
    for name in ("local_response_norm", "max_pool2d"):
        real = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *a, _real=real, _name=name: (calls.append(_name), _real(*a))[1])
    g = case_defs.Generators(0, "cpu")
    cases = list(case_defs.lrn_pool_cases(1, torch.float32, "cpu", g))
    assert [c.name for c in cases] == [layer[0] for layer in case_defs.LRN_POOL_LAYERS]
    for case, layer in zip(cases, case_defs.LRN_POOL_LAYERS):
        calls.clear()
        out, want = case.unfused(), case.reference64()
        lrn_first = layer[4]
        assert calls == (["local_response_norm", "max_pool2d"] if lrn_first else ["max_pool2d", "local_response_norm"])
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-6)
    # no other case has an unfused provider
    assert all(c.unfused is None for c in case_defs.lrn_cases(1, torch.float32, "cpu", g))
    assert all(c.unfused is None for c in case_defs.pool_cases(1, torch.float32, "cpu", g))


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_budget_rules_on_a_fake_clock():
    clock = FakeClock()
    b = budget_mod.Budget(400.0, clock=clock)
    b.begin_share(4)  # 100 s for the first dtype
    assert b.share_left() == 100.0 and b.allows_case()
    # no compilation seen yet: the guesses decide (AlexNet max-autotune guessed at 150 s)
    assert not b.allows_compile("torch_compile", "max-autotune", "alexnet.forward")
    assert b.allows_compile("torch_compile", "default", "layer")
    assert b.compile_estimate("tensorrt", "default", "layer") == 60.0  # no guess of its own
    clock.t = 60.0
    b.record_compile("torch_compile", "max-autotune", "alexnet.forward", 30.0)
    b.record_compile("torch_compile", "max-autotune", "alexnet.forward", 20.0)  # the longest counts
    assert b.compile_estimate("torch_compile", "max-autotune", "alexnet.forward") == 30.0
    assert b.allows_compile("torch_compile", "max-autotune", "alexnet.forward")  # 40 s left
    clock.t = 75.0
    assert not b.allows_compile("torch_compile", "max-autotune", "alexnet.forward")  # 25 s left
    clock.t = 101.0
    assert not b.allows_case()
    b.begin_share(3)  # what is left (299 s) over three dtypes
    assert b.share_left() == pytest.approx(299.0 / 3)
    assert b.remaining() == pytest.approx(299.0)
    unlimited = budget_mod.Budget(None, clock=clock)
    unlimited.begin_share(2)
    assert not unlimited.limited
    assert unlimited.allows_case() and unlimited.allows_compile("tensorrt", "default", "googlenet.forward")
    assert issubclass(budget_mod.BudgetExceeded, BaseException)
    assert not issubclass(budget_mod.BudgetExceeded, Exception)  # passes through `except Exception`


def test_priority_finishing_and_defaults():
    class C:
        def __init__(self, name, kind, batch):
            self.name, self.kind, self.batch = name, kind, batch

    cases = [C("alexnet.conv1", "conv", 128)] + [C(f"{n}.forward", "network", b)
                                                 for n in ("alexnet", "googlenet") for b in (1, 16, 128)]
    nets = [("alexnet.forward", 128), ("googlenet.forward", 128), ("alexnet.forward", 1),
            ("googlenet.forward", 1), ("alexnet.forward", 16), ("googlenet.forward", 16)]
    # first pass: the layers, then the networks at their largest batch, then the others
    assert [(c.name, c.batch) for c in bench_run.priority(cases)] == [("alexnet.conv1", 128)] + nets
    # second pass (compilations): the networks first
    assert [(c.name, c.batch) for c in bench_run.priority(cases, compiled=True)] == nets + [("alexnet.conv1", 128)]
    rows = [dict(kind=c.kind, batch=c.batch) for c in cases]
    assert bench_run.priority_order(rows, compiled=True) == bench_run.priority_order(cases, compiled=True)
    # a compiled provider a hard stop left pending is reported as skipped, rows in table order
    late = make_row("alexnet.forward", "network", 1,
                    dict(fastalex=entry(0.1), torch_compile=entry(status="pending")), None)
    early = make_row("alexnet.conv1", "conv", 1, dict(fastalex=entry(0.1)), None)
    rows = bench_run.finish_rows([(5, None, late), (0, None, early)], dict(compute=1e13, bandwidth=1e11), None)
    assert [r["case"] for r in rows] == ["alexnet.conv1", "alexnet.forward"]
    assert rows[1]["providers"]["torch_compile"]["status"] == "skipped: budget"
    args = bench_run.parse_args(["--device", "cpu", "--no-compile"])
    assert args.compile == "none"
    assert bench_run.compile_mode("network", args) == "default"  # never max-autotune on CPU
    args.device = "cuda"
    assert bench_run.compile_mode("network", args) == "max-autotune"
    assert bench_run.compile_mode("conv", args) == "default"
    args.max_autotune = True
    assert bench_run.compile_mode("conv", args) == "max-autotune"


def test_cpu_compute_ceiling_is_the_fma_peak():
    """On CPU the roofline's compute ceiling (and %peak's denominator) is the FMA loop's rate
    measured now, kept beside the GEMM's."""
    from benchmarks import roofline

    c = roofline.measure_ceilings("cpu", "float32", quick=True)
    assert c["compute"] == c["fma_peak"] and math.isfinite(c["fma_peak"]) and c["fma_peak"] > 0
    assert c["matmul"] > 0 and c["bandwidth"] > 0
    assert isinstance(torch.ops.fastalex.cpu_fma_peak(0.001), float)
