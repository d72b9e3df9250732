"""Static SASS evidence for the CUDA kernels: what each kernel's main loop issues, whether any
kernel touches local memory, and a speed-of-light BOUND for the tensor-core kernels.

    python scripts/sass_report.py [FILE ...] [--json build/sass_report.json] [--markdown PATH]
                                  [--arch sm_80,sm_90] [--launch SUBSTRING=DYN_SMEM,THREADS ...]
                                  [--launch-file scripts/sass_launch.json] [--auto]

FILE is the built extension (default: fastalex/_C*.so), a cubin or a fatbin. For every
architecture present (sm_80 and sm_90 in the extension) it runs ``cuobjdump -sass`` and
``cuobjdump -res-usage``, demangles the kernel names (c++filt or cu++filt) and prints a table
(stderr): each kernel's instruction count, its main loop's instruction mix and any local-memory
instruction. Nothing here runs a GPU; every figure is read from the binary or derived from it.

Fails (exit 1, one line per problem naming kernel and arch) when
  * a kernel whose name marks it as a tensor-core kernel (its unqualified function name contains
    TENSOR_CORE_MARKER, "_mma") has no main loop, or no HMMA in its main loop;
  * any kernel has a local-memory instruction (LDL*, STL*: spills, dynamically indexed local
    arrays, stack-passed arguments), anywhere in its code;
  * a tensor-core kernel cannot be resident on an SM with the launch configuration given for it.

Main loop. The control-flow graph is rebuilt from the SASS: basic blocks start at the entry,
at every branch target and after every branch/EXIT/RET; BRA/JMP (predicated or not, e.g.
``@P0 BRA 0x0480``) give a taken edge, a predicated one also the fall-through; EXIT/RET/BRX/JMX/
KILL end a block (BRX/JMX are indirect: their targets are not followed); CALL falls through
(callees are roots of their own); instructions predicated on ``!PT`` never execute and are
ignored as branches. A loop is a natural loop: an edge u -> h whose target h dominates u is a
back edge (a backward BRA to an earlier address), the loop is h plus every block that reaches u
without passing h, and back edges to the same header form one loop. A backward branch whose
target does not dominate it (irreducible flow, not produced by nvcc for structured code) falls
back to the address range target..branch. The trailing ``BRA`` to itself after the last EXIT
is unreachable and never a loop.
  * A kernel with any HMMA: the main loop is chosen among the loops that contain an HMMA; of
    those, the innermost ones (no other HMMA-holding loop nested inside), and of those the one
    with the most HMMA (ties: the most HMMA per instruction, then the lowest address).
  * Any other kernel: the same rule with FFMA in place of HMMA; a kernel without an FFMA loop
    falls back to DFMA (float64), then HFMA2 (not HFMA2.MMA, a register move); none of them
    in any loop: no main loop.
Counts are static: every instruction of the loop body counted once per iteration (a
conditional block inside the loop counts as if it ran every iteration; a nested loop's body
counts once). An iteration is one trip around the SASS loop, i.e. as many source iterations as
the compiler unrolled into it. Categories: HMMA, LDSM, LDGSTS, FFMA, LDS, STS, LDG, BAR
(BAR.SYNC/ARV/RED, not DEPBAR) and other; ``@!PT`` instructions (never executed; ptxas pads
LDGSTS with them) count as issued "other" instructions, not as shared-memory traffic. The JSON
also has the main loop's full opcode histogram.

Speed-of-light BOUND (a model computed from the SASS, NEVER a measurement), for every kernel
whose main loop contains HMMA, per arch. Per main-loop iteration of one warp:
  * FLOPs: 2*m*n*k per HMMA (HMMA.16816 = 4096, HMMA.1688 tf32 = 2048, per warp instruction).
  * Tensor cycles on the warp's SM sub-partition (SMSP) at the dense tensor peak:
    m*n*k / (dense FMA per clock per SMSP for that input type), see PEAK_FMA_PER_CLK_PER_SM:
      sm_80 (A100): fp16/bf16 1024 dense FMA/clk/SM (256 per SMSP), tf32 512. A100: 312 TFLOP/s
        fp16 dense (156 tf32) = 108 SMs x 1.41 GHz x 2048 FLOP/clk/SM.
      sm_90 (H100 SXM): fp16/bf16 2048 dense FMA/clk/SM (512 per SMSP), tf32 1024. H100 SXM:
        989.4 TFLOP/s fp16/bf16 dense (494.7 tf32) = 132 SMs x 1.83 GHz x 4096 FLOP/clk/SM.
      Sources: NVIDIA A100 and H100 architecture whitepapers; the per-SM arithmetic is spelled
      out in NVIDIA's developer forum, "How to calculate the Tensor Core FP16 performance of
      H100" (forums.developer.nvidia.com/t/244727: A100 TC unit 256 FMA/clk, 4 per SM, 108 SMs
      at 1410 MHz = 312 TFLOP/s; H100 doubles the per-SM rate to 4096 FLOP/clk) and in
      NVIDIA/cudnn-frontend pull request 650 (H100/H200: 132 SMs x 1.83 GHz x 4096 FLOP/clk/SM
      = 989.5 TFLOP/s). TF32 is half the fp16 rate on both (156 / 494.7 TFLOP/s).
  * The bound, as a fraction of that dense tensor peak, is the minimum of
      mma_sync   MMA_SYNC_CEILING[arch]: 1.0 on sm_80 (Ampere's peak is an mma.sync peak); 0.63
                 on sm_90, where the dense peak needs wgmma and mma.sync is widely reported to
                 reach only about 60-70% of it (Hazy Research, "GPUs Go Brrr", 2024-05-12,
                 hazyresearch.stanford.edu/blog/2024-05-12-tk: around 63% of the H100's peak
                 without WGMMA). A third-party observation taken as this model's assumption,
                 not an NVIDIA specification; change the constant when a measurement exists.
      issue      tensor cycles / issued instructions per iteration: an SMSP issues one warp
                 instruction per clock (4 per SM), and every instruction of the loop, HMMA
                 included, takes one issue slot.
      smem       (FLOPs / SM tensor peak) / (shared-memory bytes / 128 B per clock per SM):
                 bytes = LDSM (.x4 512 B, .x2 256 B, .x1 128 B per warp instruction, .MT88 the
                 same) + LDS + STS (4 B per lane, .64 8 B, .128 16 B; narrower ones 128 B, one
                 wavefront) + LDGSTS (its shared-memory write: width x 32 lanes). Conflict-free
                 banks assumed: bank conflicts only lower the real figure.
      occupancy  resident warps per SM / 4 (capped at 1): with fewer than 4 warps some SMSPs
                 have no tensor work.
    and the limiter is the term that reaches the minimum ("none" when every term is 1, i.e. the
    loop could run at the full peak). With every warp of every resident
    block running the same loop, the per-SMSP ratios do not depend on how many warps are
    resident; occupancy only matters below one warp per SMSP (the model assumes enough warps to
    hide latency, which is why it is a BOUND).
  * Occupancy (warps/SM, blocks/SM, limiter) as the CUDA occupancy calculator computes it:
    registers per warp = registers per thread x 32 rounded up to 256, 65536 registers per SM
    split over 4 SMSPs (16384 each); shared memory per block = the cubin's static SHARED +
    dynamic + 1 KiB reserved per block, rounded up to 128 B, against 164 KiB per SM on sm_80
    (163 KiB max per block) and 228 KiB on sm_90 (227 KiB max per block); at most 64 warps and
    32 blocks per SM on both. sm_90 cubins already count the 1 KiB reservation in SHARED
    (ptxas 13: a 2048-byte static array shows as 3072, a dynamic-only kernel as 1024), so it is
    added only when the sm_90 figure is 0.
  * Launch configuration: dynamic shared memory and threads per block come from --launch
    SUBSTRING=BYTES,THREADS, --launch-file (JSON {"SUBSTRING": {"dynamic_smem": BYTES,
    "threads": N}}; keys starting with "_" are comments; default file scripts/sass_launch.json
    when it exists) matched against the demangled kernel name (the longest matching substring
    wins). Absent: dynamic shared memory 0 and threads = the kernel's __launch_bounds__ maximum
    (EIATTR_MAX_THREADS in the cubin) or DEFAULT_THREADS, and the row says "assumed".

--auto (scripts/test.sh, scripts/bench.sh): analyse fastalex/_C*.so when it holds CUDA code;
when it does not (a FASTALEX_CUDA=0 or CPU-only build) print a one-line notice, remove a stale
--json file and exit 0 -- unless FASTALEX_CUDA=1, where a missing .so, missing device code or a
missing cuobjdump is an error.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A kernel whose unqualified function name contains this is a tensor-core kernel: its main loop
# must issue HMMA (e.g. fastalex::cuda::conv2d_relu_mma_kernel<...>).
TENSOR_CORE_MARKER = "_mma"
CATEGORIES = ("HMMA", "LDSM", "LDGSTS", "FFMA", "LDS", "STS", "LDG", "BAR", "other")
LOCAL_MEMORY_OPCODES = ("LDL", "STL")
# Without HMMA the main loop is the loop with the most FFMA; kernels without any FFMA loop
# (float64, packed-half code) fall back to DFMA, then HFMA2.
FMA_KEYS = ("FFMA", "DFMA", "HFMA2")
DEFAULT_THREADS = 128
DEFAULT_LAUNCH_FILE = os.path.join(ROOT, "scripts", "sass_launch.json")

# ---------------------------------------------------------------- the model's machine numbers
# Dense tensor-core FMA per clock per SM by HMMA input type (see the docstring for sources).
PEAK_FMA_PER_CLK_PER_SM = {
    "sm_80": {"f16": 1024, "bf16": 1024, "tf32": 512},
    "sm_90": {"f16": 2048, "bf16": 2048, "tf32": 1024},
}
# Fraction of that peak mma.sync (HMMA) can reach at all (sm_90's peak needs wgmma).
MMA_SYNC_CEILING = {"sm_80": 1.0, "sm_90": 0.63}
SMSP_PER_SM = 4
ISSUE_PER_CLK_PER_SMSP = 1
SMEM_BYTES_PER_CLK_PER_SM = 128
SM_LIMITS = {
    # registers per SM, register allocation unit per warp, smem per SM, max smem per block,
    # reserved smem per block, smem allocation unit, max warps, max blocks per SM
    "sm_80": dict(regs=65536, reg_unit=256, smem=164 * 1024, smem_block=163 * 1024, reserved=1024,
                  smem_unit=128, warps=64, blocks=32),
    "sm_90": dict(regs=65536, reg_unit=256, smem=228 * 1024, smem_block=227 * 1024, reserved=1024,
                  smem_unit=128, warps=64, blocks=32),
}


def base_arch(arch: str) -> str:
    """sm_90a -> sm_90 (the 'a' variants share the machine numbers)."""
    return arch.rstrip("af")


# ---------------------------------------------------------------- tools
def _triton_bin() -> str | None:
    spec = importlib.util.find_spec("triton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "backends", "nvidia", "bin")


def find_tool(name: str) -> str | None:
    """A CUDA binary tool: $PATH, $CUDA_HOME/bin, /usr/local/cuda/bin, then the copy that ships
    in the triton wheel (backends/nvidia/bin holds cuobjdump and nvdisasm)."""
    found = shutil.which(name)
    if found:
        return found
    dirs = [os.path.join(h, "bin") for h in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
                                               "/usr/local/cuda") if h]
    tb = _triton_bin()
    if tb:
        dirs.append(tb)
    for d in dirs:
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def demangle(names: list[str]) -> dict[str, str]:
    """Mangled -> demangled through c++filt (or cu++filt); unchanged if neither exists."""
    names = sorted(set(names))
    for tool in ("c++filt", "cu++filt"):
        path = find_tool(tool)
        if not names or path is None:
            continue
        try:
            out = subprocess.run([path], input="\n".join(names) + "\n", capture_output=True, text=True,
                                 timeout=60).stdout.splitlines()
        except (OSError, subprocess.SubprocessError):
            continue
        if len(out) == len(names):
            return dict(zip(names, out))
    return {n: n for n in names}


def function_name(demangled: str) -> str:
    """The unqualified function name: 'void fastalex::cuda::conv_mma_kernel<float, 2>(...)'
    -> 'conv_mma_kernel' (template arguments and parameters are not part of it)."""
    s = demangled.strip()
    if s.startswith("void "):
        s = s[5:]
    depth, cut = 0, len(s)
    for i, ch in enumerate(s):
        if ch in "<(" and depth == 0:
            cut = i
            break
    s = s[:cut]
    return s.rsplit("::", 1)[-1]


def short_name(demangled: str) -> str:
    s = demangled.replace("fastalex::cuda::", "").replace("__nv_bfloat16", "bf16").replace("__half", "fp16")
    s = re.sub(r"\(.*\)$", "", s)
    return s[5:] if s.startswith("void ") else s


def run_cuobjdump(cuobjdump: str, args: list[str], path: str) -> str:
    proc = subprocess.run([cuobjdump, *args, path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{os.path.basename(cuobjdump)} {' '.join(args)} {path} failed: "
                           + (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}"))
    return proc.stdout


def list_archs(cuobjdump: str, path: str) -> list[str]:
    """The SASS architectures in a file (empty: no device code)."""
    proc = subprocess.run([cuobjdump, "-lelf", path], capture_output=True, text=True)
    archs = set(re.findall(r"\.(sm_\d+[af]?)\.cubin", proc.stdout))
    if not archs:  # a bare cubin: -lelf lists nothing, the SASS header names the arch
        proc = subprocess.run([cuobjdump, "-sass", path], capture_output=True, text=True)
        archs = set(re.findall(r"code for (sm_\d+[af]?)", proc.stdout))
    return sorted(archs)


# ---------------------------------------------------------------- SASS parsing
INSTR = re.compile(r"^\s*/\*([0-9a-fA-F]{4,})\*/\s+(.*?)\s*;")
PRED = re.compile(r"^@(!?U?P(?:T|\d+))\s+(.*)$")
HEX = re.compile(r"0x([0-9a-fA-F]+)")


@dataclass
class Instr:
    addr: int
    pred: str | None  # "P0", "!P1", "!PT", ... or None
    opcode: str       # full opcode with modifiers, e.g. "LDSM.16.M88.4"
    operands: str
    text: str

    @property
    def base(self) -> str:
        return self.opcode.split(".", 1)[0]

    @property
    def never(self) -> bool:
        return self.pred == "!PT"

    @property
    def conditional(self) -> bool:
        return self.pred is not None and self.pred != "PT"


@dataclass
class Function:
    mangled: str
    arch: str
    instrs: list[Instr] = field(default_factory=list)


def parse_sass(text: str) -> list[Function]:
    """Functions of a ``cuobjdump -sass`` listing, each with its architecture and instructions."""
    funcs, cur, arch = [], None, None
    for line in text.splitlines():
        m = re.search(r"code for (sm_\d+[af]?)", line)
        if m:
            arch, cur = m.group(1), None
            continue
        m = re.match(r"\s*Function\s*:\s*(\S+)", line)
        if m:
            cur = Function(m.group(1), arch or "unknown")
            funcs.append(cur)
            continue
        if cur is None:
            continue
        m = INSTR.match(line)
        if not m:
            continue
        body = m.group(2).strip()
        pred = None
        pm = PRED.match(body)
        if pm:
            pred, body = pm.group(1), pm.group(2)
        parts = body.split(None, 1)
        if not parts:
            continue
        cur.instrs.append(Instr(int(m.group(1), 16), pred, parts[0], parts[1] if len(parts) > 1 else "", body))
    return funcs


def parse_res_usage(text: str) -> dict[tuple[str, str], dict]:
    """(mangled, arch) -> {registers, static_smem, stack, local} from ``cuobjdump -res-usage``."""
    out, arch, fn = {}, None, None
    for line in text.splitlines():
        m = re.match(r"\s*arch\s*=\s*(sm_\d+[af]?)", line)
        if m:
            arch = m.group(1)
            continue
        m = re.match(r"\s*Function\s+(\S+?):\s*$", line)
        if m:
            fn = m.group(1)
            continue
        m = re.search(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)", line)
        if m and fn:
            out[(fn, arch)] = dict(registers=int(m.group(1)), stack=int(m.group(2)),
                                   static_smem=int(m.group(3)), local=int(m.group(4)))
            fn = None
    return out


def parse_max_threads(text: str) -> dict[tuple[str, str], int]:
    """(mangled, arch) -> __launch_bounds__ maximum threads (EIATTR_MAX_THREADS) from -elf."""
    out, arch, fn, want = {}, None, None, False
    for line in text.splitlines():
        m = re.match(r"\s*arch\s*=\s*(sm_\d+[af]?)", line)
        if m:
            arch = m.group(1)
            continue
        if line.startswith(".nv.info."):
            fn, want = line[len(".nv.info."):].strip(), False
            continue
        if line.startswith(".") and not line.startswith(".nv.info."):
            fn = None
            continue
        if fn and "EIATTR_MAX_THREADS" in line:
            want = True
            continue
        if want and "Value:" in line:
            dims = [int(v, 16) for v in HEX.findall(line)[:3]]
            if dims:
                out[(fn, arch)] = math.prod(dims)
            want = False
    return out


# ---------------------------------------------------------------- control flow
ENDS = {"EXIT", "RET", "KILL", "BRX", "JMX", "BPT"}
JUMPS = {"BRA", "JMP"}


def _branch_target(ins: Instr) -> int | None:
    hexes = HEX.findall(ins.operands)
    return int(hexes[-1], 16) if hexes else None


def _is_conditional_jump(ins: Instr) -> bool:
    # @P0 BRA, BRA.DIV (taken only when the warp diverged), or a predicate operand.
    return (ins.conditional or ".DIV" in ins.opcode or ".CONV" in ins.opcode
            or re.search(r"(^|[\s,])!?U?P\d", ins.operands) is not None)


@dataclass
class Loop:
    header: int            # block index
    blocks: set
    start: int             # lowest / highest instruction address in the loop
    end: int
    reducible: bool = True


def build_cfg(instrs: list[Instr]):
    """Basic blocks (lists of instruction indices), successor lists and root blocks."""
    if not instrs:
        return [], [], []
    index = {ins.addr: i for i, ins in enumerate(instrs)}
    leaders = {0}
    call_targets = set()
    for i, ins in enumerate(instrs):
        if ins.never:
            continue
        if ins.base in JUMPS:
            t = _branch_target(ins)
            if t is not None and t in index:
                leaders.add(index[t])
            leaders.add(i + 1)
        elif ins.base in ENDS:
            leaders.add(i + 1)
        elif ins.base == "CALL":
            t = _branch_target(ins)
            if t is not None and t in index:
                leaders.add(index[t])
                call_targets.add(index[t])
    leaders = sorted(x for x in leaders if x < len(instrs))
    block_of = {}
    blocks = []
    for b, start in enumerate(leaders):
        stop = leaders[b + 1] if b + 1 < len(leaders) else len(instrs)
        blocks.append(list(range(start, stop)))
        for i in range(start, stop):
            block_of[i] = b
    succs = []
    for b, idxs in enumerate(blocks):
        last = instrs[idxs[-1]]
        nxt = [b + 1] if b + 1 < len(blocks) else []
        if last.never:
            s = nxt
        elif last.base in JUMPS:
            t = _branch_target(last)
            taken = [block_of[index[t]]] if t is not None and t in index else []
            s = taken + (nxt if _is_conditional_jump(last) else [])
        elif last.base in ENDS:
            s = nxt if last.conditional and last.base not in ("BRX", "JMX") else []
        else:
            s = nxt
        succs.append(sorted(set(s)))
    roots = [0] + sorted({block_of[i] for i in call_targets} - {0})
    return blocks, succs, roots


def dominators(succs, roots):
    """Immediate dominators (Cooper, Harvey, Kennedy) over the blocks reachable from the roots,
    with a virtual root (-1) above them. Returns (idom dict, reachable set)."""
    order, seen = [], set()
    for r in roots:  # iterative DFS post-order
        if r in seen:
            continue
        stack = [(r, iter(succs[r]))]
        seen.add(r)
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                order.append(node)
                stack.pop()
            elif nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, iter(succs[nxt])))
    rpo = list(reversed(order))
    rpo_num = {b: i + 1 for i, b in enumerate(rpo)}
    rpo_num[-1] = 0
    preds = {b: [] for b in rpo}
    for b in rpo:
        for s in succs[b]:
            preds[s].append(b)
    for r in roots:
        preds[r].append(-1)
    idom = {-1: -1}

    def intersect(a, b):
        while a != b:
            while rpo_num[a] > rpo_num[b]:
                a = idom[a]
            while rpo_num[b] > rpo_num[a]:
                b = idom[b]
        return a

    changed = True
    while changed:
        changed = False
        for b in rpo:
            ps = [p for p in preds[b] if p in idom]
            if not ps:
                continue
            new = ps[0]
            for p in ps[1:]:
                new = intersect(p, new)
            if idom.get(b) != new:
                idom[b] = new
                changed = True
    return idom, seen


def _dominates(idom, h, u):
    while u != -1:
        if u == h:
            return True
        u = idom.get(u, -1)
    return False


def find_loops(instrs: list[Instr]) -> tuple[list, list[Loop]]:
    blocks, succs, roots = build_cfg(instrs)
    if not blocks:
        return blocks, []
    idom, reachable = dominators(succs, roots)
    preds = {b: [] for b in range(len(blocks))}
    for b in range(len(blocks)):
        for s in succs[b]:
            preds[s].append(b)
    natural: dict[int, set] = {}
    ranges = []
    for u in sorted(reachable):
        for h in succs[u]:
            if _dominates(idom, h, u):
                body = natural.setdefault(h, {h})
                stack = [u]
                while stack:
                    x = stack.pop()
                    if x in body:
                        continue
                    body.add(x)
                    stack.extend(p for p in preds[x] if p in reachable)
            elif instrs[blocks[h][0]].addr <= instrs[blocks[u][-1]].addr:
                ranges.append((h, u))  # a backward branch into a non-dominating block
    loops = []
    for h, body in natural.items():
        addrs = [instrs[i].addr for b in body for i in blocks[b]]
        loops.append(Loop(h, body, min(addrs), max(addrs)))
    for h, u in ranges:
        body = set(range(h, u + 1))
        loops.append(Loop(h, body, instrs[blocks[h][0]].addr, instrs[blocks[u][-1]].addr, reducible=False))
    return blocks, loops


# ---------------------------------------------------------------- counting
def category(ins: Instr) -> str:
    if ins.never:
        return "other"
    return ins.base if ins.base in CATEGORIES else "other"


def loop_instrs(loop: Loop, blocks, instrs) -> list[Instr]:
    return [instrs[i] for b in sorted(loop.blocks) for i in blocks[b]]


def is_key(ins: Instr, key: str) -> bool:
    """Whether an instruction is the main-loop key: HMMA, FFMA, DFMA or HFMA2 (not HFMA2.MMA,
    which ptxas uses as a register move)."""
    return not ins.never and ins.base == key and not ins.opcode.startswith("HFMA2.MMA")


def counts(ins_list: list[Instr]) -> dict:
    c = {k: 0 for k in CATEGORIES}
    for ins in ins_list:
        c[category(ins)] += 1
    c["total"] = len(ins_list)
    return c


def opcode_histogram(ins_list: list[Instr]) -> dict:
    h = {}
    for ins in ins_list:
        key = ("@!PT " if ins.never else "") + ins.opcode
        h[key] = h.get(key, 0) + 1
    return dict(sorted(h.items(), key=lambda kv: (-kv[1], kv[0])))


def hmma_shape(opcode: str):
    """(m, n, k, input type) of an HMMA opcode, e.g. HMMA.16816.F32.BF16 -> (16, 8, 16, 'bf16')."""
    parts = opcode.split(".")
    shape = next((p for p in parts[1:] if p.isdigit()), None)
    dims = {"16816": (16, 8, 16), "1688": (16, 8, 8), "884": (8, 8, 4), "16832": (16, 8, 32)}.get(shape)
    if dims is None:
        return None
    kind = "tf32" if "TF32" in parts else "bf16" if "BF16" in parts else "f16"
    return (*dims, kind)


def smem_bytes(ins: Instr) -> tuple[int, int]:
    """(bytes read, bytes written) in shared memory by one warp instruction (conflict-free)."""
    if ins.never:
        return 0, 0
    mods = ins.opcode.split(".")[1:]
    if ins.base == "LDSM":
        n = next((int(m) for m in mods if m in ("1", "2", "4")), 1)
        return 128 * n, 0
    width = 4
    for m in mods:
        if m in ("64", "128"):
            width = int(m) // 8
        elif m in ("U8", "S8", "U16", "S16"):
            width = int(m[1:]) // 8
    nbytes = max(128, 32 * width)  # narrower than 4 B per lane still costs one wavefront
    if ins.base == "LDS":
        return nbytes, 0
    if ins.base == "STS":
        return 0, nbytes
    if ins.base == "LDGSTS":
        return 0, 32 * width
    return 0, 0


# ---------------------------------------------------------------- occupancy and bound
def occupancy(arch: str, registers: int, static_smem: int, dynamic_smem: int, threads: int) -> dict:
    lim = SM_LIMITS[base_arch(arch)]
    warps_per_block = max(1, math.ceil(threads / 32))
    regs_per_warp = math.ceil(max(registers, 1) * 32 / lim["reg_unit"]) * lim["reg_unit"]
    warps_by_regs = SMSP_PER_SM * ((lim["regs"] // SMSP_PER_SM) // regs_per_warp)
    # The sm_90 cubin's SHARED already holds the 1 KiB reservation whenever it is nonzero.
    included = lim["reserved"] if base_arch(arch) == "sm_90" and static_smem > 0 else 0
    user_smem = static_smem - included + dynamic_smem
    smem_block = math.ceil((user_smem + lim["reserved"]) / lim["smem_unit"]) * lim["smem_unit"]
    limits = {
        "registers": warps_by_regs // warps_per_block,
        "shared memory": lim["smem"] // smem_block if user_smem <= lim["smem_block"] else 0,
        "warps": lim["warps"] // warps_per_block,
        "blocks": lim["blocks"],
    }
    if threads > 1024:
        limits["threads"] = 0
    blocks = min(limits.values())
    limiter = "+".join(k for k in limits if limits[k] == blocks)  # every limit that binds
    return dict(threads=threads, warps_per_block=warps_per_block, registers=registers,
                regs_per_warp=regs_per_warp, smem_per_block=smem_block, blocks_per_sm=blocks,
                warps_per_sm=blocks * warps_per_block, limiter=limiter, limits=limits)


def bound(arch: str, main: list[Instr], occ: dict) -> dict | None:
    a = base_arch(arch)
    if a not in PEAK_FMA_PER_CLK_PER_SM:
        return None
    peak = PEAK_FMA_PER_CLK_PER_SM[a]
    hmma, flops, tensor_cycles, unknown = 0, 0, 0.0, []
    for ins in main:
        if ins.never or ins.base != "HMMA":
            continue
        shape = hmma_shape(ins.opcode)
        if shape is None:
            unknown.append(ins.opcode)
            continue
        m, n, k, kind = shape
        hmma += 1
        flops += 2 * m * n * k
        tensor_cycles += m * n * k / (peak[kind] / SMSP_PER_SM)
    if hmma == 0:
        return None
    instr = len(main)
    rd = sum(smem_bytes(i)[0] for i in main)
    wr = sum(smem_bytes(i)[1] for i in main)
    issue_cycles = instr / ISSUE_PER_CLK_PER_SMSP
    smem_cycles_per_sm = (rd + wr) / SMEM_BYTES_PER_CLK_PER_SM
    tensor_cycles_per_sm = tensor_cycles / SMSP_PER_SM  # one warp's tensor work, SM-wide rate
    terms = {
        "mma_sync": MMA_SYNC_CEILING[a],
        "issue": min(1.0, tensor_cycles / issue_cycles),
        "smem": min(1.0, tensor_cycles_per_sm / smem_cycles_per_sm) if smem_cycles_per_sm else 1.0,
        "occupancy": min(1.0, occ["warps_per_sm"] / SMSP_PER_SM),
    }
    limiter = min(terms, key=lambda k: terms[k]) if min(terms.values()) < 1.0 else "none"
    kinds = sorted({hmma_shape(i.opcode)[3] for i in main if i.base == "HMMA" and not i.never and hmma_shape(i.opcode)})
    return dict(
        kind="BOUND (static model from SASS, not a measurement)",
        hmma_per_iter=hmma, instr_per_iter=instr, instr_per_hmma=round(instr / hmma, 3),
        flops_per_iter_per_warp=flops, input_types=kinds,
        tensor_cycles_per_iter_per_smsp=round(tensor_cycles, 3),
        smem_bytes_read_per_iter=rd, smem_bytes_written_per_iter=wr,
        smem_bytes_per_hmma=round((rd + wr) / hmma, 1),
        terms={k: round(v, 4) for k, v in terms.items()},
        bound_fraction_of_tensor_peak=round(min(terms.values()), 4), limiter=limiter,
        unknown_hmma=unknown,
    )


# ---------------------------------------------------------------- launch configurations
def load_launch(files: list[str], cli: list[str]) -> dict[str, dict]:
    table = {}
    for path in files:
        with open(path) as f:
            data = json.load(f)
        for key, val in data.items():
            if key.startswith("_"):
                continue
            if isinstance(val, dict):
                table[key] = dict(dynamic_smem=int(val.get("dynamic_smem", 0)), threads=int(val["threads"]),
                                  source=os.path.relpath(path, ROOT) if path.startswith(ROOT) else path)
            else:
                table[key] = dict(dynamic_smem=int(val[0]), threads=int(val[1]), source=path)
    for item in cli:
        m = re.match(r"^(.+)=(\d+),(\d+)$", item)
        if not m:
            raise SystemExit(f"--launch: expected SUBSTRING=DYNAMIC_SMEM_BYTES,THREADS, got {item!r}")
        table[m.group(1)] = dict(dynamic_smem=int(m.group(2)), threads=int(m.group(3)), source="--launch")
    return table


def launch_for(demangled: str, table: dict, max_threads: int | None) -> dict:
    hits = [k for k in table if k in demangled]
    if hits:
        key = max(hits, key=len)
        return dict(table[key], match=key, assumed=False)
    if max_threads:
        return dict(dynamic_smem=0, threads=max_threads, source="assumed: __launch_bounds__ max threads, "
                    "no dynamic shared memory", assumed=True)
    return dict(dynamic_smem=0, threads=DEFAULT_THREADS, source=f"assumed: {DEFAULT_THREADS} threads, "
                "no dynamic shared memory", assumed=True)


# ---------------------------------------------------------------- analysis
def analyse_function(fn: Function, demangled: str, res: dict | None, launch: dict) -> dict:
    instrs = fn.instrs
    blocks, loops = find_loops(instrs)
    name = function_name(demangled)
    is_tc = TENSOR_CORE_MARKER in name
    local = [i for i in instrs if not i.never and i.base in LOCAL_MEMORY_OPCODES]
    has_hmma = any(i.base == "HMMA" and not i.never for i in instrs)
    per_loop = [(lp, loop_instrs(lp, blocks, instrs)) for lp in loops]
    main = None
    for key in (("HMMA",) if has_hmma else FMA_KEYS):
        cands = [(lp, ins, sum(1 for i in ins if is_key(i, key))) for lp, ins in per_loop]
        cands = [c for c in cands if c[2] > 0]
        inner = [c for c in cands if not any(o[0] is not c[0] and o[0].blocks < c[0].blocks for o in cands)]
        if not inner:
            continue
        lp, ins, n = min(inner, key=lambda c: (-c[2], -c[2] / len(c[1]), c[0].start))
        depth = sum(1 for o in loops if o is not lp and lp.blocks < o.blocks)
        main = dict(start=f"0x{lp.start:04x}", end=f"0x{lp.end:04x}", key=key, key_count=n, depth=depth,
                    reducible=lp.reducible, blocks=len(lp.blocks), counts=counts(ins),
                    opcodes=opcode_histogram(ins), _instrs=ins)
        break
    row = dict(kernel=short_name(demangled), function=name, demangled=demangled, mangled=fn.mangled,
               arch=fn.arch, tensor_core_kernel=is_tc, total_instructions=len(instrs), loops=len(loops),
               local_memory=dict(count=len(local), opcodes=opcode_histogram(local),
                                 first=[f"0x{i.addr:04x} {i.text}" for i in local[:3]]),
               resources=res, launch=launch, main_loop=main, occupancy=None, bound=None)
    if res is not None and base_arch(fn.arch) in SM_LIMITS:
        row["occupancy"] = occupancy(fn.arch, res["registers"], res["static_smem"], launch["dynamic_smem"],
                                     launch["threads"])
    if main is not None and main["counts"]["HMMA"] and row["occupancy"] is not None:
        row["bound"] = bound(fn.arch, main["_instrs"], row["occupancy"])
    return row


def problems_of(row: dict) -> list[str]:
    where = f"{row['kernel']} [{row['arch']}]"
    out = []
    if row["local_memory"]["count"]:
        ops = ", ".join(f"{k} x{v}" for k, v in row["local_memory"]["opcodes"].items())
        out.append(f"{where}: uses local memory ({ops}; first: {row['local_memory']['first'][0]})")
    if row["tensor_core_kernel"]:
        if row["main_loop"] is None:
            out.append(f"{where}: tensor-core kernel (name contains {TENSOR_CORE_MARKER!r}) has no main loop "
                       "(no loop holding HMMA or FFMA)")
        elif row["main_loop"]["counts"]["HMMA"] == 0:
            c = row["main_loop"]["counts"]
            out.append(f"{where}: tensor-core kernel (name contains {TENSOR_CORE_MARKER!r}) has no HMMA in its "
                       f"main loop {row['main_loop']['start']}-{row['main_loop']['end']} "
                       f"({c['FFMA']} FFMA, {c['total']} instructions)")
        occ = row["occupancy"]
        if occ is not None and occ["blocks_per_sm"] == 0 and not row["launch"]["assumed"]:
            out.append(f"{where}: cannot be resident on an SM with {row['launch']['threads']} threads and "
                       f"{row['launch']['dynamic_smem']} B dynamic shared memory (limited by {occ['limiter']})")
    return out


def analyse(paths: list[str], cuobjdump: str, archs_wanted: list[str] | None, launch_table: dict):
    rows, seen, archs_all, notes = [], set(), set(), []
    for path in paths:
        archs = list_archs(cuobjdump, path)
        if archs_wanted:
            archs = [a for a in archs if a in archs_wanted or base_arch(a) in archs_wanted]
        if not archs:
            notes.append(f"{path}: no SASS" + (f" for {', '.join(archs_wanted)}" if archs_wanted else ""))
            continue
        for arch in archs:
            archs_all.add(arch)
            sel = ["-arch", arch]
            funcs = parse_sass(run_cuobjdump(cuobjdump, ["-sass", *sel], path))
            res = parse_res_usage(run_cuobjdump(cuobjdump, ["-res-usage", *sel], path))
            try:
                max_threads = parse_max_threads(run_cuobjdump(cuobjdump, ["-elf", *sel], path))
            except RuntimeError:
                max_threads = {}
            names = demangle([f.mangled for f in funcs])
            for fn in funcs:
                if fn.arch != arch and base_arch(fn.arch) != base_arch(arch):
                    continue
                if (path, fn.mangled, fn.arch) in seen:  # the same kernel in two objects of one file
                    continue
                seen.add((path, fn.mangled, fn.arch))
                dem = names.get(fn.mangled, fn.mangled)
                launch = launch_for(dem, launch_table, max_threads.get((fn.mangled, fn.arch)))
                rows.append(analyse_function(fn, dem, res.get((fn.mangled, fn.arch)), launch))
    rows.sort(key=lambda r: (r["kernel"], r["arch"]))
    return rows, sorted(archs_all), notes


# ---------------------------------------------------------------- output
def print_table(rows: list[dict], out=sys.stderr) -> None:
    if not rows:
        print("no kernels found", file=out)
        return
    width = min(70, max(len(r["kernel"]) for r in rows))
    cols = ("HMMA", "LDSM", "LDGSTS", "FFMA", "LDS", "STS", "LDG", "BAR", "other")
    print("SASS per kernel (cuobjdump; static counts; main loop = one trip around the SASS loop)", file=out)
    head = (f"{'kernel':<{width}} {'arch':<6} {'instr':>6} {'main loop':>13} {'by':>5} {'iter':>5} "
            + " ".join(f"{c:>6}" for c in cols) + f" {'LDL/STL':>7}")
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in rows:
        k = r["kernel"] if len(r["kernel"]) <= width else r["kernel"][: width - 3] + "..."
        ml = r["main_loop"]
        if ml is None:
            loop, cells = "none", " ".join(f"{'-':>6}" for _ in cols)
            it = by = "-"
        else:
            loop = f"{ml['start']}-{ml['end']}"[:13]
            it, by = str(ml["counts"]["total"]), ml["key"]
            cells = " ".join(f"{ml['counts'][c]:>6}" for c in cols)
        tag = " [tensor-core]" if r["tensor_core_kernel"] else ""
        print(f"{k:<{width}} {r['arch']:<6} {r['total_instructions']:>6} {loop:>13} {by:>5} {it:>5} {cells} "
              f"{r['local_memory']['count']:>7}{tag}", file=out)
    bounded = [r for r in rows if r["bound"]]
    print("", file=out)
    if not bounded:
        print("Speed-of-light bound: no kernel has HMMA in its main loop (no tensor-core kernel yet)", file=out)
        return
    print("Speed-of-light BOUND per tensor-core kernel (static model from SASS, NOT measured; see "
          "scripts/sass_report.py)", file=out)
    head = (f"{'kernel':<{width}} {'arch':<6} {'HMMA/it':>7} {'ins/it':>6} {'ins/HMMA':>8} {'smemB/HMMA':>10} "
            f"{'warps/SM':>8} {'blk/SM':>6} {'occ. limiter':<13} {'bound':>6} {'limited by':<10} launch")
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in bounded:
        b, o = r["bound"], r["occupancy"]
        k = r["kernel"] if len(r["kernel"]) <= width else r["kernel"][: width - 3] + "..."
        launch = f"{r['launch']['threads']} thr, {r['launch']['dynamic_smem']} B dyn" + (
            " (assumed)" if r["launch"]["assumed"] else "")
        print(f"{k:<{width}} {r['arch']:<6} {b['hmma_per_iter']:>7} {b['instr_per_iter']:>6} "
              f"{b['instr_per_hmma']:>8.2f} {b['smem_bytes_per_hmma']:>10.1f} {o['warps_per_sm']:>8} "
              f"{o['blocks_per_sm']:>6} {o['limiter']:<13} {b['bound_fraction_of_tensor_peak']:>6.3f} "
              f"{b['limiter']:<10} {launch}", file=out)


def markdown(report: dict) -> str:
    lines = ["## Static bounds (from SASS, not measured)", ""]
    rows = [r for r in report["kernels"] if r.get("bound")]
    lines.append(f"Read from `{', '.join(report['inputs'])}` by `scripts/sass_report.py` (cuobjdump, archs "
                 f"{', '.join(report['archs'])}). The bound is a model's ceiling as a fraction of the arch's "
                 "dense tensor peak: min(mma.sync ceiling, issue, shared-memory bandwidth, occupancy); "
                 "no GPU ran these numbers.")
    lines.append("")
    if not rows:
        lines.append("No kernel has HMMA in its main loop (no tensor-core kernel is built yet).")
    else:
        lines.append("| kernel | arch | HMMA/iter | instr/iter | instr/HMMA | smem B/HMMA | warps/SM (limiter) "
                     "| bound | limited by | launch |")
        lines.append("|---|---|---:|---:|---:|---:|---|---:|---|---|")
        for r in rows:
            b, o, la = r["bound"], r["occupancy"], r["launch"]
            launch = f"{la['threads']} threads, {la['dynamic_smem']} B dynamic" + (" (assumed)" if la["assumed"] else "")
            lines.append(f"| `{r['kernel']}` | {r['arch']} | {b['hmma_per_iter']} | {b['instr_per_iter']} | "
                         f"{b['instr_per_hmma']:.2f} | {b['smem_bytes_per_hmma']:.0f} | {o['warps_per_sm']} "
                         f"({o['limiter']}) | {b['bound_fraction_of_tensor_peak']:.3f} | {b['limiter']} | {launch} |")
    others = [r for r in report["kernels"] if not r.get("bound")]
    if others:
        by = {}
        for r in others:
            key = r["main_loop"]["key"] if r["main_loop"] else "no FMA"
            by[key] = by.get(key, 0) + 1
        lines.append("")
        lines.append(f"{len(others)} other kernel rows (kernel x arch) have no HMMA in their main loop: "
                     + ", ".join((f"{n} without an FMA loop" if k == "no FMA" else f"{n} with {k} main loops")
                                 for k, n in sorted(by.items()))
                     + f"; local-memory instructions in all kernels: "
                     f"{sum(r['local_memory']['count'] for r in report['kernels'])}.")
    if report["problems"]:
        lines.append("")
        lines.extend(f"- PROBLEM: {p}" for p in report["problems"])
    return "\n".join(lines) + "\n"


def display_path(path: str) -> str:
    """Relative to the repository when inside it, else absolute."""
    full = os.path.abspath(path)
    return os.path.relpath(full, ROOT) if full.startswith(ROOT + os.sep) else full


def find_extension() -> list[str]:
    return sorted(glob.glob(os.path.join(ROOT, "fastalex", "_C*.so")))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="extension .so, cubin or fatbin (default: fastalex/_C*.so)")
    ap.add_argument("--json", default=None, help="write the report here")
    ap.add_argument("--markdown", default=None, help="write the static-bounds section (markdown) here")
    ap.add_argument("--arch", default=None, help="comma list, e.g. sm_80,sm_90 (default: every arch present)")
    ap.add_argument("--launch", action="append", default=[], metavar="SUBSTRING=DYN_SMEM,THREADS",
                    help="launch configuration of the kernels whose demangled name contains SUBSTRING")
    ap.add_argument("--launch-file", action="append", default=None,
                    help="JSON {substring: {dynamic_smem, threads}} (default: scripts/sass_launch.json if present)")
    ap.add_argument("--auto", action="store_true",
                    help="for the test and bench scripts: a build without CUDA code is a notice, not an error, "
                         "unless FASTALEX_CUDA=1")
    args = ap.parse_args(argv)
    required = os.environ.get("FASTALEX_CUDA", "").strip() == "1"

    def skip(reason: str) -> int:
        if args.auto and not required:
            for stale in (args.json, args.markdown):
                if stale and os.path.exists(stale):
                    os.remove(stale)
            print(f"sass_report: skipped, {reason}", file=sys.stderr)
            return 0
        print(f"sass_report: ERROR: {reason}" + (" (FASTALEX_CUDA=1 requires the CUDA kernels)" if required else ""),
              file=sys.stderr)
        return 1

    files = args.files or find_extension()
    if not files:
        return skip("no fastalex/_C*.so (build the extension first)")
    cuobjdump = find_tool("cuobjdump")
    if cuobjdump is None:
        return skip("cuobjdump not found (PATH, CUDA_HOME/bin, or the triton wheel's backends/nvidia/bin)")
    archs_wanted = [a.strip() for a in args.arch.split(",")] if args.arch else None
    if args.auto:
        with_code = [f for f in files if list_archs(cuobjdump, f)]
        if not with_code:
            return skip(f"{', '.join(display_path(f) for f in files)} holds no CUDA device code "
                        "(built without the CUDA kernels)")
    launch_files = args.launch_file if args.launch_file is not None else (
        [DEFAULT_LAUNCH_FILE] if os.path.exists(DEFAULT_LAUNCH_FILE) else [])
    launch_table = load_launch(launch_files, args.launch)
    rows, archs, notes = analyse(files, cuobjdump, archs_wanted, launch_table)
    for n in notes:
        print("sass_report:", n, file=sys.stderr)
    problems = [p for r in rows for p in problems_of(r)]
    if not rows:
        problems.append("no kernels found in " + ", ".join(files))
    print_table(rows)
    for r in rows:
        if r["main_loop"] is not None:
            r["main_loop"].pop("_instrs", None)
    report = dict(
        tool="scripts/sass_report.py", inputs=[display_path(f) for f in files], archs=archs,
        cuobjdump=cuobjdump, tensor_core_marker=TENSOR_CORE_MARKER,
        model=dict(kind="BOUND: static model from SASS, not a measurement",
                   peak_fma_per_clk_per_sm=PEAK_FMA_PER_CLK_PER_SM, mma_sync_ceiling=MMA_SYNC_CEILING,
                   issue_per_clk_per_smsp=ISSUE_PER_CLK_PER_SMSP, smsp_per_sm=SMSP_PER_SM,
                   smem_bytes_per_clk_per_sm=SMEM_BYTES_PER_CLK_PER_SM, sm_limits=SM_LIMITS,
                   launch_files=launch_files),
        kernels=rows, problems=problems)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(markdown(report))
    n_tc = sum(1 for r in rows if r["tensor_core_kernel"])
    print(f"{len({r['kernel'] for r in rows})} kernels x {len(archs)} archs ({', '.join(archs)}): "
          f"{n_tc} tensor-core kernel rows, {sum(r['local_memory']['count'] for r in rows)} local-memory "
          f"instructions, {len(problems)} problem(s)", file=sys.stderr)
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
