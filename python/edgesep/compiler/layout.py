"""The activation layout, chosen at compile time: NHWC (a pixel's channels contiguous) for the conv
core, NCHW where an op needs it.

Convs (every kind), the separable pair and the pools run on NHWC; element-wise ops, Concat, Pad and
activations follow their inputs (an NHWC tensor of logical shape [N, C, H, W] is a row-major
[N, H, W, C] array, so they only need their axes, pads and constants permuted); Fc, Flatten, Reshape,
Transpose and Softmax read NCHW. A Transpose node converts a value where a consumer needs the other
layout (once per value and direction); graph inputs arrive and graph outputs leave as NCHW, so a bundle
means the same to its caller either way. The runtime ops take the layout from the node's `layout`
attribute, and their shapes are the physical ones.
"""
from __future__ import annotations

import numpy as np

from ..ops import is_depthwise
from .ir import Graph, Node
from .passes import drop_dead

TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]
_AXIS_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}  # where a logical NCHW axis lies in the NHWC array
_ANCHORS = ("Conv", "SeparableConv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")
_BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min")
_FOLLOWERS = (*_BINARY, "Concat", "Pad", "Activation")


def _out_rank(n: Node, ranks: list[int | None]) -> int | None:
    if n.op in ("Fc", "SparseFc", "Flatten"):
        return 2
    if n.op == "Reshape":
        return len(n.attrs.get("shape", [])) or None
    if n.op in _BINARY:
        const = n.weights.get("constant")
        known = [r for r in ranks if r is not None] + ([const.ndim] if const is not None else [])
        return max(known) if len(known) == len(ranks) + (const is not None) else None
    return ranks[0] if ranks else None


def _can_follow(n: Node, ranks: list[int | None]) -> bool:
    """Whether a follower op can run on NHWC inputs (all its inputs 4-D; nothing tied to axis 1 that
    the permutation cannot express)."""
    if any(r != 4 for r in ranks):
        return False
    if n.op in _BINARY:
        const = n.weights.get("constant")
        return const is None or const.ndim <= 4
    if n.op == "Activation":
        slope = n.weights.get("slope")
        return slope is None or slope.size == 1  # a per-channel PReLU slope indexes axis 1
    return True


#: Winograd F(2x2, 3x3) pays from this many input and output channels: measured over 3x3 convs + ReLU
#: (AVX-512, 1 and 2 threads, against the direct NHWC conv): 1.4-1.8x at 32-512 channels on 7x7 to
#: 112x112 maps; 0.9-1.0x at 16 channels, 0.7-0.8x at 3 or 8 (the transforms outweigh the saving).
WINOGRAD_MIN_CHANNELS = 32
#: ... and F(4x4, 3x3) (4x fewer multiplies than the direct conv, 1.78x fewer than F(2x2)'s): from
#: WINOGRAD43_MIN_CHANNELS[side] channels on output maps of at least `side` on both sides, and on maps
#: under WINOGRAD43_SMALL_MAP only while its transformed weights (36 C N floats) are at most
#: WINOGRAD43_SMALL_MAP_WEIGHTS C N: there a block of four tiles reads every weight for four tiles' work.
#: Measured on AVX2, 1 and 2 threads (docs/runtime.md, "Which convs go to which"): 16 channels 1.36-1.46x
#: the direct conv's speed on 28x28; 32-256 channels on 7x7 1.20-1.95x; 512 -> 512 on 7x7 1.12-1.23x where
#: F(2x2) gives 1.39-1.51x; on 4x4 (one tile) 0.67-0.74x.
WINOGRAD43_MIN_CHANNELS = {28: 16, 7: 32}
WINOGRAD43_SMALL_MAP = 14
WINOGRAD43_SMALL_MAP_WEIGHTS = 256 * 256


def winograd_eligible(n: Node) -> bool:
    """Whether a node can run by Winograd: a Conv 3x3 at stride 1, dilation 1, of one group."""
    w, a = n.weights.get("weight"), n.attrs
    return (n.op == "Conv" and w is not None and w.ndim == 4 and list(w.shape[2:]) == [3, 3] and a.get("group", 1) == 1
            and list(a.get("strides", [1, 1])) == [1, 1] and list(a.get("dilations", [1, 1])) == [1, 1])


def winograd_tile(n: Node, out_shape: list | None) -> int:
    """The output tile side M of the Winograd F(MxM, 3x3) a Conv runs as (0: none), if it can
    (winograd_eligible): the one its `winograd` attribute asks for where it has one (0, 2 or 4: chosen
    from a device's cost table, compiler/costs.py: choose_transforms); else F(4x4) by
    WINOGRAD43_MIN_CHANNELS on a known output map (out_shape: NCHW), else F(2x2) from
    WINOGRAD_MIN_CHANNELS."""
    if not winograd_eligible(n):
        return 0
    if "winograd" in n.attrs:
        return int(n.attrs["winograd"])
    w = n.weights["weight"]
    width = min(w.shape[:2])
    if out_shape is not None and len(out_shape) == 4 and all(isinstance(d, int) for d in out_shape[2:]):
        side = min(out_shape[2:])
        small_ok = side >= WINOGRAD43_SMALL_MAP or w.shape[0] * w.shape[1] <= WINOGRAD43_SMALL_MAP_WEIGHTS
        if small_ok and any(side >= s and width >= c for s, c in WINOGRAD43_MIN_CHANNELS.items()):
            return 4
    return 2 if width >= WINOGRAD_MIN_CHANNELS else 0


def _reads_nchw(n: Node, attrs: dict, have: str, rank: int | None) -> bool:
    """Whether an NHWC Conv reads its NCHW input directly: a dense conv (not depthwise, not Winograd) of
    few input channels (fewer than 16, an RGB stem, which copies its input anyway) on an NCHW 4-D value."""
    w = n.weights.get("weight")
    if n.op != "Conv" or have != "nchw" or rank != 4 or w is None or attrs.get("winograd"):
        return False
    g = attrs.get("group", 1)
    return not is_depthwise(w.shape[1] * g, w.shape[0], g) and w.shape[1] * g < 16


def _permuted(n: Node) -> Node:
    """A follower node's NHWC form: axes, pads and constants permuted to the physical order."""
    attrs, weights = dict(n.attrs), dict(n.weights)
    if n.op == "Concat":
        axis = attrs.get("axis", 1)
        attrs["axis"] = _AXIS_NHWC[axis % 4]
    elif n.op == "Pad":
        p = list(attrs["pads"])
        attrs["pads"] = [p[i] for i in TO_NHWC] + [p[4 + i] for i in TO_NHWC]
    elif n.op in _BINARY and "constant" in weights:
        c = weights["constant"]
        weights["constant"] = np.ascontiguousarray(c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(TO_NHWC))
    return Node(n.op, n.name, list(n.inputs), n.output, attrs, weights)


def to_nhwc(g: Graph, winograd: bool = True) -> Graph:
    """g with its conv chains on NHWC: a new graph (g's nodes are not changed). winograd: run the 3x3
    convs that pay by Winograd (their weights take 16/9 the bytes)."""
    rank: dict[str, int | None] = {name: len(shape) for name, shape in g.inputs}
    layout: dict[str, str] = {}  # per value: the layout its producer writes
    made: set[str] = set()  # names written so far: `v` holds value v as NCHW, `v@nhwc` as NHWC
    alias: dict[tuple[str, str], str] = {}  # (value, layout) -> another value's array that holds it
    nodes: list[Node] = []

    def name_in(value: str, want: str) -> str:
        have = layout.get(value, "nchw")
        if have == want or rank.get(value) != 4:
            want = have
        if (value, want) in alias:
            return alias[(value, want)]
        name = f"{value}@nhwc" if want == "nhwc" else value
        if name not in made:  # a Transpose from the layout the producer wrote
            src = f"{value}@nhwc" if have == "nhwc" else value
            nodes.append(Node("Transpose", f"{value}/to_{want}", [src], name,
                              {"perm": TO_NHWC if want == "nhwc" else TO_NCHW}))
            made.add(name)
        return name

    made.update(name for name, _ in g.inputs)

    for n in g.nodes:
        ranks = [rank.get(v) for v in n.inputs]
        if n.op in _ANCHORS and ranks and ranks[0] == 4:
            want = "nhwc"
        elif n.op in _FOLLOWERS and _can_follow(n, ranks) and any(layout.get(v) == "nhwc" for v in n.inputs):
            want = "nhwc"
        else:
            want = "nchw"
        plain = {k: v for k, v in n.attrs.items() if k != "winograd"}  # (a request; the bundle's is the tile run)
        attrs = {**plain, "layout": "nhwc"}
        tile = winograd_tile(n, g.shapes.get(n.output)) if want == "nhwc" and n.op == "Conv" and winograd else 0
        if tile:
            attrs["winograd"] = tile
        v0 = n.inputs[0] if n.inputs else None
        if (want == "nhwc" and _reads_nchw(n, attrs, layout.get(v0, "nchw"), ranks[0])
                and (v0, "nhwc") not in alias and g.consumers(v0) == [n]):  # (no NHWC form wanted or to hand)
            # A stem on an NCHW value (the graph's RGB input) reads it as it is: its padded copy of the
            # input is the layout change, no Transpose of its own.
            attrs["input_layout"] = "nchw"
            inputs = [name_in(n.inputs[0], "nchw")] + [name_in(v, want) for v in n.inputs[1:]]
        else:
            inputs = [name_in(v, want) for v in n.inputs]
        if want == "nhwc":
            m = _permuted(n) if n.op in _FOLLOWERS else Node(n.op, n.name, [], n.output, attrs, n.weights)
            m.inputs = inputs
            m.output = f"{n.output}@nhwc"
        else:
            m = Node(n.op, n.name, inputs, n.output, plain, n.weights)
        made.add(m.output)
        layout[n.output] = want
        rank[n.output] = _out_rank(n, ranks)
        nodes.append(m)
        if n.op == "Transpose" and ranks == [4] and list(n.attrs.get("perm", [])) in (TO_NCHW, TO_NHWC):
            # A model's own layout change: the other layout of its output is its input's array as it is
            # (an NHWC graph input needs no transposing there and back).
            src = n.inputs[0]
            if n.attrs["perm"] == TO_NCHW and layout.get(src, "nchw") == "nchw":
                alias[(n.output, "nhwc")] = name_in(src, "nchw")
            elif n.attrs["perm"] == TO_NHWC and layout.get(src) == "nhwc":
                alias[(n.output, "nchw")] = name_in(src, "nhwc")
    for o in g.outputs:
        name_in(o, "nchw")
    out = Graph(g.inputs, g.outputs, nodes, g.shapes)
    drop_dead(out)
    fuse_residuals(out)
    return out


def fuse_residuals(g: Graph) -> int:
    """Folds a residual Add into the NHWC conv that produces one of its operands: the conv takes the
    other operand as a second input and adds it before its activation (which becomes the Add's), so the
    sum costs no pass of its own. Only where the conv has no activation of its own, feeds the Add alone,
    is not depthwise, both operands have the same known shape (no broadcasting), and the other operand is
    ready before the conv runs."""
    order = {n.output: i for i, n in enumerate(g.nodes)}
    fused = 0
    for add in [n for n in g.nodes if n.op == "Add" and len(n.inputs) == 2 and not n.weights]:
        shapes = [g.shapes.get(v.removesuffix("@nhwc")) for v in add.inputs]
        if shapes[0] is None or shapes[0] != shapes[1] or len(shapes[0]) != 4:
            continue
        for k in sorted((0, 1), key=lambda k: -order.get(add.inputs[k], -1)):  # the later producer first
            conv, other = g.producer(add.inputs[k]), add.inputs[1 - k]
            if (conv is None or conv.op != "Conv" or conv.attrs.get("layout") != "nhwc" or len(conv.inputs) != 1
                    or conv.activation != "none" or not g.only_feeds(conv, add)
                    or order.get(other, -1) >= order[conv.output]):
                continue
            wt = conv.weights["weight"]
            if is_depthwise(wt.shape[1] * conv.attrs.get("group", 1), wt.shape[0], conv.attrs.get("group", 1)):
                continue
            conv.inputs = conv.inputs + [other]
            conv.attrs = {**conv.attrs, **{a: v for a, v in add.attrs.items() if a != "layout"}}
            conv.weights = {**conv.weights, **add.weights}
            g.absorb(conv, add)
            fused += 1
            break
    return fused
