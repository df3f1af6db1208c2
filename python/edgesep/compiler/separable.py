"""Separable 1-D convolutions (ADaPT; Jaderberg et al. 2014, scheme 2): each kh x kw conv becomes a
kh x 1 conv to K channels and a 1 x kw conv to the original N, by SVD (data-free) and, given
calibration data, a least-squares refit of the horizontal stage on the compressed network's own
activations. docs/separable.md states the method ("The method") and the results.

Rank choice: `energy=T` (smallest K keeping a fraction T of sum(sigma^2)), `ratio=R` (largest K whose
MACs are at most R times the dense layer's), or `auto` (the planner, compiler/plan.py, picks each
layer's rank, or dense, within a budget on calibration data; `Planner` gives it the candidates). A layer
whose pair does not run faster than the dense conv, in time measured on the runtime, stays dense.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .execute import Stage, adopt_if_faster, model_of, node_shapes, preactivation, run, time_nodes
from .ir import CompileError, Graph, Node
from .plan import Option, Unit


@dataclass(frozen=True)
class Spec:
    """What `--separable` asked for: mode "energy" (value: fraction of sigma^2 kept), "ratio" (value:
    MAC ratio per layer) or "auto" (budget on calibration data)."""

    mode: str
    value: float | None = None

    @staticmethod
    def parse(text: str) -> "Spec":
        name, _, val = text.partition("=")
        if name == "auto" and not val:
            return Spec("auto")
        if name in ("energy", "ratio") and val:
            try:
                v = float(val)
            except ValueError:
                v = -1.0
            if 0 < v <= 1:
                return Spec(name, v)
        raise CompileError(f"--separable {text!r}: expected energy=T or ratio=R with 0 < T, R <= 1, or auto")


def split(w: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W [N, C, kh, kw] ~ H * V at rank k: V [k, C, kh, 1] (vertical), H [N, k, 1, kw] (horizontal).
    Returns V, H and all singular values of M[(c, y), (n, x)] = W[n, c, y, x] (the optimum in
    Frobenius norm: the error is sqrt(sum of the dropped sigma^2))."""
    n, c, kh, kw = w.shape
    m = w.transpose(1, 2, 0, 3).reshape(c * kh, n * kw).astype(np.float64)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    root = np.sqrt(s[:k])
    v = (u[:, :k] * root).T.reshape(k, c, kh, 1)
    h = (root[:, None] * vt[:k]).reshape(k, n, kw).transpose(1, 0, 2).reshape(n, k, 1, kw)
    return v.astype(np.float32), h.astype(np.float32), s


def split_weighted(w: np.ndarray, k: int, cov: np.ndarray, factors=None) -> tuple[np.ndarray, np.ndarray]:
    """As split, but optimal for the data: minimises E ||(M - M_k)^T p||^2 over the layer's vertical
    input columns p ((c, y) patches, covariance cov = E[p p^T]) instead of ||M - M_k||_F. With
    cov = L L^T: the SVD of L^T M gives the rank-k optimum in that norm, M_k = L^-T U_k S_k V_k^T.
    factors: weighted_factors(w, cov), if already computed (they serve every k)."""
    n, c, kh, kw = w.shape
    lower, u, s, vt = factors or weighted_factors(w, cov)
    root = np.sqrt(s[:k])
    left = np.linalg.solve(lower.T, u[:, :k] * root)  # L^-T U_k sqrt(S_k)
    v = left.T.reshape(k, c, kh, 1)
    h = (root[:, None] * vt[:k]).reshape(k, n, kw).transpose(1, 0, 2).reshape(n, k, 1, kw)
    return v.astype(np.float32), h.astype(np.float32)


def weighted_factors(w: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, ...]:
    """L (cov = L L^T, regularised) and the SVD of L^T M, for split_weighted."""
    n, c, kh, kw = w.shape
    m = w.transpose(1, 2, 0, 3).reshape(c * kh, n * kw).astype(np.float64)
    lower = np.linalg.cholesky(cov + 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov)))
    return (lower, *np.linalg.svd(lower.T @ m, full_matrices=False))


def column_covariance(layer: "Layer", x_in: np.ndarray, max_cols: int = 50000, seed: int = 0) -> np.ndarray:
    """E[p p^T] over the vertical input columns p = x[s, :, rows of output row oy, column x] (C * kh
    values, zero where the window reads padding) of the layer's input x_in."""
    _, c, kh, _ = layer.dims
    (pt, _, pb, _), (sh, _), (dh, _) = layer.node.attrs["pads"], layer.node.attrs["strides"], \
        layer.node.attrs.get("dilations", [1, 1])
    xp = np.pad(x_in, ((0, 0), (0, 0), (pt, pb), (0, 0)))
    samples, _, _, width = x_in.shape
    oh = layer.out_shape[2]
    total = samples * oh * width
    rng = np.random.default_rng(seed)
    pick = rng.choice(total, max_cols, replace=False) if total > max_cols else np.arange(total)
    si, rest = np.divmod(pick, oh * width)
    yi, xi = np.divmod(rest, width)
    cols = np.stack([xp[si, :, yi * sh + y * dh, xi] for y in range(kh)], axis=2).reshape(len(pick), c * kh)
    cols = cols.astype(np.float64)
    return cols.T @ cols / len(pick)


def energy_rank(sigma: np.ndarray, tau: float) -> int:
    """Smallest k with sum(sigma[:k]^2) >= tau * sum(sigma^2)."""
    e = np.cumsum(sigma.astype(np.float64) ** 2)
    return int(np.searchsorted(e, tau * e[-1] * (1 - 1e-12)) + 1)


@dataclass
class Layer:
    """A conv the pass may split, with what the report needs."""

    node: Node
    in_shape: tuple  # N C H W at batch 1
    out_shape: tuple

    @property
    def dims(self) -> tuple[int, int, int, int]:
        n, c, kh, kw = self.node.weights["weight"].shape
        return n, c, kh, kw

    @property
    def full_rank(self) -> int:
        n, c, kh, kw = self.dims
        return min(c * kh, n * kw)

    def dense_macs(self) -> int:
        n, c, kh, kw = self.dims
        return n * c * kh * kw * self.out_shape[2] * self.out_shape[3]

    def pair_macs(self, k: int) -> int:
        n, c, kh, kw = self.dims
        oh, ow, width = self.out_shape[2], self.out_shape[3], self.in_shape[3]
        return k * c * kh * oh * width + n * k * kw * oh * ow

    def ratio_rank(self, ratio: float) -> int:
        per_k = self.pair_macs(1)
        return max(1, min(self.full_rank, int(ratio * self.dense_macs() // per_k)))

    def useful_max_rank(self) -> int:
        """The largest k whose pair has fewer MACs than the dense conv."""
        return max(0, min(self.full_rank, (self.dense_macs() - 1) // self.pair_macs(1)))


def why_not(n: Node) -> str | None:
    """Why conv `n` cannot be split, or None."""
    if n.op != "Conv":
        return "not a conv"
    kh, kw = n.attrs["kernel_shape"]
    if n.attrs.get("group", 1) != 1:
        return "grouped or depthwise"
    if kh < 2 or kw < 2:
        return "already 1-D (1x1, 1xk or kx1)"
    return None


def pair(layer: Layer, v: np.ndarray, h: np.ndarray, hb: np.ndarray | None) -> list[Node]:
    """The two nodes replacing layer.node: vertical (stride, padding, dilation along H; no bias, no
    activation), horizontal (along W; the original bias, or hb, and the activation)."""
    n = layer.node
    (pt, pl, pb, pr), (sh, sw), (dh, dw) = n.attrs["pads"], n.attrs["strides"], n.attrs.get("dilations", [1, 1])
    mid = n.output + "/vertical"
    kh, kw = n.attrs["kernel_shape"]
    vert = Node("Conv", n.name + "/vertical", list(n.inputs), mid,
                {"kernel_shape": [kh, 1], "strides": [sh, 1], "dilations": [dh, 1], "pads": [pt, 0, pb, 0], "group": 1,
                 "out_channels": int(v.shape[0])}, {"weight": v})
    attrs = {k: val for k, val in n.attrs.items() if k not in ("kernel_shape", "strides", "dilations", "pads")}
    attrs.update({"kernel_shape": [1, kw], "strides": [1, sw], "dilations": [1, dw], "pads": [0, pl, 0, pr]})
    weights = {k: val for k, val in n.weights.items() if k != "weight"}
    weights["weight"] = h
    if hb is not None:
        weights["bias"] = hb
    return [vert, Node("Conv", n.name + "/horizontal", [mid], n.output, attrs, weights)]


def runtime_form(layer: Layer, v: np.ndarray, h: np.ndarray, hb: np.ndarray | None) -> list[Node]:
    """What the graph gets: one fused SeparableConv node (any stride, dilation 1: the runtime's fused
    kernel keeps the intermediate in cache), else the two convs of `pair`."""
    n = layer.node
    if n.attrs.get("dilations", [1, 1]) != [1, 1]:
        return pair(layer, v, h, hb)
    attrs = {k: val for k, val in n.attrs.items() if k not in ("dilations", "group")}
    attrs["rank"] = int(v.shape[0])
    weights = {k: val for k, val in n.weights.items() if k != "weight"}
    weights.update({"vertical": v, "horizontal": h})
    if hb is not None:
        weights["bias"] = hb
    return [Node("SeparableConv", n.name, list(n.inputs), n.output, attrs, weights)]


def refit(layer: Layer, v: np.ndarray, x_in: np.ndarray, y_target: np.ndarray, max_rows: int = 20000,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares horizontal stage: keeps V, solves H and the bias so that the pair, fed x_in (the
    layer's input in the already-compressed network), matches y_target (the original layer's output
    before its activation, in the original network), over at most max_rows sampled output pixels.
    Returns H [N, k, 1, kw] and the bias [N]."""
    n, _, _, kw = layer.dims
    k = v.shape[0]
    vert, _ = pair(layer, v, np.zeros((n, k, 1, kw), np.float32), None)
    vert.inputs = ["x"]
    z = run(model_of(Graph([("x", [None, *layer.in_shape[1:]])], [vert.output], [vert])), x_in)[0]  # [S, k, OH, W]
    (_, pl, _, pr), (_, sw), (_, dw) = layer.node.attrs["pads"], layer.node.attrs["strides"], \
        layer.node.attrs.get("dilations", [1, 1])
    z = np.pad(z, ((0, 0), (0, 0), (0, 0), (pl, pr)))
    samples, _, oh, ow = y_target.shape
    total = samples * oh * ow
    pick = np.random.default_rng(seed).choice(total, max_rows, replace=False) if total > max_rows else np.arange(total)
    si, rest = np.divmod(pick, oh * ow)
    yi, xi = np.divmod(rest, ow)
    a = np.stack([z[si, :, yi, xi * sw + x * dw] for x in range(kw)], axis=2).reshape(len(pick), k * kw)
    a = np.hstack([a, np.ones((len(pick), 1), a.dtype)]).astype(np.float64)
    y = y_target[si, :, yi, xi].astype(np.float64)  # [rows, N]
    # Normal equations, ridge-stabilised (10x faster than lstsq's SVD at these sizes, same solution).
    ata = a.T @ a
    sol = np.linalg.solve(ata + 1e-9 * np.trace(ata) / len(ata) * np.eye(len(ata)), a.T @ y)
    h = sol[:-1].T.reshape(n, k, kw)[:, :, None, :]
    return h.astype(np.float32), sol[-1].astype(np.float32)


def fitted(layer: Layer, k: int, x_in: np.ndarray, y_target: np.ndarray, factors=None):
    """Rank-k vertical and horizontal weights and the bias fitted to the data: the layer's input x_in and
    its original pre-activation output y_target (factors: weighted_factors of the layer on x_in, if
    already computed)."""
    w = layer.node.weights["weight"]
    v, _ = split_weighted(w, k, None, factors or weighted_factors(w, column_covariance(layer, x_in)))
    return (v, *refit(layer, v, x_in, y_target))


def forms(layer: Layer, weights) -> dict[str, list[Node]]:
    """The graph forms of a split layer: "fused" (where the geometry allows it) and "two convs"."""
    f = runtime_form(layer, *weights)
    return {"fused": f, "two convs": pair(layer, *weights)} if f[0].op == "SeparableConv" else {"two convs": f}


def separable_pass(g: Graph, spec: Spec, num_threads: int = 1, calib: np.ndarray | None = None, progress=None,
                   min_speedup: float = 1.0) -> list[dict]:
    """Splits the eligible convs of `g` in place at the rank spec gives (energy or ratio; auto is the
    planner's, see Planner); returns one report row per conv considered. calib: calibration inputs;
    with them, the horizontal stage is refit by least squares. min_speedup: a layer is split only if
    its measured dense time over pair time exceeds this."""
    shapes = node_shapes(g)
    original = Graph(g.inputs, g.outputs, list(g.nodes), g.shapes)  # nodes are replaced, never changed
    rows: list[dict] = []
    for node in [n for n in g.nodes if n.op == "Conv"]:
        if why_not(node) is not None:
            if node.attrs["kernel_shape"] != [1, 1]:  # pointwise convs are not worth a line
                rows.append({"layer": node.name, "shape": _shape_text(node, shapes), "status": f"skipped: {why_not(node)}"})
            continue
        layer = Layer(node, *shapes[node.name])
        if progress:
            progress(node.name)
        row = {"layer": node.name, "shape": _shape_text(node, shapes), "dense_macs": layer.dense_macs()}
        kmax = layer.useful_max_rank()
        if kmax < 1:
            rows.append({**row, "status": "skipped: no rank has fewer MACs than the dense conv"})
            continue
        v_all, h_all, sigma = split(node.weights["weight"], layer.full_rank)
        if spec.mode == "energy":
            k = energy_rank(sigma, spec.value)
            if k > kmax:
                rows.append({**row, "status": f"dense: energy {spec.value:g} needs rank {k}, no fewer MACs than dense "
                                              f"above {kmax}"})
                continue
        else:
            k = min(layer.ratio_rank(spec.value), kmax)
        if calib is None:
            weights = (v_all[:k], h_all[:, :k], None)
        else:
            weights = fitted(layer, k, run(model_of(g, [node.inputs[0]], num_threads), calib)[0],
                             preactivation(original, node, calib, num_threads))
        # The fused kernel where the geometry allows it, else two convs; where both are possible, the
        # faster as measured (the fused kernel loses on wide maps with many channels).
        t_pair, form, nodes = min(((time_nodes(f, layer.in_shape, num_threads), name, f)
                                   for name, f in forms(layer, weights).items()), key=lambda t: t[:2])
        err = float(np.sqrt(np.sum(sigma[k:] ** 2) / np.sum(sigma ** 2)))
        t_dense = time_nodes([node], layer.in_shape, num_threads)
        row.update({"rank": k, "full_rank": layer.full_rank, "pair_macs": layer.pair_macs(k), "weight_error": err,
                    "dense_ms": 1e3 * t_dense, "pair_ms": 1e3 * t_pair, "form": form})
        rows.append(adopt_if_faster(g, node, nodes, row, t_dense, t_pair, min_speedup, "separable"))
    return rows


RANKS = (1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 3 / 4, 1)  # the planner's candidate ranks, fractions of the useful maximum


class Planner:
    """The separable pass for the planner (compiler/plan.py): a unit per eligible conv, an option per
    candidate rank, in the form (fused or two convs) that runs faster."""

    kind = "separable"

    def units(self, g: Graph, timer) -> list[Unit]:
        shapes = node_shapes(g)
        units = []
        for node in [n for n in g.nodes if why_not(n) is None]:
            layer = Layer(node, *shapes[node.name])
            kmax = layer.useful_max_rank()
            if kmax < 1:
                continue
            dense = timer([node], layer.in_shape)
            u = Unit(self.kind, node.name, dense, layers=frozenset({node.name}), dense_parts={node.name: dense}, split=True)
            v, h, _ = split(node.weights["weight"], kmax)  # (a time does not depend on the values)
            fastest = math.inf
            for k in sorted({max(1, round(f * kmax)) for f in RANKS}, reverse=True):
                # Both forms compute the same: one option per rank, in the faster form; a rank only where
                # it times faster than every higher one (a lower rank costs accuracy: it must buy time).
                t, form = min((timer(nodes, layer.in_shape), form) for form, nodes in forms(layer, (v[:k], h[:, :k], None)).items())
                if t < fastest:
                    fastest = t
                    u.options.insert(0, Option((k, form), f"rank {k} {form}", t, parts={node.name: t}))
            units.append(u)
        return units

    def apply(self, g: Graph, choices: dict[str, object], stage: Stage) -> None:
        shapes = node_shapes(g)
        fresh = True  # nothing before this layer changed yet: its input is the stage's
        for node in [n for n in list(g.nodes) if n.name in choices]:
            k, form = choices[node.name]
            layer = Layer(node, *shapes[node.name])
            w = node.weights["weight"]
            if fresh:  # the stage's input: its factors serve every candidate rank
                x_in = stage.activations(node.inputs[0])
                factors = stage.memo(("separable", node.name, w.shape),
                                     lambda: weighted_factors(w, column_covariance(layer, x_in)))
            else:
                x_in = stage.cache.values(g, [node.inputs[0]], stage.x, stage.num_threads)[0]
                factors = None
            target = stage.target(node.name)
            key = ("separable", stage.cache.token(stage.x), stage.cache.keys(g)[node.output], stage.cache.token(target), k)
            weights = stage.cache.memo(key, lambda: fitted(layer, min(k, layer.full_rank), x_in, target, factors))
            g.nodes = g.replaced(node, forms(layer, weights)[form]).nodes
            fresh = False


def _shape_text(n: Node, shapes: dict) -> str:
    ins, outs = shapes.get(n.name, ((), ()))
    kh, kw = n.attrs["kernel_shape"]
    return f"{ins[1] if ins else '?'}->{outs[1] if outs else '?'} {kh}x{kw} s{n.attrs['strides'][0]} @{'x'.join(map(str, ins[2:]))}"
