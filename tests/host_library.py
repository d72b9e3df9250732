"""Builds the tests' torch-free shared libraries of emulated kernels (the planted bugs, the conv
mutants) with the host compiler, the way setup.py links fastalex's extensions: against the
libstdc++.so.6 this process already runs with (torch's), checked after linking.

A library that carries a static copy of libstdc++ puts a second C++ runtime in the test process,
and formatting a number in it breaks (fastalex/_cxx_runtime.py): on the GPU machines' toolchain,
whose compiler links libstdc++ statically, the planted kernels' first error message with a
number in it crashed the pytest worker."""
from __future__ import annotations

import ctypes
import fcntl
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
    newer than the source, every file in `deps` and this builder's own code, and needs the shared
    libstdc++ (a library built before this check existed, or by another compiler, is rebuilt);
    loads it. The link names the process's own libstdc++ first; a library that still carries its
    own fails the test with the checker's message rather than crashing the process later."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    inputs = [source, *deps, __file__, _cxx_runtime.__file__]
    # One builder at a time per library: parallel test workers (the GPU check runs 8) wait for the
    # first one's build instead of each compiling the same file.
    with open(out + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (os.path.exists(out) and os.path.getmtime(out) >= max(os.path.getmtime(s) for s in inputs)
                and _shares_libstdcxx(out, what)):
            cmd = [compiler(what), *FLAGS, *defines]
            for inc in includes:
                cmd += ["-I", inc]
            # Renamed into place: another process may have the old library loaded, and writing
            # into its file would change the code mapped in that process.
            tmp = f"{out}.{os.getpid()}.tmp"
            cmd += [source, *_cxx_runtime.link_args(), "-o", tmp]
            try:
                subprocess.run(cmd, check=True)
                _shares_libstdcxx(tmp, what, fail=True)
                os.replace(tmp, out)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
    return ctypes.CDLL(out)


def _shares_libstdcxx(path: str, what: str, fail: bool = False) -> bool:
    """Whether the library at `path` needs the shared libstdc++ and carries none of its own (a
    file the ELF reader does not take counts as yes: setup.py only warns about those too). With
    `fail`, a library that carries its own fails the test with the checker's message."""
    try:
        _cxx_runtime.check_shared(path, what)
    except RuntimeError as e:
        if fail:
            pytest.fail(str(e))
        return False
    except ValueError:
        pass
    return True
