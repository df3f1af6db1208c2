"""Approximate slimming (compiler/slim.py): a conv absorbs the pool after it. The replacement's geometry
yields the pool's output shape in every configuration; its prior is the exact merge where one exists
(an average pool without padding after a conv without activation); the least-squares fit beats the prior;
the planner applies it within the budget, never together with a split of the same conv."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import edgesep
from edgesep.compiler import compile_onnx
from edgesep.compiler import plan as P
from edgesep.compiler import slim as S
from edgesep.compiler.execute import Stage, model_of, node_shapes, run
from edgesep.compiler.ir import Graph, Node


def conv_pool(c, n, k, t, pad, pool_op, p, s, q=(0, 0), ceil=0, hw=(13, 13), activation="none"):
    """A graph: conv (kernel k, stride t, pads pad) then a pool (window p, stride s, pads q), NCHW."""
    rng = np.random.default_rng(0)
    conv = Node("Conv", "conv", ["x"], "y", {"kernel_shape": list(k), "strides": list(t), "dilations": [1, 1],
                                            "pads": [pad[0], pad[1], pad[0], pad[1]], "group": 1, "out_channels": n,
                                            "activation": activation},
                {"weight": rng.standard_normal((n, c, *k)).astype(np.float32),
                 "bias": rng.standard_normal(n).astype(np.float32)})
    attrs = {"kernel_shape": list(p), "strides": list(s), "pads": [q[0], q[1], q[0], q[1]], "ceil_mode": ceil}
    attrs.update({"dilations": [1, 1]} if pool_op == "MaxPool" else {"count_include_pad": 0})
    return Graph([("x", [None, c, *hw])], ["z"], [conv, Node(pool_op, "pool", ["y"], "z", attrs)])


GEOMETRIES = [  # kernel, conv stride, conv pads, pool window, pool stride, pool pads, ceil_mode, input
    ((3, 3), (1, 1), (1, 1), (2, 2), (2, 2), (0, 0), 0, (13, 13)),
    ((3, 3), (1, 1), (1, 1), (2, 2), (2, 2), (0, 0), 0, (28, 28)),
    ((3, 3), (1, 1), (0, 0), (3, 3), (3, 3), (0, 0), 0, (14, 11)),
    ((5, 5), (2, 2), (2, 2), (2, 2), (2, 2), (0, 0), 0, (17, 16)),
    ((1, 1), (1, 1), (0, 0), (2, 2), (2, 2), (0, 0), 0, (9, 8)),
    ((9, 1), (2, 1), (4, 0), (2, 1), (2, 1), (0, 0), 0, (64, 1)),  # a 1-D audio conv
    ((7, 7), (2, 2), (3, 3), (3, 3), (2, 2), (1, 1), 0, (32, 32)),  # ResNet's stem
    ((3, 3), (1, 1), (1, 1), (3, 3), (2, 2), (0, 0), 1, (13, 12)),  # overlapping windows, ceil mode
]


@pytest.mark.parametrize("k,t,pad,p,s,q,ceil,hw", GEOMETRIES)
@pytest.mark.parametrize("pool_op", S.POOLS)
def test_the_replacement_computes_the_pools_shape_and_averaging_is_exact(k, t, pad, p, s, q, ceil, hw, pool_op):
    g = conv_pool(3, 4, k, t, pad, pool_op, p, s, q, ceil, hw)
    shapes = node_shapes(g)
    x = np.random.default_rng(1).standard_normal((2, 3, *hw)).astype(np.float32)
    want = run(model_of(g), x)[0]
    (conv, pool, geoms), = S.candidates(g, shapes)
    assert "window" in geoms
    for kernel, geom in geoms.items():
        got = run(model_of(Graph(g.inputs, ["z"], [S.replacement(conv, pool, geom)])), x)[0]
        assert got.shape == want.shape, (kernel, geom)
        # The prior over the whole window is what an average pool after a linear conv computes, where
        # every window lies inside the conv's output (no pool padding, no window cut by ceil mode).
        if kernel == "window" and pool_op == "AveragePool" and q == (0, 0) and not ceil:
            assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("pool_op,activation", [("MaxPool", "relu"), ("AveragePool", "relu"), ("MaxPool", "none"),
                                                ("AveragePool", "none")])
def test_the_fit_beats_the_prior_on_inputs_it_did_not_see(pool_op, activation):
    """And finds the exact merge where there is one (an average pool over the window, no activation)."""
    from sklearn.datasets import load_digits

    g = conv_pool(1, 16, (3, 3), (1, 1), (1, 1), pool_op, (2, 2), (2, 2), hw=(8, 8), activation=activation)
    digits = (load_digits().images[:, None] / 16).astype(np.float32)
    fit, test = digits[:1000], digits[1000:]
    want = run(model_of(g), test)[0]
    for kernel in S.KERNELS:
        h = g.copy()
        S.Planner().apply(h, {"conv": kernel}, Stage(g, fit))
        assert [n.op for n in h.nodes] == ["Conv"] and h.nodes[0].output == "z"
        conv, pool = g.nodes
        prior = S.replacement(conv, pool, S.geometry(conv, pool, kernel, (8, 8), (4, 4)))
        err = lambda m: np.linalg.norm(run(model_of(m), test)[0] - want) / np.linalg.norm(want)
        fitted, start = err(h), err(Graph(g.inputs, ["z"], [prior]))
        if pool_op == "AveragePool" and activation == "none" and kernel == "window":
            assert fitted < 1e-4 and start < 1e-4
        else:
            assert fitted < start, (kernel, fitted, start)


def test_what_cannot_absorb_its_pool():
    g = conv_pool(4, 4, (3, 3), (1, 1), (1, 1), "MaxPool", (2, 2), (2, 2), activation="hard_swish")
    assert "not non-decreasing" in S.why_not(g, g.nodes[0])
    g = conv_pool(4, 4, (3, 3), (1, 1), (1, 1), "AveragePool", (2, 2), (2, 2), activation="sigmoid")
    assert "average pool" in S.why_not(g, g.nodes[0])
    g = conv_pool(4, 4, (3, 3), (1, 1), (1, 1), "MaxPool", (3, 3), (1, 1))
    assert "keeps the resolution" in S.why_not(g, g.nodes[0])
    g = conv_pool(4, 4, (3, 3), (1, 1), (1, 1), "MaxPool", (2, 2), (2, 2))
    g.nodes[0].attrs["group"] = 4
    assert "grouped" in S.why_not(g, g.nodes[0])
    g = conv_pool(4, 4, (3, 3), (1, 1), (1, 1), "MaxPool", (2, 2), (2, 2))
    g.outputs.append("y")
    assert "elsewhere" in S.why_not(g, g.nodes[0])


def test_a_plan_never_changes_a_layer_by_two_units():
    """A split of conv X (unit a) and X absorbing its pool (unit b) exclude each other: greedy takes the
    gentle split first, then swaps it for the absorption; a threshold takes the larger saving."""
    a = P.Unit("separable", "X", 10.0, [P.Option(0, "a0", 9.0, 0.01)], layers=frozenset({"X"}))
    b = P.Unit("slim", "X", 11.0, [P.Option(0, "b0", 5.0, 0.5)], layers=frozenset({"X", "pool"}))
    c = P.Unit("separable", "Y", 4.0, [P.Option(0, "c0", 3.0, 0.2)], layers=frozenset({"Y"}))
    units = [a, b, c]
    plans = P.greedy(units)
    assert plans[:2] == [{}, {a.key: 0}] and plans[-1] == {b.key: 0, c.key: 0}
    for plan in plans + P.threshold(units):
        assert not any(u.rivals(units, plan) for u in units if u.key in plan)
    assert P.threshold(units)[-1] == {b.key: 0, c.key: 0}
    # The sum over units counts X twice when dense; each step's saving is still the layer's.
    assert P.seconds_of({u.key: u for u in units}, plans[-1]) == pytest.approx(10.0 + 5.0 + 3.0)


class Pooled(nn.Module):
    """Two conv -> ReLU -> max-pool blocks and a classifier."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(32 * 4, 10))

    def forward(self, x):
        return self.body(x)


@pytest.mark.usefixtures("mac_costs")
def test_slim_auto_absorbs_pools_within_the_budget(tmp_path):
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    path = tmp_path / "m.onnx"
    torch.onnx.export(Pooled().eval(), torch.randn(1, 1, 8, 8), path, dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    digits = (load_digits().images[:400, None] / 16).astype(np.float32)
    # (Random weights: their features lack the spatial redundancy a trained net's have, hence the budget.)
    rep = compile_onnx(path, tmp_path / "m.esb", slim="auto", calib=digits, max_output_error=0.25)
    plan = rep["plan"]
    assert plan["passes"] == ["slim"] and {u["pass"] for u in plan["units"]} == {"slim"}
    chosen = [u for u in plan["units"] if u["choice"] != "dense"]
    assert chosen and plan["final"]["signal"] <= 0.25
    ops = [n["op"] for n in edgesep.load(tmp_path / "m.esb").header["graph"]["nodes"]]
    assert ops.count("MaxPool") == 2 - len(chosen)
