"""Results go into docs/ between <!-- NAME:start --> and <!-- NAME:end --> markers, rewritten by
the script that measured them (each bench script's --write)."""
from __future__ import annotations

import platform
from pathlib import Path


def cpu_simd() -> str:
    """The widest x86 vector extension this CPU has ("AVX-512", "AVX2"), else its architecture."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else platform.machine()


def simd_section(name: str) -> str:
    """The section a speed table measured on this CPU goes into: one per vector extension (name-avx2,
    name-avx-512), so a run on one kind of machine leaves the other's table as it stands."""
    return f"{name}-{cpu_simd().lower()}"


def write_section(doc: Path, name: str, text: str) -> None:
    """Replaces what stands between the `name` markers in `doc` with `text`."""
    content = doc.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    s, e = content.index(start), content.index(end)
    doc.write_text(content[:s] + start + "\n" + text + "\n" + content[e:])
