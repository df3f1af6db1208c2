"""Whole models against onnxruntime: the shipped demo model, torch exports of four classic
architectures, and real pre-trained models taken from PyPI packages (NHWC Keras exports with
PReLU and MatMul, a VGG-style PyTorch export)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import ISAS, PARITY_RTOL, ort_run, rel_err

import edgesep
import zoo


def check(bundle, onnx_path, feeds: dict, isas=("",), threads=(1, 2)) -> None:
    want = ort_run(onnx_path, feeds)
    for isa in isas:
        for t in threads:
            model = edgesep.load(bundle, num_threads=t, isa=isa or None)
            got = model.run(feeds)
            got = list(got.values()) if isinstance(got, dict) else [got]
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.shape == w.shape
                assert rel_err(g, w) <= PARITY_RTOL, (isa, t, rel_err(g, w))


# The activation layouts: NHWC (the conv core, the default) and NCHW (the first core, which bundles of
# format 1 and 2 run on), each on every kernel variant.
LAYOUTS = ["nhwc", "nchw"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_demo_model_all_isas(compiled, layout):
    from edgesep.demo import _data

    onnx_path, images, _ = _data()
    check(compiled(onnx_path, layout=layout), onnx_path, {"image": images[:7]}, isas=ISAS)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "squeezenet1_1", "crepe_small"])
def test_torch_architectures(compiled, name):
    path = zoo.onnx_path(name)
    bundle = compiled(path)
    x = np.random.default_rng(0).standard_normal((2, *zoo.input_shape(name)[1:])).astype(np.float32)
    check(bundle, path, {"input": x})
    check(bundle, path, {"input": x[:1]}, isas=ISAS[1:], threads=(2,))


@pytest.mark.slow
def test_vgg11(compiled):
    path = zoo.onnx_path("vgg11")
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    check(compiled(path), path, {"input": x}, threads=(2,))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("key,shape", [("onet", (3, 48, 48, 3)), ("rnet", (5, 24, 24, 3))])
def test_mtcnn_keras_exports(compiled, key, shape, layout):
    path = zoo.pypi_model(key)
    bundle = compiled(path, layout=layout)
    name = edgesep.load(bundle).inputs[0].name
    x = np.random.default_rng(2).uniform(-1, 1, shape).astype(np.float32)
    check(bundle, path, {name: x}, isas=ISAS)


def test_mtcnn_pnet_fixed_spatial_dims(tmp_path):
    from edgesep.compiler import compile_onnx

    path = zoo.pypi_model("pnet")
    bundle = tmp_path / "pnet.esb"
    compile_onnx(path, bundle, {"input_1": [None, 61, 83, 3]})
    x = np.random.default_rng(3).uniform(-1, 1, (2, 61, 83, 3)).astype(np.float32)
    check(bundle, path, {"input_1": x})


@pytest.mark.parametrize("layout", LAYOUTS)
def test_meter_digits_recognizer(compiled, layout):
    path = zoo.pypi_model("meter_digits")
    bundle = compiled(path, layout=layout)
    model = edgesep.load(bundle)
    assert model.inputs[0].shape == (11, 3, 32, 20)  # exported with a fixed batch of 11
    x = np.random.default_rng(4).uniform(0, 1, (11, 3, 32, 20)).astype(np.float32)
    check(bundle, path, {model.inputs[0].name: x}, isas=ISAS)
