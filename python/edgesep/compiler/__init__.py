"""The offline compiler: ONNX -> IR -> exact clean-ups -> bundle. Needs `onnx` (edgesep[compile])."""
from __future__ import annotations

import hashlib
from pathlib import Path

import onnx

from .. import __version__
from .ir import CompileError, Graph
from .lower import write_bundle
from .onnx_import import import_onnx
from .passes import cleanup

__all__ = ["CompileError", "compile_onnx"]


def compile_onnx(src: str | Path, dst: str | Path, input_shapes: dict[str, list] | None = None) -> dict:
    """Compiles the ONNX model at `src` into the bundle `dst`. Returns the compile report (also stored
    in the bundle): node counts before and after, and what each clean-up pass did.

    input_shapes: per input name, dims to fix (None keeps the batch dim dynamic), e.g.
    {"input": [None, 3, 480, 640]} for a model exported with dynamic spatial dims."""
    src = Path(src)
    try:
        raw = src.read_bytes()
        model = onnx.load_from_string(raw)
    except OSError as e:
        raise CompileError(f"{src}: cannot read: {e}") from e
    except Exception as e:  # noqa: BLE001 - any protobuf failure means a bad file
        raise CompileError(f"{src}: not a readable ONNX model: {e}") from e
    graph: Graph = import_onnx(model, input_shapes)
    onnx_nodes = len(model.graph.node)
    imported = len(graph.nodes)
    passes = cleanup(graph)
    report = {"onnx_nodes": onnx_nodes, "imported_nodes": imported, "nodes": len(graph.nodes), "cleanup": passes}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    source = {"file": src.name, "sha256": hashlib.sha256(raw).hexdigest(), "producer": model.producer_name,
              "producer_version": model.producer_version, "opset": opset}
    write_bundle(graph, dst, producer={"name": "edgesep", "version": __version__}, source=source, report=report)
    return report
