"""The per-layer choice between the CUDA and the Triton conv (fastalex.ops.conv_backend).

The selection logic runs on the CPU: a fake GPU name (``conv_backend.device_info``), a fake
timer (``conv_backend.timer``) that returns set times (and may run the candidate it is
given: the CUDA op on CPU tensors is the CPU kernel, the Triton op runs on the interpreter),
and a build that claims CUDA kernels. Fake CUDA tensors (FakeTensorMode, no GPU needed) show
which op ``fastalex.ops.conv2d_relu`` puts in a traced graph. The GPU tests at the end time
and run both real candidates.
"""
import json
import os

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.proxy_tensor import make_fx

import contract as ct
from conftest import HAS_CUDA, REDUCTION_TOL, assert_close, randn
from fastalex import ops
from fastalex.ops import conv_backend as cb

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
F32, F64, F16, BF16 = torch.float32, torch.float64, torch.float16, torch.bfloat16
ARGS = ([1, 1], [1, 1], [1, 1], 1)  # stride, padding, dilation, groups: the op's normalised form


class FakeTimer:
    """Returns times[backend] (milliseconds) and records each call; with `run`, also runs the
    candidate and keeps its output."""

    def __init__(self, times=None, run=False):
        self.times = times or {"cuda": 2.0, "triton": 1.0}
        self.calls = []
        self.outputs = {}
        self.run = run

    def __call__(self, backend, fn):
        self.calls.append(backend)
        if self.run:
            self.outputs[backend] = fn()
        t = self.times[backend]
        if isinstance(t, Exception):
            raise t
        return t


def no_timer(backend, fn):
    raise AssertionError(f"timed {backend}, but nothing should be timed here")


@pytest.fixture(autouse=True)
def selector(monkeypatch):
    """A fresh selector on a fake GPU, with a build that has CUDA kernels, no variables set,
    benchmark mode off and TF32 on (torch's default for convolutions)."""
    cb.reset()
    monkeypatch.setattr(cb, "device_info", lambda index: ("Fake GPU", "9.0"))
    monkeypatch.setattr(cb, "_cuda_built", lambda: True)
    monkeypatch.setattr(cb, "timer", no_timer)
    monkeypatch.delenv(cb.ENV_BACKEND, raising=False)
    monkeypatch.delenv(cb.ENV_CACHE, raising=False)
    bench, tf32 = torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = False, True
    yield
    torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = bench, tf32
    cb.reset()


def tensors(n=2, c=16, h=6, w=5, oc=8, k=3, groups=1, dtype=F16, fmt="nhwc", bias=True):
    x = ct.to_format(randn(n, c, h, w, dtype=dtype), fmt)
    wt = randn(oc, c // groups, k, k, dtype=dtype, scale=(c // groups * k * k) ** -0.5)
    return x, wt, (randn(oc, dtype=dtype) if bias else None)


def choose(x, wt, b, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1):
    return cb.choose(x, wt, b, list(stride), list(padding), list(dilation), groups)


# ---------------------------------------------------------------- timing (benchmark mode)
def test_times_each_candidate_once_and_keeps_the_faster(monkeypatch):
    torch.backends.cudnn.benchmark = True
    timer = FakeTimer({"cuda": 2.0, "triton": 1.0})
    monkeypatch.setattr(cb, "timer", timer)
    x, wt, b = tensors()
    assert choose(x, wt, b) == "triton"
    assert timer.calls == ["cuda", "triton"]
    for _ in range(3):  # the same layer again: from memory, no timing
        assert choose(x, wt, b) == "triton"
    assert timer.calls == ["cuda", "triton"]
    assert cb.timed_choices() == {cb.make_key(x, wt, b, *ARGS): "triton"}
    # Same times the other way round, on another layer: the CUDA kernel.
    timer.times = {"cuda": 0.5, "triton": 1.0}
    assert choose(*tensors(c=32)) == "cuda"
    # A tie goes to the CUDA kernel (first candidate).
    timer.times = {"cuda": 1.0, "triton": 1.0}
    assert choose(*tensors(c=48)) == "cuda"
    assert timer.calls == ["cuda", "triton"] * 3


def test_the_timer_runs_each_candidate_on_the_calls_tensors(monkeypatch):
    # The runs the timer gets compute the conv: the CUDA op (on CPU tensors: the CPU kernel) and
    # the Triton op (the interpreter), on the call's own arguments, without autograd.
    if not INTERPRET:
        pytest.skip("runs the Triton op on CPU tensors: needs TRITON_INTERPRET=1")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    timer = FakeTimer(run=True)
    monkeypatch.setattr(cb, "timer", timer)
    x, wt, b = tensors(dtype=F32, fmt="nchw")
    wt.requires_grad_(True)
    assert choose(x, wt, b, (2, 1), (1, 0), (1, 1), 1) == "triton"
    ref = F.relu(F.conv2d(x.double(), wt.detach().double(), b.double(), (2, 1), (1, 0)))
    for backend in ("cuda", "triton"):
        out = timer.outputs[backend]
        assert not out.requires_grad, backend
        assert_close(out, ref, REDUCTION_TOL[F32])


def test_different_layers_are_timed_separately(monkeypatch):
    torch.backends.cudnn.benchmark = True
    timer = FakeTimer()
    monkeypatch.setattr(cb, "timer", timer)
    x, wt, b = tensors()
    variants = [
        (x, wt, b, ARGS),
        (tensors(n=3)[0], wt, b, ARGS),                        # batch
        (x.contiguous(), wt, b, ARGS),                          # layout
        (x.to(BF16), wt.to(BF16), b.to(BF16), ARGS),           # dtype
        (x, wt, None, ARGS),                                    # no bias
        (x, wt, b, ([2, 2], [1, 1], [1, 1], 1)),               # stride
        (x, wt, b, ([1, 1], [0, 0], [1, 1], 1)),               # padding
        (x, wt, b, ([1, 1], [2, 2], [2, 2], 1)),               # dilation
        (x, wt[:, :8].contiguous(), b, ([1, 1], [1, 1], [1, 1], 2)),  # groups
        (x[:, :, 1:], wt, b, ARGS),                             # a view: other shape, strides
    ]
    for x_, w_, b_, args in variants:
        cb.choose(x_, w_, b_, *args)
    assert timer.calls == ["cuda", "triton"] * len(variants)
    assert len(cb.timed_choices()) == len(variants)
    # float32: the TF32 flag is part of the key.
    xf, wf, bf = x.float(), wt.float(), b.float()
    cb.choose(xf, wf, bf, *ARGS)
    torch.backends.cudnn.allow_tf32 = False
    cb.choose(xf, wf, bf, *ARGS)
    # Another GPU.
    cb.reset()
    monkeypatch.setattr(cb, "device_info", lambda index: ("Other GPU", "8.0"))
    cb.choose(x, wt, b, *ARGS)
    assert timer.calls == ["cuda", "triton"] * (len(variants) + 3)
    assert next(iter(cb.timed_choices())).device == "Other GPU"


def test_the_tf32_flag_is_the_one_torch_convolutions_read():
    # torch's per-op setting (torch >= 2.9): readable where the legacy allow_tf32 raises (conv
    # and RNN set differently), and followed by the key and by the Triton kernel alike.
    cudnn = torch.backends.cudnn
    if getattr(cudnn, "conv", None) is None:
        pytest.skip("torch without per-op TF32 settings")
    x, wt, b = tensors(dtype=F32)
    old = cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision
    try:
        cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision = "tf32", "ieee"
        with pytest.raises(RuntimeError):
            cudnn.allow_tf32  # noqa: B018  (the legacy flag is ambiguous now)
        assert cb.make_key(x, wt, b, *ARGS).tf32
        cudnn.conv.fp32_precision = "ieee"
        assert not cb.make_key(x, wt, b, *ARGS).tf32
        if INTERPRET:  # the Triton kernel: IEEE products now, TF32 ones back with "tf32"
            from fastalex.triton import conv2d_relu as tconv

            ieee = tconv(x, wt, b, 1, 1)
            assert_close(ieee, F.relu(F.conv2d(x.double(), wt.double(), b.double(), 1, 1)), REDUCTION_TOL[F32])
            cudnn.conv.fp32_precision = "tf32"
            assert not torch.equal(tconv(x, wt, b, 1, 1), ieee)
    finally:
        cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision = old
        cudnn.allow_tf32 = True


def test_benchmark_off_uses_the_heuristic_without_timing():
    for fmt, c, want in (("nhwc", 16, "cuda"), ("nchw", 16, "triton"), ("nhwc", 3, "triton")):
        x, wt, b = tensors(c=c, fmt=fmt)
        assert choose(x, wt, b) == want == cb.heuristic(cb.make_key(x, wt, b, *ARGS))
        assert choose(x, wt, b) == want
    assert cb.timed_choices() == {}  # heuristic choices are not timed ones


def test_no_timing_during_cuda_graph_capture(monkeypatch):
    torch.backends.cudnn.benchmark = True
    monkeypatch.setattr(cb, "_capturing", lambda: True)
    # On CUDA tensors where there is a GPU: there the Triton kernel (not interpreted) takes no CPU tensors.
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose(*(t.to(dev) for t in tensors(fmt="nchw"))) == "triton"
    assert cb.timed_choices() == {}


def test_a_timed_choice_outlives_benchmark_mode(monkeypatch):
    torch.backends.cudnn.benchmark = True
    timer = FakeTimer({"cuda": 1.0, "triton": 2.0})
    monkeypatch.setattr(cb, "timer", timer)
    x, wt, b = tensors(fmt="nchw")  # the heuristic would take Triton
    assert choose(x, wt, b) == "cuda"
    torch.backends.cudnn.benchmark = False
    monkeypatch.setattr(cb, "timer", no_timer)
    assert choose(x, wt, b) == "cuda"


def test_a_candidate_that_fails_while_timed_is_left_out(monkeypatch):
    torch.backends.cudnn.benchmark = True
    timer = FakeTimer({"cuda": 5.0, "triton": RuntimeError("out of resources: shared memory")})
    monkeypatch.setattr(cb, "timer", timer)
    with pytest.warns(RuntimeWarning, match=r"triton implementation failed while timed.*out of resources"):
        assert choose(*tensors(fmt="nchw")) == "cuda"
    # Both fail: the heuristic decides, and nothing is kept as timed.
    timer.times = {"cuda": RuntimeError("a"), "triton": RuntimeError("b")}
    with pytest.warns(RuntimeWarning):
        assert choose(*tensors(c=32, fmt="nchw")) == "triton"
    assert len(cb.timed_choices()) == 1


# ---------------------------------------------------------------- candidates
def test_one_candidate_is_not_timed(monkeypatch):
    torch.backends.cudnn.benchmark = True
    x, wt, b = tensors(dtype=F64)  # no float64 Triton kernel
    assert choose(x, wt, b) == "cuda"
    monkeypatch.setattr(cb, "_cuda_built", lambda: False)  # a build without CUDA kernels
    assert choose(*tensors()) == "triton"
    monkeypatch.setattr(cb, "_cuda_built", lambda: True)
    monkeypatch.setattr(cb, "_triton_importable", lambda: False)  # no triton
    assert choose(*tensors()) == "cuda"
    assert cb.timed_choices() == {}


def test_arguments_the_triton_kernel_rejects_go_to_the_cuda_op(monkeypatch):
    # The CUDA op then raises the op's own error; nothing is timed.
    torch.backends.cudnn.benchmark = True
    x, wt, b = tensors(fmt="nchw")
    assert choose(x, wt.float(), b) == "cuda"                       # weight dtype
    assert choose(x, wt, b.float()) == "cuda"                       # bias dtype
    assert choose(x, wt, b[:5]) == "cuda"                           # bias size
    assert choose(x, wt, b, groups=3) == "cuda"                     # groups do not divide 16
    assert choose(x, randn(8, 16, 9, 9, dtype=F16), b, padding=(0, 0)) == "cuda"  # kernel too large
    assert choose(x[0], wt, b) == "cuda"                            # 3-D input
    assert cb.timed_choices() == {}


# ---------------------------------------------------------------- FASTALEX_CONV_BACKEND
@pytest.mark.parametrize("value, want", [("cuda", "cuda"), ("triton", "triton"), ("CUDA", "cuda"), (" triton ", "triton"),
                                         ("auto", "timed"), ("", "timed")])
def test_the_variable_forces_a_backend(monkeypatch, value, want):
    torch.backends.cudnn.benchmark = True
    timer = FakeTimer({"cuda": 3.0, "triton": 1.0})
    monkeypatch.setattr(cb, "timer", timer)
    monkeypatch.setenv(cb.ENV_BACKEND, value)
    x, wt, b = tensors()  # the heuristic's choice would be "cuda", the timer's "triton"
    assert choose(x, wt, b) == ("triton" if want == "timed" else want)
    assert timer.calls == (["cuda", "triton"] if want == "timed" else [])
    # Forcing also holds where the other one is the only candidate: float64 on Triton
    # then fails in the Triton kernel, with its own error.
    if want == "triton":
        assert choose(*tensors(dtype=F64)) == "triton"


def test_a_bad_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(cb.ENV_BACKEND, "cudnn")
    msg = r"FASTALEX_CONV_BACKEND must be one of cuda, triton, auto \(or unset, meaning auto\), got 'cudnn'"
    with pytest.raises(ValueError, match=msg):
        choose(*tensors())
    with FakeTensorMode():  # through the public function, on (fake) CUDA tensors
        x = torch.empty(1, 16, 5, 5, device="cuda")
        w = torch.empty(8, 16, 3, 3, device="cuda")
        with pytest.raises(ValueError, match=msg):
            ops.conv2d_relu(x, w)
    # CPU tensors never ask.
    x, wt, b = tensors(dtype=F32, fmt="nchw")
    ops.conv2d_relu(x, wt, b)


# ---------------------------------------------------------------- the cache file
def read(path):
    with open(path) as f:
        return json.load(f)


def test_cache_file_round_trip(monkeypatch, tmp_path):
    path = tmp_path / "choices.json"
    monkeypatch.setenv(cb.ENV_CACHE, str(path))
    torch.backends.cudnn.benchmark = True
    timer = FakeTimer({"cuda": 1.5, "triton": 0.5})
    monkeypatch.setattr(cb, "timer", timer)
    x, wt, b = tensors()
    assert choose(x, wt, b) == "triton"
    data = read(path)
    key = cb.make_key(x, wt, b, *ARGS)
    assert data["format"] == cb.CACHE_FORMAT
    assert data["entries"] == {cb.versions(): {key.text(): {"backend": "triton", "ms": {"cuda": 1.5, "triton": 0.5}}}}
    assert "Fake GPU" in key.text() and "torch " + torch.__version__ in cb.versions()
    # A new process (memory forgotten) reads the choice back, without timing; benchmark mode
    # on or off.
    for bench in (True, False):
        cb.reset()
        monkeypatch.setattr(cb, "timer", no_timer)
        torch.backends.cudnn.benchmark = bench
        assert choose(x, wt, b) == "triton"
    # A second layer is added to the same file.
    cb.reset()
    torch.backends.cudnn.benchmark = True
    monkeypatch.setattr(cb, "timer", FakeTimer({"cuda": 0.1, "triton": 0.5}))
    x2, w2, b2 = tensors(c=32)
    assert choose(x2, w2, b2) == "cuda"
    assert len(read(path)["entries"][cb.versions()]) == 2
    assert not [p for p in os.listdir(tmp_path) if p != "choices.json"], "temporary files left behind"


def test_an_empty_cache_file_is_a_new_one(monkeypatch, tmp_path):
    path = tmp_path / "choices.json"
    path.write_text("")  # touch
    os.chmod(path, 0o640)
    monkeypatch.setenv(cb.ENV_CACHE, str(path))
    torch.backends.cudnn.benchmark = True
    monkeypatch.setattr(cb, "timer", FakeTimer())
    choose(*tensors())
    assert len(read(path)["entries"][cb.versions()]) == 1
    assert os.stat(path).st_mode & 0o777 == 0o640  # the file keeps its permissions


def test_cache_file_is_read_lazily_and_merged_with_other_writers(monkeypatch, tmp_path):
    path = tmp_path / "choices.json"
    monkeypatch.setenv(cb.ENV_CACHE, str(path))
    torch.backends.cudnn.benchmark = True
    monkeypatch.setattr(cb, "timer", FakeTimer())
    open_calls = []
    real_read = cb._read_file
    monkeypatch.setattr(cb, "_read_file", lambda p: open_calls.append(p) or real_read(p))
    choose(*tensors())                   # reads once (no file yet), writes (reads again to merge)
    choose(*tensors())                   # from memory: no reading
    assert len(open_calls) == 2
    # Another process adds an entry meanwhile: the next write keeps it.
    data = read(path)
    data["entries"][cb.versions()]["[\"another process\"]"] = {"backend": "cuda", "ms": {}}
    path.write_text(json.dumps(data))
    choose(*tensors(c=32))
    assert "[\"another process\"]" in read(path)["entries"][cb.versions()]
    assert len(read(path)["entries"][cb.versions()]) == 3


def test_cache_file_is_written_atomically(monkeypatch, tmp_path):
    # The new contents go to a temporary file in the same directory, renamed over the file;
    # when the rename fails the old file is intact, no temporary file stays, and a warning says so.
    path = tmp_path / "choices.json"
    monkeypatch.setenv(cb.ENV_CACHE, str(path))
    torch.backends.cudnn.benchmark = True
    monkeypatch.setattr(cb, "timer", FakeTimer())
    choose(*tensors())
    before = path.read_text()
    renames = []
    real_replace = os.replace

    def failing_replace(src, dst):
        renames.append((src, dst))
        assert os.path.dirname(src) == str(tmp_path) and json.loads(open(src).read())  # complete, beside it
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cb.os, "replace", failing_replace)
    with pytest.warns(RuntimeWarning, match=r"could not write the conv backend cache .*No space left"):
        assert choose(*tensors(c=32)) == "triton"
    assert renames and renames[0][1] == str(path)
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["choices.json"]
    monkeypatch.setattr(cb.os, "replace", real_replace)
    choose(*tensors(c=48))
    assert len(read(path)["entries"][cb.versions()]) == 3  # the failed write's entry went with the next


@pytest.mark.parametrize("contents", ["{not json", "[1, 2]", '{"format": 99, "entries": {}}', '{"format": 1}',
                                      '{"format": 1, "entries": {"v": 3}}'],
                         ids=["invalid", "list", "other_format", "no_entries", "bad_section"])
def test_a_corrupt_cache_file_is_ignored_with_a_warning(monkeypatch, tmp_path, contents):
    path = tmp_path / "choices.json"
    path.write_text(contents)
    monkeypatch.setenv(cb.ENV_CACHE, str(path))
    torch.backends.cudnn.benchmark = True
    timer = FakeTimer()
    monkeypatch.setattr(cb, "timer", timer)
    with pytest.warns(RuntimeWarning, match=r"ignoring the conv backend cache .*choices.json named by "
                                            r"FASTALEX_CONV_CACHE"):
        assert choose(*tensors()) == "triton"
    assert timer.calls == ["cuda", "triton"]  # timed; kept in memory
    assert choose(*tensors()) == "triton"
    assert timer.calls == ["cuda", "triton"]
    assert path.read_text() == contents  # never written over


def test_entries_of_other_versions_are_not_used(monkeypatch, tmp_path):
    x, wt, b = tensors()
    key = cb.make_key(x, wt, b, *ARGS)
    old = "torch 1.0 | triton 0.1 | fastalex 0.0.1"
    path = tmp_path / "choices.json"
    path.write_text(json.dumps({"format": 1, "entries": {old: {key.text(): {"backend": "cuda", "ms": {}}}}}))
    monkeypatch.setenv(cb.ENV_CACHE, str(path))
    torch.backends.cudnn.benchmark = True
    timer = FakeTimer({"cuda": 2.0, "triton": 1.0})
    monkeypatch.setattr(cb, "timer", timer)
    assert choose(x, wt, b) == "triton"
    assert timer.calls == ["cuda", "triton"]
    entries = read(path)["entries"]
    assert entries[old] == {key.text(): {"backend": "cuda", "ms": {}}}  # kept, for those versions
    assert entries[cb.versions()][key.text()]["backend"] == "triton"
    # An entry naming no known backend is ignored.
    cb.reset()
    data = read(path)
    data["entries"][cb.versions()][key.text()]["backend"] = "cudnn"
    path.write_text(json.dumps(data))
    assert choose(x, wt, b) == "triton"
    assert timer.calls == ["cuda", "triton"] * 2


# ---------------------------------------------------------------- the heuristic
# (layer, N, C, H, W, OC, k, stride, padding, groups): the networks' layers at full size.
NET = {
    "alexnet.conv1": (128, 3, 227, 227, 96, 11, 4, 0, 1),
    "alexnet.conv2": (128, 96, 27, 27, 256, 5, 1, 2, 2),
    "alexnet.conv3": (128, 256, 13, 13, 384, 3, 1, 1, 1),
    "alexnet.conv4": (128, 384, 13, 13, 384, 3, 1, 1, 2),
    "googlenet.conv1": (128, 3, 224, 224, 64, 7, 2, 3, 1),
    "googlenet.conv2_reduce": (128, 64, 56, 56, 64, 1, 1, 0, 1),
    "googlenet.conv2": (128, 64, 56, 56, 192, 3, 1, 1, 1),
    "inception4e.5x5": (128, 32, 14, 14, 128, 5, 1, 2, 1),
    "odd_channels": (128, 7, 28, 28, 64, 3, 1, 1, 1),
}
CASES = [
    # the stems (3 channels): the CUDA kernel's element gather -> Triton, in every tensor-core dtype
    ("alexnet.conv1", F16, "nhwc", True, "triton"),
    ("alexnet.conv1", BF16, "nchw", True, "triton"),
    ("googlenet.conv1", F16, "nhwc", True, "triton"),
    ("googlenet.conv1", F32, "nhwc", True, "triton"),
    # channels per group a multiple of 16 bytes, channels_last -> the tensor-core kernel
    ("alexnet.conv2", F16, "nhwc", True, "cuda"),       # 48 channels per group
    ("alexnet.conv3", BF16, "nhwc", True, "cuda"),
    ("alexnet.conv4", F32, "nhwc", True, "cuda"),       # TF32, 192 channels per group
    ("googlenet.conv2_reduce", F16, "nhwc", True, "cuda"),
    ("googlenet.conv2", F16, "nhwc", True, "cuda"),
    ("inception4e.5x5", BF16, "nhwc", True, "cuda"),
    # NCHW or strided: the CUDA kernel would copy the input to channels_last -> Triton
    ("alexnet.conv3", F16, "nchw", True, "triton"),
    ("googlenet.conv2", BF16, "strided", True, "triton"),
    ("alexnet.conv4", F32, "nchw", True, "triton"),
    # odd channel counts -> Triton
    ("odd_channels", F16, "nhwc", True, "triton"),
    # exact float32 and float64 -> CUDA, whatever the layer
    ("alexnet.conv1", F32, "nhwc", False, "cuda"),
    ("googlenet.conv2", F32, "nchw", False, "cuda"),
    ("alexnet.conv1", F64, "nchw", False, "cuda"),
    ("alexnet.conv3", F64, "nhwc", False, "cuda"),
]


def meta_layer(name, dtype, fmt):
    n, c, h, w, oc, k, s, p, g = NET[name]
    x = torch.empty(n, c, h, w, dtype=dtype, device="meta")
    x = {"nchw": x, "nhwc": x.contiguous(memory_format=torch.channels_last),
         "strided": torch.empty(n, c, h, 2 * w, dtype=dtype, device="meta")[..., ::2]}[fmt]
    wt = torch.empty(oc, c // g, k, k, dtype=dtype, device="meta")
    return x, wt, torch.empty(oc, dtype=dtype, device="meta"), [s, s], [p, p], [1, 1], g


@pytest.mark.parametrize("name, dtype, fmt, tf32, want", CASES,
                         ids=[f"{c[0]}-{str(c[1])[6:]}-{c[2]}{'-tf32' if c[1] == F32 and c[3] else ''}" for c in CASES])
def test_heuristic_on_the_networks_layers(name, dtype, fmt, tf32, want):
    torch.backends.cudnn.allow_tf32 = tf32
    args = meta_layer(name, dtype, fmt)
    assert cb.heuristic(cb.make_key(*args)) == want
    assert cb.choose(*args) == want  # meta tensors: the untimed path gives the same


def test_heuristic_edge_rules():
    torch.backends.cudnn.allow_tf32 = True
    # TF32 takes 4 float32 channels per 16 bytes; float16 needs 8.
    assert cb.heuristic(cb.make_key(*tensors(c=4, dtype=F32), *ARGS)) == "cuda"
    assert cb.heuristic(cb.make_key(*tensors(c=4, dtype=F16), *ARGS)) == "triton"
    # A channels_last view starting off a 16-byte boundary: the CUDA kernel would copy it.
    big = randn(2, 17, 6, 5, dtype=F16).contiguous(memory_format=torch.channels_last)
    x = big[:, 1:]
    assert x.stride(1) == 1 and x.storage_offset() == 1
    assert cb.heuristic(cb.make_key(x, randn(8, 16, 3, 3, dtype=F16), None, *ARGS)) == "triton"
    # A sample past 2^31 elements: the tensor-core kernel cannot address it -> Triton, even
    # channels_last with 16-byte channel groups.
    x = torch.empty(1, 64, 8192, 4097, dtype=F16, device="meta").contiguous(memory_format=torch.channels_last)
    assert cb.heuristic(cb.make_key(x, torch.empty(64, 64, 3, 3, dtype=F16, device="meta"), None, *ARGS)) == "triton"
    x = torch.empty(1, 64, 8192, 4095, dtype=F16, device="meta").contiguous(memory_format=torch.channels_last)
    assert cb.heuristic(cb.make_key(x, torch.empty(64, 64, 3, 3, dtype=F16, device="meta"), None, *ARGS)) == "cuda"


# ---------------------------------------------------------------- tracing: no timing
def fake_cuda(*shapes, dtype=F16, channels_last=True):
    out = []
    for shape in shapes:
        t = torch.empty(*shape, dtype=dtype, device="cuda")
        out.append(t.contiguous(memory_format=torch.channels_last) if channels_last and t.dim() == 4 else t)
    return out


def traced_ops(fn, *args):
    """The fastalex ops in make_fx's graph of fn(*args)."""
    graph = make_fx(fn)(*args).graph
    return [str(n.target) for n in graph.nodes if n.op == "call_function" and "fastalex" in str(n.target)]


@pytest.mark.parametrize("env, stem, body", [(None, "conv2d_relu_triton", "conv2d_relu"),
                                             ("cuda", "conv2d_relu", "conv2d_relu"),
                                             ("triton", "conv2d_relu_triton", "conv2d_relu_triton")])
def test_the_public_function_runs_the_chosen_op_on_cuda_tensors(monkeypatch, env, stem, body):
    # Fake CUDA tensors (no GPU needed): the stem goes to Triton and a channels_last 16-channel
    # layer to the CUDA kernel by the heuristic, or both where the variable says; never timed.
    torch.backends.cudnn.benchmark = True
    if env:
        monkeypatch.setenv(cb.ENV_BACKEND, env)
    with FakeTensorMode(allow_non_fake_inputs=True):
        x, w1, w2 = fake_cuda((2, 3, 17, 17), (16, 3, 3, 3), (8, 16, 3, 3))
        got = traced_ops(lambda x, w1, w2: ops.conv2d_relu(ops.conv2d_relu(x, w1, None, 1, 1), w2, None, 1, 1),
                         x, w1, w2)
    assert got == [f"fastalex.{stem}.default", f"fastalex.{body}.default"]
    assert cb.timed_choices() == {}


def test_cpu_tensors_never_ask(monkeypatch):
    monkeypatch.setattr(cb, "choose", lambda *a: pytest.fail("the selector ran for CPU tensors"))
    x, wt, b = tensors(dtype=F32, fmt="nhwc")
    assert_close(ops.conv2d_relu(x, wt, b, 1, 1), F.relu(F.conv2d(x.double(), wt.double(), b.double(), 1, 1)),
                 REDUCTION_TOL[F32])


def aot_graphs():
    """A torch.compile backend that records AOTAutograd's forward graphs and runs them."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = []
    return graphs, aot_autograd(fw_compiler=lambda gm, example: graphs.append(gm) or make_boxed_func(gm.forward))


def fastalex_ops_in(gm):
    return [str(n.target) for n in gm.graph.nodes if n.op == "call_function" and "fastalex" in str(n.target)]


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_under_torch_compile_the_choice_is_made_while_tracing_without_timing(monkeypatch, dynamic):
    # The public function under torch.compile(fullgraph=True): the selector runs while
    # AOTAutograd traces (fake tensors), never times, and its choice is the op in the graph --
    # a timed choice for a static shape, else the heuristic (with dynamic shapes no timed
    # choice matches). CPU tensors stand for CUDA ones (selects_for), so both ops really run:
    # the CUDA op's CPU kernel and the Triton op on the interpreter.
    if not INTERPRET:
        pytest.skip("runs the Triton op on CPU tensors: needs TRITON_INTERPRET=1")
    monkeypatch.setattr(cb, "selects_for", lambda input: True)
    torch.backends.cudnn.benchmark = True
    torch._dynamo.reset()
    x, wt, b = tensors(dtype=F32, fmt="nchw")  # TF32 on, NCHW: the heuristic takes Triton
    cb._state.timed[cb.make_key(x, wt, b, *ARGS)] = "cuda"
    graphs, backend = aot_graphs()
    compiled = torch.compile(ops.conv2d_relu, fullgraph=True, backend=backend, dynamic=dynamic)
    tol = ct.TOLERANCES["reduction_tf32"][F32]
    x3 = tensors(n=3, dtype=F32, fmt="nchw")[0]
    for inp in (x, x3):
        out = compiled(inp, wt, b, 1, 1)
        assert_close(out, F.relu(F.conv2d(inp.double(), wt.double(), b.double(), 1, 1)), tol)
    want = [["fastalex.conv2d_relu_triton.default"]] if dynamic else [["fastalex.conv2d_relu.default"],
                                                                       ["fastalex.conv2d_relu_triton.default"]]
    assert [fastalex_ops_in(g) for g in graphs] == want
    assert len(cb.timed_choices()) == 1  # nothing timed


# ---------------------------------------------------------------- GPU: both real candidates
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
GPU_LAYERS = [(2, 3, 35, 35, 32, 7, 2, 3, 1), (2, 64, 14, 14, 96, 3, 1, 1, 1), (2, 96, 13, 13, 128, 5, 1, 2, 2)]


def gpu_layer(layer, dtype, fmt):
    n, c, h, w, oc, k, s, p, g = layer
    x = ct.to_format(randn(n, c, h, w, dtype=dtype, device="cuda"), fmt)
    wt = randn(oc, c // g, k, k, dtype=dtype, device="cuda", scale=(c // g * k * k) ** -0.5)
    return x, wt, randn(oc, dtype=dtype, device="cuda", scale=0.5), s, p, 1, g


def gpu_reference(x, wt, b, s, p, d, g):
    if x.dtype == F32 and torch.backends.cudnn.allow_tf32:
        x, wt = ct.tf32_round(x), ct.tf32_round(wt)
    return F.relu(F.conv2d(x.double(), wt.double(), b.double(), s, p, d, g))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [F32, F16, BF16], ids=str)
def test_gpu_benchmark_mode_times_both_and_runs_the_choice(monkeypatch, dtype, fmt):
    # The real timer on both real candidates, once per layer.
    monkeypatch.setattr(cb, "device_info", cb.default_device_info)
    monkeypatch.setattr(cb, "_cuda_built", lambda: bool(torch.ops.fastalex.built_with_cuda()))
    calls = []
    monkeypatch.setattr(cb, "timer", lambda backend, run: calls.append(backend) or cb.default_timer(backend, run))
    torch.backends.cudnn.benchmark = True
    for layer in GPU_LAYERS:
        args = gpu_layer(layer, dtype, fmt)
        for _ in range(2):
            out = ops.conv2d_relu(*args)
            assert_close(out.cpu(), gpu_reference(*args).cpu(), REDUCTION_TOL[dtype])
    assert calls == ["cuda", "triton"] * len(GPU_LAYERS)
    assert set(cb.timed_choices().values()) <= {"cuda", "triton"}
    assert all(k.device == torch.cuda.get_device_name() for k in cb.timed_choices())


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gpu_each_forced_backend_matches_the_reference(monkeypatch, backend):
    # Whatever the heuristic picks, both implementations stay checked on the GPU.
    monkeypatch.setattr(cb, "_cuda_built", lambda: bool(torch.ops.fastalex.built_with_cuda()))
    monkeypatch.setenv(cb.ENV_BACKEND, backend)
    for dtype in (F32, F16, BF16):
        for fmt in ("nchw", "nhwc", "strided"):
            for layer in GPU_LAYERS:
                args = gpu_layer(layer, dtype, fmt)
                assert_close(ops.conv2d_relu(*args).cpu(), gpu_reference(*args).cpu(), REDUCTION_TOL[dtype])


@pytest.mark.gpu
@needs_gpu
def test_gpu_torch_compile_chooses_without_timing(monkeypatch):
    monkeypatch.setattr(cb, "device_info", cb.default_device_info)
    monkeypatch.setattr(cb, "_cuda_built", lambda: bool(torch.ops.fastalex.built_with_cuda()))
    torch.backends.cudnn.benchmark = True
    torch._dynamo.reset()
    compiled = torch.compile(ops.conv2d_relu, fullgraph=True)
    for layer in GPU_LAYERS:
        for fmt in ("nchw", "nhwc"):
            args = gpu_layer(layer, F16, fmt)
            assert_close(compiled(*args).cpu(), gpu_reference(*args).cpu(), REDUCTION_TOL[F16])
    assert cb.timed_choices() == {}

