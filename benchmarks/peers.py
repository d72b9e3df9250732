"""The CPU inference engines a CPU user compares fastalex with: ONNX Runtime (CPU execution
provider, every graph optimisation) and OpenVINO (CPU, latency hint, float32 inference
precision), each fed the same weights through an ONNX export of the network's plain-torch
reference twin, with as many threads as torch's intra-op pool.

Both are optional: scripts/bench.sh installs them where it can; without them the benchmark's
columns say "not installed"."""
from __future__ import annotations

import importlib.util
import io
import os
import tempfile
import warnings

import torch

PEERS = ("onnxruntime", "openvino")


def status(name, device):
    """None when the peer can run here, else what its cells say."""
    if device != "cpu":
        return "n/a"
    for module in ((name,) if name == "onnxruntime" else (name, "onnx")):
        if importlib.util.find_spec(module) is None:
            return "not installed"
    return None


def export_onnx(model, example):
    """`model` (plain torch ops) as ONNX bytes, batch dimension dynamic. The TorchScript-based
    exporter: it needs no package beyond onnx, and maps every op the reference twins use."""
    f = io.BytesIO()
    # (the tracer's warnings about the models' shape checks are expected: the checks pass)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), f, dynamo=False, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=17)
    return f.getvalue()


def onnxruntime_runner(onnx_bytes, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])

    def run(x):
        return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])

    return run


def openvino_runner(onnx_bytes, threads):
    import openvino as ov

    core = ov.Core()
    # OpenVINO reads an ONNX model from a file (its weights are inside it).
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        with open(path, "wb") as f:
            f.write(onnx_bytes)
        compiled = core.compile_model(path, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                                                    "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()

    def run(x):
        return torch.from_numpy(request.infer({0: x.numpy()})[compiled.output(0)].copy())

    return run


RUNNERS = {"onnxruntime": onnxruntime_runner, "openvino": openvino_runner}


def runner(name, model, example, threads, cache):
    """A callable running the exported `model` on `example` through peer `name`; the export is
    shared by the peers and the batch sizes of one network (`cache`, keyed by the model)."""
    key = id(model)
    if key not in cache:
        cache[key] = export_onnx(model, example)
    run = RUNNERS[name](cache[key], threads)
    return lambda: run(example)
