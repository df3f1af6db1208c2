"""CPython's headers for any (architecture, Python version) pair, fetched on this x86-64 machine for
tools/build_wheels.py: the distribution packages libpython3.X-dev of the Debian or Ubuntu release that
ships that version, through a private apt configuration (its own sources, lists and cache under
~/.cache/edgesep-wheels; the system's apt state is not touched), signatures checked by apt against the
archive keyrings.

    python tools/python_headers.py aarch64 3.12     # prints the include directory

Where each version comes from (the release that ships it as its python3.X):

    3.9  Debian 11 bullseye      3.10 Ubuntu 22.04 jammy      3.11 Debian 12 bookworm
    3.12 Ubuntu 24.04 noble      3.13 Debian 13 trixie        3.14 Debian forky (testing)

Ubuntu's ARM packages live on ports.ubuntu.com, which this machine's registries do not serve, so the
ARM pyconfig.h of 3.10 and 3.12 is derived: the amd64 one of that version with every macro that differs
between amd64 and the target architecture in a newer Debian version (DERIVED_VIA) set to the target's
value (sizes and alignments of C types, the long double format, a few probed functions). `--check` tests
the same derivation where the truth is known (3.9 through 3.11, 3.13 through 3.14): the derived header
must equal the real one in every macro the headers' layouts depend on (LAYOUT).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path.home() / ".cache" / "edgesep-wheels"
DEBIAN = ("http://deb.debian.org/debian", "/usr/share/keyrings/debian-archive-keyring.gpg")
UBUNTU = ("http://archive.ubuntu.com/ubuntu", None)  # keyring: Debian trixie's ubuntu-keyring package
RELEASES = {  # version -> (archive, suite)
    "3.9": (DEBIAN, "bullseye"),
    "3.10": (UBUNTU, "jammy"),
    "3.11": (DEBIAN, "bookworm"),
    "3.12": (UBUNTU, "noble"),
    "3.13": (DEBIAN, "trixie"),
    "3.14": (DEBIAN, "forky"),
}
# The ARM pyconfig.h of an Ubuntu version is derived through a newer Debian version (one that knows every
# macro the older one has) of the same 32-bit ARM time_t: jammy and bookworm keep a 32-bit time_t on armhf,
# noble and trixie moved to 64 bits (the t64 transition).
DERIVED_VIA = {"3.10": "3.11", "3.12": "3.13"}
# Where the real ARM headers exist, the same kind of derivation tested (--check).
CHECKED_VIA = {"3.9": "3.11", "3.13": "3.14"}
VERSIONS = tuple(RELEASES)
ARCHES = {"x86_64": ("amd64", "x86_64-linux-gnu"), "aarch64": ("arm64", "aarch64-linux-gnu"),
          "armv7l": ("armhf", "arm-linux-gnueabihf")}
# The macros that decide the layout of what the headers declare (object structs, Py_ssize_t, the
# long/pointer widths pybind11 and the C API inline functions assume): `--check` requires these to match.
LAYOUT = re.compile(r"^(SIZEOF_|ALIGNOF_|HAVE_LONG_DOUBLE|DOUBLE_IS_|WORDS_BIGENDIAN|PY_SSIZE_T|"
                    r"PY_FORMAT_SIZE_T|Py_ENABLE_SHARED|Py_DEBUG|Py_TRACE_REFS|Py_GIL_DISABLED|WITH_PYMALLOC|"
                    r"HAVE_GCC_ASM_FOR|HAVE_STD_ATOMIC|HAVE_BUILTIN_ATOMIC)")


def _run(*cmd: str, **kw) -> str:
    r = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def ubuntu_keyring() -> str:
    key = CACHE / "ubuntu-archive-keyring.gpg"
    if not key.exists():
        deb = _download("ubuntu-keyring", "all", (DEBIAN, "trixie"))
        with tempfile.TemporaryDirectory() as tmp:
            _run("dpkg-deb", "-x", str(deb), tmp)
            shutil.copy(Path(tmp) / "usr/share/keyrings/ubuntu-archive-keyring.gpg", key)
    return str(key)


def _apt(suite: str, source: tuple) -> list[str]:
    """apt-get with a private state for one suite, its indexes fetched once."""
    (url, keyring), name = source
    d = CACHE / "apt" / suite
    opts = [f"-oDir::Etc::SourceList={d / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={d / 'lists'}", f"-oDir::State::Status={d / 'status'}", f"-oDir::Cache={d}",
            "-oAPT::Architectures::=amd64", "-oAPT::Architectures::=arm64", "-oAPT::Architectures::=armhf",
            "-oAPT::Sandbox::User=root", "-q"]
    if not (d / "lists" / "ready").exists():
        (d / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (d / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (d / "status").touch()
        # Ubuntu keeps amd64 on archive.ubuntu.com only; Debian serves all three architectures.
        arches = "amd64" if url == UBUNTU[0] else "amd64,arm64,armhf"
        (d / "sources.list").write_text(
            f"deb [arch={arches} signed-by={keyring or ubuntu_keyring()}] {url} {name} main\n")
        _run("apt-get", *opts, "update")
        (d / "lists" / "ready").touch()
    return ["apt-get", *opts]


def _download(package: str, deb_arch: str, release: tuple) -> Path:
    source, suite = release
    apt = _apt(suite, (source, suite))
    out = CACHE / "debs" / suite
    out.mkdir(parents=True, exist_ok=True)
    found = sorted(out.glob(f"{package}_*_{deb_arch}.deb"))
    if not found:
        _run(*apt, "download", f"{package}:{deb_arch}", cwd=out)
        found = sorted(out.glob(f"{package}_*_{deb_arch}.deb"))
    return found[-1]


def _unpacked(version: str, deb_arch: str) -> Path:
    """libpython<version>-dev for one architecture, unpacked."""
    d = CACHE / "headers" / f"{version}-{deb_arch}"
    if not (d / "ready").exists():
        deb = _download(f"libpython{version}-dev", deb_arch, RELEASES[version])
        d.mkdir(parents=True, exist_ok=True)
        _run("dpkg-deb", "-x", str(deb), str(d))
        (d / "ready").touch()
    return d


def _available(version: str, arch: str) -> bool:
    return RELEASES[version][0] is DEBIAN or arch == "x86_64"


def _pyconfig(version: str, arch: str) -> Path:
    deb_arch, triplet = ARCHES[arch]
    return _unpacked(version, deb_arch) / "usr/include" / triplet / f"python{version}" / "pyconfig.h"


def parse(text: str) -> dict[str, str | None]:
    """pyconfig.h's macros: name -> value ('' for a bare #define, None for /* #undef NAME */)."""
    out: dict[str, str | None] = {}
    for line in text.splitlines():
        if m := re.match(r"#define\s+(\w+)(?:\s+(.*?))?\s*$", line):
            out[m[1]] = m[2] or ""
        elif m := re.match(r"/\*\s*#undef\s+(\w+)\s*\*/", line):
            out[m[1]] = None
    return out


def derive(base_text: str, ref_base: str, ref_target: str) -> str:
    """base_text (amd64, version V) moved to the target architecture: every macro whose value differs
    between ref_base (amd64, version W) and ref_target (the target, version W) takes the target's value."""
    a, b = parse(ref_base), parse(ref_target)
    delta = {k: b.get(k) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    # A macro the reference's amd64 header knows and base_text's does not belongs to the newer version
    # only; one only the target's header has is the architecture's own.
    known = parse(base_text)
    delta = {k: v for k, v in delta.items() if k in known or k not in a}
    lines, seen = [], set()
    for line in base_text.splitlines():
        m = re.match(r"#define\s+(\w+)\b", line) or re.match(r"/\*\s*#undef\s+(\w+)\s*\*/", line)
        if m and m[1] in delta:
            seen.add(m[1])
            value = delta[m[1]]
            line = f"/* #undef {m[1]} */" if value is None else f"#define {m[1]} {value}".rstrip()
        lines.append(line)
    added = [f"#define {k} {v}".rstrip() for k, v in sorted(delta.items()) if k not in seen and v is not None]
    body = "\n".join(lines)
    # The macros the target has and the base lacks go before the header's closing #endif.
    end = body.rfind("#endif")
    return body[:end] + "".join(line + "\n" for line in added) + body[end:] + "\n"


def include_dir(arch: str, version: str) -> Path:
    """A directory with Python.h and the target's pyconfig.h for CPython <version> on <arch>."""
    if arch not in ARCHES or version not in RELEASES:
        sys.exit(f"no headers for {arch} / Python {version}: architectures {sorted(ARCHES)}, versions {VERSIONS}")
    out = CACHE / "include" / f"{version}-{arch}" / f"python{version}"
    if (out / "pyconfig.h").exists():
        return out
    generic = _unpacked(version, "amd64") / "usr/include" / f"python{version}"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(generic, tmp)
    if _available(version, arch):
        shutil.copy(_pyconfig(version, arch), tmp / "pyconfig.h")
    else:
        ref = DERIVED_VIA[version]
        (tmp / "pyconfig.h").write_text(derive(_pyconfig(version, "x86_64").read_text(),
                                               _pyconfig(ref, "x86_64").read_text(), _pyconfig(ref, arch).read_text()))
    if "#define HAVE_CRYPT_H" in (tmp / "pyconfig.h").read_text():
        # Python.h of 3.9 and 3.10 includes <crypt.h>, which is libcrypt's, not glibc's (zig has none).
        deb = _download("libcrypt-dev", "amd64", RELEASES[version])
        with tempfile.TemporaryDirectory() as unpacked:
            _run("dpkg-deb", "-x", str(deb), unpacked)
            shutil.copy(Path(unpacked) / "usr/include/crypt.h", tmp / "crypt.h")
    tmp.rename(out)
    return out


def check() -> int:
    """Derive the ARM pyconfig.h of CHECKED_VIA's versions as DERIVED_VIA's are; count the headers whose
    layout macros (LAYOUT) differ from the real ones, and list every macro that differs."""
    bad = 0
    for arch in ("aarch64", "armv7l"):
        for v, ref in CHECKED_VIA.items():
            real = parse(_pyconfig(v, arch).read_text())
            got = parse(derive(_pyconfig(v, "x86_64").read_text(), _pyconfig(ref, "x86_64").read_text(),
                               _pyconfig(ref, arch).read_text()))
            diff = sorted(k for k in got.keys() | real.keys() if got.get(k) != real.get(k))
            layout = [k for k in diff if LAYOUT.match(k)]
            bad += bool(layout)
            print(f"{arch} {v} derived via {ref}: {len(diff)} macros differ from the real header"
                  f"{', layout: ' + ', '.join(layout) if layout else ' (none that sets a layout)'}"
                  f"{': ' + ', '.join(diff[:8]) + (' ...' if len(diff) > 8 else '') if diff else ''}")
    return bad


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arch", nargs="?", choices=sorted(ARCHES))
    p.add_argument("version", nargs="?", choices=VERSIONS)
    p.add_argument("--check", action="store_true", help="test the ARM pyconfig.h derivation on the Debian versions")
    a = p.parse_args()
    if a.check:
        sys.exit(1 if check() else 0)
    if not (a.arch and a.version):
        p.error("give an architecture and a version, or --check")
    print(include_dir(a.arch, a.version))

if __name__ == "__main__":
    main()
