"""The separable pass: the SVD split, its geometry on the runtime, the compiled model against the
numpy composition of the two passes, rank selection, calibration refit and the budget."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import onnx
import pytest
from onnx import helper
from test_ops import model, w

import edgesep
from edgesep.bundle import read_bundle, unpack_conv_mr6
from edgesep.compiler import CompileError, compile_onnx
from edgesep.compiler.execute import model_of
from edgesep.compiler.ir import Graph, Node
from edgesep.ops import is_layout_change
from edgesep.compiler.separable import Layer, Spec, energy_rank, pair, split


def conv_np(x, wt, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1)):
    """Direct NCHW convolution in float64, the reference for the compiled pair."""
    n, c, h, wd = x.shape
    m, _, kh, kw = wt.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = (wd + pads[1] + pads[3] - (kw - 1) * dil[1] - 1) // stride[1] + 1
    out = np.zeros((n, m, oh, ow))
    for y in range(kh):
        for z in range(kw):
            patch = xp[:, :, y * dil[0]: y * dil[0] + (oh - 1) * stride[0] + 1: stride[0],
                       z * dil[1]: z * dil[1] + (ow - 1) * stride[1] + 1: stride[1]]
            out += np.einsum("nchw,mc->nmhw", patch, wt[:, :, y, z])
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def test_full_rank_split_reproduces_the_weights():
    wt = w(7, 5, 3, 4)
    v, h, s = split(wt, min(5 * 3, 7 * 4))
    rebuilt = np.einsum("kcy,nkx->ncyx", v[:, :, :, 0], h[:, :, 0, :])
    np.testing.assert_allclose(rebuilt, wt, atol=1e-5)
    # Truncating keeps the Frobenius optimum: the error is the dropped singular values.
    v3, h3, _ = split(wt, 3)
    err = np.linalg.norm(np.einsum("kcy,nkx->ncyx", v3[:, :, :, 0], h3[:, :, 0, :]) - wt)
    assert err == pytest.approx(np.sqrt(np.sum(s[3:] ** 2)), rel=1e-4)
    assert energy_rank(s, 1.0) == len(s) and energy_rank(s, 1e-9) == 1


@pytest.mark.parametrize("stride,pads,dil", [((1, 1), (1, 1, 1, 1), (1, 1)), ((2, 2), (0, 1, 2, 1), (1, 1)),
                                             ((1, 2), (2, 3, 2, 3), (2, 3)), ((2, 1), (0, 0, 0, 0), (1, 1))])
def test_full_rank_pair_equals_the_dense_conv_on_the_runtime(stride, pads, dil):
    """Stride, asymmetric padding and dilation split exactly between the two passes."""
    c, n, kh, kw = 4, 6, 3, 3
    wt, b = w(n, c, kh, kw), w(n)
    conv = Node("Conv", "c", ["x"], "y", {"kernel_shape": [kh, kw], "strides": list(stride), "pads": list(pads),
                                           "dilations": list(dil), "group": 1, "out_channels": n,
                                           "activation": "relu"}, {"weight": wt, "bias": b})
    x = np.random.default_rng(1).standard_normal((2, c, 11, 13)).astype(np.float32)
    dense = model_of(Graph([("x", [None, c, 11, 13])], ["y"], [conv])).run(x)
    layer = Layer(conv, (1, c, 11, 13), (1, n) + dense.shape[2:])
    v, h, _ = split(wt, layer.full_rank)
    split_out = model_of(Graph([("x", [None, c, 11, 13])], ["y"], pair(layer, v, h, None))).run(x)
    np.testing.assert_allclose(split_out, dense, atol=1e-4 * np.abs(dense).max())


@pytest.fixture
def three_convs(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "W2", "B2"], ["b"], pads=[1, 0, 1, 2], strides=[2, 2]),
             helper.make_node("Conv", ["b", "W3"], ["y"])]
    proto = model(nodes, [8, 20, 20], {"W1": w(24, 8, 3, 3), "B1": w(24), "W2": w(32, 24, 3, 3), "B2": w(32),
                                       "W3": w(5, 32, 1, 1)})
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    return path


def test_compiled_pair_matches_the_numpy_composition(three_convs, tmp_path):
    out = tmp_path / "m.esb"
    report = compile_onnx(three_convs, out, separable="ratio=0.3", min_speedup=0)
    rows = {r["layer"]: r for r in report["separable"]}
    assert [r["status"] for r in rows.values()] == ["separable", "separable"]  # the 1x1 is not a candidate
    assert all(r["pair_macs"] <= 0.3 * r["dense_macs"] for r in rows.values())
    b = read_bundle(out)
    nodes = [n for n in b.graph["nodes"] if not is_layout_change(n)]
    # Each conv (stride 1, then stride 2) runs as one fused node or two convs, whichever measured faster.
    kinds = [(n["op"], n["attrs"]["kernel_shape"]) for n in nodes]
    assert kinds[-1] == ("Conv", [1, 1])
    fused, unfused = [("SeparableConv", [3, 3])], [("Conv", [3, 1]), ("Conv", [1, 3])]
    assert kinds[:-1] in [a + b for a in (fused, unfused) for b in (fused, unfused)]

    def weight(n, key="weight"):
        return b.weight(n["weights"][key])

    x = np.random.default_rng(2).standard_normal((2, 8, 20, 20)).astype(np.float32)
    ref = x.astype(np.float64)
    for n in nodes:
        a = n["attrs"]
        bias = weight(n, "bias") if "bias" in n["weights"] else None
        if n["op"] == "SeparableConv":
            (pt, pl, pb, pr), (sh, sw) = a["pads"], a["strides"]
            ref = conv_np(ref, weight(n, "vertical"), None, (sh, 1), (pt, 0, pb, 0))
            ref = conv_np(ref, weight(n, "horizontal"), bias, (1, sw), (0, pl, 0, pr))
        else:
            ref = conv_np(ref, weight(n), bias, a["strides"], a["pads"], a["dilations"])
        if a.get("activation") == "relu":
            ref = np.maximum(ref, 0)
    got = edgesep.load(out).run(x)
    np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())


def test_calibration_refit_lowers_the_output_error(three_convs, tmp_path):
    calib = np.random.default_rng(3).standard_normal((48, 8, 20, 20)).astype(np.float32)
    compile_onnx(three_convs, tmp_path / "dense.esb")
    compile_onnx(three_convs, tmp_path / "free.esb", separable="ratio=0.3", min_speedup=0)
    fitted = compile_onnx(three_convs, tmp_path / "fit.esb", separable="ratio=0.3", calib=calib, min_speedup=0)
    ref = edgesep.load(tmp_path / "dense.esb").run(calib)
    free = edgesep.load(tmp_path / "free.esb").run(calib)
    free_err = np.linalg.norm(free - ref) / np.linalg.norm(ref)
    # Same ranks; the least-squares horizontal stage is the better fit on the data it saw.
    assert fitted["calibration"]["output_error"] < free_err
    assert fitted["calibration"]["output_error"] == pytest.approx(
        np.linalg.norm(edgesep.load(tmp_path / "fit.esb").run(calib) - ref) / np.linalg.norm(ref), rel=1e-3)


@pytest.mark.usefixtures("mac_costs")
def test_auto_keeps_the_output_error_within_budget(three_convs, tmp_path):
    calib = np.random.default_rng(4).standard_normal((32, 8, 20, 20)).astype(np.float32)
    for budget in (0.05, 0.3, 0.7):  # (random weights: even rank 3/4 of full loses 0.45 of the output)
        r = compile_onnx(three_convs, tmp_path / "m.esb", separable="auto", calib=calib, max_output_error=budget,
                         min_speedup=0)
        assert r["plan"]["passes"] == ["separable"]
        assert r["plan"]["final"]["ok"] and r["plan"]["final"]["signal"] <= budget
    assert any(u["choice"] != "dense" for u in r["plan"]["units"])  # at the loose budget something is split


@pytest.mark.usefixtures("mac_costs")
def test_auto_on_real_digits_keeps_the_accuracy_budget(tmp_path):
    """The shipped digits CNN, calibrated on 300 held-out images, checked on the other 700."""
    from edgesep.demo import _data

    onnx_path, images, labels = _data()
    compile_onnx(onnx_path, tmp_path / "dense.esb")
    r = compile_onnx(onnx_path, tmp_path / "d.esb", separable="auto", calib=images[:300], labels=labels[:300],
                     max_accuracy_drop=0.02, min_speedup=0)
    assert r["plan"]["final"]["ok"] and r["plan"]["final"]["bound"] <= 0.02
    assert sum(u["choice"] != "dense" for u in r["plan"]["units"]) >= 2
    held_out = lambda path: (edgesep.load(path).run(images[300:]).argmax(1) == labels[300:]).mean()  # noqa: E731
    assert held_out(tmp_path / "d.esb") >= held_out(tmp_path / "dense.esb") - 0.02


@pytest.mark.parametrize("spec", ["energy", "energy=0", "ratio=2", "fast", "auto=1"])
def test_bad_specs_are_refused(three_convs, tmp_path, spec):
    with pytest.raises(CompileError, match="--separable"):
        compile_onnx(three_convs, tmp_path / "m.esb", separable=spec)


def test_auto_needs_calibration_and_budget(three_convs, tmp_path):
    with pytest.raises(CompileError, match="needs calibration data"):
        compile_onnx(three_convs, tmp_path / "m.esb", separable="auto")
    calib = np.zeros((4, 8, 20, 20), np.float32)
    with pytest.raises(CompileError, match="--max-accuracy-drop needs --labels"):
        compile_onnx(three_convs, tmp_path / "m.esb", separable="auto", calib=calib, max_accuracy_drop=0.01)
    with pytest.raises(CompileError, match="shaped like input"):
        compile_onnx(three_convs, tmp_path / "m.esb", separable="auto", calib=calib[:, :3], max_output_error=0.1)
    assert Spec.parse("auto") == Spec("auto")


def test_rank_one_pair_on_a_single_channel_input(tmp_path):
    """A 1-channel first conv split to rank 1, in whichever form measured faster: a fused node keeps
    both weights packed; two convs store the 1-in, 1-out vertical one plain (the depthwise rule)."""
    proto = model([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])], [1, 9, 9], {"W": w(16, 1, 3, 3)})
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    r = compile_onnx(path, tmp_path / "m.esb", separable="ratio=0.5", min_speedup=0)
    assert r["separable"][0]["rank"] == 1
    b = read_bundle(tmp_path / "m.esb")

    def weight(n, key):
        return b.weight(n["weights"][key])

    nodes = [n for n in b.graph["nodes"] if not is_layout_change(n)]
    if nodes[0]["op"] == "SeparableConv":
        v, h = weight(nodes[0], "vertical"), weight(nodes[0], "horizontal")
        assert [t["layout"] for t in b.tensors[:2]] == ["conv_nhwc16", "conv_nhwc16"]
    else:
        v, h = weight(nodes[0], "weight"), weight(nodes[1], "weight")
    x = np.random.default_rng(5).standard_normal((2, 1, 9, 9)).astype(np.float32)
    ref = conv_np(conv_np(x, v, None, (1, 1), (1, 0, 1, 0)), h, None, (1, 1), (0, 1, 0, 1))
    np.testing.assert_allclose(edgesep.load(tmp_path / "m.esb").run(x), ref, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("pads,act,stride,kernel", [
    ((1, 1, 1, 1), "relu", (1, 1), (3, 3)), ((0, 2, 1, 0), "none", (1, 1), (3, 3)), ((2, 0, 0, 1), "clip", (1, 1), (3, 3)),
    ((1, 1, 1, 1), "relu", (2, 2), (3, 3)), ((0, 1, 1, 0), "none", (2, 2), (3, 3)), ((2, 2, 2, 2), "clip", (2, 2), (5, 5)),
    ((0, 1, 0, 2), "none", (2, 2), (2, 4)), ((1, 1, 1, 1), "relu", (2, 1), (3, 3)), ((3, 3, 3, 3), "none", (1, 2), (7, 7)),
    ((1, 0, 0, 1), "none", (3, 3), (5, 2))])
def test_fused_node_equals_the_numpy_composition(pads, act, stride, kernel):
    """The SeparableConv node on the runtime (every kernel variant, stride 1 to 3), against the two
    passes in numpy."""
    from edgesep.compiler.separable import runtime_form

    c, n, k, (kh, kw), (sh, sw) = 6, 10, 4, kernel, stride
    wt, b = w(n, c, kh, kw), w(n)
    attrs = {"kernel_shape": [kh, kw], "strides": list(stride), "pads": list(pads), "dilations": [1, 1], "group": 1,
             "out_channels": n, "activation": act}
    if act == "clip":
        attrs.update(clip_min=-0.5, clip_max=0.5)
    conv = Node("Conv", "c", ["x"], "y", attrs, {"weight": wt, "bias": b})
    oh, ow = (12 + pads[0] + pads[2] - kh) // sh + 1, (17 + pads[1] + pads[3] - kw) // sw + 1
    layer = Layer(conv, (1, c, 12, 17), (1, n, oh, ow))
    v, h, _ = split(wt, k)
    nodes = runtime_form(layer, v, h, None)
    assert [x.op for x in nodes] == ["SeparableConv"]
    x = np.random.default_rng(6).standard_normal((3, c, 12, 17)).astype(np.float32)
    ref = conv_np(conv_np(x, v, None, (sh, 1), (pads[0], 0, pads[2], 0)), h, b, (1, sw), (0, pads[1], 0, pads[3]))
    assert ref.shape == (3, n, oh, ow)
    ref = {"relu": np.maximum(ref, 0), "none": ref, "clip": np.clip(ref, -0.5, 0.5)}[act]
    g = Graph([("x", [None, c, 12, 17])], ["y"], nodes)
    for isa in edgesep.available_isas():
        got = model_of(g, num_threads=2, isa=isa).run(x)
        np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max(), err_msg=isa)


def test_phase_ordered_weights_round_trip_and_are_checked_against_the_stride(tmp_path):
    """A strided pair's weights are stored phase by phase; the bundle reader rejects a node whose
    stride does not match the order its weights were stored in."""
    from edgesep.bundle import BundleError, pack_conv_mr6
    from edgesep.compiler.lower import write_bundle
    from edgesep.compiler.separable import runtime_form

    v = w(7, 5, 5, 1)
    for phases in (1, 2, 3):
        packed = pack_conv_mr6(v, 1, phases)
        assert packed.size == 12 * 5 * 5
        np.testing.assert_array_equal(unpack_conv_mr6(packed, list(v.shape), 1, phases), v)
    np.testing.assert_array_equal(pack_conv_mr6(v, 1, 2)[:12 * 5 * 3].reshape(2, 15, 6)[0, :3, 0], v[0, 0, ::2, 0])
    conv = Node("Conv", "c", ["x"], "y", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                           "dilations": [1, 1], "group": 1, "out_channels": 4}, {"weight": w(4, 3, 3, 3)})
    vs, hs, _ = split(conv.weights["weight"], 2)
    nodes = runtime_form(Layer(conv, (1, 3, 8, 8), (1, 4, 4, 4)), vs, hs, None)
    path = tmp_path / "m.esb"
    write_bundle(Graph([("x", [1, 3, 8, 8])], ["y"], nodes), path, layout="nchw")  # (NHWC stores no phases)
    read_bundle(path)
    data = path.read_bytes()
    assert data.count(b'"strides":[2,2]') == 1
    raw = bytearray(data.replace(b'"strides":[2,2]', b'"strides":[1,2]'))  # same length: the header stays valid
    (hlen,) = struct.unpack_from("<Q", raw, 16)
    struct.pack_into("<I", raw, 12, zlib.crc32(raw[32:32 + hlen]))  # and its checksum is rewritten
    path.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="'vertical' is stored in 2 tap phases, the node's stride is 1"):
        read_bundle(path)


def test_a_budget_is_checked_on_calibration_inputs_the_refits_did_not_see():
    """Half the inputs are held out by default, every fifth at 0.2 (whole batches where the model fixes
    one; the last batch when there would be none); one batch cannot be split."""
    from edgesep.compiler import _hold_out

    fit, check = _hold_out(12, None)
    assert check.tolist() == [1, 3, 5, 7, 9, 11] and sorted(fit.tolist() + check.tolist()) == list(range(12))
    fit, check = _hold_out(12, None, 0.2)
    assert check.tolist() == [4, 9] and sorted(fit.tolist() + check.tolist()) == list(range(12))
    fit, check = _hold_out(33, 11, 0.2)
    assert check.tolist() == list(range(22, 33)) and fit.tolist() == list(range(22))
    with pytest.raises(CompileError, match="at least 22"):
        _hold_out(11, 11)
    for fraction in (0.2, 1 / 3, 0.5, 0.9):  # (--check-fraction) evenly spread, as many as asked
        fit, check = _hold_out(500, None, fraction)
        assert len(check) == int(500 * fraction + 1e-9) and sorted(fit.tolist() + check.tolist()) == list(range(500))
        assert np.diff(check).max() <= int(np.ceil(1 / fraction))
    fit, check = _hold_out(3, None, 0.2)  # (fewer than five: the last one)
    assert check.tolist() == [2]
    with pytest.raises(CompileError, match="check-fraction"):
        _hold_out(100, None, 1.0)


def test_the_planner_offers_a_rank_only_where_it_times_faster_than_every_higher_one(three_convs):
    """A lower rank costs accuracy, so it is an option only where it buys time: with layer times that stop
    falling below rank 4 (as a kernel's block of output channels makes them), ranks under 4 are not
    offered, and the options' times fall strictly as their ranks do."""
    from edgesep.compiler.onnx_import import import_onnx
    from edgesep.compiler.passes import cleanup
    from edgesep.compiler.separable import Planner

    g = import_onnx(onnx.load(str(three_convs)))
    cleanup(g)

    class Timer:  # a pair's time by its rank: flat below rank 4; a dense conv's: 1
        def __call__(self, nodes, shape):
            if len(nodes) == 1 and nodes[0].op == "Conv":
                return 1.0
            k = nodes[0].weights["vertical" if nodes[0].op == "SeparableConv" else "weight"].shape[0]
            return 0.1 + 0.01 * max(k, 4)

    units = Planner().units(g, Timer())
    assert units
    for u in units:
        ranks = [o.setting[0] for o in u.options]
        times = [o.seconds for o in u.options]
        assert min(ranks) == 4 and ranks == sorted(ranks), ranks
        assert all(a < b for a, b in zip(times, times[1:])), times
