"""Fuzz target: crafted bundles against edgesep.load + Model.run.

    python fuzz/fuzz_bundle.py --corpus DIR -max_total_time=300 [libFuzzer flags]
    python fuzz/fuzz_bundle.py --replay DIR --seconds 240

The first is atheris (libFuzzer) guided by coverage of edgesep's Python reader and runtime; the C++
plan builder and kernels run under it. The second runs every bundle of a corpus, then random mutations
of them for a while, without coverage: it is how the corpus is run against the extension built with
AddressSanitizer + UBSan (EDGESEP_SANITIZE=ON, libasan preloaded), where atheris cannot count coverage
(the sanitizer runtime takes its hooks). .ci/sanitize runs both.

Any exception but edgesep's own (BundleError, MemoryLimitError) is a finding, as is a crash or a hang:
libFuzzer writes the input to crash-*/timeout-* and exits non-zero; --replay writes crash-*.esb and exits
1 (a sanitizer report aborts the process). An empty corpus directory first gets the seeds: real
bundles compiled from the shipped digits CNN (both layouts, with separable convs and a sparse FC) and
from the op test models of tests/test_ops.py. The mutator knows
the format: most mutations edit one value of the JSON header (boundary integers, wrong types, other
names from the format's vocabulary, removed or duplicated entries) and write the bundle back with a
valid header checksum, so that they reach the range checks and the plan builder instead of stopping
at the checksum; the rest are libFuzzer's byte mutations and truncations of the whole file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import atheris
import numpy as np

# Coverage of edgesep's reader and runtime (the modules `edgesep.load` and `Model.run` use), instrumented
# as they are imported: instrumenting everything loaded once the seeds were compiled (numpy, onnx, the
# compiler, pytest: 34,739 functions) took minutes before the first run. Not under --replay, which counts
# no coverage.
with contextlib.nullcontext() if "--replay" in sys.argv else atheris.instrument_imports(include=["edgesep"]):
    import edgesep
    from edgesep.bundle import _PREAMBLE, DTYPES, LAYOUTS, MAGIC, head_bytes
    from edgesep.ops import ACTIVATION_LAYOUTS, ACTIVATIONS, ATTR_RANGES, OPS

OK = (edgesep.BundleError, edgesep.MemoryLimitError)
MAX_MEMORY = 256 << 20
# Larger plans load but do not run: a legitimately big conv is not a hang, and a declared input of
# 2^31 - 1 elements (within the limits) is 8 GiB of the harness's own input array, not edgesep's memory.
MAX_RUN_MACS = 200_000_000
MAX_RUN_INPUT = 1 << 24
WORK = Path(tempfile.mkdtemp(prefix="edgesep-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))

INTS = [0, 1, -1, 2, 3, 16, 255, 65535, 65536, 2**31 - 2, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1,
        2**53 + 1, 2**58, 2**63 - 1, 2**63, 2**64, -2**31, -2**63, 10**30]
FLOATS = [0.0, -0.0, 0.5, -1.0, 1e-45, 3.5e38, 1e308, float("inf"), float("-inf"), float("nan"), 2.0**31, 1.5]
NAMES = sorted({*OPS, *ACTIVATIONS, *ACTIVATION_LAYOUTS, *LAYOUTS, *DTYPES, *ATTR_RANGES,
                *(k for s in OPS.values() for k in (*s.attrs, *s.weights)),
                "name", "op", "inputs", "output", "weights", "attrs", "shape", "dtype", "layout", "offset",
                "nbytes", "crc32", "groups", "phases", "block", "graph", "tensors", "nodes", "outputs", "", "x"})


def dictionary() -> Path:
    """libFuzzer's dictionary: the header's keys and names, quoted as they appear in the JSON."""
    path = WORK / "bundle.dict"
    path.write_text("".join(f'"\\"{n}\\""\n' for n in NAMES if n))
    return path


def seed_corpus() -> Path:
    """Real bundles: the shipped digits CNN (NHWC and NCHW, separable, sparse FC) and the op test models."""
    from importlib import resources

    import onnx

    from edgesep.compiler import compile_onnx
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_ops import CASES

    out = WORK / "seeds"
    out.mkdir()
    calib = np.random.default_rng(0).random((40, 1, 28, 28), np.float32)
    with resources.as_file(resources.files("edgesep") / "data" / "digits.onnx") as digits:
        compile_onnx(digits, out / "digits.esb")
        compile_onnx(digits, out / "digits_nchw.esb", layout="nchw")
        compile_onnx(digits, out / "digits_sep.esb", separable="energy=0.9", sparse_fc="0.8,block=4x1")
        compile_onnx(digits, out / "digits_sep_nchw.esb", separable="energy=0.9", sparse_fc="dict=0.3",
                     calib=calib, layout="nchw")
    for name, (m, _) in CASES.items():
        onnx.save(m, WORK / "m.onnx")
        try:
            compile_onnx(WORK / "m.onnx", out / f"{name}.esb")
        except Exception:  # a case that tests a compile-time error
            continue
    return out


def split(data: bytes) -> tuple[dict, bytes] | None:
    """(header, data section) of a bundle, or None where it is not one."""
    if len(data) < _PREAMBLE.size or data[:8] != MAGIC:
        return None
    _, _, _, hlen, doff = _PREAMBLE.unpack_from(data, 0)
    try:
        header = json.loads(data[_PREAMBLE.size:_PREAMBLE.size + hlen])
    except (ValueError, RecursionError):
        return None
    return (header, data[doff:]) if isinstance(header, dict) else None


def slots(v, out: list) -> list:
    """Every (container, key) of a JSON tree."""
    if isinstance(v, dict):
        for k in list(v):
            out.append((v, k))
            slots(v[k], out)
    elif isinstance(v, list):
        for i in range(len(v)):
            out.append((v, i))
            slots(v[i], out)
    return out


def new_value(old, rng: random.Random):
    r = rng.random()
    if r < 0.1:  # another type altogether
        return rng.choice([None, True, [], {}, "x", [1, 2], {"a": 1}, 1, 1.0, [old]])
    if isinstance(old, bool) or old is None:
        return rng.choice([0, 1, None, False, "none"])
    if isinstance(old, int):
        return rng.choice(INTS + [old + 1, old - 1, old * 2, -old, old // 2])
    if isinstance(old, float):
        return rng.choice(FLOATS + [old * 2, -old])
    if isinstance(old, str):
        return rng.choice(NAMES + [old + "_", old * 50])
    if isinstance(old, list):
        v = list(old)
        op = rng.randrange(4)
        if op == 0 and v:
            del v[rng.randrange(len(v))]
        elif op == 1 and v:
            v.insert(rng.randrange(len(v) + 1), rng.choice(v))
        elif op == 2 and len(v) > 1:
            i, j = rng.randrange(len(v)), rng.randrange(len(v))
            v[i], v[j] = v[j], v[i]
        else:
            v.append(rng.choice(INTS))
        return v
    if isinstance(old, dict):
        v = dict(old)
        if v and rng.random() < 0.5:
            del v[rng.choice(list(v))]
        else:
            v[rng.choice(NAMES)] = rng.choice(INTS + FLOATS + NAMES + [[1, 1], [0, 0, 0, 0]])
        return v
    return old


mutate_bytes = None  # byte mutations: libFuzzer's own (atheris.Mutate), or flip_bytes in --replay


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    parsed = split(data)
    if parsed is None or rng.random() < 0.15:
        out = (mutate_bytes or atheris.Mutate)(data, max_size)
    else:
        header, blob = parsed
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            where = slots(header, [])
            if not where:
                break
            container, key = rng.choice(where)
            container[key] = new_value(container[key], rng)
        out = head_bytes(json.dumps(header).encode()) + blob
    if rng.random() < 0.03:
        out = out[:rng.randrange(len(out) + 1)]
    if rng.random() < 0.02 and len(out) >= 16:  # another version (1-3 have no header checksum)
        out = out[:8] + struct.pack("<II", rng.choice([1, 2, 3, 4, 5, 6]), 0) + out[16:]
    return out[:max_size]


def test_one(data: bytes) -> None:
    path = WORK / "b.esb"
    path.write_bytes(data)
    try:
        m = edgesep.load(path, num_threads=1, max_memory=MAX_MEMORY)
        shapes = [[1 if d is None else d for d in i.shape] for i in m.inputs]
        if sum(r["macs"] for r in m.layers()) > MAX_RUN_MACS or sum(map(np.prod, shapes)) > MAX_RUN_INPUT:
            return
        rng = np.random.default_rng(zlib.crc32(data))
        xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        m.run(xs)
        m.close()
    except OK:
        pass


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    """A byte mutation for --replay (atheris.Mutate needs the fuzzer running)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def replay(corpus: Path, seconds: float) -> None:
    global mutate_bytes
    files = sorted(p for p in corpus.iterdir() if p.is_file())
    if not files:
        raise SystemExit(f"{corpus}: no bundles to replay")
    rng = random.Random(0)
    mutate_bytes = lambda data, max_size: flip_bytes(data, rng)[:max_size]  # noqa: E731
    runs, start = 0, time.monotonic()

    def one(data: bytes) -> None:
        nonlocal runs
        try:
            test_one(data)
        except Exception:
            out = Path(f"crash-{hashlib.sha1(data).hexdigest()}.esb")
            out.write_bytes(data)
            print(f"finding after {runs} runs: input written to {out}", file=sys.stderr)
            raise
        runs += 1
    for p in files:
        one(p.read_bytes())
    while time.monotonic() - start < seconds:
        data = rng.choice(files).read_bytes()
        for _ in range(rng.randint(1, 4)):
            data = mutate(data, 8 << 20, rng.randrange(1 << 30))
        one(data)
    print(f"replay: {len(files)} corpus bundles and {runs - len(files)} mutations in {time.monotonic() - start:.0f} s, "
          "no findings")


def main() -> None:
    args = sys.argv[1:]
    if "--replay" in args:
        i = args.index("--replay")
        seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 60.0
        replay(Path(args[i + 1]), seconds)
        return
    argv = [sys.argv[0]]
    while args:
        a = args.pop(0)
        if a == "--corpus":
            corpus = Path(args.pop(0))
            corpus.mkdir(parents=True, exist_ok=True)
            if not any(corpus.iterdir()):
                for p in seed_corpus().iterdir():
                    (corpus / p.name).write_bytes(p.read_bytes())
            argv.append(str(corpus))
        else:
            argv.append(a)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(str(seed_corpus()))
    if not any(a.startswith("-dict=") for a in argv):
        argv.append(f"-dict={dictionary()}")
    for flag, value in (("-max_len", 8 << 20), ("-timeout", 20), ("-rss_limit_mb", 4096)):
        if not any(a.startswith(flag + "=") for a in argv):
            argv.append(f"{flag}={value}")
    atheris.Setup(argv, test_one, custom_mutator=mutate)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
