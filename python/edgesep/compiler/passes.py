"""Exact clean-ups (DeepRebirth's retrain-free part): every pass leaves the graph's outputs equal to
the original's up to float rounding.

- fold_batchnorm: BatchNorm after a Conv or Fc goes into its weights and bias; any other BatchNorm
  becomes a per-channel Mul + Add (which fold_affine may then absorb).
- fold_affine: a per-output-channel Mul / Add / Sub / Div by a constant after a Conv or Fc goes into
  its weights and bias.
- fuse_activations: an activation after a Conv, Fc or binary op becomes that op's epilogue.
- fold_pad: a zero Pad of the spatial dims goes into the pads of the convs (and count_include_pad
  average pools) that read it.
- fold_scale_after_activation: a positive per-channel scale after a Conv or Fc whose activation commutes
  with it (ReLU, LeakyReLU, PReLU: f(s y) = s f(y) for s > 0) goes into its weights and bias; a
  per-channel shift after it moves through max-pools (max(x + t) = max(x) + t) into the bias of the
  pad-free convs that read it. A BatchNorm after the activation (conv -> ReLU -> BN, as audio CNNs like
  CREPE have it) takes both.
- pool_first: a 1x1 conv without activation whose only reader is an average pool (DenseNet's
  transitions: conv 1x1 -> AvgPool 2x2) or a global average pool runs after the pool instead, on its
  fewer pixels (a per-pixel linear map commutes with averaging; the bias too, where the pool divides
  by the pixels it sums).
- merge_linear: a 1x1 conv without activation feeding one conv (or an Fc feeding one Fc) becomes a
  single layer with the product of the weights, where that has fewer MACs.
- drop_dead: nodes whose output nobody reads.
"""
from __future__ import annotations

import numpy as np

from .ir import Graph, Node, channel_vector

LINEAR = ("Conv", "Fc")


def _scale_linear(n: Node, scale: np.ndarray, shift: np.ndarray) -> None:
    """n's output becomes output * scale + shift, per output channel."""
    w = n.weights["weight"]
    n.weights["weight"] = (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
    bias = n.weights.get("bias", np.zeros(len(scale), np.float32))
    n.weights["bias"] = (bias * scale + shift).astype(np.float32)


def fold_batchnorm(g: Graph) -> int:
    folded = 0
    for bn in [n for n in g.nodes if n.op == "BatchNorm"]:
        w = bn.weights
        scale = (w["scale"] / np.sqrt(w["var"] + bn.attrs["epsilon"])).astype(np.float32)
        shift = (w["bias"] - w["mean"] * scale).astype(np.float32)
        prod = g.producer(bn.inputs[0])
        if prod is not None and prod.op in LINEAR and prod.activation == "none" and g.only_feeds(prod, bn):
            _scale_linear(prod, scale, shift)
            g.absorb(prod, bn)
            folded += 1
            continue
        rank = g.rank(bn.inputs[0]) or 4
        shape = (len(scale),) + (1,) * (rank - 2)
        i = g.nodes.index(bn)
        mid = bn.output + "/scaled"
        g.nodes[i:i + 1] = [
            Node("Mul", bn.name + "/scale", [bn.inputs[0]], mid, {"constant_index": 1}, {"constant": scale.reshape(shape)}),
            Node("Add", bn.name + "/shift", [mid], bn.output, {"constant_index": 1}, {"constant": shift.reshape(shape)}),
        ]
        g.shapes[mid] = g.shapes.get(bn.inputs[0])
    return folded


def _channel_constant(g: Graph, n: Node) -> np.ndarray | None:
    """The per-channel constant of n, an element-wise op by a constant over axis 1 without activation,
    where n is affine in its input (x op c; for Add and Mul also c op x), else None."""
    if "constant" not in n.weights or n.activation != "none":
        return None
    if n.op not in ("Add", "Mul") and n.attrs.get("constant_index", 1) != 1:
        return None  # c - x and c / x are not affine in x per channel
    prod = g.producer(n.inputs[0])
    if prod is not None and prod.op in LINEAR:
        channels = prod.weights["weight"].shape[0]
    else:
        s = g.shapes.get(n.inputs[0])
        channels = s[1] if s and len(s) > 1 else None
    return None if channels is None else channel_vector(n.weights["constant"], channels, g.rank(n.output))


def fold_affine(g: Graph) -> int:
    folded = 0
    for n in [n for n in g.nodes if n.op in ("Mul", "Add", "Sub", "Div")]:
        prod = g.producer(n.inputs[0])
        if prod is None or prod.op not in LINEAR or prod.activation != "none" or not g.only_feeds(prod, n):
            continue
        c = _channel_constant(g, n)
        if c is None or (n.op == "Div" and np.any(c == 0)):
            continue
        one, zero = np.ones(len(c), np.float32), np.zeros(len(c), np.float32)
        scale, shift = {"Mul": (c, zero), "Div": (1 / c, zero), "Add": (one, c), "Sub": (one, -c)}[n.op]
        _scale_linear(prod, scale.astype(np.float32), shift.astype(np.float32))
        g.absorb(prod, n)
        folded += 1
    return folded


def fuse_activations(g: Graph) -> int:
    fused = 0
    for act in [n for n in g.nodes if n.op == "Activation"]:
        prod = g.producer(act.inputs[0])
        if prod is None or prod.activation != "none" or not g.only_feeds(prod, act):
            continue
        kind = act.attrs["activation"]
        if prod.op not in LINEAR and not (prod.op in ("Add", "Sub", "Mul", "Div", "Max", "Min") and kind != "prelu"):
            continue
        prod.attrs.update(act.attrs)
        prod.weights.update(act.weights)
        g.absorb(prod, act)
        fused += 1
    return fused


def _pads_fit_pool(n: Node, add: tuple) -> bool:
    """An average pool that counts padding, whose pads stay below its window with `add` added."""
    if n.op != "AveragePool" or not n.attrs.get("count_include_pad", 0):
        return False
    k = n.attrs["kernel_shape"]
    return all(a + b < k[i % 2] for i, (a, b) in enumerate(zip(n.attrs.get("pads", [0, 0, 0, 0]), add)))


def fold_pad(g: Graph) -> int:
    folded = 0
    for pad in [n for n in g.nodes if n.op == "Pad"]:
        p = pad.attrs["pads"]
        if len(p) != 8:
            continue  # not a 4-D tensor
        readers = g.consumers(pad.output)
        add = (p[2], p[3], p[6], p[7])  # the Pad's [top, left, bottom, right]
        if (pad.attrs.get("mode", "constant") != "constant" or pad.attrs.get("value", 0.0) != 0
                or any(p[i] for i in (0, 1, 4, 5)) or min(p) < 0 or pad.output in g.outputs or not readers
                or not all(r.inputs == [pad.output] and (r.op == "Conv" or _pads_fit_pool(r, add)) for r in readers)):
            continue
        for r in readers:
            r.attrs["pads"] = [a + b for a, b in zip(r.attrs.get("pads", [0, 0, 0, 0]), add)]
            r.inputs = list(pad.inputs)
        g.nodes.remove(pad)
        folded += 1
    return folded


_POSITIVE_HOMOGENEOUS = ("relu", "leaky_relu", "prelu")  # f(s y) = s f(y) for every s > 0


def _pad_free_conv(n: Node) -> bool:
    return n.op == "Conv" and not any(n.attrs.get("pads", [0, 0, 0, 0]))


def fold_scale_after_activation(g: Graph) -> int:
    folded = 0
    for mul in [n for n in g.nodes if n.op == "Mul"]:
        prod = g.producer(mul.inputs[0])
        c = _channel_constant(g, mul)
        if (c is None or prod is None or prod.op not in LINEAR or prod.activation not in _POSITIVE_HOMOGENEOUS
                or not g.only_feeds(prod, mul) or not np.all(c > 0)):
            continue
        _scale_linear(prod, c, np.zeros_like(c))  # a PReLU's slopes are unchanged: f(s y) = s f(y)
        g.absorb(prod, mul)
        folded += 1
    for add in [n for n in g.nodes if n.op in ("Add", "Sub")]:
        t = _channel_constant(g, add)
        if t is None or add.output in g.outputs:
            continue
        t = t if add.op == "Add" else -t
        # Through single-consumer max-pools, to convs without padding (zero padding would see the shift).
        chain, value = [], add.output
        while len(g.consumers(value)) == 1 and g.consumers(value)[0].op == "MaxPool" and value not in g.outputs:
            chain.append(g.consumers(value)[0])
            value = chain[-1].output
        convs = g.consumers(value)
        if value in g.outputs or not convs or not all(_pad_free_conv(r) and r.inputs == [value] for r in convs):
            continue
        for conv in convs:
            w = conv.weights["weight"]
            groups = conv.attrs.get("group", 1)
            tg = t.reshape(groups, -1)  # each group's input channels
            per = w.shape[0] // groups
            shift = np.concatenate([np.einsum("nckl,c->n", w[gi * per:(gi + 1) * per].astype(np.float64), tg[gi])
                                    for gi in range(groups)])
            conv.weights["bias"] = (conv.weights.get("bias", np.zeros(w.shape[0], np.float32)) + shift).astype(np.float32)
        for r in g.consumers(add.output):
            r.inputs = [add.inputs[0] if x == add.output else x for x in r.inputs]
        g.nodes.remove(add)
        folded += 1
    return folded


def _averages_what_it_sums(n: Node) -> bool:
    """An average pool whose divisor is the number of input pixels it sums (every window inside the
    input, or padding not counted)."""
    if n.op == "GlobalAveragePool":
        return True
    return n.op == "AveragePool" and (not n.attrs.get("count_include_pad", 0)
                                      or not any(n.attrs.get("pads", [0] * 4)) and not n.attrs.get("ceil_mode", 0))


def pool_first(g: Graph) -> int:
    swapped = 0
    for conv in [n for n in g.nodes if n.op == "Conv"]:
        a, w = conv.attrs, conv.weights["weight"]
        readers = g.consumers(conv.output)
        if (w.shape[2:] != (1, 1) or a.get("strides", [1, 1]) != [1, 1] or any(a.get("pads", [0] * 4))
                or conv.activation != "none" or len(conv.inputs) != 1 or conv.output in g.outputs
                or len(readers) != 1 or not _averages_what_it_sums(readers[0]) or readers[0].activation != "none"):
            continue
        pool = readers[0]
        x, mid, out = conv.inputs[0], conv.output, pool.output
        pool.inputs, pool.output, conv.inputs, conv.output = [x], mid, [mid], out
        if x in g.shapes and out in g.shapes:
            g.shapes[mid] = [*g.shapes[x][:2], *g.shapes[out][2:]]
        else:
            g.shapes.pop(mid, None)
        i, j = g.nodes.index(conv), g.nodes.index(pool)
        g.nodes[i], g.nodes[j] = pool, conv
        swapped += 1
    return swapped


def merge_linear(g: Graph) -> int:
    merged = 0
    for first in [n for n in g.nodes if n.op in LINEAR]:
        if first not in g.nodes or first.activation != "none" or first.output in g.outputs:
            continue
        readers = g.consumers(first.output)
        if len(readers) != 1 or readers[0].op != first.op or readers[0].inputs != [first.output]:
            continue
        second = readers[0]
        w1, w2 = first.weights["weight"].astype(np.float64), second.weights["weight"].astype(np.float64)
        b1 = first.weights.get("bias", np.zeros(w1.shape[0])).astype(np.float64)
        if first.op == "Fc":
            if w1.shape[0] * (w1.shape[1] + w2.shape[0]) <= w2.shape[0] * w1.shape[1]:
                continue  # the factorisation has fewer MACs
            w, shift = w2 @ w1, w2 @ b1
        else:
            a = first.attrs
            if (w1.shape[2:] != (1, 1) or a.get("strides", [1, 1]) != [1, 1] or any(a.get("pads", [0] * 4))
                    or a.get("group", 1) != 1 or second.attrs.get("group", 1) != 1
                    or (any(second.attrs.get("pads", [0] * 4)) and np.any(b1))):
                continue  # zero padding of the first's output would not be zero after a bias
            k, c = w1.shape[:2]
            n, _, kh, kw = w2.shape
            if n * c * kh * kw >= k * c + n * k * kh * kw:
                continue
            w = np.einsum("nkij,kc->ncij", w2, w1[:, :, 0, 0])
            shift = np.einsum("nkij,k->n", w2, b1)
        second.weights["weight"] = w.astype(np.float32)
        second.weights["bias"] = (second.weights.get("bias", np.zeros(w.shape[0])) + shift).astype(np.float32)
        second.inputs = list(first.inputs)
        g.nodes.remove(first)
        merged += 1
    return merged


def drop_dead(g: Graph) -> int:
    dropped = 0
    while True:
        used = set(g.outputs) | {x for n in g.nodes for x in n.inputs}
        dead = [n for n in g.nodes if n.output not in used]
        if not dead:
            return dropped
        for n in dead:
            g.nodes.remove(n)
        dropped += len(dead)


def cleanup(g: Graph) -> dict:
    """Runs the exact clean-ups in order; returns what each did, for the compile report."""
    return {"batchnorm_folded": fold_batchnorm(g), "affine_folded": fold_affine(g),
            "activations_fused": fuse_activations(g), "pads_folded": fold_pad(g),
            "scales_after_activation_folded": fold_scale_after_activation(g), "pools_moved_first": pool_first(g),
            "linear_merged": merge_linear(g),
            "dead_dropped": drop_dead(g)}
