"""The offline compiler: ONNX -> IR -> exact clean-ups -> compression passes -> bundle.
Needs `onnx` (edgesep[compile])."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx

from .. import __version__
from .execute import model_of, run
from .ir import CompileError, Graph
from .lower import write_bundle
from .onnx_import import import_onnx
from .passes import cleanup
from .costs import Timer, choose_transforms, offer_transforms, write_candidates
from .plan import CHECK_FRACTION, Budget, Checks, plan_passes
from .prune import Planner as PrunePlanner
from .prune import Spec as PruneSpec
from .prune import layer_changes, prune_pass
from .slim import Planner as SlimPlanner
from .separable import Planner as SeparablePlanner
from .separable import Spec, separable_pass
from .sparse_fc import Planner as SparsePlanner
from .sparse_fc import Spec as SparseSpec
from .sparse_fc import sparse_fc_pass

__all__ = ["CompileError", "candidates", "compile_onnx"]


def _check_calib(g: Graph, calib: np.ndarray | None, labels: np.ndarray | None) -> None:
    if calib is None:
        if labels is not None:
            raise CompileError("--labels needs --calib")
        return
    if len(g.inputs) != 1:
        raise CompileError("calibration data is supported for one-input models")
    name, shape = g.inputs[0]
    if not isinstance(calib, np.ndarray) or calib.dtype != np.float32 or calib.ndim != len(shape) or len(calib) == 0 \
            or any(d is not None and d != c for d, c in zip(shape[1:], calib.shape[1:])):
        raise CompileError(f"calibration data must be a non-empty float32 array shaped like input {name!r} "
                           f"{['N', *shape[1:]]}, got {getattr(calib, 'dtype', type(calib))} {getattr(calib, 'shape', '')}")
    if shape[0] is not None and len(calib) % shape[0]:
        raise CompileError(f"input {name!r} has a fixed batch of {shape[0]}: give a multiple of it")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(calib)):
        raise CompileError(f"labels must be one integer per calibration input ({len(calib)}), got shape {labels.shape}")


def compile_onnx(src: str | Path, dst: str | Path, input_shapes: dict[str, list] | None = None,
                 separable: str | None = None, sparse_fc: str | None = None, prune: str | None = None,
                 slim: str | None = None, optimize: str | None = None, calib: np.ndarray | None = None,
                 labels: np.ndarray | None = None, max_output_error: float | None = None,
                 max_accuracy_drop: float | None = None, max_disagreement: float | None = None,
                 confidence: float = 0.9, allocation: str = "greedy", check_fraction: float = CHECK_FRACTION,
                 cost_table: dict | None = None, num_threads: int = 1, min_speedup: float = 1.0, progress: bool = False, layout: str = "nhwc", winograd: bool = True) -> dict:
    """Compiles the ONNX model at `src` into the bundle `dst`. Returns the compile report (also stored
    in the bundle): node counts, what each clean-up and each compression pass did.

    input_shapes: per input name, dims to fix (None keeps the batch dim dynamic), e.g.
    {"input": [None, 3, 480, 640]} for a model exported with dynamic spatial dims.
    optimize: "auto" plans every compression pass together within the budget (compiler/plan.py): per
    unit (channel group, conv, Fc layer) dense or one of its candidate forms, the fastest plan whose
    check passes. A pass given its own fixed spec below is applied as given instead (an override).
    prune: "R" or "auto", with ",score=mean|l1|l2|activation|recon" and ",round=N": structured filter pruning
    (compiler/prune.py), the fraction R of the channels of every prunable channel group, or planned.
    slim: "auto": approximate slimming, planned (compiler/slim.py: a conv absorbs the pool after it);
    the exact merges run on every compile (compiler/passes.py).
    separable: "energy=T", "ratio=R" or "auto" (compiler/separable.py).
    sparse_fc: "S" (sparsity), "S,block=4x1", "dict=R", or planned: "auto" (sparsity) or "dict" (ratio)
    (compiler/sparse_fc.py).
    calib [S, ...] float32 (and labels [S] int): calibration inputs (training data will do); with them
    every pass refits by least squares. The planned passes are checked on `check_fraction` of them, which
    no refit sees, with perturbed copies, and fit to the rest.
    max_disagreement / max_accuracy_drop / max_output_error (one of them, for the planned passes): the
    budget, the rate of top-1 changes against the original model, of inputs turned from right to wrong
    (needs labels), both as a one-sided upper bound at `confidence` on the check inputs, or the
    relative L2 error of the first output there.
    allocation: "greedy" or "threshold" (see compiler/plan.py). cost_table: layer times measured on the
    target device (`edgesep profile`, compiler/costs.py), used instead of this machine's where it has them,
    and to run each 3x3 conv by the Winograd transform (or none) it times fastest there (a planned compile
    runs each by the transform timed fastest, here or there).
    num_threads, min_speedup: a layer is replaced only if, timed with that many threads, its new form
    runs more than min_speedup times faster than the dense layer.
    layout: the activations' layout in the bundle, "nhwc" (the conv core's; NCHW only where an op needs
    it) or "nchw" (the first core's, kept for comparison; see compiler/layout.py).
    winograd: on NHWC, run 3x3 convs at stride 1 by Winograd where it pays (compiler/layout.py,
    winograd_tile): F(4x4, 3x3) from 16 channels on 28x28+ maps and 32 on 7x7+, else F(2x2, 3x3) from 32
    (1.2-2.9x faster than direct; their weights take 4x / 16/9 the bytes:
    resnet18's bundle 47 -> 97 MB). The passes' timings use it either way."""
    src = Path(src)
    try:
        raw = src.read_bytes()
        model = onnx.load_from_string(raw)
    except OSError as e:
        raise CompileError(f"{src}: cannot read: {e}") from e
    except Exception as e:  # noqa: BLE001 - any protobuf failure means a bad file
        raise CompileError(f"{src}: not a readable ONNX model: {e}") from e
    graph: Graph = import_onnx(model, input_shapes)
    report: dict = {"onnx_nodes": len(model.graph.node), "imported_nodes": len(graph.nodes),
                    "cleanup": cleanup(graph)}
    _check_calib(graph, calib, labels)
    if optimize not in (None, "auto"):
        raise CompileError(f"--optimize {optimize!r}: expected auto")
    if slim not in (None, "auto"):
        raise CompileError(f"--slim {slim!r}: expected auto")
    pruning = PruneSpec.parse(prune) if prune else None
    sep = Spec.parse(separable) if separable else None
    sparse = SparseSpec.parse(sparse_fc) if sparse_fc else None
    planned = []  # the passes the planner decides, in the order they are applied
    if pruning is None and optimize or pruning is not None and pruning.ratio is None:
        planned.append(PrunePlanner(pruning or PruneSpec(None)))
    if slim or optimize:
        planned.append(SlimPlanner())
    if sep is None and optimize or sep is not None and sep.mode == "auto":
        planned.append(SeparablePlanner())
    if sparse is None and optimize or sparse is not None and sparse.searched:
        planned.append(SparsePlanner(sparse or SparseSpec("auto")))
    budgets = {k: v for k, v in (("output", max_output_error), ("accuracy", max_accuracy_drop),
                                 ("disagreement", max_disagreement)) if v is not None}
    if len(budgets) > 1:
        raise CompileError("give one budget: --max-disagreement, --max-accuracy-drop or --max-output-error")
    if planned and (calib is None or not budgets):
        what = "--optimize auto" if optimize else "a searched setting (auto, --slim auto or --sparse-fc dict)"
        raise CompileError(f"{what} needs calibration data (--calib) and a budget (--max-disagreement, "
                           "--max-accuracy-drop with --labels, or --max-output-error)"
                           + ("; or give --sparse-fc the MAC ratio, dict=R" if sparse and sparse.mode == "dict" else ""))
    fit = calib
    if calib is not None and not planned and (sep or sparse or pruning):  # the uncompressed outputs, to report against
        reference = run(model_of(graph, num_threads=num_threads), calib)[0]
    if planned:
        budget = Budget(*next(iter(budgets.items())), confidence)
        fit_idx, check_idx = _hold_out(len(calib), graph.inputs[0][1][0], check_fraction)
        fit = calib[fit_idx]
        checks = Checks(graph, calib[check_idx], None if labels is None else labels[check_idx], budget, num_threads)
    if pruning is not None and pruning.ratio is not None:
        report["prune"] = prune_pass(graph, pruning, fit, num_threads)
        report["prune_spec"] = prune
    if sep is not None and sep.mode != "auto":
        report["separable"] = separable_pass(graph, sep, num_threads, fit, _progress(progress, "separable"), min_speedup)
        report["separable_spec"] = separable
    if sparse is not None and not sparse.searched:
        report["sparse_fc"] = sparse_fc_pass(graph, sparse, num_threads, fit, _progress(progress, "sparse-fc"), min_speedup)
        report["sparse_fc_spec"] = sparse_fc
    if planned:
        before = model_of(graph, layout="nchw").layers(1)
        timer = Timer(num_threads, cost_table, transforms=winograd and layout == "nhwc")
        report["plan"] = plan_passes(graph, planned, fit, checks, timer, min_speedup, allocation, _progress(progress, "plan"))
        report["plan"].update(layer_changes(before, graph))
        report["plan"]["passes"] = [p.kind for p in planned]
    elif calib is not None and (sep or sparse or pruning):
        out = run(model_of(graph, num_threads=num_threads), calib)[0]
        report["calibration"] = {"samples": int(len(calib)), "output_error": _rel_error(out, reference)}
        if labels is not None:
            report["calibration"].update({"accuracy_before": float((reference.argmax(1) == labels).mean()),
                                          "accuracy_after": float((out.argmax(1) == labels).mean())})
    elif cost_table is not None and winograd and layout == "nhwc":
        report["transforms_from_cost_table"] = choose_transforms(graph, Timer(table=cost_table, measure=False))
    report["nodes"] = len(graph.nodes)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    source = {"file": src.name, "sha256": hashlib.sha256(raw).hexdigest(), "producer": model.producer_name,
              "producer_version": model.producer_version, "opset": opset}
    write_bundle(graph, dst, layout=layout, winograd=winograd, producer={"name": "edgesep", "version": __version__}, source=source, report=report)
    return report


def candidates(src: str | Path, dst: str | Path, input_shapes: dict[str, list] | None = None,
               passes: tuple[str, ...] = ("prune", "slim", "separable", "sparse_fc")) -> int:
    """Writes every layer form the planner would time for the ONNX model at `src`, and each 3x3 conv in
    each Winograd transform (compiler/costs.py), to the zip `dst`, for `edgesep profile` on the device;
    returns how many."""
    graph = import_onnx(onnx.load(str(src)), input_shapes)
    cleanup(graph)
    timer = Timer(measure=False)
    makers = {"prune": lambda: PrunePlanner(PruneSpec(None)), "slim": SlimPlanner, "separable": SeparablePlanner,
              "sparse_fc": lambda: SparsePlanner(SparseSpec("auto"))}
    for name in passes:
        makers[name]().units(graph, timer)
    offer_transforms(graph, timer)
    return write_candidates(timer, dst)


def _hold_out(samples: int, fixed_batch: int | None, fraction: float = CHECK_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the calibration inputs the layers are fitted to and of those a budget is checked on:
    `fraction` of them, evenly spread (every fifth at 0.2; whole batches, for a model with a fixed batch;
    the last one if that would be none). A budget checked on the inputs the refits saw is met there and
    overrun on new data (on the VGG-MNIST model a 1-point budget let a 1.9-point held-out drop through)."""
    if not 0 < fraction < 1:
        raise CompileError(f"--check-fraction must be in (0, 1), got {fraction}")
    unit = fixed_batch or 1
    groups = samples // unit
    if groups < 2:
        raise CompileError(f"a budgeted search needs calibration inputs to fit to and others to check on: give at "
                           f"least {2 * unit} (it holds {fraction:g} of them out), got {samples}")
    i = np.arange(groups)
    held = np.floor((i + 1) * fraction + 1e-9) > np.floor(i * fraction + 1e-9)
    if not held.any():
        held[-1] = True
    idx = i[:, None] * unit + np.arange(unit)
    return idx[~held].ravel(), idx[held].ravel()


def _rel_error(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-30))


def _progress(enabled: bool, what: str):
    """A callback that advances a progress bar by one layer (tqdm, when installed and enabled)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return lambda name: print(f"  {what}: {name}", flush=True)
    bar = tqdm(desc=what, unit="layer", leave=False)
    return lambda name: (bar.set_postfix_str(name[-30:]), bar.update(1))
