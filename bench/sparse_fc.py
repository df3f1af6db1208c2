"""Sparse FC layers side by side, in one run: our SparseFc (elementwise-pruned, stored in the encoding
with the fewest bytes; and pruned in 4x1 blocks) against our dense Fc, onnxruntime's Gemm on the dense
layer and scipy's CSR product, at the shapes of VGG-16's and AlexNet-style classifiers and of small
models' FC layers, batch 1 and 8, 1 and 2 threads. Times are medians of whole runs (Model.run,
InferenceSession.run), weights random (speed depends on the pattern's density, not the values).

    OPENBLAS_NUM_THREADS=1 python bench/sparse_fc.py            # print the table
    OPENBLAS_NUM_THREADS=1 python bench/sparse_fc.py --write    # ... and rewrite it in docs/sparse.md
    python bench/sparse_fc.py --shapes 256x3136 --sparsity 0.9  # a subset
    python bench/sparse_fc.py --memory [--write]                # bundle size and peak RSS, fc6 dense vs sparse

Peak RSS is measured in a fresh process per bundle (load, one run; VmHWM over the process's own
baseline of Python + numpy + edgesep), so it is what the layer costs a device.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import scipy.sparse
from docs_section import write_section
from onnx import TensorProto, helper, numpy_helper

import edgesep
from edgesep.compiler.execute import model_of
from edgesep.compiler.ir import Graph, Node
from edgesep.compiler.lower import write_bundle
from edgesep.compiler.sparse_fc import prune, sparse_node

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ["4096x25088", "4096x4096", "1000x4096", "256x3136", "360x2048"]  # m x n (out x in)
SPARSITY = [0.5, 0.7, 0.9, 0.95]


def seconds(fn, budget: float = 0.4) -> float:
    """Median of as many runs as fit in about `budget` seconds (3 to 200), after a warm-up."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-6)
    times = []
    for _ in range(int(min(200, max(3, budget / one)))):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def ort_gemm(w: np.ndarray, b: np.ndarray, threads: int, tmp: Path) -> ort.InferenceSession:
    m, n = w.shape
    node = helper.make_node("Gemm", ["x", "W", "B"], ["y"], transB=1)
    graph = helper.make_graph([node], "fc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", m])],
                              [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    path = tmp / "fc.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path,
              save_as_external_data=w.nbytes > 1 << 30)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ours(nodes: list[Node], n: int, threads: int) -> edgesep.Model:
    return model_of(Graph([("x", [None, n])], [nodes[-1].output], nodes), num_threads=threads)


def measure(shape: str, sparsities: list[float], batches: list[int], threads_list: list[int]) -> list[dict]:
    m, n = map(int, shape.split("x"))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((m, n), dtype=np.float32)
    b = rng.standard_normal(m, dtype=np.float32)
    dense = Node("Fc", "fc", ["x"], "y", {"out_features": m}, {"weight": w, "bias": b})
    rows = []
    xs = {batch: rng.standard_normal((batch, n), dtype=np.float32) for batch in batches}
    base = {}  # (threads, batch) -> (our dense, onnxruntime) seconds
    with tempfile.TemporaryDirectory() as tmp:
        for threads in threads_list:
            sess = ort_gemm(w, b, threads, Path(tmp))
            ours_dense = ours([dense], n, threads)
            for batch, x in xs.items():
                base[threads, batch] = (seconds(lambda: ours_dense.run(x)), seconds(lambda: sess.run(None, {"x": x})))
            sess = ours_dense = None  # free the dense copies before the sparse ones
    for s in sparsities:
        wp, wb = prune(w, s), prune(w, s, (4, 1))
        csr = scipy.sparse.csr_matrix(wp)
        forms = {"1x1": sparse_node(dense, wp, b), "4x1": sparse_node(dense, wb, b, (4, 1))}
        nbytes = {k: sum(a.nbytes for key, a in v.weights.items() if key != "bias") for k, v in forms.items()}
        for threads in threads_list:
            models = {k: ours([v], n, threads) for k, v in forms.items()}
            for batch, x in xs.items():
                t_dense, t_ort = base[threads, batch]
                t = {k: seconds(lambda mm=mm: mm.run(x)) for k, mm in models.items()}
                t_scipy = seconds(lambda: csr @ x.T) if threads == 1 else float("nan")
                rows.append({"shape": shape, "sparsity": s, "batch": batch, "threads": threads,
                             "encoding": "x".join(map(str, forms["1x1"].attrs["block"])),
                             "dense_ms": 1e3 * t_dense, "ort_ms": 1e3 * t_ort, "sparse_ms": 1e3 * t["1x1"],
                             "block_ms": 1e3 * t["4x1"], "scipy_ms": 1e3 * t_scipy,
                             "bytes_ratio": w.nbytes / nbytes["1x1"], "block_bytes_ratio": w.nbytes / nbytes["4x1"]})
                print(_line(rows[-1]), flush=True)
    return rows


_CHILD = """
import json, sys, numpy as np
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
import edgesep
x = np.ones((1, int(sys.argv[2])), np.float32)
base = hwm()
m = edgesep.load(sys.argv[1], num_threads=1)
m.run(x)
print(json.dumps({"base": base, "peak": hwm()}))
"""


def memory(shape: str = "4096x25088", sparsities=(0.9, 0.95)) -> list[dict]:
    """Bundle bytes and peak RSS over the process baseline, dense and sparse (1x1 and 4x1 blocks)."""
    m, n = map(int, shape.split("x"))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((m, n), dtype=np.float32)
    b = rng.standard_normal(m, dtype=np.float32)
    dense = Node("Fc", "fc", ["x"], "y", {"out_features": m}, {"weight": w, "bias": b})
    forms = {"dense": dense}
    for s in sparsities:
        forms[f"{s:.0%} 1x1"] = sparse_node(dense, prune(w, s), b)
        forms[f"{s:.0%} 4x1 blocks"] = sparse_node(dense, prune(w, s, (4, 1)), b, (4, 1))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, node in forms.items():
            path = Path(tmp) / "m.esb"
            write_bundle(Graph([("x", [None, n])], ["y"], [node]), path)
            out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(n)], capture_output=True, text=True,
                                 check=True).stdout
            r = json.loads(out)
            rows.append({"form": name, "bytes": path.stat().st_size, "rss_mb": r["peak"] - r["base"]})
            print(rows[-1], flush=True)
    table = ["| fc6 4096x25088 | bundle bytes | smaller | peak RSS over baseline (MB) | smaller |", "|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['form']} | {r['bytes']:,} | {rows[0]['bytes'] / r['bytes']:.1f}x | {r['rss_mb']:.0f} | "
                     f"{rows[0]['rss_mb'] / r['rss_mb']:.1f}x |")
    return table


HEAD = ("| m x n | sparsity | batch | threads | dense ms (ours) | ort Gemm ms | sparse ms | vs dense | vs ort | "
        "bytes | 4x1-block ms | vs dense | bytes | scipy CSR ms |")


def _line(r: dict) -> str:
    scipy_ms = "" if np.isnan(r["scipy_ms"]) else f"{r['scipy_ms']:.3f}"
    return (f"| {r['shape']} | {r['sparsity']:.0%} | {r['batch']} | {r['threads']} | {r['dense_ms']:.3f} | "
            f"{r['ort_ms']:.3f} | {r['sparse_ms']:.3f} | {r['dense_ms'] / r['sparse_ms']:.1f}x | "
            f"{r['ort_ms'] / r['sparse_ms']:.1f}x | {r['bytes_ratio']:.1f}x smaller ({r['encoding']}) | "
            f"{r['block_ms']:.3f} | {r['dense_ms'] / r['block_ms']:.1f}x | {r['block_bytes_ratio']:.1f}x smaller | "
            f"{scipy_ms} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="*", default=SHAPES)
    p.add_argument("--sparsity", nargs="*", type=float, default=SPARSITY)
    p.add_argument("--batch", nargs="*", type=int, default=[1, 8])
    p.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    p.add_argument("--memory", action="store_true", help="bundle size and peak RSS instead of times")
    p.add_argument("--write", action="store_true", help="rewrite the table in docs/sparse.md")
    a = p.parse_args()
    if a.memory:
        table = "\n".join(memory())
        print(table)
        if a.write:
            write_section(ROOT / "docs" / "sparse.md", "sparse-memory", table)
        return
    rule = "|" + "---|" * (HEAD.count("|") - 1)
    print(HEAD + "\n" + rule)
    rows = [r for shape in a.shapes for r in measure(shape, a.sparsity, a.batch, a.threads)]
    if a.write:
        text = (f"Measured by `bench/sparse_fc.py` on {platform.machine()} ({edgesep.available_isas()[-1]} kernels), "
                f"edgesep {edgesep.__version__}, onnxruntime {ort.__version__}, scipy {scipy.__version__}.\n\n"
                + HEAD + "\n" + rule + "\n" + "\n".join(_line(r) for r in rows))
        write_section(ROOT / "docs" / "sparse.md", "sparse-kernels", text)


if __name__ == "__main__":
    main()
