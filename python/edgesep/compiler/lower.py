"""IR -> bundle: each node's weights stored in the layout its kernel reads (packed here, once), attributes
as plain JSON numbers and strings."""
from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np

from ..bundle import Bundle, BundleWriter, pack_conv_mr6, pack_conv_nhwc16, pack_khwc, pack_wino_nhwc16, wino_layout
from ..ops import ACTIVATION_LAYOUTS, OPS, is_depthwise
from .ir import CompileError, Graph, Node
from .layout import to_nhwc


def _json(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json(x) for x in v]
    if isinstance(v, (np.integer, bool)):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


_PACKED: dict[tuple, tuple[weakref.ref, np.ndarray]] = {}


def _packed(pack, arr: np.ndarray, *args) -> np.ndarray:
    """pack(arr, *args), computed once while arr lives: the planner builds hundreds of models from copies
    of one graph that share the weight arrays they did not change (ir.Graph.copy), and Winograd's
    transform of a 3x3 conv costs more than running it."""
    key = (pack, id(arr), args)
    hit = _PACKED.get(key)
    if hit is not None and hit[0]() is arr:
        return hit[1]
    out = pack(arr, *args)
    _PACKED[key] = (weakref.ref(arr, lambda _, key=key, cache=_PACKED: cache.pop(key, None)), out)
    return out


def _add_weight(w: BundleWriter, n: Node, key: str, arr: np.ndarray) -> int:
    name = f"{n.name}.{key}"
    if n.op == "SparseFc" and key in ("values", "row_ptr", "columns"):  # indices keep their integer dtype
        return w.add(name, arr, layout="bcsr", block=[int(d) for d in n.attrs["block"]])
    arr = np.ascontiguousarray(arr, np.float32)
    nhwc = n.attrs.get("layout") == "nhwc"
    if nhwc and (n.op, key) in (("Conv", "weight"), ("SeparableConv", "vertical"), ("SeparableConv", "horizontal")):
        groups = n.attrs.get("group", 1)
        if n.op == "Conv" and n.attrs.get("winograd"):
            layout = wino_layout(n.attrs["winograd"])
            return w.add(name, _packed(pack_wino_nhwc16, arr, layout), shape=list(arr.shape), layout=layout)
        if n.op == "Conv" and is_depthwise(arr.shape[1] * groups, arr.shape[0], groups):
            return w.add(name, _packed(pack_khwc, arr), shape=list(arr.shape), layout="khwc")
        return w.add(name, _packed(pack_conv_nhwc16, arr, groups), shape=list(arr.shape), layout="conv_nhwc16", groups=groups)
    if n.op == "SeparableConv" and key in ("vertical", "horizontal"):
        phases = n.attrs.get("strides", [1, 1])[key == "horizontal"]
        return w.add(name, _packed(pack_conv_mr6, arr, 1, phases), shape=list(arr.shape), layout="conv_mr6", groups=1,
                     **({"phases": phases} if phases > 1 else {}))
    if n.op == "Conv" and key == "weight":
        groups = n.attrs.get("group", 1)
        if not is_depthwise(arr.shape[1] * groups, arr.shape[0], groups):
            return w.add(name, _packed(pack_conv_mr6, arr, groups), shape=list(arr.shape), layout="conv_mr6", groups=groups)
    return w.add(name, arr)


def write_bundle(g: Graph, path: str | Path | None, layout: str = "nhwc", winograd: bool = True,
                 checksums: bool = True, **meta) -> bytes | None:
    """Writes graph `g` (after the passes) as a bundle with its activations in `layout` ("nhwc": the
    conv core's, with NCHW only where an op needs it; "nchw": everywhere), the 3x3 convs that pay by
    Winograd where `winograd` (NHWC only); `meta` goes into the header. path None: returns the bundle's
    bytes instead. checksums=False: every tensor's CRC-32 left at 0 (BundleWriter)."""
    w, graph = _lowered(g, layout, winograd, checksums)
    if path is None:
        return w.to_bytes(graph, **meta)
    w.write(path, graph, **meta)
    return None


def memory_bundle(g: Graph, layout: str = "nhwc", winograd: bool = True) -> Bundle:
    """Graph `g` lowered as write_bundle lowers it, as an in-memory Bundle for edgesep.load (its tensors
    the packed arrays themselves, no checksums: BundleWriter.to_bundle)."""
    w, graph = _lowered(g, layout, winograd, checksums=False)
    return w.to_bundle(graph)


def _lowered(g: Graph, layout: str, winograd: bool, checksums: bool) -> tuple[BundleWriter, dict]:
    """A BundleWriter holding g's weights in their kernels' layouts, and the graph's JSON description."""
    if layout not in ACTIVATION_LAYOUTS:
        raise CompileError(f"layout must be one of {', '.join(ACTIVATION_LAYOUTS)}, got {layout!r}")
    if layout == "nhwc":
        g = to_nhwc(g, winograd)
    w = BundleWriter(checksums)
    nodes = []
    for n in g.nodes:
        if n.op not in OPS:
            raise CompileError(f"node {n.name!r}: op {n.op} has no runtime form (a pass should have lowered it)")
        weights = {k: _add_weight(w, n, k, a) for k, a in n.weights.items()}
        attrs = {k: _json(v) for k, v in n.attrs.items() if layout == "nhwc" or k != "winograd"}  # (NCHW: none)
        nodes.append({"name": n.name, "op": n.op, "inputs": n.inputs, "output": n.output, "attrs": attrs,
                      "weights": weights})
    graph = {"inputs": [{"name": name, "shape": _json(shape), "dtype": "float32"} for name, shape in g.inputs],
             "outputs": [{"name": o, "dtype": "float32"} for o in g.outputs], "nodes": nodes}
    return w, graph
