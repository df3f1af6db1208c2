"""Cycle estimates of the NEON kernels' inner loops on Cortex-A53 and Cortex-A72, from llvm-mca-14
(emulation proves correctness, not speed). Compiles csrc/kernels/isa/neon.cpp for each core, finds
each kernel's innermost loop (the self-looping block with the most FMLAs), and compares its MACs per
cycle with the core's peak under the same model (a loop of independent FMLAs).

    python bench/arm_mca.py [--write]     # --write: the table into docs/arm.md
    python bench/arm_mca.py --compiler zig   # the same kernels compiled by zig's clang (pip install ziglang)

zig (clang) builds the distributed wheels (tools/build_wheels.py); GCC builds the sdist on a board and the
per-core toolchains/, so both compilers' code is modelled on the same loops.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from docs_section import write_section

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "arm.md"
CORES = ["cortex-a53", "cortex-a72"]
# (symbol pattern, which loop, label); which loop: None for the busiest, or the FMLA count of the wanted
# loop, or a pattern one of its instructions matches. Where GCC inlines a loop into a function with
# busier ones (the sparse mat-vec into spmm_rows beside the batch path), the FMLA count picks it out;
# the assembly loops (igemm_a64.h, dwnhwc_a64.h) are told from the intrinsic ones they sit beside (for
# the cases they do not take) by their fixed registers. Each pattern names the function as GCC
# and as clang (zig) leave it: they inline differently.
KERNELS = [
    (r"detail13igemm_a64_8x8|detail10igemm_tileINS_4neon3VecELi8ELi2ELb0E", r"fmla\s+v0\.4s, v24\.4s, v16\.s\[0\]",
     "NHWC conv tile 8 pixels x 8 channels (conv core v2, assembly)"),
    (r"detail11dwconv_nhwcINS_4neon3VecE|detail9dw_pixelsINS_4neon3VecELi8E", r"fmla\s+v\d+\.4s, v16\.4s, v26\.4s",
     "NHWC depthwise, 8 pixels x 4 channels (3-wide window rows, assembly)"),
    (r"detail12gemm_ukernelI", None, "NCHW GEMM tile 6x16 (first core, separable pair)"),
    (r"detail6dwconvI", None, "NCHW depthwise conv (first core)"),
    (r"detail6fc_oneI", None, "fully connected, one input (4 rows of dot products)"),
    (r"detail7fc_tileINS_4neon3VecELi4ELi4E", None, "fully connected, 4 rows x 4 inputs"),
    (r"detail9spmm_rowsINS_4neon3VecELi1ELi1EtEE|detail8spmv_rowINS_4neon3VecELi1ELi1EtEE", 4, "sparse mat-vec, 1x1 blocks (MACs = nonzeros)"),
    (r"detail9spmm_rowsINS_4neon3VecELi4ELi1EtEE|detail8spmv_rowINS_4neon3VecELi4ELi1EtEE", 4, "sparse mat-vec, 4x1 blocks"),
]


def neon_flags() -> list[str]:
    """The per-file flags CMakeLists.txt gives the NEON translation unit."""
    cmake = (ROOT / "CMakeLists.txt").read_text()
    m = re.search(r"set\(EDGESEP_NEON_FLAGS ([^)]*)\)", cmake)  # the aarch64 flags (32-bit ARM adds its own)
    return m.group(1).split() if m else []


def asm_for(core: str, compiler: str = "gcc") -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "neon.s"
        if compiler == "gcc":
            cmd = ["aarch64-linux-gnu-g++", f"-mcpu={core}", "-mno-outline-atomics", *neon_flags()]
        else:  # clang names cores with underscores
            cmd = [sys.executable, "-m", "ziglang", "c++", "-target", "aarch64-linux-gnu.2.17",
                   f"-mcpu={core.replace('-', '_')}", "-g0"]
        subprocess.run([*cmd, "-O3", "-std=c++17", "-S", str(ROOT / "csrc/kernels/isa/neon.cpp"), "-o", str(out)],
                       check=True)
        return out.read_text(errors="replace")


def functions(asm: str) -> dict[str, list[str]]:
    """Mangled function name -> its lines."""
    funcs, name = {}, None
    for line in asm.splitlines():
        m = re.match(r"^(_Z\S+):(\s|$)", line)
        if m:
            name = m.group(1)
            funcs[name] = []
        elif name:
            funcs[name].append(line)
            if line.strip().startswith(".size"):
                name = None
    return funcs


def loops(lines: list[str]) -> list[list[str]]:
    """The blocks that branch back to their own label (a compiler's .L label, or an inline asm loop's
    numeric one, which it branches back to as `1b`)."""
    found: list[list[str]] = []
    label, block = None, []
    for line in lines:
        m = re.match(r"^\s*(\.L\w+|\d+):", line)
        if m:
            label, block = m.group(1), []
            target = label if label.startswith(".") else label + "b"
            continue
        s = line.strip()
        if not s or s.startswith((".", "//", "#")):  # directives, comments (inline asm markers)
            continue
        block.append(s)
        cond = r"b(\.?(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le))?|cbn?z|tbn?z"
        if label and re.match(rf"^({cond})\s+{re.escape(target)}$", s):
            found.append(list(block))
    return found


def fmlas(body: list[str]) -> int:
    return sum(i.startswith("fmla") for i in body)


def mca(core: str, body: list[str], iterations: int = 500) -> float:
    """llvm-mca cycles per iteration of `body`."""
    out = subprocess.run(["llvm-mca-14", "-march=aarch64", f"-mcpu={core}", f"-iterations={iterations}"],
                         input="\n".join(body) + "\n", capture_output=True, text=True, check=True).stdout
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1))
    return cycles / iterations


def lanes(i: str) -> int:
    m = re.search(r"v\d+\.(\d+)s", i)
    return int(m.group(1)) if m else 1


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--write", action="store_true")
    p.add_argument("--compiler", choices=["gcc", "zig"], default="gcc")
    a = p.parse_args()
    peak_body = [f"fmla v{i}.4s, v30.4s, v31.4s" for i in range(24)]
    rows = []
    for core in CORES:
        peak = 4 * 24 / mca(core, peak_body)  # fp32 MACs per cycle
        funcs = functions(asm_for(core, a.compiler))
        for pattern, which, what in KERNELS:
            # GCC may clone a kernel per constant argument (.constprop): look in every clone.
            found = [b for n, lines in funcs.items() if re.search(pattern, n) for b in loops(lines)
                     if which is None or (fmlas(b) == which if isinstance(which, int)
                                          else any(re.match(which, i) for i in b))]
            body = max(found, key=fmlas)
            macs = sum(lanes(i) for i in body if i.startswith("fmla"))
            cyc = mca(core, body)
            rows.append((core, what, len(body), macs, cyc, macs / cyc, peak))
            print(rows[-1], flush=True)
    table = ["| core | kernel (inner loop) | instructions | fp32 MACs / iteration | cycles / iteration | MACs / cycle | "
             "peak MACs / cycle | of peak |", "|---|---|---|---|---|---|---|---|"]
    for core, what, n, macs, cyc, rate, peak in rows:
        table.append(f"| {core} | {what} | {n} | {macs} | {cyc:.1f} | {rate:.2f} | {peak:.1f} | {rate / peak:.0%} |")
    text = "\n".join(table)
    print(text)
    if a.write:
        write_section(DOC, "mca" if a.compiler == "gcc" else "mca-zig", text)


if __name__ == "__main__":
    main()
