"""The device-side API: load a bundle, run it. Needs only numpy and the C++ extension."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from . import _core
from .bundle import Bundle, BundleError, read_bundle

Inputs = Union[np.ndarray, "dict[str, np.ndarray]", "list[np.ndarray]"]


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: name, shape (None for a dynamic dim) and dtype."""

    name: str
    shape: tuple
    dtype: np.dtype


def available_isas() -> list[str]:
    """Kernel variants this CPU can run, reference ("ref") first, the default (best) last."""
    return list(_core.available_isas())


class Model:
    """A loaded bundle. Weights stay in the memory-mapped file; a C++ plan (shapes, arena) is built
    per distinct input shape and cached. `run` releases the GIL; concurrent calls take turns."""

    _PLAN_CACHE = 4

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None, isa: str | None = None,
                 verify: bool = True) -> None:
        self._bundle: Bundle = read_bundle(path, verify=verify)
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
        self.num_threads = num_threads or _core.physical_cores()
        self.isa = isa or os.environ.get("EDGESEP_ISA", "")
        g = self._bundle.graph
        self.inputs = [TensorInfo(v["name"], tuple(v["shape"]), np.dtype(np.float32)) for v in g["inputs"]]
        self._plans: OrderedDict[tuple, _core.Plan] = OrderedDict()
        self._lock = threading.Lock()
        # Building the plan for the declared shape (batch 1 where dynamic) checks the whole graph now,
        # so a bad bundle fails at load, not at the first run.
        first = self._plan(tuple(tuple(1 if d is None else d for d in i.shape) for i in self.inputs))
        dynamic = {i for i, v in enumerate(self.inputs) if v.shape[0] is None}
        self.outputs = [TensorInfo(v["name"], tuple(None if (dynamic and k == 0) else d for k, d in enumerate(first.shape(oid))),
                                   np.dtype(np.float32))
                        for v, oid in zip(g["outputs"], self._output_ids)]

    @property
    def path(self) -> Path:
        return self._bundle.path

    @property
    def format_version(self) -> int:
        """The bundle format version of the file."""
        return self._bundle.version

    @property
    def header(self) -> dict:
        """The bundle's header: graph, tensor table, producer and source metadata, compile report."""
        return self._bundle.header

    def _plan(self, shapes: tuple) -> _core.Plan:
        with self._lock:
            plan = self._plans.get(shapes)
            if plan is not None:
                self._plans.move_to_end(shapes)
                return plan
            plan = self._build(shapes)
            self._plans[shapes] = plan
            if len(self._plans) > self._PLAN_CACHE:
                self._plans.popitem(last=False)
            return plan

    def _build(self, shapes: tuple) -> _core.Plan:
        b = self._bundle
        g = b.graph
        plan = _core.Plan(self.num_threads, self.isa)
        ids = {v["name"]: plan.add_input(list(s)) for v, s in zip(g["inputs"], shapes)}
        try:
            for n in g["nodes"]:
                weights = {}
                for wname, ti in n.get("weights", {}).items():
                    e = b.tensors[ti]
                    weights[wname] = (b.tensor(ti), e["layout"], e["shape"])
                ids[n["output"]] = plan.add_node(n["name"], n["op"], [ids[x] for x in n["inputs"]],
                                                 n.get("attrs", {}), weights)
        except _core.PlanError as e:
            raise BundleError(f"{b.path}: {e}") from None
        self._output_ids = [ids[v["name"]] for v in g["outputs"]]
        for oid in self._output_ids:
            plan.add_output(oid)
        plan.finalize()
        return plan

    def _arrange(self, x: Inputs) -> list[np.ndarray]:
        names = [i.name for i in self.inputs]
        if isinstance(x, dict):
            missing, extra = set(names) - set(x), set(x) - set(names)
            if missing or extra:
                raise ValueError(f"inputs must be exactly {names}; missing {sorted(missing)}, unexpected {sorted(extra)}")
            xs = [x[n] for n in names]
        elif isinstance(x, (list, tuple)):
            xs = list(x)
        else:
            xs = [x]
        if len(xs) != len(names):
            raise ValueError(f"model takes {len(names)} inputs {names}, got {len(xs)}")
        for info, a in zip(self.inputs, xs):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"input {info.name!r} must be a numpy array, got {type(a).__name__}")
            if a.dtype != np.float32:
                raise TypeError(f"input {info.name!r} must be float32, got {a.dtype} (use x.astype(np.float32))")
            want = info.shape
            if a.ndim != len(want) or any(w is not None and w != d for w, d in zip(want, a.shape)):
                shown = tuple("N" if w is None else w for w in want)
                raise ValueError(f"input {info.name!r} has shape {a.shape}, expected {shown}")
            if a.size == 0:
                raise ValueError(f"input {info.name!r} is empty (shape {a.shape})")
            if not a.flags.c_contiguous:
                raise ValueError(f"input {info.name!r} is not C-contiguous (use np.ascontiguousarray(x))")
            if not np.isfinite(a).all():
                raise ValueError(f"input {info.name!r} contains NaN or infinity")
        return xs

    def run(self, x: Inputs) -> np.ndarray | dict[str, np.ndarray]:
        """Runs the model. `x`: one float32 C-contiguous array for a one-input model, else a list in
        input order or a dict by input name. Returns one array, or a dict by output name when the model
        has several outputs."""
        xs = self._arrange(x)
        plan = self._plan(tuple(a.shape for a in xs))
        outs = plan.run(xs)
        if len(outs) == 1:
            return outs[0]
        return {info.name: y for info, y in zip(self.outputs, outs)}

    def layers(self, batch: int = 1) -> list[dict]:
        """Per step of the plan at this batch size: name, op, activation, layout ("nhwc" or "nchw"),
        whether it runs by Winograd, input and output shapes (as laid out in memory: N x H x W x C for an
        NHWC step), params, MACs, weight bytes (as stored in the bundle)."""
        shapes = tuple(tuple(batch if d is None else d for d in i.shape) for i in self.inputs)
        plan = self._plan(shapes)
        nodes = self._bundle.graph["nodes"]
        rows = []
        for n, s in zip(nodes, plan.steps()):
            attrs = n.get("attrs", {})
            rows.append({"name": s["name"], "op": n["op"], "activation": attrs.get("activation", "none"),
                         "layout": attrs.get("layout", "nchw"), "winograd": bool(attrs.get("winograd", 0)),
                         "inputs": [tuple(plan.shape(i)) for i in s["inputs"]], "output": tuple(plan.shape(s["output"])),
                         "params": s["params"], "macs": s["macs"],
                         "bytes": sum(self._bundle.tensors[t]["nbytes"] for t in n.get("weights", {}).values())})
        return rows

    def profile(self, x: Inputs, runs: int = 20) -> list[float]:
        """Each step's median wall time in seconds over `runs` runs on `x` (steps as in layers())."""
        xs = self._arrange(x)
        return list(self._plan(tuple(a.shape for a in xs)).profile(xs, runs))

    @property
    def kernel_isa(self) -> str:
        """The kernel variant the plans run ("avx512", "neon", ... or "ref")."""
        return next(iter(self._plans.values())).isa

    def close(self) -> None:
        self._plans.clear()
        self._bundle.close()


def load(path: str | os.PathLike, num_threads: int | None = None, isa: str | None = None, verify: bool = True) -> Model:
    """Opens a bundle (memory-mapped, validated, CRC-checked unless verify=False) and prepares it to run.

    num_threads: threads per run (default: the physical cores). isa: force a kernel variant from
    available_isas() (default: the best this CPU runs; or the EDGESEP_ISA environment variable)."""
    return Model(path, num_threads=num_threads, isa=isa, verify=verify)


def run(bundle: str | os.PathLike, x: Inputs, num_threads: int | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """One call: load `bundle` and run it on `x`."""
    return load(bundle, num_threads=num_threads).run(x)
