"""The compiler: what the clean-up passes do, and clear errors for what it cannot compile."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from test_ops import CASES, model, w

import edgesep
from edgesep.compiler import CompileError, compile_onnx
from edgesep.ops import is_layout_change


def nodes(m) -> list[dict]:
    """The bundle's nodes less the layout changes (compiler/layout.py)."""
    return [n for n in m.header["graph"]["nodes"] if not is_layout_change(n)]


def compile_case(tmp_path, proto):
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    report = compile_onnx(path, tmp_path / "m.esb")
    return report, edgesep.load(tmp_path / "m.esb")


def test_batchnorm_folds_into_conv_and_lowers_when_alone(tmp_path):
    report, m = compile_case(tmp_path, CASES["batchnorm_after_conv_and_alone"][0])
    assert report["cleanup"]["batchnorm_folded"] == 1
    # The leading BN has no conv before it: it becomes a per-channel Mul + Add.
    assert [n["op"] for n in nodes(m)] == ["Mul", "Add", "Conv"]


def test_scale_and_shift_fold_into_conv(tmp_path):
    report, m = compile_case(tmp_path, CASES["scale_and_bias_fold"][0])
    assert report["cleanup"]["affine_folded"] == 2
    assert [n["op"] for n in nodes(m)] == ["Conv"]


def test_activations_fuse_into_producers(tmp_path):
    report, m = compile_case(tmp_path, CASES["activations"][0])
    acts = [(n["op"], n["attrs"].get("activation")) for n in nodes(m)]
    assert acts == [("Conv", "leaky_relu"), ("Conv", "hard_sigmoid"), ("Conv", "hard_swish"), ("Conv", "sigmoid"),
                    ("Conv", "tanh"), ("Conv", "clip"), ("Activation", "prelu")]


def test_activation_not_fused_when_preactivation_is_an_output(tmp_path):
    _, m = compile_case(tmp_path, CASES["two_outputs"][0])
    assert [n["op"] for n in nodes(m)] == ["Conv", "Activation"]
    assert [o.name for o in m.outputs] == ["y", "z"]


def test_dynamic_batch_and_shape_arithmetic_fold(tmp_path):
    _, m = compile_case(tmp_path, CASES["reshape_shape_arithmetic"][0])
    assert m.inputs[0].shape == (None, 3, 4, 2)
    assert [n["op"] for n in nodes(m)] == ["Reshape"]
    assert m.header["graph"]["nodes"][0]["attrs"]["shape"] == [0, -1]


def test_unsupported_op_names_op_node_and_opset(tmp_path):
    proto = model([helper.make_node("Erf", ["x"], ["y"], name="my_erf")], [3], {}, opset=13)
    with pytest.raises(CompileError, match=r"Erf node 'my_erf' \(opset 13\): unsupported op"):
        compile_case(tmp_path, proto)


def test_negative_pads_are_refused_at_compile_time(tmp_path):
    """Cropping by a negative Pad is not supported: a compile error naming the node, not a bundle that
    fails to load."""
    proto = model([helper.make_node("Pad", ["x", "p"], ["y"], name="crop")], [3, 8, 8],
                  {"p": np.array([0, 0, -1, 0, 0, 0, 1, 0], np.int64)})
    with pytest.raises(CompileError, match=r"Pad node 'crop'.*negative pads"):
        compile_case(tmp_path, proto)


def test_computation_on_dynamic_batch_is_refused_clearly(tmp_path):
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "i"], ["n"], axis=0),
             helper.make_node("Mul", ["n", "two"], ["n2"], name="double_batch"),
             helper.make_node("Unsqueeze", ["n2", "ax"], ["nu"]), helper.make_node("Concat", ["nu", "m"], ["sh"], axis=0),
             helper.make_node("Reshape", ["x", "sh"], ["y"])]
    proto = model(nodes, [4], {"i": np.array(0, np.int64), "two": np.array(2, np.int64), "ax": np.array([0], np.int64),
                               "m": np.array([-1], np.int64)})
    with pytest.raises(CompileError, match="double_batch.*dynamic batch"):
        compile_case(tmp_path, proto)


def test_dynamic_spatial_dims_need_input_shape(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "t",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    with pytest.raises(CompileError, match="--input-shape"):
        compile_onnx(path, tmp_path / "m.esb")
    compile_onnx(path, tmp_path / "m.esb", {"x": [None, 3, 5, 6]})
    assert edgesep.load(tmp_path / "m.esb").inputs[0].shape == (None, 3, 5, 6)


def test_non_float_input_and_garbage_file_are_refused(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "t",
                          [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, None)])
    path = tmp_path / "u8.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    with pytest.raises(CompileError, match="UINT8"):
        compile_onnx(path, tmp_path / "m.esb")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model" * 10)
    with pytest.raises(CompileError, match="not a readable ONNX model"):
        compile_onnx(junk, tmp_path / "m.esb")


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_conv_weights_are_stored_prepacked(tmp_path, layout):
    from edgesep.bundle import read_bundle

    W = w(10, 2, 3, 3)  # 5 output channels per group: each group's panel is zero-padded (to 16 / to 6)
    D = w(10, 1, 3, 3)  # depthwise
    proto = model([helper.make_node("Conv", ["x", "W"], ["h"], group=2),
                   helper.make_node("Conv", ["h", "D"], ["y"], group=10)], [4, 5, 5], {"W": W, "D": D})
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    compile_onnx(path, tmp_path / "m.esb", layout=layout)
    b = read_bundle(tmp_path / "m.esb")
    t, d = b.tensors[0], b.tensors[1]
    assert t["groups"] == 2 and t["shape"] == [10, 2, 3, 3] and d["shape"] == [10, 1, 3, 3]
    if layout == "nhwc":
        assert t["layout"] == "conv_nhwc16" and t["nbytes"] == 4 * 2 * 16 * 18 and d["layout"] == "khwc"
        np.testing.assert_array_equal(b.tensor(0).reshape(2, 9, 2, 16)[1, 4, :, :5], W[5:, :, 1, 1].T)
        np.testing.assert_array_equal(b.tensor(1).reshape(3, 3, 10)[2, 0], D[:, 0, 2, 0])
    else:
        assert t["layout"] == "conv_mr6" and t["nbytes"] == 4 * 2 * 6 * 18 and d["layout"] == "plain"
    np.testing.assert_array_equal(b.weight(0), W)
    np.testing.assert_array_equal(b.weight(1), D)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
    assert edgesep.load(tmp_path / "m.esb").run(x).shape == (2, 10, 1, 1)


def test_an_in_memory_bundle_is_its_file(tmp_path):
    """The compiler's trial models (BundleWriter.to_bundle, no file, tensors not copied into one buffer)
    hold the same tensors and run to the same outputs, bit for bit, as the bundle written to a file."""
    from edgesep.bundle import read_bundle
    from edgesep.compiler.lower import memory_bundle, write_bundle
    from edgesep.compiler.onnx_import import import_onnx
    from edgesep.compiler.passes import cleanup

    proto = model([helper.make_node("Conv", ["x", "W", "B"], ["h"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["h"], ["r"]),
                   helper.make_node("Conv", ["r", "D"], ["d"], group=32, pads=[1, 1, 1, 1]),
                   helper.make_node("GlobalAveragePool", ["d"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
                   helper.make_node("Gemm", ["f", "F"], ["y"], transB=1)],
                  [16, 12, 12], {"W": w(32, 16, 3, 3), "B": w(32), "D": w(32, 1, 3, 3), "F": w(10, 32)})
    g = import_onnx(proto)
    cleanup(g)
    write_bundle(g, tmp_path / "m.esb")
    file, mem = read_bundle(tmp_path / "m.esb"), memory_bundle(g)
    assert [{k: v for k, v in e.items() if k != "crc32"} for e in file.tensors] == \
        [{k: v for k, v in e.items() if k != "crc32"} for e in mem.tensors] and file.graph == mem.graph
    for i in range(len(file.tensors)):
        np.testing.assert_array_equal(file.tensor(i), mem.tensor(i))
    x = np.random.default_rng(0).standard_normal((3, 16, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(edgesep.load(mem).run(x), edgesep.load(tmp_path / "m.esb").run(x))


def test_wide_3x3_convs_run_by_winograd_and_match_onnxruntime(tmp_path):
    """3x3 convs at stride 1 go to Winograd F(4x4, 3x3) where the map is large enough for its channels, to
    F(2x2, 3x3) on smaller maps from 32 channels (weights stored transformed; the stored weight unpacks to
    the original); others stay direct. Partial tiles at the right and bottom edges (30 x 29, 5 x 4)."""
    from conftest import PARITY_RTOL, ort_run, rel_err

    from edgesep.bundle import read_bundle

    W1, W2, W3 = w(64, 64, 3, 3), w(40, 64, 3, 3), w(64, 64, 3, 3)
    proto = model([helper.make_node("Conv", ["x", "W1"], ["a"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["a"], ["b"]),
                   helper.make_node("Conv", ["b", "W3"], ["c"], pads=[1, 1, 1, 1], strides=[6, 6]),
                   helper.make_node("Conv", ["c", "W2"], ["y"], pads=[1, 1, 1, 0])],
                  [64, 30, 29], {"W1": W1, "W2": W2, "W3": W3})
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    compile_onnx(path, tmp_path / "m.esb")
    b = read_bundle(tmp_path / "m.esb")
    convs = [n for n in b.graph["nodes"] if n["op"] == "Conv"]
    assert [n["attrs"].get("winograd", 0) for n in convs] == [4, 0, 2]  # the second: stride 6; the third: 5x4
    assert ([b.tensors[n["weights"]["weight"]]["layout"] for n in convs]
            == ["wino43_nhwc16", "conv_nhwc16", "wino23_nhwc16"])
    np.testing.assert_allclose(b.weight(convs[0]["weights"]["weight"]), W1, atol=1e-6)
    np.testing.assert_allclose(b.weight(convs[2]["weights"]["weight"]), W2, atol=1e-6)
    x = np.random.default_rng(0).standard_normal((3, 64, 30, 29)).astype(np.float32)
    for isa in edgesep.available_isas():
        assert rel_err(edgesep.load(tmp_path / "m.esb", isa=isa).run(x), ort_run(path, {"x": x})[0]) <= PARITY_RTOL
    compile_onnx(path, tmp_path / "direct.esb", winograd=False)  # the smaller bundle
    b = read_bundle(tmp_path / "direct.esb")
    assert not any(n["attrs"].get("winograd") for n in b.graph["nodes"])
    assert rel_err(edgesep.load(tmp_path / "direct.esb").run(x), ort_run(path, {"x": x})[0]) <= PARITY_RTOL


@pytest.mark.parametrize("channels, side, tile", [
    ((16, 16), 28, 4), ((16, 16), 14, 0), ((8, 64), 56, 0),    # F(4x4) from 16 channels on 28x28 maps,
    ((32, 32), 14, 4), ((24, 64), 14, 0), ((32, 32), 7, 4),    # from 32 on 7x7 to 27x27,
    ((256, 256), 7, 4), ((512, 512), 7, 2), ((512, 512), 14, 4),  # but not with 512 x 512 weights under 14,
    ((64, 64), 4, 2), ((32, 48), 6, 2), ((24, 24), 4, 0)])    # nor on one tile: F(2x2) there, from 32
def test_winograd_tile_by_channels_and_map(channels, side, tile):
    from edgesep.compiler.ir import Node
    from edgesep.compiler.layout import winograd_tile

    n = Node("Conv", "c", ["x"], "y", {"pads": [1, 1, 1, 1]}, {"weight": np.zeros((*channels, 3, 3), np.float32)})
    assert winograd_tile(n, [1, channels[0], side, side + 3]) == tile
    assert winograd_tile(n, [1, channels[0], "H", "W"]) == (2 if min(channels) >= 32 else 0)  # map unknown


def test_a_layer_timed_alone_runs_as_in_its_model(monkeypatch):
    """The planner times a layer as a graph of its own (execute.chain_graph): it must lower as inside its
    model (a 32-channel 3x3 conv on a 28x28 map: F(4x4), not the F(2x2) of a map unknown), and its time
    is its steps' without the layout changes at the graph's ends (profile.chain_seconds)."""
    from edgesep.compiler.execute import chain_graph, model_of
    from edgesep.compiler.ir import Node
    from edgesep.profile import chain_seconds

    conv = Node("Conv", "c", ["v"], "y", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1],
                                          "dilations": [1, 1], "group": 1, "out_channels": 32},
                {"weight": w(32, 32, 3, 3), "bias": w(32)})
    m = model_of(chain_graph([conv], (1, 32, 28, 28)))
    assert [n["attrs"].get("winograd") for n in m.header["graph"]["nodes"] if n["op"] == "Conv"] == [4]
    steps = [r["op"] for r in m.layers(1)]
    assert steps == ["Transpose", "Conv", "Transpose"]
    monkeypatch.setattr(type(m), "profile", lambda self, x, runs: [1.0, 10.0, 100.0])
    assert chain_seconds(m, np.zeros((1, 32, 28, 28), np.float32)) == 10.0


def test_winograd_on_a_small_map_splits_its_channels_across_threads(tmp_path):
    """A 7x7 map is one block of four F(4x4) tiles: with two threads its output channels are split into
    ranges, each with its own bias, fused residual and activation pass (LeakyRelu; 48 + 48 of 96), or
    written into its slice of a Concat's output (48 + 22 of 70: full vectors, a 4-wide and single lanes)."""
    from conftest import PARITY_RTOL, ort_run, rel_err

    proto = model([helper.make_node("Conv", ["x", "W1", "B1"], ["a"], pads=[1, 1, 1, 1]),
                   helper.make_node("Add", ["a", "x"], ["s"]),
                   helper.make_node("LeakyRelu", ["s"], ["t"], alpha=0.1),
                   helper.make_node("Conv", ["x", "W2", "B2"], ["u"], pads=[1, 1, 1, 1]),
                   helper.make_node("Conv", ["x", "W3"], ["v"]),
                   helper.make_node("Concat", ["u", "v"], ["y"], axis=1)],
                  [96, 7, 7], {"W1": w(96, 96, 3, 3), "B1": w(96), "W2": w(70, 96, 3, 3), "B2": w(70),
                               "W3": w(8, 96, 1, 1)}, outputs=("t", "y"))
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    compile_onnx(path, tmp_path / "m.esb")
    convs = [n for n in nodes(edgesep.load(tmp_path / "m.esb")) if n["op"] == "Conv"]
    assert [(len(n["inputs"]), n["attrs"].get("winograd"), n["attrs"].get("activation")) for n in convs] == [
        (2, 4, "leaky_relu"), (1, 4, None), (1, None, None)]
    assert [r["in_place"] for r in edgesep.load(tmp_path / "m.esb").layers(1) if r["op"] == "Concat"] == [True]
    x = np.random.default_rng(1).standard_normal((1, 96, 7, 7)).astype(np.float32)
    ref = ort_run(path, {"x": x})
    for isa in edgesep.available_isas():
        one = edgesep.load(tmp_path / "m.esb", isa=isa, num_threads=1).run(x)
        two = edgesep.load(tmp_path / "m.esb", isa=isa, num_threads=2).run(x)
        for name, r in zip(("t", "y"), ref):
            assert rel_err(one[name], r) <= PARITY_RTOL
            np.testing.assert_array_equal(two[name], one[name])  # the same sums, in the same order, per channel


def test_winograd_on_a_conv_it_cannot_run_is_refused(tmp_path):
    from test_bundle import rewrite

    path = tmp_path / "m.onnx"
    onnx.save(model([helper.make_node("Conv", ["x", "W"], ["y"])], [32, 9, 9], {"W": w(32, 32, 3, 3)}), path)
    compile_onnx(path, tmp_path / "m.esb")

    def conv(h):
        return next(n for n in h["graph"]["nodes"] if n["op"] == "Conv")
    with pytest.raises(edgesep.BundleError, match="winograd takes a 3x3 conv at stride 1"):
        edgesep.load(rewrite(tmp_path / "m.esb", lambda h: conv(h)["attrs"].update(strides=[2, 2])))
    with pytest.raises(edgesep.BundleError, match="must be stored as conv_nhwc16"):
        edgesep.load(rewrite(tmp_path / "m.esb", lambda h: conv(h)["attrs"].update(winograd=0)))


def test_residual_add_folds_into_the_conv_before_it(tmp_path):
    """relu(conv(relu(conv(x))) + x): the Add (and its ReLU) become the second conv's summed input; an Add
    that broadcasts stays an Add."""
    from conftest import PARITY_RTOL, ort_run, rel_err

    proto = model([helper.make_node("Conv", ["x", "W1"], ["a"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["a"], ["b"]),
                   helper.make_node("Conv", ["b", "W2"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Add", ["c", "x"], ["d"]),
                   helper.make_node("Relu", ["d"], ["e"]),
                   helper.make_node("Conv", ["e", "W3"], ["f"]),
                   helper.make_node("GlobalAveragePool", ["e"], ["g"]),
                   helper.make_node("Add", ["f", "g"], ["y"])],
                  [8, 6, 5], {"W1": w(8, 8, 3, 3), "W2": w(8, 8, 3, 3), "W3": w(8, 8, 1, 1)})
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    compile_onnx(path, tmp_path / "m.esb")
    m = edgesep.load(tmp_path / "m.esb")
    ops = [(n["op"], len(n["inputs"]), n["attrs"].get("activation", "none")) for n in nodes(m)]
    assert ops == [("Conv", 1, "relu"), ("Conv", 2, "relu"), ("Conv", 1, "none"), ("GlobalAveragePool", 1, "none"),
                   ("Add", 2, "none")]
    x = np.random.default_rng(0).standard_normal((2, 8, 6, 5)).astype(np.float32)
    assert rel_err(m.run(x), ort_run(path, {"x": x})[0]) <= PARITY_RTOL


def test_an_rgb_stem_reads_the_nchw_input_directly(tmp_path):
    """The first conv of an RGB model reads the NCHW input itself (its padded copy is the layout change):
    no Transpose before it; what it computes is unchanged; an unknown input_layout is refused."""
    from conftest import PARITY_RTOL, ort_run, rel_err
    from test_bundle import rewrite

    proto = model([helper.make_node("Conv", ["x", "W1"], ["a"], pads=[1, 2, 1, 0], strides=[2, 1]),
                   helper.make_node("Conv", ["a", "W2"], ["y"], group=2)], [3, 11, 9],
                  {"W1": w(8, 3, 3, 5), "W2": w(8, 4, 1, 1)})
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    compile_onnx(path, tmp_path / "m.esb")
    m = edgesep.load(tmp_path / "m.esb")
    first = m.header["graph"]["nodes"][0]
    assert first["op"] == "Conv" and first["attrs"]["input_layout"] == "nchw" and first["inputs"] == ["x"]
    x = np.random.default_rng(0).standard_normal((2, 3, 11, 9)).astype(np.float32)
    for isa in edgesep.available_isas():
        assert rel_err(edgesep.load(tmp_path / "m.esb", isa=isa).run(x), ort_run(path, {"x": x})[0]) <= PARITY_RTOL
    with pytest.raises(edgesep.BundleError, match="unknown input_layout 'hwcn'"):
        edgesep.load(rewrite(tmp_path / "m.esb", lambda h: h["graph"]["nodes"][0]["attrs"].update(input_layout="hwcn")))
