"""Per-layer speed of the separable pair (kx1 to K channels, then 1xk back to N), one thread, batch 1,
C = N, 3x3, stride 1 and 2: our fused kernel against our dense conv, our unfused pair (two convs),
onnxruntime's dense conv, and onnxruntime running the same two-conv graph (anyone can hand onnxruntime
the SVD split; that is the bar). Our times are the layer's steps alone: a one-layer bundle also converts
its NCHW input to NHWC and back, which a network does once at its edges, not per layer (step medians
from Model.profile, the layout changes left out); onnxruntime's are its whole run of the graph. The
compiler times both of our forms of each split layer and keeps the faster ("compiled form").

    python bench/separable_layers.py [--write]     # --write: the table into docs/separable.md
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
import tempfile
from pathlib import Path

from docs_section import cpu_simd, simd_section, write_section

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "separable.md"


def conv_model(path: Path, c: int, h: int, convs: list[tuple[np.ndarray, list, list]]) -> None:
    """A chain of convs (weight, pads [t, l, b, r], strides) on a 1 x c x h x h input."""
    nodes, inits, prev = [], [], "x"
    for i, (w, pads, strides) in enumerate(convs):
        out = "y" if i == len(convs) - 1 else f"t{i}"
        nodes.append(helper.make_node("Conv", [prev, f"W{i}"], [out], pads=pads, strides=strides))
        inits.append(numpy_helper.from_array(w, f"W{i}"))
        prev = out
    g = helper.make_graph(nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, h])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--channels", nargs="+", type=int, default=[64, 128, 256, 512])
    p.add_argument("--sizes", nargs="+", type=int, default=[56, 28, 14], help="input height and width")
    p.add_argument("--strides", nargs="+", type=int, default=[1, 2])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from conftest import ort_session

    import edgesep
    from edgesep.compiler import compile_onnx
    from edgesep.compiler.execute import model_of
    from edgesep.compiler.ir import Graph, Node
    from edgesep.ops import is_layout_change
    from edgesep.compiler.separable import Layer, runtime_form, split
    from edgesep.report import median_seconds

    def steps_seconds(model, x) -> float:
        """The model's steps but the layout changes, per-step medians summed."""
        return sum(t for t, layer in zip(model.profile(x, a.runs), model.layers(1))
                   if not is_layout_change({"op": layer["op"], "name": layer["name"]}))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for st in a.strides:
            for c in a.channels:
                w = (np.random.default_rng(c).standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
                for h in a.sizes:
                    x = np.random.default_rng(0).standard_normal((1, c, h, h)).astype(np.float32)
                    conv_model(t / "dense.onnx", c, h, [(w, [1, 1, 1, 1], [st, st])])
                    compile_onnx(t / "dense.onnx", t / "dense.esb")
                    ours_dense = edgesep.load(t / "dense.esb", num_threads=1)
                    ort_dense = ort_session(t / "dense.onnx", 1)
                    td = steps_seconds(ours_dense, x)
                    tod = median_seconds(lambda: ort_dense.run(None, {"x": x}), a.runs)
                    oh = (h - 1) // st + 1
                    conv = Node("Conv", "c", ["x"], "y", {"kernel_shape": [3, 3], "strides": [st, st],
                                                          "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1,
                                                          "out_channels": c}, {"weight": w})
                    layer = Layer(conv, (1, c, h, h), (1, c, oh, oh))
                    for k in (c // 8, c // 4, c // 2):
                        v, hh, _ = split(w, k)
                        conv_model(t / "pair.onnx", c, h, [(v, [1, 0, 1, 0], [st, 1]), (hh, [0, 1, 0, 1], [1, st])])
                        compile_onnx(t / "pair.onnx", t / "pair.esb")
                        ours_pair = edgesep.load(t / "pair.esb", num_threads=1)
                        ours_fused = model_of(Graph([("x", [1, c, h, h])], ["y"], runtime_form(layer, v, hh, None)))
                        ort_pair = ort_session(t / "pair.onnx", 1)
                        tf = steps_seconds(ours_fused, x)
                        tp = steps_seconds(ours_pair, x)
                        top = median_seconds(lambda: ort_pair.run(None, {"x": x}), a.runs)
                        mac_ratio = layer.dense_macs() / layer.pair_macs(k)
                        row = (st, c, h, k, mac_ratio, td / tf, tp / tf, tod / tf, top / tf, top / min(tf, tp), 1e3 * tf)
                        rows.append(row)
                        print(" ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row), flush=True)
    table = ["| stride | C=N | HxW in | K | MAC ratio | vs our dense | realised / MAC ratio | vs our unfused pair | "
             "vs ort dense | vs ort pair | compiled form vs ort pair | fused ms |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for st, c, h, k, mr, sd, sp, sod, sop, scp, ms in rows:
        table.append(f"| {st} | {c} | {h} | {k} | {mr:.1f}x | {sd:.2f}x | {sd / mr:.2f} | {sp:.2f}x | {sod:.2f}x | "
                     f"{sop:.2f}x | {scp:.2f}x | {ms:.3f} |")
    context = f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {cpu_simd()}, median of {a.runs} runs per layer."
    text = context + "\n\n" + "\n".join(table)
    print(text)
    if a.write:
        write_section(DOC, simd_section("layers"), text)


if __name__ == "__main__":
    main()
