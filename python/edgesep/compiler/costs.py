"""Layer costs for the planner: each candidate form (a chain of nodes at an input shape) timed on this
machine's runtime, or read from a cost table measured on the target device.

On the device, no onnx needed: `edgesep candidates m.onnx -o m.cands.zip` (here) writes every chain the
planner would time as a small bundle named by its signature; `edgesep profile m.cands.zip -o pi4.json`
(there; edgesep.profile) times each; `edgesep compile ... --cost-table pi4.json` plans with those times.
The candidates also hold each 3x3 conv that can run by Winograd in each of its transforms (direct,
F(2x2), F(4x4)), and a compile with the table runs every conv it has all three for by the fastest
(choose_transforms); the others by compiler/layout.py's rule, measured on x86.
"""
from __future__ import annotations

import copy
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from .execute import chain_graph, node_shapes, time_nodes
from .ir import CompileError, Graph, Node
from .layout import winograd_eligible
from .lower import write_bundle

#: The Winograd transforms a 3x3 conv is offered in (compiler/layout.py: winograd_tile): direct, F(2x2),
#: F(4x4); to convs at least TRANSFORM_MIN_CHANNELS wide (narrower, the transforms cost more than they
#: save on every machine measured: docs/runtime.md).
TRANSFORMS = (0, 2, 4)
TRANSFORM_MIN_CHANNELS = 16


def signature(nodes: list[Node], input_shape: tuple) -> str:
    """What a chain's time depends on: ops, attributes, weight shapes and the input shape (not names,
    not weight values; a sparse weight's stored block count is in its shapes)."""
    desc = [list(input_shape)] + [[n.op, sorted((k, repr(v)) for k, v in n.attrs.items()),
                                   sorted((k, list(w.shape), str(w.dtype)) for k, w in n.weights.items())] for n in nodes]
    return hashlib.sha1(json.dumps(desc, default=repr).encode()).hexdigest()[:16]


class Timer:
    """Seconds of a chain of nodes: from `table` (a cost table's "seconds" by signature) where it has
    the chain, else measured here once (unless measure=False: then 0, for listing the candidates). Every
    chain asked about is kept in `chains` by signature."""

    def __init__(self, num_threads: int = 1, table: dict | None = None, measure: bool = True):
        self.num_threads, self.measure = num_threads, measure
        self.table = (table or {}).get("seconds", {})
        self.chains: dict[str, tuple[list[Node], tuple]] = {}
        self.measured: dict[str, float] = {}
        self.looked_up = self.timed = 0

    def __call__(self, nodes: list[Node], input_shape: tuple) -> float:
        key = signature(nodes, input_shape)
        self.chains.setdefault(key, ([copy.deepcopy(n) for n in nodes], tuple(input_shape)))
        if key in self.table:
            self.looked_up += 1
            return float(self.table[key])
        if not self.measure:
            return 0.0
        if key not in self.measured:  # a chain asked about again (a layer in two channel groups) is timed once
            self.timed += 1
            self.measured[key] = time_nodes(nodes, input_shape, self.num_threads)
        return self.measured[key]


def transform_variants(n: Node) -> list[Node] | None:
    """A conv in each of TRANSFORMS (its `winograd` attribute set), or None where it has no choice."""
    if not winograd_eligible(n) or min(n.weights["weight"].shape[:2]) < TRANSFORM_MIN_CHANNELS:
        return None
    return [Node(n.op, n.name, list(n.inputs), n.output, {**n.attrs, "winograd": t}, n.weights) for t in TRANSFORMS]


def offer_transforms(g: Graph, timer: Timer) -> None:
    """Adds to the timer's chains every transform of g's convs and of the single convs it already holds
    (the planner's pruned and refit layers), for the device to time."""
    shapes = node_shapes(g)
    for nodes, shape in [([n], shapes[n.name][0]) for n in g.nodes] + list(timer.chains.values()):
        if len(nodes) == 1:
            for v in transform_variants(nodes[0]) or []:
                timer([v], shape)


def choose_transforms(g: Graph, table: dict) -> int:
    """Sets each of g's convs that the cost table (`edgesep profile`'s) times in every transform to the
    fastest; returns how many it set (the others keep compiler/layout.py's rule)."""
    convs = [(n, variants) for n in g.nodes if (variants := transform_variants(n))]
    if not convs:
        return 0
    seconds, shapes, chosen = table.get("seconds", {}), node_shapes(g), 0
    for n, variants in convs:
        keys = [signature([v], shapes[n.name][0]) for v in variants]
        if all(k in seconds for k in keys):
            n.attrs["winograd"] = TRANSFORMS[int(np.argmin([seconds[k] for k in keys]))]
            chosen += 1
    return chosen


def write_candidates(timer: Timer, path: str | Path) -> int:
    """The timer's chains as bundles in a zip (one per signature, `<signature>.esb`); returns how many."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key, (nodes, shape) in timer.chains.items():
            z.writestr(f"{key}.esb", write_bundle(chain_graph(nodes, shape), None))
    return len(timer.chains)


def read_cost_table(path: str | Path) -> dict:
    """A cost table written by `edgesep profile`, checked for shape."""
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise CompileError(f"--cost-table {path}: not a readable cost table: {e}") from e
    seconds = table.get("seconds") if isinstance(table, dict) else None
    if not isinstance(seconds, dict) or not all(isinstance(v, (int, float)) and np.isfinite(v) and v >= 0
                                                for v in seconds.values()):
        raise CompileError(f"--cost-table {path}: expected {{'seconds': {{signature: seconds}}, ...}} "
                           "as `edgesep profile` writes it")
    return table
