"""fastalex's extensions share torch's shared libstdc++ (fastalex/_cxx_runtime.py says why).

On the first GPU machines the compiler linked libstdc++ statically, and every error message with
a number in it crashed the test process. These tests check the built extensions, the ELF reader
setup.py relies on, and that the link argument setup.py adds repairs such a compiler's output.
"""
import importlib
import os
import shutil
import subprocess
import sys

import pytest
import torch

import fastalex  # noqa: F401  (loads fastalex._C)
from fastalex import _cxx_runtime as rt

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF and /proc are Linux's")


def _extension_path(name):
    return importlib.import_module(f"fastalex.{name}").__file__


@pytest.mark.parametrize("name", ["_C", "_emu"])
def test_extensions_need_the_shared_libstdcxx(name):
    path = _extension_path(name)
    assert rt.LIBSTDCXX in rt.needed(path), f"{path} carries its own libstdc++: {rt.needed(path)}"
    assert not rt.defines(path, rt.LOCALE_CLASSIC)
    rt.check_shared(path, name)


def test_defines_finds_the_locale_code_in_libstdcxx_itself():
    assert rt.defines(rt.loaded_libstdcxx(), rt.LOCALE_CLASSIC)


def test_the_error_messages_keep_their_numbers():
    # The symptom in fastalex._C itself: a size formatted into a TORCH_CHECK message.
    with pytest.raises(ValueError, match=r"padding \(2, 0\) must be at most half of kernel_size \(3, 3\)"):
        torch.ops.fastalex.max_pool2d(torch.randn(1, 3, 8, 8), [3, 3], [2, 2], [2, 0], [1, 1], False)


def _readelf_needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    return [line.split("[", 1)[1].split("]", 1)[0] for line in out.splitlines() if "(NEEDED)" in line]


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) is not installed")
@pytest.mark.parametrize("lib", ["c10", "_C"])
def test_needed_reads_what_readelf_reads(lib):
    path = (os.path.join(os.path.dirname(torch.__file__), "lib", "libc10.so") if lib == "c10"
            else _extension_path("_C"))
    got = rt.needed(path)
    assert got == _readelf_needed(path)
    assert rt.LIBSTDCXX in got and "libc.so.6" in got


@pytest.mark.parametrize("content", [b"#!/bin/sh\n" + bytes(100), b""])
def test_needed_rejects_what_is_not_elf(tmp_path, content):
    bad = tmp_path / "x.so"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match="not an ELF file"):
        rt.needed(str(bad))


def test_needed_rejects_an_elf_file_without_section_headers(tmp_path):
    # e_shoff and e_shnum zeroed: nothing says what the file needs, and "nothing" must not pass.
    data = bytearray(open(_extension_path("_C"), "rb").read(4096))
    data[0x28:0x30] = bytes(8)
    data[0x3C:0x3E] = bytes(2)
    bad = tmp_path / "x.so"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="no section headers"):
        rt.needed(str(bad))


def test_the_loaded_libstdcxx_is_the_one_torch_needs():
    lib = rt.loaded_libstdcxx()
    assert lib is not None and os.path.basename(lib).startswith("libstdc++.so.6")
    assert rt.link_args() == [lib]


FORMAT_SOURCE = r"""
#include <cstdio>
#include <sstream>
extern "C" int format_number(char* out, int n) {
  std::ostringstream s;
  s << "n=" << 12345L << ";";
  std::snprintf(out, n, "%s", s.str().c_str());
  return s.fail() ? 1 : 0;
}
"""

# Loads the library next to torch (its shared libstdc++ mapped first), in a child process: on
# some systems the broken case crashes.
LOAD = r"""
import ctypes, sys, torch
buf = ctypes.create_string_buffer(64)
failed = ctypes.CDLL(sys.argv[1]).format_number(buf, 64)
print(failed, buf.value.decode())
"""


def _build_and_format(tmp_path, name, extra):
    cxx = os.environ.get("CXX", "c++")
    src = tmp_path / "format.cpp"
    src.write_text(FORMAT_SOURCE)
    so = str(tmp_path / f"{name}.so")
    # -static-libstdc++: what the faulty toolchain did without being asked.
    built = subprocess.run([cxx, "-shared", "-fPIC", "-O2", str(src), "-o", so, "-static-libstdc++", *extra],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"{cxx} cannot link libstdc++ statically here (no usable libstdc++.a): {built.stderr[-300:]}")
    r = subprocess.run([sys.executable, "-c", LOAD, so], capture_output=True, text=True, timeout=120)
    return so, r.returncode, r.stdout.strip()


@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler")
def test_the_link_argument_repairs_a_static_libstdcxx_toolchain(tmp_path):
    # The hazard: a static copy, which the check names. (Whether it also loses the number
    # depends on the platform: Debian 12's g++ prints "n=" and fails the stream, the GPU
    # machine's toolchain crashed; neither is asserted.)
    so, _, _ = _build_and_format(tmp_path, "static", [])
    assert rt.LIBSTDCXX not in rt.needed(so) and rt.defines(so, rt.LOCALE_CLASSIC)
    with pytest.raises(RuntimeError, match="linked a static copy of libstdc"):
        rt.check_shared(so, "the static build")
    # With setup.py's argument the same command needs the shared libstdc++, defines none of its
    # locale code, and formats the number.
    so, rc, out = _build_and_format(tmp_path, "fixed", rt.link_args())
    assert rt.LIBSTDCXX in rt.needed(so) and not rt.defines(so, rt.LOCALE_CLASSIC)
    rt.check_shared(so, "the repaired build")
    assert (rc, out) == (0, "0 n=12345;")


@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler")
def test_the_tests_own_libraries_link_the_shared_libstdcxx(tmp_path, monkeypatch):
    # tests/host_library.py builds the planted-kernel and conv-mutant libraries outside setup.py;
    # on the GPU machine the planted one crashed its worker. Here CXX is a wrapper that links
    # libstdc++ statically, as that machine's did.
    _build_and_format(tmp_path, "probe", [])  # skips where no libstdc++.a exists
    import host_library
    wrapper = tmp_path / "static-cxx"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which(os.environ.get("CXX", "c++"))} "$@" -static-libstdc++\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("CXX", str(wrapper))
    src = tmp_path / "format.cpp"
    src.write_text(FORMAT_SOURCE)
    so = str(tmp_path / "lib" / "format.so")
    host_library.build(so, str(src), [], [], what="the format probe")
    assert rt.LIBSTDCXX in rt.needed(so) and not rt.defines(so, rt.LOCALE_CLASSIC)
    r = subprocess.run([sys.executable, "-c", LOAD, so], capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout.strip()) == (0, "0 n=12345;"), r.stderr[-2000:]
    # A static library left in place (built before the check existed), newer than its source,
    # is rebuilt rather than reused.
    # (Put in place by a rename, as the builder does: `so` is loaded in this process, and writing
    # into its file would change the mapped code under it.)
    static_so, _, _ = _build_and_format(tmp_path, "static", [])
    shutil.copy(static_so, so + ".stale")
    os.replace(so + ".stale", so)
    os.utime(so)
    assert rt.LIBSTDCXX not in rt.needed(so)
    host_library.build(so, str(src), [], [], what="the format probe")
    assert rt.LIBSTDCXX in rt.needed(so) and not rt.defines(so, rt.LOCALE_CLASSIC)
