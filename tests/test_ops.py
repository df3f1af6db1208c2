"""Each op the importer maps, on small ONNX graphs written by hand, against onnxruntime: every
attribute path (strides, dilations, asymmetric and auto padding, groups, ceil mode, count_include_pad,
broadcasting, opset differences), at two batch sizes, on every kernel variant, in both activation layouts."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import ISAS, PARITY_RTOL, ort_run, rel_err
from onnx import TensorProto, helper, numpy_helper

import edgesep
from edgesep.compiler import compile_onnx

RNG = np.random.default_rng(0)


def w(*shape: int, scale: float = 0.5) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def model(nodes, x_shape, inits: dict, opset: int = 13, outputs=("y",)) -> onnx.ModelProto:
    """A graph with input x ([N] + x_shape, N dynamic) and float outputs `outputs`."""
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape])],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def conv(inputs=("x", "W", "B"), out="y", **attrs):
    return helper.make_node("Conv", list(inputs), [out], **attrs)


CASES = {
    "conv3x3_pad1": (model([conv()], [4, 9, 11], {"W": w(6, 4, 3, 3), "B": w(6)}), [4, 9, 11]),
    "conv_stride2_asym_pads": (model([conv(strides=[2, 2], pads=[0, 1, 2, 1])], [3, 10, 9],
                                     {"W": w(7, 3, 3, 3), "B": w(7)}), [3, 10, 9]),
    # Windows that read only the left padding (a stride past the input; a fuzzed bundle's shape): the
    # RGB-stem path (reading the NCHW input) and the padded-rows path of a small-channel NHWC conv.
    "conv_window_in_left_padding": (model([conv(strides=[1, 255], pads=[0, 16, 0, 0])], [2, 4, 4],
                                          {"W": w(3, 2, 3, 3), "B": w(3)}), [2, 4, 4]),
    "conv_nhwc_rows_in_left_padding": (model([conv(("x", "W1"), "a"), conv(("a", "W", "B"), strides=[2, 255],
                                                                           pads=[1, 16, 0, 2])],
                                             [2, 6, 5], {"W1": w(3, 2, 1, 1), "W": w(4, 3, 3, 3), "B": w(4)}),
                                       [2, 6, 5]),
    "conv_dilated": (model([conv(dilations=[2, 3], pads=[2, 3, 2, 3])], [2, 12, 13], {"W": w(5, 2, 3, 3), "B": w(5)}),
                     [2, 12, 13]),
    "conv_grouped": (model([conv(group=2, pads=[1, 1, 1, 1])], [4, 8, 8], {"W": w(6, 2, 3, 3), "B": w(6)}), [4, 8, 8]),
    "conv_depthwise_s2": (model([conv(group=8, strides=[2, 2], pads=[1, 1, 1, 1])], [8, 15, 14],
                                {"W": w(8, 1, 3, 3), "B": w(8)}), [8, 15, 14]),
    "conv_depthwise_5x5_multiplier2": (model([conv(group=4, pads=[2, 2, 2, 2])], [4, 9, 9], {"W": w(8, 1, 5, 5), "B": w(8)}),
                                       [4, 9, 9]),
    "conv_auto_pad_same_upper": (model([conv(("x", "W"), auto_pad="SAME_UPPER", strides=[2, 2])], [3, 9, 10],
                                       {"W": w(4, 3, 4, 4)}), [3, 9, 10]),
    "conv_1x7_7x1": (model([conv(("x", "W1"), "t", pads=[0, 3, 0, 3]), conv(("t", "W2", "B"), pads=[3, 0, 3, 0])],
                           [3, 8, 10], {"W1": w(5, 3, 1, 7), "W2": w(4, 5, 7, 1), "B": w(4)}), [3, 8, 10]),
    "maxpool_ceil": (model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
                           [3, 10, 11], {}), [3, 10, 11]),
    "maxpool_pad_dilated": (model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 3], strides=[1, 2],
                                                    pads=[1, 1, 0, 1], dilations=[2, 1])], [2, 9, 9], {}, opset=12),
                            [2, 9, 9]),
    # Columns dilated: windows clipped on the left (1), inside the input (6; one kernel call a row in
    # NHWC), clipped on the right (1); then a width where every window is clipped, none inside.
    "maxpool_dilated_columns": (model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 2],
                                                        pads=[1, 2, 1, 2], dilations=[1, 2])], [2, 11, 15], {},
                                      opset=12), [2, 11, 15]),
    "maxpool_no_window_inside": (model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3],
                                                         pads=[0, 2, 0, 2], dilations=[1, 2])], [2, 5, 3], {},
                                       opset=12), [2, 5, 3]),
    # 2x2 at stride 2 (the fast path): odd sizes drop the last row and column; ceil_mode keeps them.
    "pools_2x2": (model([helper.make_node("MaxPool", ["x"], ["a"], kernel_shape=[2, 2], strides=[2, 2]),
                         helper.make_node("AveragePool", ["x"], ["b"], kernel_shape=[2, 2], strides=[2, 2]),
                         helper.make_node("Add", ["a", "b"], ["y"])], [3, 9, 13], {}), [3, 9, 13]),
    "maxpool_2x2_ceil": (model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                                                 ceil_mode=1)], [3, 9, 13], {}), [3, 9, 13]),
    "avgpool_include_pad": (model([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                                    pads=[1, 1, 1, 1], count_include_pad=1)], [3, 9, 8], {}), [3, 9, 8]),
    "avgpool_exclude_pad": (model([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 1],
                                                    pads=[1, 0, 1, 1])], [3, 9, 8], {}), [3, 9, 8]),
    "global_pools": (model([helper.make_node("GlobalAveragePool", ["x"], ["a"]),
                            helper.make_node("GlobalMaxPool", ["x"], ["b"]),
                            helper.make_node("Add", ["a", "b"], ["y"])], [5, 6, 7], {}), [5, 6, 7]),
    "gemm_transB_alpha_beta": (model([helper.make_node("Flatten", ["x"], ["f"]),
                                      helper.make_node("Gemm", ["f", "W", "B"], ["y"], transB=1, alpha=0.5, beta=2.0)],
                                     [3, 4, 4], {"W": w(10, 48), "B": w(10)}), [3, 4, 4]),
    "matmul_add": (model([helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["m"]),
                          helper.make_node("Add", ["m", "B"], ["y"])], [2, 3, 5], {"W": w(30, 9), "B": w(9)}), [2, 3, 5]),
    "batchnorm_after_conv_and_alone": (model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["n"]),
                                              conv(("n", "W"), "c", pads=[1, 1, 1, 1]),
                                              helper.make_node("BatchNormalization", ["c", "s2", "b2", "m2", "v2"], ["y"],
                                                               epsilon=1e-3)],
                                             [3, 6, 6], {"s": w(3), "b": w(3), "m": w(3), "v": np.abs(w(3)) + 0.5,
                                                         "W": w(4, 3, 3, 3), "s2": w(4), "b2": w(4), "m2": w(4),
                                                         "v2": np.abs(w(4)) + 0.5}), [3, 6, 6]),
    "scale_and_bias_fold": (model([conv(("x", "W"), "y0"), helper.make_node("Mul", ["y0", "S"], ["y1"]),
                                   helper.make_node("Sub", ["y1", "T"], ["y"])], [3, 5, 5],
                                  {"W": w(4, 3, 1, 1), "S": w(4, 1, 1), "T": w(1, 4, 1, 1)}), [3, 5, 5]),
    "activations": (model([conv(("x", "W", "B"), "c0", pads=[1, 1, 1, 1]),
                           helper.make_node("LeakyRelu", ["c0"], ["a1"], alpha=0.2),
                           conv(("a1", "W2"), "c1"), helper.make_node("HardSigmoid", ["c1"], ["a2"], alpha=0.3, beta=0.4),
                           conv(("a2", "W2"), "c2"), helper.make_node("HardSwish", ["c2"], ["a3"]),
                           conv(("a3", "W2"), "c3"), helper.make_node("Sigmoid", ["c3"], ["a4"]),
                           conv(("a4", "W2"), "c4"), helper.make_node("Tanh", ["c4"], ["a5"]),
                           conv(("a5", "W2"), "c5"), helper.make_node("Clip", ["c5", "lo", "hi"], ["a6"]),
                           helper.make_node("PRelu", ["a6", "slope"], ["y"])],
                          [3, 6, 5], {"W": w(4, 3, 3, 3), "B": w(4), "W2": w(4, 4, 1, 1, scale=1.0),
                                      "lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32),
                                      "slope": w(4, 1, 1)}, opset=14), [3, 6, 5]),
    "clip_opset10_attrs": (model([helper.make_node("Clip", ["x"], ["y"], min=-0.3, max=0.4)], [3, 4], {}, opset=10), [3, 4]),
    "relu6_standalone_and_add_relu": (model([helper.make_node("Clip", ["x", "z", "six"], ["c"]),
                                             helper.make_node("Add", ["c", "x"], ["s"]),
                                             helper.make_node("Relu", ["s"], ["y"])], [3, 4, 4],
                                            {"z": np.array(0, np.float32), "six": np.array(6, np.float32)}), [3, 4, 4]),
    "binary_broadcasts": (model([helper.make_node("Mul", ["x", "C1"], ["a"]), helper.make_node("Div", ["C2", "a"], ["b"]),
                                 helper.make_node("Max", ["b", "x"], ["c"]), helper.make_node("Min", ["c", "C3"], ["d"]),
                                 helper.make_node("Sub", ["C4", "d"], ["y"])], [3, 4, 5],
                                {"C1": w(3, 1, 1), "C2": np.abs(w(1, 5)) + 1, "C3": w(4, 1), "C4": w(5)}), [3, 4, 5]),
    "concat_transpose_nhwc": (model([helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
                                     conv(("t", "W"), "c", pads=[1, 1, 1, 1]),
                                     helper.make_node("Concat", ["c", "t"], ["y"], axis=1)], [7, 6, 3],
                                    {"W": w(5, 3, 3, 3)}), [7, 6, 3]),
    # A fire module (SqueezeNet): a 1x1 and a 3x3 conv (Winograd, 32 channels) concatenated by channel,
    # each writing its part of the Concat's output in place; the same where a part is read again (an
    # Add) or is a graph output, where the Concat copies as before.
    "concat_in_place_fire": (model([conv(("x", "Ws"), "s"), helper.make_node("Relu", ["s"], ["r"]),
                                    conv(("r", "W1", "B1"), "e1"), conv(("r", "W3", "B3"), "e3", pads=[1, 1, 1, 1]),
                                    helper.make_node("Concat", ["e1", "e3"], ["c"], axis=1),
                                    conv(("c", "Wo"), "y")], [5, 10, 9],
                                   {"Ws": w(32, 5, 1, 1), "W1": w(24, 32, 1, 1), "B1": w(24), "W3": w(40, 32, 3, 3),
                                    "B3": w(40), "Wo": w(8, 64, 1, 1)}), [5, 10, 9]),
    "concat_parts_read_again": (model([conv(("x", "W1"), "e1"), conv(("x", "W3"), "e3", pads=[1, 1, 1, 1]),
                                       helper.make_node("Concat", ["e1", "e3"], ["c"], axis=1),
                                       helper.make_node("Add", ["e1", "e3"], ["a"]),
                                       helper.make_node("Concat", ["c", "a"], ["y"], axis=1)], [3, 6, 7],
                                      {"W1": w(4, 3, 1, 1), "W3": w(4, 3, 3, 3)}, outputs=("y", "e3")), [3, 6, 7]),
    "pad_modes": (model([helper.make_node("Pad", ["x", "p1", "v"], ["a"], mode="constant"),
                         helper.make_node("Pad", ["a", "p2"], ["b"], mode="reflect"),
                         helper.make_node("Pad", ["b", "p3"], ["y"], mode="edge")], [2, 5, 6],
                        {"p1": np.array([0, 0, 1, 2, 0, 1, 0, 0], np.int64), "v": np.array(0.5, np.float32),
                         "p2": np.array([0, 0, 2, 1, 0, 0, 1, 3], np.int64),
                         "p3": np.array([0, 0, 0, 2, 0, 0, 3, 0], np.int64)}), [2, 5, 6]),
    "softmax_opset11_coerced": (model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [3, 2, 4], {}, opset=11),
                                [3, 2, 4]),
    "softmax_opset13_axis": (model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [3, 2, 4], {}), [3, 2, 4]),
    "reshape_shape_arithmetic": (model([helper.make_node("Shape", ["x"], ["s"]),
                                        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
                                        helper.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
                                        helper.make_node("Concat", ["nu", "m1"], ["shape"], axis=0),
                                        helper.make_node("Reshape", ["x", "shape"], ["r"]),
                                        helper.make_node("Identity", ["r"], ["d"]),
                                        helper.make_node("Dropout", ["d"], ["y"])], [3, 4, 2],
                                       {"i0": np.array(0, np.int64), "ax": np.array([0], np.int64),
                                        "m1": np.array([-1], np.int64)}), [3, 4, 2]),
    "reduce_mean_spatial": (model([helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)], [4, 3, 5], {}),
                            [4, 3, 5]),
    "two_outputs": (model([conv(("x", "W"), "y"), helper.make_node("Relu", ["y"], ["z"])], [2, 4, 4], {"W": w(3, 2, 3, 3)},
                          outputs=("y", "z")), [2, 4, 4]),
}


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case, layout, tmp_path):
    proto, shape = CASES[case]
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    bundle = tmp_path / "m.esb"
    compile_onnx(path, bundle, layout=layout)
    for batch in (1, 3):
        x = RNG.standard_normal((batch, *shape)).astype(np.float32)
        want = ort_run(path, {"x": x})
        for isa in ISAS:
            got = edgesep.load(bundle, num_threads=2, isa=isa).run(x)
            got = list(got.values()) if isinstance(got, dict) else [got]
            for g, wv in zip(got, want):
                assert g.shape == wv.shape, (isa, batch)
                assert rel_err(g, wv) <= PARITY_RTOL, (isa, batch, rel_err(g, wv))


def test_concat_parts_are_written_in_place(tmp_path):
    """The fire module's Concat has nothing to do (its parts are written into its output); where its
    parts are read again or are outputs, the Concats copy."""
    for case, want in (("concat_in_place_fire", [True]), ("concat_parts_read_again", [False, False])):
        onnx.save(CASES[case][0], tmp_path / "m.onnx")
        compile_onnx(tmp_path / "m.onnx", tmp_path / "m.esb")
        layers = edgesep.load(tmp_path / "m.esb").layers(1)
        assert [layer["in_place"] for layer in layers if layer["op"] == "Concat"] == want, case
        assert not any(layer["in_place"] for layer in layers if layer["op"] != "Concat")
