"""Sparse fully-connected layers (SparseSep; Bhattacharya & Lane 2016): each Fc weight W [m, n] is
either pruned by magnitude to a target sparsity (elementwise, or in 1x4 / 4x1 blocks), its surviving
weights optionally refit by least squares on calibration inputs, or factorised as W ~ B.A with a dense
dictionary B [m, k] and sparse codes A [k, n] (y = B.(A.x) + b). docs/sparse.md states the method and
the results.

Choice per layer: `S` (sparsity S), `S,block=4x1`, `dict=R` (dictionary at R times the dense MACs), or
`auto` / `dict` (the planner, compiler/plan.py, picks each layer's sparsity or dictionary ratio, or dense,
within a budget on calibration data; `Planner` gives it the candidates). A layer whose sparse form does not run faster than the dense Fc, in
time measured on the runtime, stays dense. The stored encoding of a pruned weight (BCSR with 1x1, 1x4
or 4x1 blocks) is the one with the fewest bytes.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
import numpy as np

from .execute import Stage, adopt_if_faster, model_of, node_shapes, preactivation, run, time_nodes
from .ir import CompileError, Graph, Node
from .plan import Option, Unit

BLOCKS = ((1, 1), (1, 4), (4, 1))
# Fc layers with fewer weights stay dense: they cost a few microseconds either way (the op's overhead),
# so a timing cannot tell the forms apart, and they are often the classifier, where pruning hurts most.
MIN_WEIGHTS = 16384


@dataclass(frozen=True)
class Spec:
    """What `--sparse-fc` asked for: mode "magnitude" (value: sparsity; block: pruning granularity),
    "dict" (value: MAC ratio; None: the smallest within the budget on calibration data) or "auto"
    (magnitude pruning, the sparsest within the budget)."""

    mode: str
    value: float | None = None
    block: tuple[int, int] = (1, 1)

    @property
    def searched(self) -> bool:
        """Whether the per-layer setting is searched against a budget on calibration data."""
        return self.mode == "auto" or (self.mode == "dict" and self.value is None)

    @staticmethod
    def parse(text: str) -> "Spec":
        head, *opts = text.split(",")
        block = (1, 1)
        for o in opts:
            key, _, val = o.partition("=")
            shape = tuple(int(d) for d in val.split("x")) if key == "block" and val.count("x") == 1 \
                and val.replace("x", "").isdigit() else None
            if shape not in BLOCKS:
                raise CompileError(f"--sparse-fc {text!r}: option {o!r}; expected block=1x1, block=1x4 or block=4x1")
            block = shape
        if head == "auto":
            return Spec("auto", None, block)
        if head == "dict" and not opts:
            return Spec("dict")
        name, _, val = head.partition("=")
        try:
            v = float(val if name == "dict" else head)
        except ValueError:
            v = -1.0
        if name == "dict" and 0 < v < 1 and not opts:
            return Spec("dict", v)
        if name != "dict" and 0 <= v < 1:
            return Spec("magnitude", v, block)
        raise CompileError(f"--sparse-fc {text!r}: expected a sparsity S with 0 <= S < 1 (optionally ',block=4x1' "
                           "or ',block=1x4'), dict=R with 0 < R < 1, dict, or auto")


# ---- encoding ----------------------------------------------------------------------------------

def encode(w: np.ndarray, block: tuple[int, int]) -> dict[str, np.ndarray]:
    """W [m, n] in BCSR with `block` (br divides m): every block holding a nonzero is stored, its zeros
    explicit. Blocks of a row start at multiples of bc; a last partial block of a 1x4 row is shifted left
    to end at column n. Returns values [blocks, br, bc] float32, row_ptr int32, columns (uint16 where
    n <= 65536, else int32)."""
    br, bc = block
    m, n = w.shape
    if m % br or n < bc:
        raise ValueError(f"a {m}x{n} weight has no {br}x{bc} blocking")
    starts = np.minimum(np.arange(0, n, bc), n - bc)
    # tiles[i, s] = the br x bc block at block row i, column starts[s]
    cols = starts[:, None] + np.arange(bc)
    tiles = w.reshape(m // br, br, n)[:, :, cols].transpose(0, 2, 1, 3)  # [m/br, slots, br, bc]
    keep = np.any(tiles != 0, axis=(2, 3))
    if bc > 1 and n % bc:  # the shifted last slot overlaps its neighbour: store the overlap once
        overlap = bc - n % bc
        last = tiles[:, -1].copy()
        last[:, :, :overlap] = np.where(keep[:, -2, None, None], 0, last[:, :, :overlap])
        tiles = np.concatenate([tiles[:, :-1], last[:, None]], axis=1)
        keep[:, -1] = np.any(tiles[:, -1] != 0, axis=(1, 2))
    row_ptr = np.concatenate([[0], np.cumsum(keep.sum(1))]).astype(np.int32)
    index = np.uint16 if n <= 65536 else np.int32
    return {"values": np.ascontiguousarray(tiles[keep], np.float32),
            "row_ptr": row_ptr, "columns": np.broadcast_to(starts, keep.shape)[keep].astype(index)}


def decode(enc: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The dense [m, n] weight of a BCSR encoding (values summed where blocks overlap)."""
    values, row_ptr, columns = enc["values"], enc["row_ptr"], enc["columns"]
    br, bc = values.shape[1:]
    w = np.zeros(shape, np.float32)
    for i in range(len(row_ptr) - 1):
        for j in range(row_ptr[i], row_ptr[i + 1]):
            w[i * br:(i + 1) * br, int(columns[j]):int(columns[j]) + bc] += values[j]
    return w


def encoded_bytes(enc: dict[str, np.ndarray]) -> int:
    return sum(a.nbytes for a in enc.values())


def smallest_encoding(w: np.ndarray) -> tuple[tuple[int, int], dict[str, np.ndarray]]:
    """The block shape (1x1, 1x4 or 4x1, where it fits) whose encoding of w has the fewest bytes."""
    options = [(b, encode(w, b)) for b in BLOCKS if w.shape[0] % b[0] == 0 and w.shape[1] >= b[1]]
    return min(options, key=lambda o: encoded_bytes(o[1]))


# ---- pruning and refit ----------------------------------------------------------------------------

def prune(w: np.ndarray, sparsity: float, block: tuple[int, int] = (1, 1)) -> np.ndarray:
    """W with the fraction `sparsity` of its weights (or of its br x bc blocks, by L2 norm) zeroed,
    smallest first."""
    br, bc = block
    m, n = w.shape
    if m % br or n % bc:
        raise CompileError(f"a {m}x{n} Fc weight cannot be pruned in {br}x{bc} blocks")
    norms = np.sqrt((w.reshape(m // br, br, n // bc, bc) ** 2).sum(axis=(1, 3)))
    drop = int(round(sparsity * norms.size))
    mask = np.ones(norms.size, bool)
    if drop:
        mask[np.argpartition(norms, drop - 1, axis=None)[:drop]] = False
    mask = np.repeat(np.repeat(mask.reshape(norms.shape), br, 0), bc, 1)
    return np.where(mask, w, 0).astype(np.float32)


RIDGE = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # ridge strengths tried, relative to the mean Gram diagonal


def refit(w_pruned: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray,
          max_gram_bytes: int = 1 << 30) -> tuple[np.ndarray, np.ndarray, str]:
    """Least squares on calibration data: per output row r, the surviving weights and the bias that
    best map x [S, n] to y[:, r] (the original layer's pre-activation output), ridge-regularised
    towards the pruned weights. Each row's ridge strength (or no refit at all) is the one with the
    lowest error on a fifth of the samples held out from the fit; the chosen fit is then redone on all
    of them. (With a few hundred samples and hundreds of weights per row an unregularised fit
    over-fits: on the MNIST study it lost held-out accuracy at 90% sparsity.) A row that keeps more
    weights than there are samples in the fit keeps its pruned weights: the data cannot determine them
    (and the solve, O(weights^3) per row, would dominate the compile). Returns the weights, the bias
    and what was done, for the report; the layer is left as pruned if its Gram matrix would take
    more than max_gram_bytes."""
    n = x.shape[1]
    if (n + 1) ** 2 * 8 > max_gram_bytes:
        return w_pruned, b, f"skipped ({n} inputs: Gram matrix too big)"
    supports = [np.flatnonzero(row) for row in w_pruned]
    xa = np.hstack([x, np.ones((len(x), 1), x.dtype)]).astype(np.float64)
    y = y.astype(np.float64)
    held = np.arange(len(x)) % 5 == 4
    g_fit, r_fit = xa[~held].T @ xa[~held], xa[~held].T @ y[~held]
    xh, yh = xa[held], y[held]
    g_all, r_all = g_fit + xh.T @ xh, r_fit + xh.T @ yh
    w_new, b_new = w_pruned.copy(), np.array(b, np.float32)
    fit_samples = len(x) - len(xh)
    refit_rows = 0
    for r, sp in enumerate(supports):
        if len(sp) >= fit_samples:
            continue
        idx = np.append(sp, n)
        prior = np.append(w_pruned[r, sp], b[r]).astype(np.float64)
        xv, yv = xh[:, idx], yh[:, r]
        ev, q = np.linalg.eigh(g_fit[np.ix_(idx, idx)])
        scale = max(ev.mean(), 1e-30)
        best, best_err = None, float(np.sum((xv @ prior - yv) ** 2))
        for lam in RIDGE:
            sol = q @ ((q.T @ (r_fit[idx, r] + lam * scale * prior)) / (ev + lam * scale))
            err = float(np.sum((xv @ sol - yv) ** 2))
            if err < best_err:
                best, best_err = lam, err
        if best is None:
            continue
        g = g_all[np.ix_(idx, idx)]
        lam = best * np.trace(g) / len(idx)
        sol = np.linalg.solve(g + lam * np.eye(len(idx)), r_all[idx, r] + lam * prior)
        w_new[r, sp], b_new[r] = sol[:-1], sol[-1]
        refit_rows += 1
    return w_new, b_new, f"{refit_rows}/{len(supports)} rows"


def learn_dictionary(w: np.ndarray, ratio: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """W [m, n] ~ D.A with D [m, k] dense (unit-norm atoms) and A [k, n] sparse, at about `ratio` times
    the dense MACs (m*k + nnz(A)). The atoms are learnt from W's columns by scikit-learn's mini-batch
    dictionary learning, the codes by orthogonal matching pursuit; k is the candidate with the lowest
    weight error. Returns D, A and the relative weight error. W alone decides them: the planner learns
    each (layer, ratio) once and refits only D (`dictionary`) on each plan's inputs."""
    try:
        from sklearn.decomposition import MiniBatchDictionaryLearning, sparse_encode
    except ImportError as e:
        raise CompileError("--sparse-fc dict needs scikit-learn (pip install 'edgesep[compile]')") from e
    m, n = w.shape
    budget = ratio * m * n
    cols = w.T.astype(np.float64)  # the samples: W's columns
    best = None
    for k in sorted({max(1, int(m * f)) for f in (1 / 16, 1 / 8, 1 / 4, 1 / 2)}):
        nonzeros = int((budget - m * k) // n)
        if nonzeros < 1 or k >= min(m, n):
            continue
        nonzeros = min(nonzeros, k)
        learner = MiniBatchDictionaryLearning(n_components=k, batch_size=256, max_iter=20, random_state=seed,
                                              transform_algorithm="omp", transform_n_nonzero_coefs=nonzeros)
        with warnings.catch_warnings():  # OMP stops early, warning, where a column is already exact
            warnings.filterwarnings("ignore", "Orthogonal matching pursuit ended prematurely")
            atoms = learner.fit(cols).components_  # [k, m], unit norm
            codes = sparse_encode(cols, atoms, algorithm="omp", n_nonzero_coefs=nonzeros)  # [n, k]
        err = float(np.linalg.norm(codes @ atoms - cols) / np.linalg.norm(cols))
        if best is None or err < best[2]:
            best = (atoms.T.astype(np.float32), codes.T.astype(np.float32), err)
    if best is None:
        raise CompileError(f"--sparse-fc dict={ratio:g}: no dictionary of a {m}x{n} layer fits that cost")
    return best


def dictionary(w: np.ndarray, ratio: float, x: np.ndarray | None = None, y: np.ndarray | None = None,
               b: np.ndarray | None = None, seed: int = 0,
               learnt: tuple[np.ndarray, np.ndarray, float] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """W's dictionary form (`learn_dictionary`, or `learnt` as it returned). With calibration data
    x [S, n] and targets y [S, m], D and the bias are refit by least squares on the codes' outputs.
    Returns D, A, the bias, and the relative weight error."""
    d, a, err = learnt or learn_dictionary(w, ratio, seed)
    bias = np.zeros(w.shape[0], np.float32) if b is None else np.asarray(b, np.float32)
    if x is not None:
        z = np.hstack([x.astype(np.float64) @ a.T, np.ones((len(x), 1))])
        sol, *_ = np.linalg.lstsq(z, y.astype(np.float64), rcond=None)
        d, bias = sol[:-1].T.astype(np.float32), sol[-1].astype(np.float32)
        err = float(np.linalg.norm(d @ a - w) / np.linalg.norm(w))
    return d, a, bias, err


# ---- graph forms ------------------------------------------------------------------------------------

def sparse_node(n: Node, w: np.ndarray, bias: np.ndarray | None, block: tuple[int, int] | None = None,
                name: str | None = None, output: str | None = None, dense_attrs: bool = True) -> Node:
    """A SparseFc node computing what Fc `n` computes with weight w (and bias): encoded with `block`,
    or with the smallest encoding."""
    blk, enc = (block, encode(w, block)) if block else smallest_encoding(w)
    attrs = dict(n.attrs) if dense_attrs else {}
    attrs.update({"out_features": int(w.shape[0]), "block": list(blk)})
    weights = dict(enc)
    if bias is not None:
        weights["bias"] = np.asarray(bias, np.float32)
    if dense_attrs and "slope" in n.weights:
        weights["slope"] = n.weights["slope"]
    return Node("SparseFc", name or n.name, list(n.inputs), output or n.output, attrs, weights)


def dictionary_nodes(n: Node, d: np.ndarray, a: np.ndarray, bias: np.ndarray) -> list[Node]:
    """Fc `n` as codes A.x (SparseFc, no bias) then the dictionary D.(.) + b (Fc, n's activation)."""
    codes = sparse_node(n, a, None, name=n.name + "/codes", output=n.output + "/codes", dense_attrs=False)
    weights = {k: v for k, v in n.weights.items() if k not in ("weight", "bias")}
    weights.update({"weight": d, "bias": bias})
    dense = Node("Fc", n.name + "/dictionary", [codes.output], n.output, dict(n.attrs), weights)
    return [codes, dense]


# ---- the pass ---------------------------------------------------------------------------------------

def sparse_fc_pass(g: Graph, spec: Spec, num_threads: int = 1, calib: np.ndarray | None = None, progress=None,
                   min_speedup: float = 1.0) -> list[dict]:
    """Sparsifies the Fc layers of `g` in place as spec says (a sparsity or a dictionary ratio; the
    searched modes are the planner's, see Planner); returns one report row per Fc layer."""
    shapes = node_shapes(g)
    original = Graph(g.inputs, g.outputs, list(g.nodes), g.shapes)
    rows = []
    for node in [n for n in g.nodes if n.op == "Fc"]:
        if progress:
            progress(node.name)
        w, b = node.weights["weight"], node.weights.get("bias")
        m, n = w.shape
        row = {"layer": node.name, "shape": f"{n}->{m}", "dense_bytes": int(w.nbytes), "dense_macs": m * n}
        if w.size < MIN_WEIGHTS:
            rows.append({**row, "status": f"dense: {w.size} weights, too few to gain (< {MIN_WEIGHTS})"})
            continue
        x = y = None
        if calib is not None:
            x = run(model_of(g, [node.inputs[0]], num_threads), calib)[0].reshape(len(calib), -1)
            y = preactivation(original, node, calib, num_threads).reshape(len(calib), -1)
        if spec.mode == "magnitude":
            nodes, wq, bq, how = magnitude_form(node, spec.value, spec.block, x, y)
            if how:
                row["refit"] = how
            method = f"magnitude {spec.value:g}" + (f" {spec.block[0]}x{spec.block[1]}" if spec.block != (1, 1) else "")
        else:
            d, a, bq, _ = dictionary(w, spec.value, x, y, b)
            nodes, wq = dictionary_nodes(node, d, a, bq), d @ a
            method = f"dictionary k={a.shape[0]}"
        stored = [a for nd in nodes for k, a in nd.weights.items() if k in ("values", "weight")]
        t_dense = time_nodes([node], shapes[node.name][0], num_threads)
        t_sparse = time_nodes(nodes, shapes[node.name][0], num_threads)
        row.update({"method": method, "block": "x".join(map(str, nodes[0].attrs["block"])),
                    "sparse_macs": int(sum(a.size for a in stored)),
                    "sparse_bytes": sum(int(a.nbytes) for nd in nodes for k, a in nd.weights.items()
                                        if k in ("values", "weight", "row_ptr", "columns")),
                    "weight_error": float(np.linalg.norm(wq - w) / max(np.linalg.norm(w), 1e-30)),
                    **({} if x is None else {"output_error": float(
                        np.linalg.norm(x @ wq.T + (0 if bq is None else bq) - y) / max(np.linalg.norm(y), 1e-30))}),
                    "dense_ms": 1e3 * t_dense, "sparse_ms": 1e3 * t_sparse})
        rows.append(adopt_if_faster(g, node, nodes, row, t_dense, t_sparse, min_speedup, "sparse"))
    return rows


def magnitude_form(node: Node, sparsity: float, block: tuple[int, int], x: np.ndarray | None = None,
                   y: np.ndarray | None = None) -> tuple[list[Node], np.ndarray, np.ndarray | None, str | None]:
    """Fc `node` pruned to `sparsity` (refit to y on x if given): its nodes, weight, bias and what the
    refit did."""
    w, b = node.weights["weight"], node.weights.get("bias")
    wp, bias, how = prune(w, sparsity, block), b, None
    if x is not None and sparsity > 0:
        wp, bias, how = refit(wp, np.zeros(len(w), np.float32) if b is None else b, x, y)
    return [sparse_node(node, wp, bias, None if block == (1, 1) else block)], wp, bias, how


SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)  # the planner's candidates: magnitude pruning
DICT_RATIOS = (0.5, 0.3, 0.2, 0.1, 0.05)  # and dictionaries (MAC ratios)


class Planner:
    """The sparse-FC pass for the planner (compiler/plan.py): a unit per Fc layer of MIN_WEIGHTS or
    more, an option per candidate sparsity (`auto`) or dictionary ratio (`dict`), timed on the runtime."""

    kind = "sparse_fc"

    def __init__(self, spec: Spec):
        self.spec = spec
        self._learnt = {}  # (ratio, W's shape and bytes' digest) -> learn_dictionary's result

    def _nodes(self, node: Node, setting, x=None, y=None) -> list[Node]:
        if self.spec.mode == "dict":
            w = node.weights["weight"]
            key = (setting, w.shape, hashlib.blake2b(np.ascontiguousarray(w).data, digest_size=16).digest())
            if key not in self._learnt:
                self._learnt[key] = learn_dictionary(w, setting)
            d, a, bias, _ = dictionary(w, setting, x, y, node.weights.get("bias"), learnt=self._learnt[key])
            return dictionary_nodes(node, d, a, bias)
        return magnitude_form(node, setting, self.spec.block, x, y)[0]

    def units(self, g: Graph, timer) -> list[Unit]:
        shapes = node_shapes(g)
        units = []
        for node in [n for n in g.nodes if n.op == "Fc" and n.weights["weight"].size >= MIN_WEIGHTS]:
            shape = shapes[node.name][0]
            dense = timer([node], shape)
            u = Unit(self.kind, node.name, dense, layers=frozenset({node.name}), dense_parts={node.name: dense})
            for s in DICT_RATIOS if self.spec.mode == "dict" else SPARSITIES:
                label = f"dictionary {s:g}" if self.spec.mode == "dict" else f"sparsity {s:g}"
                t = timer(self._nodes(node, s), shape)
                u.options.append(Option(s, label, t, parts={node.name: t}))
            units.append(u)
        return units

    def apply(self, g: Graph, choices: dict[str, object], stage: Stage) -> None:
        fresh = True
        for node in [n for n in list(g.nodes) if n.name in choices]:
            x = stage.activations(node.inputs[0]) if fresh else \
                stage.cache.values(g, [node.inputs[0]], stage.x, stage.num_threads)[0]
            y = stage.target(node.name)
            g.nodes = g.replaced(node, self._nodes(node, choices[node.name], x.reshape(len(x), -1),
                                                   y.reshape(len(y), -1))).nodes
            fresh = False
