"""Bad input gets a clear error, never a crash: malformed, truncated, corrupt and inconsistent
bundles; wrong inputs at run time. And the device-side API: load, run, concurrency."""
from __future__ import annotations

import json
import struct
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_ops import CASES

import edgesep
from edgesep import BundleError
from edgesep.bundle import _PREAMBLE, MAGIC, head_bytes
from edgesep.compiler import compile_onnx


@pytest.fixture
def bundle(tmp_path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(CASES["concat_transpose_nhwc"][0], path)
    compile_onnx(path, tmp_path / "m.esb")
    return tmp_path / "m.esb"


def node(h: dict, op: str = "Conv") -> dict:
    """The first node of the header's graph running `op`."""
    return next(n for n in h["graph"]["nodes"] if n["op"] == op)


def split(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    _, _, _, hlen, doff = _PREAMBLE.unpack_from(raw, 0)
    return json.loads(raw[_PREAMBLE.size:_PREAMBLE.size + hlen]), raw[doff:]


def rewrite(path: Path, mutate) -> Path:
    """A copy of the bundle beside it with mutate(header) applied (valid header checksum, data kept)."""
    header, data = split(path)
    mutate(header)
    out = path.with_name("crafted.esb")
    out.write_bytes(head_bytes(json.dumps(header).encode()) + data)
    return out


def test_valid_bundle_loads(bundle):
    m = edgesep.load(bundle)
    assert m.inputs[0].shape == (None, 7, 6, 3) and m.outputs[0].shape == (None, 8, 7, 6)


@pytest.mark.parametrize("cut", [0, 5, 31, 40, -100, "last data byte"])
def test_truncated(bundle, cut):
    raw = bundle.read_bytes()
    if cut == "last data byte":
        header, data = split(bundle)
        end = max(t["offset"] + t["nbytes"] for t in header["tensors"])
        cut = len(raw) - len(data) + end - 1
    bundle.write_bytes(raw[:cut] if cut >= 0 else raw[:len(raw) + cut])
    with pytest.raises(BundleError):
        edgesep.load(bundle)


def test_bad_magic_and_version(bundle):
    raw = bytearray(bundle.read_bytes())
    bundle.write_bytes(b"NOTMAGIC" + raw[8:])
    with pytest.raises(BundleError, match="bad magic"):
        edgesep.load(bundle)
    struct.pack_into("<8sI", raw, 0, MAGIC, 99)
    bundle.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="version 99.*reads versions 1, 2, 3"):
        edgesep.load(bundle)


def test_a_version_2_bundle_still_runs(tmp_path):
    """A file written before the NHWC layout (version 2: every node NCHW) loads and runs on the NCHW ops,
    giving what the NHWC compile of the same model gives."""
    path = tmp_path / "m.onnx"
    onnx.save(CASES["concat_transpose_nhwc"][0], path)
    compile_onnx(path, tmp_path / "new.esb")
    compile_onnx(path, tmp_path / "old.esb", layout="nchw")
    raw = bytearray((tmp_path / "old.esb").read_bytes())
    header, _ = split(tmp_path / "old.esb")
    assert "nhwc" not in json.dumps(header["graph"])  # nothing a version-2 reader would not know
    struct.pack_into("<II", raw, 8, 2, 0)  # version 2: no header checksum (the field was reserved, 0)
    (tmp_path / "old.esb").write_bytes(bytes(raw))
    old = edgesep.load(tmp_path / "old.esb")
    assert old.format_version == 2
    x = np.random.default_rng(1).standard_normal((2, 7, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(old.run(x), edgesep.load(tmp_path / "new.esb").run(x), rtol=1e-5, atol=1e-5)


def test_a_version_4_winograd_bundle_still_runs(tmp_path):
    """Before version 5 a Winograd conv's `winograd` attribute was 1 (F(2x2, 3x3), the only one): such a
    file still loads and runs F(2x2, 3x3); 3 is refused."""
    from onnx import TensorProto, helper, numpy_helper

    wt = np.random.default_rng(0).standard_normal((32, 32, 3, 3)).astype(np.float32) * 0.1
    graph = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(wt, "W")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    compile_onnx(path, tmp_path / "new.esb")
    header, _ = split(tmp_path / "new.esb")
    assert [n["attrs"].get("winograd") for n in header["graph"]["nodes"] if n["op"] == "Conv"] == [2]

    def set_winograd(value):
        def mutate(h):
            for n in h["graph"]["nodes"]:
                if n["op"] == "Conv":
                    n["attrs"]["winograd"] = value
        return mutate

    raw = bytearray(rewrite(tmp_path / "new.esb", set_winograd(1)).read_bytes())
    struct.pack_into("<I", raw, 8, 4)  # version 4 (the header's checksum does not cover the preamble)
    (tmp_path / "old.esb").write_bytes(bytes(raw))
    old = edgesep.load(tmp_path / "old.esb")
    assert old.format_version == 4
    x = np.random.default_rng(1).standard_normal((1, 32, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(old.run(x), edgesep.load(tmp_path / "new.esb").run(x))
    with pytest.raises(BundleError, match="winograd must be 2 or 4"):
        edgesep.load(rewrite(tmp_path / "new.esb", set_winograd(3)))


def test_header_length_out_of_range_and_bad_json(bundle):
    _, data = split(bundle)
    raw = bytearray(bundle.read_bytes())
    struct.pack_into("<Q", raw, 16, 1 << 40)
    bundle.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="out of range"):
        edgesep.load(bundle)
    raw = bytearray(bundle.read_bytes())
    struct.pack_into("<Q", raw, 16, 10)
    bundle.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="header checksum mismatch"):
        edgesep.load(bundle)
    for bad in (b'{"graph": ', b"[" * 100000 + b"]" * 100000, b'{"a": 1' + b"0" * 5000 + b"}", b"\xff\xfe"):
        bundle.write_bytes(head_bytes(bad) + data)  # a valid checksum over a header that does not parse
        with pytest.raises(BundleError, match="not valid JSON"):
            edgesep.load(bundle)


def test_corrupt_weights_fail_the_checksum(bundle):
    raw = bytearray(bundle.read_bytes())
    raw[-70] ^= 0xFF
    bundle.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="checksum mismatch"):
        edgesep.load(bundle)


@pytest.mark.parametrize("mutate,message", [
    (lambda h: h["tensors"][0].update(offset=1 << 30), "runs past the end"),
    (lambda h: h["tensors"][0].update(offset=3), "64-byte aligned"),
    (lambda h: h["tensors"][0].update(nbytes=8), "layout and shape need"),
    (lambda h: h["tensors"][0].update(dtype="float64"), "not supported"),
    (lambda h: h["tensors"][0].update(layout="nhwc8"), "unknown layout"),
    (lambda h: h["tensors"][0].update(shape=[5, -3, 3, 3]), "invalid shape"),
    (lambda h: h["graph"]["nodes"][0].update(op="Frobnicate"), "unknown op 'Frobnicate'"),
    (lambda h: h["graph"]["nodes"][0]["attrs"].update(colour=1), "unknown attribute 'colour'"),
    (lambda h: node(h)["attrs"].update(strides="2"), "must be a list of numbers"),
    (lambda h: node(h)["attrs"].update(activation="gelu"), "unknown activation"),
    (lambda h: node(h)["attrs"].update(layout="nchwc"), "unknown layout 'nchwc'"),
    (lambda h: node(h)["weights"].update(weight=9), "does not exist"),
    (lambda h: h["graph"]["nodes"][0].update(inputs=[h["graph"]["nodes"][1]["output"]]), "before it is defined"),
    (lambda h: node(h).update(output="x"), "defined twice"),
    (lambda h: h["graph"]["outputs"].append({"name": "nowhere"}), "not a defined value"),
    (lambda h: h["graph"]["inputs"][0].update(shape=[None, 0, 6, 3]), "invalid shape"),
    (lambda h: h.pop("graph"), "'graph' must be an object"),
])
def test_inconsistent_header(bundle, mutate, message):
    with pytest.raises(BundleError, match=message):
        edgesep.load(rewrite(bundle, mutate))


def test_cycle_between_nodes(bundle):
    def cycle(h):
        a, b = h["graph"]["nodes"][1], h["graph"]["nodes"][2]
        a["inputs"] = [b["output"]]
    with pytest.raises(BundleError, match="before it is defined"):
        edgesep.load(rewrite(bundle, cycle))


@pytest.mark.parametrize("mutate,message", [
    (lambda n: n["attrs"].update(kernel_shape=[5, 5]), r"node '.*' \(Conv\): weight shape \[5, 3, 3, 3\]"),
    (lambda n: n["attrs"].update(out_channels=6), r"node '.*' \(Conv\): weight shape .* expected \[6, 3, 3, 3\]"),
    (lambda n: n["attrs"].update(pads=[9, 9, 9]), r"node '.*' \(Conv\): .*pads 4"),
    (lambda n: n["attrs"].update(strides=[0, 1]), r"node \d+ \(.*\): attribute 'strides': 0 is out of range"),
    (lambda n: n["attrs"].update(group=2), r"node \d+ \(.*\): conv weight must be stored as conv_nhwc16"),
    (lambda n: n["attrs"].update(layout="nchw"), r"node \d+ \(.*\): conv weight must be stored as conv_mr6"),
])
def test_attributes_inconsistent_with_shapes(bundle, mutate, message):
    """Caught when the bundle is read or when the C++ plan is built at load, with the node named."""
    def m(h):
        mutate(node(h))
    with pytest.raises(BundleError, match=message):
        edgesep.load(rewrite(bundle, m))


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(BundleError, match="cannot open"):
        edgesep.load(tmp_path / "nope.esb")
    (tmp_path / "empty.esb").write_bytes(b"")
    with pytest.raises(BundleError, match="too short"):
        edgesep.load(tmp_path / "empty.esb")


@pytest.mark.parametrize("x,error,message", [
    (np.zeros((2, 7, 6, 4), np.float32), ValueError, r"shape \(2, 7, 6, 4\), expected \('N', 7, 6, 3\)"),
    (np.zeros((7, 6, 3), np.float32), ValueError, "expected"),
    (np.zeros((2, 7, 6, 3), np.float64), TypeError, "must be float32, got float64"),
    (np.zeros((2, 3, 6, 7), np.float32).transpose(0, 3, 2, 1), ValueError, "not C-contiguous"),
    (np.full((1, 7, 6, 3), np.nan, np.float32), ValueError, "NaN"),
    (np.pad(np.full((1, 1, 1, 1), -np.inf, np.float32), ((0, 0), (6, 0), (5, 0), (2, 0))), ValueError, "infinity"),
    (np.zeros((0, 7, 6, 3), np.float32), ValueError, "empty"),
    ([[1.0]], TypeError, "numpy array"),
    ({"other": np.zeros((1, 7, 6, 3), np.float32)}, ValueError, "missing"),
    ([np.zeros((1, 7, 6, 3), np.float32)] * 2, ValueError, "takes 1 inputs"),
])
def test_bad_run_inputs(bundle, x, error, message):
    m = edgesep.load(bundle)
    with pytest.raises(error, match=message):
        m.run(x)
    m.run(np.zeros((1, 7, 6, 3), np.float32))  # and with the plan for a good input's shape cached
    with pytest.raises(error, match=message):
        m.run(x)


def test_run_forms_and_one_call(bundle):
    m = edgesep.load(bundle, num_threads=1)
    x = np.random.default_rng(0).standard_normal((2, 7, 6, 3)).astype(np.float32)
    y = m.run(x)
    np.testing.assert_array_equal(m.run([x]), y)
    np.testing.assert_array_equal(m.run({"x": x}), y)
    np.testing.assert_array_equal(edgesep.runtime.run(bundle, x), y)
    np.testing.assert_array_equal(m.run(x[:1]), y[:1])  # another batch size: a second plan
    with pytest.raises(ValueError, match="num_threads"):
        edgesep.load(bundle, num_threads=0)
    with pytest.raises(ValueError, match="not available"):
        edgesep.load(bundle, isa="sve2")


def test_concurrent_runs_on_one_model_are_correct(bundle):
    m = edgesep.load(bundle, num_threads=2)
    xs = [np.random.default_rng(i).standard_normal((1 + i % 3, 7, 6, 3)).astype(np.float32) for i in range(8)]
    want = [m.run(x) for x in xs]
    errors = []

    def worker(k: int) -> None:
        for r in range(25):
            i = (k + r) % len(xs)
            if not np.array_equal(m.run(xs[i]), want[i]):
                errors.append(i)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors



def test_a_bundle_loads_from_bytes(tmp_path):
    """What the compiler runs its candidates on: the bytes of a bundle, never written to a file, give the
    file's results; the same checks apply (a truncated copy is a BundleError)."""
    compile_onnx(Path(edgesep.__file__).parent / "data" / "digits.onnx", tmp_path / "d.esb")
    data = (tmp_path / "d.esb").read_bytes()
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    m = edgesep.load(data)
    assert str(m.path) == "<memory>"
    np.testing.assert_array_equal(m.run(x), edgesep.load(tmp_path / "d.esb").run(x))
    with pytest.raises(edgesep.BundleError, match="past the end"):
        edgesep.load(data[:len(data) // 2])
    with pytest.raises(edgesep.BundleError, match="<memory>: .*too short"):
        edgesep.load(data[:8])
