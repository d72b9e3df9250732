"""The CPU ops' buffer pool (csrc/cpu/buffer_pool.*): large outputs and scratch freed into it
serve later allocations (no fresh pages in a steady-state forward), pooled outputs are
NaN-poisoned like at::empty's under the tests' deterministic fill, resizable, and the pool can
be emptied or turned off."""
import os
import subprocess
import sys

import torch

from conftest import randn
from fastalex import ops

pool_bytes = torch.ops.fastalex.cpu_pool_bytes
pool_empty = torch.ops.fastalex.cpu_pool_empty


def test_freed_output_serves_the_next_call():
    x, w, b = randn(2, 8, 40, 40), randn(32, 8, 3, 3, scale=0.1), randn(32)  # outputs of 400 KiB
    torch.ops.fastalex.cpu_pool_release()  # (blocks other tests left could serve it too)
    first = ops.conv2d_relu(x, w, b, 1, 1)
    ptr, expected = first.data_ptr(), first.clone()
    before = pool_bytes()
    del first
    assert pool_bytes() >= before + 2 * 32 * 40 * 40 * 4
    second = ops.conv2d_relu(x, w, b, 1, 1)
    assert second.data_ptr() == ptr
    assert torch.equal(second, expected)


def test_reused_blocks_are_poisoned():
    torch.ops.fastalex.cpu_pool_release()
    t = pool_empty([300, 1000])
    assert torch.isnan(t).all()
    t.fill_(1.0)
    ptr = t.data_ptr()
    del t
    again = pool_empty([300, 1000])
    assert again.data_ptr() == ptr
    assert torch.isnan(again).all()


def test_small_tensors_use_torchs_allocator():
    t = pool_empty([10, 10])
    before = pool_bytes()
    del t
    assert pool_bytes() == before


def test_pooled_storage_resizes():
    t = pool_empty([256, 1024])
    t.fill_(2.0)
    t.resize_(1024, 1024)
    assert t.shape == (1024, 1024)
    assert (t[:256] == 2.0).all()


def test_release():
    t = pool_empty([512, 1024])
    del t
    assert pool_bytes() > 0
    released = torch.ops.fastalex.cpu_pool_release()
    assert released > 0 and pool_bytes() == 0


def test_pool_off():
    code = ("import torch, fastalex; t = torch.ops.fastalex.cpu_pool_empty([512, 1024]); del t; "
            "print(torch.ops.fastalex.cpu_pool_bytes())")
    env = dict(os.environ, FASTALEX_CPU_POOL_MB="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_lazy_clone():
    # The pool's data pointers are "simple" (context == data), which torch's copy-on-write
    # clone requires.
    t = pool_empty([512, 1024])
    t.fill_(3.0)
    c = torch._lazy_clone(t)
    c.add_(1.0)
    assert (t == 3.0).all() and (c == 4.0).all()


def test_unparsable_cap_keeps_the_default():
    code = ("import torch, fastalex; t = torch.ops.fastalex.cpu_pool_empty([512, 1024]); del t; "
            "print(torch.ops.fastalex.cpu_pool_bytes())")
    env = dict(os.environ, FASTALEX_CPU_POOL_MB="lots")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout.strip()) >= 512 * 1024 * 4
