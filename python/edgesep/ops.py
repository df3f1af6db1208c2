"""The runtime's op vocabulary: one entry per op a bundle may hold (the single source of truth that
the bundle reader validates against and the compiler emits).

Each op lists how many activation inputs it takes, which named weights it may carry and with which
layout, and the attributes it understands. The C++ runtime (csrc/runtime/ops*.cpp) implements exactly
these and re-checks every value it uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: The format's limits (docs/bundle-format.md, "Limits"); the C++ plan builder has the same numbers
#: (csrc/runtime/limits.h, exposed as _core.LIMITS; a test compares them).
LIMITS = {
    "max_dim": 2**31 - 1,  # any dimension, count or integer attribute, in absolute value
    "max_elements": 2**31 - 1,  # elements of any tensor (and of a conv's or pool's padded input)
    "max_window": 65535,  # kernel_shape, strides, dilations, pads of a conv or pool
    "max_threads": 256,  # threads of one plan
}
_DIM, _WIN = LIMITS["max_dim"], LIMITS["max_window"]
#: The range of every integer attribute, by name (every value of a list attribute); op-specific
#: ranges in _OP_RANGES. Float attributes must be finite.
ATTR_RANGES: dict[str, tuple[int, int]] = {
    "kernel_shape": (1, _WIN), "strides": (1, _WIN), "dilations": (1, _WIN), "pads": (0, _WIN),
    "group": (1, _DIM), "out_channels": (1, _DIM), "rank": (1, _DIM), "out_features": (1, _DIM),
    "axis": (-_DIM, _DIM), "shape": (-1, _DIM), "perm": (0, _DIM), "block": (1, 4),
    "constant_index": (0, 1), "ceil_mode": (0, 1), "count_include_pad": (0, 1), "winograd": (0, 4),
    "coerce_2d": (0, 1),
}
_OP_RANGES = {("Pad", "pads"): (0, _DIM)}


def attr_range(op: str, name: str) -> tuple[int, int]:
    """The range of integer attribute `name` of `op`."""
    return _OP_RANGES.get((op, name), ATTR_RANGES.get(name, (-_DIM, _DIM)))

#: Activations that Conv, Fc, Activation and the binary ops can apply to their output.
ACTIVATIONS = ("none", "relu", "clip", "leaky_relu", "prelu", "sigmoid", "hard_sigmoid", "hard_swish", "tanh")
_ACT_ATTRS = {"activation": str, "clip_min": float, "clip_max": float, "alpha": float, "beta": float}
_WINDOW = {"kernel_shape": list, "strides": list, "dilations": list, "pads": list}
#: The activations' layouts a node's `layout` attribute may name; the first is the default
#: (compiler/layout.py chooses them).
ACTIVATION_LAYOUTS = ("nchw", "nhwc")
_LAYOUT = {"layout": str}


@dataclass(frozen=True)
class OpSpec:
    min_inputs: int
    max_inputs: int
    weights: dict[str, str] = field(default_factory=dict)  # weight name -> layout
    attrs: dict[str, type] = field(default_factory=dict)  # attribute name -> int, float, str or list
    dtypes: dict[str, str] = field(default_factory=dict)  # weight name -> dtypes allowed, if not float32


_BINARY = OpSpec(1, 2, {"constant": "plain"}, {"constant_index": int, **_ACT_ATTRS})

OPS: dict[str, OpSpec] = {
    # NCHW: weight conv_mr6 (depthwise: plain). NHWC: conv_nhwc16 (depthwise: khwc; winograd=M, a 3x3
    # conv at stride 1 run by Winograd F(MxM, 3x3): M = 2 wino23_nhwc16 (1 before bundle version 5), M = 4
    # wino43_nhwc16), an optional second input added to
    # the output before the activation (a fused residual Add), and input_layout "nchw" (a dense conv that
    # reads an NCHW input, a graph's RGB image, and writes NHWC).
    "Conv": OpSpec(1, 2, {"weight": "conv_mr6|plain|conv_nhwc16|khwc|wino23_nhwc16|wino43_nhwc16", "bias": "plain", "slope": "plain"},
                   {**_WINDOW, "group": int, "out_channels": int, **_ACT_ATTRS, **_LAYOUT, "winograd": int,
                    "input_layout": str}),
    # The fused separable pair (kh x 1 to `rank` channels at stride strides[0], then 1 x kw at strides[1]),
    # dilation 1. Weights conv_mr6 with the taps in phase order where the stride is above 1 (the tensor's
    # "phases" = that stride; bundle.pack_conv_mr6).
    # NHWC: both weights conv_nhwc16, the pair run as two convs of the NHWC core.
    "SeparableConv": OpSpec(1, 1, {"vertical": "conv_mr6|conv_nhwc16", "horizontal": "conv_mr6|conv_nhwc16",
                                   "bias": "plain", "slope": "plain"},
                            {"kernel_shape": list, "strides": list, "pads": list, "rank": int, "out_channels": int,
                             **_ACT_ATTRS, **_LAYOUT}),
    "Fc": OpSpec(1, 1, {"weight": "plain", "bias": "plain", "slope": "plain"}, {"out_features": int, **_ACT_ATTRS}),
    # Fc over a BCSR weight (compiler/sparse_fc.py): values [blocks, br, bc], row_ptr [out_features/br + 1],
    # columns [blocks] (uint16 where in_features <= 65536, else int32), each tensor of layout bcsr with
    # the node's block [br, bc].
    "SparseFc": OpSpec(1, 1, {"values": "bcsr", "row_ptr": "bcsr", "columns": "bcsr", "bias": "plain",
                              "slope": "plain"}, {"out_features": int, "block": list, **_ACT_ATTRS},
                       {"row_ptr": "int32", "columns": "uint16|int32"}),
    "MaxPool": OpSpec(1, 1, {}, {**_WINDOW, "ceil_mode": int, **_LAYOUT}),
    "AveragePool": OpSpec(1, 1, {}, {**_WINDOW, "ceil_mode": int, "count_include_pad": int, **_LAYOUT}),
    "GlobalAveragePool": OpSpec(1, 1, {}, dict(_LAYOUT)),
    "GlobalMaxPool": OpSpec(1, 1, {}, dict(_LAYOUT)),
    "Activation": OpSpec(1, 1, {"slope": "plain"}, dict(_ACT_ATTRS)),
    "Add": _BINARY, "Sub": _BINARY, "Mul": _BINARY, "Div": _BINARY, "Max": _BINARY, "Min": _BINARY,
    "Concat": OpSpec(1, 1 << 16, {}, {"axis": int}),
    "Reshape": OpSpec(1, 1, {}, {"shape": list}),
    "Flatten": OpSpec(1, 1, {}, {"axis": int}),
    "Transpose": OpSpec(1, 1, {}, {"perm": list}),
    "Pad": OpSpec(1, 1, {}, {"pads": list, "mode": str, "value": float}),
    "Softmax": OpSpec(1, 1, {}, {"axis": int, "coerce_2d": int}),
}


def is_depthwise(in_channels: int, out_channels: int, group: int) -> bool:
    """A conv whose every channel is its own group: run by the depthwise kernel, weights stored plain."""
    return group == in_channels == out_channels


def is_layout_change(node: dict) -> bool:
    """Whether a bundle's node (a header dict, or a row of Model.layers()) is a Transpose the compiler
    inserted to change an activation's layout (compiler/layout.py names them <value>/to_nhwc, /to_nchw)."""
    return node["op"] == "Transpose" and node["name"].endswith(("/to_nhwc", "/to_nchw"))
