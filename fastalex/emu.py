"""The CUDA kernels, run on the CPU by fastalex's SIMT emulator.

Each function has the signature of its ``fastalex.ops`` namesake and takes CPU tensors; it
runs the CUDA op's own host code (checks, launch configuration, dtype dispatch) and device
code, compiled by the host compiler, on the emulator (csrc/emu/runtime.h): block threads as
fibers, counting barriers that reject divergence, poisoned and bounds-checked shared memory,
global buffers beside guard pages, and a chosen thread schedule.

The schedule is the order in which a block's threads start and resume after each barrier:
"ascending", "descending", "random" or "warp_random" (warps in random order), with a seed
that also shuffles the block order. Choose it per call (``schedule=``, ``seed=``), for a
region (``with fastalex.emu.config(schedule="random", seed=7): ...``), or for the whole
process with ``FASTALEX_EMU_SCHEDULE=random:7`` (how an error message tells you to replay a
failure). ``FASTALEX_EMU_GUARD=start|end`` puts the leading or trailing guard page flush
against each global buffer; ``FASTALEX_EMU_WORKERS`` sets the OS threads running blocks and
``FASTALEX_EMU_SMS`` the SM count host code sees (small, so grid-stride loops do loop).
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os

import torch

import fastalex  # noqa: F401  (loads torch and fastalex._C first)
from fastalex import _emu  # noqa: F401  (registers torch.ops.fastalex_emu.*)
# The op modules (fastalex.ops re-exports their functions under the same names).
_conv = importlib.import_module("fastalex.ops.conv2d_relu")
_lrn = importlib.import_module("fastalex.ops.local_response_norm")
_pool = importlib.import_module("fastalex.ops.max_pool2d")
_lrn_pool = importlib.import_module("fastalex.ops.lrn_pool")

__all__ = ["conv2d_relu", "local_response_norm", "local_response_norm_backward", "max_pool2d", "max_pool2d_backward",
           "lrn_max_pool2d", "max_pool2d_lrn", "config", "launched_kernels", "launch_count", "lrn_pool_tiling",
           "SCHEDULES"]

SCHEDULES = ("ascending", "descending", "random", "warp_random")


@dataclasses.dataclass
class _Config:
    schedule: str = "ascending"
    seed: int = 0
    guard: str = "end"
    workers: int = 2
    sm_count: int = 1


def _from_env() -> _Config:
    c = _Config()
    spec = os.environ.get("FASTALEX_EMU_SCHEDULE")
    if spec:
        name, _, seed = spec.partition(":")
        c.schedule = name
        c.seed = int(seed) if seed else 0
    c.guard = os.environ.get("FASTALEX_EMU_GUARD", c.guard)
    c.workers = int(os.environ.get("FASTALEX_EMU_WORKERS", c.workers))
    c.sm_count = int(os.environ.get("FASTALEX_EMU_SMS", c.sm_count))
    return c


_current = _from_env()


@contextlib.contextmanager
def config(schedule=None, seed=None, guard=None, workers=None, sm_count=None):
    """Temporarily change the emulator's settings (None keeps the current value)."""
    global _current
    saved = _current
    _current = dataclasses.replace(
        saved,
        **{k: v for k, v in dict(schedule=schedule, seed=seed, guard=guard, workers=workers, sm_count=sm_count).items() if v is not None},
    )
    if _current.schedule not in SCHEDULES:
        bad = _current.schedule
        _current = saved
        raise ValueError(f"fastalex.emu: schedule must be one of {', '.join(SCHEDULES)}, got {bad!r}")
    try:
        yield _current
    finally:
        _current = saved


def _apply():
    c = _current
    torch.ops.fastalex_emu.configure(c.schedule, c.seed, c.guard, c.workers, c.sm_count)


def _run(module, op, args, schedule, seed):
    with config(schedule=schedule, seed=seed):
        _apply()
        return module.call(op, *args)


def conv2d_relu(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, schedule=None, seed=None):
    """fastalex.ops.conv2d_relu through the CUDA kernel on the emulator (CPU tensors)."""
    return _run(_conv, torch.ops.fastalex_emu.conv2d_relu, (input, weight, bias, stride, padding, dilation, groups),
                schedule, seed)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0, *, schedule=None, seed=None):
    """fastalex.ops.local_response_norm through the CUDA kernel on the emulator (CPU tensors)."""
    return _run(_lrn, torch.ops.fastalex_emu.local_response_norm, (input, size, alpha, beta, k), schedule, seed)


def local_response_norm_backward(grad_output, input, output, size, alpha=1e-4, beta=0.75, k=1.0, *, schedule=None,
                                 seed=None):
    """fastalex.ops.local_response_norm_backward through the CUDA kernel on the emulator (CPU tensors)."""
    with config(schedule=schedule, seed=seed):
        _apply()
        return _lrn.backward_call(torch.ops.fastalex_emu.local_response_norm_backward, grad_output, input, output,
                                  size, alpha, beta, k)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               schedule=None, seed=None):
    """fastalex.ops.max_pool2d through the CUDA kernel on the emulator (CPU tensors)."""
    return _run(_pool, torch.ops.fastalex_emu.max_pool2d,
                (input, kernel_size, stride, padding, dilation, ceil_mode, return_indices), schedule, seed)


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        schedule=None, seed=None):
    """fastalex.ops.max_pool2d_backward through the CUDA kernel on the emulator (CPU tensors)."""
    with config(schedule=schedule, seed=seed):
        _apply()
        return _pool.backward_call(torch.ops.fastalex_emu.max_pool2d_backward, grad_output, input, kernel_size, stride,
                                   padding, dilation, ceil_mode)


def lrn_max_pool2d(input, size, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2, padding=0, ceil_mode=False, *,
                   schedule=None, seed=None):
    """fastalex.ops.lrn_max_pool2d through the CUDA kernel on the emulator (CPU tensors)."""
    return _run(_lrn_pool, torch.ops.fastalex_emu.lrn_max_pool2d,
                ("lrn_max_pool2d", input, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode), schedule, seed)


def max_pool2d_lrn(input, size, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2, padding=0, ceil_mode=False, *,
                   schedule=None, seed=None):
    """fastalex.ops.max_pool2d_lrn through the CUDA kernel on the emulator (CPU tensors)."""
    return _run(_lrn_pool, torch.ops.fastalex_emu.max_pool2d_lrn,
                ("max_pool2d_lrn", input, size, alpha, beta, k, kernel_size, stride, padding, ceil_mode), schedule, seed)


def launch_count() -> int:
    """Kernel launches the emulator has run in this process (compare before and after a call)."""
    return torch.ops.fastalex_emu.launch_count()


def lrn_pool_tiling(input_hw, kernel_size, stride, padding=0, ceil_mode=False) -> dict:
    """The output tile the CUDA lrn_max_pool2d chooses for an (H, W) input map, and the input
    pixels its blocks read per sample and channel (halos included): the host code's own choice."""
    pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]  # noqa: E731
    names = ("tile_h", "tile_w", "tiles_h", "tiles_w", "tile_pixels", "pixels_read", "output_pixels")
    return dict(zip(names, torch.ops.fastalex_emu.lrn_pool_tiling(pair(input_hw), pair(kernel_size), pair(stride),
                                                                  pair(padding), ceil_mode)))


def launched_kernels() -> set[str]:
    """Names (with template arguments) of every kernel the emulator has run in this process."""
    return set(torch.ops.fastalex_emu.launched_kernels())
