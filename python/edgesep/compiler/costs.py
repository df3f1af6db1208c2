"""Layer costs for the planner: each candidate form (a chain of nodes at an input shape) timed on this
machine's runtime, or read from a cost table measured on the target device.

On the device, no onnx needed: `edgesep candidates m.onnx -o m.cands.zip` (here) writes every chain the
planner would time as a small bundle named by its signature; `edgesep profile m.cands.zip -o pi4.json`
(there; edgesep.profile) times each; `edgesep compile ... --cost-table pi4.json` plans with those times.

A 3x3 conv that can run by Winograd is timed in each transform (direct, F(2x2), F(4x4)) and priced at the
fastest, and a planned model runs each such conv by the transform timed fastest (choose_transforms): a
conv pruned on both sides, whose form no candidate holds, by an estimate from its forms pruned on one side.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from .execute import chain_graph, node_shapes, time_nodes
from .ir import CompileError, Graph, Node
from .layout import winograd_eligible
from .lower import write_bundle

#: The Winograd transforms a 3x3 conv is timed in (compiler/layout.py: winograd_tile): direct, F(2x2),
#: F(4x4); for convs at least TRANSFORM_MIN_CHANNELS wide (on an AVX2 Zen 3, F(4x4) ran 8 -> 16 convs on
#: 14x14-56x56 maps 1.2-1.45x faster than direct, 4 -> 8 on 28x28 1.07x: docs/planner.md).
TRANSFORMS = (0, 2, 4)
TRANSFORM_MIN_CHANNELS = 8


def signature(nodes: list[Node], input_shape: tuple) -> str:
    """What a chain's time depends on: ops, attributes, weight shapes and the input shape (not names,
    not weight values; a sparse weight's stored block count is in its shapes)."""
    desc = [list(input_shape)] + [[n.op, sorted((k, repr(v)) for k, v in n.attrs.items()),
                                   sorted((k, list(w.shape), str(w.dtype)) for k, w in n.weights.items())] for n in nodes]
    return hashlib.sha1(json.dumps(desc, default=repr).encode()).hexdigest()[:16]


class Timer:
    """Seconds of a chain of nodes: from `table` (a cost table's "seconds" by signature) where it has
    the chain, else measured here once (unless measure=False: then 0, for listing the candidates). Every
    chain asked about is kept in `chains` by signature. With transforms (on an NHWC compile that may run
    Winograd), a single conv that can run by Winograd and has no transform set is timed in each of
    TRANSFORMS, and its time is the fastest's."""

    def __init__(self, num_threads: int = 1, table: dict | None = None, measure: bool = True, transforms: bool = True):
        self.num_threads, self.measure, self.transforms = num_threads, measure, transforms
        self.table = (table or {}).get("seconds", {})
        self.chains: dict[str, tuple[list[Node], tuple]] = {}
        self.measured: dict[str, float] = {}
        self.looked_up = self.timed = 0

    def __call__(self, nodes: list[Node], input_shape: tuple) -> float:
        if self.transforms and len(nodes) == 1 and "winograd" not in nodes[0].attrs:
            if variants := transform_variants(nodes[0]):
                return min(self._seconds([v], input_shape) for v in variants)
        return self._seconds(nodes, input_shape)

    def _seconds(self, nodes: list[Node], input_shape: tuple) -> float:
        key = signature(nodes, input_shape)
        self.chains.setdefault(key, ([n.copy() for n in nodes], tuple(input_shape)))
        if key in self.table:
            self.looked_up += 1
            return float(self.table[key])
        if not self.measure:
            return 0.0
        if key not in self.measured:  # a chain asked about again (a layer in two channel groups) is timed once
            self.timed += 1
            self.measured[key] = time_nodes(nodes, input_shape, self.num_threads)
        return self.measured[key]

    def known(self, nodes: list[Node], input_shape: tuple) -> float | None:
        """The chain's seconds if the table has them or they were measured here, else None."""
        key = signature(nodes, input_shape)
        return self.table[key] if key in self.table else self.measured.get(key)


def transform_variants(n: Node) -> list[Node] | None:
    """A conv in each of TRANSFORMS (its `winograd` attribute set, whatever it had), or None where it has
    no choice."""
    if not winograd_eligible(n) or min(n.weights["weight"].shape[:2]) < TRANSFORM_MIN_CHANNELS:
        return None
    attrs = {k: v for k, v in n.attrs.items() if k != "winograd"}
    return [Node(n.op, n.name, list(n.inputs), n.output, {**attrs, "winograd": t}, n.weights) for t in TRANSFORMS]


def offer_transforms(g: Graph, timer: Timer) -> None:
    """Adds to the timer's chains every transform of g's convs (the planner's pruned and refit layers
    added theirs when timed), for the device to time."""
    shapes = node_shapes(g)
    for n in g.nodes:
        if transform_variants(n):
            timer([n], shapes[n.name][0])


def choose_transforms(g: Graph, timer: Timer, original: Graph | None = None) -> int:
    """Sets each of g's convs that can run by Winograd to the transform the timer holds fastest (a cost
    table's or measured here; nothing is measured anew); returns how many it set (the others run by
    compiler/layout.py's rule). A conv of `original` (g before planning) pruned since on both sides,
    whose form no candidate holds, takes each transform's time as the product of its forms pruned on
    the input side alone and on the output side alone over the original's (a conv's time goes as input
    x output channels, as the planner's Costs assume)."""
    shapes = node_shapes(g)
    before = {n.name: n for n in original.nodes} if original is not None else {}
    before_shapes = node_shapes(original) if original is not None else {}
    chosen = 0
    for n in g.nodes:
        n.attrs.pop("winograd", None)
        if not (variants := transform_variants(n)):
            continue
        seconds = [timer.known([v], shapes[n.name][0]) for v in variants]
        if None in seconds and n.name in before and winograd_eligible(before[n.name]):
            seconds = _estimated(n, before[n.name], shapes[n.name][0], before_shapes[n.name][0], timer)
        if None not in seconds:
            n.attrs["winograd"] = TRANSFORMS[int(np.argmin(seconds))]
            chosen += 1
    return chosen


def _estimated(n: Node, was: Node, shape: tuple, was_shape: tuple, timer: Timer) -> list[float | None]:
    """Per transform, the seconds of conv n, `was` pruned on both sides: its time pruned on the input side
    alone x on the output side alone / dense, from the timer; None where a form is missing."""
    out_ch, in_ch = n.weights["weight"].shape[:2]
    inputs_only = Node(was.op, was.name, list(was.inputs), was.output, dict(was.attrs),
                       {**was.weights, "weight": was.weights["weight"][:, :in_ch]})
    outputs_only = Node(n.op, n.name, list(n.inputs), n.output, dict(n.attrs),
                        {k: (w[:out_ch] if w.ndim and w.shape[0] == was.weights["weight"].shape[0] else w)
                         for k, w in was.weights.items()})
    forms = [(inputs_only, shape), (outputs_only, was_shape), (was, was_shape)]
    seconds = []
    for t in range(len(TRANSFORMS)):
        ins, outs, dense = (timer.known([transform_variants(m)[t]], s) for m, s in forms)
        seconds.append(ins * outs / dense if None not in (ins, outs, dense) and dense > 0 else None)
    return seconds


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
