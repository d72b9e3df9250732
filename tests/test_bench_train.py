"""The training-step benchmark (`benchmarks/run.py --train`, benchmarks/train_cases.py), without
asserting any time: every case's fastalex step returns the gradients the float64 step does,
within the gradient tolerance (and the kink-free kinds element by element within the forward's);
a wrong gradient is flagged; and a tiny --train run writes its tables and files, saying they are
forward + backward numbers."""
import csv
import glob
import json
import os
import sys

import pytest
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import fastalex  # noqa: E402
from benchmarks import cases as case_defs  # noqa: E402
from benchmarks import report  # noqa: E402
from benchmarks import run as bench_run  # noqa: E402
from benchmarks import train_cases  # noqa: E402

TOL = train_cases.TOLERANCE["float32"]
MAX_POOL2D = fastalex.ops.max_pool2d  # (test_a_wrong_gradient_fails replaces it)
KINDS = ("conv", "lrn", "pool", "lrn_pool", "linear", "network")


@pytest.fixture(scope="module")
def cases():
    """Every training case at batch 1 (layers and networks), by kind."""
    by_kind = {k: [] for k in KINDS}
    for case in train_cases.all_cases(1, torch.float32, "cpu", net_batches=[1]):
        by_kind[case.kind].append(case)
    return by_kind


def grad_count(case):
    """How many gradients the step returns: every input of a layer op, every network parameter."""
    return len(tuple(case.compile_target.parameters())) if case.kind == "network" else len(case.compile_args)


@pytest.mark.parametrize("kind", KINDS)
def test_fastalex_gradients_match_float64(cases, kind):
    tables = dict(conv=case_defs.CONV_LAYERS, lrn=case_defs.LRN_LAYERS, pool=case_defs.POOL_LAYERS,
                  lrn_pool=case_defs.LRN_POOL_LAYERS, linear=case_defs.LINEAR_LAYERS, network=case_defs.NETWORKS)
    assert len(cases[kind]) == len(tables[kind])  # every layer of the table, every network
    # ReLU and BatchNorm make float32 gradients differ from float64 near their kinks
    # (train_cases.TOLERANCE); LRN and max-pool of exact inputs have none to speak of, so each of
    # their gradient elements meets the forward's tolerance.
    tight = kind in ("lrn", "pool", "lrn_pool")
    for case in cases[kind]:
        assert case.mode == "train" and case.error is train_cases.grad_err
        want = case.reference64()
        providers = [("fastalex", case.fastalex), ("torch", case.torch)]
        if case.unfused is not None:
            providers.append(("unfused", case.unfused))
        for name, fn in providers:
            with torch.no_grad():  # as run.measure calls it: the step turns grad mode on itself
                grads = fn()
            assert len(grads) == grad_count(case) and all(g.dtype == torch.float32 for g in grads), case.name
            err = case.error(grads, want)
            assert err <= TOL, (case.name, name, err)
            if tight:
                for g, g64 in zip(grads, want):
                    assert bench_run.rel_err(g, g64) <= bench_run.TOLERANCE["float32"], (case.name, name)
        # torch.autograd.grad returns the gradients: nothing accumulates in .grad between steps
        leaves = tuple(case.compile_target.parameters()) if kind == "network" else case.compile_args
        assert all(t.requires_grad and t.grad is None for t in leaves), case.name


def test_flops_are_three_forwards(cases):
    forward = {c.name: c for gen in case_defs.LAYER_CASES
               for c in gen(1, torch.float32, "cpu", case_defs.Generators(0, "cpu"))}
    for kind in KINDS[:-1]:
        for case in cases[kind]:
            assert case.flops == 3 * forward[case.name].flops and case.bytes == 3 * forward[case.name].bytes
    for case in cases["network"]:
        assert case.flops == 3 * case_defs.network_flops(case.name.split(".")[0], 1)
    names = {c.name.split(" ")[0] for kind in KINDS for c in cases[kind]}
    assert train_cases.QUICK <= names  # no --quick name misspelt (it would drop its case silently)


class SpreadPool(torch.autograd.Function):
    """fastalex's max-pool forward with a wrong backward: the gradient spread over each window (an
    average pool's) instead of sent to the window's maximum."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        ctx.save_for_backward(x)
        ctx.args = (kernel_size, stride, padding, ceil_mode)
        return MAX_POOL2D(x, kernel_size, stride, padding, dilation, ceil_mode)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            (gx,) = torch.autograd.grad(F.avg_pool2d(xx, *ctx.args), xx, grad)
        return (gx,) + (None,) * 6


def test_a_wrong_gradient_fails(cases, monkeypatch):
    # fastalex.ops.max_pool2d, looked up when a step runs, is what the pool cases and the
    # networks' MaxPool2d (AlexNet's pool5) call: with a wrong backward, both steps' errors exceed
    # the tolerance, and run.py's first pass marks the row failed.
    monkeypatch.setattr(fastalex.ops, "max_pool2d", SpreadPool.apply)
    picked = [c for c in cases["pool"] + cases["network"] if c.name in ("alexnet.pool1 maxpool", "alexnet.train")]
    assert [c.name for c in picked] == ["alexnet.pool1 maxpool", "alexnet.train"]
    monkeypatch.setattr(bench_run, "time_fn", lambda fn, device, quick: (1.0, 1.0, 1.0))
    args = bench_run.parse_args(["--device", "cpu", "--train", "--no-compile"])
    env = dict(tensorrt=None, tensorrt_status="n/a", cuda_graph=False, onnx={})
    for case in picked:
        row = bench_run.run_cheap(case, "float32", args, env, dict(case=None, dtype=None, provider=None))
        p = row["providers"]
        assert p["fastalex"]["rel_err"] > 2 * TOL and p["fastalex"]["ok"] is False, case.name
        assert p["torch"]["rel_err"] <= TOL and p["torch"]["ok"] is True  # the reference is untouched
        assert row["mode"] == "train"
        # the inference engines time no training step
        assert all(p[name]["status"] == "n/a" for name in ("fastalex_graph", "tensorrt", "onnxruntime", "openvino"))


def test_grad_err():
    a, b = torch.tensor([3.0, -4.0]), torch.tensor([[10.0, 0.0]])
    ref = (a.double(), b.double())
    err = train_cases.grad_err
    assert err((a, b), ref) == 0.0
    # each gradient relative to its own norm, the worst counts
    assert err((a + torch.tensor([0.0, 0.5]), b + 1.0), ref) == pytest.approx(2 ** 0.5 / 10)
    assert err((a * 1.1, b), ref) == pytest.approx(0.1)
    inf = float("inf")
    assert err((a,), ref) == inf and err((a, b.flatten()), ref) == inf  # missing, misshapen
    assert err((a, b * float("nan")), ref) == inf
    zero = torch.zeros(2)
    assert err((zero,), (zero.double(),)) == 0.0 and err((a,), (zero.double(),)) == inf


def test_train_run_writes_forward_plus_backward_results(tmp_path, capsys):
    # the layers only: a network's step is tens of times slower (the networks' table: below)
    rc = bench_run.main(["--train", "--quick", "--compile", "none", "--device", "cpu", "--batch", "1",
                         "--cases", "alexnet.lrn1,alexnet.fc8", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "Forward + backward (training steps" in out and "rel.err: the gradients' error" in out
    for name in ("alexnet.lrn1", "alexnet.lrn1+pool1", "alexnet.fc8 linear"):
        assert name in out, name
    heads = next(line for line in out.splitlines() if line.startswith("case "))
    assert "ONNX Runtime" not in out and "/copy" not in heads  # the forward's engines and yardstick
    stems = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(str(tmp_path / "*"))}
    assert len(stems) == 1 and stems.pop().startswith("cpu-train-quick-")
    (json_path,) = glob.glob(str(tmp_path / "*.json"))
    results = json.load(open(json_path))
    assert results["meta"]["mode"] == "train"
    rows = results["rows"]
    assert [r["case"] for r in rows] == ["alexnet.lrn1", "alexnet.lrn1+pool1", "alexnet.fc8 linear"]
    assert all(r["mode"] == "train" and r["ok"] and r["providers"]["fastalex"]["time_s"] for r in rows)
    assert rows[1]["providers"]["fastalex_unfused"]["time_s"] and rows[1]["speedup_vs_unfused"]
    with open(json_path[:-5] + ".csv") as f:
        assert {r["mode"] for r in csv.DictReader(f)} == {"train"}
    md = open(json_path[:-5] + ".md").read()
    assert "## Forward + backward (training steps" in md and "mode: Forward + backward" in md


def test_train_network_rows_say_training_images_per_second(tmp_path, capsys):
    def entry(t):
        return dict(bench_run.new_entry(), time_s=t, q20_s=t, q80_s=t, rel_err=1e-3, ok=True)

    rows = []
    for mode in ("train", "forward"):
        row = dict(case=f"alexnet.{mode}", kind="network", mode=mode, dtype="float32", batch=2, input=[2, 3, 227, 227],
                   flops=1e9, min_bytes=1e6, copy_time_s=None, time_over_copy=None,
                   providers={p: bench_run.new_entry("n/a") for p in report.PROVIDERS})
        row["providers"].update(fastalex=entry(0.5), torch=entry(1.0), torch_compile=bench_run.new_entry("off"))
        rows.append(bench_run.finish_row(row, dict(compute=1e12, bandwidth=1e10), None))
    train, forward = rows
    report.print_networks([train])
    assert "Networks: training images/s (forward + backward)" in capsys.readouterr().out
    report.print_networks([forward])
    assert "Networks: images/s (batch" in capsys.readouterr().out
    meta = dict(fastalex="0", date="d", device="cpu", device_name="cpu", torch="2", cuda=None, cudnn=None,
                triton=None, batch=2, net_batches=[2], threads=2, dtypes=["float32"], mode="train", peers={},
                compile=dict(which="none"))
    md = open(report.write_markdown(str(tmp_path), "run", meta, [train], None)).read()
    assert "## Networks: training images/s (forward + backward) (measured)" in md
    assert "| alexnet.train | float32 | 2 | 4.0 | 2.0 | off | 2.00x |" in md
    forward_md = open(report.write_markdown(str(tmp_path), "fwd", dict(meta, mode="forward"), [forward], None)).read()
    assert "Forward + backward" not in forward_md and "## Networks: images/s (measured)" in forward_md
