"""A wheel's build of edgesep against the installed one (this checkout's, built by the machine's GCC),
on the same bundles, interleaved in one run (bench/interleave.py): is the distributed build, compiled by
zig's clang for an old glibc (tools/build_wheels.py), as fast as a local build?

    python bench/wheel_speed.py dist/edgesep-0.1.0-cp311-cp311-manylinux_2_17_x86_64.whl
    python bench/wheel_speed.py WHEEL --models resnet18 demo --threads 1 2

The wheel must be for this machine's architecture and Python. Prints per model and thread count both
medians and wheel / installed.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from compare import MODELS, compiled
from docs_section import write_section
from interleave import latency

DOC = Path(__file__).resolve().parent.parent / "docs" / "wheels.md"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wheel")
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--write", action="store_true", help="the table into docs/wheels.md")
    a = p.parse_args()
    import edgesep

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        with zipfile.ZipFile(a.wheel) as z:
            z.extractall(site)
        where = subprocess.run([sys.executable, "-c", "import edgesep; print(edgesep.__file__)"], text=True,
                               capture_output=True, check=True, env={**os.environ, "PYTHONPATH": str(site)}).stdout
        if not where.startswith(str(site)):
            raise SystemExit(f"the wheel's package is not the one imported: {where}")
        flags = Path("/proc/cpuinfo").read_text()
        isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else platform.machine()
        print(f"{platform.machine()} ({isa}) | installed {Path(edgesep.__file__).parent} | wheel {Path(a.wheel).name}")
        rows = ["| model | threads | this checkout, GCC 12 (ms) | wheel, zig (ms) | wheel / GCC |", "|---|---|---|---|---|"]
        for name, _, bundle, shape in compiled(a.models, Path(tmp)):
            for t in a.threads:
                ms = latency({"edgesep": str(bundle), "edgesep:wheel": str(bundle)}, t, shape, a.runs,
                             envs={"edgesep:wheel": {"PYTHONPATH": str(site)}})
                rows.append(f"| {name} | {t} | {ms['edgesep']:.3f} | {ms['edgesep:wheel']:.3f} | "
                            f"{ms['edgesep:wheel'] / ms['edgesep']:.2f} |")
                print(rows[-1], flush=True)
    if a.write:
        write_section(DOC, "wheel-speed", "\n".join(rows))


if __name__ == "__main__":
    main()
