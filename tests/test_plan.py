"""The compression planner (compiler/plan.py) and layer costs (compiler/costs.py, edgesep.profile): the
confidence bound against simulation, the allocations against brute force on toy units, the perturbed
copies, a whole plan on a torch export (what was checked is what the bundle computes), manual specs as
overrides, and the cost table's round trip from `edgesep candidates` through `edgesep profile`."""
from __future__ import annotations

import itertools
import json
import math
import zipfile

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import edgesep
from edgesep.cli import main as cli
from edgesep.compiler import CompileError, _hold_out, candidates, compile_onnx
from edgesep.compiler import plan as P
from edgesep.compiler.costs import read_cost_table
from edgesep.profile import profile


def test_upper_bound_closed_form_and_coverage():
    # No events: P(X = 0) = (1 - p)^n = 1 - confidence.
    for n, c in ((100, 0.9), (400, 0.95), (37, 0.5)):
        assert P.upper_bound(0, n, c) == pytest.approx(1 - (1 - c) ** (1 / n), rel=1e-6)
    bounds = [P.upper_bound(k, 300, 0.9) for k in range(301)]
    assert all(a < b for a, b in zip(bounds, bounds[1:-1])) and bounds[-1] == 1.0
    # Coverage: over simulated event counts, the bound is at or above the true rate >= 90% of the time
    # (4000 draws: 3 standard errors = 1.4 points), and not far above it (Clopper-Pearson is conservative).
    rng = np.random.default_rng(0)
    for p in (0.003, 0.01, 0.03, 0.1):
        k = rng.binomial(300, p, 4000)
        coverage = np.mean(np.array(bounds)[k] >= p)
        assert coverage >= 0.9 - 0.014, (p, coverage)
        assert np.median(np.array(bounds)[k]) <= p + 2.5 * math.sqrt(p * (1 - p) / 300) + 3 / 300


def toy_units():
    """Three units with diminishing returns (each further option saves less time for more signal)."""
    def unit(name, dense, steps):
        u = P.Unit("toy", name, dense)
        t, s = dense, 0.0
        for saved, added in steps:
            t, s = t - saved, s + added
            u.options.append(P.Option(len(u.options), f"{name}{len(u.options)}", t, s))
        return u
    return [unit("a", 10.0, [(4, 0.1), (2, 0.3), (1, 0.9)]), unit("b", 6.0, [(3, 0.5), (1, 0.6)]),
            unit("c", 3.0, [(0.5, 0.05), (0.5, 2.0)])]


def totals(units, plan):
    return (sum(u.options[plan[u.key]].seconds if u.key in plan else u.dense_seconds for u in units),
            sum(u.options[plan[u.key]].signal for u in units if u.key in plan))


def test_greedy_plans_are_pareto_optimal_and_threshold_plans_keep_their_threshold():
    units = toy_units()
    every = [{u.key: i for u, i in zip(units, pick) if i is not None}
             for pick in itertools.product(*[[None, *range(len(u.options))] for u in units])]
    plans = P.greedy(units)
    assert plans[0] == {} and len(plans) == 1 + sum(len(u.options) for u in units)
    assert plans[1] == {"toy:a": 0}  # 4 s saved for 0.1: the best ratio first
    for plan in plans:  # no plan is faster at the same or less signal
        t, s = totals(units, plan)
        assert not any(totals(units, q)[0] < t - 1e-9 and totals(units, q)[1] <= s + 1e-9 for q in every)
    assert [totals(units, p)[0] for p in plans] == sorted((totals(units, p)[0] for p in plans), reverse=True)
    for plan in P.threshold(units)[1:]:
        t = max(u.options[i].signal for u in units for k, i in plan.items() if k == u.key)
        for u in units:  # each unit at its fastest option within the plan's threshold
            within = [o.seconds for o in u.options if o.signal <= t]
            assert (u.options[plan[u.key]].seconds if u.key in plan else None) == (min(within) if within else None)


def test_a_layer_two_units_change_takes_both_speed_ups():
    """Costs: a conv whose input channels one unit halves and whose output channels another does runs in
    a quarter of its time (channels in x out); split in two (rank K), its time goes as in + out, so the
    two sides' speed-ups are averaged before the split's own."""
    def unit(kind, name, side=None, t=5.0, split=False):
        return P.Unit(kind, name, 10.0, [P.Option(0, name, t, 0.1, parts={"x": t})], dense_parts={"x": 10.0},
                      sides={"x": side} if side else None, split=split)
    a, b, s = unit("prune", "a", "in"), unit("prune", "b", "out"), unit("separable", "x", t=4.0, split=True)
    costs = P.Costs([a, b, s])
    assert costs.of({}) == 10.0
    assert costs.of({a.key: 0}) == 5.0 and costs.of({a.key: 0, b.key: 0}) == 2.5
    assert costs.of({s.key: 0}) == 4.0
    assert costs.of({a.key: 0, s.key: 0}) == pytest.approx(10 * 0.4 * (0.5 + 1) / 2)
    assert costs.of({a.key: 0, b.key: 0, s.key: 0}) == pytest.approx(10 * 0.4 * 0.5)
    assert costs.of({a.key: 0, b.key: 0}, parts=["x"]) == 2.5


def test_no_step_retakes_a_units_option():
    """A step moves a unit to another option. Three units on one layer multiply their speed-ups in plan
    order, and (0.1 x 0.2) x 0.3 > (0.1 x 0.3) x 0.2 in floating point: a unit's own option, recomputed
    with it last, looked faster than itself and the greedy took it again and again."""
    units = [P.Unit("prune", n, 10.0, [P.Option(0, n, t, 0.1, parts={"x": t})], dense_parts={"x": 10.0})
             for n, t in (("a", 1.0), ("b", 2.0), ("c", 3.0))]
    plan = {u.key: 0 for u in units}
    assert P._steps(units, plan, P.Costs(units)) == []
    assert P.greedy(units)[-1] == plan and len(P.greedy(units)) == 4


def test_perturbed_copies_shift_by_at_most_two_pixels_and_add_the_noise(monkeypatch):
    x = np.random.default_rng(0).standard_normal((6, 2, 28, 28)).astype(np.float32)
    monkeypatch.setattr(P, "NOISE", 0.0)
    y = P.perturbed(x, copies=2)
    assert y.shape == (12, 2, 28, 28)
    pad = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    for i, img in enumerate(y):
        src = pad[i % 6]
        assert any(np.array_equal(img, src[:, 2 - dy:30 - dy, 2 - dx:30 - dx]) for dy in range(-2, 3) for dx in range(-2, 3))
    monkeypatch.setattr(P, "NOISE", 0.3)
    monkeypatch.setattr(P, "SHIFT", 0.0)
    noise = P.perturbed(x, copies=3) - np.tile(x, (3, 1, 1, 1))
    assert noise.std() == pytest.approx(0.3 * x.std(), rel=0.05)


class Net(nn.Module):
    """Convs, a pool and two Fc layers: something for every pass."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("plan") / "net.onnx"
    torch.onnx.export(Net().eval(), torch.randn(1, 1, 14, 14), path, dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    return path


def calibration(n=60):
    return np.random.default_rng(1).standard_normal((n, 1, 14, 14)).astype(np.float32)


@pytest.mark.usefixtures("mac_costs")
def test_a_plan_is_what_the_bundle_computes(net, tmp_path):
    calib = calibration()
    rep = compile_onnx(net, tmp_path / "d.esb")
    rep = compile_onnx(net, tmp_path / "p.esb", optimize="auto", calib=calib, max_output_error=0.2, min_speedup=0)
    plan = rep["plan"]
    assert plan["passes"] == ["prune", "slim", "separable", "sparse_fc"]
    assert {u["pass"] for u in plan["units"]} == {"prune", "slim", "separable", "sparse_fc"}
    assert any(u["choice"] != "dense" for u in plan["units"]) and plan["macs_after"] < plan["macs_before"]
    assert all(t["ok"] == (t["signal"] <= 0.2) for t in plan["trials"])
    # The final check, recomputed from the bundle on the same inputs (the held-out fifth and its copies).
    _, check = _hold_out(len(calib), None)
    x = np.concatenate([calib[check], P.perturbed(calib[check])])
    ref, got = (edgesep.load(tmp_path / f).run(x) for f in ("d.esb", "p.esb"))
    err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert err == pytest.approx(plan["final"]["signal"], rel=1e-3) and err <= 0.2
    assert sum(u["share"] for u in plan["units"]) == pytest.approx(1.0)


def test_a_more_compressed_plan_must_be_faster_by_the_margin():
    assert P.fastest("abcd", [1.0, 0.98, 0.90, 0.89], 0.03) == "c"  # b within 3% of a; d within 3% of c
    assert P.fastest("abc", [1.0, 0.99, 0.975], 0.03) == "a" and P.fastest("ab", [1.0, 1.2], 0.03) == "a"
    assert P.fastest("abc", [1.0, 0.5, 0.6], 0.03) == "b" and P.fastest("a", [3.0], 0.03) == "a"
    assert P.fastest("abc", [1.0, 0.99, 0.975], 0.0) == "c"


@pytest.mark.usefixtures("mac_costs")
@pytest.mark.parametrize("fastest", ["dense", "second last", "second last, the last within the margin"])
def test_the_fastest_plan_measured_is_written(net, tmp_path, monkeypatch, fastest):
    """The last MEASURED plans passed and the dense model are timed whole; the fastest is written, even
    the dense model (a plan whose layers time faster can run slower whole), but not over a less
    compressed one within MEASURE_MARGIN of it."""
    timed = []

    def whole(graphs, num_threads):
        timed.append([len(h.nodes) for h in graphs])
        seconds = [2.0] * len(graphs)
        seconds[0 if fastest == "dense" else -2] = 1.0
        if fastest.endswith("margin"):
            seconds[-1] = 1.0 - P.MEASURE_MARGIN / 2
        return seconds

    monkeypatch.setattr(P, "time_graphs", whole)
    calib = calibration()
    compile_onnx(net, tmp_path / "d.esb")
    rep = compile_onnx(net, tmp_path / "p.esb", optimize="auto", calib=calib, max_output_error=0.2, min_speedup=0)
    plan = rep["plan"]
    passed = [int(t["plan"].split("/")[0]) for t in plan["trials"] if t["ok"]]
    assert len(passed) >= 2 and len(timed) == 1 and len(timed[0]) == 1 + min(P.MEASURED, len(passed))
    assert [t["plan"] for t in plan["trials"] if "measured_ms" in t] == [t["plan"] for t in plan["trials"] if t["ok"]][-P.MEASURED:]
    want = 0 if fastest == "dense" else passed[-P.MEASURED:][-2]
    assert plan["chosen"] == want and plan["measured_ms"] == {"dense": 2000.0 if want else 1000.0, "plan": 1000.0}
    same = np.array_equal(edgesep.load(tmp_path / "p.esb").run(calib), edgesep.load(tmp_path / "d.esb").run(calib))
    assert same == (want == 0)


def test_a_top1_budget_holds_as_a_bound_and_needs_a_classifier(net, tmp_path):
    rep = compile_onnx(net, tmp_path / "p.esb", optimize="auto", calib=calibration(100), max_disagreement=0.05,
                       min_speedup=0)
    f = rep["plan"]["final"]
    assert f["inputs"] == 4 * 50 and f["bound"] <= 0.05  # (half of the 100 checked, with three copies each)
    assert f["bound"] == pytest.approx(P.upper_bound(f["events"], f["inputs"], 0.9))


def test_a_large_model_is_scored_on_fewer_inputs(net, monkeypatch):
    import onnx

    from edgesep.compiler.onnx_import import import_onnx

    g = import_onnx(onnx.load(net), None)
    macs = sum(r["macs"] for r in P.model_of(g, layout="nchw").layers(1))
    assert P.scored_inputs(g) == P.SCORED  # (a small model: all of them)
    monkeypatch.setattr(P, "SCORED_MACS", 40 * macs)
    assert P.scored_inputs(g) == 40
    monkeypatch.setattr(P, "SCORED_MACS", 3 * macs)
    assert P.scored_inputs(g) == P.MIN_SCORED


@pytest.mark.usefixtures("mac_costs")
def test_manual_specs_override_their_pass(net, tmp_path):
    rep = compile_onnx(net, tmp_path / "p.esb", optimize="auto", separable="ratio=0.5", calib=calibration(),
                       max_output_error=0.3, min_speedup=0)
    assert rep["plan"]["passes"] == ["prune", "slim", "sparse_fc"] and "separable" in rep
    assert rep["separable_spec"] == "ratio=0.5"


@pytest.mark.usefixtures("mac_costs")
def test_the_check_fraction_sets_the_check_inputs(net, tmp_path):
    rep = compile_onnx(net, tmp_path / "p.esb", optimize="auto", calib=calibration(60), max_output_error=0.2,
                       check_fraction=0.5)
    assert rep["plan"]["checked_inputs"] == 30 and rep["plan"]["final"]["signal"] <= 0.2


@pytest.mark.parametrize("kw, match", [
    (dict(optimize="auto"), "needs calibration data"),
    (dict(optimize="auto", calib=calibration(), max_disagreement=0.01, max_output_error=0.1), "give one budget"),
    (dict(optimize="auto", calib=calibration(), max_accuracy_drop=0.01), "needs --labels"),
    (dict(optimize="auto", calib=calibration(), max_disagreement=1.5), "below 1"),
    (dict(optimize="auto", calib=calibration(), max_disagreement=0.01, confidence=1.0), "--confidence"),
    (dict(optimize="fast"), "--optimize"),
    (dict(optimize="auto", calib=calibration(), max_output_error=0.1, allocation="best"), "allocation"),
    (dict(optimize="auto", calib=calibration(), max_output_error=0.1, check_fraction=0), "check-fraction"),
])
def test_bad_plans_are_refused(net, tmp_path, kw, match):
    with pytest.raises(CompileError, match=match):
        compile_onnx(net, tmp_path / "p.esb", **kw)


def test_cost_table_round_trip(net, tmp_path):
    """`edgesep candidates` here, `edgesep profile` on the device, `compile --cost-table`: every layer time
    the planner needs comes from the table."""
    n = candidates(net, tmp_path / "c.zip")
    table = profile(tmp_path / "c.zip", runs=3)
    with zipfile.ZipFile(tmp_path / "c.zip") as z:  # one time per candidate bundle, by its signature
        assert sorted(table["seconds"]) == sorted(name[:-4] for name in z.namelist()) and n > 10
    (tmp_path / "costs.json").write_text(json.dumps(table))
    rep = compile_onnx(net, tmp_path / "p.esb", optimize="auto", calib=calibration(), max_output_error=0.2,
                       cost_table=read_cost_table(tmp_path / "costs.json"))
    assert rep["plan"]["times_measured"] == 0 and rep["plan"]["times_looked_up"] > 0
    by_unit = {u["unit"]: u for u in rep["plan"]["units"]}
    assert all(math.isfinite(u["dense_ms"]) for u in by_unit.values())
    (tmp_path / "bad.json").write_text('{"seconds": {"x": -1}}')
    with pytest.raises(CompileError, match="cost-table"):
        read_cost_table(tmp_path / "bad.json")


def test_cost_table_chooses_each_convs_winograd_transform(tmp_path):
    """`edgesep candidates` offers every 3x3 conv that can run by Winograd (16+ channels) in each
    transform; a compile with the device's table runs each by the one it timed fastest, against the
    x86 rule where the table says so, and by the rule where the table lacks the conv."""
    from onnx import TensorProto, helper, numpy_helper

    from edgesep.compiler.costs import TRANSFORMS

    rng = np.random.default_rng(0)
    ws = {k: (rng.standard_normal(s) * 0.1).astype(np.float32)
          for k, s in (("A", (32, 32, 3, 3)), ("B", (64, 32, 3, 3)), ("C", (64, 64, 3, 3)))}
    graph = helper.make_graph([helper.make_node("Conv", ["x", "A"], ["a"], pads=[1, 1, 1, 1]),
                               helper.make_node("Conv", ["a", "B"], ["b"], pads=[1, 1, 1, 1], strides=[4, 4]),
                               helper.make_node("Conv", ["b", "C"], ["y"], pads=[1, 1, 1, 1])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 14, 14])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in ws.items()])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    tiles = lambda m: [n["attrs"].get("winograd", 0) for n in m.header["graph"]["nodes"] if n["op"] == "Conv"]

    assert candidates(path, tmp_path / "c.zip", passes=()) == 6  # A (14x14) and C (4x4), three ways each
    with zipfile.ZipFile(tmp_path / "c.zip") as z:
        offered = sorted(tuple(tiles(edgesep.load(z.read(n)))) for n in z.namelist())
    assert offered == sorted([(t,) for t in TRANSFORMS] * 2)
    compile_onnx(path, tmp_path / "rule.esb")
    assert tiles(edgesep.load(tmp_path / "rule.esb")) == [4, 0, 2]

    table = profile(tmp_path / "c.zip", runs=3)
    with zipfile.ZipFile(tmp_path / "c.zip") as z:  # the device says: A direct, C by F(4x4)
        for name in z.namelist():
            (t,), shape = tiles(edgesep.load(z.read(name))), edgesep.load(z.read(name)).inputs[0].shape
            table["seconds"][name[:-4]] = {(0, 14): 1.0, (4, 4): 1.0}.get((t, shape[2]), 2.0)
    rep = compile_onnx(path, tmp_path / "device.esb", cost_table=table)
    m = edgesep.load(tmp_path / "device.esb")
    assert rep["transforms_from_cost_table"] == 2 and tiles(m) == [0, 0, 4]
    x = rng.standard_normal((1, 32, 14, 14)).astype(np.float32)
    np.testing.assert_allclose(m.run(x), edgesep.load(tmp_path / "rule.esb").run(x), rtol=1e-4, atol=1e-4)
    del table["seconds"][next(iter(table["seconds"]))]  # a conv the table lacks a transform of: the rule
    rep = compile_onnx(path, tmp_path / "part.esb", cost_table=table)
    assert rep["transforms_from_cost_table"] == 1 and tiles(edgesep.load(tmp_path / "part.esb")) in ([4, 0, 4], [0, 0, 2])


def test_a_conv_pruned_on_both_sides_runs_by_its_estimated_fastest_transform(tmp_path, monkeypatch):
    """choose_transforms: a conv whose input and output channels were both pruned (a form the planner never
    times: each unit's options are timed with the others dense) runs by the transform fastest by the
    estimate from its forms pruned on one side (inputs alone x outputs alone / dense), exact here where
    each transform's time is a product of an input and an output factor; nothing is measured for it. A
    conv one of whose forms is missing runs by the rule."""
    from edgesep.compiler.costs import TRANSFORMS, Timer, choose_transforms
    from edgesep.compiler.onnx_import import import_onnx
    from edgesep.compiler.passes import cleanup
    from edgesep.compiler.prune import channel_groups, prune

    path = tmp_path / "m.onnx"
    torch.manual_seed(0)
    torch.onnx.export(nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(32, 16, 3, padding=1)).eval(), torch.randn(1, 1, 8, 8), path,
                      dynamo=False, opset_version=13, input_names=["x"], output_names=["y"])
    g = import_onnx(onnx.load(path), None)
    cleanup(g)
    conv = [n for n in g.nodes if n.op == "Conv"][1].name  # the 16 -> 32 conv
    group = {grp.producers[0].name: grp.name for grp in channel_groups(g)}
    first, second = group[[n for n in g.nodes if n.op == "Conv"][0].name], group[conv]
    # Per input and per output channels, a factor per transform (direct, F2, F4): dense F(4x4) is fastest,
    # inputs pruned alone F(2x2), outputs pruned alone F(4x4), both direct.
    by_input, by_output = {16: (16, 13, 10), 8: (8, 9, 9)}, {32: (32, 20, 24), 16: (16, 15, 15)}
    measured = []

    def fake(nodes, input_shape, num_threads, runs=15):
        (n,) = nodes
        out, cin = n.weights["weight"].shape[:2]
        measured.append((cin, out))
        t = TRANSFORMS.index(n.attrs["winograd"])
        return 1e-6 * by_input[cin][t] * by_output[out][t]
    monkeypatch.setattr("edgesep.compiler.costs.time_nodes", fake)
    timer = Timer()
    for counts in ({}, {first: 8}, {second: 16}):  # the conv dense, its inputs pruned, its outputs pruned
        h = g.copy()
        prune(h, {}, counts=counts)
        node = next(n for n in h.nodes if n.name == conv)
        timer([node], (1, node.weights["weight"].shape[1], 8, 8))
    assert sorted(set(measured)) == [(8, 32), (16, 16), (16, 32)]
    both = g.copy()
    prune(both, {}, counts={first: 8, second: 16})
    assert choose_transforms(both, timer, g) == 1 and len(measured) == 9  # nothing timed anew
    tiles = {n.name: n.attrs.get("winograd") for n in both.nodes if n.op == "Conv"}
    estimate = [by_input[8][t] * by_output[16][t] for t in range(3)]  # 128, 135, 135
    assert tiles[conv] == TRANSFORMS[int(np.argmin(estimate))] == 0
    assert list(tiles.values()).count(None) == 2  # the first conv (one input channel) and the last (not timed)


@pytest.mark.usefixtures("mac_costs")
def test_a_planned_model_runs_each_conv_by_the_transform_timed_fastest(net, tmp_path, monkeypatch):
    """With F(2x2) timed fastest for every conv (the MAC model's time halved), the planner prices each
    conv at F(2x2) and the plan written runs the conv Winograd can run by it, pruned or not (the rule
    would run this net's 16 -> 32 conv on 14 x 14 directly)."""
    from edgesep.compiler import costs

    modelled = costs.time_nodes
    monkeypatch.setattr(costs, "time_nodes", lambda nodes, shape, threads, runs=15: modelled(nodes, shape, threads) * (
        0.5 if len(nodes) == 1 and nodes[0].attrs.get("winograd") == 2 else 1.0))
    rep = compile_onnx(net, tmp_path / "p.esb", prune="auto", calib=calibration(), max_output_error=0.2, min_speedup=0)
    m = edgesep.load(tmp_path / "p.esb")
    tiles = {n["name"]: n["attrs"].get("winograd") for n in m.header["graph"]["nodes"] if n["op"] == "Conv"}
    assert tiles == {"/features/features.0/Conv": None, "/features/features.2/Conv": 2}  # (the first reads one channel)
    assert any(u["choice"] != "dense" for u in rep["plan"]["units"])
    assert rep["plan"]["transforms_chosen"] == 1


def test_cli_plans_with_a_device_cost_table(net, tmp_path, capsys):
    np.save(tmp_path / "x.npy", calibration())
    assert cli(["candidates", str(net), "-o", str(tmp_path / "c.zip")]) == 0
    assert cli(["profile", str(tmp_path / "c.zip"), "-o", str(tmp_path / "costs.json"), "--runs", "3"]) == 0
    assert cli(["compile", str(net), "-o", str(tmp_path / "p.esb"), "--optimize", "auto", "--calib",
                str(tmp_path / "x.npy"), "--max-output-error", "0.2", "--cost-table", str(tmp_path / "costs.json")]) == 0
    out = capsys.readouterr().out
    assert "plan (--optimize over prune, slim, separable, sparse_fc" in out and "0 measured here" in out
    assert cli(["compile", str(net), "--optimize", "auto", "--calib", str(tmp_path / "x.npy")]) == 1
    assert "needs calibration data" in capsys.readouterr().err


class Residual(nn.Module):
    """A residual block between two convs: a changed layer's input and the skip both cross the cut."""

    def __init__(self):
        super().__init__()
        self.stem, self.a = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.b, self.head = nn.Conv2d(16, 16, 3, padding=1), nn.Sequential(nn.Flatten(), nn.Linear(16 * 14 * 14, 10))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return self.head(torch.relu(x + self.b(torch.relu(self.a(x)))))


def imported(module, tmp_path):
    """module (seeded) exported by torch and imported to the IR, cleaned up."""
    import onnx

    from edgesep.compiler.onnx_import import import_onnx
    from edgesep.compiler.passes import cleanup

    torch.manual_seed(0)
    torch.onnx.export(module().eval(), torch.randn(1, 1, 14, 14), tmp_path / "m.onnx", dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    g = import_onnx(onnx.load(tmp_path / "m.onnx"), None)
    cleanup(g)
    return g


@pytest.mark.usefixtures("mac_costs")
@pytest.mark.parametrize("module", [Net, Residual])
def test_a_candidate_runs_only_what_it_changed(module, tmp_path):
    """The sensitivity table runs only the nodes a candidate changed, fed the original model's cached
    activations: the outputs are those of the whole changed model, for every option of every pass."""

    from edgesep.compiler.costs import Timer
    from edgesep.compiler.execute import Stage
    from edgesep.compiler.prune import Planner as Prune
    from edgesep.compiler.prune import Spec as PruneSpec
    from edgesep.compiler.separable import Planner as Separable
    from edgesep.compiler.sparse_fc import Planner as Sparse
    from edgesep.compiler.sparse_fc import Spec as SparseSpec

    g = imported(module, tmp_path)
    calib = calibration()
    checks = P.Checks(g, calib[:12], None, P.Budget("output", 0.1))
    passes = [Prune(PruneSpec(None, None, 1)), Separable(), Sparse(SparseSpec("auto"))]
    units = P.find_units(g, passes, Timer(), min_speedup=0)
    assert {u.kind for u in units} == {"prune", "separable", "sparse_fc"}
    stage, parts = Stage(g, calib), []
    for u in units:
        apply = next(p for p in passes if p.kind == u.kind).apply
        for o in u.options:
            h = g.copy()
            apply(h, {u.name: o.setting}, stage)
            whole, part = checks.outputs(h), checks.outputs(h, g)
            assert np.linalg.norm(part - whole) <= 1e-5 * np.linalg.norm(whole), (u.key, o.label)
            parts.append(len(checks.cache.changed(h, g)[1]) / len(h.nodes))
    assert min(parts) < 0.5  # (pruning the first conv changes every node)


def test_checkpoints_are_the_values_every_path_goes_through(tmp_path):
    """A residual block's inner conv output is not a checkpoint (the skip is live beside it); the values
    before and after the block are."""


    g = imported(Residual, tmp_path)
    by_output = {n.output: n for n in g.nodes}
    found = P.checkpoints(g)
    inner = [n for n in g.nodes if n.op == "Conv" and n.inputs[0] != g.inputs[0][0] and len(n.inputs) == 1]
    assert found[-1] == "y" and by_output[found[0]].inputs == [g.inputs[0][0]]  # (the stem conv)
    assert inner and all(n.output not in found for n in inner)
    assert len(found) >= 3


@pytest.mark.usefixtures("mac_costs")
@pytest.mark.parametrize("module", [Net, Residual])
def test_a_plan_is_checked_from_the_last_plan_checked(module, tmp_path):
    """The check runs a plan from the last plan checked, fed its kept checkpoints: the outputs are those
    of the whole plan run afresh, for plans two options apart."""

    from edgesep.compiler.cache import Cache
    from edgesep.compiler.costs import Timer
    from edgesep.compiler.execute import Stage
    from edgesep.compiler.prune import Planner as Prune
    from edgesep.compiler.prune import Spec as PruneSpec
    from edgesep.compiler.separable import Planner as Separable

    g = imported(module, tmp_path)
    calib = calibration()
    checks = P.Checks(g, calib[:12], None, P.Budget("output", 0.1))
    passes = [Prune(PruneSpec(None, None, 1)), Separable()]
    units = {u.key: u for u in P.find_units(g, passes, Timer(), min_speedup=0)}
    stage = Stage(g, calib)
    last, plan = g, {}
    for key in list(units)[::-1]:  # (a late unit first, then earlier ones: each plan changes what lies upstream)
        plan = {**plan, key: len(units[key].options) - 1}
        h = g.copy()
        P.apply_plan(h, passes, units, plan, stage)
        part = checks.outputs(h, last, keep=True)
        whole = checks.outputs(h)
        assert np.linalg.norm(part - whole) <= 1e-5 * np.linalg.norm(whole), plan
        last = h
    assert len(plan) >= 2 and checks.keep
    small = P.Checks(g, calib[:12], None, P.Budget("output", 0.1), cache=Cache(max_bytes=1000))
    assert not small.keep  # (checkpoints that would crowd the cache are not kept: the run starts further up)
    assert np.allclose(small.outputs(last, g, keep=True), checks.outputs(last), rtol=1e-5, atol=1e-5)
