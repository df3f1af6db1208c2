"""Whole models, batch 1: edgesep against onnxruntime on the same ONNX file and thread count.

    python -m pytest bench/test_models.py --benchmark-group-by=param:model,param:threads
"""
from __future__ import annotations

import pytest
from conftest import ort_session, random_input

import edgesep
import zoo

MODELS = ["resnet18", "mobilenet_v2", "squeezenet1_1"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("runtime", ["edgesep", "onnxruntime"])
def test_latency(benchmark, bundle_of, runtime, model, threads):
    path = zoo.onnx_path(model)
    x = random_input((1, 3, 224, 224))
    if runtime == "edgesep":
        m = edgesep.load(bundle_of(path), num_threads=threads)
        benchmark.extra_info["isa"] = m.kernel_isa
        benchmark(m.run, x)
    else:
        sess = ort_session(path, threads)
        benchmark(sess.run, None, {"input": x})
