"""Which implementation runs ``fastalex.ops.conv2d_relu`` on CUDA tensors: the CUDA kernels of
``torch.ops.fastalex.conv2d_relu`` (tensor cores for float16, bfloat16 and TF32; FFMA for exact
float32 and float64) or the Triton kernel of ``torch.ops.fastalex.conv2d_relu_triton``. CPU
tensors always run the CPU kernel and never come here.

The choice is made per layer: per ``Key`` (GPU name and compute capability, dtype, input shape,
strides and layout, whether the CUDA kernel reads the input in place, weight shape, stride,
padding, dilation, groups, bias present, TF32 flag). ``choose`` decides, in this order:

1. ``FASTALEX_CONV_BACKEND``: ``cuda`` or ``triton`` forces that implementation for every layer
   (a dtype or build it cannot run then fails with its own error); ``auto`` (or unset, or
   empty) selects as below; anything else is a ``ValueError``.
2. An implementation that cannot run the layer is not a candidate: the Triton kernel has no
   float64 and needs triton importable, the CUDA kernels need a build with CUDA. With one
   candidate left, it runs. Arguments the Triton kernel rejects go to the CUDA op, which
   raises the op's own error.
3. A choice timed earlier: in this process (memory), or in the JSON file named by
   ``FASTALEX_CONV_CACHE`` when it is set (read once, lazily; entries are also keyed by the
   torch, triton and fastalex versions; a corrupt or foreign file is ignored with a warning and
   never written over).
4. While ``torch.backends.cudnn.benchmark`` is set (as cuDNN does): each candidate is timed
   once on the call's own tensors (``timer``: ``triton.testing.do_bench``, the median of its
   runs, synchronising only inside it) and the faster one is kept, in memory and in the cache
   file. Never while torch.compile traces, on fake tensors, or while a CUDA graph is captured.
5. Otherwise ``heuristic`` (documented there).

Under torch.compile the choice is made once, while tracing: fastalex.ops.conv2d_relu's inner
function is opaque to Dynamo (``allow_in_graph``) and AOTAutograd runs it on fake tensors,
where ``choose`` takes steps 1-3 and 5 (no timing; with dynamic shapes no timed choice
matches, so the heuristic decides). The chosen op is part of the compiled graph: changing the
variable or the caches later does not recompile.

For tests (no GPU here): ``timer``, ``device_info`` and ``selects_for`` are module attributes
that can be replaced (see their defaults), and ``reset()`` forgets every cached choice.
"""
from __future__ import annotations

import functools
import importlib
import json
import math
import os
import tempfile
import threading
import warnings
from typing import Callable, NamedTuple, Optional

import torch

from fastalex import _tf32

ENV_BACKEND = "FASTALEX_CONV_BACKEND"
ENV_CACHE = "FASTALEX_CONV_CACHE"
BACKENDS = ("cuda", "triton")
CHOICES = BACKENDS + ("auto",)
CACHE_FORMAT = 1
# The tensor-core kernel addresses one sample with 32-bit offsets (beyond: the FFMA kernel).
SAMPLE_LIMIT = 2**31 - 1

_TRITON_DTYPES = ("float32", "float16", "bfloat16")
_ELEMENT_SIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


class Key(NamedTuple):
    """What a choice depends on. Sizes unknown while torch.compile traces with dynamic shapes
    are None (such keys never match a timed choice)."""

    device: str                 # GPU name, e.g. "NVIDIA H100 80GB HBM3"
    capability: str             # compute capability, e.g. "9.0"
    dtype: str                  # "float32", "float16", "bfloat16", "float64"
    input_shape: tuple          # (N, C, H, W)
    input_strides: tuple
    layout: str                 # "channels_last", "contiguous" or "strided" (for the reader)
    # The CUDA tensor-core kernel's 16-byte loader reads the input in place: channel stride 1,
    # the other strides multiples of 16 bytes, the first element on a 16-byte boundary
    # (otherwise it copies the input to channels_last first)
    in_place16: bool
    weight_shape: tuple         # (OC, C / groups, kH, kW)
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    bias: bool
    tf32: bool                  # float32 while convolutions may use TF32 (conv_tf32(); False for other dtypes)

    def text(self) -> str:
        """The key as the cache file spells it."""
        return json.dumps(list(self), separators=(",", ":"))


# ---------------------------------------------------------------- hooks (replaceable in tests)
def default_timer(backend: str, run: Callable[[], object]) -> float:
    """Milliseconds one call of `run` takes on the GPU: triton.testing.do_bench's median (it
    warms up, which includes the Triton kernel's compilation and autotuning, flushes the L2
    cache between runs, and synchronises only inside). Without triton: CUDA events around
    10 runs after 3 warm-up runs, the median. `backend` names the candidate (unused here)."""
    try:
        from triton.testing import do_bench
    except ImportError:
        return _event_timer(run)
    return float(do_bench(run, warmup=5, rep=20, return_mode="median"))


def _event_timer(run, warmup=3, reps=10):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        times.append((start, end))
    torch.cuda.synchronize()
    ms = sorted(s.elapsed_time(e) for s, e in times)
    return ms[len(ms) // 2]


def default_device_info(index: int) -> tuple[str, str]:
    """(name, "major.minor") of CUDA device `index`."""
    major, minor = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), f"{major}.{minor}"


timer: Callable[[str, Callable[[], object]], float] = default_timer
device_info: Callable[[int], tuple[str, str]] = default_device_info


# ---------------------------------------------------------------- state
class _State:
    def __init__(self):
        self.lock = threading.RLock()
        self.timed: dict[Key, str] = {}          # choices timed in this process or read from the file
        self.heuristic: dict[Key, str] = {}      # memo of heuristic() for valid keys
        self.devices: dict[int, tuple[str, str]] = {}
        self.file_path: Optional[str] = None      # the cache file read into `file_entries`
        self.file_entries: dict[str, dict] = {}   # this version's entries of that file
        self.own_entries: dict[str, dict] = {}    # the entries timed by this process
        self.file_usable = False


_state = _State()


def reset():
    """Forgets every choice (memory), the cache file's contents read so far and the device
    names; the next call reads the file again."""
    global _state
    _state = _State()


def timed_choices() -> dict:
    """The timed choices this process holds: {Key: backend}."""
    with _state.lock:
        return dict(_state.timed)


def forced_backend() -> str:
    """FASTALEX_CONV_BACKEND: "cuda", "triton" or "auto" (unset or empty: "auto")."""
    value = os.environ.get(ENV_BACKEND, "").strip().lower()
    if value == "":
        return "auto"
    if value not in CHOICES:
        raise ValueError(f"{ENV_BACKEND} must be one of {', '.join(CHOICES)} (or unset, meaning auto), "
                         f"got {os.environ.get(ENV_BACKEND)!r}")
    return value


@functools.lru_cache(maxsize=None)
def _triton_importable() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _ensure_triton_op():
    """Registers torch.ops.fastalex.conv2d_relu_triton (imports fastalex.triton.conv2d_relu)."""
    import fastalex.triton.conv2d_relu  # noqa: F401


def _cuda_built() -> bool:
    return bool(torch.ops.fastalex.built_with_cuda())


def candidates(dtype: str) -> list[str]:
    """The implementations that can run `dtype` in this installation, CUDA first."""
    out = []
    if _cuda_built():
        out.append("cuda")
    if dtype in _TRITON_DTYPES and _triton_importable():
        out.append("triton")
    return out


# ---------------------------------------------------------------- the key
def conv_tf32() -> bool:
    """Whether torch's convolutions use TF32 for float32 now (what both conv kernels follow)."""
    return _tf32.conv_tf32_enabled()


def _const(v):
    """An int, or None for a size torch.compile traces symbolically (a SymInt)."""
    return v if isinstance(v, int) else None


def _device(index) -> tuple[str, str]:
    index = 0 if index is None else index
    got = _state.devices.get(index)
    if got is None:
        name, cap = device_info(index)
        got = _state.devices[index] = (str(name), str(cap))
    return got


def _layout(input) -> str:
    if input.is_contiguous():
        return "contiguous"
    if input.is_contiguous(memory_format=torch.channels_last):
        return "channels_last"
    return "strided"


def _in_place16(input, esize) -> bool:
    """conv2d_relu_mma's test (csrc/cuda/conv2d_relu_cuda.cu) for reading the input in place
    with 16-byte copies; the start's alignment from the storage offset (allocations are
    16-byte aligned), which fake tensors have too."""
    vec = max(1, 16 // esize)
    s = input.stride()
    return bool(s[1] == 1 and s[0] % vec == 0 and s[2] % vec == 0 and s[3] % vec == 0
                and input.storage_offset() % vec == 0)


def _key_parts(input, weight, bias, stride, padding, dilation, groups, symbolic=True) -> tuple:
    """The key without the GPU name and the TF32 flag. `symbolic`: sizes may be SymInts (a
    tracer's fake tensors); they become None."""
    dtype = str(input.dtype).replace("torch.", "")
    esize = _ELEMENT_SIZE.get(dtype, 1)
    if symbolic:
        return (input.device.index, dtype, tuple(_const(v) for v in input.shape),
                tuple(_const(v) for v in input.stride()), _layout(input), _in_place16(input, esize),
                tuple(_const(v) for v in weight.shape), tuple(_const(v) for v in stride),
                tuple(_const(v) for v in padding), tuple(_const(v) for v in dilation), _const(groups),
                bias is not None)
    return (input.device.index, dtype, tuple(input.shape), input.stride(), _layout(input), _in_place16(input, esize),
            tuple(weight.shape), tuple(stride), tuple(padding), tuple(dilation), groups, bias is not None)


def _key(parts) -> Key:
    index, dtype, shape, strides, layout, in_place16, wshape, stride, padding, dilation, groups, bias = parts
    name, cap = _device(index)
    tf32 = dtype == "float32" and conv_tf32()
    return Key(name, cap, dtype, shape, strides, layout, in_place16, wshape, stride, padding, dilation, groups, bias,
               tf32)


def make_key(input, weight, bias, stride, padding, dilation, groups) -> Key:
    """The Key of a call with the op's normalised arguments (4-D input, [h, w] lists)."""
    return _key(_key_parts(input, weight, bias, stride, padding, dilation, groups, symbolic=_tracing(input)))


# ---------------------------------------------------------------- the heuristic
def heuristic(key: Key) -> str:
    """The choice without timing: what each implementation does with the layer, not a
    measurement (no GPU run has timed both on one layer yet). First rule that applies:

    1. float64, and float32 without TF32 (exact): ``cuda``. The Triton kernel has no float64;
       for exact float32 both are FMA code (the Triton kernel's IEEE ``tl.dot`` uses no tensor
       cores either), and the CUDA FFMA kernel is the one the exact path has always run.
    2. (float16, bfloat16, TF32 from here) A sample of 2^31 elements or more: ``triton``. The
       tensor-core kernel's 32-bit in-sample offsets cannot address it (the CUDA op falls back
       to the FFMA kernel); the Triton kernel keeps ``tl.dot`` with 64-bit offsets.
    3. Channels per group not a multiple of 16 bytes (8 float16/bfloat16 or 4 float32 channels:
       the 3-channel stems, odd channel counts; also a count torch.compile traces as symbolic):
       ``triton``. The tensor-core kernel then loads its input with an element gather and runs
       its smallest tile (64x64) only.
    4. An input the tensor-core kernel's 16-byte loader cannot read in place (NCHW, strided
       views, a start off a 16-byte boundary: ``Key.in_place16``): ``triton``, which reads any
       strides in place, where the CUDA kernel first copies the whole input to channels_last.
    5. Otherwise (channels_last, channels per group a multiple of 16 bytes): ``cuda``, the
       tensor-core kernel with its 16-byte ``cp.async`` loader and its tile chosen per layer.
    """
    if key.dtype == "float64" or (key.dtype == "float32" and not key.tf32):
        return "cuda"
    if _sample_elements(key) > SAMPLE_LIMIT:
        return "triton"
    cg = key.weight_shape[1]
    if cg is None or cg * _ELEMENT_SIZE[key.dtype] % 16 != 0:
        return "triton"
    if not key.in_place16:
        return "triton"
    return "cuda"


def _sample_elements(key: Key) -> int:
    """What the CUDA op compares with 2^31 - 1: the larger of a sample's element count and its
    reach through the strides (0 when unknown)."""
    _, c, h, w = key.input_shape
    if None in (c, h, w):
        return 0
    span = 0
    if None not in key.input_strides:
        span = 1 + sum((n - 1) * abs(st) for n, st in zip((c, h, w), key.input_strides[1:]) if n > 0)
    return max(c * h * w, span)


# ---------------------------------------------------------------- the cache file
def versions() -> str:
    """The versions a cache file's entries are valid for."""
    import fastalex

    try:
        import triton

        tv = triton.__version__
    except ImportError:
        tv = "none"
    return f"torch {torch.__version__} | triton {tv} | fastalex {fastalex.__version__}"


def _read_file(path: str) -> tuple[Optional[dict], Optional[str]]:
    """(the file's JSON object, None), ({}, None) when there is no file or it is empty, or
    (None, why) when it cannot be used."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}, None
    except OSError as e:
        return None, f"cannot read it ({e})"
    if not text.strip():
        return {}, None  # an empty file (made with touch, mktemp) is a new one
    try:
        data = json.loads(text)
    except ValueError as e:
        return None, f"not valid JSON ({e})"
    if not (isinstance(data, dict) and data.get("format") == CACHE_FORMAT and isinstance(data.get("entries"), dict)
            and all(isinstance(v, dict) for v in data["entries"].values())):
        return None, f"not a fastalex conv backend cache (format {CACHE_FORMAT})"
    return data, None


def _warn_unusable(path, why):
    warnings.warn(f"fastalex: ignoring the conv backend cache {path} named by {ENV_CACHE}: {why}; timed choices "
                  "stay in memory and the file is left as it is", RuntimeWarning, stacklevel=4)


def _file_entries() -> dict[str, dict]:
    """This version's entries of the cache file (read on first use, again when the variable
    names another file); {} without one."""
    path = os.environ.get(ENV_CACHE) or None
    if path != _state.file_path:
        _state.file_path, _state.file_entries, _state.file_usable = path, {}, False
        if path is not None:
            data, why = _read_file(path)
            if data is None:
                _warn_unusable(path, why)
            else:
                _state.file_usable = True
                _state.file_entries = dict(data.get("entries", {}).get(versions(), {}))
    return _state.file_entries


def _write_file(key: Key, backend: str, times: dict[str, float]):
    """Adds a timed choice to the cache file: the file is read again (other processes may have
    added entries), this process's timed entries (the new one, and any an earlier write failed
    to store) are merged in, and the result is written to a temporary file beside it and
    renamed over it (atomic: readers see the old file or the new one)."""
    path = _state.file_path
    if path is None or not _state.file_usable:
        return
    entry = {"backend": backend, "ms": {b: (t if math.isfinite(t) else None) for b, t in times.items()}}
    _state.file_entries[key.text()] = _state.own_entries[key.text()] = entry
    data, why = _read_file(path)
    if data is None:
        _state.file_usable = False
        _warn_unusable(path, why)
        return
    data = data or {"format": CACHE_FORMAT, "entries": {}}
    data["entries"].setdefault(versions(), {}).update(_state.own_entries)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        mode = 0o644
    tmp = None
    try:
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=directory, prefix=".fastalex-conv-cache-",
                                         suffix=".tmp", delete=False) as f:
            tmp = f.name
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        warnings.warn(f"fastalex: could not write the conv backend cache {path}: {e}", RuntimeWarning, stacklevel=4)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _stored(key: Key, cands: list[str]) -> Optional[str]:
    """A timed choice for `key`: this process's, else the cache file's."""
    hit = _state.timed.get(key)
    if hit is None:
        entries = _file_entries()
        entry = entries.get(key.text()) if entries else None
        if isinstance(entry, dict) and entry.get("backend") in BACKENDS:
            hit = _state.timed[key] = entry["backend"]
    return hit if hit in cands else None


# ---------------------------------------------------------------- choosing
def _op(backend):
    if backend == "triton":
        _ensure_triton_op()
        return torch.ops.fastalex.conv2d_relu_triton
    return torch.ops.fastalex.conv2d_relu


def _same_device_and_dtype(input, weight, bias) -> bool:
    """What the Triton kernel's checks look at that a Key does not hold."""
    if weight.device != input.device or weight.dtype != input.dtype:
        return False
    return bias is None or (bias.device == input.device and bias.dtype == input.dtype)


def _triton_accepts(input, weight, bias, stride, padding, dilation, groups) -> bool:
    """Whether the Triton kernel takes these arguments (its checks are the op's, same order)."""
    _ensure_triton_op()
    try:
        importlib.import_module("fastalex.triton.conv2d_relu").check(input, weight, bias, stride, padding, dilation,
                                                                     groups)
    except (ValueError, TypeError, RuntimeError):
        return False
    return True


def _time(key: Key, cands: list[str], args) -> Optional[str]:
    """Times each candidate once on the call's tensors; the fastest (ties: the first). A
    candidate that raises is left out, with a warning."""
    times = {}
    with torch.no_grad():
        for backend in cands:
            op = _op(backend)
            try:
                times[backend] = float(timer(backend, lambda op=op: op(*args)))
            except Exception as e:  # noqa: BLE001  (a kernel that fails here must not be chosen)
                warnings.warn(f"fastalex: conv2d_relu's {backend} implementation failed while timed for {key}: "
                              f"{type(e).__name__}: {e}", RuntimeWarning, stacklevel=4)
    if not times:
        return None
    best = min(times, key=lambda b: (times[b], cands.index(b)))
    _state.timed[key] = best
    _write_file(key, best, times)
    return best


def _untimed(parts) -> str:
    """Steps 1-3 and 5 of the policy (no timing) for a key's parts."""
    choice = _untimed_choice(parts)
    if choice == "triton":
        _ensure_triton_op()
    return choice


def _untimed_choice(parts) -> str:
    forced = forced_backend()
    if forced != "auto":
        return forced
    cands = candidates(parts[1])
    if len(cands) <= 1:
        return cands[0] if cands else "cuda"
    key = _key(parts)
    with _state.lock:
        hit = _stored(key, cands)
    return hit if hit is not None else heuristic(key)


def _tracing(input) -> bool:
    """Fake or meta tensors: torch.compile (AOTAutograd) or another tracer is at work."""
    if type(input) is torch.Tensor:  # the common case, quickly
        return input.device.type == "meta"
    from torch._subclasses.fake_tensor import is_fake

    return is_fake(input) or input.device.type == "meta"


def default_selects_for(input) -> bool:
    """Whether fastalex.ops.conv2d_relu asks `choose` for this input: CUDA tensors."""
    return input.is_cuda


selects_for: Callable[[torch.Tensor], bool] = default_selects_for


def choose(input, weight, bias, stride, padding, dilation, groups) -> str:
    """"cuda" or "triton" for a call of the conv on CUDA tensors, with the op's normalised
    arguments (4-D input, [h, w] lists for stride, padding and dilation). See the module
    docstring for the policy."""
    if input.dim() != 4 or weight.dim() != 4:
        return "cuda"  # the CUDA op raises the op's error (the Triton kernel's message is the same)
    if _tracing(input):
        return _untimed(_key_parts(input, weight, bias, stride, padding, dilation, groups))
    choice = _timed_or_untimed(input, weight, bias, stride, padding, dilation, groups)
    if choice == "triton":
        _ensure_triton_op()
    return choice


def _timed_or_untimed(input, weight, bias, stride, padding, dilation, groups) -> str:
    forced = forced_backend()
    if forced != "auto":
        return forced
    dtype = str(input.dtype).replace("torch.", "")
    cands = candidates(dtype)
    if len(cands) <= 1:
        return cands[0] if cands else "cuda"
    key = _key(_key_parts(input, weight, bias, stride, padding, dilation, groups, symbolic=False))
    with _state.lock:
        hit = _stored(key, cands)
        if hit is not None:
            return hit
        if not _same_device_and_dtype(input, weight, bias):
            return "cuda"  # the CUDA op raises the op's error
        benchmark = bool(torch.backends.cudnn.benchmark)
        if not benchmark:
            choice = _state.heuristic.get(key)  # only keys the Triton kernel accepts
            if choice is not None:
                return choice
        timing = benchmark and not _capturing()
        # Everything else the Triton kernel's checks look at is in the key.
        if not _triton_accepts(input, weight, bias, stride, padding, dilation, groups):
            return "cuda"  # the CUDA op raises the op's error
        if timing:
            best = _time(key, cands, (input, weight, bias, stride, padding, dilation, groups))
            if best is not None:
                return best
        choice = _state.heuristic[key] = heuristic(key)
        return choice


def _capturing() -> bool:
    """Whether a CUDA graph is being captured (no synchronisation allowed, so no timing)."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()
