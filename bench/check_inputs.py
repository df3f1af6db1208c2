"""Which inputs should a plan be checked on, so that its rate of top-1 changes there is not below its rate
on unseen data? (compiler/plan.py: COPIES, NOISE, SHIFT)

The VGG-style or the MobileNetV2-style MNIST CNN (bench/mnist_models.py) or the demo model, calibrated on 500 *training* images (seed 0): the
planner's sequence of ever faster plans (greedy allocation over pruning, separable and sparse FC, every
option refit on the other four fifths: this study checks on a fifth), and for every fourth plan its rate of top-1 changes and of inputs
turned wrong on: the 1000 held-out images; the 100 checked training images as they are; and 3 perturbed
copies of those at several noise levels (standard deviations of the inputs) and largest shifts (pixels).
The first row is the original model's own accuracy on each set: how far from its training inputs a
setting's copies lie, against the held-out images. Writes docs/planner.md's table with --write.

    python bench/check_inputs.py [--model vgg|mobilenet|demo] [--write]
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
from docs_section import write_section
from mnist_models import mnist_split, mobilenet_mnist_onnx, vgg_mnist_onnx
from prune_accuracy import cpu

DOC = Path(__file__).resolve().parent.parent / "docs" / "planner.md"
MODELS = {"vgg": ("The VGG-style CNN", vgg_mnist_onnx), "mobilenet": ("The MobileNetV2-style CNN", mobilenet_mnist_onnx),
          "demo": ("The demo model", lambda: DOC.parent.parent / "python" / "edgesep" / "data" / "digits.onnx")}
SETTINGS = [(n, s) for n in (0.1, 0.2, 0.3) for s in (1, 2)]  # (noise, shift in pixels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=list(MODELS), default="vgg")
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    import onnx

    from edgesep.compiler import _hold_out
    from edgesep.compiler import plan as P
    from edgesep.compiler.costs import Timer
    from edgesep.compiler.execute import Stage, model_of, run
    from edgesep.compiler.onnx_import import import_onnx
    from edgesep.compiler.passes import cleanup
    from edgesep.compiler.prune import Planner as PrunePlanner
    from edgesep.compiler.prune import Spec as PruneSpec
    from edgesep.compiler.separable import Planner as SeparablePlanner
    from edgesep.compiler.sparse_fc import Planner as SparsePlanner
    from edgesep.compiler.sparse_fc import Spec as SparseSpec

    xtr, ytr, xte, yte = mnist_split()
    idx = np.random.default_rng(0).choice(len(xtr), 500, replace=False)
    calib, labels = np.ascontiguousarray(xtr[idx]), ytr[idx]
    name, onnx_path = MODELS[a.model]
    path = onnx_path()
    g = import_onnx(onnx.load(str(path)), None)
    cleanup(g)
    fit_idx, check_idx = _hold_out(len(calib), None, 0.2)  # (a fifth, as the tables in docs/planner.md were made)
    fit, xc, yc = calib[fit_idx], calib[check_idx], labels[check_idx]
    passes = [PrunePlanner(PruneSpec(None)), SeparablePlanner(), SparsePlanner(SparseSpec("auto"))]
    checks = P.Checks(g, xc, yc, P.Budget("accuracy", 0.01), copies=0)  # the signal, on the clean checked inputs
    units = P.find_units(g, passes, Timer())
    stage = Stage(g, fit)
    P.score_options(g, passes, units, checks, stage)
    plans = P.greedy(units)
    sets = {"held-out": (xte, yte), "checked, as they are": (xc, yc)}
    for noise, shift in SETTINGS:
        P.NOISE, P.SHIFT = noise, shift / 28
        sets[f"copies: noise {noise}, shift {shift}"] = (P.perturbed(xc), np.tile(yc, P.COPIES))
    refs = {k: run(model_of(g), x)[0].argmax(1) for k, (x, _) in sets.items()}
    rows = [f"{name}, measured on this machine (x86-64 {cpu()}; "
            f"`python bench/check_inputs.py --model {a.model}`). Per plan of the sequence "
            f"({len(plans) - 1} steps): top-1 changes / inputs turned wrong, in percent.\n",
            "| plan | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|",
            "| original model's accuracy | " + " | ".join(f"{100 * np.mean(refs[k] == y):.1f}" for k, (_, y) in sets.items()) + " |"]
    for i in range(4, len(plans), 4):
        h = copy.deepcopy(g)
        P.apply_plan(h, passes, {u.key: u for u in units}, plans[i], stage)
        cells = []
        for k, (x, y) in sets.items():
            top, ref = run(model_of(h), x)[0].argmax(1), refs[k]
            cells.append(f"{100 * np.mean(top != ref):.1f} / {100 * np.mean((ref == y) & (top != y)):.1f}")
        rows.append(f"| {i} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    text = "\n".join(rows)
    print(text)
    if a.write:
        write_section(DOC, f"check-inputs-{a.model}", text)


if __name__ == "__main__":
    main()
