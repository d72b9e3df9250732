"""Builds the tests' torch-free shared libraries of emulated kernels (the planted bugs, the conv
mutants) with the host compiler, the way setup.py links fastalex's extensions: against the
libstdc++.so.6 this process already runs with (torch's), checked after linking.

A library that carries a static copy of libstdc++ puts a second C++ runtime in the test process,
and formatting a number in it breaks (fastalex/_cxx_runtime.py): on the GPU machines' toolchain,
whose compiler links libstdc++ statically, the planted kernels' first error message with a
number in it crashed the pytest worker."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import pytest

from fastalex import _cxx_runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["-std=c++20", "-O1", "-g", "-fPIC", "-shared", "-DFASTALEX_EMU", "-U_FORTIFY_SOURCE", "-pthread"]


def compiler(what: str) -> str:
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.fail(f"no C++ compiler found to build {what} (set CXX)")
    return cxx


def build(out: str, source: str, deps, includes, defines=(), what: str = "a test library") -> ctypes.CDLL:
    """Compiles `source` (which includes the rest) into the shared library `out` unless `out` is
    newer than the source and every file in `deps`; loads it. The link names the process's own
    libstdc++ first; a library that still carries its own fails the test with the checker's
    message rather than crashing the process later."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if not os.path.exists(out) or os.path.getmtime(out) < max(os.path.getmtime(s) for s in [source, *deps]):
        cmd = [compiler(what), *FLAGS, *defines]
        for inc in includes:
            cmd += ["-I", inc]
        # A file of this process's own, renamed into place: parallel test workers may build the
        # same library at once.
        tmp = f"{out}.{os.getpid()}.tmp"
        cmd += [source, *_cxx_runtime.link_args(), "-o", tmp]
        subprocess.run(cmd, check=True)
        try:
            _cxx_runtime.check_shared(tmp, what)
        except RuntimeError as e:
            os.remove(tmp)
            pytest.fail(str(e))
        except ValueError:
            pass  # a file the ELF reader does not take: nothing to check (setup.py only warns too)
        os.replace(tmp, out)
    return ctypes.CDLL(out)
