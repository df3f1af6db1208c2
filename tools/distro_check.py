"""End-to-end proof of a wheel on the distributions users run: a Debian or Ubuntu root of the release
that ships the wheel's Python (debootstrap; ARM roots run through qemu-user-static via binfmt_misc,
x86-64 ones natively) checks that the wheel's tag is among its interpreter's tags (packaging.tags, as
its pip computes them), installs the wheel with its own pip, offline, against the distribution's numpy
(`pip check`), and runs the demo bundle compiled here: the output must equal this machine's. With
--sdist, the root instead builds edgesep from the sdist with its own compiler (g++, cmake and
python3-dev from the distribution; scikit-build-core and pybind11 handed over from PyPI), as a board
would.

    python tools/build_wheels.py && python tools/distro_check.py --arch aarch64 --suite bullseye
    python tools/distro_check.py --all                       # every wheel in dist/ on its release
    python tools/distro_check.py --arch armv7l --suite bookworm --sdist
    python tools/distro_check.py --all --roots-only          # only the roots (cached), checking nothing

Releases (tools/python_headers.py: the same that give the headers): bullseye (Python 3.9, glibc 2.31),
jammy (3.10, 2.35), bookworm (3.11, 2.36), noble (3.12, 2.39), trixie (3.13, 2.41), forky (3.14). ARM
roots are Debian's only: Ubuntu's ARM archive (ports.ubuntu.com) is not reachable from here, so the
aarch64 and armv7l wheels of 3.10 and 3.12 are built and inspected but not run.

Needs root, debootstrap, qemu-user-static and binfmt-support (`.ci/wheels` installs them), and `build`
for --sdist. A root (about 300 MB: minbase + python3, python3-numpy, python3-pip; with g++, cmake,
ninja-build and python3-dev for --sdist) is built once into ~/.cache/edgesep-roots/<suite>-<deb arch>
and reused: debootstrap's first stage (packages fetched, signatures checked, unpacked), not its second
(configuring them under emulation, which byte-compiles Python and numpy, took over 12 minutes a root).

Tolerance: another compiler (zig's clang against GCC here) and on ARM other kernels (NEON against
AVX-512 or AVX2 here) sum in other orders, so outputs agree to float32 rounding, not bit for bit:
relative L2 error <= 1e-6 (measured: 0 on x86-64, ~1e-7 on ARM; float32's unit roundoff is 6e-8), and
the same top-1 class for every image.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import python_headers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("EDGESEP_ROOTS_CACHE", Path.home() / ".cache" / "edgesep-roots"))
RTOL = 1e-6
SUITES = {suite: version for version, (_, suite) in python_headers.RELEASES.items()}
DEBOOTSTRAP_SCRIPT = {"forky": "sid", "noble": "gutsy"}  # releases newer than this debootstrap


def runnable(arch: str, suite: str) -> bool:
    archive = python_headers.RELEASES[SUITES[suite]][0]
    return arch == "x86_64" or archive is python_headers.DEBIAN


def rootfs(arch: str, suite: str, build_tools: bool = False) -> Path:
    """The release's root for arch (with a C++ compiler, CMake and the Python headers if build_tools)."""
    deb_arch = python_headers.ARCHES[arch][0]
    root = CACHE / f"{suite}-{deb_arch}{'-build' if build_tools else ''}"
    if (root / "usr" / "bin" / "python3").exists():
        return root
    if arch != "x86_64":
        binfmt = Path("/proc/sys/fs/binfmt_misc")
        if not (binfmt / "register").exists():
            subprocess.run(["mount", "binfmt_misc", "-t", "binfmt_misc", str(binfmt)], check=True)
        subprocess.run(["update-binfmts", "--enable"], check=False)
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    archive = python_headers.RELEASES[SUITES[suite]][0]
    packages = ["python3", "python3-numpy", "python3-pip"]
    if build_tools:
        packages += ["g++", "cmake", "ninja-build", "python3-dev"]
    cmd = ["debootstrap", "--foreign", f"--arch={deb_arch}", "--variant=minbase", f"--include={','.join(packages)}"]
    if archive is python_headers.UBUNTU:
        cmd += [f"--keyring={python_headers.ubuntu_keyring()}", "--components=main,universe"]
    cmd += [suite, str(root), archive[0]]
    if suite in DEBOOTSTRAP_SCRIPT:
        cmd.append(f"/usr/share/debootstrap/scripts/{DEBOOTSTRAP_SCRIPT[suite]}")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    # debootstrap's first stage only: every package fetched (signatures checked) and unpacked here, not
    # configured. Its second stage runs dpkg and the maintainer scripts under emulation, byte-compiling
    # Python and numpy: 12+ minutes per ARM root against one. Of what the scripts do, these checks need
    # the loader's cache, the BLAS/LAPACK alternatives numpy links against, and the CA bundle (newer
    # pips load it when they start, offline too).
    for deb in sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb")):
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-C", str(root), "--keep-directory-symlink", "-xf", "-"], input=data, check=True)
    libdir = root / "usr" / "lib" / python_headers.ARCHES[arch][1]
    for lib in ("blas", "lapack"):
        link, target = libdir / f"lib{lib}.so.3", libdir / lib / f"lib{lib}.so.3"
        if target.exists() and not link.exists():
            link.symlink_to(target.relative_to(libdir))
    bundle, certs = root / "etc/ssl/certs/ca-certificates.crt", root / "usr/share/ca-certificates"
    if certs.exists() and not bundle.exists():
        bundle.parent.mkdir(parents=True, exist_ok=True)
        bundle.write_text("".join(c.read_text() for c in sorted(certs.rglob("*.crt"))))
    subprocess.run(["chroot", str(root), "/sbin/ldconfig"], check=True)
    return root


def in_root(root: Path, *cmd: str) -> str:
    # A clean environment: the host's pip settings (indexes, certificates) mean nothing in the root.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/root", "LANG": "C.UTF-8"}
    r = subprocess.run(["chroot", str(root), *cmd], text=True, capture_output=True, env=env)
    if r.returncode:
        sys.exit(f"in the {root.name} root: {' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def build_sdist(work: Path) -> str:
    """The sdist, built here, and the pure-Python build requirements, downloaded here for the root's pip
    (the compiler, CMake and Python headers are the distribution's, in the root)."""
    subprocess.run([sys.executable, "-m", "build", "--sdist", "-o", str(work), str(ROOT)], check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(work / "wheels"), "--only-binary=:all:",
                    "scikit-build-core>=0.10", "pybind11>=2.12"], check=True)
    return next(work.glob("edgesep-*.tar.gz")).name


def wheel_for(arch: str, suite: str) -> Path:
    """The newest wheel in dist/ for this architecture and the release's Python."""
    tag = "cp" + SUITES[suite].replace(".", "")
    found = sorted((ROOT / "dist").glob(f"edgesep-*-{tag}-{tag}-manylinux_*_{arch}.whl"), key=lambda w: w.stat().st_mtime)
    if not found:
        sys.exit(f"no {tag} wheel for {arch} in dist/: python tools/build_wheels.py --arch {arch} "
                 f"--python {SUITES[suite]}")
    return found[-1]


def check(arch: str, suite: str, wheel: Path | None, sdist: bool) -> str:
    """Runs the check; returns its row of docs/wheels.md's table."""
    import edgesep
    from edgesep.compiler import compile_onnx
    from edgesep.demo import _data

    root = rootfs(arch, suite, build_tools=sdist)
    work = root / "tmp" / "edgesep-check"
    if work.exists():
        shutil.rmtree(work)
    (work / "wheels").mkdir(parents=True)
    onnx_path, images, labels = _data()
    compile_onnx(onnx_path, work / "digits.esb")
    x = np.ascontiguousarray(images[:200])
    np.save(work / "x.npy", x)
    want = edgesep.load(work / "digits.esb").run(x)
    python = in_root(root, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])").strip()
    if sdist:
        package = build_sdist(work)
    else:
        wheel = wheel or wheel_for(arch, suite)
        shutil.copy(wheel, work / wheel.name)
        package = wheel.name
        # The wheel's tag among the interpreter's, as the root's pip computes them (its vendored packaging).
        tags = json.loads(in_root(root, "python3", "-c", "import json; from pip._vendor.packaging import tags; "
                                  "print(json.dumps([str(t) for t in tags.sys_tags()]))"))
        ours = re.match(r"edgesep-[^-]+-(.+)\.whl$", package)[1]
        if ours not in tags:
            sys.exit(f"{package}: tag {ours} is not among Python {python}'s on {suite} {arch} "
                     f"(first: {tags[:3]})")
        rank = f"{tags.index(ours) + 1} of {len(tags)}"
        print(f"{suite} {arch}, Python {python}: {ours} is its interpreter's tag #{rank}")
    machine = in_root(root, "uname", "-m").strip()
    # The device's own pip checks a wheel's tags against its interpreter and glibc, or builds the sdist
    # with the device's compiler; offline (the build requirements come from /tmp/edgesep-check/wheels).
    managed = list((root / "usr" / "lib").glob(f"python{python}/EXTERNALLY-MANAGED"))
    in_root(root, "python3", "-m", "pip", "install", "--no-index", "--find-links", "/tmp/edgesep-check/wheels",
            *(["--break-system-packages"] if managed else []), "--force-reinstall", "--no-deps",
            f"/tmp/edgesep-check/{package}")
    # Its one requirement, numpy, met by the distribution's own.
    in_root(root, "python3", "-m", "pip", "check")
    version = in_root(root, "edgesep", "--version").strip()
    isa = in_root(root, "python3", "-c",
                  "import numpy as np, edgesep; m = edgesep.load('/tmp/edgesep-check/digits.esb', num_threads=2); "
                  "np.save('/tmp/edgesep-check/y.npy', m.run(np.load('/tmp/edgesep-check/x.npy'))); "
                  "print(m.kernel_isa, np.__version__)").split()
    got = np.load(work / "y.npy")
    err = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    agree = float((got.argmax(1) == want.argmax(1)).mean())
    acc = float((got.argmax(1) == labels[:200]).mean())
    print(f"{package} on {suite} {python_headers.ARCHES[arch][0]} ({machine}, {version}, numpy {isa[1]}, {isa[0]} "
          f"kernels): demo bundle on {len(x)} digits, relative error vs this machine {err:.1e}, top-1 agreement "
          f"{agree:.1%}, accuracy {acc:.1%}", flush=True)
    if not (err <= RTOL and agree == 1.0):
        sys.exit(f"FAIL: the output differs from this machine's beyond the tolerance ({RTOL})")
    how = "sdist, built in the root" if sdist else f"wheel, tag #{rank}"
    return (f"| {arch} | {suite} | {python} | {how} | {isa[1]} | {isa[0]} | {err:.1e} | {agree:.0%} | "
            f"{acc:.1%} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=sorted(python_headers.ARCHES))
    p.add_argument("--suite", choices=sorted(SUITES))
    p.add_argument("--all", action="store_true", help="every release that can run here (of --arch, if given)")
    p.add_argument("--wheel", type=Path, help="default: the newest dist/ wheel for the arch and the release's Python")
    p.add_argument("--sdist", action="store_true", help="build from the sdist in the root instead of a wheel")
    p.add_argument("--write", action="store_true", help="the results' table into docs/wheels.md (wheels, not --sdist)")
    p.add_argument("--roots-only", action="store_true",
                   help="only build (or find) the roots these checks run in: CI fetches them while its tests run")
    a = p.parse_args()
    if a.all:
        pairs = [(arch, suite) for arch in python_headers.ARCHES for suite in SUITES
                 if runnable(arch, suite) and a.arch in (None, arch)]
    elif a.arch and a.suite:
        if not runnable(a.arch, a.suite):
            p.error(f"no {a.suite} root for {a.arch} can be built here (Ubuntu's ARM archive is not reachable)")
        pairs = [(a.arch, a.suite)]
    else:
        p.error("give --arch and --suite, or --all")
    if a.roots_only:
        for arch, suite in pairs:
            print(rootfs(arch, suite, build_tools=a.sdist), flush=True)
        return
    rows = [check(arch, suite, a.wheel, a.sdist) for arch, suite in pairs]
    if a.write and not a.sdist:
        sys.path.insert(0, str(ROOT / "bench"))
        from docs_section import write_section

        head = ("| arch | release | Python | installed from (tag: its rank among the interpreter's) | numpy | kernels | relative error vs x86 | "
                "top-1 agreement | accuracy (200 digits) |\n|---|---|---|---|---|---|---|---|---|")
        write_section(ROOT / "docs" / "wheels.md", "distro", head + "\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
