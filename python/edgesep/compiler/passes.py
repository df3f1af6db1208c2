"""Exact clean-ups (DeepRebirth's retrain-free part): every pass leaves the graph's outputs equal to
the original's up to float rounding.

- fold_batchnorm: BatchNorm after a Conv or Fc goes into its weights and bias; any other BatchNorm
  becomes a per-channel Mul + Add (which fold_affine may then absorb).
- fold_affine: a per-output-channel Mul / Add / Sub / Div by a constant after a Conv or Fc goes into
  its weights and bias.
- fuse_activations: an activation after a Conv, Fc or binary op becomes that op's epilogue.
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


def fold_affine(g: Graph) -> int:
    folded = 0
    for n in [n for n in g.nodes if n.op in ("Mul", "Add", "Sub", "Div") and "constant" in n.weights]:
        if n not in g.nodes or n.activation != "none":
            continue
        if n.op in ("Sub", "Div") and n.attrs.get("constant_index", 1) != 1:
            continue  # c - x and c / x are not affine in x per channel
        prod = g.producer(n.inputs[0])
        if prod is None or prod.op not in LINEAR or prod.activation != "none" or not g.only_feeds(prod, n):
            continue
        channels = prod.weights["weight"].shape[0]
        c = channel_vector(n.weights["constant"], channels, g.rank(n.output))
        if c is None or (n.op == "Div" and np.any(c == 0)):
            continue
        one, zero = np.ones(channels, np.float32), np.zeros(channels, np.float32)
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
            "activations_fused": fuse_activations(g), "dead_dropped": drop_dead(g)}
