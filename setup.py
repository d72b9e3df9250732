"""Build fastalex._C: CPU kernels always, CUDA kernels whenever nvcc and a CUDA torch exist.

FASTALEX_CUDA=auto (default) | 0 | 1 chooses the CUDA part; 1 without nvcc is an error.
TORCH_CUDA_ARCH_LIST defaults to "8.0;9.0" (A100, H100): no GPU is needed to compile.
"""
import glob
import importlib.util
import os
import shutil
import sys

from setuptools import find_packages, setup

import torch
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _load_cxx_runtime():
    # By path: importing the fastalex package needs the fastalex._C this script builds.
    spec = importlib.util.spec_from_file_location("_cxx_runtime", os.path.join(ROOT, "fastalex", "_cxx_runtime.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Both extensions link the libstdc++.so.6 torch runs with (torch is imported above), whatever
# the compiler would link by itself; BuildExtension checks the result (fastalex/_cxx_runtime.py).
CXX_RUNTIME = _load_cxx_runtime() if sys.platform.startswith("linux") else None
LIBSTDCXX_LINK = CXX_RUNTIME.link_args() if CXX_RUNTIME else []


def _cuda_home():
    """The toolkit root holding bin/nvcc and include/cuda_runtime.h (a PATH nvcc may be a wrapper)."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    for home in candidates:
        if (home and os.path.exists(os.path.join(home, "bin", "nvcc"))
                and os.path.exists(os.path.join(home, "include", "cuda_runtime.h"))):
            return home
    return None


def _want_cuda():
    mode = os.environ.get("FASTALEX_CUDA", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        sys.exit(f"setup.py: FASTALEX_CUDA must be auto, 0 or 1, got {mode!r}")
    if mode == "0":
        return False, None
    home = _cuda_home()
    problems = []
    if home is None:
        problems.append("nvcc was not found (set CUDA_HOME to the toolkit root that holds bin/nvcc)")
    if torch.version.cuda is None:
        problems.append(f"the installed torch {torch.__version__} is a CPU-only build")
    if problems:
        if mode == "1":
            sys.exit("setup.py: FASTALEX_CUDA=1 but the CUDA kernels cannot be built: " + "; ".join(problems))
        print("setup.py: building without CUDA kernels: " + "; ".join(problems))
        return False, None
    return True, home


def _wheel_cuda_includes():
    # torch's CUDA headers include cusparse.h / cublas_v2.h, which ship in the nvidia-* wheels
    # torch depends on, not necessarily in the toolkit that holds nvcc.
    found = []
    for entry in sys.path:
        for sub in ("nvidia/cu13/include", "nvidia/cu12/include"):
            path = os.path.join(entry, sub)
            if os.path.isdir(path) and path not in found:
                found.append(path)
    return found


# The sources use C++20 (std::source_location locates faults and tensor-core operands). Named
# here, since the standard torch's cpp_extension adds only where none is given differs by
# version: C++20 in torch 2.14, C++17 in torch 2.11 (the GPU machines' torch).
CXX_STD = "-std=c++20"


def emulator_extension():
    """fastalex._emu: the CUDA ops' .cu host code and device code, compiled by the host
    compiler for the SIMT emulator (csrc/emu/). Built on every machine, GPU or not."""
    sources = sorted(glob.glob("csrc/emu/*.cpp") + glob.glob("csrc/common/*.cpp"))
    flags = [
        CXX_STD,
        "-O2",
        "-g",  # the emulator maps faulting instructions to source lines
        "-DFASTALEX_EMU",
        "-fvisibility=hidden",  # kernel symbols must not bind to fastalex._C's namesakes
        "-U_FORTIFY_SOURCE",  # fault recovery siglongjmps off the signal stack
        "-fno-math-errno",
    ]
    return cpp_extension.CppExtension(
        "fastalex._emu",
        sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_compile_args={"cxx": flags},
        extra_link_args=["-Wl,-Bsymbolic", "-pthread"] + LIBSTDCXX_LINK,
    )


def extensions():
    with_cuda, cuda_home = _want_cuda()
    cpu_sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/common/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    # -ffp-contract=off: no silent a*b+c fusion, so results do not depend on which CPU clone
    # (AVX-512 / AVX2 / baseline) runs, and LRN's compensated sums stay exact.
    cxx_flags = [CXX_STD, "-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
    include_dirs = [os.path.join(ROOT, "csrc")]
    if not with_cuda:
        return [
            cpp_extension.CppExtension(
                "fastalex._C",
                cpu_sources,
                include_dirs=include_dirs,
                extra_compile_args={"cxx": cxx_flags},
                extra_link_args=["-fopenmp"] + LIBSTDCXX_LINK,
            ),
            emulator_extension(),
        ]
    os.environ["CUDA_HOME"] = cuda_home
    cpp_extension.CUDA_HOME = cuda_home
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    nvcc_flags = [
        CXX_STD,
        "-O3",
        "-lineinfo",
        # Prints registers, stack, spills and shared memory of every kernel for every arch.
        "--resource-usage",
    ]
    cuda_sources = sorted(glob.glob("csrc/cuda/*.cu"))
    return [
        cpp_extension.CUDAExtension(
            "fastalex._C",
            cpu_sources + cuda_sources,
            include_dirs=include_dirs + _wheel_cuda_includes(),
            define_macros=[("FASTALEX_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags},
            extra_link_args=["-fopenmp"] + LIBSTDCXX_LINK,
        ),
        emulator_extension(),
    ]


class BuildExtension(cpp_extension.BuildExtension.with_options(use_ninja=True)):
    """One build folder per extension: _C and _emu compile some of the same sources with different
    flags, and each writes a build.ninja -- in a shared folder they overwrite each other's objects
    and ninja files (every rebuild recompiled everything, and parallel builds mixed them up)."""

    def build_extension(self, ext):
        shared = self.build_temp
        self.build_temp = os.path.join(shared, ext.name.replace(".", "_"))
        try:
            super().build_extension(ext)
        finally:
            self.build_temp = shared
        if CXX_RUNTIME is not None:
            try:
                CXX_RUNTIME.check_shared(self.get_ext_fullpath(ext.name), ext.name)
            except RuntimeError as e:
                sys.exit(f"setup.py: {e}")
            except (ValueError, OSError) as e:  # a file this reader does not take (32-bit, big-endian ELF)
                print(f"setup.py: warning: could not check which libstdc++ {ext.name} links: {e}")


setup(
    name="fastalex",
    packages=find_packages(include=["fastalex", "fastalex.*"]),
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension},
    python_requires=">=3.10",
)
