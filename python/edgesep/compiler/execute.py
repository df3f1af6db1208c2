"""Running IR graphs on the runtime during compilation: value shapes, intermediate activations and
layer timings, all through the public runtime API (a bundle built in memory, edgesep.load)."""
from __future__ import annotations

import copy
import functools

import numpy as np

from ..profile import chain_seconds
from ..report import interleaved_seconds
from ..runtime import Model, load
from .cache import Cache
from .ir import Graph, Node
from .lower import memory_bundle
from .passes import drop_dead


def model_of(g: Graph, outputs: list[str] | None = None, num_threads: int = 1, isa: str | None = None,
             layout: str = "nhwc") -> Model:
    """The graph (with `outputs` as its outputs, if given) loaded on the runtime (kernel variant `isa`,
    default the best; activations in `layout`, as compiler.layout chooses)."""
    if outputs is not None:
        g = copy.copy(g)
        g.nodes = list(g.nodes)
        g.outputs = list(outputs)
        drop_dead(g)
    return load(memory_bundle(g, layout=layout), num_threads=num_threads, isa=isa)


def run(model: Model, x: np.ndarray | list[np.ndarray], batch: int = 128) -> list[np.ndarray]:
    """Runs `model` over x (one array per input, all as long) in batches (the model's own batch if its
    export fixes one); returns every output, concatenated."""
    xs = x if isinstance(x, list) else [x]
    batch = model.inputs[0].shape[0] or batch
    outs: list[list[np.ndarray]] = []
    for i in range(0, len(xs[0]), batch):
        y = model.run([np.ascontiguousarray(a[i:i + batch]) for a in xs])
        outs.append(list(y.values()) if isinstance(y, dict) else [y])
    return outs[0] if len(outs) == 1 else [np.concatenate(parts) for parts in zip(*outs)]


def node_shapes(g: Graph) -> dict[str, tuple[tuple, tuple]]:
    """Per node name: (first input's shape, output shape) at batch 1, logical (NCHW)."""
    return {r["name"]: (r["inputs"][0], r["output"]) for r in model_of(g, layout="nchw").layers(1)}


def chain_graph(nodes: list[Node], input_shape: tuple) -> Graph:
    """The chain `nodes` (copies; the first reads "x") as a graph of its own at `input_shape`, its values'
    shapes known, so that it lowers as it does inside its model (a 3x3 conv's Winograd tile depends on its
    map: compiler/layout.py, winograd_tile)."""
    g = Graph([("x", list(input_shape))], [nodes[-1].output], [n.copy() for n in nodes])  # (weights packed once)
    g.nodes[0].inputs = ["x"]
    made = {n.name: n.output for n in g.nodes}
    g.shapes = {"x": [None, *input_shape[1:]],
                **{made[name]: [None, *out[1:]] for name, (_, out) in node_shapes(g).items() if name in made}}
    return g


def time_nodes(nodes: list[Node], input_shape: tuple, num_threads: int, runs: int = 15) -> float:
    """Seconds of the chain `nodes` (first reads "x") on the runtime, at `input_shape`, as inside a whole
    model (profile.chain_seconds: its steps' medians, without a run's copies in and out)."""
    m = model_of(chain_graph(nodes, input_shape), num_threads=num_threads)
    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    return chain_seconds(m, x, runs)


def time_graphs(graphs: list[Graph], num_threads: int, rounds: int = 10, runs: int = 3) -> list[float]:
    """Median seconds of each whole graph (one input) at batch 1, or the batch its export fixes, measured
    interleaved (report.interleaved_seconds: `rounds` turns of `runs` runs each), so that a change in the
    machine's speed hits all alike."""
    x = np.random.default_rng(0).standard_normal([d or 1 for d in graphs[0].inputs[0][1]]).astype(np.float32)
    models = [model_of(g, num_threads=num_threads) for g in graphs]
    return interleaved_seconds([functools.partial(m.run, x) for m in models], rounds, runs, warmup=0)


def preactivation(g: Graph, node: Node, x: np.ndarray, num_threads: int = 1, xin: np.ndarray | None = None) -> np.ndarray:
    """The output of `node` (a Conv or Fc of g) before its activation, with g fed x (xin: node's input
    then, if known)."""
    if xin is None:
        xin = run(model_of(g, [node.inputs[0]], num_threads), x)[0]
    bare = Node(node.op, node.name, ["x"], node.output, {**node.attrs, "activation": "none"},
                {k: v for k, v in node.weights.items() if k != "slope"})
    return run(model_of(Graph([("x", [None, *xin.shape[1:]])], [node.output], [bare])), xin)[0]


class Stage:
    """A graph as it stands before a pass changes copies of it, with what the refits need of it on the
    fit inputs `x`: a value's activations, a layer's output before its activation (the target the changed
    network is refit to), kept in `cache` (compiler/cache.py: shared by the stages of one planning, a
    stage whose layers are those of an earlier one finds their activations there). The planner tries
    dozens of candidates on one stage."""

    def __init__(self, g: Graph, x: np.ndarray, num_threads: int = 1, cache: Cache | None = None):
        self.graph, self.x, self.num_threads = g.copy(), x, num_threads
        self.cache = cache or Cache()
        self._memo: dict = {}

    def memo(self, key, make):
        """make(), computed once per key on this stage (a pass's per-layer work shared by its candidates)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def activations(self, value: str) -> np.ndarray:
        return self.cache.values(self.graph, [value], self.x, self.num_threads)[0]

    def target(self, name: str) -> np.ndarray:
        node = next(n for n in self.graph.nodes if n.name == name)
        keys = self.memo("keys", lambda: self.cache.keys(self.graph))
        return self.cache.memo(("target", self.cache.token(self.x), keys[node.output]), lambda: preactivation(
            self.graph, node, self.x, self.num_threads, self.activations(node.inputs[0])))


def adopt_if_faster(g: Graph, node: Node, nodes: list[Node], row: dict, t_dense: float, t_new: float,
                    min_speedup: float, status: str) -> dict:
    """Puts `nodes` in place of `node` in g if the measured times say they are more than min_speedup
    times faster; returns the report row with its status either way."""
    if t_dense <= min_speedup * t_new:
        return {**row, "status": f"dense: measured speed-up {t_dense / t_new:.2f} <= {min_speedup:g}"}
    g.nodes = g.replaced(node, nodes).nodes
    return {**row, "status": status}
