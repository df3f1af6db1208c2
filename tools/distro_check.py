"""End-to-end proof on an emulated ARM Debian: a Debian bookworm root for the target architecture
(debootstrap, run through qemu-user-static via binfmt_misc) installs the cross-built wheel with its own
pip, offline, and runs the demo bundle compiled here; its output must equal this machine's. With
--sdist, the root instead builds edgesep from the sdist with its own compiler (g++, cmake and
python3-dev from Debian; scikit-build-core and pybind11 handed over from PyPI), as a board would.

    python tools/cross_wheel.py aarch64 && python tools/arm_emulated_check.py aarch64
    python tools/cross_wheel.py armv7l && python tools/arm_emulated_check.py armv7l
    python tools/arm_emulated_check.py aarch64 --sdist

Needs root, debootstrap, qemu-user-static and binfmt-support (`.ci/arm-wheels` installs them), and
`build` for --sdist. The root
(about 300 MB: minbase + python3, python3-numpy, python3-pip from Debian) is built once into
~/.cache/edgesep-arm/<deb arch> and reused.

Tolerance: the NEON kernels sum in a different order than this machine's (AVX-512, or whatever it
runs), so outputs agree to float32 rounding, not bit for bit: relative L2 error <= 1e-4, the bound the
parity tests hold every kernel variant to against onnxruntime (tests/conftest.py PARITY_RTOL), and the
same top-1 class for every image.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEB_ARCH = {"aarch64": "arm64", "armv7l": "armhf"}
CACHE = Path(os.environ.get("EDGESEP_ARM_CACHE", Path.home() / ".cache" / "edgesep-arm"))
RTOL = 1e-4


def rootfs(arch: str) -> Path:
    root = CACHE / DEB_ARCH[arch]
    if (root / "usr" / "bin" / "python3").exists():
        return root
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "binfmt_misc", "-t", "binfmt_misc", str(binfmt)], check=True)
    subprocess.run(["update-binfmts", "--enable"], check=False)
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debootstrap", f"--arch={DEB_ARCH[arch]}", "--variant=minbase",
                    "--include=python3,python3-numpy,python3-pip", "bookworm", str(root),
                    "http://deb.debian.org/debian"], check=True)
    return root


def in_root(root: Path, *cmd: str) -> str:
    # A clean environment: the host's pip settings (indexes, certificates) mean nothing in the root.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/root", "LANG": "C.UTF-8"}
    r = subprocess.run(["chroot", str(root), *cmd], text=True, capture_output=True, env=env)
    if r.returncode:
        sys.exit(f"in the emulated root: {' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def build_sdist(root: Path, work: Path) -> str:
    """The sdist, built here, and what the root needs to build it: Debian's compiler, CMake and Python
    headers (apt in the root) and the pure-Python build requirements (downloaded here for its pip)."""
    subprocess.run([sys.executable, "-m", "build", "--sdist", "-o", str(work), str(ROOT)], check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(work / "wheels"), "--only-binary=:all:",
                    "scikit-build-core>=0.10", "pybind11>=2.12"], check=True)
    in_root(root, "apt-get", "install", "-y", "-qq", "g++", "cmake", "ninja-build", "python3-dev")
    return next(work.glob("edgesep-*.tar.gz")).name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arch", choices=sorted(DEB_ARCH))
    p.add_argument("--wheel", help="default: the newest dist/edgesep-*_<arch>.whl")
    p.add_argument("--sdist", action="store_true", help="build from the sdist in the root instead of a wheel")
    a = p.parse_args()
    import edgesep
    from edgesep.compiler import compile_onnx
    from edgesep.demo import _data

    root = rootfs(a.arch)
    work = root / "tmp" / "edgesep-check"
    if work.exists():
        shutil.rmtree(work)
    (work / "wheels").mkdir(parents=True)
    onnx_path, images, labels = _data()
    compile_onnx(onnx_path, work / "digits.esb")
    x = np.ascontiguousarray(images[:200])
    np.save(work / "x.npy", x)
    want = edgesep.load(work / "digits.esb").run(x)
    if a.sdist:
        package = build_sdist(root, work)
    else:
        wheel = Path(a.wheel) if a.wheel else max((ROOT / "dist").glob(f"edgesep-*_{a.arch}.whl"),
                                                  key=lambda w: w.stat().st_mtime)
        shutil.copy(wheel, work / wheel.name)
        package = wheel.name

    machine = in_root(root, "uname", "-m").strip()
    # The device's own pip checks a wheel's tags against its interpreter and glibc, or builds the sdist
    # with the device's compiler; offline (the build requirements come from /tmp/edgesep-check/wheels).
    in_root(root, "python3", "-m", "pip", "install", "--no-index", "--find-links", "/tmp/edgesep-check/wheels",
            "--break-system-packages", "--force-reinstall", "--no-deps", f"/tmp/edgesep-check/{package}")
    print(in_root(root, "edgesep", "--version").strip())
    isa = in_root(root, "python3", "-c",
            "import numpy as np, edgesep; m = edgesep.load('/tmp/edgesep-check/digits.esb', num_threads=2); "
            "np.save('/tmp/edgesep-check/y.npy', m.run(np.load('/tmp/edgesep-check/x.npy'))); "
            "print(m.kernel_isa)").strip()
    got = np.load(work / "y.npy")
    err = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    agree = float((got.argmax(1) == want.argmax(1)).mean())
    acc = float((got.argmax(1) == labels[:200]).mean())
    print(f"{package} on emulated Debian {DEB_ARCH[a.arch]} ({machine}, {isa} kernels): demo bundle on {len(x)} digits, "
          f"relative error vs x86 {err:.2e}, top-1 agreement {agree:.1%}, accuracy {acc:.1%}")
    if not (err <= RTOL and agree == 1.0):
        sys.exit(f"FAIL: the emulated output differs from this machine's beyond the tolerance ({RTOL})")


if __name__ == "__main__":
    main()
