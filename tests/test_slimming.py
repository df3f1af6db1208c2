"""Exact slimming (compiler/passes.py: fold_pad, fold_scale_after_activation, pool_first, merge_linear) on torch
exports: the slimmed bundle equals onnxruntime on the unslimmed ONNX model to float tolerance, and the
layers it removes are gone from the bundle."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PARITY_RTOL, ort_run, rel_err
from torch import nn

import edgesep
from edgesep.compiler import compile_onnx


def randomize_batchnorm(module: nn.Module) -> nn.Module:
    """BatchNorm statistics and (positive) scales away from the identity."""
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    return module.eval()


def export(module: nn.Module, shape: tuple, path) -> None:
    torch.onnx.export(module, torch.randn(*shape), path, dynamo=False, opset_version=13, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}}, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE)


def compiled(module: nn.Module, shape: tuple, tmp_path, layout: str = "nhwc") -> tuple[edgesep.Model, dict]:
    export(module, shape, tmp_path / "m.onnx")
    report = compile_onnx(tmp_path / "m.onnx", tmp_path / "m.esb", layout=layout)
    m = edgesep.load(tmp_path / "m.esb", num_threads=1)
    x = np.random.default_rng(1).standard_normal((3, *shape[1:])).astype(np.float32)
    want = ort_run(tmp_path / "m.onnx", {"x": x})[0]
    assert rel_err(m.run(x), want) <= PARITY_RTOL
    return m, report["cleanup"]


def ops(m: edgesep.Model) -> list[str]:
    return [n["op"] for n in m.header["graph"]["nodes"] if n["op"] != "Transpose"]


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_crepe_block_batchnorm_after_relu(tmp_path, layout):
    """CREPE's layers: conv -> ReLU -> BN -> max-pool. The BN's scale goes into the conv before the
    ReLU; its shift moves through the pool into the pad-free conv after it."""
    net = nn.Sequential(nn.Conv2d(1, 16, (64, 1), (4, 1), (32, 0)), nn.ReLU(), nn.BatchNorm2d(16), nn.MaxPool2d((2, 1)),
                        nn.Conv2d(16, 8, (9, 1)), nn.ReLU(), nn.BatchNorm2d(8), nn.MaxPool2d((2, 1)),
                        nn.Flatten(), nn.Linear(8 * 28, 10))
    m, report = compiled(randomize_batchnorm(net), (1, 1, 512, 1), tmp_path, layout)
    assert report["scales_after_activation_folded"] == 3  # two scales, the first shift (the last has no conv)
    assert ops(m).count("Mul") == 0 and ops(m).count("Add") == 1


def test_negative_scale_stays(tmp_path):
    net = randomize_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1)))
    net[2].weight.data[1] = -0.7  # relu(-s y) != -s relu(y)
    m, report = compiled(net, (1, 3, 9, 9), tmp_path)
    assert report["scales_after_activation_folded"] == 1  # the shift only
    assert "Mul" in ops(m)


@pytest.mark.parametrize("pool", [False, True])
def test_zero_pad_into_conv_and_average_pool(tmp_path, pool):
    net = nn.Sequential(nn.ZeroPad2d((1, 2, 0, 2)),
                        nn.AvgPool2d(3, 1, count_include_pad=True) if pool else nn.Conv2d(3, 5, 3))
    m, report = compiled(net, (1, 3, 8, 7), tmp_path)
    assert report["pads_folded"] == 1 and "Pad" not in ops(m)


def test_pad_of_a_2d_tensor_stays(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.ConstantPad1d((1, 2), 0.0), nn.Linear(3 * 4 * 4 + 3, 5))
    m, report = compiled(net, (1, 3, 4, 4), tmp_path)
    assert report["pads_folded"] == 0 and "Pad" in ops(m)


def test_nonzero_or_reflect_pad_stays(tmp_path):
    net = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(3, 5, 3), nn.ConstantPad2d(1, 0.5), nn.Conv2d(5, 2, 3))
    m, report = compiled(net, (1, 3, 8, 7), tmp_path)
    assert report["pads_folded"] == 0 and ops(m).count("Pad") == 2


def test_linear_layers_merge_where_cheaper(tmp_path):
    """1x1 (8 -> 64) then 1x1 (64 -> 8) without activation: one 8 -> 8 conv. 1x1 (64 -> 8) then 3x3
    (8 -> 64): the factorisation is cheaper, kept. Linear 1024 -> 64 -> 10: one 1024 -> 10 layer; 32 -> 8
    -> 32: kept."""
    net = nn.Sequential(nn.Conv2d(8, 64, 1), nn.Conv2d(64, 8, 1), nn.ReLU(), nn.Conv2d(8, 64, 1), nn.ReLU(),
                        nn.Conv2d(64, 8, 1), nn.Conv2d(8, 64, 3), nn.Flatten(), nn.Linear(64 * 4 * 4, 64),
                        nn.Linear(64, 10))
    m, report = compiled(net, (1, 8, 6, 6), tmp_path)
    assert report["linear_merged"] == 2
    assert ops(m).count("Conv") == 4 and ops(m).count("Fc") == 1

    net = nn.Sequential(nn.Flatten(), nn.Linear(32, 8), nn.Linear(8, 32))
    m, report = compiled(net, (1, 32, 1, 1), tmp_path)
    assert report["linear_merged"] == 0 and ops(m).count("Fc") == 2


def test_padded_conv_after_biased_1x1_is_not_merged(tmp_path):
    """Zero padding of the 1x1's output is its bias, not zero, after the merge: kept apart."""
    net = nn.Sequential(nn.Conv2d(4, 16, 1), nn.Conv2d(16, 2, 3, padding=1))
    m, report = compiled(net, (1, 4, 5, 5), tmp_path)
    assert report["linear_merged"] == 0


def test_average_pool_moves_before_the_1x1_conv(tmp_path):
    """DenseNet's transition (BN, ReLU, conv 1x1, AvgPool 2x2) and a head with a 1x1 conv before global
    average pooling: the pools run first and the convs on their 4x / 25x fewer pixels. A 1x1 conv with
    a ReLU, and one before a pool that counts padding, keep their order."""
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 16, 1), nn.AvgPool2d(2),
                        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 1), nn.ReLU(),
                        nn.AvgPool2d(2, ceil_mode=True),
                        nn.Conv2d(16, 12, 1), nn.AvgPool2d(3, 1, padding=1, count_include_pad=True),
                        nn.Conv2d(12, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    m, report = compiled(randomize_batchnorm(net), (1, 3, 20, 20), tmp_path)
    assert report["pools_moved_first"] == 2
    assert ops(m) == ["Conv", "AveragePool", "Conv", "Conv", "Conv", "AveragePool", "Conv", "AveragePool",
                      "GlobalAveragePool", "Conv", "Flatten"]
    convs = [r["macs"] for r in m.layers(1) if r["op"].startswith("Conv")]
    assert convs[1] == 32 * 16 * 10 * 10 and convs[-1] == 12 * 10  # on the pooled maps
