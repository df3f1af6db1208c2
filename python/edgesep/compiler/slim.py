"""Approximate slimming (DeepRebirth's streamline slimming, its layer-wise step without SGD): a conv whose
output goes only to a pooling layer (through the conv's activation) is replaced by one conv at the pool's
stride that computes the pooled output directly, its weights fitted by least squares on calibration data.
The conv then computes one output pixel per pool window instead of every pixel the pool reads: a 3x3
conv before a 2x2 max-pool becomes a 3x3 conv at stride 2 (a quarter of the MACs, 2.0-2.5x faster on the
NHWC core measured with the pool) or a 4x4 conv at stride 2 (the pool window's whole receptive field,
1.2-2.2x). It changes what the model computes, so it is planned under the budget like the other
passes (compiler/plan.py): `--slim auto`, and part of `--optimize auto`. docs/slimming.md has the
measurements.

The fit: the replacement's output before its activation should match, for a max-pool, the max over the
window of the original conv's output before its activation (the same thing after a non-decreasing
activation, which a max-pool commutes with), for an average pool, the pool's output itself (its
activation, ReLU or a clip, leaves that unchanged). Ridge-regularised towards the original kernel
averaged over the pool window's shifts (what an average pool after the conv computes exactly, when
the window covers it): where the calibration set has few pixels, as behind the last pool of a small
net, the fit stays near it instead of overfitting.
"""
from __future__ import annotations

import numpy as np

from .execute import Stage, model_of, node_shapes, run
from .ir import CompileError, Graph, Node
from .plan import Option, Unit
from .prune import normal_equations

POOLS = ("MaxPool", "AveragePool")
# Non-decreasing activations, which a max-pool commutes with; before an average pool, those that leave
# the pooled (already activated) values unchanged.
MONOTONE = ("none", "relu", "clip", "leaky_relu", "prelu", "sigmoid", "hard_sigmoid", "tanh")
IDEMPOTENT = ("none", "relu", "clip")
KERNELS = ("same", "window")  # the replacement's kernel: the conv's own, or the pool window's receptive field
RIDGE = 1e-3  # the ridge towards the prior, a fraction of the mean diagonal of A^T A (docs/slimming.md)


def pool_after(g: Graph, conv: Node) -> Node | None:
    """The pooling layer that alone reads conv's output, if there is one."""
    readers = g.consumers(conv.output)
    if conv.output in g.outputs or len(readers) != 1 or readers[0].op not in POOLS:
        return None
    return readers[0]


def why_not(g: Graph, conv: Node) -> str | None:
    """Why conv cannot absorb the pool after it (None: it can)."""
    if conv.op != "Conv":
        return "not a conv"
    pool = pool_after(g, conv)
    if pool is None:
        return "its output goes elsewhere than one pooling layer"
    a = conv.attrs
    if len(conv.inputs) != 1 or a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])) \
            or any(d != 1 for d in pool.attrs.get("dilations", [1, 1])):
        return "a grouped, dilated or residual conv, or a dilated pool"
    if np.prod(pool.attrs["strides"]) < 2:
        return "the pool keeps the resolution"
    act = conv.activation
    if pool.op == "MaxPool" and (act not in MONOTONE or act in ("leaky_relu", "prelu") and
                                 (a.get("alpha", 0.01) < 0 or np.any(conv.weights.get("slope", 0) < 0))):
        return f"activation {act} before a max-pool is not non-decreasing"
    if pool.op == "AveragePool" and act not in IDEMPOTENT:
        return f"activation {act} before an average pool"
    return None


def geometry(conv: Node, pool: Node, kernel: str, in_hw: tuple, out_hw: tuple) -> dict | None:
    """The replacement conv's kernel_shape, strides and pads (kernel "same" or "window"), computing the
    pool's out_hw pixels from the conv's input of in_hw, each centred on the pool window's receptive
    field; None if no such conv exists (it would need negative padding)."""
    ks, strides, pads = [], [], [[0, 0], [0, 0]]
    for ax in range(2):
        k, t, pt = conv.attrs["kernel_shape"][ax], conv.attrs["strides"][ax], conv.attrs["pads"][ax]
        p, s, q = pool.attrs["kernel_shape"][ax], pool.attrs["strides"][ax], pool.attrs["pads"][ax]
        field = (p - 1) * t + k  # the input pixels one pool window's output depends on
        size = k if kernel == "same" else field
        before = q * t + pt - (field - size) // 2
        after = max(0, (out_hw[ax] - 1) * s * t - before + size - in_hw[ax])
        if before < 0 or (in_hw[ax] + before + after - size) // (s * t) + 1 != out_hw[ax]:
            return None
        ks.append(size)
        strides.append(s * t)
        pads[0][ax], pads[1][ax] = before, after
    return {"kernel_shape": ks, "strides": strides, "pads": pads[0] + pads[1]}


def prior(conv: Node, pool: Node, geom: dict) -> np.ndarray:
    """The conv's kernel averaged over the pool window's shifts, cropped to the replacement's kernel."""
    w = conv.weights["weight"]
    (ph, pw), (th, tw) = pool.attrs["kernel_shape"], conv.attrs["strides"]
    kh, kw = w.shape[2:]
    field = np.zeros((*w.shape[:2], (ph - 1) * th + kh, (pw - 1) * tw + kw), np.float64)
    for i in range(ph):
        for j in range(pw):
            field[:, :, i * th:i * th + kh, j * tw:j * tw + kw] += w / (ph * pw)
    (sh, sw), (fh, fw) = geom["kernel_shape"], field.shape[2:]
    return field[:, :, (fh - sh) // 2:(fh - sh) // 2 + sh, (fw - sw) // 2:(fw - sw) // 2 + sw]


def replacement(conv: Node, pool: Node, geom: dict) -> Node:
    """The conv computing the pool's output (weights: the prior, until fitted)."""
    attrs = {**conv.attrs, **geom, "dilations": [1, 1]}
    return Node("Conv", conv.name, list(conv.inputs), pool.output, attrs,
                {**conv.weights, "weight": prior(conv, pool, geom).astype(np.float32)})


def pooled_target(conv: Node, pool: Node, pre: np.ndarray) -> np.ndarray:
    """What the replacement's output before its activation should be, given conv's output before its
    activation `pre` (see the module's doc)."""
    if pool.op == "AveragePool":
        act, a = conv.activation, conv.attrs
        pre = np.maximum(pre, 0) if act == "relu" else \
            np.clip(pre, a.get("clip_min", -np.inf), a.get("clip_max", np.inf)) if act == "clip" else pre
    alone = Node(pool.op, pool.name, ["x"], "y", dict(pool.attrs))
    return run(model_of(Graph([("x", [None, *pre.shape[1:]])], ["y"], [alone])), pre)[0]


def fit(equations: tuple[np.ndarray, np.ndarray, np.ndarray], start: Node) -> dict[str, np.ndarray]:
    """The weight and bias solving the normal equations (A^T A, A^T Y, _) ridge-regularised by RIDGE
    towards `start`'s weight (the bias free)."""
    gram, rhs, _ = equations
    w = start.weights["weight"]
    reg = np.full(len(gram), RIDGE * np.trace(gram[:-1, :-1]) / max(1, len(gram) - 1))
    reg[-1] = 0.0
    towards = np.vstack([w.reshape(len(w), -1).T, np.zeros((1, len(w)))])
    sol = np.linalg.solve(gram + np.diag(reg), rhs + reg[:, None] * towards)
    return {"weight": np.ascontiguousarray(sol[:-1].T.reshape(w.shape).astype(np.float32)),
            "bias": sol[-1].astype(np.float32)}


def candidates(g: Graph, shapes: dict) -> list[tuple[Node, Node, dict[str, dict]]]:
    """Every conv of g that can absorb the pool after it, with the pool and the geometry per kernel."""
    found = []
    for conv in g.nodes:
        if why_not(g, conv) is None:
            pool = pool_after(g, conv)
            geoms = {k: geom for k in KERNELS if (geom := geometry(conv, pool, k, shapes[conv.name][0][2:],
                                                                     shapes[pool.name][1][2:])) is not None}
            if geoms:
                found.append((conv, pool, geoms))
    return found


class Planner:
    """Approximate slimming for the planner (compiler/plan.py): a unit per conv before a pool it can
    absorb, an option per replacement kernel. A unit replaces the conv, so it excludes the conv's
    separable unit from a plan (Unit.layers)."""

    kind = "slim"

    def units(self, g: Graph, timer) -> list[Unit]:
        shapes = node_shapes(g)
        units = []
        for conv, pool, geoms in candidates(g, shapes):
            shape = shapes[conv.name][0]
            dense = {conv.name: timer([conv], shape), pool.name: timer([pool], shapes[pool.name][0])}
            u = Unit(self.kind, conv.name, sum(dense.values()), layers=frozenset(dense), dense_parts=dense)
            for kernel, geom in geoms.items():
                kh, kw = geom["kernel_shape"]
                t = timer([replacement(conv, pool, geom)], shape)
                u.options.append(Option(kernel, f"{pool.op} into {kh}x{kw} s{geom['strides'][0]}", t,
                                        parts={conv.name: t, pool.name: 0.0}))
            units.append(u)
        return units

    def apply(self, g: Graph, choices: dict[str, object], stage: Stage) -> None:
        shapes = stage.memo("shapes", lambda: node_shapes(stage.graph))  # (spatial sizes: no pass changes them)
        for conv in [n for n in list(g.nodes) if n.name in choices]:
            pool = pool_after(g, conv)
            geom = geometry(conv, pool, choices[conv.name], shapes[conv.name][0][2:], shapes[pool.name][1][2:]) \
                if why_not(g, conv) is None else None
            if geom is None:
                raise CompileError(f"slim: {conv.name} can no longer absorb its pool (an earlier pass changed it)")
            pre = stage.target(conv.name)
            target = stage.cache.memo(("slim target", stage.cache.token(pre), pool.name),
                                      lambda: pooled_target(conv, pool, pre))
            new = replacement(conv, pool, geom)
            g.nodes.remove(pool)
            g.nodes = g.replaced(conv, [new]).nodes
            x_key = stage.cache.keys(g)[new.inputs[0]]
            key = ("slim", stage.cache.token(stage.x), x_key, stage.cache.token(target), repr(geom))
            equations = stage.cache.memo(key, lambda: normal_equations(g, new, stage.x, target, stage.num_threads,
                                                                       stage.cache))
            new.weights.update(fit(equations, new))
