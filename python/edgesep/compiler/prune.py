"""Structured filter pruning without retraining (DSD'22 Mean Weight; He et al. 2017 reconstruction).

Channel groups: the values of the graph that must lose the same channels. Element-wise ops (an Add of a
residual, an activation, a pooling, a depthwise conv, a conv with a fused residual input) tie their
inputs' and output's channels into one group; a group's *producers* (dense convs, Fc layers) make its
channels, its *consumers* (dense convs, Fc layers, Fc layers after a Flatten with H x W columns per
channel) read them. Removing channel c of a group removes filter c of every producer, channel c of every
tied op (the depthwise filter, the per-channel slope or constant) and input channel c of every consumer.
A channel Concat *joins* its inputs' groups into its output's (Inception branches, SqueezeNet's fire
expands): a group read by one keeps its own producers, and channel c of its segment, at the segment's
offset in the Concat's output, goes from everything downstream of that output (whose group has no
producers of its own). A group is prunable only if every value in it is made and read by ops that can
follow: a graph input or output, a Reshape other than a flatten, a grouped conv, a Concat along another
axis or whose output is tied to other producers, ... keep it whole.

Which channels go: "recon" (with calibration data, the default there) removes them in the order the
refit that follows can best make up for (reconstruction_order); the scores (per channel of a group,
summed over its producers) "mean" (the Mean Weight criterion: the mean absolute weight of the filter,
comparable across layers of different fan-in; the default without data), "l1", "l2", or "activation"
(the mean absolute value of the channel over calibration inputs) remove the lowest first.

Recovery without retraining: after a group loses channels, each consumer's weights and bias are refit by
least squares so that, fed its input in the pruned network, its output before the activation matches
the original network's on the calibration inputs. Without calibration data the removal alone is done.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .cache import Cache
from .execute import Stage, model_of, node_shapes, run
from .ir import CompileError, Graph, Node
from .plan import Option, Unit

SCORES = ("mean", "l1", "l2", "activation", "recon")
Equations = Callable[[str], tuple[np.ndarray, np.ndarray, np.ndarray]]  # a reader's normal_equations, by name
_BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min")
_POOLS = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")


def _depthwise(n: Node) -> bool:
    w = n.weights.get("weight")
    return n.op == "Conv" and w is not None and w.shape[1] == 1 and n.attrs.get("group", 1) == w.shape[0] > 1


def _dense(n: Node) -> bool:
    return (n.op == "Conv" and n.attrs.get("group", 1) == 1) or n.op == "Fc"


def _ties(n: Node) -> list[str]:
    """The inputs whose channels n's output shares one for one (none if n makes its own channels)."""
    if n.op in _POOLS or n.op == "Activation" or _depthwise(n):
        return n.inputs[:1]
    if n.op == "Pad" and not any(n.attrs["pads"][i] for i in (0, 1, 4, 5) if i < len(n.attrs["pads"])):
        return n.inputs[:1]
    if n.op in _BINARY:
        return list(n.inputs)
    if n.op == "Conv" and len(n.inputs) == 2:  # a fused residual: output = conv(x) + inputs[1]
        return n.inputs[1:]
    return []


@dataclass
class Group:
    values: list[str]
    channels: int
    producers: list[Node] = field(default_factory=list)
    tied: list[Node] = field(default_factory=list)
    consumers: list[tuple[Node, int]] = field(default_factory=list)  # (node, columns per channel)
    flattens: list[Node] = field(default_factory=list)
    joins: list[tuple[Node, "Group"]] = field(default_factory=list)  # (each Concat reading the group, its output's group)
    why_not: str | None = None

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.producers) or self.values[0]

    def downstream(self) -> list["Group"]:
        """This group and the producer-less groups its Concats join it into, transitively."""
        out = [self]
        for _, j in self.joins:
            out += [d for d in j.downstream() if all(d is not o for o in out)]
        return out

    def readers(self) -> list[Node]:
        """The dense layers that read the group's channels, directly or through Concats."""
        return list({id(c): c for d in self.downstream() for c, _ in d.consumers}.values())

    def depthwise(self) -> list[Node]:
        """The depthwise convs that follow the group's channels, directly or through Concats."""
        return [t for d in self.downstream() for t in d.tied if _depthwise(t)]


def channel_groups(g: Graph) -> list[Group]:
    """Every group of values sharing channels that has producers, in graph order, with why_not set
    where it cannot be pruned."""
    parent: dict[str, str] = {}

    def root(v: str) -> str:
        while parent.setdefault(v, v) != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for n in g.nodes:
        for v in _ties(n):
            parent[root(v)] = root(n.output)
    members: dict[str, list[str]] = {}
    for n in g.nodes:
        members.setdefault(root(n.output), []).append(n.output)
    inputs = {name for name, _ in g.inputs}
    for v in inputs:
        members.setdefault(root(v), []).insert(0, v)
    groups = [_group(g, values, inputs) for values in members.values()]
    of = {v: grp for grp in groups for v in grp.values}
    for n in g.nodes:  # Concats join their inputs' groups to their output's
        if _channel_concat(g, n):
            out = of[n.output]
            for v in n.inputs:
                if v in of and not any(cat is n for cat, _ in of[v].joins):  # once per Concat
                    of[v].joins.append((n, out))
    for grp in groups:  # a group is prunable only if everything downstream of its Concats can follow
        reasons = [grp.why_not] if grp.why_not else []
        for d in grp.downstream()[1:]:
            if d.producers:
                reasons.append(f"joined by a Concat to {d.values[0]}, whose channels other layers also make")
            elif d.why_not:
                reasons.append(f"through a Concat: {d.why_not}")
        grp.why_not = "; ".join(dict.fromkeys(reasons)) or None
    return [grp for grp in groups if grp.producers]


def _channel_concat(g: Graph, n: Node) -> bool:
    """n concatenates along the channel axis (1) of tensors whose shapes are known."""
    rank = g.rank(n.output)
    return n.op == "Concat" and rank is not None and rank >= 2 and n.attrs.get("axis") in (1, 1 - rank) \
        and all(g.shapes.get(v) and g.shapes[v][1] for v in n.inputs)


def _group(g: Graph, values: list[str], inputs: set[str]) -> Group:
    makers = [g.producer(v) for v in values]
    producers = [n for n in makers if n is not None and _dense(n)]
    shape = g.shapes.get(values[0])
    grp = Group(values, int(shape[1]) if shape and len(shape) >= 2 and shape[1] else 0, producers)
    vs = set(values)
    reasons = []
    if not grp.channels:
        reasons.append(f"{values[0]}: channel count unknown")
    for v, n in zip(values, makers):
        if v in inputs:
            reasons.append(f"{v} is a graph input")
        elif n not in producers and not set(_ties(n)) & vs and not _channel_concat(g, n):
            reasons.append(f"{v} comes from {n.op} {n.name}")
        elif n not in producers:
            grp.tied.append(n)
            if n.op in _BINARY and "constant" in n.weights and n.weights["constant"].size not in (1, grp.channels):
                reasons.append(f"{n.op} {n.name}: its constant is not per channel")
        if v in g.outputs:
            reasons.append(f"{v} is a graph output")
        for c in g.consumers(v):
            if c.output in vs and v in _ties(c):  # a tied op (its output is in the group)
                continue
            if _dense(c) and c.inputs[0] == v and (c.op == "Conv" or g.rank(v) == 2):
                grp.consumers.append((c, 1))
            elif _channel_concat(g, c):
                continue  # joined: channel_groups links the Concat's output group
            elif c.op in ("Flatten", "Reshape") and _flattens(g, c) and all(f.op == "Fc" for f in g.consumers(c.output)) \
                    and c.output not in g.outputs:
                cols = int(np.prod(g.shapes[v][2:]))
                grp.flattens.append(c)
                grp.consumers += [(f, cols) for f in g.consumers(c.output)]
            else:
                reasons.append(f"{v} is read by {c.op} {c.name}")
    grp.why_not = "; ".join(dict.fromkeys(reasons)) or None
    return grp


def _flattens(g: Graph, n: Node) -> bool:
    """n turns [N, C, ...] into [N, C * ...] (a Flatten at axis 1, or a Reshape to that: torch's
    x.view(x.size(0), -1) is a Reshape to [0, -1], whose output shape the importer may not know)."""
    src, out = g.shapes.get(n.inputs[0]), g.shapes.get(n.output)
    if not src or len(src) < 2 or None in src[1:]:
        return False
    size = int(np.prod(src[1:]))
    if out is not None:
        return len(out) == 2 and out[1] == size
    if n.op == "Flatten":
        return n.attrs.get("axis", 1) == 1
    return n.attrs.get("shape") in ([0, -1], [0, size], [-1, size])


def scores(g: Graph, grp: Group, how: str, calib: np.ndarray | None = None, num_threads: int = 1) -> np.ndarray:
    """One score per channel of the group (higher: more important), summed over its producers."""
    if how == "activation":
        if calib is None:
            raise ValueError("the activation score needs calibration inputs")
        outs = run(model_of(g, [p.output for p in grp.producers], num_threads), calib)
        return sum(np.abs(o).reshape(len(o), grp.channels, -1).mean((0, 2)) for o in outs)
    total = np.zeros(grp.channels)
    for p in grp.producers:
        w = np.abs(p.weights["weight"].reshape(grp.channels, -1).astype(np.float64))
        total += {"mean": w.mean(1), "l1": w.sum(1), "l2": np.sqrt((w * w).sum(1))}[how]
    return total


def reconstruction_order(g: Graph, grp: Group, calib: np.ndarray, targets: Callable[[str], np.ndarray],
                         kept_out: dict[str, np.ndarray], num_threads: int = 1,
                         equations: Equations | None = None,
                         fitted_rows: Callable[[str], tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """The group's channels in the order they should go, chosen for the least-squares refit that follows
    (ThiNet / He et al. 2017 channel selection, by backward elimination instead of LASSO): per reader of
    the group, the normal equations of its refit on calib (its input in g as it is, its target the
    original network's output), and the channel whose removal raises the refit's residual least
    (relative to the target's energy, summed over the readers) goes first; the inverse Gram matrix is
    downdated after each removal, so the interactions between channels count. Groups of more than 32
    channels lose a 32nd of them per step. Removing the first r of the order gives nested sets as r grows.
    equations(reader name) / fitted_rows(reader name), if given, give the readers' normal_equations / fit_rows
    in g (computed once elsewhere); an underdetermined reader's inverse comes from its rows (ridge_inverse)."""
    systems = []  # per reader: inverse Gram matrix and solution over the columns left, each group channel's columns there, 1 / |target|^2
    for node in grp.readers():
        if underdetermined(node, targets(node.name)):
            a, y = fitted_rows(node.name) if fitted_rows else fit_rows(g, node, calib, targets(node.name), num_threads)
            ginv, rhs, energy = ridge_inverse(a), a.T @ y, np.einsum("ij,ij->j", y, y)
        else:
            gram, rhs, energy = equations(node.name) if equations else normal_equations(g, node, calib, targets(node.name), num_threads)
            ginv = spd_inverse(_ridge(gram))
        if node.name in kept_out:
            rhs, energy = rhs[:, kept_out[node.name]], energy[kept_out[node.name]]
        systems.append([ginv, ginv @ rhs, reader_columns(g, grp, node), 1.0 / max(float(energy.sum()), 1e-30)])
    alive, order = np.ones(grp.channels, bool), []
    per_step, remove = max(1, -(-grp.channels // 32)), grp.channels - 1
    while remove > 0:
        cost = np.zeros(grp.channels)
        for ginv, sol, blocks, scale in systems:
            b = blocks[alive]
            gss = ginv[b[:, :, None], b[:, None, :]]  # [alive, k, k]
            bs = sol[b]  # [alive, k, outputs]
            cost[alive] += scale * np.einsum("jko,jko->j", bs, np.linalg.solve(gss, bs))
        cost[~alive] = np.inf
        drop = np.argsort(cost, kind="stable")[:min(per_step, remove)]
        for system in systems:  # (the dropped columns go: the inverse of the rest is a Schur complement)
            ginv, sol, blocks, _ = system
            cut = blocks[drop].ravel()
            keep = np.ones(len(ginv), bool)
            keep[cut] = False
            k = ginv[np.ix_(keep, cut)] @ np.linalg.inv(ginv[np.ix_(cut, cut)])
            system[0] = ginv[np.ix_(keep, keep)] - k @ ginv[np.ix_(cut, keep)]
            system[1] = sol[keep] - k @ sol[cut]
            system[2] = np.where(keep, np.cumsum(keep) - 1, -1)[blocks]  # (a dropped channel's: -1, never read)
        alive[drop] = False
        order += list(drop)
        remove -= len(drop)
    return np.array(order + list(np.flatnonzero(alive)))


def _offsets(g: Graph, grp: Group, value: str) -> list[int]:
    """Where the group's channels start among `value`'s: 0 for a value of the group, the segment's offset
    for one downstream of its Concats (once per segment)."""
    if value in grp.values:
        return [0]
    out = []
    for cat, joined in grp.joins:
        at = 0
        for v in cat.inputs:
            if v in grp.values:
                out += [at + o for o in _offsets(g, joined, value)]
            at += g.shapes[v][1]
    return out


def remove_channels(g: Graph, grp: Group, keep: np.ndarray) -> None:
    """Keeps only channels `keep` (sorted indices) of the group: the producers' filters, the tied ops'
    per-channel weights, the consumers' input channels (columns), the values' shapes, and the same
    channels of their segments in the groups its Concats join it to."""
    joined = []  # per Concat output group: the channels kept there, computed before any shape changes
    for cat, out in grp.joins:
        parts, at = [], 0
        for v in cat.inputs:
            size = g.shapes[v][1]
            parts.append(at + (keep if v in grp.values else np.arange(size)))
            at += size
        joined.append((out, np.concatenate(parts)))
    c, k = grp.channels, len(keep)
    for n in grp.producers + [t for t in grp.tied if _depthwise(t)]:
        depthwise = _depthwise(n)
        for key in ("weight", "bias", "slope"):
            if key in n.weights and n.weights[key].shape[0] == c:
                n.weights[key] = np.ascontiguousarray(n.weights[key][keep])
        n.attrs["out_channels" if n.op == "Conv" else "out_features"] = k
        if depthwise:
            n.attrs["group"] = k
    for n in grp.tied:
        for key in ("slope", "constant"):
            w = n.weights.get(key)
            if w is not None and w.size == c:
                axis = next(i for i, d in enumerate(w.shape) if d == c)
                n.weights[key] = np.ascontiguousarray(np.take(w, keep, axis=axis))
    for n, cols in grp.consumers:
        idx = (keep[:, None] * cols + np.arange(cols)).ravel()
        n.weights["weight"] = np.ascontiguousarray(n.weights["weight"][:, idx])
    for v in grp.values:
        if v in g.shapes:
            g.shapes[v] = [g.shapes[v][0], k, *g.shapes[v][2:]]
    for f in grp.flattens:
        if f.output in g.shapes:
            s = g.shapes[f.output]
            g.shapes[f.output] = [s[0], s[1] // c * k]
        if f.op == "Reshape":
            f.attrs["shape"] = [0, -1]
    grp.channels = k
    for out, out_keep in joined:
        remove_channels(g, out, out_keep)


def reader_columns(g: Graph, grp: Group, node: Node) -> np.ndarray:
    """[group channel, its columns] of a reader's refit (see _rows): the columns that channel feeds, in
    every segment of the reader's input that carries the group (one, or one per Concat it reaches
    the reader through)."""
    m = int(np.prod(node.weights["weight"].shape[2:])) if node.op != "Fc" else \
        next(cols for d in grp.downstream() for c, cols in d.consumers if c is node)
    src = node.inputs[0] if node.op != "Fc" or node.inputs[0] in {v for d in grp.downstream() for v in d.values} \
        else g.producer(node.inputs[0]).inputs[0]  # (a flatten's)
    return np.array([np.concatenate([np.arange((o + j) * m, (o + j + 1) * m) for o in _offsets(g, grp, src)])
                     for j in range(grp.channels)])


MAX_ROWS = 20000  # a refit's least-squares rows, at most (sampled)


def fit_rows(g: Graph, node: Node, calib: np.ndarray, target: np.ndarray, num_threads: int = 1,
             cache: Cache | None = None, max_rows: int = MAX_ROWS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A refit's least-squares rows for node (Conv or Fc) fed its input in g on calib, its output before
    the activation to match `target`: (A, Y) in float64, A with a bias column last (_rows), at most
    max_rows sampled rows (the same rows whatever the input's channels). The input's activations come
    from `cache` where given (compiler/cache.py)."""
    x = cache.values(g, [node.inputs[0]], calib, num_threads)[0] if cache else \
        run(model_of(g, [node.inputs[0]], num_threads), calib)[0]
    a, y = _rows(node, x, target, max_rows, np.random.default_rng(seed))
    return a, y.reshape(len(y), -1).astype(np.float64)


def underdetermined(node: Node, target: np.ndarray, max_rows: int = MAX_ROWS) -> bool:
    """Whether fit_rows gives node's refit fewer rows than columns (then ridge_solve takes the dual form)."""
    rows = min(max_rows, len(target) * (1 if node.op == "Fc" else int(np.prod(target.shape[2:]))))
    return rows < int(np.prod(node.weights["weight"].shape[1:])) + 1


def normal_equations(g: Graph, node: Node, calib: np.ndarray, target: np.ndarray, num_threads: int = 1,
                     cache: Cache | None = None, max_rows: int = MAX_ROWS, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The normal equations of fit_rows' least squares: (A^T A, A^T Y, per output column |Y|^2). Removing
    input channels removes their rows and columns of A^T A and their rows of A^T Y."""
    from scipy.linalg.blas import dsyrk

    a, y = fit_rows(g, node, calib, target, num_threads, cache, max_rows, seed)
    upper = dsyrk(1.0, a.T)  # A^T A's upper triangle (A.T is Fortran-ordered: no copy), half a product's work
    return _symmetric(upper), a.T @ y, np.einsum("ij,ij->j", y, y)


def spd_inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix, by its Cholesky factor (half an LU inverse's
    work); by LU where the factor fails."""
    from scipy.linalg import lapack

    c, info = lapack.dpotrf(a, lower=0, clean=1)
    if info == 0:
        inv, info = lapack.dpotri(c, lower=0)
    if info != 0:
        return np.linalg.inv(a)
    return _symmetric(inv)


def _symmetric(upper: np.ndarray, block: int = 256) -> np.ndarray:
    """`upper` made the symmetric matrix whose upper triangle it holds (LAPACK's and BLAS's results leave
    the lower one unset), in place and returned: block by block, so that a large matrix is neither copied
    nor read across its rows (triu and tril of a 4609 x 4609 matrix, ResNet-18's widest refit, took
    5.8 s; this, 0.2 s)."""
    for i in range(0, len(upper), block):
        d = upper[i:i + block, i:i + block]
        d[...] = np.triu(d) + np.triu(d, 1).T
        upper[i + block:, i:i + block] = upper[i:i + block, i + block:].T
    return upper


def spd_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a^-1 b for a symmetric positive definite a, by Cholesky (by LU where the factor fails)."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    try:
        return cho_solve(cho_factor(a, check_finite=False), b, check_finite=False)
    except LinAlgError:
        return np.linalg.solve(a, b)


RIDGE = 1e-6  # a refit's ridge: this much of the mean of A^T A's diagonal, added to it


def _ridge(gram: np.ndarray) -> np.ndarray:
    """A^T A made safe to solve: the columns of a pruned layer's input are far from independent."""
    out = gram.copy()
    _add_ridge(out, len(out))
    return out


def _add_ridge(m: np.ndarray, columns: int) -> float:
    """Adds the ridge r to m's diagonal in place, m being A^T A or A A^T of rows A with `columns` columns
    (trace(A A^T) = trace(A^T A), so r is the same either way); returns r."""
    r = RIDGE * np.trace(m) / columns
    m.flat[::len(m) + 1] += r  # (the diagonal: no n x n identity made)
    return r


def ridge_solve(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The ridge least-squares solution (A^T A + r I)^-1 A^T Y of rows A, Y (r as _ridge's). Where A has
    fewer rows than columns (a 512-channel 3x3 conv fitted on 20 images of 7 x 7: 980 rows, 4609
    columns), by the same solution's dual form A^T (A A^T + r I)^-1 Y: a system of the rows' size
    (ResNet-18's widest refit 10x fewer operations)."""
    from scipy.linalg.blas import dsyrk

    if len(a) >= a.shape[1]:
        gram = _symmetric(dsyrk(1.0, a.T))  # (A.T Fortran-ordered: no copy)
        _add_ridge(gram, a.shape[1])
        return spd_solve(gram, a.T @ y)
    k = _symmetric(dsyrk(1.0, a.T, trans=1))  # A A^T
    _add_ridge(k, a.shape[1])
    return a.T @ spd_solve(k, y)


def ridge_inverse(a: np.ndarray) -> np.ndarray:
    """(A^T A + r I)^-1 of rows A (r as _ridge's) with fewer rows than columns, by Woodbury's identity
    (I - A^T (A A^T + r I)^-1 A) / r: a factor of the rows' size and one product (ResNet-18's widest,
    980 x 4609: a fifth of the operations of spd_inverse on the Gram)."""
    from scipy.linalg import solve_triangular
    from scipy.linalg.blas import dsyrk

    k = _symmetric(dsyrk(1.0, a.T, trans=1))
    r = _add_ridge(k, a.shape[1])
    b = solve_triangular(np.linalg.cholesky(k), a, lower=True, check_finite=False)  # L^-1 A, L L^T = A A^T + r I
    out = dsyrk(-1.0 / r, b.T)  # -(B^T B) / r, B^T B = A^T (A A^T + r I)^-1 A
    out.flat[::len(out) + 1] += 1.0 / r
    return _symmetric(out)


def refit(g: Graph, node: Node, target: np.ndarray, calib: np.ndarray, num_threads: int = 1,
          equations: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, cache: Cache | None = None,
          rows: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Least squares: node's weight and bias such that, fed its input in g on calib, its output before
    the activation matches `target` (the original network's); `equations`: its normal_equations, or
    `rows`: its fit_rows, if known."""
    if rows is not None:
        sol = ridge_solve(*rows)
    elif equations is not None:
        sol = spd_solve(_ridge(equations[0]), equations[1])
    else:
        sol = ridge_solve(*fit_rows(g, node, calib, target, num_threads, cache))
    w = node.weights["weight"]
    node.weights["weight"] = np.ascontiguousarray(sol[:-1].T.reshape(w.shape).astype(np.float32))
    node.weights["bias"] = sol[-1].astype(np.float32)


def _rows(node: Node, x: np.ndarray, target: np.ndarray, max_rows: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares rows of a refit of node (Conv or Fc) fed x, in float64 with a column of ones last
    (the bias): its inputs per output position (input channel c's columns c * m .. c * m + m - 1, m its
    taps or an Fc's columns per channel) and the target there, at most max_rows of them, sampled."""
    if node.op != "Fc":
        return _patches(node, x, target, max_rows, rng)
    x, y = x.reshape(len(x), -1), target.reshape(len(target), -1)
    if len(x) > max_rows:
        pick = rng.choice(len(x), max_rows, replace=False)
        x, y = x[pick], y[pick]
    a = np.empty((len(x), x.shape[1] + 1))
    a[:, :-1], a[:, -1] = x, 1.0
    return a, y


def _patches(node: Node, x: np.ndarray, target: np.ndarray, max_rows: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """im2col rows of a dense conv's input x at sampled output pixels (as _rows), and the target there."""
    _, c, kh, kw = node.weights["weight"].shape
    pt, pl, pb, pr = node.attrs["pads"]
    sh, sw = node.attrs["strides"]
    dh, dw = node.attrs.get("dilations", [1, 1])
    xp = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (pt, pb), (pl, pr), (0, 0)))  # (NHWC: a pixel's channels adjacent)
    s, _, oh, ow = target.shape
    total = s * oh * ow
    pick = rng.choice(total, max_rows, replace=False) if total > max_rows else np.arange(total)
    si, rest = np.divmod(pick, oh * ow)
    yi, xi = np.divmod(rest, ow)
    a = np.empty((len(pick), c * kh * kw + 1))
    taps = a[:, :-1].reshape(len(pick), c, kh * kw)  # (a view: channel c's taps are its columns)
    for i in range(kh):
        for j in range(kw):
            taps[:, :, i * kw + j] = xp[si, yi * sh + i * dh, xi * sw + j * dw]
    a[:, -1] = 1.0
    return a, target[si, :, yi, xi]


@dataclass(frozen=True)
class Spec:
    """What `--prune` asked for: "R" (remove the fraction R of each prunable group's channels) with
    optional ",score=mean|l1|l2|activation|recon" (default: recon with calibration data, the Mean Weight
    criterion without; docs/pruning.md compares them) and ",round=N"
    (default 16: the number of channels kept rounded to the nearest multiple of N, the NHWC conv core's
    block of output channels; on the VGG-style MNIST net at R = 0.7, round=16 ran 4.85x the dense speed
    where round=1 ran 3.37x, at a smaller accuracy drop: docs/pruning.md). With auto, the planner
    offers each count both rounded and not, and the timings decide (Planner)."""

    ratio: float | None  # None: auto
    score: str | None = None  # None: recon with calibration data, else mean
    round_to: int = 16

    def score_with(self, calib: np.ndarray | None) -> str:
        return self.score or ("recon" if calib is not None else "mean")

    @staticmethod
    def parse(text: str) -> "Spec":
        head, *opts = text.split(",")
        try:
            ratio = None if head == "auto" else float(head)
        except ValueError:
            ratio = -1.0
        if ratio is not None and not 0 <= ratio < 1:
            raise CompileError(f"--prune {text!r}: expected auto or a fraction of channels in [0, 1), e.g. 0.3")
        score, round_to = None, 16
        for o in opts:
            key, _, val = o.partition("=")
            if key == "score" and val in SCORES:
                score = val
            elif key == "round" and val.isdigit() and 1 <= int(val) <= 64:
                round_to = int(val)
            else:
                raise CompileError(f"--prune {text!r}: option {o!r}; expected score=" + "|".join(SCORES) +
                                   " or round=N (1..64)")
        return Spec(ratio, score, round_to)


def prune_pass(g: Graph, spec: Spec, calib: np.ndarray | None = None, num_threads: int = 1) -> dict:
    """Prunes the fraction spec.ratio of every prunable group of g (refitting on calib if given; auto is
    the planner's, see Planner); returns the report: per group what went, per layer the MACs and weight
    bytes before and after."""
    if spec.score in ("activation", "recon") and calib is None:
        raise CompileError(f"--prune score={spec.score} needs --calib")
    before = model_of(g, layout="nchw").layers(1)
    score = spec.score_with(calib)
    groups = prune(g, spec.ratio, score, calib, num_threads, round_to=spec.round_to)
    return {"groups": groups, **layer_changes(before, g), "ratio": spec.ratio, "score": score,
            "round": spec.round_to, "refit": calib is not None}


def layer_changes(before: list[dict], g: Graph) -> dict:
    """Per layer whose MACs or weight bytes changed since `before` (model.layers() of g as it was):
    both figures before and after, and the model's MAC totals."""
    after = {r["name"]: r for r in model_of(g, layout="nchw").layers(1)}
    layers = [{"name": r["name"], "op": r["op"], "macs_before": int(r["macs"]), "macs_after": int(after[r["name"]]["macs"]),
               "bytes_before": int(r["bytes"]), "bytes_after": int(after[r["name"]]["bytes"])}
              for r in before if r["name"] in after and (r["macs"], r["bytes"]) != (after[r["name"]]["macs"], after[r["name"]]["bytes"])]
    return {"layers": layers, "macs_before": int(sum(r["macs"] for r in before)),
            "macs_after": int(sum(r["macs"] for r in after.values()))}


def prune(g: Graph, ratio: float | dict[str, float], how: str = "mean", calib: np.ndarray | None = None,
          num_threads: int = 1, refit_consumers: bool = True, round_to: int = 1,
          targets: Callable[[str], np.ndarray] | None = None,
          orders: Callable[[Group], np.ndarray] | None = None, equations: Equations | None = None,
          cache: Cache | None = None, counts: dict[str, int] | None = None,
          fitted_rows: Callable[[str], tuple[np.ndarray, np.ndarray]] | None = None) -> list[dict]:
    """Removes the lowest-scoring `ratio` of the channels of every prunable group (or ratio[group name]
    of the groups named there; at least one kept, the number kept rounded to a multiple of round_to;
    groups named in `counts` keep exactly that many, the planner's choices), in graph order; with calib,
    refits each group's consumers to `targets` (by default g's own, as it is now). how="recon" (needs
    calib) removes channels in reconstruction_order, or in orders(group) if given (the planner's: each
    group's order computed once, on the original network). equations(reader
    name), if given: the reader's normal_equations in g as it is now against its whole target (the
    planner's, computed once): the first group pruned refits from them, less the removed channels' rows
    and columns, for the readers whose inputs are g's less those channels (no other reader upstream);
    from fitted_rows(reader name) instead, less the channels' columns, where those are fewer rows than
    columns (underdetermined; ridge_solve's dual form).
    cache (compiler/cache.py): where the refits' inputs and results are kept, by what they depend on.
    Returns one report row per group."""
    ratios = ratio if isinstance(ratio, dict) else None
    if any(not 0 <= r < 1 for r in (ratios.values() if ratios is not None else [ratio])):
        raise ValueError(f"prune ratios must be in [0, 1), got {ratio}")
    if how == "recon" and (calib is None or not refit_consumers):
        raise ValueError("the recon score needs calibration inputs and the refit")
    if calib is not None and refit_consumers and targets is None:
        targets = Stage(g, calib, num_threads).target
    elif not refit_consumers:
        targets = None
    rows = []
    kept_out: dict[str, np.ndarray] = {}  # producer -> its original output channels still there
    for grp in channel_groups(g):
        row = {"group": grp.name, "channels": grp.channels, "producers": [p.name for p in grp.producers],
               "consumers": [c.name for c in grp.readers()]}
        if grp.why_not:
            rows.append({**row, "kept": grp.channels, "status": f"kept whole: {grp.why_not}"})
            continue
        if counts is not None and grp.name in counts:
            kept = min(grp.channels, max(1, int(counts[grp.name])))
        else:
            kept = rounded(kept_at(grp.channels, ratios.get(grp.name, 0.0) if ratios is not None else ratio),
                           grp.channels, round_to)
        remove = grp.channels - kept
        if remove == 0:
            rows.append({**row, "kept": grp.channels, "status": "nothing to remove at this ratio"})
            continue
        if how == "recon":
            order = orders(grp) if orders else reconstruction_order(g, grp, calib, targets, kept_out, num_threads)
        else:
            order = np.argsort(scores(g, grp, how, calib, num_threads), kind="stable")
        keep = np.sort(order[remove:])
        known = {}  # reader -> its refit's normal equations (or rows), from `equations` (or fitted_rows)
        if equations is not None and targets is not None and not kept_out:
            gone = np.setdiff1d(np.arange(grp.channels), keep)
            readers = {c.name for c in grp.readers()}
            for c in grp.readers():
                if _upstream(g, c.inputs[0]) & readers:  # (its input changes with an earlier reader's refit)
                    continue
                gone_cols = reader_columns(g, grp, c)[gone].ravel()
                if fitted_rows is not None and underdetermined(c, targets(c.name)):
                    a, y = fitted_rows(c.name)
                    known[c.name] = {"rows": [a[:, np.setdiff1d(np.arange(a.shape[1]), gone_cols)], y]}
                    continue
                gram, rhs, energy = equations(c.name)
                cols = np.setdiff1d(np.arange(len(gram)), gone_cols)
                known[c.name] = {"equations": [gram[np.ix_(cols, cols)], rhs[cols], energy]}
        remove_channels(g, grp, keep)
        kept_out.update({p.name: keep for p in grp.producers})
        if targets is not None:
            for c in grp.readers():
                y = full = targets(c.name)
                if c.name in kept_out:
                    y = y[:, kept_out[c.name]]
                    for system in known.get(c.name, {}).values():  # (their outputs' columns, as y's)
                        system[1:] = [x[..., kept_out[c.name]] for x in system[1:]]

                def fit(c=c, y=y):
                    refit(g, c, y, calib, num_threads, cache=cache, **known.get(c.name, {}))
                    return c.weights["weight"], c.weights["bias"]
                if cache is None:
                    fit()
                    continue
                key = ("prune refit", cache.token(calib), cache.keys(g)[c.inputs[0]], repr(sorted(c.attrs.items())),
                       c.weights["weight"].shape, cache.token(full), kept_out.get(c.name, np.arange(0)).tobytes())
                c.weights["weight"], c.weights["bias"] = cache.memo(key, fit)
        rows.append({**row, "kept": int(len(keep)), "status": "pruned" + (" + refit" if targets else "")})
    return rows


def kept_at(channels: int, ratio: float) -> int:
    """The channels kept when the fraction `ratio` of them goes (at least one)."""
    return max(1, channels - int(ratio * channels))


def rounded(kept: int, channels: int, round_to: int) -> int:
    """kept rounded to the nearest multiple of round_to (at least round_to, at most all channels)."""
    if round_to <= 1 or kept >= channels:
        return kept
    return min(channels, max(round_to, round(kept / round_to) * round_to))


def _upstream(g: Graph, value: str) -> set[str]:
    """The names of the nodes `value` depends on."""
    seen, todo = set(), [value]
    while todo:
        n = g.producer(todo.pop())
        if n is not None and n.name not in seen:
            seen.add(n.name)
            todo += n.inputs
    return seen


RATIOS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75)  # the planner's candidates: fractions of a group's channels


class Planner:
    """The pruning pass for the planner (compiler/plan.py): a unit per prunable channel group, an option
    per candidate number of channels kept, timed as the sum of the group's layers (producers, depthwise
    convs, consumers) on the runtime. The candidates: for each of RATIOS, the count kept both as it is
    and rounded to the spec's block (round_to); a count is an option only where it is measured faster
    than every larger one, so the timings (this machine's, or the device's cost table) decide where
    rounding to the kernels' channel block pays."""

    kind = "prune"

    def __init__(self, spec: Spec):
        self.spec = spec

    def units(self, g: Graph, timer) -> list[Unit]:
        units = []
        for grp in channel_groups(g):
            if grp.why_not:
                continue
            names = [n.name for n in grp.producers + grp.depthwise() + grp.readers()]
            dense = _seconds(g, names, timer)
            sides = {**{n.name: "in" for n in grp.readers()}, **{n.name: "out" for n in grp.producers + grp.depthwise()}}
            sides.update({m: "both" for m in {n.name for n in grp.readers()} & {n.name for n in grp.producers}})
            u = Unit(self.kind, grp.name, sum(dense.values()), dense_parts=dense, sides=sides)
            counts = {k for r in RATIOS for k in (kept_at(grp.channels, r),
                                                   rounded(kept_at(grp.channels, r), grp.channels, self.spec.round_to))}
            fastest = u.dense_seconds
            for k in sorted(counts - {grp.channels}, reverse=True):
                h = g.copy()
                prune(h, {}, counts={grp.name: k})
                parts = _seconds(h, names, timer)
                if (t := sum(parts.values())) < fastest:
                    fastest = t
                    u.options.append(Option(k, f"keep {k}/{grp.channels}", t, parts=parts))
            units.append(u)
        return units

    def apply(self, g: Graph, choices: dict[str, object], stage: Stage) -> None:
        """Prunes g (a copy of the stage's graph, or one changed since) as chosen, refit to the stage's
        targets. A group's recon order is computed once per stage, on the stage's graph: the candidates
        and plans tried on it share them (between plans, a group's order would differ only by the
        groups before it pruned too; the check measures the plan as it is)."""
        score = self.spec.score_with(stage.x)
        groups = stage.memo("groups", lambda: {grp.name: grp for grp in channel_groups(stage.graph)})
        nodes = {n.name: n for n in stage.graph.nodes}

        def equations(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return stage.memo(("normal equations", name), lambda: normal_equations(
                stage.graph, nodes[name], stage.x, stage.target(name), stage.num_threads, stage.cache))

        def rows(name: str) -> tuple[np.ndarray, np.ndarray]:
            return stage.memo(("fit rows", name), lambda: fit_rows(
                stage.graph, nodes[name], stage.x, stage.target(name), stage.num_threads, stage.cache))

        def order(grp: Group) -> np.ndarray:
            return stage.memo(("recon order", grp.name), lambda: reconstruction_order(
                stage.graph, groups[grp.name], stage.x, stage.target, {}, stage.num_threads, equations, rows))
        prune(g, {}, score, stage.x, stage.num_threads, targets=stage.target,
              orders=order if score == "recon" else None, equations=equations, cache=stage.cache, counts=choices,
              fitted_rows=rows)


def _seconds(g: Graph, names: list[str], timer) -> dict[str, float]:
    """The time of each of g's nodes `names`, alone (timer: compiler.costs.Timer)."""
    shapes = node_shapes(g)
    nodes = {n.name: n for n in g.nodes}
    return {m: timer([nodes[m]], shapes[m][0]) for m in dict.fromkeys(names)}
