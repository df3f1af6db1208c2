"""Builds an edgesep wheel for 64-bit or 32-bit ARM Linux on this x86-64 Debian machine:

    python tools/cross_wheel.py aarch64        # -> dist/edgesep-<v>-cp311-cp311-manylinux_2_N_aarch64.whl
    python tools/cross_wheel.py armv7l         # -> dist/edgesep-<v>-cp311-cp311-manylinux_2_N_armv7l.whl

What it needs (root, Debian bookworm; `.ci/arm-wheels` installs it): the cross compilers
(g++-aarch64-linux-gnu, g++-arm-linux-gnueabihf) and the target's Python headers, which it fetches as
Debian's libpython3.X-dev for the target architecture (`dpkg --add-architecture arm64|armhf`) and
unpacks into build/cross-<arch>/sysroot: the host Python's minor version must be the target's
(bookworm, and Raspberry Pi OS bookworm: 3.11). scikit-build-core builds the extension with the
toolchain file (the distributed, generic one: armv8-a, or armv7-a + NEON-VFPv4 hard float), the
target's headers and SOABI; libstdc++ and libgcc are linked statically, so the wheel needs only glibc.
Its platform tag is manylinux_2_N for the newest glibc symbol version the module imports (checked here,
along with the ELF machine), so pip on the device refuses it on an older glibc instead of failing at
import.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "aarch64": {"toolchain": "aarch64-linux-gnu.cmake", "deb": "arm64", "triplet": "aarch64-linux-gnu",
                "machine": "AArch64"},
    "armv7l": {"toolchain": "arm-linux-gnueabihf.cmake", "deb": "armhf", "triplet": "arm-linux-gnueabihf",
               "machine": "ARM"},
}


def sh(*cmd: str, **kw) -> str:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def target_headers(arch: str, work: Path) -> Path:
    """The target's Python include dir, its pyconfig.h in place (Debian keeps it per architecture)."""
    t = TARGETS[arch]
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    inc = work / "sysroot" / "usr" / "include" / py
    if (inc / "Python.h").exists():
        return inc
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sh("apt-get", "download", f"lib{py}-dev:{t['deb']}", cwd=tmp)
        except subprocess.CalledProcessError as e:
            sys.exit(f"cannot fetch lib{py}-dev:{t['deb']} ({e.stderr.strip()}); as root: "
                     f"dpkg --add-architecture {t['deb']} && apt-get update")
        deb = next(Path(tmp).glob("*.deb"))
        sh("dpkg-deb", "-x", str(deb), str(work / "sysroot"))
    shutil.copy(work / "sysroot" / "usr" / "include" / t["triplet"] / py / "pyconfig.h", inc / "pyconfig.h")
    return inc


def glibc_floor(so: bytes, arch: str) -> tuple[int, int]:
    """The newest GLIBC_x.y symbol version the module needs; fails on any libstdc++ dependency."""
    t = TARGETS[arch]
    with tempfile.NamedTemporaryFile(suffix=".so") as f:
        f.write(so)
        f.flush()
        header = sh(f"{t['triplet']}-readelf", "-h", "-d", f.name)
        if not re.search(rf"Machine:\s+{t['machine']}\b", header):
            sys.exit(f"the module is not built for {arch}:\n{header}")
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", header)
        if any(lib.startswith(("libstdc++", "libgcc_s")) for lib in needed):
            sys.exit(f"the module links the C++ runtime dynamically: {needed}")
        versions = re.findall(r"GLIBC_(\d+)\.(\d+)", sh(f"{t['triplet']}-objdump", "-T", f.name))
    return max((int(a), int(b)) for a, b in versions)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arch", choices=sorted(TARGETS))
    p.add_argument("-o", "--out", default=str(ROOT / "dist"))
    a = p.parse_args()
    t = TARGETS[a.arch]
    work = ROOT / "build" / f"cross-{a.arch}"
    work.mkdir(parents=True, exist_ok=True)
    inc = target_headers(a.arch, work)
    soabi = f"cpython-{sys.version_info.major}{sys.version_info.minor}-{t['triplet']}"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "cmake.define.CMAKE_TOOLCHAIN_FILE": str(ROOT / "toolchains" / t["toolchain"]),
        "cmake.define.Python_INCLUDE_DIR": str(inc),
        "cmake.define.PYTHON_MODULE_EXTENSION": f".{soabi}.so",  # pybind11 would ask the host Python
        "cmake.define.CMAKE_MODULE_LINKER_FLAGS": "-static-libstdc++ -static-libgcc",
        "build-dir": str(work / "build"),
    }
    # _PYTHON_HOST_PLATFORM: the wheel's platform tag; SETUPTOOLS_EXT_SUFFIX: the module's suffix, from
    # which scikit-build-core reports the target's SOABI to CMake.
    env = dict(os.environ, _PYTHON_HOST_PLATFORM=f"linux-{a.arch}", SETUPTOOLS_EXT_SUFFIX=f".{soabi}.so")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", tmp,
                        *[f"-C{k}={v}" for k, v in settings.items()]], check=True, env=env)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            mods = [n for n in z.namelist() if n.startswith("edgesep/_core")]
            if mods != [f"edgesep/_core.{soabi}.so"]:
                sys.exit(f"unexpected extension module(s) in {wheel.name}: {mods}")
            major, minor = glibc_floor(z.read(mods[0]), a.arch)
        tag = f"manylinux_{major}_{minor}_{a.arch}"
        subprocess.run([sys.executable, "-m", "wheel", "tags", "--remove", "--platform-tag", tag, str(wheel)],
                       check=True, capture_output=True)
        final = next(w for w in Path(tmp).glob("*.whl") if tag in w.name)
        dest = out / final.name
        shutil.move(str(final), dest)
    print(dest)
    print(f"host {sysconfig.get_platform()}, target {a.arch}: extension {mods[0]}, needs glibc >= {major}.{minor}, "
          "no libstdc++")


if __name__ == "__main__":
    main()
