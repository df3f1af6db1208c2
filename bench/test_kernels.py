"""Single layers at the shapes that dominate CNNs, per kernel variant, beside onnxruntime on the same
one-layer model: dense 3x3 convs (ResNet/VGG stages), 1x1 convs and depthwise 3x3 (MobileNet).

    python -m pytest bench/test_kernels.py --benchmark-group-by=param:layer
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import ort_session, random_input
from onnx import TensorProto, helper, numpy_helper

import edgesep

# name: (C, N, H, kernel, stride, group)
LAYERS = {
    "conv3x3_64_56": (64, 64, 56, 3, 1, 1),
    "conv3x3_128_28": (128, 128, 28, 3, 1, 1),
    "conv3x3_256_14": (256, 256, 14, 3, 1, 1),
    "conv3x3_512_7": (512, 512, 7, 3, 1, 1),
    "conv1x1_96_to_24_56": (96, 24, 56, 1, 1, 1),
    "dw3x3_144_56": (144, 144, 56, 3, 1, 144),
    "dw3x3_s2_96_112": (96, 96, 112, 3, 2, 96),
    "dw3x3_960_7": (960, 960, 7, 3, 1, 960),
}


@pytest.fixture(scope="module")
def layer_model(tmp_path_factory):
    def make(name: str):
        c, n, h, k, s, g = LAYERS[name]
        w = np.random.default_rng(0).standard_normal((n, c // g, k, k)).astype(np.float32) * 0.1
        node = helper.make_node("Conv", ["x", "W"], ["y"], pads=[k // 2] * 4, strides=[s, s], group=g)
        graph = helper.make_graph([node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, h])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(w, "W")])
        path = tmp_path_factory.mktemp("layers") / f"{name}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
        return path, (1, c, h, h), 2 * n * (c // g) * k * k * (h // s) ** 2
    return make


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("runtime", ["onnxruntime"] + [f"edgesep-{isa}" for isa in edgesep.available_isas()])
def test_layer(benchmark, layer_model, bundle_of, runtime, layer):
    path, shape, flops = layer_model(layer)
    x = random_input(shape)
    benchmark.extra_info["gflop"] = flops / 1e9
    if runtime == "onnxruntime":
        sess = ort_session(path, 1)
        benchmark(sess.run, None, {"x": x})
    else:
        m = edgesep.load(bundle_of(path), num_threads=1, isa=runtime.split("-", 1)[1])
        benchmark(m.run, x)
