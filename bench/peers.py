"""The dense models on edgesep, onnxruntime, OpenVINO (reads the ONNX file) and ncnn (the ONNX file
converted by `pnnx m.onnx inputshape=[...] fp16=0`, fp32 throughout), same thread count, latency measured
interleaved (bench/interleave.py); ratios over onnxruntime's time.

    pip install openvino ncnn pnnx
    python bench/peers.py [--models ...] [--threads 1 2] [--write]   # --write: docs/benchmarks.md

A peer that does not install or cannot take a model is left out of that row (ncnn: batch-1 models).
"""
from __future__ import annotations

import argparse
import importlib.util
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from compare import MODELS, RESULTS, compiled
from docs_section import cpu_simd, simd_section, write_section
from interleave import latency

PEERS = ("onnxruntime", "openvino", "ncnn")


def ncnn_model(onnx_path: Path, shape: list[int], tmp: Path) -> str | None:
    """The ncnn param file pnnx makes of the model (None if pnnx is missing or fails, or batch > 1)."""
    if shape[0] != 1 or not shutil.which("pnnx"):
        return None
    work = tmp / onnx_path.stem
    work.mkdir()
    src = work / "m.onnx"
    shutil.copy(onnx_path, src)
    done = subprocess.run(["pnnx", str(src), f"inputshape=[{','.join(map(str, shape))}]", "fp16=0"], cwd=work,
                          capture_output=True, text=True)
    param = work / "m.ncnn.param"
    return str(param) if done.returncode == 0 and param.exists() else None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    import edgesep

    have = [rt for rt in PEERS if importlib.util.find_spec(rt)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, onnx_path, bundle, shape in compiled(a.models, Path(tmp)):
            files = {"edgesep": str(bundle), "onnxruntime": str(onnx_path), "openvino": str(onnx_path)}
            if "ncnn" in have and (param := ncnn_model(onnx_path, shape, Path(tmp))):
                files["ncnn"] = param
            files = {rt: f for rt, f in files.items() if rt == "edgesep" or rt in have}
            for t in a.threads:
                ms = latency(files, t, shape, a.runs)
                rows.append((name, shape, t, ms))
                print(name, t, {rt: round(v, 3) for rt, v in ms.items()}, flush=True)
    cols = ["edgesep", *PEERS]
    table = ["| model | input | threads | " + " | ".join(f"{c} ms" for c in cols) + " | " +
             " | ".join(f"{c} / ort" for c in cols if c != "onnxruntime") + " |",
             "|" + "---|" * (3 + len(cols) + len(cols) - 1)]
    for name, shape, t, ms in rows:
        cell = [f"{ms[c]:.3f}" if c in ms else "-" for c in cols]
        ratio = [f"{ms[c] / ms['onnxruntime']:.2f}" if c in ms else "-" for c in cols if c != "onnxruntime"]
        table.append(f"| {name} | {'x'.join(map(str, shape))} | {t} | " + " | ".join(cell + ratio) + " |")
    simd = cpu_simd()
    versions = ", ".join(f"{rt} {importlib.import_module(rt).__version__}" for rt in have)
    context = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {simd}, edgesep "
               f"{edgesep.__version__}, {versions}; fp32, median of {a.runs} runs each, interleaved.")
    text = context + "\n\n" + "\n".join(table)
    print("\n" + text)
    if a.write:
        write_section(RESULTS, simd_section("peers"), text)


if __name__ == "__main__":
    main()
