"""The pure parts of the wheel tools (tools/python_headers.py): reading pyconfig.h and moving one to
another architecture. The tools themselves run in CI (.ci/wheels), which also checks the derivation
against real ARM headers (python_headers.py --check)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import python_headers  # noqa: E402

AMD64_OLD = """#ifndef Py_PYCONFIG_H
#define SIZEOF_LONG 8
#define ALIGNOF_LONG 8
#define HAVE_GCC_ASM_FOR_X64 1
/* #undef WORDS_BIGENDIAN */
#define NEW_IN_OLD 1
#endif
"""
ARM_OLD = """#ifndef Py_PYCONFIG_H
#define SIZEOF_LONG 4
#define ALIGNOF_LONG 4
/* #undef HAVE_GCC_ASM_FOR_X64 */
/* #undef WORDS_BIGENDIAN */
#define NEW_IN_OLD 1
#define HAVE_ARM_ONLY 1
#endif
"""
AMD64_NEW = """#ifndef Py_PYCONFIG_H
#define SIZEOF_LONG 8
#define HAVE_GCC_ASM_FOR_X64 1
#define ONLY_IN_NEW
/* #undef WORDS_BIGENDIAN */
#endif
"""


def test_parse_reads_defines_and_undefs():
    got = python_headers.parse(AMD64_NEW)
    assert got == {"SIZEOF_LONG": "8", "HAVE_GCC_ASM_FOR_X64": "1", "ONLY_IN_NEW": "", "WORDS_BIGENDIAN": None}


def test_derive_applies_the_architecture_difference_only():
    got = python_headers.parse(python_headers.derive(AMD64_NEW, AMD64_OLD, ARM_OLD))
    assert got["SIZEOF_LONG"] == "4"                # a size the reference pair differs in
    assert got["HAVE_GCC_ASM_FOR_X64"] is None       # an x86 probe, off on ARM
    assert got["HAVE_ARM_ONLY"] == "1"               # only the target's header has it: the architecture's
    assert got["ONLY_IN_NEW"] == ""                  # the version's own macros stay
    assert got["WORDS_BIGENDIAN"] is None
    # ALIGNOF_LONG: known to the reference's amd64 header, not to this version's: not this version's macro.
    assert "ALIGNOF_LONG" not in got
    assert python_headers.derive(AMD64_NEW, AMD64_OLD, ARM_OLD).rstrip().endswith("#endif")


def test_derive_between_equal_headers_is_the_identity():
    assert python_headers.parse(python_headers.derive(AMD64_NEW, ARM_OLD, ARM_OLD)) == python_headers.parse(AMD64_NEW)
