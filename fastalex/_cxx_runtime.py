"""The C++ runtime an extension links: fastalex._C and fastalex._emu must share torch's shared
libstdc++, never carry a static copy of their own.

A second copy of libstdc++ in the process (a compiler that links it statically: a wrapper adding
-static-libstdc++, a relocated toolchain whose libstdc++.so is the archive) breaks every number
an extension formats. Both copies register the iostream locale facets, and a stream built by one
is read through the other's facet ids: on the GPU machines' toolchain formatting an integer
segfaulted (every error message with a size in it crashed the process); with Debian's g++ the
stream fails silently and messages lose their numbers. setup.py links the libstdc++.so.6 torch
runs with and checks the result with `check_shared`.

Standalone on purpose: setup.py loads this file by path, before fastalex._C exists.
"""
from __future__ import annotations

import mmap
import os
import struct

LIBSTDCXX = "libstdc++.so.6"
# std::locale::classic(): defined (exported) by a library that carries libstdc++'s locale code.
LOCALE_CLASSIC = "_ZNSt6locale7classicEv"

_SHT_DYNAMIC, _SHT_DYNSYM = 6, 11
_DT_NULL, _DT_NEEDED = 0, 1
_SHN_UNDEF = 0


def _read(path: str, visit):
    """Calls visit(data, sections) on a 64-bit little-endian ELF file's bytes and section headers
    (name, type, flags, addr, offset, size, link, info, addralign, entsize); ValueError for any
    other file, which this reader does not interpret (32-bit or big-endian ELF, no section headers)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < 64:
            raise ValueError(f"{path}: not an ELF file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data[:4] != b"\x7fELF":
                raise ValueError(f"{path}: not an ELF file")
            if data[4] != 2 or data[5] != 1:
                raise ValueError(f"{path}: only 64-bit little-endian ELF files are read")
            shoff = struct.unpack_from("<Q", data, 0x28)[0]
            shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
            if shoff == 0 or shnum == 0:
                raise ValueError(f"{path}: no section headers to read")
            sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
            return visit(data, sections)


def _string(data, offset) -> str:
    return data[offset:data.find(b"\0", offset)].decode()


def needed(path: str) -> list[str]:
    """The DT_NEEDED entries (the shared libraries the loader maps first) of a 64-bit
    little-endian ELF file, in order, read from its .dynamic section."""
    def visit(data, sections):
        names = []
        found = False
        for sec in sections:
            if sec[1] != _SHT_DYNAMIC:
                continue
            found = True
            strtab_offset = sections[sec[6]][4]
            for entry in range(sec[4], sec[4] + sec[5], 16):
                tag, value = struct.unpack_from("<qQ", data, entry)
                if tag == _DT_NULL:
                    break
                if tag == _DT_NEEDED:
                    names.append(_string(data, strtab_offset + value))
        if not found:
            raise ValueError(f"{path}: no .dynamic section (not a shared object)")
        return names
    return _read(path, visit)


def defines(path: str, symbol: str) -> bool:
    """Whether the file's dynamic symbol table defines (not merely references) `symbol`."""
    def visit(data, sections):
        for sec in sections:
            if sec[1] != _SHT_DYNSYM:
                continue
            strtab_offset = sections[sec[6]][4]
            for entry in range(sec[4], sec[4] + sec[5], 24):
                name, _, _, shndx = struct.unpack_from("<IBBH", data, entry)
                if shndx != _SHN_UNDEF and _string(data, strtab_offset + name) == symbol:
                    return True
        return False
    return _read(path, visit)


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
    """Raises RuntimeError if the extension at `path` carries its own libstdc++ (it does not need
    the shared one, or it defines libstdc++'s locale code itself); ValueError if the file is not
    one `needed` reads."""
    if LIBSTDCXX in needed(path) and not defines(path, LOCALE_CLASSIC):
        return
    raise RuntimeError(
        f"{what} ({path}) carries its own libstdc++ (needs {needed(path)}; defines {LOCALE_CLASSIC}: "
        f"{defines(path, LOCALE_CLASSIC)}): the C++ compiler "
        f"(CXX={os.environ.get('CXX', 'c++')}) linked a static copy of libstdc++ into it. torch runs "
        f"with {loaded_libstdcxx() or 'the shared one'}, and two C++ runtimes in one process break "
        "number formatting (error messages lose their numbers or crash the process). Build with a "
        "compiler that links libstdc++ dynamically, e.g. CXX=/usr/bin/g++.")
