"""Structured filter pruning (compiler/prune.py) on torch exports: channel groups on residual,
depthwise and Concat nets; ratio 0 is the identity; a pruned graph stays valid and runs; the
least-squares refit brings the pruned network closer to the original on calibration data."""
from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgesep.compiler import plan as P
from edgesep.compiler.execute import Stage, model_of, run
from edgesep.compiler.onnx_import import import_onnx
from edgesep.compiler.passes import cleanup
from edgesep.compiler.prune import (RIDGE, Planner, Spec, channel_groups, kept_at, prune, remove_channels, ridge_inverse,
                                    ridge_solve, scores, underdetermined)


def graph_of(module: nn.Module, shape: tuple, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "m.onnx"
    torch.onnx.export(module.eval(), torch.randn(*shape), path, dynamo=False, opset_version=13, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    g = import_onnx(onnx.load(path), None)
    cleanup(g)
    return g


def outputs(g, x):
    return run(model_of(g), x)[0]


class Block(nn.Module):
    """A ResNet basic block: the residual Add ties the input's and the output's channels."""

    def __init__(self, c):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.b(torch.relu(self.a(x))))


def resnet_like():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), Block(16), Block(16), nn.MaxPool2d(2),
                         nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(24, 10))


class Inverted(nn.Module):
    """A MobileNetV2 block: expand 1x1, depthwise 3x3, project 1x1, residual."""

    def __init__(self, c, e):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, e, 1), nn.ReLU6(), nn.Conv2d(e, e, 3, padding=1, groups=e), nn.ReLU6(),
                                  nn.Conv2d(e, c, 1))

    def forward(self, x):
        return x + self.body(x)


def mobilenet_like():
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU6(), Inverted(16, 48), Inverted(16, 48),
                         nn.Conv2d(16, 32, 1), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


class Fire(nn.Module):
    """SqueezeNet's fire module: squeeze 1x1, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, cin, s, e):
        super().__init__()
        self.squeeze, self.e1, self.e3 = nn.Conv2d(cin, s, 1), nn.Conv2d(s, e, 1), nn.Conv2d(s, e, 3, padding=1)

    def forward(self, x):
        s = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.e1(s)), torch.relu(self.e3(s))], 1)


class Inception(nn.Module):
    """Three branches concatenated, one of them a pool + 1x1, the output through a depthwise conv and
    a per-channel scale before the next conv reads it."""

    def __init__(self, cin):
        super().__init__()
        self.a, self.b = nn.Conv2d(cin, 8, 1), nn.Sequential(nn.Conv2d(cin, 6, 1), nn.ReLU(), nn.Conv2d(6, 12, 3, padding=1))
        self.c = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, 4, 1))
        self.dw = nn.Conv2d(24, 24, 3, padding=1, groups=24, bias=False)  # a dead channel stays zero
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 24).reshape(1, 24, 1, 1))

    def forward(self, x):
        y = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x)), self.c(x)], 1)
        return torch.relu(self.dw(y)) * self.scale


def concat_net():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), Fire(16, 8, 16), Fire(32, 8, 16), nn.Conv2d(32, 10, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


def inception_net():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), Inception(16), nn.Conv2d(24, 10, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(10, 10))


def vgg_like():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))


X3 = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)


def by_producer(groups):
    return {p.name: grp for grp in groups for p in grp.producers}


def test_residual_groups_tie_every_block(tmp_path):
    g = graph_of(resnet_like(), (1, 3, 16, 16), tmp_path)
    groups = channel_groups(g)
    stream = [grp for grp in groups if len(grp.producers) == 3]
    assert len(stream) == 1  # the stem conv and both blocks' second convs make one channel set
    assert stream[0].why_not is None and len(stream[0].consumers) == 3  # two blocks' first convs + the 16->24 conv
    inner = [grp for grp in groups if len(grp.producers) == 1 and grp.why_not is None]
    assert len(inner) == 3  # each block's first conv, and the 24-channel conv before GAP + Flatten + Fc
    assert [grp for grp in groups if grp.why_not] and all("graph output" in grp.why_not for grp in groups if grp.why_not)


def test_depthwise_follows_its_input(tmp_path):
    g = graph_of(mobilenet_like(), (1, 3, 32, 32), tmp_path)
    groups = channel_groups(g)
    expand = [grp for grp in groups if any(t.attrs.get("group", 1) > 1 for t in grp.tied)]
    assert len(expand) == 2 and all(grp.channels == 48 and grp.why_not is None for grp in expand)


def test_concat_joins_its_inputs_groups(tmp_path):
    g = graph_of(concat_net(), (1, 3, 16, 16), tmp_path)
    groups = by_producer(channel_groups(g))
    assert all(grp.why_not is None for name, grp in groups.items() if "/e" in name)
    for fire, reader in (("2", "3/squeeze"), ("3", "4")):  # each expand is read, through the Concat, by the next conv
        for e in ("e1", "e3"):
            grp = next(grp for name, grp in groups.items() if f"/{fire}/{e}/" in name)
            assert [c.name for c in grp.readers()] == [next(n.name for n in g.nodes if f"/{reader}/" in n.name)]


@pytest.mark.parametrize("net,shape", [(concat_net, (1, 3, 16, 16)), (inception_net, (1, 3, 12, 12))])
def test_removing_dead_channels_through_a_concat_is_exact(tmp_path, net, shape):
    """Channels whose filters make exact zeros can go without changing the output: the offsets of every
    segment of the Concat, the depthwise filters and per-channel scale after it, and the next conv's
    input channels all follow."""
    g = graph_of(net(), shape, tmp_path)
    x = np.random.default_rng(0).standard_normal((3, *shape[1:])).astype(np.float32)
    groups = [grp for grp in channel_groups(g) if grp.joins]
    assert len(groups) >= 3 and all(grp.why_not is None for grp in groups)
    dead = {}
    for i, grp in enumerate(groups):
        dead[grp.name] = np.arange(i % 2, grp.channels, 3)  # a different pattern per segment
        for p in grp.producers:
            for key in ("weight", "bias"):
                p.weights[key] = p.weights[key].copy()
                p.weights[key][dead[grp.name]] = 0
    want = outputs(g, x)
    for grp in groups:
        remove_channels(g, grp, np.setdiff1d(np.arange(grp.channels), dead[grp.name]))
    got = outputs(g, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("net,shape", [(resnet_like, (1, 3, 16, 16)), (mobilenet_like, (1, 3, 32, 32)),
                                       (concat_net, (1, 3, 16, 16)), (inception_net, (1, 3, 12, 12)),
                                       (vgg_like, (1, 1, 28, 28))])
def test_ratio_zero_is_the_identity_and_half_stays_valid(tmp_path, net, shape):
    g = graph_of(net(), shape, tmp_path)
    x = np.random.default_rng(0).standard_normal((4, *shape[1:])).astype(np.float32)
    want = outputs(g, x)
    g0 = copy.deepcopy(g)
    prune(g0, 0.0)
    np.testing.assert_array_equal(outputs(g0, x), want)
    rows = prune(g, 0.5)
    assert any(r["status"].startswith("pruned") for r in rows)
    got = outputs(g, x)  # the pruned graph builds and runs
    assert got.shape == want.shape and np.isfinite(got).all()


def test_flatten_then_fc_loses_the_channel_columns(tmp_path):
    g = graph_of(vgg_like(), (1, 1, 28, 28), tmp_path)
    grp = next(grp for grp in channel_groups(g) if grp.channels == 32)
    assert grp.why_not is None and grp.consumers[0][1] == 49  # 7 x 7 columns per channel
    fc = grp.consumers[0][0]
    w = fc.weights["weight"].copy()
    keep = np.arange(0, 32, 4)
    remove_channels(g, grp, keep)
    assert fc.weights["weight"].shape == (64, 8 * 49)
    np.testing.assert_array_equal(fc.weights["weight"][:, 49:98], w[:, 4 * 49:5 * 49])
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    assert outputs(g, x).shape == (2, 10)


def test_mean_weight_ranks_like_l1_within_a_layer(tmp_path):
    g = graph_of(vgg_like(), (1, 1, 28, 28), tmp_path)
    grp = channel_groups(g)[0]
    np.testing.assert_array_equal(np.argsort(scores(g, grp, "mean")), np.argsort(scores(g, grp, "l1")))


def test_refit_brings_the_pruned_network_closer(tmp_path):
    g = graph_of(vgg_like(), (1, 1, 28, 28), tmp_path)
    calib = np.random.default_rng(1).standard_normal((64, 1, 28, 28)).astype(np.float32)
    check = np.random.default_rng(2).standard_normal((32, 1, 28, 28)).astype(np.float32)
    want = outputs(g, check)
    plain, fitted = copy.deepcopy(g), copy.deepcopy(g)
    prune(plain, 0.5)
    rows = prune(fitted, 0.5, calib=calib)
    assert all(r["status"] == "pruned + refit" for r in rows if r["status"].startswith("pruned"))

    def err(h):
        return np.linalg.norm(outputs(h, check) - want) / np.linalg.norm(want)

    assert err(fitted) < 0.5 * err(plain)


def test_cli_prunes_and_reports(tmp_path):
    from edgesep.cli import main

    net = vgg_like()
    torch.onnx.export(net.eval(), torch.randn(1, 1, 28, 28), tmp_path / "m.onnx", dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    calib = np.random.default_rng(0).standard_normal((40, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", calib)
    main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.esb"), "--prune", "0.5,round=1", "--calib",
          str(tmp_path / "x.npy")])
    import edgesep

    m = edgesep.load(tmp_path / "m.esb")
    pr = m.header["report"]["prune"]
    assert pr["refit"] and pr["macs_after"] < 0.5 * pr["macs_before"]
    assert m.run(calib[:2]).shape == (2, 10)


@pytest.mark.parametrize("spec", ["1.0", "-0.1", "x", "0.3,score=max", "0.3,foo=1"])
def test_bad_prune_specs_are_compile_errors(spec):
    from edgesep.compiler import CompileError
    from edgesep.compiler.prune import Spec

    with pytest.raises(CompileError, match="--prune"):
        Spec.parse(spec)


def test_kept_channels_round_to_the_block(tmp_path):
    g = graph_of(resnet_like(), (1, 3, 16, 16), tmp_path)
    rows = {r["group"]: r for r in prune(g, 0.3, round_to=8)}
    assert all(r["kept"] % 8 == 0 for r in rows.values() if r["status"].startswith("pruned"))
    assert all(r["kept"] <= r["channels"] for r in rows.values())


@pytest.mark.usefixtures("mac_costs")
def test_auto_keeps_the_budget_on_the_checked_inputs(tmp_path):
    from edgesep.compiler import compile_onnx

    net = vgg_like()
    torch.onnx.export(net.eval(), torch.randn(1, 1, 28, 28), tmp_path / "m.onnx", dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    calib = np.random.default_rng(0).standard_normal((60, 1, 28, 28)).astype(np.float32)
    rep = compile_onnx(tmp_path / "m.onnx", tmp_path / "m.esb", prune="auto,round=1", calib=calib,
                       max_output_error=0.3)
    plan = rep["plan"]
    assert plan["passes"] == ["prune"] and any(u["choice"] != "dense" for u in plan["units"])
    assert plan["final"]["signal"] <= 0.3  # on the fifth of the inputs the refits did not see, and copies
    assert all(t["ok"] == (t["signal"] <= 0.3) for t in plan["trials"])
    assert plan["macs_after"] < plan["macs_before"]


class Viewed(nn.Module):
    """x.view(x.size(0), -1) before the classifier: a Reshape to [0, -1], not a Flatten."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 32, 3, padding=1), nn.Linear(32 * 14 * 14, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


def test_a_view_before_the_classifier_is_a_flatten(tmp_path):
    g = graph_of(Viewed(), (1, 1, 28, 28), tmp_path)
    grp = next(grp for grp in channel_groups(g) if grp.channels == 32)
    assert grp.why_not is None and grp.consumers[0][1] == 196
    calib = np.random.default_rng(0).standard_normal((16, 1, 28, 28)).astype(np.float32)
    prune(g, 0.5, calib=calib)
    assert outputs(g, calib).shape == (16, 10)


def test_recon_removes_the_channels_the_refit_can_rebuild(tmp_path):
    """Channels 12-15 of the first conv are twice 8-11 (exactly linear through ReLU and max-pool), and
    0-7 are small filters that matter (the next conv weighs them 10x): removing four channels by
    reconstruction takes one of each pair, and the refit rebuilds the output; the Mean Weight criterion
    takes four of the small ones, which the refit cannot."""
    g = graph_of(vgg_like(), (1, 1, 28, 28), tmp_path)
    grp = channel_groups(g)[0]
    conv, reader = grp.producers[0], grp.readers()[0]
    w, b, w2 = (n.weights[k].copy() for n, k in ((conv, "weight"), (conv, "bias"), (reader, "weight")))
    w[12:], b[12:] = 2 * w[8:12], 2 * b[8:12]
    w[:8], b[:8], w2[:, :8] = 0.1 * w[:8], 0.1 * b[:8], 10 * w2[:, :8]
    conv.weights.update(weight=w, bias=b)
    reader.weights["weight"] = w2
    calib = np.random.default_rng(1).standard_normal((64, 1, 28, 28)).astype(np.float32)
    check = np.random.default_rng(2).standard_normal((16, 1, 28, 28)).astype(np.float32)
    want = outputs(g, check)
    errors = {}
    for how in ("recon", "mean"):
        h = copy.deepcopy(g)
        prune(h, {conv.name: 0.25}, how, calib)
        kept = h.nodes[g.nodes.index(conv)].weights["weight"].shape[0]
        assert kept == 12
        errors[how] = np.linalg.norm(outputs(h, check) - want) / np.linalg.norm(want)
    assert errors["recon"] < 1e-3 < 0.01 < errors["mean"], errors  # (recon: the refit's ridge term only)


@pytest.mark.parametrize("rows, cols", [(300, 40), (40, 300), (41, 41)])
def test_ridge_solve_is_the_ridge_solution_in_either_form(rows, cols):
    """The refit's least squares (A^T A + r I)^-1 A^T Y, r = RIDGE x mean(diag A^T A), solved in the dual
    form where A has fewer rows than columns: the same solution as the primal formula (float64 throughout;
    the two differ by rounding, ~1e-9 relative here, so 1e-6 is loose and still catches a wrong ridge,
    whose effect on these well-scaled rows is larger, or a transposed product)."""
    rng = np.random.default_rng(0)
    a = np.hstack([rng.standard_normal((rows, cols - 1)), np.ones((rows, 1))])
    y = rng.standard_normal((rows, 5))
    gram = a.T @ a
    want = np.linalg.solve(gram + RIDGE * np.trace(gram) / cols * np.eye(cols), a.T @ y)
    np.testing.assert_allclose(ridge_solve(a, y), want, rtol=1e-6, atol=1e-9 * np.abs(want).max())


def test_ridge_inverse_of_underdetermined_rows_is_the_inverse():
    """Woodbury's form of (A^T A + r I)^-1 for A with fewer rows than columns (correlated ReLU columns,
    as activations are): the same matrix as the inverse computed directly (its entries span 1 / r in the
    null space down to the row space's; differences ~2e-9 of the largest entry here, so 1e-6)."""
    rng = np.random.default_rng(0)
    rows, cols = 40, 300
    a = np.hstack([np.maximum(rng.standard_normal((rows, 10)) @ rng.standard_normal((10, cols - 1)), 0),
                   np.ones((rows, 1))])
    gram = a.T @ a
    want = np.linalg.inv(gram + RIDGE * np.trace(gram) / cols * np.eye(cols))
    np.testing.assert_allclose(ridge_inverse(a), want, rtol=0, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("net, shape", [(resnet_like, (1, 3, 16, 16)), (concat_net, (1, 3, 16, 16)),
                                        (vgg_like, (1, 1, 28, 28))])
def test_planner_refits_from_equations_computed_once(tmp_path, net, shape):
    """The planner refits a group's readers from their normal equations (or, underdetermined, their
    least-squares rows) computed once on the unpruned network, less the removed channels' rows and
    columns (through residuals and Concats): the same weights as a refit computed afresh on the pruned
    network."""
    g = graph_of(net(), shape, tmp_path)
    stage = Stage(g, np.random.default_rng(1).standard_normal((32, *shape[1:])).astype(np.float32))
    planner = Planner(Spec(None, None, 1))
    prunable = [grp.name for grp in channel_groups(g) if not grp.why_not]
    assert len(prunable) >= 2
    if net is vgg_like:  # (its Fc has more columns than the 32 inputs: refit in the dual form, from rows)
        assert any(underdetermined(c, stage.target(c.name)) for grp in channel_groups(g) for c in grp.readers())
    for name in prunable:
        a, b = g.copy(), g.copy()
        planner.apply(a, {name: next(kept_at(grp.channels, 0.5) for grp in channel_groups(g) if grp.name == name)}, stage)
        prune(b, {name: 0.5}, "recon", stage.x, targets=stage.target)
        changed = 0
        for m, n in zip(a.nodes, b.nodes):
            assert m.weights.keys() == n.weights.keys()
            for k in m.weights:
                np.testing.assert_allclose(m.weights[k], n.weights[k], rtol=1e-4, atol=1e-6)
                changed += m.weights[k] is not g.nodes[a.nodes.index(m)].weights.get(k)
        assert changed


@pytest.mark.parametrize("blocked", [True, False])
def test_the_planners_counts_are_rounded_where_timed_faster(tmp_path, blocked):
    """Each candidate count is offered rounded to the block and as it is; a count is an option only where
    timed faster than every larger one. With a cost in whole blocks of 16 channels the in-between counts
    go; with a cost per channel they stay."""
    g = graph_of(vgg_like(), (1, 1, 28, 28), tmp_path)

    def timer(nodes, shape):
        w = nodes[0].weights["weight"]
        size = (lambda c: -(-c // 16) * 16) if blocked else (lambda c: c)
        return 1e-9 * size(w.shape[0]) * size(w.shape[1]) * int(np.prod(w.shape[2:]))
    units = {u.name: u for u in Planner(Spec(None)).units(g, timer)}
    fc = next(u for name, u in units.items() if "Gemm" in name)  # the 64 features between the Fc layers
    assert [o.setting for o in fc.options] == ([48, 32, 16] if blocked else [56, 48, 40, 32, 24, 16])
    assert all(a.seconds > b.seconds for a, b in zip(fc.options, fc.options[1:]))


def test_a_plans_time_takes_both_groups_speed_ups_of_a_layer_between_them(tmp_path):
    """A conv whose input channels one group prunes and whose output channels the next group does is in
    both units; a plan's time takes the product of their speed-ups on it (plan.Costs). With a layer's
    time proportional to its weights, that is the pruned network's time exactly, where adding the
    units' savings would count the shared layers' savings apart."""
    g = graph_of(vgg_like(), (1, 1, 28, 28), tmp_path)

    def timer(nodes, shape):
        return 1e-9 * nodes[0].weights["weight"].size
    units = Planner(Spec(None)).units(g, timer)
    assert len(units) >= 2
    costs = P.Costs(units)
    plan = {u.key: len(u.options) - 1 for u in units}  # every group at its fewest channels
    h = g.copy()
    prune(h, {}, counts={u.name: u.options[-1].setting for u in units})
    layers = set().union(*(u.times() for u in units))
    pruned = sum(timer([n], None) for n in h.nodes if n.name in layers)
    assert costs.of(plan) == pytest.approx(pruned)
    added = costs.of({}) - sum(u.dense_seconds - u.options[-1].seconds for u in units)
    assert added < 0.8 * pruned  # (the additive estimate: far below the truth, here negative)
    for u in units:
        for j, o in enumerate(u.options):
            o.signal = 0.01 * (j + 1)
    plans = P.greedy(units)
    assert all(a != b for a, b in zip(plans, plans[1:]))  # (every step changes the plan: none re-takes its option)
    times = [costs.of(p) for p in plans]
    assert times == sorted(times, reverse=True) and times[-1] == pytest.approx(pruned)
