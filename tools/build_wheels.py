"""Builds every binary wheel of edgesep on this x86-64 machine: x86_64, aarch64 and armv7l, for CPython
3.9 to 3.14, each one needing glibc 2.17 at most (manylinux2014), then the sdist.

    python tools/build_wheels.py                         # all 18 wheels and the sdist -> dist/
    python tools/build_wheels.py --arch aarch64 --python 3.9 3.13

The compiler is zig's clang (`pip install ziglang`) aimed at an old glibc: `-target
aarch64-linux-gnu.2.17` links against glibc 2.17's symbol versions whatever this machine runs, and zig
links its own libc++ and compiler runtime statically, so a wheel's module needs nothing but glibc. The
Python headers per (architecture, version) come from Debian and Ubuntu's libpython3.X-dev
(tools/python_headers.py). Each architecture's kernel tests are built by the same toolchain and run
first (under qemu-user for ARM): the code that ships is the code tested. Every wheel is then checked:
its module's ELF machine, its NEEDED list (glibc's libraries only), the newest GLIBC symbol version it
imports (its tag says manylinux_<that>; `auditwheel show` must say the same), and its file name and
SOABI suffix against the tag.

Needs: ziglang, auditwheel, scikit-build-core, pybind11, cmake, ninja, wheel, build (pip), and for the kernel
tests of ARM targets qemu-user and the cross compilers' glibc (`apt-get install qemu-user
g++-aarch64-linux-gnu g++-arm-linux-gnueabihf`). About 4 minutes per architecture the first
time (zig builds libc++ once per target into its cache), 25 s per wheel (the bindings alone: the
kernels and runtime are built once per architecture, with its kernel tests).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import python_headers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GLIBC = (2, 17)  # the floor aimed at: manylinux2014, below JetPack 4 (2.27) and every Pi OS
# The libraries a module may need: glibc's own (what manylinux allows that we use).
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                  "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "ld-linux-armhf.so.3"}
TARGETS = {
    "x86_64": {"zig": "x86_64-linux-gnu", "machine": "Advanced Micro Devices X86-64", "qemu": None,
               "flags": "", "objdump": "objdump",
               "units": {"avx512": r"\bvfmadd\w+ps\s.*%zmm", "avx2": r"\bvfmadd\w+ps\s.*%ymm"},
               "not_in_baseline": r"%[yz]mm"},
    "aarch64": {"zig": "aarch64-linux-gnu", "machine": "AArch64", "qemu": "qemu-aarch64 -L /usr/aarch64-linux-gnu",
                "flags": "", "objdump": "aarch64-linux-gnu-objdump", "units": {"neon": r"\bfmla\s+v\d+\.4s"}},
    # Debian armhf's baseline: armv7-a, VFPv3-D16, hard float, no NEON (zig's armv7-a feature brings NEON,
    # so the baseline is spelled out from armv7's parts; unaligned access stays allowed, as on armv7-a).
    # zig builds its libc++ with the same CPU. The NEON unit alone gets armv7-a + NEON-VFPv4 (FMA).
    "armv7l": {"zig": "arm-linux-gnueabihf", "machine": "ARM", "qemu": "qemu-arm -L /usr/arm-linux-gnueabihf",
               "flags": "-mcpu=generic+has_v7+aclass+db+dsp+thumb2+vfp3d16+perfmon-strict_align",
               "neon": "-mcpu=generic+v7a+vfp4+neon", "objdump": "arm-linux-gnueabihf-objdump",
               "units": {"neon": r"\bvfma\.f32\s+q"}, "not_in_baseline": r"\bq\d+\b|\bvld1|\bvst1"},
}


def toolchain(arch: str, work: Path) -> Path:
    """A CMake toolchain file for zig's clang aimed at <arch> and glibc GLIBC, with its driver scripts."""
    t = TARGETS[arch]
    work.mkdir(parents=True, exist_ok=True)
    target = f"{t['zig']}.{GLIBC[0]}.{GLIBC[1]}"
    tools = {"cc": f"cc -target {target}", "c++": f"c++ -target {target}", "ar": "ar", "ranlib": "ranlib"}
    for name, args in tools.items():
        script = work / f"zig-{name}"
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ziglang {args} "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    lines = [
        "set(CMAKE_SYSTEM_NAME Linux)",
        f"set(CMAKE_SYSTEM_PROCESSOR {arch})",
        f"set(CMAKE_C_COMPILER {work / 'zig-cc'})",
        f"set(CMAKE_CXX_COMPILER {work / 'zig-c++'})",
        f"set(CMAKE_AR {work / 'zig-ar'} CACHE FILEPATH \"\")",
        f"set(CMAKE_RANLIB {work / 'zig-ranlib'} CACHE FILEPATH \"\")",
        f'set(CMAKE_C_FLAGS_INIT "{t["flags"]}")',
        f'set(CMAKE_CXX_FLAGS_INIT "{t["flags"]}")',
    ]
    if "neon" in t:
        lines.append(f'set(EDGESEP_ARMV7_NEON_FLAGS "{t["neon"]}" CACHE STRING "")')
    if t["qemu"]:
        lines.append(f"set(EDGESEP_TEST_LAUNCHER {t['qemu']} CACHE STRING \"\")")
    path = work / "toolchain.cmake"
    path.write_text("\n".join(lines) + "\n")
    return path


def sh(*cmd: str, **kw) -> str:
    r = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout[-4000:]}{r.stderr[-4000:]}")
    return r.stdout


def kernel_tests(arch: str, tc: Path, work: Path) -> None:
    """The native kernel tests, built by the wheels' toolchain, run (for ARM under qemu-user, with the
    cross compilers' glibc as the loader's root). Built in the wheels' build directory: the libraries
    tested are the objects the modules link."""
    build = work / "build"
    sh("cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja", f"-DCMAKE_TOOLCHAIN_FILE={tc}",
       "-DEDGESEP_PYTHON=OFF", "-DEDGESEP_TESTS=ON")
    sh("cmake", "--build", str(build))
    print(f"{arch} kernel tests (zig): " + sh("ctest", "--test-dir", str(build), "--output-on-failure").strip()
          .splitlines()[-1].strip(), flush=True)


def check_code(arch: str, build: Path) -> None:
    """What the compiler made of the kernels, read from the objects: each SIMD unit's inner loops use its
    vector FMA (a lost target feature turned NEON's vfmaq_f32 into 528 calls of fmaf on armv7 once, and
    the kernel tests still passed), and the baseline objects use none of the optional vector ISA."""
    t = TARGETS[arch]
    for obj in sorted(build.glob("CMakeFiles/edgesep_*.dir/csrc/**/*.o")):
        code = sh(t["objdump"], "-d", "--no-show-raw-insn", str(obj))
        unit = obj.name.removesuffix(".cpp.o")
        if unit in t["units"]:
            fmas = len(re.findall(t["units"][unit], code))
            calls = len(re.findall(r"\b(bl|call)\w*\s+.*<fmaf?(@plt)?>", code))
            if fmas == 0 or calls:
                sys.exit(f"{arch}: {obj.name} has {fmas} vector FMAs and {calls} calls of fmaf: its ISA flags did not take")
        elif "not_in_baseline" in t and "/isa/" not in str(obj):
            if found := re.search(t["not_in_baseline"], code):
                sys.exit(f"{arch}: {obj.name}, built for the baseline, uses an optional vector ISA: {found[0]}")


def readelf(so: bytes, *flags: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".so") as f:
        f.write(so)
        f.flush()
        return sh("readelf", "-W", *flags, f.name)


def check_module(so: bytes, arch: str) -> tuple[int, int]:
    """The module's ELF machine and NEEDED list, and the newest GLIBC_x.y it imports."""
    header = readelf(so, "-h", "-d", "-V")
    machine = re.search(r"Machine:\s+(.+)", header)[1].strip()
    if machine != TARGETS[arch]["machine"]:
        sys.exit(f"the module is built for {machine}, not {arch}")
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", header))
    if needed - ALLOWED_NEEDED:
        sys.exit(f"the module needs libraries a manylinux wheel cannot assume: {sorted(needed - ALLOWED_NEEDED)}")
    versions = [(int(a), int(b)) for a, b in re.findall(r"Name: GLIBC_(\d+)\.(\d+)", header)]
    floor = max(versions)
    if floor > GLIBC:
        sys.exit(f"the module imports GLIBC_{floor[0]}.{floor[1]}, above the floor {GLIBC}")
    return floor


def build_wheel(arch: str, version: str, tc: Path, work: Path, out: Path) -> Path:
    t0 = time.time()
    inc = python_headers.include_dir(arch, version)
    triplet = python_headers.ARCHES[arch][1]
    tag = version.replace(".", "")
    soabi = f"cpython-{tag}-{triplet}"
    settings = {
        "cmake.define.CMAKE_TOOLCHAIN_FILE": str(tc),
        "cmake.define.Python_INCLUDE_DIR": str(inc),
        # Not the interpreter running this script: its version and SOABI are not the target's.
        "cmake.define.Python_FIND_STRATEGY": "LOCATION",
        "cmake.define.PYTHON_MODULE_EXTENSION": f".{soabi}.so",
        "cmake.define.EDGESEP_PYTHON": "ON",  # the kernel tests configured this directory without it
        # One build directory per architecture: the kernels and runtime do not depend on the Python, so
        # each version compiles only the bindings (22 s) and links.
        "build-dir": str(work / "build"),
        # pybind11 links its modules with LTO by default: 20 s a wheel under zig, for glue code (the
        # kernels and runtime are built without it either way).
        "cmake.define.CMAKE_INTERPROCEDURAL_OPTIMIZATION": "OFF",
    }
    # _PYTHON_HOST_PLATFORM: the wheel's platform; SETUPTOOLS_EXT_SUFFIX: the module's suffix, from which
    # scikit-build-core reports the target's SOABI to CMake. The tags are then set to the target's.
    env = dict(os.environ, _PYTHON_HOST_PLATFORM=f"linux-{arch}", SETUPTOOLS_EXT_SUFFIX=f".{soabi}.so")
    with tempfile.TemporaryDirectory() as tmp:
        sh(sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", tmp,
           *[f"-C{k}={v}" for k, v in settings.items()], env=env)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            mods = [n for n in z.namelist() if n.startswith("edgesep/_core")]
            if mods != [f"edgesep/_core.{soabi}.so"]:
                sys.exit(f"unexpected extension module(s) in {wheel.name}: {mods}")
            floor = check_module(z.read(mods[0]), arch)
        platform = f"manylinux_{floor[0]}_{floor[1]}_{arch}"
        sh(sys.executable, "-m", "wheel", "tags", "--remove", "--python-tag", f"cp{tag}", "--abi-tag", f"cp{tag}",
           "--platform-tag", platform, str(wheel))
        final = next(Path(tmp).glob(f"*-cp{tag}-cp{tag}-{platform}.whl"))
        dest = out / final.name
        shutil.move(str(final), dest)
    # auditwheel's own reading of the wheel (its symbol policies) must give the same tag.
    shown = re.search(r'consistent with the following platform tag:\s*"(.+?)"', " ".join(sh("auditwheel", "show", str(dest)).split()))
    if not shown or shown[1] != platform:
        sys.exit(f"auditwheel disagrees with the tag {platform} of {dest.name}: {shown and shown[1]}")
    print(f"{dest.name}: module {mods[0].split('/')[-1]}, glibc >= {floor[0]}.{floor[1]} (auditwheel agrees), "
          f"{dest.stat().st_size / 1e6:.1f} MB, {time.time() - t0:.0f} s", flush=True)
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", choices=sorted(TARGETS), default=list(TARGETS))
    p.add_argument("--python", nargs="+", choices=python_headers.VERSIONS, default=list(python_headers.VERSIONS))
    p.add_argument("--no-tests", action="store_true", help="skip the kernel tests built by the wheels' toolchain")
    p.add_argument("--no-sdist", action="store_true")
    p.add_argument("-o", "--out", default=str(ROOT / "dist"))
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for arch in a.arch:
        work = ROOT / "build" / "wheels" / arch
        tc = toolchain(arch, work)
        if not a.no_tests:
            kernel_tests(arch, tc, work)
        for i, version in enumerate(a.python):
            build_wheel(arch, version, tc, work, out)
            if i == 0:
                check_code(arch, work / "build")
    if not a.no_sdist:
        sh(sys.executable, "-m", "build", "--sdist", "-o", str(out), str(ROOT))
        print(f"sdist: {max(out.glob('edgesep-*.tar.gz'), key=lambda f: f.stat().st_mtime).name}")


if __name__ == "__main__":
    main()
