"""How the planner's way of choosing among its checked plans decides whether a budget holds
(compiler/plan.py, docs/planner.md "Check"). For each of N calibration sets (500 random MNIST training
images, as bench/budget_study.py draws them) the planner's whole plan sequence is built, and *every* plan
is checked (events on the check inputs) and measured on the 1000 held-out images. Then the ways of
choosing are replayed on the same numbers: the fixed-order walk (the planner's: up to the first failure)
and a bisection for the last passing plan (the earlier planner's, without its back-off).

    python bench/check_replay.py [--model demo|vgg] [--runs 22] [--budgets 0.01,0.02]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from pathlib import Path

import numpy as np
from mnist_models import mnist_split, vgg_mnist_onnx

ROOT = Path(__file__).resolve().parent.parent


def sequence(src: Path, calib: np.ndarray, labels: np.ndarray, table: dict, xte: np.ndarray) -> list[dict]:
    """Per plan of the planner's sequence: its planned time, check events / inputs, held-out predictions."""
    import onnx
    from edgesep.compiler import _hold_out
    from edgesep.compiler import plan as P
    from edgesep.compiler.costs import Timer
    from edgesep.compiler.execute import Stage, model_of, run
    from edgesep.compiler.onnx_import import import_onnx
    from edgesep.compiler.passes import cleanup
    from edgesep.compiler.prune import Planner as Prune
    from edgesep.compiler.prune import Spec as PruneSpec
    from edgesep.compiler.separable import Planner as Separable
    from edgesep.compiler.sparse_fc import Planner as Sparse
    from edgesep.compiler.sparse_fc import Spec as SparseSpec

    g = import_onnx(onnx.load(str(src)), None)
    cleanup(g)
    fit_idx, check_idx = _hold_out(len(calib), None)
    fit = calib[fit_idx]
    checks = P.Checks(g, calib[check_idx], labels[check_idx], P.Budget("accuracy", 0.01))
    passes = [Prune(PruneSpec(None)), Separable(), Sparse(SparseSpec("auto"))]
    found = P.find_units(g, passes, Timer(1, table))
    units, stage = {u.key: u for u in found}, Stage(g, fit)
    P.score_options(g, passes, found, checks, stage)  # the sensitivity table, as plan_passes builds it
    rows = []
    for plan in P.greedy(found):
        h = copy.deepcopy(g)
        P.apply_plan(h, passes, units, plan, stage)
        v = checks.verdict(checks.outputs(h))
        rows.append({"seconds": P.seconds_of(units, plan), "events": v["events"], "inputs": v["inputs"],
                     "pred": run(model_of(h), xte)[0].argmax(1)})
    return rows


def walk(rows: list[dict], ok) -> int:
    k = 0
    while k + 1 < len(rows) and ok(rows[k + 1]):
        k += 1
    return k


def bisect(rows: list[dict], ok) -> int:
    lo, hi = 0, len(rows) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(rows[mid]) else (lo, mid - 1)
    return lo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["demo", "vgg"], default="demo")
    p.add_argument("--runs", type=int, default=22)
    p.add_argument("--budgets", default="0.01,0.02")
    a = p.parse_args()
    from edgesep.compiler import candidates
    from edgesep.compiler.plan import upper_bound
    from edgesep.profile import profile

    src = vgg_mnist_onnx() if a.model == "vgg" else ROOT / "python" / "edgesep" / "data" / "digits.onnx"
    xtr, ytr, xte, yte = mnist_split()
    with tempfile.TemporaryDirectory() as tmp:
        candidates(src, Path(tmp) / "c.zip")
        table = profile(Path(tmp) / "c.zip")
    runs = []
    for seed in range(a.runs):
        idx = np.random.default_rng(seed).choice(len(xtr), 500, replace=False)
        runs.append(sequence(src, np.ascontiguousarray(xtr[idx]), ytr[idx], table, xte))
        print(f"calibration set {seed}: {len(runs[-1])} plans", flush=True)
    print("| budget | choice | held on held-out data | held-out drop: median (max) | planned speed-up: median |")
    print("|---|---|---|---|---|")
    for budget in map(float, a.budgets.split(",")):
        def ok(r):
            return upper_bound(r["events"], r["inputs"], 0.9) <= budget
        for name, choose in (("walk (first failure ends it)", walk), ("bisection", bisect)):
            drops, speed = [], []
            for rows in runs:
                k = choose(rows, ok)
                dense = rows[0]["pred"]
                drops.append(float((dense == yte).mean() - (rows[k]["pred"] == yte).mean()))
                speed.append(rows[0]["seconds"] / rows[k]["seconds"])
            held = sum(d <= budget + 1e-9 for d in drops)
            print(f"| {budget:.1%} | {name} | {held}/{len(runs)} | {statistics.median(drops):+.1%} ({max(drops):+.1%}) | "
                  f"{statistics.median(speed):.2f}x |")


if __name__ == "__main__":
    main()
