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


class MemoryLimitError(MemoryError):
    """A run (or a load) whose plan would need more working memory than the Model's `max_memory`: the
    message names the input shape (the batch) that caused it."""


def default_max_memory() -> int:
    """Half of the machine's physical memory: the default `max_memory` of a Model."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # no sysconf (not Linux): 2 GiB
        return 2 << 30


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def available_isas() -> list[str]:
    """Kernel variants this CPU can run, reference ("ref") first, the default (best) last."""
    return list(_core.available_isas())


class Model:
    """A loaded bundle. Weights stay in the memory-mapped file; a C++ plan (shapes, arena) is built
    per distinct input shape and cached, within `max_memory` bytes for all of them. `run` releases the
    GIL; concurrent calls on one Model take turns; Models run from several threads share the process's
    workers (one run at a time uses them, the others run on their own threads)."""

    _PLAN_CACHE = 4  # plans kept, at most (and within max_memory together)

    def __init__(self, path: str | os.PathLike | bytes | Bundle, num_threads: int | None = None, isa: str | None = None,
                 verify: bool = True, max_memory: int | None = None) -> None:
        cpus = os.cpu_count() or 1
        most = min(_core.LIMITS["max_threads"], 4 * cpus)
        if num_threads is not None and (not isinstance(num_threads, int) or isinstance(num_threads, bool)
                                        or not 1 <= num_threads <= most):
            raise ValueError(f"num_threads must be an int from 1 to {most} (4x this machine's {cpus} CPUs), "
                             f"got {num_threads!r}")
        if max_memory is not None and (not isinstance(max_memory, int) or isinstance(max_memory, bool)
                                       or max_memory < 1):
            raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory!r}")
        self._bundle: Bundle = path if isinstance(path, Bundle) else read_bundle(path, verify=verify)
        self.num_threads = num_threads or _core.physical_cores()
        self.max_memory = max_memory or default_max_memory()
        self.isa = isa or os.environ.get("EDGESEP_ISA", "")
        g = self._bundle.graph
        self.inputs = [TensorInfo(v["name"], tuple(v["shape"]), np.dtype(np.float32)) for v in g["inputs"]]
        self._plans: OrderedDict[tuple, _core.Plan] = OrderedDict()
        self._lock = threading.Lock()
        # Building the plan for the declared shape (batch 1 where dynamic) checks the whole graph now,
        # so a bad bundle fails at load, not at the first run.
        try:
            first = self._plan(tuple(tuple(1 if d is None else d for d in i.shape) for i in self.inputs))
        except MemoryLimitError as e:
            self._bundle.close()
            raise BundleError(f"{self._bundle.path}: {e}") from None
        except BundleError:
            self._bundle.close()
            raise
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

    def memory_bytes(self) -> int:
        """Working memory the cached plans hold (arenas, scratch, tables), in bytes."""
        with self._lock:
            return sum(p.memory_bytes for p in self._plans.values())

    def _plan(self, shapes: tuple) -> _core.Plan:
        with self._lock:
            plan = self._plans.get(shapes)
            if plan is not None:
                self._plans.move_to_end(shapes)
                return plan
            plan = self._build(shapes)
            # Room for the new plan: the least recently used go first.
            while self._plans and (len(self._plans) >= self._PLAN_CACHE or
                                   sum(p.memory_bytes for p in self._plans.values()) + plan.memory_bytes > self.max_memory):
                self._plans.popitem(last=False)
            try:
                plan.finalize()
            except _core.MemoryLimit as e:  # the allocation itself failed
                raise self._memory_error(shapes, e) from None
            self._plans[shapes] = plan
            return plan

    def _memory_error(self, shapes: tuple, err: Exception) -> MemoryLimitError:
        shown = ", ".join(f"{v.name!r} {tuple(s)}" for v, s in zip(self.inputs, shapes))
        return MemoryLimitError(f"input shape {shown}: {err}; this Model's limit is {_gib(self.max_memory)} "
                                f"(edgesep.load(..., max_memory=bytes)); run smaller batches")

    def _build(self, shapes: tuple) -> _core.Plan:
        """A plan for these input shapes, laid out, not yet allocated (plan.memory_bytes known)."""
        b = self._bundle
        g = b.graph
        try:
            plan = _core.Plan(self.num_threads, self.isa, self.max_memory)
            ids = {v["name"]: plan.add_input(list(s)) for v, s in zip(g["inputs"], shapes)}
            for n in g["nodes"]:
                weights = {}
                for wname, ti in n.get("weights", {}).items():
                    e = b.tensors[ti]
                    weights[wname] = (b.tensor(ti), e["layout"], e["shape"])
                ids[n["output"]] = plan.add_node(n["name"], n["op"], [ids[x] for x in n["inputs"]],
                                                 n.get("attrs", {}), weights)
            self._output_ids = [ids[v["name"]] for v in g["outputs"]]
            for oid in self._output_ids:
                plan.add_output(oid)
            plan.layout()
        except _core.MemoryLimit as e:
            raise self._memory_error(shapes, e) from None
        except _core.PlanError as e:
            raise BundleError(f"{b.path}: {e}") from None
        if plan.memory_bytes > self.max_memory:
            raise self._memory_error(shapes, f"needs {_gib(plan.memory_bytes)} of working memory")
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
        return xs

    def _on_plan(self, call, xs: list[np.ndarray]):
        """call(plan, xs) on the plan for these inputs' shapes. The plan checks the values itself (no NaN
        or infinity, in one vectorised pass); where it refuses, the error names the input."""
        plan = self._plan(tuple(a.shape for a in xs))
        try:
            return call(plan, xs)
        except _core.PlanError:
            for info, a in zip(self.inputs, xs):
                if not np.isfinite(a).all():
                    raise ValueError(f"input {info.name!r} contains NaN or infinity") from None
            raise

    def run(self, x: Inputs) -> np.ndarray | dict[str, np.ndarray]:
        """Runs the model. `x`: one float32 C-contiguous array for a one-input model, else a list in
        input order or a dict by input name. Returns one array, or a dict by output name when the model
        has several outputs."""
        outs = None
        if type(x) is np.ndarray and len(self.inputs) == 1 and len(self._plans) == 1:
            # The common call, a few microseconds shorter (a tenth of a small model's run): the one cached
            # plan is for this shape (several: the long way keeps their LRU order), and its run checks
            # dtype, layout, shape and values itself; what it refuses goes the long way, whose checks say
            # what is wrong.
            plan = self._plans.get((x.shape,))
            if plan is not None:
                try:
                    outs = plan.run([x])
                except _core.PlanError:
                    pass
        if outs is None:
            outs = self._on_plan(lambda plan, xs: plan.run(xs), self._arrange(x))
        if len(outs) == 1:
            return outs[0]
        return {info.name: y for info, y in zip(self.outputs, outs)}

    def layers(self, batch: int = 1) -> list[dict]:
        """Per step of the plan at this batch size: name, op, activation, layout ("nhwc" or "nchw"),
        whether it runs by Winograd, input and output shapes (as laid out in memory: N x H x W x C for an
        NHWC step), params, MACs, weight bytes (as stored in the bundle), and whether it has nothing to do
        (in_place: a Concat whose inputs were written into its output)."""
        shapes = tuple(tuple(batch if d is None else d for d in i.shape) for i in self.inputs)
        plan = self._plan(shapes)
        nodes = self._bundle.graph["nodes"]
        rows = []
        for n, s in zip(nodes, plan.steps()):
            attrs = n.get("attrs", {})
            rows.append({"name": s["name"], "op": n["op"], "activation": attrs.get("activation", "none"),
                         "layout": attrs.get("layout", "nchw"), "winograd": bool(attrs.get("winograd", 0)),
                         "inputs": [tuple(plan.shape(i)) for i in s["inputs"]], "output": tuple(plan.shape(s["output"])),
                         "params": s["params"], "macs": s["macs"], "in_place": s["in_place"],
                         "bytes": sum(self._bundle.tensors[t]["nbytes"] for t in n.get("weights", {}).values())})
        return rows

    def profile(self, x: Inputs, runs: int = 20) -> list[float]:
        """Each step's median wall time in seconds over `runs` runs on `x` (steps as in layers())."""
        return list(self._on_plan(lambda plan, xs: plan.profile(xs, runs), self._arrange(x)))

    @property
    def kernel_isa(self) -> str:
        """The kernel variant the plans run ("avx512", "neon", ... or "ref")."""
        return next(iter(self._plans.values())).isa

    def close(self) -> None:
        self._plans.clear()
        self._bundle.close()


def load(path: str | os.PathLike | bytes | Bundle, num_threads: int | None = None, isa: str | None = None,
         verify: bool = True, max_memory: int | None = None) -> Model:
    """Opens a bundle (memory-mapped, validated, CRC-checked unless verify=False) and prepares it to run;
    `path` may also be a bundle's bytes, or a Bundle the compiler made in memory (BundleWriter.to_bundle:
    taken as it is).

    num_threads: threads per run (default: the physical cores). isa: force a kernel variant from
    available_isas() (default: the best this CPU runs; or the EDGESEP_ISA environment variable).
    max_memory: bytes of working memory the Model's plans may hold together (default: half the
    machine's memory); a run whose batch would need more raises MemoryLimitError."""
    return Model(path, num_threads=num_threads, isa=isa, verify=verify, max_memory=max_memory)


def run(bundle: str | os.PathLike, x: Inputs, num_threads: int | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """One call: load `bundle` and run it on `x`."""
    return load(bundle, num_threads=num_threads).run(x)
