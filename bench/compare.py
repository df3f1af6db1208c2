"""Side by side with onnxruntime, in one run: latency on the same ONNX model at the same thread count,
load time (bundle or model open to first result) and peak RSS, each runtime in a fresh process.

    python bench/compare.py                      # resnet18, mobilenet_v2 at 1x3x224x224; 1 and 2 threads
    python bench/compare.py --write              # ... and rewrite the table in docs/benchmarks.md

Models come from tests/zoo.py (torch architectures, random weights: speed does not depend on them).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docs_section import write_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: reset at exec, unlike ru_maxrss, which a child inherits)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(runtime: str, onnx_path: str, bundle: str, threads: int, runs: int) -> dict:
    """Runs in a fresh process: load, first result, then the median of `runs` timed runs."""
    import numpy as np

    from edgesep.report import median_seconds

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    if runtime == "edgesep":
        import edgesep
    else:
        import onnxruntime as ort
    base_rss = peak_rss_mb()
    t0 = time.perf_counter()
    if runtime == "edgesep":
        model = edgesep.load(bundle, num_threads=threads)
        run = lambda: model.run(x)  # noqa: E731
    else:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        run = lambda: sess.run(None, {name: x})  # noqa: E731
    run()
    load_s = time.perf_counter() - t0
    median = median_seconds(run, runs=runs, warmup=3)
    rss = peak_rss_mb()
    return {"load_ms": 1e3 * load_s, "ms": 1e3 * median, "peak_rss_mb": rss, "rss_over_baseline_mb": rss - base_rss}


def measure(runtime: str, onnx_path: Path, bundle: Path, threads: int, runs: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", runtime, str(onnx_path), str(bundle), str(threads),
                          str(runs)], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--write", action="store_true", help="rewrite the results table in docs/benchmarks.md")
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        runtime, onnx_path, bundle, threads, runs = a.child
        print(json.dumps(child(runtime, onnx_path, bundle, int(threads), int(runs))))
        return
    sys.path.insert(0, str(ROOT / "tests"))
    import onnxruntime
    import zoo

    import edgesep
    from edgesep.compiler import compile_onnx

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models:
            onnx_path = zoo.onnx_path(name)
            bundle = Path(tmp) / f"{name}.esb"
            compile_onnx(onnx_path, bundle)
            for t in a.threads:
                ours = measure("edgesep", onnx_path, bundle, t, a.runs)
                theirs = measure("ort", onnx_path, bundle, t, a.runs)
                rows.append((name, t, ours, theirs))
                print(f"{name} {t} thread(s): edgesep {ours['ms']:.2f} ms, onnxruntime {theirs['ms']:.2f} ms "
                      f"(ours / theirs {ours['ms'] / theirs['ms']:.2f}); load {ours['load_ms']:.0f} vs "
                      f"{theirs['load_ms']:.0f} ms; peak RSS {ours['peak_rss_mb']:.0f} vs {theirs['peak_rss_mb']:.0f} MB",
                      flush=True)
        isa = edgesep.load(Path(tmp) / f"{a.models[0]}.esb").kernel_isa
    table = ["| model | threads | edgesep ms | onnxruntime ms | edgesep / ort | load ms (edgesep / ort) | "
             "peak RSS MB (edgesep / ort) | RSS over baseline MB (edgesep / ort) |", "|---|---|---|---|---|---|---|---|"]
    for name, t, o, r in rows:
        table.append(f"| {name} | {t} | {o['ms']:.2f} | {r['ms']:.2f} | {o['ms'] / r['ms']:.2f} | "
                     f"{o['load_ms']:.0f} / {r['load_ms']:.0f} | {o['peak_rss_mb']:.0f} / {r['peak_rss_mb']:.0f} | "
                     f"{o['rss_over_baseline_mb']:.0f} / {r['rss_over_baseline_mb']:.0f} |")
    context = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} ({platform.processor() or 'cpu'}), "
               f"edgesep {edgesep.__version__} kernels `{isa}`, onnxruntime {onnxruntime.__version__}; "
               f"batch 1, 1x3x224x224, median of {a.runs} runs after 3 warm-up runs.")
    text = "\n".join(table)
    print("\n" + context + "\n\n" + text)
    if a.write:
        write_section(RESULTS, "compare", context + "\n\n" + text)


if __name__ == "__main__":
    main()
