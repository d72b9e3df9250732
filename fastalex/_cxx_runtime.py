"""The C++ runtime an extension links: fastalex._C and fastalex._emu must share torch's shared
libstdc++, never carry a static copy of their own.

A second copy of libstdc++ in the process (a compiler that links it statically: a wrapper adding
-static-libstdc++, a relocated toolchain whose libstdc++.so is the archive) breaks every number
an extension formats. Both copies register the iostream locale facets, and a stream built by one
is read through the other's facet ids: on the GPU machines' toolchain formatting an integer
segfaulted (every error message with a size in it crashed the process); with Debian's g++ the
stream fails silently and messages lose their numbers. setup.py links the libstdc++.so.6 torch
runs with and checks the result with `needed`.

Standalone on purpose: setup.py loads this file by path, before fastalex._C exists.
"""
from __future__ import annotations

import mmap
import os
import struct

LIBSTDCXX = "libstdc++.so.6"

_SHT_DYNAMIC = 6
_DT_NULL, _DT_NEEDED = 0, 1


def needed(path: str) -> list[str]:
    """The DT_NEEDED entries (the shared libraries the loader maps first) of a 64-bit
    little-endian ELF file, in order, read from its .dynamic section."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != b"\x7fELF":
            raise ValueError(f"{path}: not an ELF file")
        if data[4] != 2 or data[5] != 1:
            raise ValueError(f"{path}: only 64-bit little-endian ELF files are read")
        shoff = struct.unpack_from("<Q", data, 0x28)[0]
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        names = []
        for sec in sections:
            if sec[1] != _SHT_DYNAMIC:
                continue
            strtab_offset = sections[sec[6]][4]
            for entry in range(sec[4], sec[4] + sec[5], 16):
                tag, value = struct.unpack_from("<qQ", data, entry)
                if tag == _DT_NULL:
                    break
                if tag == _DT_NEEDED:
                    start = strtab_offset + value
                    names.append(data[start:data.find(b"\0", start)].decode())
        return names


def loaded_libstdcxx() -> str | None:
    """The libstdc++ this process runs with (after `import torch`: torch's), from
    /proc/self/maps; None where there is none or no /proc."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                if os.path.basename(path).startswith("libstdc++.so"):
                    return path
    except OSError:
        pass
    return None


def link_args() -> list[str]:
    """Linker arguments that make an extension need the shared libstdc++ torch runs with: its
    path, named before the compiler driver's own -lstdc++ (which then finds nothing left to
    add). The same library a normal toolchain links, so harmless there."""
    lib = loaded_libstdcxx()
    return [lib] if lib else []


def check_shared(path: str, what: str) -> None:
    """Raises if the extension at `path` carries its own libstdc++ instead of needing the shared one."""
    if LIBSTDCXX in needed(path):
        return
    raise RuntimeError(
        f"{what} ({path}) does not need the shared {LIBSTDCXX}: the C++ compiler "
        f"(CXX={os.environ.get('CXX', 'c++')}) linked a static copy of libstdc++ into it. torch runs "
        f"with {loaded_libstdcxx() or 'the shared one'}, and two C++ runtimes in one process break "
        "number formatting (error messages lose their numbers or crash the process). Build with a "
        "compiler that links libstdc++ dynamically, e.g. CXX=/usr/bin/g++.")
