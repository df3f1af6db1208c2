"""A bundle from anywhere cannot crash the process: every crafted bundle that once did (a SIGFPE at load, a
heap write past the arena at run, foreign exception types, undetected header flips, unbounded memory) is
rebuilt here from a real compiled bundle, and gets edgesep's own error. Each range is checked twice - by the
reader (bundle.py) and again by the C++ plan builder on its own (csrc/runtime/limits.h) - and both are
tested."""
from __future__ import annotations

import copy
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from test_bundle import bundle, node, rewrite  # noqa: F401 (bundle: a fixture)
from test_ops import model, w

import edgesep
from edgesep import BundleError, MemoryLimitError, _core
from edgesep.bundle import _PREAMBLE, read_bundle
from edgesep.compiler import compile_onnx
from edgesep.ops import LIMITS

BIG = 2**40  # any header limit's worth of memory: the C++ checks must fail before allocating


@pytest.fixture
def pad_pool(tmp_path) -> Path:
    """A real bundle with a Pad feeding a 4x4 MaxPool (the out-of-bounds write's shape)."""
    m = model([helper.make_node("Pad", ["x", "p"], ["a"], mode="reflect"),
               helper.make_node("MaxPool", ["a"], ["y"], kernel_shape=[4, 4])], [2, 8, 8],
              {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)})
    onnx.save(m, tmp_path / "m.onnx")
    compile_onnx(tmp_path / "m.onnx", tmp_path / "m.esb")
    return tmp_path / "m.esb"


def cpp_plan(path: Path, mutate=None, shape=None) -> _core.Plan:
    """Builds the C++ plan of a bundle straight from its header with mutate(header) applied (the same
    mutations as rewrite's), past the reader's checks."""
    b = read_bundle(path)
    h = copy.deepcopy(b.header)
    if mutate:
        mutate(h)
    g = h["graph"]
    plan = _core.Plan(1, "", BIG)
    ids = {v["name"]: plan.add_input(list(shape or [1 if d is None else d for d in v["shape"]])) for v in g["inputs"]}
    for n in g["nodes"]:
        weights = {k: (b.tensor(t), b.tensors[t]["layout"], b.tensors[t]["shape"]) for k, t in n.get("weights", {}).items()}
        ids[n["output"]] = plan.add_node(n["name"], n["op"], [ids[x] for x in n["inputs"]], n.get("attrs", {}), weights)
    for v in g["outputs"]:
        plan.add_output(ids[v["name"]])
    plan.finalize()
    return plan


def test_the_limits_agree():
    assert _core.LIMITS == LIMITS


# Values that were cast to int without a range check (SIGFPE: a stride of 2**32 became 0).
CONV_ATTRS = [("strides", [1, 2**32]), ("strides", [0, 1]), ("pads", [0, 0, 2**31, 0]), ("pads", [-1, 0, 0, 0]),
              ("dilations", [1, 2**31]), ("kernel_shape", [3, 2**33]), ("group", 2**32 + 1), ("out_channels", 2**63),
              ("strides", [1, 1e300]), ("strides", [1, float("nan")]), ("strides", [1, 1.5])]


@pytest.mark.parametrize("name,value", CONV_ATTRS)
def test_out_of_range_conv_attributes(bundle, name, value):
    def mutate(h):
        node(h)["attrs"][name] = value
    with pytest.raises(BundleError, match=rf"node \d+ \(.*\): attribute '{name}'"):
        edgesep.load(rewrite(bundle, mutate))
    with pytest.raises(_core.PlanError, match=rf"node '.*' \(Conv\): .*{name}"):
        cpp_plan(bundle, mutate)


@pytest.mark.parametrize("dims", [[1, 2**31, 6, 3], [2**31 - 1, 7, 6, 3], [1, 7, 2**20, 2**12]])
def test_input_dims_beyond_the_limits(bundle, dims):
    with pytest.raises(BundleError, match="graph input x: (invalid shape|shape .* more than)"):
        edgesep.load(rewrite(bundle, lambda h: h["graph"]["inputs"][0].update(shape=dims)))
    with pytest.raises(_core.PlanError, match="tensor|out of range"):
        cpp_plan(bundle, shape=dims)


def test_pad_whose_element_count_wraps(pad_pool):
    """pads [0,0,0,0, 0,2**58,8,29] once wrapped the element count: the arena was sized from the wrapped
    number and the 4x4 max-pool after the Pad wrote past it."""
    pads = [0, 0, 0, 0, 0, 2**58, 8, 29]
    def mutate(h):
        node(h, "Pad")["attrs"].update(pads=pads, mode="constant")
    with pytest.raises(BundleError, match=r"attribute 'pads': 288230376151711744 is out of range"):
        edgesep.load(rewrite(pad_pool, mutate))
    with pytest.raises(_core.PlanError, match="attribute 'pads' must hold integers within"):
        cpp_plan(pad_pool, mutate)
    # Within the value range, the product is what overflows: caught by the checked element count.
    half = (2**31 - 1 - 8) // 2  # every dim within the limit, their product far beyond
    pads = [0, 0, half, half, 0, 0, half, half]
    with pytest.raises(BundleError, match=r"node 'Pad.*' \(Pad\): tensor .* has more than 2147483647 elements"):
        edgesep.load(rewrite(pad_pool, mutate))
    with pytest.raises(_core.PlanError, match="has more than 2147483647 elements"):
        cpp_plan(pad_pool, mutate)


@pytest.mark.parametrize("mutate,message", [
    (lambda h: node(h).pop("name"), r"node 0: name None must be a string"),
    (lambda h: node(h).update(name=["a"]), r"node 0: name \['a'\] must be a string"),
    (lambda h: node(h).update(op=["Conv"]), r"unknown op \['Conv'\]"),
    (lambda h: h["tensors"][0].update(dtype=["float32"]), r"tensor 0 .*: dtype \['float32'\] is not supported"),
    (lambda h: h["tensors"][0].update(layout={"a": 1}), r"tensor 0 .*: unknown layout"),
    (lambda h: h["tensors"][0].update(name=7), r"tensor 0: name 7 must be a string"),
    (lambda h: h["graph"]["outputs"].__setitem__(0, {"name": ["y"]}), "not a defined value"),
    (lambda h: h["tensors"][0].update(shape=[2**31, 1]), r"invalid shape"),
    (lambda h: node(h)["attrs"].update(clip_min=float("inf")), r"attribute 'clip_min' must be finite"),
    (lambda h: node(h)["attrs"].update(layout=["nhwc"]), r"attribute 'layout' must be a string"),
])
def test_wrong_types_are_bundle_errors(bundle, mutate, message):
    with pytest.raises(BundleError, match=message):
        edgesep.load(rewrite(bundle, mutate))


def test_conv_weight_pointing_at_a_1d_tensor(bundle):
    def plain_1d(h):  # a 1-D tensor in the conv's own layout: the rank is what is wrong
        t = h["tensors"][node(h)["weights"]["weight"]]
        t["shape"] = [t["nbytes"] // 4]
        t["layout"] = "plain"
        node(h)["attrs"]["layout"] = "nchw"
    with pytest.raises(BundleError, match="conv weight must have 4 dims"):
        edgesep.load(rewrite(bundle, plain_1d))


def test_huge_declared_batch_is_a_bundle_error_about_memory(bundle):
    with pytest.raises(BundleError, match=r"input shape 'x' \(2000000, 7, 6, 3\): .*needs .* of working memory"):
        edgesep.load(rewrite(bundle, lambda h: h["graph"]["inputs"][0].update(shape=[2_000_000, 7, 6, 3])),
                      max_memory=1 << 30)


def test_every_header_bit_flip_is_caught(bundle):
    """3 of 4,818 single-bit flips of the header once loaded and gave other outputs (a pad 0 -> 1)."""
    raw = bundle.read_bytes()
    _, _, _, hlen, _ = _PREAMBLE.unpack_from(raw, 0)
    caught = 0
    for bit in range(8 * (_PREAMBLE.size + hlen)):
        if 8 <= bit // 8 < 12:
            continue  # the version: another version's reader (tested in test_bundle.py)
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        bundle.write_bytes(bytes(flipped))
        with pytest.raises(BundleError):
            read_bundle(bundle)
        caught += 1
    assert caught > 8 * hlen


def test_reserved_field_of_an_old_version_is_checked(bundle):
    raw = bytearray(bundle.read_bytes())
    raw[8:12] = (3).to_bytes(4, "little")  # a version-3 file: field 12..16 reserved, must be 0
    bundle.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="reserved preamble field"):
        edgesep.load(bundle)


def test_a_batch_beyond_max_memory_names_the_batch(bundle):
    m = edgesep.load(bundle, max_memory=64 << 20)
    x = np.zeros((100_000, 7, 6, 3), np.float32)
    with pytest.raises(MemoryLimitError, match=r"input shape 'x' \(100000, 7, 6, 3\): needs 0.33 GiB of working memory; this Model.s limit is 64.0 MiB"):
        m.run(x)
    assert m.run(x[:1000]).shape == (1000, 8, 7, 6)  # the Model still runs smaller batches


def test_plan_cache_is_bounded_by_bytes(bundle):
    one = edgesep.load(bundle, num_threads=1)
    one.run(np.zeros((4000, 7, 6, 3), np.float32))
    per_plan = one.memory_bytes()
    limit = int(per_plan * 2.5)
    m = edgesep.load(bundle, num_threads=1, max_memory=limit)
    for b in (4000, 4001, 4002, 4003):
        m.run(np.zeros((b, 7, 6, 3), np.float32))
        assert m.memory_bytes() <= limit
    assert len(m._plans) == 2


@pytest.mark.parametrize("n", [0, -1, 10**6, True, 2.0, "2"])
def test_num_threads_is_validated(bundle, n):
    with pytest.raises(ValueError, match="num_threads must be an int from 1 to"):
        edgesep.load(bundle, num_threads=n)


@pytest.mark.parametrize("n", [0, -1, 257])
def test_num_threads_is_validated_by_the_plan_too(n):
    with pytest.raises(_core.PlanError, match=rf"num_threads {n} is out of range \[1, 256\]"):
        _core.Plan(n, "", BIG)


@pytest.mark.parametrize("n", [0, -5, 1.5, True])
def test_max_memory_is_validated(bundle, n):
    with pytest.raises(ValueError, match="max_memory"):
        edgesep.load(bundle, max_memory=n)


def test_models_on_several_threads_share_the_workers_and_agree(bundle):
    """Four Models run from four threads at once (each run then uses the process's workers, or its own
    thread when another run holds them) give exactly what they give one at a time."""
    x = np.random.default_rng(3).standard_normal((16, 7, 6, 3)).astype(np.float32)
    models = [edgesep.load(bundle, num_threads=2) for _ in range(4)]
    want = models[0].run(x)
    bad = []

    def work(m):
        for _ in range(50):
            if not np.array_equal(m.run(x), want):
                bad.append(m)
    threads = [threading.Thread(target=work, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


@pytest.mark.parametrize("mutate", [
    lambda h: node(h)["attrs"].update(strides=[1, 2**32]),
    lambda h: node(h).update(name=None),
    lambda h: h["tensors"][0].update(dtype=["float32"]),
    lambda h: h["graph"]["inputs"][0].update(shape=[2_000_000_000, 7, 6, 3]),
])
@pytest.mark.parametrize("command", ["inspect", "run"])
def test_cli_prints_one_line_for_a_bad_bundle(bundle, tmp_path, mutate, command):
    bad = rewrite(bundle, mutate)
    np.save(tmp_path / "x.npy", np.zeros((1, 7, 6, 3), np.float32))
    args = [str(bad)] + ([str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")] if command == "run" else [])
    r = subprocess.run([sys.executable, "-m", "edgesep.cli", command, *args], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "error" in r.stderr.lower(), r.stderr
